//! The Content Filter agent's scanner: rspamd, asked over its HTTP
//! protocol (`POST /checkv2` with the message as the body and the envelope
//! in request headers), its verdict turned into a Spam Confidence Level
//! (`model::content_filter::scl`). The agent's decisions from the SCL are
//! made by the session (`smtp/server/session/content/`).

use std::time::Duration;

use serde::Deserialize;

use crate::model::content_filter::{scanner_authority, scl};

/// rspamd's answer, as far as Ferry reads it.
#[derive(Debug, Clone, Deserialize)]
struct CheckV2 {
    #[serde(default)]
    score: f64,
    #[serde(default)]
    required_score: f64,
    action: String,
    #[serde(default)]
    symbols: serde_json::Map<String, serde_json::Value>,
}

/// A verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub scl: i8,
    pub score: f64,
    pub required_score: f64,
    pub action: String,
    /// The symbols that matched, by name (for the stamp and tracking).
    pub symbols: Vec<String>,
}

impl Verdict {
    /// The value of `X-Ferry-Content-Filter`: what rspamd said.
    pub fn stamp(&self) -> String {
        let mut symbols = self.symbols.clone();
        symbols.sort();
        let mut list = symbols.join(",");
        if list.len() > 600 {
            let cut = list[..600].rfind(',').unwrap_or(0);
            list.truncate(cut);
            list.push_str(",…");
        }
        format!(
            "rspamd; score={:.2}; required={:.2}; action=\"{}\"; symbols={}",
            self.score,
            self.required_score,
            self.action.replace(['"', '\r', '\n'], ""),
            list
        )
    }
}

/// What the scanner is told besides the message.
pub struct Envelope<'a> {
    pub client_ip: std::net::IpAddr,
    pub helo: Option<&'a str>,
    pub sender: &'a str,
    pub recipients: &'a [String],
    pub auth_user: Option<&'a str>,
    pub session: &'a str,
}

/// The HTTP client to the scanner: one connection pool for every session.
pub struct Scanner {
    http: reqwest::Client,
}

impl Default for Scanner {
    fn default() -> Self {
        Scanner {
            http: reqwest::Client::builder()
                .no_proxy()
                .pool_idle_timeout(Duration::from_secs(30))
                .build()
                .expect("an HTTP client without TLS builds"),
        }
    }
}

impl Scanner {
    /// Asks the scanner about a message; the error says why there is no
    /// verdict (unreachable, too slow, an answer that is not one).
    pub async fn check(
        &self,
        url: &str,
        timeout: Duration,
        message: Vec<u8>,
        env: &Envelope<'_>,
    ) -> Result<Verdict, String> {
        let authority = scanner_authority(url).ok_or("the scanner URL is not http://host:port")?;
        let mut req = self
            .http
            .post(format!("http://{authority}/checkv2"))
            .timeout(timeout)
            .header("IP", env.client_ip.to_string())
            .header("From", header_safe(env.sender))
            .header("Queue-Id", header_safe(env.session))
            .header("Pass", "all");
        if let Some(h) = env.helo {
            req = req.header("Helo", header_safe(h));
        }
        if let Some(u) = env.auth_user {
            req = req.header("User", header_safe(u));
        }
        for r in env.recipients {
            req = req.header("Rcpt", header_safe(r));
        }
        let reply = req.body(message).send().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} ms", timeout.as_millis())
            } else {
                format!("the scanner at {authority} cannot be reached")
            }
        })?;
        if !reply.status().is_success() {
            return Err(format!(
                "the scanner answered HTTP {}",
                reply.status().as_u16()
            ));
        }
        let bytes = reply.bytes().await.map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} ms", timeout.as_millis())
            } else {
                "the scanner's answer was cut off".to_string()
            }
        })?;
        let v: CheckV2 = serde_json::from_slice(&bytes)
            .map_err(|_| "the scanner's answer is not rspamd's JSON".to_string())?;
        Ok(Verdict {
            scl: scl(v.score, v.required_score, &v.action),
            score: v.score,
            required_score: v.required_score,
            action: v.action,
            symbols: v.symbols.keys().cloned().collect(),
        })
    }
}

/// A value fit for an HTTP header: printable ASCII only.
fn header_safe(s: &str) -> String {
    s.chars()
        .map(|c| if (' '..='~').contains(&c) { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_is_one_bounded_line() {
        let v = Verdict {
            scl: 9,
            score: 15.0,
            required_score: 15.0,
            action: "re\"ject\r\n".into(),
            symbols: (0..200).map(|i| format!("SYMBOL_{i}")).collect(),
        };
        let s = v.stamp();
        assert!(s.starts_with("rspamd; score=15.00; required=15.00; action=\"reject\"; symbols="));
        assert!(s.len() < 700 && s.ends_with(",…"));
        assert!(!s.contains('\n'));
        assert_eq!(header_safe("a\r\nb"), "a??b");
    }
}
