//! Event webhooks: a subscription sends message tracking events (delivered,
//! deferred, failed, DSN, agent rejections…) as signed JSON to a URL, from
//! a durable outbox, at least once, with retries. The HMAC key is made by
//! Ferry at creation, shown once and kept sealed.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{Errors, Invalid};
use super::{check_name, from_json, merge_patch};
use crate::observe::vocabulary::EventKind;

/// Which events of the chosen kinds are sent: every criterion given holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookFilter {
    /// Part of the sender address (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::filter_text)]
    pub sender: Option<String>,
    /// Part of one of the event's recipients (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::filter_text)]
    pub recipient: Option<String>,
    /// The connector the event names, whole (case-insensitive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::filter_text)]
    pub connector: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Webhook {
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// Where events are POSTed: `http://` or `https://`, a host name or
    /// address, an optional port and path.
    #[schema(schema_with = super::schema::webhook_url)]
    pub url: String,
    /// The kinds of event sent; empty sends every kind.
    #[serde(default)]
    #[schema(max_items = 13)]
    pub events: Vec<EventKind>,
    #[serde(default)]
    pub filter: WebhookFilter,
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

fn yes() -> bool {
    true
}

impl Webhook {
    pub fn from_create(body: &Value) -> Result<Self, Invalid> {
        let mut value = serde_json::json!({});
        merge_patch(&mut value, body);
        let w: Self = from_json(value)?;
        w.validate()?;
        Ok(w)
    }

    pub fn patched(&self, patch: &Value) -> Result<Self, Invalid> {
        let w: Self = super::apply_patch(self, patch, &[])?;
        w.validate()?;
        Ok(w)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        e.check(
            !url_ok(&self.url),
            "url",
            "must be http:// or https://, a host name or address, an optional port and path",
        );
        let mut seen = std::collections::HashSet::new();
        for (i, k) in self.events.iter().enumerate() {
            e.check(!seen.insert(*k), &format!("events[{i}]"), "is listed twice");
        }
        if let Some(c) = &self.comment {
            e.check(
                c.chars().count() > 1024,
                "comment",
                "must be at most 1024 characters",
            );
        }
        e.finish()
    }

    /// Whether an event of `kind` with these fields is sent to this hook.
    pub fn wants(
        &self,
        kind: EventKind,
        sender: &str,
        recipients: &[String],
        connector: Option<&str>,
    ) -> bool {
        let has = |hay: &str, needle: &str| hay.to_lowercase().contains(&needle.to_lowercase());
        self.enabled
            && (self.events.is_empty() || self.events.contains(&kind))
            && self.filter.sender.as_deref().is_none_or(|s| has(sender, s))
            && self
                .filter
                .recipient
                .as_deref()
                .is_none_or(|r| recipients.iter().any(|x| has(x, r)))
            && self
                .filter
                .connector
                .as_deref()
                .is_none_or(|c| connector.is_some_and(|x| x.eq_ignore_ascii_case(c)))
    }
}

/// `http(s)://host[:port][/path]`: a host name, an IPv4 address or a
/// bracketed IPv6 address; a path of printable ASCII without `#`.
pub(super) fn url_ok(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return false;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let host_ok = if authority.ends_with(']') || !authority.contains(':') {
        authority.parse::<super::Host>().is_ok()
    } else {
        super::accepted_domain::split_host_port(authority).is_some()
    };
    host_ok
        && path.len() <= 2000
        && path
            .bytes()
            .all(|b| (b'!'..=b'~').contains(&b) && b != b'#')
        && reqwest::Url::parse(url).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn urls_and_matching() {
        for good in [
            "http://127.0.0.1:8088/hook",
            "https://hooks.contoso.test/ferry?x=1",
            "http://[::1]:9000",
            "https://hooks.contoso.test",
        ] {
            assert!(url_ok(good), "{good}");
        }
        for bad in [
            "ftp://x",
            "http://",
            "http://[:1",
            "http://a b/",
            "http://user@host/",
            "http://host/#frag",
            "http://host:0/",
        ] {
            assert!(!url_ok(bad), "{bad}");
        }
        let w = Webhook::from_create(&json!({"name": "w", "url": "http://127.0.0.1:1/x",
            "events": ["DELIVER", "FAIL"], "filter": {"recipient": "@Contoso.test"}}))
        .unwrap();
        let r = vec!["bob@contoso.test".to_string()];
        assert!(w.wants(EventKind::Deliver, "a@b", &r, None));
        assert!(!w.wants(EventKind::Defer, "a@b", &r, None));
        assert!(!w.wants(EventKind::Deliver, "a@b", &["x@y".into()], None));
        assert_eq!(
            Webhook::from_create(
                &json!({"name": "w", "url": "http://h/", "events": ["FAIL", "FAIL"]})
            )
            .unwrap_err()
            .first_field(),
            "events[1]"
        );
    }
}
