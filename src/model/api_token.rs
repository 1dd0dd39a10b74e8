//! Named API tokens and the roles they carry, after Exchange's management
//! role groups: View-Only Organization Management, a recipient/queue
//! operator, and Organization Management.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a token may do. Each role includes the ones before it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
pub enum ApiRole {
    /// Every GET except raw message bodies and the tokens themselves;
    /// no secret is readable through any GET.
    #[serde(rename = "View-Only")]
    ViewOnly,
    /// View-Only, plus the queues and messages: retry, suspend, resume,
    /// remove, resubmit, and the raw bodies of queued messages.
    Operator,
    /// Everything, API tokens included.
    Administrator,
}

impl ApiRole {
    pub fn as_str(self) -> &'static str {
        match self {
            ApiRole::ViewOnly => "View-Only",
            ApiRole::Operator => "Operator",
            ApiRole::Administrator => "Administrator",
        }
    }

    pub const ALL: [ApiRole; 3] = [ApiRole::ViewOnly, ApiRole::Operator, ApiRole::Administrator];
}

impl std::str::FromStr for ApiRole {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ApiRole::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("'{s}' is not a role: View-Only, Operator or Administrator"))
    }
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiToken {
    pub id: uuid::Uuid,
    /// Unique, case-insensitively; it names the caller in the audit log.
    pub name: String,
    pub role: ApiRole,
    /// The token made at first start (or given with `--admin-token`).
    pub bootstrap: bool,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; none: it does not expire.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// RFC 3339; a revoked token stays listed and is refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// RFC 3339, to the minute.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    /// The client address of its last use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_used_from: Option<String>,
    /// The SHA-256 thumbprint (hex) of the client certificate that stands
    /// for this token over HTTPS (mutual TLS), if one is bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate_sha256: Option<String>,
    /// `Active`, `Expired` or `Revoked`.
    pub state: String,
}
