//! The outbound client's policy from a send connector: TLS (opportunistic,
//! required, validated against which roots), AUTH, source address, HELO.

use super::*;
use crate::tls::roots::trust_roots;

impl DeliveryEngine {
    pub(super) fn client_config(
        &self,
        snap: &Snapshot,
        c: &Stored<SendConnector>,
    ) -> anyhow::Result<ClientConfig> {
        let spec = &c.spec;
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
                    k.spec.kind == CredentialKind::SmartHost
                        && k.spec.name.eq_ignore_ascii_case(name)
                })
                .ok_or_else(|| anyhow::anyhow!("credential {name} is missing"))?;
            let password = self.config.secrets.open(
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
            source_ip: spec.source_ip_address.or(self.source_ip),
            observe: Some(ClientObserve {
                observer: self.observe.clone(),
                connector: spec.name.clone(),
                verbose: spec.protocol_logging_level == ProtocolLoggingLevel::Verbose,
            }),
        })
    }
}

pub(super) fn hop_is_lmtp(snap: &Snapshot, domain: &str) -> bool {
    snap.accepted_domains
        .iter()
        .find(|d| d.spec.domain_name.domain().as_str() == domain)
        .is_some_and(|d| {
            matches!(
                d.spec.mailbox_delivery,
                Some(crate::model::MailboxDelivery::Lmtp { .. })
            )
        })
}
