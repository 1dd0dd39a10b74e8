//! Inbound TLS: a rustls server configuration per receive connector, built
//! from the certificate store of one configuration snapshot and cached until
//! the next one. The connector's FQDN picks the certificate (spec rule 11);
//! a client's SNI picks another stored certificate when one covers that name.

use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use uuid::Uuid;

use super::certs::{self, CertificateInfo};
use crate::config::Snapshot;
use crate::model::{CertificateKind, Domain};
use crate::secrets::SecretBox;

/// Server configs built so far, by (connector FQDN, pinned certificate).
type ConfigCache = Mutex<HashMap<ConfigKey, Option<Arc<ServerConfig>>>>;

/// (FQDN, pinned certificate, client certificates asked for).
type ConfigKey = (String, Option<String>, bool);

/// Every certificate with a usable key in one snapshot.
struct KeyStore {
    generation: u64,
    keys: HashMap<Uuid, (CertificateInfo, Arc<CertifiedKey>)>,
    /// Server configs already built, by (connector fqdn, pin).
    configs: ConfigCache,
}

/// Caches TLS material per configuration generation.
pub struct TlsCache {
    secrets: SecretBox,
    current: Mutex<Option<Arc<KeyStore>>>,
}

#[derive(Debug)]
struct Resolver {
    default: (CertificateInfo, Arc<CertifiedKey>),
    /// The other certificates, best first (CA-issued, then newest).
    others: Vec<(CertificateInfo, Arc<CertifiedKey>)>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        // The connector's certificate, unless the client asks (SNI) for a
        // name that only another stored certificate covers.
        if let Some(sni) = hello.server_name().and_then(|n| n.parse::<Domain>().ok())
            && !certs::covers_name(&self.default.0, &sni)
            && let Some((_, k)) = self
                .others
                .iter()
                .find(|(i, _)| certs::covers_name(i, &sni))
        {
            return Some(k.clone());
        }
        Some(self.default.1.clone())
    }
}

impl TlsCache {
    pub fn new(secrets: SecretBox) -> Self {
        TlsCache {
            secrets,
            current: Mutex::new(None),
        }
    }

    fn store(&self, snap: &Snapshot) -> Arc<KeyStore> {
        let mut cur = self.current.lock().expect("not poisoned");
        if let Some(s) = cur.as_ref()
            && s.generation == snap.generation
        {
            return s.clone();
        }
        let provider = rustls::crypto::ring::default_provider();
        let mut keys = HashMap::new();
        for c in snap
            .certificates
            .iter()
            .filter(|c| c.spec.kind == CertificateKind::Certificate)
        {
            let (Some(sealed), Some(info)) = (&c.secret, snap.certificate_info.get(&c.id)) else {
                continue;
            };
            let loaded = self
                .secrets
                .open(&c.id.to_string(), sealed)
                .map_err(|e| e.to_string())
                .and_then(|pem| certs::parse_key(&String::from_utf8_lossy(&pem)))
                .and_then(|key| {
                    provider
                        .key_provider
                        .load_private_key(key)
                        .map_err(|e| e.to_string())
                })
                .and_then(|signer| {
                    let chain = certs::parse_chain(&c.spec.chain_pem)?;
                    Ok(CertifiedKey::new(chain, signer))
                });
            match loaded {
                Ok(k) => {
                    keys.insert(c.id, (info.clone(), Arc::new(k)));
                }
                Err(e) => {
                    tracing::error!(certificate = %info.sha256_fingerprint, error = %e, "certificate key cannot be loaded")
                }
            }
        }
        let store = Arc::new(KeyStore {
            generation: snap.generation,
            keys,
            configs: Mutex::new(HashMap::new()),
        });
        *cur = Some(store.clone());
        store
    }

    /// The server config for the management API: the certificate that
    /// covers the server FQDN, as for a connector; failing that (the FQDN
    /// changed, its certificate was removed) the best other certificate with
    /// a key, so the API stays reachable to put things right.
    ///
    /// With `client_auth`, the client is asked (not required) for a
    /// certificate, which the verifier judges.
    pub fn api_config(
        &self,
        snap: &Snapshot,
        client_auth: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    ) -> Option<Arc<ServerConfig>> {
        if let Some(c) = self.build(snap, &snap.ctx.fqdn, None, client_auth.clone()) {
            return Some(c);
        }
        let store = self.store(snap);
        let pin = store
            .keys
            .values()
            .min_by_key(|(i, _)| (i.self_signed, std::cmp::Reverse(i.not_before)))
            .map(|(i, _)| i.tls_certificate_name.clone())?;
        self.build(snap, &snap.ctx.fqdn, Some(&pin), client_auth)
    }

    /// The server config for a connector answering as `fqdn`, or None when no
    /// certificate covers it (then STARTTLS is not offered).
    pub fn server_config(
        &self,
        snap: &Snapshot,
        fqdn: &Domain,
        pin: Option<&str>,
    ) -> Option<Arc<ServerConfig>> {
        self.build(snap, fqdn, pin, None)
    }

    fn build(
        &self,
        snap: &Snapshot,
        fqdn: &Domain,
        pin: Option<&str>,
        client_auth: Option<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    ) -> Option<Arc<ServerConfig>> {
        let store = self.store(snap);
        let key = (
            fqdn.to_string(),
            pin.map(str::to_string),
            client_auth.is_some(),
        );
        let mut configs = store.configs.lock().expect("not poisoned");
        if let Some(c) = configs.get(&key) {
            return c.clone();
        }
        let built = snap.select_certificate(fqdn, pin).and_then(|(chosen, _)| {
            let default = store.keys.get(&chosen.id)?.clone();
            let mut others: Vec<(CertificateInfo, Arc<CertifiedKey>)> = store
                .keys
                .iter()
                .filter(|(id, _)| **id != chosen.id)
                .map(|(_, (i, k))| (i.clone(), k.clone()))
                .collect();
            others.sort_by_key(|(i, _)| (i.self_signed, std::cmp::Reverse(i.not_before)));
            let config = ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .ok()?;
            let config = match client_auth {
                Some(v) => config.with_client_cert_verifier(v),
                None => config.with_no_client_auth(),
            }
            .with_cert_resolver(Arc::new(Resolver { default, others }));
            Some(Arc::new(config))
        });
        if built.is_none() {
            tracing::warn!(
                fqdn = %fqdn,
                "no certificate with a private key covers this FQDN: STARTTLS is not offered (spec rule 11, Exchange event 12014)"
            );
        }
        configs.insert(key, built.clone());
        built
    }
}
