//! The Sender Id agent's configuration (Set-SenderIdConfig, modernised):
//! Exchange's agent checked Sender ID; Ferry's checks SPF (RFC 7208) on the
//! MAIL FROM and HELO identities, every DKIM signature (RFC 6376), the ARC
//! chain (RFC 8617) and DMARC (RFC 9989) with `mail-auth`, writes one
//! `Authentication-Results` header (RFC 8601) and acts on the verdicts.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{Errors, Invalid};
use super::{IpRange, Timespan};

/// What an SPF `fail` (Exchange's "spoofed domain") gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum SpoofedDomainAction {
    /// Recorded in Authentication-Results only (Exchange's default).
    #[default]
    StampStatus,
    /// `550 5.7.23` after DATA (RFC 7372).
    Reject,
    /// Accepted and dropped.
    Delete,
}

/// What an SPF `temperror` gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum TempErrorAction {
    #[default]
    StampStatus,
    /// `451 4.7.24`: the client tries again later (RFC 7372).
    Reject,
    Delete,
}

/// Set-SenderIdConfig.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SenderIdConfig {
    pub enabled: bool,
    pub external_mail_enabled: bool,
    pub internal_mail_enabled: bool,
    pub spoofed_domain_action: SpoofedDomainAction,
    pub temp_error_action: TempErrorAction,
    /// Act on the sender domain's DMARC policy: `p=reject` is refused
    /// (`550 5.7.1`), `p=quarantine` goes to the Content Filter's quarantine
    /// mailbox (or, without one, is stamped at the junk threshold). Off:
    /// the verdict is only recorded.
    pub dmarc_honor_policy: bool,
    /// Mail to these addresses is checked and stamped, never refused.
    #[serde(default)]
    #[schema(schema_with = super::schema::email_addresses)]
    pub bypassed_recipients: Vec<String>,
    /// Mail from these domains (`*.domain`: and subdomains) is not checked.
    #[serde(default)]
    #[schema(schema_with = super::schema::domains_or_wildcards)]
    pub bypassed_sender_domains: Vec<String>,
    /// Forwarders whose mail fails SPF and DMARC by design: checked and
    /// stamped, never refused.
    #[serde(default)]
    pub trusted_forwarders: Vec<IpRange>,
    /// ARC sealers whose passing chain overrides a DMARC failure (a mailing
    /// list or forwarder that verified the mail before changing it).
    #[serde(default)]
    #[schema(schema_with = super::schema::domains)]
    pub trusted_arc_sealers: Vec<String>,
    /// The `authserv-id` of the Authentication-Results header; the
    /// server's FQDN when null.
    #[serde(default)]
    #[schema(schema_with = super::schema::authserv_id)]
    pub authserv_id: Option<String>,
    /// How long all the DNS lookups of one message may take (1–30 s);
    /// past it the verdicts are `temperror`.
    #[schema(schema_with = super::schema::timespan_1s_30s)]
    pub dns_timeout: Timespan,
    /// DMARC aggregate reports (RFC 7489 §7.2): the evaluations of inbound
    /// mail are recorded and, once a day (UTC), sent through the queue to
    /// the `rua` addresses of each domain evaluated. Off by default.
    /// Failure reports (`ruf`) are never sent: they carry message content.
    #[serde(default)]
    pub dmarc_reports_enabled: bool,
    /// The From (and MAIL FROM) of the reports; the postmaster address when
    /// null. Reports are DKIM-signed with its domain's active key.
    #[serde(default)]
    #[schema(schema_with = super::schema::optional_email_address)]
    pub dmarc_report_address: Option<String>,
    /// `org_name` in the reports; the server's FQDN when null.
    #[serde(default)]
    #[schema(schema_with = super::schema::org_name)]
    pub dmarc_report_org_name: Option<String>,
}

impl SenderIdConfig {
    pub fn defaults() -> SenderIdConfig {
        SenderIdConfig {
            enabled: true,
            external_mail_enabled: true,
            internal_mail_enabled: false,
            spoofed_domain_action: SpoofedDomainAction::StampStatus,
            temp_error_action: TempErrorAction::StampStatus,
            dmarc_honor_policy: true,
            bypassed_recipients: vec![],
            bypassed_sender_domains: vec![],
            trusted_forwarders: vec![],
            trusted_arc_sealers: vec![],
            authserv_id: None,
            dns_timeout: Timespan::from_secs(5),
            dmarc_reports_enabled: false,
            dmarc_report_address: None,
            dmarc_report_org_name: None,
        }
    }

    pub fn patched(&self, patch: &Value) -> Result<SenderIdConfig, Invalid> {
        let c: SenderIdConfig = super::apply_patch(self, patch, &[])?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        let domain = |d: &str| d.parse::<super::Domain>().is_ok();
        for (i, d) in self.bypassed_sender_domains.iter().enumerate() {
            e.check(
                !domain(d.strip_prefix("*.").unwrap_or(d)),
                &format!("bypassedSenderDomains[{i}]"),
                "must be a domain or *.domain",
            );
        }
        for (i, d) in self.trusted_arc_sealers.iter().enumerate() {
            e.check(
                !domain(d),
                &format!("trustedArcSealers[{i}]"),
                "must be a domain",
            );
        }
        for (i, a) in self.bypassed_recipients.iter().enumerate() {
            e.check(
                !a.rsplit_once('@')
                    .is_some_and(|(l, d)| !l.is_empty() && domain(d)),
                &format!("bypassedRecipients[{i}]"),
                "must be an address",
            );
        }
        if let Some(id) = &self.authserv_id {
            e.check(
                id.is_empty()
                    || id.len() > 255
                    || !id.bytes().all(|b| b.is_ascii_graphic() && b != b';'),
                "authservId",
                "must be a host name (printable, no ';')",
            );
        }
        if let Some(a) = &self.dmarc_report_address {
            e.check(
                super::Address::parse(a.as_str()).map_or(true, |a| a.domain().is_none()),
                "dmarcReportAddress",
                "must be an address",
            );
        }
        if let Some(n) = &self.dmarc_report_org_name {
            e.check(
                n.trim().is_empty() || n.chars().count() > 255 || n.chars().any(char::is_control),
                "dmarcReportOrgName",
                "must be 1 to 255 printable characters",
            );
        }
        let t = self.dns_timeout.duration();
        e.check(
            t < std::time::Duration::from_secs(1) || t > std::time::Duration::from_secs(30),
            "dnsTimeout",
            "must be 00:00:01 to 00:00:30",
        );
        e.finish()
    }

    pub fn bypasses_sender(&self, domain: &str) -> bool {
        let domain = domain.to_ascii_lowercase();
        self.bypassed_sender_domains.iter().any(|d| {
            let d = d.to_ascii_lowercase();
            match d.strip_prefix("*.") {
                Some(p) => domain == p || domain.ends_with(&format!(".{p}")),
                None => domain == d,
            }
        })
    }

    pub fn trusts_sealer(&self, domain: &str) -> bool {
        self.trusted_arc_sealers
            .iter()
            .any(|d| d.eq_ignore_ascii_case(domain))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_validation_and_bypass() {
        let c = SenderIdConfig::defaults();
        c.validate().unwrap();
        let bad = |v: Value| c.patched(&v).unwrap_err().0[0].field.clone();
        assert_eq!(bad(json!({"dnsTimeout": "00:01:00"})), "dnsTimeout");
        assert_eq!(
            bad(json!({"spoofedDomainAction": "Bounce"})),
            "spoofedDomainAction"
        );
        assert_eq!(
            bad(json!({"trustedArcSealers": ["lists.test", "no way"]})),
            "trustedArcSealers[1]"
        );
        assert_eq!(bad(json!({"authservId": "a;b"})), "authservId");
        assert_eq!(
            bad(json!({"dmarcReportAddress": "nobody"})),
            "dmarcReportAddress"
        );
        assert_eq!(
            bad(json!({"dmarcReportOrgName": " "})),
            "dmarcReportOrgName"
        );
        assert_eq!(
            bad(json!({"trustedForwarders": ["not an ip"]})),
            "trustedForwarders[0]"
        );
        let c = c
            .patched(&json!({"bypassedSenderDomains": ["*.partner.test"], "trustedArcSealers": ["Lists.Test"]}))
            .unwrap();
        assert!(c.bypasses_sender("mail.partner.test") && c.bypasses_sender("partner.test"));
        assert!(!c.bypasses_sender("otherpartner.test"));
        assert!(c.trusts_sealer("lists.test"));
    }
}
