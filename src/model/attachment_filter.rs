//! The Attachment Filter agent's configuration (Set-AttachmentFilterListConfig
//! and Add-/Remove-AttachmentFilterEntry): which attachments are unwanted,
//! by file name (wildcards `*` and `?`) or MIME content type, and what
//! happens to a message that carries one.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{Errors, Invalid};

/// What an entry matches on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AttachmentFilterType {
    FileName,
    ContentType,
}

/// One entry; its identity is `<type>:<name>`, as Exchange writes it
/// (`FileName:*.exe`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentFilterEntry {
    #[serde(rename = "type")]
    pub type_: AttachmentFilterType,
    /// A file name pattern (`*.exe`, `invoice?.pdf.js`) or a content type
    /// (`application/x-msdownload`), compared case-insensitively.
    #[schema(schema_with = super::schema::printable_name)]
    pub name: String,
}

impl AttachmentFilterEntry {
    pub fn identity(&self) -> String {
        let t = match self.type_ {
            AttachmentFilterType::FileName => "FileName",
            AttachmentFilterType::ContentType => "ContentType",
        };
        format!("{t}:{}", self.name)
    }

    /// Whether an attachment with this file name and content type matches.
    pub fn matches(&self, file_name: Option<&str>, content_type: &str) -> bool {
        match self.type_ {
            AttachmentFilterType::FileName => {
                file_name.is_some_and(|n| wildcard(&self.name.to_lowercase(), &n.to_lowercase()))
            }
            AttachmentFilterType::ContentType => self.name.eq_ignore_ascii_case(content_type),
        }
    }
}

/// `*` any run of characters, `?` one character; iterative, so no pattern
/// can make it take more than length × length steps.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// What happens to a message with an unwanted attachment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum AttachmentFilterAction {
    /// `550 5.7.1 <rejectResponse>` after DATA.
    Reject,
    /// The attachment is replaced by a text part with `adminMessage`; the
    /// rest of the message is delivered.
    Strip,
    /// Accepted (250) and dropped, without an NDR.
    SilentDelete,
}

/// Set-AttachmentFilterListConfig, with the entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AttachmentFilterConfig {
    pub action: AttachmentFilterAction,
    /// The reply text of Reject (≤ 240 printable ASCII).
    #[schema(schema_with = super::schema::reply_text)]
    pub reject_response: String,
    /// The text of the part that replaces a stripped attachment.
    #[schema(min_length = 1, max_length = 1024)]
    pub admin_message: String,
    /// Receive connectors (by name) whose mail is not filtered.
    #[serde(default)]
    pub exception_connectors: Vec<String>,
    pub entries: Vec<AttachmentFilterEntry>,
}

/// Exchange's default entries: the file types that run code on Windows,
/// and the content types that carry scripts.
const DEFAULT_FILE_NAMES: &[&str] = &[
    "*.ade",
    "*.adp",
    "*.app",
    "*.asx",
    "*.bas",
    "*.bat",
    "*.chm",
    "*.cmd",
    "*.com",
    "*.cpl",
    "*.crt",
    "*.csh",
    "*.exe",
    "*.fxp",
    "*.hlp",
    "*.hta",
    "*.inf",
    "*.ins",
    "*.isp",
    "*.js",
    "*.jse",
    "*.ksh",
    "*.lnk",
    "*.mda",
    "*.mdb",
    "*.mde",
    "*.mdt",
    "*.mdw",
    "*.mdz",
    "*.msc",
    "*.msi",
    "*.msp",
    "*.mst",
    "*.ops",
    "*.pcd",
    "*.pif",
    "*.prf",
    "*.prg",
    "*.ps1",
    "*.ps11",
    "*.ps11xml",
    "*.ps1xml",
    "*.ps2",
    "*.ps2xml",
    "*.psc1",
    "*.psc2",
    "*.reg",
    "*.scf",
    "*.scr",
    "*.sct",
    "*.shb",
    "*.shs",
    "*.tmp",
    "*.url",
    "*.vb",
    "*.vbe",
    "*.vbs",
    "*.vsmacros",
    "*.vss",
    "*.vst",
    "*.vsw",
    "*.ws",
    "*.wsc",
    "*.wsf",
    "*.wsh",
    "*.xnk",
];
const DEFAULT_CONTENT_TYPES: &[&str] = &[
    "application/x-msdownload",
    "message/partial",
    "text/scriptlet",
    "application/prg",
    "application/msaccess",
    "text/javascript",
    "application/x-javascript",
    "application/javascript",
    "x-internet-signup",
    "application/hta",
];

impl AttachmentFilterConfig {
    pub fn defaults() -> AttachmentFilterConfig {
        let entries = DEFAULT_CONTENT_TYPES
            .iter()
            .map(|c| (AttachmentFilterType::ContentType, *c))
            .chain(
                DEFAULT_FILE_NAMES
                    .iter()
                    .map(|f| (AttachmentFilterType::FileName, *f)),
            )
            .map(|(type_, name)| AttachmentFilterEntry {
                type_,
                name: name.to_string(),
            })
            .collect();
        AttachmentFilterConfig {
            action: AttachmentFilterAction::Strip,
            reject_response: "Message rejected due to unacceptable attachments".into(),
            admin_message: "This attachment was removed.".into(),
            exception_connectors: vec![],
            entries,
        }
    }

    pub fn patched(&self, patch: &Value) -> Result<AttachmentFilterConfig, Invalid> {
        let c: AttachmentFilterConfig = super::apply_patch(self, patch, &[])?;
        c.validate()?;
        Ok(c)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        let mut e = Errors::default();
        e.check(
            self.reject_response.is_empty()
                || self.reject_response.len() > 240
                || !self
                    .reject_response
                    .chars()
                    .all(|c| (' '..='~').contains(&c)),
            "rejectResponse",
            "must be 1–240 printable ASCII characters",
        );
        e.check(
            self.admin_message.is_empty() || self.admin_message.chars().count() > 1024,
            "adminMessage",
            "must be 1–1024 characters",
        );
        let mut seen = std::collections::HashSet::new();
        for (i, entry) in self.entries.iter().enumerate() {
            let bad = entry.name.trim().is_empty()
                || entry.name.chars().count() > 256
                || entry.name.chars().any(|c| c.is_control());
            e.check(
                bad,
                &format!("entries[{i}].name"),
                "must be 1–256 printable characters",
            );
            e.check(
                !seen.insert(entry.identity().to_lowercase()),
                &format!("entries[{i}]"),
                format!("{} is listed twice", entry.identity()),
            );
        }
        e.finish()
    }

    /// The first entry an attachment matches.
    pub fn unwanted(
        &self,
        file_name: Option<&str>,
        content_type: &str,
    ) -> Option<&AttachmentFilterEntry> {
        self.entries
            .iter()
            .find(|e| e.matches(file_name, content_type))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_file_patterns_do_and_cannot_blow_up() {
        assert!(wildcard("*.exe", "setup.exe"));
        assert!(wildcard("*.exe", ".exe"));
        assert!(!wildcard("*.exe", "setup.exe.txt"));
        assert!(wildcard("invoice?.pdf.*", "invoice1.pdf.js"));
        assert!(!wildcard("invoice?.pdf.*", "invoice12.pdf.js"));
        assert!(wildcard("*", ""));
        let long = "a".repeat(5000);
        let started = std::time::Instant::now();
        assert!(!wildcard(&format!("{}b", "*a".repeat(200)), &long));
        assert!(started.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn the_defaults_catch_programs_and_scripts_by_name_and_type() {
        let c = AttachmentFilterConfig::defaults();
        c.validate().unwrap();
        assert!(
            c.unwanted(Some("Setup.EXE"), "application/octet-stream")
                .is_some()
        );
        assert!(c.unwanted(None, "application/x-msdownload").is_some());
        assert!(c.unwanted(Some("report.pdf"), "application/pdf").is_none());
        let dup = c.patched(&serde_json::json!({"entries": [
            {"type": "FileName", "name": "*.exe"}, {"type": "FileName", "name": "*.EXE"}]}));
        assert_eq!(dup.unwrap_err().0[0].field, "entries[1]");
    }
}
