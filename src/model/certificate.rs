//! The stored shape of a certificate: its PEM chain, what kind it is, and an
//! optional friendly name. Parsing and key handling live in `tls/`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub enum CertificateKind {
    /// A certificate with its private key, presented by Ferry.
    Certificate,
    /// A peer's or CA's certificate, without a key, trusted for outbound TLS.
    TrustAnchor,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CertificateRecord {
    pub kind: CertificateKind,
    pub friendly_name: Option<String>,
    /// The end-entity certificate first, then its chain, in PEM.
    pub chain_pem: String,
    /// The ACME certificate (`/api/v1/acme-certificates`) that issued it:
    /// Ferry renews it, and removes it once its successor is stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(read_only)]
    pub acme: Option<String>,
}
