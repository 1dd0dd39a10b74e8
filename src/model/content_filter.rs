//! The Content Filter agent's configuration (Set-ContentFilterConfig): the
//! scanner it asks (rspamd, over its HTTP protocol), what the Spam
//! Confidence Level it derives makes happen, and who is never filtered.
//!
//! SCL from rspamd's verdict (`scl`): `ceil(9 × score ÷ required_score)`,
//! clamped to 0–9, where `required_score` is rspamd's reject score; rspamd's
//! own `reject` action is SCL 9, and its `add header` and `rewrite subject`
//! actions (its spam verdict short of rejection) are at least SCL 4 —
//! Exchange's junk threshold. With rspamd's default scores a message at
//! its add-header score (6 of 15) is SCL 4, one at 10.5 is SCL 7 (rejected
//! by Exchange's default reject threshold), and GTUBE is SCL 9. A message
//! that is not scanned (bypassed, internal) carries SCL −1, as in Exchange.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::Timespan;
use super::error::{Errors, Invalid};

/// What happens to a message when the scanner cannot be asked (down,
/// slow past `scannerTimeout`, or answering nonsense).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum ScannerFailureAction {
    /// Accept it unscanned, stamped `X-Ferry-Content-Filter: not scanned
    /// (<why>)` (fail open).
    #[default]
    Accept,
    /// `451 4.7.1` after DATA: the client keeps the message and retries.
    TempFail,
}

/// Set-ContentFilterConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContentFilterConfig {
    pub enabled: bool,
    pub external_mail_enabled: bool,
    pub internal_mail_enabled: bool,
    /// Accept and drop (no NDR) at SCL ≥ `sclDeleteThreshold`.
    pub scl_delete_enabled: bool,
    #[schema(minimum = 0, maximum = 9)]
    pub scl_delete_threshold: u8,
    /// `550 5.7.1 <rejectionResponse>` at SCL ≥ `sclRejectThreshold`.
    pub scl_reject_enabled: bool,
    #[schema(minimum = 0, maximum = 9)]
    pub scl_reject_threshold: u8,
    /// Deliver to `quarantineMailbox` instead at SCL ≥
    /// `sclQuarantineThreshold`.
    pub scl_quarantine_enabled: bool,
    #[schema(minimum = 0, maximum = 9)]
    pub scl_quarantine_threshold: u8,
    #[serde(default)]
    #[schema(schema_with = super::schema::optional_email_address)]
    pub quarantine_mailbox: Option<String>,
    /// The reply text of a rejection (≤ 240 printable ASCII).
    #[schema(schema_with = super::schema::reply_text)]
    pub rejection_response: String,
    /// Mail to these addresses is not filtered.
    #[serde(default)]
    #[schema(schema_with = super::schema::email_addresses)]
    pub bypassed_recipients: Vec<String>,
    /// Mail from these addresses is not filtered.
    #[serde(default)]
    #[schema(schema_with = super::schema::email_addresses)]
    pub bypassed_senders: Vec<String>,
    /// Mail from these domains (`*.contoso.test`: and their subdomains) is
    /// not filtered.
    #[serde(default)]
    #[schema(schema_with = super::schema::domains_or_wildcards)]
    pub bypassed_sender_domains: Vec<String>,
    /// rspamd's normal worker, `http://host:port` (its `/checkv2`).
    #[schema(schema_with = super::schema::scanner_url)]
    pub scanner_url: String,
    /// How long the session waits for a verdict (at most 00:05:00).
    #[schema(schema_with = super::schema::timespan_1s_300s)]
    pub scanner_timeout: Timespan,
    pub scanner_failure_action: ScannerFailureAction,
    /// A Hub files mail whose `X-Ferry-Organization-SCL` is at least this
    /// in the mailbox's Junk folder (Maildir++ `.Junk`), as Exchange's
    /// `Set-OrganizationConfig -SCLJunkThreshold` does; 0–9, default 4.
    #[serde(default = "junk_default")]
    #[schema(minimum = 0, maximum = 9)]
    pub scl_junk_threshold: u8,
}

fn junk_default() -> u8 {
    4
}

/// What the SCL makes happen, strongest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SclAction {
    Delete,
    Reject,
    Quarantine,
    Deliver,
}

impl ContentFilterConfig {
    pub fn defaults() -> ContentFilterConfig {
        ContentFilterConfig {
            enabled: true,
            external_mail_enabled: true,
            internal_mail_enabled: false,
            scl_delete_enabled: false,
            scl_delete_threshold: 9,
            scl_reject_enabled: true,
            scl_reject_threshold: 7,
            scl_quarantine_enabled: false,
            scl_quarantine_threshold: 9,
            quarantine_mailbox: None,
            rejection_response: "Message rejected as spam by Content Filtering.".into(),
            bypassed_recipients: vec![],
            bypassed_senders: vec![],
            bypassed_sender_domains: vec![],
            scanner_url: "http://127.0.0.1:11333".into(),
            scanner_timeout: Timespan::from_secs(10),
            scanner_failure_action: ScannerFailureAction::Accept,
            scl_junk_threshold: junk_default(),
        }
    }

    pub fn patched(&self, patch: &Value) -> Result<ContentFilterConfig, Invalid> {
        let c: ContentFilterConfig = super::apply_patch(self, patch, &[])?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        for (field, v) in [
            ("sclJunkThreshold", self.scl_junk_threshold),
            ("sclDeleteThreshold", self.scl_delete_threshold),
            ("sclRejectThreshold", self.scl_reject_threshold),
            ("sclQuarantineThreshold", self.scl_quarantine_threshold),
        ] {
            e.check(v > 9, field, "must be 0–9");
        }
        // Exchange's order: quarantine below reject below delete, among
        // the actions that are enabled.
        let (d, r, q) = (
            self.scl_delete_enabled.then_some(self.scl_delete_threshold),
            self.scl_reject_enabled.then_some(self.scl_reject_threshold),
            self.scl_quarantine_enabled
                .then_some(self.scl_quarantine_threshold),
        );
        if let (Some(r), Some(d)) = (r, d) {
            e.check(
                r >= d,
                "sclRejectThreshold",
                "must be below sclDeleteThreshold while both are enabled",
            );
        }
        if let Some(q) = q {
            e.check(
                r.is_some_and(|r| q >= r) || d.is_some_and(|d| q >= d),
                "sclQuarantineThreshold",
                "must be below the reject and delete thresholds that are enabled",
            );
        }
        let address = |a: &str| {
            a.rsplit_once('@').is_some_and(|(l, d)| {
                !l.is_empty()
                    && !l.contains(char::is_whitespace)
                    && d.parse::<super::Domain>().is_ok()
            })
        };
        match &self.quarantine_mailbox {
            Some(m) => e.check(!address(m), "quarantineMailbox", "must be an address"),
            None => e.check(
                self.scl_quarantine_enabled,
                "quarantineMailbox",
                "is required while sclQuarantineEnabled is true",
            ),
        }
        e.check(
            self.rejection_response.is_empty()
                || self.rejection_response.len() > 240
                || !self
                    .rejection_response
                    .chars()
                    .all(|c| (' '..='~').contains(&c)),
            "rejectionResponse",
            "must be 1–240 printable ASCII characters",
        );
        for (i, a) in self.bypassed_recipients.iter().enumerate() {
            e.check(
                !address(a),
                &format!("bypassedRecipients[{i}]"),
                "must be an address",
            );
        }
        for (i, a) in self.bypassed_senders.iter().enumerate() {
            e.check(
                !address(a),
                &format!("bypassedSenders[{i}]"),
                "must be an address",
            );
        }
        for (i, d) in self.bypassed_sender_domains.iter().enumerate() {
            let bare = d.strip_prefix("*.").unwrap_or(d);
            e.check(
                bare.parse::<super::Domain>().is_err(),
                &format!("bypassedSenderDomains[{i}]"),
                "must be a domain or *.domain",
            );
        }
        e.check(
            scanner_authority(&self.scanner_url).is_none(),
            "scannerUrl",
            "must be http://host:port of rspamd's normal worker (plain HTTP: keep the scanner on loopback or a trusted network)",
        );
        let t = self.scanner_timeout.duration();
        e.check(
            t.is_zero() || t > std::time::Duration::from_secs(300),
            "scannerTimeout",
            "must be more than 0 and at most 00:05:00",
        );
        e.finish()
    }

    /// Whether mail from this sender is not filtered.
    pub fn bypasses_sender(&self, sender: &str) -> bool {
        if self
            .bypassed_senders
            .iter()
            .any(|s| s.eq_ignore_ascii_case(sender))
        {
            return true;
        }
        let Some((_, domain)) = sender.rsplit_once('@') else {
            return false;
        };
        let domain = domain.to_ascii_lowercase();
        self.bypassed_sender_domains.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            match d.strip_prefix("*.") {
                Some(parent) => domain == parent || domain.ends_with(&format!(".{parent}")),
                None => domain == d,
            }
        })
    }

    pub fn bypasses_recipient(&self, recipient: &str) -> bool {
        self.bypassed_recipients
            .iter()
            .any(|r| r.eq_ignore_ascii_case(recipient))
    }

    /// Whether a mailbox files a message stamped with this SCL as junk.
    pub fn junk(&self, stamped: Option<&str>) -> bool {
        stamped
            .and_then(|v| v.trim().parse::<i8>().ok())
            .is_some_and(|scl| scl >= self.scl_junk_threshold as i8)
    }

    /// What a message of this SCL gets.
    pub fn action(&self, scl: i8) -> SclAction {
        let at = |enabled: bool, threshold: u8| enabled && scl >= threshold as i8;
        if at(self.scl_delete_enabled, self.scl_delete_threshold) {
            SclAction::Delete
        } else if at(self.scl_reject_enabled, self.scl_reject_threshold) {
            SclAction::Reject
        } else if at(self.scl_quarantine_enabled, self.scl_quarantine_threshold) {
            SclAction::Quarantine
        } else {
            SclAction::Deliver
        }
    }
}

/// `host:port` of an `http://host:port[/]` URL.
pub fn scanner_authority(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("http://")?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    // A host name, an IPv4 address or a bracketed IPv6 address, and a port.
    super::accepted_domain::split_host_port(authority).map(|_| authority)
}

/// The SCL of an rspamd verdict (see the module's documentation).
pub fn scl(score: f64, required_score: f64, action: &str) -> i8 {
    if action == "reject" {
        return 9;
    }
    let scaled = if required_score > 0.0 && score.is_finite() {
        (9.0 * score / required_score).ceil().clamp(0.0, 9.0) as i8
    } else {
        0
    };
    match action {
        "add header" | "rewrite subject" => scaled.max(4),
        _ => scaled,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scl_follows_the_score_and_rspamds_actions() {
        assert_eq!(scl(-3.0, 15.0, "no action"), 0);
        assert_eq!(scl(0.0, 15.0, "no action"), 0);
        assert_eq!(scl(1.1, 15.0, "no action"), 1);
        assert_eq!(scl(6.0, 15.0, "add header"), 4);
        assert_eq!(scl(2.0, 15.0, "add header"), 4);
        assert_eq!(scl(10.5, 15.0, "add header"), 7);
        assert_eq!(scl(15.0, 15.0, "reject"), 9);
        assert_eq!(scl(0.0, 15.0, "reject"), 9);
        assert_eq!(scl(40.0, 15.0, "no action"), 9);
        assert_eq!(scl(f64::NAN, 15.0, "no action"), 0);
        assert_eq!(scl(5.0, 0.0, "no action"), 0);
    }

    #[test]
    fn thresholds_pick_the_strongest_enabled_action() {
        let mut c = ContentFilterConfig::defaults();
        assert_eq!(c.action(6), SclAction::Deliver);
        assert_eq!(c.action(7), SclAction::Reject);
        assert_eq!(c.action(-1), SclAction::Deliver);
        c = c
            .patched(
                &json!({"sclDeleteEnabled": true, "sclQuarantineEnabled": true,
                "sclQuarantineThreshold": 5, "quarantineMailbox": "quarantine@contoso.test"}),
            )
            .unwrap();
        assert_eq!(c.action(4), SclAction::Deliver);
        assert_eq!(c.action(5), SclAction::Quarantine);
        assert_eq!(c.action(8), SclAction::Reject);
        assert_eq!(c.action(9), SclAction::Delete);
    }

    #[test]
    fn the_junk_threshold_reads_the_stamp() {
        let c = ContentFilterConfig::defaults();
        assert!(c.junk(Some("4")) && c.junk(Some(" 9")));
        assert!(!c.junk(Some("3")) && !c.junk(Some("-1")));
        assert!(!c.junk(Some("spam")) && !c.junk(None));
    }

    #[test]
    fn validation_names_the_field() {
        let c = ContentFilterConfig::defaults();
        c.validate().unwrap();
        let field = |patch: Value| c.patched(&patch).unwrap_err().0[0].field.clone();
        assert_eq!(
            field(json!({"sclRejectThreshold": 10})),
            "sclRejectThreshold"
        );
        assert_eq!(
            field(json!({"sclDeleteEnabled": true, "sclDeleteThreshold": 6})),
            "sclRejectThreshold"
        );
        assert_eq!(
            field(json!({"sclQuarantineEnabled": true, "quarantineMailbox": "q@contoso.test"})),
            "sclQuarantineThreshold"
        );
        assert_eq!(
            field(json!({"sclQuarantineEnabled": true, "sclQuarantineThreshold": 3})),
            "quarantineMailbox"
        );
        assert_eq!(field(json!({"scannerUrl": "https://x:1"})), "scannerUrl");
        assert_eq!(field(json!({"scannerUrl": "http://x"})), "scannerUrl");
        // A host is a name, an IPv4 address or a bracketed IPv6 one.
        assert_eq!(field(json!({"scannerUrl": "http://[:1"})), "scannerUrl");
        assert_eq!(field(json!({"scannerUrl": "http://a_b:1"})), "scannerUrl");
        assert!(scanner_authority("http://[::1]:11333").is_some());
        assert!(scanner_authority("http://rspamd.contoso.test:11333/").is_some());
        assert_eq!(
            field(json!({"scannerTimeout": "00:00:00"})),
            "scannerTimeout"
        );
        assert_eq!(
            field(json!({"scannerTimeout": "00:10:00"})),
            "scannerTimeout"
        );
        assert_eq!(
            field(json!({"rejectionResponse": "a\r\nb"})),
            "rejectionResponse"
        );
        assert_eq!(
            field(json!({"bypassedSenderDomains": ["ok.test", "*.bad..test"]})),
            "bypassedSenderDomains[1]"
        );
        assert_eq!(
            field(json!({"bypassedSenders": ["nobody"]})),
            "bypassedSenders[0]"
        );
        assert_eq!(
            field(json!({"scannerFailureAction": "Maybe"})),
            "scannerFailureAction"
        );
    }

    #[test]
    fn bypassed_senders_domains_and_recipients() {
        let c = ContentFilterConfig::defaults()
            .patched(&json!({"bypassedSenders": ["Partner@Fabrikam.test"],
                "bypassedSenderDomains": ["tailspin.test", "*.woodgrove.test"],
                "bypassedRecipients": ["abuse@contoso.test"]}))
            .unwrap();
        assert!(c.bypasses_sender("partner@fabrikam.test"));
        assert!(!c.bypasses_sender("other@fabrikam.test"));
        assert!(c.bypasses_sender("a@tailspin.test"));
        assert!(!c.bypasses_sender("a@sub.tailspin.test"));
        assert!(c.bypasses_sender("a@woodgrove.test"));
        assert!(c.bypasses_sender("a@mail.woodgrove.test"));
        assert!(!c.bypasses_sender("a@notwoodgrove.test"));
        assert!(!c.bypasses_sender(""));
        assert!(c.bypasses_recipient("ABUSE@contoso.test"));
    }
}
