//! Edge transport rules (New-/Set-/Remove-TransportRule on an Edge): ordered
//! rules of conditions, exceptions and actions that the Edge Rule agent
//! applies to every message at the end of data. Evaluation here is pure:
//! the agent gives it what it knows of a message (`Facts`) and applies the
//! `Outcome`.
//!
//! Within a rule every condition that is set must hold (AND); within one
//! condition any of its words or patterns may (OR); any exception that
//! holds skips the rule (OR), as in Exchange. Patterns are regular
//! expressions of the `regex` crate: matching takes time linear in the text
//! (no backtracking, no look-around or back-references), each pattern's
//! compiled program is bounded (`PATTERN_PROGRAM_LIMIT`) so that one that
//! would blow up is refused when the rule is written, and the text a rule
//! reads is bounded too (`TEXT_LIMIT`); they are compiled once per
//! configuration snapshot (`Compiled`).

use std::sync::Arc;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{Errors, Invalid};
use super::{check_name, from_json, merge_patch};

/// The compiled size of one pattern, at most.
pub const PATTERN_PROGRAM_LIMIT: usize = 256 * 1024;
/// How much of a body or header a rule reads, at most.
pub const TEXT_LIMIT: usize = 1024 * 1024;

/// Exchange's rule modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
pub enum RuleMode {
    /// The actions are taken.
    #[default]
    Enforce,
    /// Test mode: a match is only logged (tracked as `Audit`).
    Audit,
}

/// Where the sender is, as FromScope sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum FromScope {
    /// Authenticated, from `internalSmtpServers`, or a Hub.
    InOrganization,
    NotInOrganization,
}

/// The predicates of a rule (its conditions, or its exceptions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Predicates {
    /// The envelope sender contains one of these words or phrases.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_words)]
    pub from_address_contains_words: Option<Vec<String>>,
    /// The envelope sender matches one of these patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_patterns)]
    pub from_address_matches_patterns: Option<Vec<String>>,
    /// The sender's domain is one of these (or a subdomain of one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_domains)]
    pub sender_domain_is: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_scope: Option<FromScope>,
    /// A recipient is one of these addresses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_addresses)]
    pub sent_to: Option<Vec<String>>,
    /// A recipient address contains one of these words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_words)]
    pub any_of_recipient_address_contains_words: Option<Vec<String>>,
    /// A recipient address matches one of these patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_patterns)]
    pub any_of_recipient_address_matches_patterns: Option<Vec<String>>,
    /// A recipient's domain is one of these (or a subdomain of one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_domains)]
    pub recipient_domain_is: Option<Vec<String>>,
    /// The header `headerContainsMessageHeader` contains one of
    /// `headerContainsWords`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::header_name)]
    pub header_contains_message_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_words)]
    pub header_contains_words: Option<Vec<String>>,
    /// The header `headerMatchesMessageHeader` matches one of
    /// `headerMatchesPatterns`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::header_name)]
    pub header_matches_message_header: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_patterns)]
    pub header_matches_patterns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_words)]
    pub subject_contains_words: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_patterns)]
    pub subject_matches_patterns: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_words)]
    pub subject_or_body_contains_words: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_patterns)]
    pub subject_or_body_matches_patterns: Option<Vec<String>>,
    /// An attachment's file name matches one of these patterns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_patterns)]
    pub attachment_name_matches_patterns: Option<Vec<String>>,
    /// The SCL is at least this (`SCLOver`); never true of a message
    /// that was not scanned.
    #[serde(default, rename = "sclOver", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1, maximum = 9)]
    pub scl_over: Option<i8>,
    /// The message is larger than this many bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_size_over: Option<u64>,
}

/// What a rule does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Actions {
    /// Put this before the subject (not again when it is there already).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::subject_prefix)]
    pub prepend_subject: Option<String>,
    /// Set header `setHeaderName` to `setHeaderValue`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::header_name)]
    pub set_header_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::header_value)]
    pub set_header_value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::header_name)]
    pub remove_header: Option<String>,
    /// −1 to 9.
    #[serde(default, rename = "setScl", skip_serializing_if = "Option::is_none")]
    #[schema(minimum = -1, maximum = 9)]
    pub set_scl: Option<i8>,
    /// Refuse after DATA: `550 <code> <text>`; code 5.7.1 or 5.7.900–5.7.999.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rejection_code)]
    pub reject_message_enhanced_status_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::optional_reply_text)]
    pub reject_message_reason_text: Option<String>,
    /// Accept and drop, without an NDR.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delete_message: bool,
    /// Deliver to these instead of the recipients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_addresses_100)]
    pub redirect_message_to: Option<Vec<String>>,
    /// Deliver to these as well.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::rule_addresses_100)]
    pub add_to_recipients: Option<Vec<String>>,
    /// Deliver to the Content Filter's quarantine mailbox instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub quarantine: bool,
    /// Record an event with this text (tracking, protocol log).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(schema_with = super::schema::event_text)]
    pub log_event_text: Option<String>,
    /// No rule after this one is evaluated.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stop_rule_processing: bool,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportRule {
    /// Unique.
    #[schema(schema_with = super::schema::object_name)]
    pub name: String,
    /// 0 is evaluated first; priorities are 0..n without gaps.
    pub priority: u32,
    pub enabled: bool,
    pub mode: RuleMode,
    #[serde(default)]
    pub conditions: Predicates,
    #[serde(default)]
    pub exceptions: Predicates,
    pub actions: Actions,
    #[serde(default)]
    pub comments: String,
}

/// The rules, in priority order, as one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TransportRules {
    pub rules: Vec<TransportRule>,
}

fn pattern(p: &str) -> Result<Regex, String> {
    if p.is_empty() || p.len() > 1024 {
        return Err("a pattern must be 1–1024 characters".into());
    }
    RegexBuilder::new(p)
        .case_insensitive(true)
        .size_limit(PATTERN_PROGRAM_LIMIT)
        .dfa_size_limit(PATTERN_PROGRAM_LIMIT)
        .build()
        .map_err(|e| match e {
            regex::Error::CompiledTooBig(_) => format!(
                "the pattern compiles to more than {} KiB: simplify it (bounded repetitions multiply)",
                PATTERN_PROGRAM_LIMIT / 1024
            ),
            e => format!("is not a valid pattern: {}", e.to_string().lines().last().unwrap_or("")),
        })
}

fn domain_ok(d: &str) -> bool {
    d.parse::<super::Domain>().is_ok()
}

fn address_ok(a: &str) -> bool {
    a.rsplit_once('@')
        .is_some_and(|(l, d)| !l.is_empty() && !l.contains(char::is_whitespace) && domain_ok(d))
}

impl Predicates {
    fn validate(&self, at: &str, e: &mut Errors) {
        let words = |e: &mut Errors, f: &str, v: &Option<Vec<String>>| {
            if let Some(v) = v {
                e.check(
                    v.is_empty() || v.len() > 100,
                    &format!("{at}.{f}"),
                    "must list 1–100 entries",
                );
                for (i, w) in v.iter().enumerate() {
                    e.check(
                        w.trim().is_empty()
                            || w.chars().count() > 256
                            || w.chars().any(char::is_control),
                        &format!("{at}.{f}[{i}]"),
                        "must be 1–256 printable characters",
                    );
                }
            }
        };
        let patterns = |e: &mut Errors, f: &str, v: &Option<Vec<String>>| {
            if let Some(v) = v {
                e.check(
                    v.is_empty() || v.len() > 100,
                    &format!("{at}.{f}"),
                    "must list 1–100 patterns",
                );
                for (i, p) in v.iter().enumerate() {
                    if let Err(m) = pattern(p) {
                        e.add(format!("{at}.{f}[{i}]"), m);
                    }
                }
            }
        };
        let domains = |e: &mut Errors, f: &str, v: &Option<Vec<String>>| {
            if let Some(v) = v {
                e.check(v.is_empty(), &format!("{at}.{f}"), "must list a domain");
                for (i, d) in v.iter().enumerate() {
                    e.check(!domain_ok(d), &format!("{at}.{f}[{i}]"), "must be a domain");
                }
            }
        };
        words(
            e,
            "fromAddressContainsWords",
            &self.from_address_contains_words,
        );
        patterns(
            e,
            "fromAddressMatchesPatterns",
            &self.from_address_matches_patterns,
        );
        domains(e, "senderDomainIs", &self.sender_domain_is);
        if let Some(v) = &self.sent_to {
            e.check(
                v.is_empty(),
                &format!("{at}.sentTo"),
                "must list an address",
            );
            for (i, a) in v.iter().enumerate() {
                e.check(
                    !address_ok(a),
                    &format!("{at}.sentTo[{i}]"),
                    "must be an address",
                );
            }
        }
        words(
            e,
            "anyOfRecipientAddressContainsWords",
            &self.any_of_recipient_address_contains_words,
        );
        patterns(
            e,
            "anyOfRecipientAddressMatchesPatterns",
            &self.any_of_recipient_address_matches_patterns,
        );
        domains(e, "recipientDomainIs", &self.recipient_domain_is);
        let header_name = |e: &mut Errors, f: &str, v: &Option<String>, with: bool, other: &str| {
            match v {
                Some(h) => e.check(
                    !header_name_ok(h),
                    &format!("{at}.{f}"),
                    "must be a header field name",
                ),
                None if with => e.joint(
                    format!("{at}.{f}"),
                    &[&format!("{at}.{other}")],
                    format!("is required with {other}"),
                ),
                None => {}
            }
            if v.is_some() && !with {
                e.joint(
                    format!("{at}.{other}"),
                    &[&format!("{at}.{f}")],
                    format!("is required with {f}"),
                );
            }
        };
        header_name(
            e,
            "headerContainsMessageHeader",
            &self.header_contains_message_header,
            self.header_contains_words.is_some(),
            "headerContainsWords",
        );
        words(e, "headerContainsWords", &self.header_contains_words);
        header_name(
            e,
            "headerMatchesMessageHeader",
            &self.header_matches_message_header,
            self.header_matches_patterns.is_some(),
            "headerMatchesPatterns",
        );
        patterns(e, "headerMatchesPatterns", &self.header_matches_patterns);
        words(e, "subjectContainsWords", &self.subject_contains_words);
        patterns(e, "subjectMatchesPatterns", &self.subject_matches_patterns);
        words(
            e,
            "subjectOrBodyContainsWords",
            &self.subject_or_body_contains_words,
        );
        patterns(
            e,
            "subjectOrBodyMatchesPatterns",
            &self.subject_or_body_matches_patterns,
        );
        patterns(
            e,
            "attachmentNameMatchesPatterns",
            &self.attachment_name_matches_patterns,
        );
        if let Some(s) = self.scl_over {
            e.check(
                !(-1..=9).contains(&s),
                &format!("{at}.sclOver"),
                "must be −1 to 9",
            );
        }
    }

    fn is_empty(&self) -> bool {
        self == &Predicates::default()
    }

    /// Whether the message reads the body or its attachments.
    fn reads_body(&self) -> bool {
        self.subject_or_body_contains_words.is_some()
            || self.subject_or_body_matches_patterns.is_some()
            || self.attachment_name_matches_patterns.is_some()
    }
}

/// The actions that end a message's way: at most one of them.
const ENDINGS: &[&str] = &[
    "actions.rejectMessageEnhancedStatusCode",
    "actions.rejectMessageReasonText",
    "actions.deleteMessage",
    "actions.quarantine",
    "actions.redirectMessageTo",
];

/// Every action; a rule takes at least one.
const ACTIONS: &[&str] = &[
    "actions.prependSubject",
    "actions.setHeaderName",
    "actions.setHeaderValue",
    "actions.removeHeader",
    "actions.setScl",
    "actions.rejectMessageEnhancedStatusCode",
    "actions.rejectMessageReasonText",
    "actions.deleteMessage",
    "actions.redirectMessageTo",
    "actions.addToRecipients",
    "actions.quarantine",
    "actions.logEventText",
    "actions.stopRuleProcessing",
];

fn header_name_ok(h: &str) -> bool {
    !h.is_empty() && h.len() <= 128 && h.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

impl Actions {
    fn validate(&self, e: &mut Errors) {
        match (&self.set_header_name, &self.set_header_value) {
            (Some(n), Some(v)) => {
                e.check(
                    !header_name_ok(n),
                    "actions.setHeaderName",
                    "must be a header field name",
                );
                e.check(
                    v.len() > 998 || v.chars().any(char::is_control),
                    "actions.setHeaderValue",
                    "must be at most 998 printable characters",
                );
            }
            (Some(_), None) => e.joint(
                "actions.setHeaderValue",
                &["actions.setHeaderName"],
                "is required with setHeaderName",
            ),
            (None, Some(_)) => e.joint(
                "actions.setHeaderName",
                &["actions.setHeaderValue"],
                "is required with setHeaderValue",
            ),
            (None, None) => {}
        }
        if let Some(h) = &self.remove_header {
            e.check(
                !header_name_ok(h),
                "actions.removeHeader",
                "must be a header field name",
            );
        }
        if let Some(p) = &self.prepend_subject {
            e.check(
                p.is_empty() || p.len() > 256 || p.chars().any(char::is_control),
                "actions.prependSubject",
                "must be 1–256 printable characters",
            );
        }
        if let Some(s) = self.set_scl {
            e.check(!(-1..=9).contains(&s), "actions.setScl", "must be −1 to 9");
        }
        match (
            &self.reject_message_enhanced_status_code,
            &self.reject_message_reason_text,
        ) {
            (None, None) => {}
            (code, text) => {
                let code_ok = code.as_deref().is_none_or(|c| {
                    c == "5.7.1"
                        || c.strip_prefix("5.7.")
                            .and_then(|n| n.parse::<u16>().ok())
                            .is_some_and(|n| (900..=999).contains(&n))
                });
                e.check(
                    !code_ok,
                    "actions.rejectMessageEnhancedStatusCode",
                    "must be 5.7.1 or 5.7.900–5.7.999",
                );
                e.check(
                    text.as_deref().is_some_and(|t| {
                        t.is_empty()
                            || t.len() > 240
                            || !t.chars().all(|c| (' '..='~').contains(&c))
                    }),
                    "actions.rejectMessageReasonText",
                    "must be 1–240 printable ASCII characters",
                );
            }
        }
        for (f, v) in [
            ("redirectMessageTo", &self.redirect_message_to),
            ("addToRecipients", &self.add_to_recipients),
        ] {
            if let Some(v) = v {
                e.check(
                    v.is_empty() || v.len() > 100,
                    &format!("actions.{f}"),
                    "must list 1–100 addresses",
                );
                for (i, a) in v.iter().enumerate() {
                    e.check(
                        !address_ok(a),
                        &format!("actions.{f}[{i}]"),
                        "must be an address",
                    );
                }
            }
        }
        if let Some(t) = &self.log_event_text {
            e.check(
                t.is_empty() || t.len() > 512 || t.chars().any(char::is_control),
                "actions.logEventText",
                "must be 1–512 printable characters",
            );
        }
        let ends = [
            self.rejects(),
            self.delete_message,
            self.quarantine,
            self.redirect_message_to.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if ends > 1 {
            e.joint(
                "actions",
                ENDINGS,
                "reject, deleteMessage, quarantine and redirectMessageTo exclude one another",
            );
        }
        if self == &Actions::default() {
            e.joint("actions", ACTIONS, "a rule needs an action");
        }
    }

    fn rejects(&self) -> bool {
        self.reject_message_enhanced_status_code.is_some()
            || self.reject_message_reason_text.is_some()
    }
}

impl TransportRule {
    /// New-TransportRule: `priority` defaults to after the last rule.
    pub fn from_create(body: &Value, existing: usize) -> Result<TransportRule, Invalid> {
        let mut value = serde_json::json!({
            "priority": existing, "enabled": true, "mode": "Enforce",
        });
        merge_patch(&mut value, body);
        let r: TransportRule = from_json(value)?;
        r.validate()?;
        Ok(r)
    }

    pub fn patched(&self, patch: &Value) -> Result<TransportRule, Invalid> {
        let r: TransportRule = super::apply_patch(self, patch, &[])?;
        r.validate()?;
        Ok(r)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        check_name(&mut e, &self.name, 64);
        self.conditions.validate("conditions", &mut e);
        self.exceptions.validate("exceptions", &mut e);
        self.actions.validate(&mut e);
        e.check(
            self.comments.len() > 1024,
            "comments",
            "must be at most 1024 characters",
        );
        e.finish()
    }
}

impl TransportRules {
    /// Names unique (case-insensitively), priorities 0..n in order.
    pub fn normalized(mut self) -> Result<TransportRules, Invalid> {
        let mut seen = std::collections::HashSet::new();
        for r in &self.rules {
            if !seen.insert(r.name.to_lowercase()) {
                return Err(Invalid::field(
                    "name",
                    format!("a rule named {} exists", r.name),
                ));
            }
        }
        self.rules.sort_by_key(|r| r.priority);
        for (i, r) in self.rules.iter_mut().enumerate() {
            r.priority = i as u32;
        }
        Ok(self)
    }

    /// Puts a rule at its priority (moving the others down), replacing
    /// the rule named `replacing`.
    pub fn placed(
        &self,
        rule: TransportRule,
        replacing: Option<&str>,
    ) -> Result<TransportRules, Invalid> {
        let mut rules: Vec<TransportRule> = self
            .rules
            .iter()
            .filter(|r| replacing.is_none_or(|n| !r.name.eq_ignore_ascii_case(n)))
            .cloned()
            .collect();
        rules.sort_by_key(|r| r.priority);
        let at = (rule.priority as usize).min(rules.len());
        rules.insert(at, rule);
        for (i, r) in rules.iter_mut().enumerate() {
            r.priority = i as u32;
        }
        TransportRules { rules }.normalized()
    }
}

/// A rule's patterns, compiled.
#[derive(Debug)]
struct CompiledPredicates {
    spec: Predicates,
    from: Vec<Regex>,
    recipient: Vec<Regex>,
    header: Vec<Regex>,
    subject: Vec<Regex>,
    subject_or_body: Vec<Regex>,
    attachment: Vec<Regex>,
}

/// The enabled rules of a snapshot, compiled once.
#[derive(Debug, Default)]
pub struct Compiled {
    rules: Vec<(TransportRule, CompiledPredicates, CompiledPredicates)>,
}

impl CompiledPredicates {
    fn new(p: &Predicates) -> Result<CompiledPredicates, String> {
        let all = |v: &Option<Vec<String>>| -> Result<Vec<Regex>, String> {
            v.iter().flatten().map(|p| pattern(p)).collect()
        };
        Ok(CompiledPredicates {
            spec: p.clone(),
            from: all(&p.from_address_matches_patterns)?,
            recipient: all(&p.any_of_recipient_address_matches_patterns)?,
            header: all(&p.header_matches_patterns)?,
            subject: all(&p.subject_matches_patterns)?,
            subject_or_body: all(&p.subject_or_body_matches_patterns)?,
            attachment: all(&p.attachment_name_matches_patterns)?,
        })
    }
}

impl Compiled {
    /// The enabled rules, in order; a rule whose pattern no longer
    /// compiles (stored by an older version) is left out and logged.
    pub fn new(rules: &TransportRules) -> Arc<Compiled> {
        let mut out = vec![];
        for r in rules.rules.iter().filter(|r| r.enabled) {
            match (
                CompiledPredicates::new(&r.conditions),
                CompiledPredicates::new(&r.exceptions),
            ) {
                (Ok(c), Ok(x)) => out.push((r.clone(), c, x)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(rule = %r.name, error = %e, "transport rule left out")
                }
            }
        }
        Arc::new(Compiled { rules: out })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether any rule reads the body or the attachments.
    pub fn reads_body(&self) -> bool {
        self.rules
            .iter()
            .any(|(_, c, x)| c.spec.reads_body() || x.spec.reads_body())
    }
}

/// What the agent knows of a message.
pub struct Facts<'a> {
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// A header's values (unfolded) by name.
    pub header: &'a dyn Fn(&str) -> Vec<String>,
    pub subject: &'a str,
    /// The text of the body parts, decoded (only when a rule reads it).
    pub body_text: &'a str,
    pub attachment_names: &'a [String],
    pub scl: Option<i8>,
    pub size: u64,
    pub in_organization: bool,
}

/// How a message's processing ends, when a rule ends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    Reject { code: String, text: String },
    Delete,
    Quarantine,
}

/// A header edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    PrependSubject(String),
    SetHeader(String, String),
    RemoveHeader(String),
}

/// What the rules decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    pub edits: Vec<Edit>,
    pub scl: Option<i8>,
    /// The recipients when a rule changed them.
    pub recipients: Option<Vec<String>>,
    pub end: Option<End>,
    /// (rule, what it did or, in test mode, would have done).
    pub log: Vec<(String, String)>,
}

/// Whole words (or phrases): case-insensitive, not inside a longer word.
fn contains_word(text: &str, word: &str) -> bool {
    let (text, word) = (text.to_lowercase(), word.to_lowercase());
    let word = word.trim();
    if word.is_empty() {
        return false;
    }
    let boundary = |c: Option<char>| c.is_none_or(|c| !c.is_alphanumeric());
    text.match_indices(word).any(|(i, _)| {
        boundary(text[..i].chars().next_back()) && boundary(text[i + word.len()..].chars().next())
    })
}

fn bounded(s: &str) -> &str {
    if s.len() <= TEXT_LIMIT {
        return s;
    }
    let mut end = TEXT_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn domain_in(address: &str, domains: &[String]) -> bool {
    let Some((_, d)) = address.rsplit_once('@') else {
        return false;
    };
    let d = d.to_ascii_lowercase();
    domains.iter().any(|x| {
        let x = x.to_ascii_lowercase();
        d == x || d.ends_with(&format!(".{x}"))
    })
}

impl CompiledPredicates {
    /// Each predicate that is set, with whether it holds.
    fn results(&self, f: &Facts<'_>) -> Vec<bool> {
        let p = &self.spec;
        let mut r = vec![];
        let any_word =
            |text: &str, words: &[String]| words.iter().any(|w| contains_word(bounded(text), w));
        let any_match = |text: &str, res: &[Regex]| res.iter().any(|re| re.is_match(bounded(text)));
        if let Some(w) = &p.from_address_contains_words {
            r.push(any_word(f.sender, w));
        }
        if p.from_address_matches_patterns.is_some() {
            r.push(any_match(f.sender, &self.from));
        }
        if let Some(d) = &p.sender_domain_is {
            r.push(domain_in(f.sender, d));
        }
        if let Some(s) = p.from_scope {
            r.push(f.in_organization == (s == FromScope::InOrganization));
        }
        if let Some(to) = &p.sent_to {
            r.push(
                f.recipients
                    .iter()
                    .any(|a| to.iter().any(|t| t.eq_ignore_ascii_case(a))),
            );
        }
        if let Some(w) = &p.any_of_recipient_address_contains_words {
            r.push(f.recipients.iter().any(|a| any_word(a, w)));
        }
        if p.any_of_recipient_address_matches_patterns.is_some() {
            r.push(f.recipients.iter().any(|a| any_match(a, &self.recipient)));
        }
        if let Some(d) = &p.recipient_domain_is {
            r.push(f.recipients.iter().any(|a| domain_in(a, d)));
        }
        if let (Some(h), Some(w)) = (&p.header_contains_message_header, &p.header_contains_words) {
            r.push((f.header)(h).iter().any(|v| any_word(v, w)));
        }
        if let Some(h) = &p.header_matches_message_header {
            r.push((f.header)(h).iter().any(|v| any_match(v, &self.header)));
        }
        if let Some(w) = &p.subject_contains_words {
            r.push(any_word(f.subject, w));
        }
        if p.subject_matches_patterns.is_some() {
            r.push(any_match(f.subject, &self.subject));
        }
        if let Some(w) = &p.subject_or_body_contains_words {
            r.push(any_word(f.subject, w) || any_word(f.body_text, w));
        }
        if p.subject_or_body_matches_patterns.is_some() {
            r.push(
                any_match(f.subject, &self.subject_or_body)
                    || any_match(f.body_text, &self.subject_or_body),
            );
        }
        if p.attachment_name_matches_patterns.is_some() {
            r.push(
                f.attachment_names
                    .iter()
                    .any(|n| any_match(n, &self.attachment)),
            );
        }
        if let Some(n) = p.scl_over {
            r.push(f.scl.is_some_and(|s| s >= n));
        }
        if let Some(n) = p.message_size_over {
            r.push(f.size > n);
        }
        r
    }
}

/// Applies the rules to a message, in order.
pub fn evaluate(rules: &Compiled, f: &Facts<'_>) -> Outcome {
    let mut out = Outcome {
        scl: f.scl,
        ..Default::default()
    };
    let mut recipients: Vec<String> = f.recipients.to_vec();
    for (rule, cond, except) in &rules.rules {
        let facts = Facts {
            scl: out.scl,
            recipients: &recipients,
            ..*f
        };
        let holds = cond.results(&facts);
        if holds.iter().any(|b| !b)
            || (!except.spec.is_empty() && except.results(&facts).iter().any(|b| *b))
        {
            continue;
        }
        let a = &rule.actions;
        let mut did = vec![];
        if let Some(p) = &a.prepend_subject {
            did.push(format!("prepend subject \"{p}\""));
        }
        if let (Some(n), Some(v)) = (&a.set_header_name, &a.set_header_value) {
            did.push(format!("set header {n}: {v}"));
        }
        if let Some(h) = &a.remove_header {
            did.push(format!("remove header {h}"));
        }
        if let Some(s) = a.set_scl {
            did.push(format!("set SCL {s}"));
        }
        if let Some(t) = &a.redirect_message_to {
            did.push(format!("redirect to {}", t.join(", ")));
        }
        if let Some(t) = &a.add_to_recipients {
            did.push(format!("add recipients {}", t.join(", ")));
        }
        if a.quarantine {
            did.push("quarantine".into());
        }
        if a.delete_message {
            did.push("delete".into());
        }
        if a.rejects() {
            did.push(format!(
                "reject {}",
                a.reject_message_enhanced_status_code
                    .as_deref()
                    .unwrap_or("5.7.1")
            ));
        }
        if let Some(t) = &a.log_event_text {
            did.push(format!("log \"{t}\""));
        }
        if rule.mode == RuleMode::Audit {
            out.log.push((
                rule.name.clone(),
                format!("test mode, would: {}", did.join("; ")),
            ));
            continue;
        }
        out.log.push((rule.name.clone(), did.join("; ")));
        if let Some(p) = &a.prepend_subject {
            out.edits.push(Edit::PrependSubject(p.clone()));
        }
        if let (Some(n), Some(v)) = (&a.set_header_name, &a.set_header_value) {
            out.edits.push(Edit::SetHeader(n.clone(), v.clone()));
        }
        if let Some(h) = &a.remove_header {
            out.edits.push(Edit::RemoveHeader(h.clone()));
        }
        if let Some(s) = a.set_scl {
            out.scl = Some(s);
        }
        if let Some(t) = &a.redirect_message_to {
            recipients = t.clone();
            out.recipients = Some(recipients.clone());
        }
        if let Some(t) = &a.add_to_recipients {
            for x in t {
                if !recipients.iter().any(|r| r.eq_ignore_ascii_case(x)) {
                    recipients.push(x.clone());
                }
            }
            out.recipients = Some(recipients.clone());
        }
        if a.rejects() {
            out.end = Some(End::Reject {
                code: a
                    .reject_message_enhanced_status_code
                    .clone()
                    .unwrap_or_else(|| "5.7.1".into()),
                text: a
                    .reject_message_reason_text
                    .clone()
                    .unwrap_or_else(|| "Delivery not authorized, message refused".into()),
            });
        } else if a.delete_message {
            out.end = Some(End::Delete);
        } else if a.quarantine {
            out.end = Some(End::Quarantine);
        }
        if out.end.is_some() || a.stop_rule_processing {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests;
