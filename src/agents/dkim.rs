//! DKIM signing with `mail-auth` (ring): key pairs made or imported for
//! `model::dkim::DkimSigningKey`, kept sealed, parsed once per key version,
//! and the signature of an outbound message.
//!
//! What is signed follows current practice (RFC 6376 §5.4, M3AAWG): those
//! of the identity and content headers below that the message has, `From`
//! once more than it occurs so that no second From can be added after
//! signing (oversigning), relaxed/relaxed canonicalisation, and no `l=`
//! (the whole body is covered). Other absent headers are not signed: relays
//! may add some of them (Postfix adds a missing Date, a MIME conversion
//! adds MIME-Version), and a signature over their absence would break.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer};
use uuid::Uuid;

use crate::model::dkim::DkimAlgorithm;

/// The headers a signature covers, when the message has them; From is
/// signed once more.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Sender",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Resent-From",
    "Resent-To",
    "Resent-Date",
];

/// How a private key is kept (sealed): a tag byte, then its DER.
const PKCS1: u8 = 1;
const PKCS8: u8 = 8;

/// A key pair as stored: the sealed-to-be private key and the DNS `p=`.
pub struct KeyPair {
    pub private: Vec<u8>,
    pub public_b64: String,
}

enum Key {
    Rsa(RsaKey<Sha256>),
    Ed25519(Ed25519Key),
}

fn rsa_spki(pkcs1_public: &[u8]) -> Result<String, String> {
    use rsa::pkcs1::DecodeRsaPublicKey;
    use rsa::pkcs8::EncodePublicKey;
    let key = rsa::RsaPublicKey::from_pkcs1_der(pkcs1_public).map_err(|e| e.to_string())?;
    let der = key.to_public_key_der().map_err(|e| e.to_string())?;
    Ok(STANDARD.encode(der.as_bytes()))
}

fn load(private: &[u8]) -> Result<Key, String> {
    let (tag, der) = private.split_first().ok_or("empty key")?;
    let e = |e: mail_auth::Error| e.to_string();
    match *tag {
        PKCS1 => RsaKey::from_key_der(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der)))
            .map(Key::Rsa)
            .map_err(e),
        PKCS8 => match Ed25519Key::from_pkcs8_maybe_unchecked_der(der) {
            Ok(k) => Ok(Key::Ed25519(k)),
            Err(_) => RsaKey::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)))
                .map(Key::Rsa)
                .map_err(e),
        },
        _ => Err("unknown key format".into()),
    }
}

/// The algorithm and DNS `p=` of a stored key.
fn describe(private: &[u8]) -> Result<(DkimAlgorithm, String), String> {
    match load(private)? {
        Key::Ed25519(k) => Ok((DkimAlgorithm::Ed25519, STANDARD.encode(k.public_key()))),
        Key::Rsa(k) => {
            let public = k.public_key();
            let bits = {
                use rsa::pkcs1::DecodeRsaPublicKey;
                use rsa::traits::PublicKeyParts;
                rsa::RsaPublicKey::from_pkcs1_der(&public)
                    .map_err(|e| e.to_string())?
                    .n()
                    .bits()
            };
            let alg = match bits {
                2048 => DkimAlgorithm::Rsa2048,
                3072 => DkimAlgorithm::Rsa3072,
                n => return Err(format!("an RSA key of {n} bits: use 2048 or 3072")),
            };
            Ok((alg, rsa_spki(&public)?))
        }
    }
}

/// A new key pair.
pub fn generate(alg: DkimAlgorithm) -> Result<KeyPair, String> {
    let private = match alg.rsa_bits() {
        None => {
            let der = Ed25519Key::generate_pkcs8().map_err(|e| e.to_string())?;
            [&[PKCS8][..], &der].concat()
        }
        Some(bits) => {
            let pair = mail_auth::dkim::generate::DkimKeyPair::generate_rsa(bits)
                .map_err(|e| e.to_string())?;
            [&[PKCS1][..], pair.private_key()].concat()
        }
    };
    let (_, public_b64) = describe(&private)?;
    Ok(KeyPair {
        private,
        public_b64,
    })
}

/// An imported private key (PEM: PKCS#1 `RSA PRIVATE KEY` or PKCS#8
/// `PRIVATE KEY`), which must be of the algorithm stated.
pub fn import(pem: &str, alg: DkimAlgorithm) -> Result<KeyPair, String> {
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| "is not a PEM private key (PKCS#1 or PKCS#8)".to_string())?;
    let private = match &der {
        PrivateKeyDer::Pkcs1(k) => [&[PKCS1][..], k.secret_pkcs1_der()].concat(),
        PrivateKeyDer::Pkcs8(k) => [&[PKCS8][..], k.secret_pkcs8_der()].concat(),
        _ => return Err("must be an RSA or Ed25519 key (PKCS#1 or PKCS#8)".into()),
    };
    let (found, public_b64) = describe(&private)?;
    if found != alg {
        return Err(format!(
            "is a {} key, not {}",
            serde_json::to_value(found).unwrap_or_default(),
            serde_json::to_value(alg).unwrap_or_default()
        ));
    }
    Ok(KeyPair {
        private,
        public_b64,
    })
}

/// A key ready to sign for its domain and selector.
enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

fn signer<T: mail_auth::common::crypto::SigningKey<Hasher = Sha256>>(
    key: T,
    domain: &str,
    selector: &str,
    present: u32,
) -> DkimSigner<T, Done> {
    let mut headers: Vec<&str> = SIGNED_HEADERS
        .iter()
        .enumerate()
        .filter(|(i, _)| present & (1 << i) != 0)
        .map(|(_, h)| *h)
        .collect();
    headers.push("From");
    DkimSigner::from_key(key)
        .domain(domain)
        .selector(selector)
        .headers(headers)
        .header_canonicalization(Canonicalization::Relaxed)
        .body_canonicalization(Canonicalization::Relaxed)
}

/// Which of SIGNED_HEADERS a message's header block has, as bits.
fn present_headers(message: &[u8]) -> u32 {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let mut mask = 0;
    for line in message[..end].split(|&b| b == b'\n') {
        if matches!(line.first(), Some(b' ' | b'\t') | None) {
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = String::from_utf8_lossy(&line[..colon]);
        let name = name.trim();
        if let Some(i) = SIGNED_HEADERS
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
        {
            mask |= 1 << i;
        }
    }
    mask
}

/// Signers by (key id, version, headers present): a key is parsed once
/// per set of headers, not per message.
#[derive(Default)]
pub struct Signers {
    keys: Mutex<HashMap<(Uuid, i64, u32), Arc<Signer>>>,
}

impl Signers {
    /// The `DKIM-Signature:` header (folded, with its CRLF) for `message`.
    pub fn sign(
        &self,
        id: (Uuid, i64),
        private: impl FnOnce() -> Result<Vec<u8>, String>,
        domain: &str,
        selector: &str,
        message: &[u8],
    ) -> Result<String, String> {
        let present = present_headers(message);
        let slot = (id.0, id.1, present);
        let s = {
            let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            match keys.get(&slot) {
                Some(s) => s.clone(),
                None => {
                    let s = Arc::new(match load(&private()?)? {
                        Key::Rsa(k) => Signer::Rsa(signer(k, domain, selector, present)),
                        Key::Ed25519(k) => Signer::Ed25519(signer(k, domain, selector, present)),
                    });
                    // Other versions of the key are dropped, and the sets of
                    // headers kept per key are bounded.
                    keys.retain(|(i, v, _), _| *i != id.0 || *v == id.1);
                    if keys.keys().filter(|(i, _, _)| *i == id.0).count() >= 64 {
                        keys.retain(|(i, _, _), _| *i != id.0);
                    }
                    keys.insert(slot, s.clone());
                    s
                }
            }
        };
        let signature = match &*s {
            Signer::Rsa(k) => k.sign(message),
            Signer::Ed25519(k) => k.sign(message),
        };
        signature.map(|s| s.to_header()).map_err(|e| e.to_string())
    }
}

/// The `DKIM-Signature:` header for `raw` with the active key of `domain`
/// or its closest parent (None without one, or when signing fails, which
/// is logged), signed off the async threads.
pub async fn sign_for(
    snap: &crate::config::Snapshot,
    secrets: &crate::secrets::SecretBox,
    signers: &Arc<Signers>,
    domain: &str,
    raw: Vec<u8>,
) -> Option<String> {
    let key = snap.dkim_key_for(domain)?;
    let (id, version, secret) = (key.id, key.version, key.secret.clone().unwrap_or_default());
    let (d, selector) = (key.spec.domain.to_string(), key.spec.selector.clone());
    let (secrets, signers) = (secrets.clone(), signers.clone());
    let (d2, s2) = (d.clone(), selector.clone());
    let signed = tokio::task::spawn_blocking(move || {
        signers.sign(
            (id, version),
            || {
                secrets
                    .open(&id.to_string(), &secret)
                    .map_err(|e| e.to_string())
            },
            &d2,
            &s2,
            &raw,
        )
    })
    .await;
    match signed {
        Ok(Ok(header)) => Some(header),
        Ok(Err(e)) => {
            tracing::error!(domain = %d, selector = %selector, error = %e, "DKIM signing failed");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "DKIM signing failed");
            None
        }
    }
}

/// The headers an ARC Message Signature covers.
const ARC_SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "DKIM-Signature",
];

/// An ARC set (ARC-Seal, ARC-Message-Signature, ARC-Authentication-Results,
/// with their CRLFs) sealing `message` with the stored key `private`.
pub fn arc_seal(
    private: &[u8],
    domain: &str,
    selector: &str,
    message: &mail_auth::AuthenticatedMessage<'_>,
    results: &mail_auth::AuthenticationResults<'_>,
    chain: &mail_auth::ArcOutput<'_>,
) -> Result<String, String> {
    use mail_auth::arc::ArcSealer;
    let set = match load(private)? {
        Key::Rsa(k) => ArcSealer::from_key(k)
            .domain(domain)
            .selector(selector)
            .headers(ARC_SIGNED_HEADERS.iter().copied())
            .seal(message, results, chain),
        Key::Ed25519(k) => ArcSealer::from_key(k)
            .domain(domain)
            .selector(selector)
            .headers(ARC_SIGNED_HEADERS.iter().copied())
            .seal(message, results, chain),
    };
    set.map(|s| s.to_header()).map_err(|e| e.to_string())
}
