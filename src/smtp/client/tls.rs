//! Outbound TLS policy (spec rule 12): opportunistic without validation by
//! default; with TlsAuthLevel or BasicAuthRequireTLS, chain validation
//! against the system roots plus Ferry's trust anchors, and optionally the
//! name.

use crate::tls::any::AcceptAny;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use std::sync::Arc;

/// What to require of the remote certificate.
#[derive(Clone)]
pub enum Verify {
    /// Encrypt; accept any certificate (Exchange's opportunistic TLS).
    Nothing,
    /// The chain must lead to a trusted root.
    Chain(Arc<RootCertStore>),
    /// The chain must lead to a trusted root and name the server.
    ChainAndName(Arc<RootCertStore>),
    /// DANE (RFC 7672): the certificate must match one of these TLSA
    /// records, which DNSSEC vouched for.
    Dane(Arc<Vec<Tlsa>>),
}

/// A TLSA record (RFC 6698) as DANE for SMTP uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlsa {
    /// 2 DANE-TA or 3 DANE-EE (0 and 1 are unusable for SMTP, RFC 7672 §3.1.3).
    pub usage: u8,
    /// 0 the whole certificate, 1 its SubjectPublicKeyInfo.
    pub selector: u8,
    /// 0 exact, 1 SHA-256, 2 SHA-512.
    pub matching: u8,
    pub data: Vec<u8>,
}

impl Tlsa {
    /// Whether RFC 7672 lets an SMTP client use it.
    pub fn usable(&self) -> bool {
        matches!(self.usage, 2 | 3) && self.selector <= 1 && self.matching <= 2
    }

    /// Whether `cert` (DER) is what this record names.
    pub fn matches(&self, cert: &[u8]) -> bool {
        use sha2::Digest;
        let selected = match self.selector {
            0 => cert.to_vec(),
            1 => match x509_parser::parse_x509_certificate(cert) {
                Ok((_, c)) => c.public_key().raw.to_vec(),
                Err(_) => return false,
            },
            _ => return false,
        };
        let digest = match self.matching {
            0 => selected,
            1 => sha2::Sha256::digest(&selected).to_vec(),
            2 => sha2::Sha512::digest(&selected).to_vec(),
            _ => return false,
        };
        digest == self.data
    }
}

#[derive(Clone)]
pub enum TlsPolicy {
    /// Never STARTTLS (IgnoreSTARTTLS).
    Ignore,
    /// STARTTLS when offered, no validation.
    Opportunistic,
    /// STARTTLS or no delivery.
    Required(Verify),
}

/// Validates the chain but not the name (TlsAuthLevel CertificateValidation).
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// DANE (RFC 7672 §3.1): DANE-EE matches the end-entity certificate and
/// ignores its names and dates; DANE-TA matches a certificate of the
/// chain the server sent, which then anchors the usual validation of the
/// end entity, names included (the MX host's).
#[derive(Debug)]
struct Dane {
    tlsa: Arc<Vec<Tlsa>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
    /// The handshake's signatures are checked as always.
    signatures: AcceptAny,
}

impl ServerCertVerifier for Dane {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        for t in self.tlsa.iter().filter(|t| t.usable()) {
            if t.usage == 3 && t.matches(end_entity) {
                return Ok(ServerCertVerified::assertion());
            }
            if t.usage == 2 {
                for ta in intermediates.iter().filter(|c| t.matches(c)) {
                    let mut roots = RootCertStore::empty();
                    if roots.add(ta.clone().into_owned()).is_err() {
                        continue;
                    }
                    let chained = WebPkiServerVerifier::builder_with_provider(
                        Arc::new(roots),
                        self.provider.clone(),
                    )
                    .build()
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
                    if chained
                        .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
                        .is_ok()
                    {
                        return Ok(ServerCertVerified::assertion());
                    }
                }
            }
        }
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

/// Fails only when validation is asked for and there is nothing to validate against.
pub(super) fn client_config(policy: &TlsPolicy) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3");
    let verifier: Arc<dyn ServerCertVerifier> = match policy {
        TlsPolicy::Ignore | TlsPolicy::Opportunistic | TlsPolicy::Required(Verify::Nothing) => {
            Arc::new(AcceptAny(provider.clone()))
        }
        TlsPolicy::Required(Verify::Chain(roots)) => Arc::new(ChainOnly(
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| format!("no trust anchors to validate against: {e}"))?,
        )),
        TlsPolicy::Required(Verify::ChainAndName(roots)) => {
            WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
                .build()
                .map_err(|e| format!("no trust anchors to validate against: {e}"))?
        }
        TlsPolicy::Required(Verify::Dane(tlsa)) => Arc::new(Dane {
            tlsa: tlsa.clone(),
            provider: provider.clone(),
            signatures: AcceptAny(provider.clone()),
        }),
    };
    Ok(Arc::new(
        builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    ))
}

#[cfg(test)]
mod dane_tests {
    use super::Tlsa;
    use sha2::Digest;

    #[test]
    fn tlsa_records_match_the_certificate_or_its_key() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["mx.example.test".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let der = cert.der().to_vec();
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let spki = parsed.public_key().raw.to_vec();
        let t = |usage, selector, matching, data: Vec<u8>| Tlsa {
            usage,
            selector,
            matching,
            data,
        };
        assert!(t(3, 1, 1, sha2::Sha256::digest(&spki).to_vec()).matches(&der));
        assert!(t(3, 0, 1, sha2::Sha256::digest(&der).to_vec()).matches(&der));
        assert!(t(3, 1, 2, sha2::Sha512::digest(&spki).to_vec()).matches(&der));
        assert!(t(3, 1, 0, spki.clone()).matches(&der));
        assert!(!t(3, 1, 1, vec![0; 32]).matches(&der));
        // RFC 7672 §3.1.3: PKIX-TA and PKIX-EE are unusable for SMTP.
        assert!(!t(0, 1, 1, vec![]).usable() && !t(1, 1, 1, vec![]).usable());
        assert!(t(2, 0, 1, vec![]).usable() && t(3, 1, 1, vec![]).usable());
        assert!(!t(3, 2, 1, vec![]).usable() && !t(3, 1, 3, vec![]).usable());
    }
}
