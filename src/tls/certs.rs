//! Certificate parsing, inspection and generation.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::Serialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use utoipa::ToSchema;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

use crate::model::domain::Domain;

/// What an admin needs to know about a certificate.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CertificateInfo {
    pub subject: String,
    pub issuer: String,
    /// DNS names and IP addresses from the subjectAltName extension.
    pub subject_alternative_names: Vec<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub not_before: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub not_after: OffsetDateTime,
    /// SHA-256 of the DER certificate, lower-case hex: its thumbprint.
    pub sha256_fingerprint: String,
    pub serial_number: String,
    pub self_signed: bool,
    /// The `<I>issuer<S>subject` form that connectors pin with.
    pub tls_certificate_name: String,
    /// Certificates in the chain, the end-entity one included.
    pub chain_length: usize,
}

/// Certificates travel as PEM re-encoded from their DER, so pasted text with
/// stray keys or comments is never stored.
pub fn to_pem(chain: &[CertificateDer<'_>]) -> String {
    let mut out = String::new();
    for c in chain {
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        let b64 = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, c.as_ref());
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Parses a PEM chain; the first certificate is the end-entity one.
pub fn parse_chain(pem: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the PEM text cannot be read: {e}"))?;
    if certs.is_empty() {
        return Err("no 'BEGIN CERTIFICATE' block found".into());
    }
    for (i, c) in certs.iter().enumerate() {
        X509Certificate::from_der(c)
            .map_err(|e| format!("certificate {i} of the chain is not valid X.509: {e}"))?;
    }
    Ok(certs)
}

pub fn parse_key(pem: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        format!("no usable private key found (PKCS#8, PKCS#1 or SEC1 PEM expected): {e}")
    })
}

/// Inspects the end-entity certificate of a parsed chain.
pub fn inspect(chain: &[CertificateDer<'_>]) -> CertificateInfo {
    let der = &chain[0];
    let (_, cert) = X509Certificate::from_der(der).expect("checked by parse_chain");
    let mut sans = Vec::new();
    if let Ok(Some(ext)) = cert.subject_alternative_name() {
        for name in &ext.value.general_names {
            match name {
                GeneralName::DNSName(d) => sans.push(d.to_string()),
                GeneralName::IPAddress(b) if b.len() == 4 => sans.push(
                    std::net::Ipv4Addr::from(<[u8; 4]>::try_from(*b).expect("len 4")).to_string(),
                ),
                GeneralName::IPAddress(b) if b.len() == 16 => sans.push(
                    std::net::Ipv6Addr::from(<[u8; 16]>::try_from(*b).expect("len 16")).to_string(),
                ),
                _ => {}
            }
        }
    }
    let subject = cert.subject().to_string();
    let issuer = cert.issuer().to_string();
    CertificateInfo {
        tls_certificate_name: format!("<I>{issuer}<S>{subject}"),
        self_signed: cert.subject().as_raw() == cert.issuer().as_raw(),
        subject,
        issuer,
        subject_alternative_names: sans,
        not_before: cert.validity().not_before.to_datetime(),
        not_after: cert.validity().not_after.to_datetime(),
        sha256_fingerprint: hex::encode(Sha256::digest(der.as_ref())),
        serial_number: cert.raw_serial_as_string(),
        chain_length: chain.len(),
    }
}

/// Checks that `key` is the private key of the chain's end-entity certificate.
pub fn check_key_matches(
    chain: &[CertificateDer<'static>],
    key: &PrivateKeyDer<'static>,
) -> Result<(), String> {
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| format!("the private key cannot be used: {e}"))?;
    let certified = rustls::sign::CertifiedKey::new(chain.to_vec(), signing);
    certified.keys_match().map_err(|e| match e {
        rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
            "the private key does not belong to the certificate".to_string()
        }
        other => format!("the private key cannot be checked against the certificate: {other}"),
    })
}

/// Whether the certificate's names cover `fqdn`: an exact DNS SAN, or a
/// wildcard SAN for exactly one label (RFC 6125). The subject CN counts only
/// when the certificate has no DNS SANs.
pub fn covers_name(info: &CertificateInfo, fqdn: &Domain) -> bool {
    let host = fqdn.as_str();
    let matches = |pattern: &str| {
        let p = pattern.to_ascii_lowercase();
        match p.strip_prefix("*.") {
            Some(suffix) => host
                .split_once('.')
                .is_some_and(|(label, rest)| !label.is_empty() && rest == suffix),
            None => p == host,
        }
    };
    let dns: Vec<&String> = info
        .subject_alternative_names
        .iter()
        .filter(|s| s.parse::<std::net::IpAddr>().is_err())
        .collect();
    if dns.is_empty() {
        return info
            .subject
            .split(", ")
            .filter_map(|rdn| rdn.strip_prefix("CN="))
            .any(matches);
    }
    dns.into_iter().any(|s| matches(s))
}

/// A self-signed certificate for `names` (the first is the CN), ECDSA P-256
/// with SHA-256, valid for `days` from now. Returns (chain PEM, key PEM).
pub fn self_signed(
    common_name: &str,
    names: &[String],
    days: u32,
) -> Result<(String, String), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params = rcgen::CertificateParams::new(names.to_vec()).map_err(|e| e.to_string())?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, common_name);
    let now = OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(days as i64);
    let mut serial = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut serial);
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok((cert.pem(), key.serialize_pem()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_certificate_inspects_and_matches_its_key() {
        let (chain, key) = self_signed("EDGE01", &["edge01.contoso.test".into()], 1825).unwrap();
        let chain = parse_chain(&chain).unwrap();
        let info = inspect(&chain);
        assert_eq!(info.subject, "CN=EDGE01");
        assert!(info.self_signed);
        assert_eq!(info.subject_alternative_names, vec!["edge01.contoso.test"]);
        assert!((info.not_after - info.not_before).whole_days() >= 1825);
        check_key_matches(&chain, &parse_key(&key).unwrap()).unwrap();
        let (_, other_key) = self_signed("X", &["x.test".into()], 1).unwrap();
        let err = check_key_matches(&chain, &parse_key(&other_key).unwrap()).unwrap_err();
        assert!(err.contains("does not belong"), "{err}");
    }

    #[test]
    fn name_matching_follows_rfc6125() {
        let (chain, _) = self_signed(
            "x",
            &["*.contoso.test".into(), "mail.fabrikam.test".into()],
            1,
        )
        .unwrap();
        let info = inspect(&parse_chain(&chain).unwrap());
        let d = |s: &str| s.parse::<Domain>().unwrap();
        assert!(covers_name(&info, &d("mail.contoso.test")));
        assert!(!covers_name(&info, &d("a.b.contoso.test")));
        assert!(!covers_name(&info, &d("contoso.test")));
        assert!(covers_name(&info, &d("MAIL.fabrikam.test")));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(
            parse_chain("hello")
                .unwrap_err()
                .contains("BEGIN CERTIFICATE")
        );
        let broken = "-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n";
        assert!(parse_chain(broken).is_err());
        assert!(parse_key("nope").is_err());
    }
}
