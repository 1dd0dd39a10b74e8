//! DANE (RFC 7672) on delivery: a test root and five zones, signed with
//! ldns-signzone and served by NSD (`tests/peers/dnssec-private.sh`), the
//! test root's key given to Ferry with `--dnssec-trust-anchor`, and one
//! private Postfix as every zone's MX, presenting a CA-issued certificate
//! with its chain. A DANE-EE record of its key and a DANE-TA record of its
//! CA deliver; a TLSA record of another key keeps the mail back with the
//! policy named; a bogus TLSA answer never falls back to cleartext; an
//! unsigned zone is delivered as opportunistic TLS.

use sha2::Digest;

use crate::delivery::setup::{env_with, envelopes, eventually, hold_postfix};
use crate::support::peers::{Nsd, dnssec};
use crate::support::pki::Ca;
use ferry::model::Role;
use serde_json::json;

const NS: &str = "127.87.0.53";
const MX: &str = "127.87.0.21";

fn der(pem: &str) -> Vec<u8> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn dane_ee_and_ta_deliver_a_wrong_or_bogus_tlsa_never_does() {
    if !crate::support::peers::require(&["postfix", "postcat"])
        || !crate::support::peers::require_dnssec()
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let zones = tmp.path().join("zones");
    std::fs::create_dir_all(&zones).unwrap();
    // The MX's certificate, issued by a CA, and the TLSA data naming it.
    let ca = Ca::new(tmp.path());
    let names = [
        "mx.good.test",
        "mx.ta.test",
        "mx.wrong.test",
        "mx.bogus.test",
        "mx.plain.test",
    ];
    let (leaf, key) = ca.issue(&names);
    let leaf_der = der(&leaf);
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    let spki = hex(&sha2::Sha256::digest(parsed.public_key().raw));
    let ca_hash = hex(&sha2::Sha256::digest(der(&ca.cert_pem)));
    let other = {
        let (other, _) = ca.issue(&["somebody.else.test"]);
        let d = der(&other);
        let (_, p) = x509_parser::parse_x509_certificate(&d).unwrap();
        hex(&sha2::Sha256::digest(p.public_key().raw))
    };
    let tlsa = [
        ("good.test", format!("3 1 1 {spki}")),
        ("ta.test", format!("2 0 1 {ca_hash}")),
        ("wrong.test", format!("3 1 1 {other}")),
        ("bogus.test", format!("3 1 1 {spki}")),
        ("plain.test", format!("3 1 1 {other}")),
    ];
    for (d, record) in &tlsa {
        std::fs::write(
            zones.join(format!("{d}.zone")),
            format!(
                "$ORIGIN {d}.\n$TTL 300\n@ IN SOA ns.{d}. admin.{d}. 1 3600 600 86400 300\n\
                 @ IN NS ns.{d}.\nns IN A {NS}\n@ IN MX 10 mx.{d}.\nmx IN A {MX}\n\
                 _2525._tcp.mx IN TLSA {record}\n\
                 _smtp._tls IN TXT \"v=TLSRPTv1; rua=mailto:tls@{d}\"\n"
            ),
        )
        .unwrap();
    }
    for d in ["good.test.", "ta.test.", "wrong.test.", "bogus.test."] {
        dnssec(&zones, &["sign", d]);
    }
    // bogus.test: its TLSA changed after signing.
    let signed = zones.join("bogus.test.zone.signed");
    let text = std::fs::read_to_string(&signed).unwrap();
    std::fs::write(&signed, text.replace(&spki, &other)).unwrap();
    let mut root = format!(
        "$ORIGIN .\n$TTL 300\n@ IN SOA ns.root. admin.root. 1 3600 600 86400 300\n\
         @ IN NS ns.root.\nns.root. IN A {NS}\n"
    );
    for (d, _) in &tlsa {
        root.push_str(&format!("{d}. IN NS ns.{d}.\nns.{d}. IN A {NS}\n"));
        if *d != "plain.test" {
            root.push_str(&std::fs::read_to_string(zones.join(format!("{d}.ds"))).unwrap());
        }
    }
    std::fs::write(zones.join("root.zone"), root).unwrap();
    dnssec(&zones, &["sign", "."]);
    let mut start = vec!["start", NS, "5353", "."];
    let origins: Vec<String> = tlsa.iter().map(|(d, _)| format!("{d}.")).collect();
    start.extend(origins.iter().map(String::as_str));
    dnssec(&zones, &start);
    let _nsd = Nsd(zones.clone());

    // Ferry trusts the test root, and delivers with DANE.
    let anchor = zones.join("root.ksk");
    let Some(e) = env_with(Role::Edge, &[], |s| s.dnssec_trust_anchor = Some(anchor)).await else {
        return;
    };
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"internalDNSServers": [format!("{NS}:5353")], "externalDNSServers": [format!("{NS}:5353")]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let c = e
        .connector(json!({"name": "To Internet", "addressSpaces": ["*"], "port": 2525, "tlsPolicy": "Dane"}))
        .await;
    assert_eq!(c["tlsPolicy"], "Dane", "{c}");
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"tlsReportsEnabled": true}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The MX presents its certificate with the CA's after it (DANE-TA
    // needs the anchor in the chain).
    let (crt, key_path) = (tmp.path().join("mx.crt"), tmp.path().join("mx.key"));
    std::fs::write(&crt, format!("{leaf}{}", ca.cert_pem)).unwrap();
    std::fs::write(&key_path, key).unwrap();
    let mx = hold_postfix(&e, "mx", MX, true, Some((&crt, &key_path)));

    for (d, _) in &tlsa {
        e.submit(
            "alice@fabrikam.test",
            &[&format!("user@{d}")],
            &format!("to {d}"),
        )
        .await;
    }
    eventually(30, "good, ta and plain delivered", || async {
        let held = envelopes(&mx);
        ["good.test", "ta.test", "plain.test"]
            .iter()
            .all(|d| held.contains(&format!("recipient: user@{d}")))
    })
    .await;
    eventually(30, "wrong and bogus wait on DANE", || async {
        e.queue_error("wrong.test")
            .await
            .contains("DANE policy of wrong.test")
            && e.queue_error("bogus.test")
                .await
                .contains("DANE policy of bogus.test")
    })
    .await;
    let wrong = e.queue_error("wrong.test").await;
    assert!(wrong.contains("4.7.5"), "{wrong}");
    let bogus = e.queue_error("bogus.test").await;
    assert!(
        bogus.contains("no MX host is usable") && bogus.contains("Bogus"),
        "{bogus}"
    );
    let held = envelopes(&mx);
    assert!(
        !held.contains("user@wrong.test") && !held.contains("user@bogus.test"),
        "{held}"
    );

    // DANE sessions are counted for TLS reports as `tlsa` policies: good.test
    // succeeded, wrong.test failed.
    let r = e.app.post("/api/v1/tls-reports/send", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let reports = r.body["reports"].as_array().unwrap().clone();
    let of = |d: &str| {
        reports
            .iter()
            .find(|x| x["policyDomain"] == d)
            .cloned()
            .unwrap_or_else(|| panic!("no report for {d}: {reports:?}"))
    };
    assert!(
        of("good.test")["successes"].as_i64().unwrap() >= 1,
        "{reports:?}"
    );
    assert!(
        of("wrong.test")["failures"].as_i64().unwrap() >= 1,
        "{reports:?}"
    );
    assert_eq!(of("good.test")["recipients"], json!(["tls@good.test"]));
    // The report itself goes to good.test's MX, under DANE too.
    eventually(30, "the TLS report reaches good.test's MX", || async {
        envelopes(&mx).contains("recipient: tls@good.test")
    })
    .await;
}
