//! What the API returns: stored objects with their identity, version and
//! derived facts. Secrets never appear in any of these types.

use serde::Serialize;
use std::collections::BTreeMap;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::config::Snapshot;
use crate::model::{
    AcceptedDomain, AuthMechanism, CertificateKind, CertificateRecord, Credential, ExtendedRight,
    Principal, ReceiveConnector, Role, SendConnector, TransportSettings,
};
use crate::store::Stored;
use crate::tls::certs::CertificateInfo;

/// Identity and version of a stored object.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub id: Uuid,
    /// Increases on every change; sent as the ETag, expected in If-Match.
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl<T> From<&Stored<T>> for Meta {
    fn from(s: &Stored<T>) -> Self {
        Meta {
            id: s.id,
            version: s.version,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

/// A list of objects.
#[derive(Debug, Serialize, ToSchema)]
pub struct List<T> {
    pub items: Vec<T>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReceiveConnectorView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub connector: ReceiveConnector,
    /// The rights each principal holds here: groups plus explicit entries.
    pub effective_rights: BTreeMap<Principal, Vec<ExtendedRight>>,
    /// `fqdn`, or the server's FQDN when that is null.
    pub effective_fqdn: String,
    /// Thumbprint of the certificate STARTTLS would present, if any.
    pub tls_certificate: Option<String>,
    /// Things that are allowed but probably not what the admin wants.
    pub warnings: Vec<String>,
    /// Whether each binding is listening, and the OS error if not.
    pub listeners: Vec<crate::smtp::server::ListenerStatus>,
}

pub fn receive_view(
    snap: &Snapshot,
    smtp: &crate::smtp::server::SmtpServer,
    s: &Stored<ReceiveConnector>,
) -> ReceiveConnectorView {
    let c = &s.spec;
    let fqdn = snap.effective_fqdn(&c.fqdn);
    let cert = snap.select_certificate(fqdn, c.tls_certificate_name.as_deref());
    let mut warnings = vec![];
    if c.auth_mechanism.has(AuthMechanism::Tls) && cert.is_none() {
        warnings.push(format!(
            "no valid certificate with a private key covers '{fqdn}': STARTTLS will not be offered \
             (import or generate one for that name)"
        ));
    }
    if c.auth_mechanism.has(AuthMechanism::Integrated)
        || c.auth_mechanism.has(AuthMechanism::ExchangeServer)
    {
        warnings.push(
            "'Integrated' and 'ExchangeServer' need Active Directory and are not offered by Ferry; \
             use BasicAuth over TLS or mutual TLS"
                .into(),
        );
    }
    if c.unauthenticated_relay() {
        let cov = crate::model::ip_range::Coverage::of(&c.remote_ip_ranges);
        if cov.is_very_wide() {
            warnings.push(format!(
                "unauthenticated clients may relay from ranges wider than a /8 (IPv4) or /32 (IPv6): \
                 {}. Narrow remoteIpRanges to the hosts that must relay",
                cov.describe()
            ));
        }
    }
    warnings.extend(captures(snap, s));
    ReceiveConnectorView {
        meta: s.into(),
        effective_rights: c.rights(),
        effective_fqdn: fqdn.to_string(),
        tls_certificate: cert.map(|(_, i)| i.sha256_fingerprint.clone()),
        warnings,
        listeners: smtp.status(snap, c),
        connector: c.clone(),
    }
}

/// Beyond this many ranges on either side the capture lint is skipped: it
/// compares every pair, and a list that long is a block or allow list, not
/// the handful of Hub or Edge addresses it is about.
const CAPTURE_LINT_MAX_RANGES: usize = 256;

/// A receive connector that would take clients another connector serves as
/// Hubs or Edges (ExchangeServers, or ExternalAuthoritative): one of its
/// ranges lies inside one of theirs on a binding both cover, and the
/// smaller range wins (spec §2.1). Exchange admins meet this as mail from a
/// Hub suddenly refused or unauthenticated (spec §4).
fn captures(snap: &Snapshot, s: &Stored<ReceiveConnector>) -> Vec<String> {
    use crate::model::{AuthMechanism, PermissionGroup};
    let c = &s.spec;
    if !c.enabled || c.remote_ip_ranges.len() > CAPTURE_LINT_MAX_RANGES {
        return vec![];
    }
    let mut out = vec![];
    for o in &snap.receive_connectors {
        let oc = &o.spec;
        let servers = oc.permission_groups.has(PermissionGroup::ExchangeServers)
            || oc.auth_mechanism.has(AuthMechanism::ExternalAuthoritative);
        if o.id == s.id
            || !oc.enabled
            || !servers
            || oc.remote_ip_ranges.len() > CAPTURE_LINT_MAX_RANGES
        {
            continue;
        }
        // A local address both answer on: the same port, and the same
        // address or a wildcard of its family on either side.
        let shared = c.bindings.iter().any(|a| {
            oc.bindings
                .iter()
                .any(|b| a.covers(b.socket_addr()) || b.covers(a.socket_addr()))
        });
        if !shared {
            continue;
        }
        for mine in &c.remote_ip_ranges {
            if let Some(theirs) = oc
                .remote_ip_ranges
                .iter()
                .find(|t| t.contains(mine) && t.span() > mine.span())
            {
                out.push(format!(
                    "takes the clients in {mine} that '{}' serves as Hubs or Edges (its range {theirs}): \
                     the smaller remote range wins, so they would land here instead",
                    oc.name
                ));
            }
        }
    }
    out
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SendConnectorView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub connector: SendConnector,
    /// Things that are allowed but probably not what the admin wants: out
    /// of scope on this server, an address space another connector takes.
    pub warnings: Vec<String>,
}

pub fn send_view(snap: &Snapshot, s: &Stored<SendConnector>) -> SendConnectorView {
    SendConnectorView {
        meta: s.into(),
        connector: s.spec.clone(),
        warnings: crate::routing::send_connector_lints(snap, s),
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AcceptedDomainView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub domain: AcceptedDomain,
    /// Things that are allowed but probably not what the admin wants.
    pub warnings: Vec<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub credential: Credential,
    /// Always true: a password is stored. It is never returned.
    pub password_set: bool,
    /// Logins: the addresses it sends as now, primary first (its own, or
    /// its directory recipient's).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_as: Option<Vec<String>>,
    /// Things that are allowed but probably not what the admin wants.
    pub warnings: Vec<String>,
}

/// Which connector uses a certificate, and how.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateUse {
    /// `ReceiveConnector` or `SendConnector`.
    pub connector_type: String,
    pub connector: String,
    /// `Pinned` (tlsCertificateName) or `Fqdn` (selected by the connector's FQDN).
    pub how: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateView {
    #[serde(flatten)]
    pub meta: Meta,
    pub kind: CertificateKind,
    pub friendly_name: Option<String>,
    /// The ACME certificate (`/api/v1/acme-certificates`) that issued and
    /// renews it, if any.
    pub acme: Option<String>,
    #[serde(flatten)]
    pub info: CertificateInfo,
    /// The chain in PEM (public); the private key is never returned.
    pub certificate_pem: String,
    pub has_private_key: bool,
    pub expired: bool,
    pub used_by: Vec<CertificateUse>,
}

pub fn certificate_uses(snap: &Snapshot, cert: &Stored<CertificateRecord>) -> Vec<CertificateUse> {
    let mut uses = vec![];
    let Some(info) = snap.certificate_info.get(&cert.id) else {
        return uses;
    };
    for rc in &snap.receive_connectors {
        let c = &rc.spec;
        if c.tls_certificate_name.as_deref() == Some(&info.tls_certificate_name) {
            uses.push(CertificateUse {
                connector_type: "ReceiveConnector".into(),
                connector: c.name.clone(),
                how: "Pinned".into(),
            });
        } else if c.tls_certificate_name.is_none()
            && c.auth_mechanism.has(AuthMechanism::Tls)
            && snap
                .select_certificate(snap.effective_fqdn(&c.fqdn), None)
                .is_some_and(|(s, _)| s.id == cert.id)
        {
            uses.push(CertificateUse {
                connector_type: "ReceiveConnector".into(),
                connector: c.name.clone(),
                how: "Fqdn".into(),
            });
        }
    }
    for sc in &snap.send_connectors {
        if sc.spec.tls_certificate_name.as_deref() == Some(&info.tls_certificate_name) {
            uses.push(CertificateUse {
                connector_type: "SendConnector".into(),
                connector: sc.spec.name.clone(),
                how: "Pinned".into(),
            });
        }
    }
    uses
}

pub fn certificate_view(snap: &Snapshot, s: &Stored<CertificateRecord>) -> CertificateView {
    let info = snap
        .certificate_info
        .get(&s.id)
        .cloned()
        .expect("every stored certificate parses");
    let now = OffsetDateTime::now_utc();
    CertificateView {
        meta: s.into(),
        kind: s.spec.kind,
        friendly_name: s.spec.friendly_name.clone(),
        acme: s.spec.acme.clone(),
        expired: info.not_after < now,
        info,
        certificate_pem: s.spec.chain_pem.clone(),
        has_private_key: s.secret.is_some(),
        used_by: certificate_uses(snap, s),
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransportSettingsView {
    pub version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    pub role: Role,
    pub server_name: String,
    #[serde(flatten)]
    pub settings: TransportSettings,
    /// The postmaster address in force (DSN sender).
    pub effective_postmaster_address: String,
}
