//! The roots outbound TLS validates peers against: the system's trust store
//! (read once per process; reading it on every delivery attempt cost a
//! directory scan each time) plus Ferry's trust anchors, rebuilt only when
//! the set of trust anchors changes.

use std::sync::{Arc, Mutex, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use uuid::Uuid;

use crate::config::Snapshot;
use crate::model::CertificateKind;

pub fn native() -> &'static [CertificateDer<'static>] {
    static NATIVE: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    NATIVE.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The trust anchors a store was built from: (id, version) of each.
type AnchorSet = Vec<(Uuid, i64)>;

/// The system's roots plus the snapshot's trust anchors, shared.
pub fn trust_roots(snap: &Snapshot) -> Arc<RootCertStore> {
    static CACHE: Mutex<Option<(AnchorSet, Arc<RootCertStore>)>> = Mutex::new(None);
    let anchors: Vec<_> = snap
        .certificates
        .iter()
        .filter(|c| c.spec.kind == CertificateKind::TrustAnchor)
        .collect();
    let key: AnchorSet = anchors.iter().map(|c| (c.id, c.version)).collect();
    let mut cache = CACHE.lock().expect("not poisoned");
    if let Some((k, roots)) = cache.as_ref()
        && *k == key
    {
        return roots.clone();
    }
    let mut roots = RootCertStore::empty();
    for cert in native() {
        let _ = roots.add(cert.clone());
    }
    for c in anchors {
        if let Ok(chain) = crate::tls::certs::parse_chain(&c.spec.chain_pem) {
            for cert in chain {
                let _ = roots.add(cert);
            }
        }
    }
    let roots = Arc::new(roots);
    *cache = Some((key, roots.clone()));
    roots
}
