//! AUTH PLAIN and LOGIN against Ferry's logins (argon2), with
//! AuthTarpitInterval, MaxLogonFailures, and no AUTH before TLS under
//! BasicAuthRequireTLS (spec rules 8 and 10).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Filled, Next, Session};
use crate::model::{CredentialKind, LoginPrincipal, Principal};
use crate::smtp::replies::{self, Reply};

enum Step {
    Got(String),
    Aborted,
    Closed,
    Invalid,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    /// Sends a 334 challenge and reads the client's base64 answer.
    async fn challenge(&mut self, prompt: &str) -> std::io::Result<Step> {
        self.write(&Reply::new(334, "", prompt.to_string()));
        loop {
            if let Some(line) = self.next_line() {
                let Some(line) = line else {
                    return Ok(Step::Invalid);
                };
                if let Some(l) = &mut self.plog {
                    // The answer is a credential: never logged.
                    l.received(if line == b"*" { "*" } else { "****" });
                }
                if line == b"*" {
                    return Ok(Step::Aborted);
                }
                return Ok(match STANDARD.decode(line.trim_ascii()) {
                    Ok(v) => Step::Got(String::from_utf8_lossy(&v).into_owned()),
                    Err(_) => Step::Invalid,
                });
            }
            self.flush().await?;
            if let Filled::Done = self.fill(false).await? {
                return Ok(Step::Closed);
            }
        }
    }

    fn decode_initial(initial: &str) -> Option<Step> {
        match initial.trim() {
            "" => None,
            "=" => Some(Step::Got(String::new())),
            "*" => Some(Step::Aborted),
            b64 => Some(match STANDARD.decode(b64) {
                Ok(v) => Step::Got(String::from_utf8_lossy(&v).into_owned()),
                Err(_) => Step::Invalid,
            }),
        }
    }

    pub(super) async fn auth(&mut self, mechanism: u64, initial: String) -> std::io::Result<Next> {
        if self.helo.is_none() {
            return Ok(self.protocol_error(replies::HELLO_FIRST).await);
        }
        if self.auth_user.is_some() {
            return Ok(self.protocol_error(replies::AUTH_ALREADY).await);
        }
        if self.tx.is_some() {
            return Ok(self.protocol_error(replies::AUTH_IN_TRANSACTION).await);
        }
        let m = &self.c().auth_mechanism;
        if !m.has(crate::model::AuthMechanism::BasicAuth) {
            return Ok(self.reply(replies::AUTH_UNKNOWN_MECHANISM).await);
        }
        if !self.auth_available() {
            return Ok(self.reply(replies::MUST_STARTTLS).await);
        }
        let (user, password) = match mechanism {
            smtp_proto::AUTH_PLAIN => {
                let step = match Self::decode_initial(&initial) {
                    Some(s) => s,
                    None => self.challenge("").await?,
                };
                match step {
                    Step::Got(s) => {
                        let parts: Vec<&str> = s.split('\0').collect();
                        if parts.len() != 3 {
                            return Ok(self.protocol_error(replies::SYNTAX).await);
                        }
                        (parts[1].to_string(), parts[2].to_string())
                    }
                    Step::Aborted => return Ok(self.reply(replies::AUTH_ABORTED).await),
                    Step::Invalid => return Ok(self.protocol_error(replies::SYNTAX).await),
                    Step::Closed => return Ok(Next::Close),
                }
            }
            smtp_proto::AUTH_LOGIN => {
                let user = match Self::decode_initial(&initial) {
                    Some(s) => s,
                    None => self.challenge("VXNlcm5hbWU6").await?,
                };
                let user = match user {
                    Step::Got(u) => u,
                    Step::Aborted => return Ok(self.reply(replies::AUTH_ABORTED).await),
                    Step::Invalid => return Ok(self.protocol_error(replies::SYNTAX).await),
                    Step::Closed => return Ok(Next::Close),
                };
                match self.challenge("UGFzc3dvcmQ6").await? {
                    Step::Got(p) => (user, p),
                    Step::Aborted => return Ok(self.reply(replies::AUTH_ABORTED).await),
                    Step::Invalid => return Ok(self.protocol_error(replies::SYNTAX).await),
                    Step::Closed => return Ok(Next::Close),
                }
            }
            _ => return Ok(self.reply(replies::AUTH_UNKNOWN_MECHANISM).await),
        };
        let settings = &self.snap.transport.spec;
        let (threshold, window) = (
            settings.auth_failure_lockout_threshold,
            settings.auth_failure_lockout_window.duration(),
        );
        let ip = self.remote.ip();
        if self.shared.auth.locked_out(ip, threshold, window) {
            tracing::info!("authentication refused: too many recent failures from this address");
            self.shared
                .observe
                .metrics
                .auth_failure(&self.connector.spec.name);
            return Ok(self.reply(replies::AUTH_LOCKED_OUT).await);
        }
        let login = self
            .snap
            .credentials
            .iter()
            .find(|c| {
                c.spec.kind == CredentialKind::Login && c.spec.user_name.eq_ignore_ascii_case(&user)
            })
            .cloned();
        let hash = login
            .as_ref()
            .and_then(|l| l.secret.clone())
            .map(|h| String::from_utf8_lossy(&h).into_owned());
        // Unknown users are verified against a dummy hash: same time, same
        // memory, so a login's existence cannot be told from outside.
        let ok = self.shared.auth.verify(hash, password).await;
        match (ok, login.clone()) {
            (true, Some(login)) => {
                self.principal = match login.spec.principal.unwrap_or_default() {
                    LoginPrincipal::User => Principal::ExchangeUsers,
                    LoginPrincipal::Server => Principal::ExchangeServers,
                };
                self.rights = self
                    .c()
                    .rights()
                    .remove(&self.principal)
                    .unwrap_or_default();
                self.auth_user = Some(login.spec.user_name.clone());
                self.auth_addresses = login.spec.send_as(&self.shared.directory);
                // Authenticated mail is judged anew by the anti-spam agents.
                self.connection_verdict = None;
                self.refused_by_agent = false;
                tracing::info!(user = %login.spec.user_name, principal = ?self.principal, "authenticated");
                Ok(self.reply(replies::AUTH_OK).await)
            }
            _ => {
                self.logon_failures += 1;
                self.shared.auth.failed(ip, window);
                // A password typed into the user-name field must not reach
                // the logs: only names of existing logins are written out.
                match &login {
                    Some(l) => tracing::info!(user = %l.spec.user_name, "authentication failed"),
                    None => tracing::info!(
                        user_length = user.chars().count(),
                        "authentication failed for an unknown user name (not logged)"
                    ),
                }
                self.shared
                    .observe
                    .metrics
                    .auth_failure(&self.connector.spec.name);
                self.tarpit(self.c().auth_tarpit_interval.duration()).await;
                let max = self.c().max_logon_failures;
                if max > 0 && self.logon_failures >= max {
                    self.write(&replies::TOO_MANY_ERRORS);
                    return Ok(Next::Close);
                }
                self.write(&replies::AUTH_FAILED);
                Ok(Next::Continue)
            }
        }
    }
}
