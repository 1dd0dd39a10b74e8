//! The outbound client's policy: how to talk to a next hop, from a send
//! connector (TLS required or opportunistic and validated against which
//! roots, AUTH and its credential, source address, HELO, protocol log) or
//! for a mailbox domain's mail store (LMTP or SMTP).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{ClientConfig, ClientObserve, TlsPolicy, Verify};
use crate::config::Snapshot;
use crate::model::send_connector::TlsAuthLevel;
use crate::model::{CredentialKind, ProtocolLoggingLevel, SendConnector, SmartHostAuthMechanism};
use crate::observe::Observer;
use crate::secrets::SecretBox;
use crate::tls::roots::trust_roots;

/// How to talk to the next hops of a send connector. Fails when the
/// connector's credential is missing or cannot be opened.
pub fn for_connector(
    snap: &Snapshot,
    spec: &SendConnector,
    secrets: &SecretBox,
    host_source_ip: Option<IpAddr>,
    observer: &Arc<Observer>,
) -> anyhow::Result<ClientConfig> {
    let roots = || trust_roots(snap);
    let tls = if spec.ignore_starttls {
        TlsPolicy::Ignore
    } else if spec.smart_host_auth_mechanism == SmartHostAuthMechanism::BasicAuthRequireTls {
        TlsPolicy::Required(Verify::ChainAndName(roots()))
    } else if spec.require_tls {
        TlsPolicy::Required(match spec.tls_auth_level {
            None | Some(TlsAuthLevel::EncryptionOnly) => Verify::Nothing,
            Some(TlsAuthLevel::CertificateValidation) => Verify::Chain(roots()),
            Some(TlsAuthLevel::DomainValidation) => Verify::ChainAndName(roots()),
        })
    } else {
        TlsPolicy::Opportunistic
    };
    let auth = if spec.smart_host_auth_mechanism.needs_credential() {
        let name = spec
            .authentication_credential
            .as_deref()
            .unwrap_or_default();
        let cred = snap
            .credentials
            .iter()
            .find(|k| {
                k.spec.kind == CredentialKind::SmartHost && k.spec.name.eq_ignore_ascii_case(name)
            })
            .ok_or_else(|| anyhow::anyhow!("credential {name} is missing"))?;
        let password = secrets.open(
            &cred.id.to_string(),
            cred.secret.as_deref().unwrap_or_default(),
        )?;
        Some((
            cred.spec.user_name.clone(),
            String::from_utf8_lossy(&password).into_owned(),
        ))
    } else {
        None
    };
    Ok(ClientConfig {
        helo_name: snap.effective_fqdn(&spec.fqdn).to_string(),
        force_helo: spec.force_helo,
        lmtp: false,
        tls,
        auth,
        auth_requires_tls: spec.smart_host_auth_mechanism
            == SmartHostAuthMechanism::BasicAuthRequireTls,
        timeout: spec.connection_inactivity_timeout.duration(),
        source_ip: spec.source_ip_address.or(host_source_ip),
        observe: Some(ClientObserve {
            observer: observer.clone(),
            connector: spec.name.clone(),
            verbose: spec.protocol_logging_level == ProtocolLoggingLevel::Verbose,
        }),
    })
}

/// How to talk to a mailbox domain's mail store: LMTP without TLS (a
/// local store), or SMTP with opportunistic STARTTLS.
pub fn for_mail_store(
    snap: &Snapshot,
    domain: &str,
    lmtp: bool,
    host_source_ip: Option<IpAddr>,
    observer: &Arc<Observer>,
) -> ClientConfig {
    ClientConfig {
        helo_name: snap.ctx.fqdn.to_string(),
        force_helo: false,
        lmtp,
        tls: if lmtp {
            TlsPolicy::Ignore
        } else {
            TlsPolicy::Opportunistic
        },
        auth: None,
        auth_requires_tls: false,
        timeout: Duration::from_secs(60),
        source_ip: host_source_ip,
        observe: Some(ClientObserve {
            observer: observer.clone(),
            connector: format!("Mailbox delivery {domain}"),
            verbose: false,
        }),
    }
}
