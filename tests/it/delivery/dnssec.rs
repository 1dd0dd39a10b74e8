//! DNSSEC-validating lookups, the ground DANE (RFC 7672) stands on: a test
//! root and three zones under it, signed with ldns-signzone and served by
//! NSD on loopback (`tests/peers/dnssec-private.sh`), with the test root's
//! key as the only trust anchor. A signed zone's TLSA answer is Secure; the
//! same zone with its signatures broken is never Secure; a zone the root
//! delegates without a DS is provably Insecure; and with the real root's
//! anchors instead of the test root's, nothing here is Secure.

use std::str::FromStr;
use std::sync::Arc;

use crate::support::peers::{Nsd, dnssec};
use ferry::routing::dns::{Dns, Security};
use hickory_resolver::proto::dnssec::TrustAnchors;
use hickory_resolver::proto::rr::RecordType;

const ADDR: &str = "127.86.0.53";

fn zone(origin: &str, tlsa: &str) -> String {
    format!(
        "$ORIGIN {origin}\n$TTL 300\n@ IN SOA ns.{origin} admin.{origin} 1 3600 600 86400 300\n\
         @ IN NS ns.{origin}\nns IN A {ADDR}\n@ IN MX 10 mx.{origin}\nmx IN A 127.86.0.25\n\
         _25._tcp.mx IN TLSA 3 1 1 {tlsa}\n"
    )
}

#[tokio::test]
async fn answers_are_secure_insecure_or_bogus_as_the_chain_of_trust_says() {
    if !crate::support::peers::require_dnssec() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let hash = "a".repeat(64);
    for (origin, name) in [
        ("secure.test.", "secure.test"),
        ("bogus.test.", "bogus.test"),
        ("plain.test.", "plain.test"),
    ] {
        std::fs::write(dir.join(format!("{name}.zone")), zone(origin, &hash)).unwrap();
    }
    dnssec(dir, &["sign", "secure.test."]);
    dnssec(dir, &["sign", "bogus.test."]);
    // Broken after signing: the TLSA data no longer matches its RRSIG.
    let signed = dir.join("bogus.test.zone.signed");
    let text = std::fs::read_to_string(&signed).unwrap();
    assert!(text.contains(&hash), "{text}");
    std::fs::write(&signed, text.replace(&hash, &"b".repeat(64))).unwrap();
    // The root delegates all three; only the signed two have a DS.
    let mut root = format!(
        "$ORIGIN .\n$TTL 300\n@ IN SOA ns.root. admin.root. 1 3600 600 86400 300\n\
         @ IN NS ns.root.\nns.root. IN A {ADDR}\n"
    );
    for name in ["secure.test", "bogus.test", "plain.test"] {
        root.push_str(&format!(
            "{name}. IN NS ns.{name}.\nns.{name}. IN A {ADDR}\n"
        ));
    }
    for name in ["secure.test", "bogus.test"] {
        root.push_str(&std::fs::read_to_string(dir.join(format!("{name}.ds"))).unwrap());
    }
    std::fs::write(dir.join("root.zone"), root).unwrap();
    dnssec(dir, &["sign", "."]);
    dnssec(
        dir,
        &[
            "start",
            ADDR,
            "5353",
            ".",
            "secure.test.",
            "bogus.test.",
            "plain.test.",
        ],
    );
    let _nsd = Nsd(dir.to_path_buf());

    let anchors = Arc::new(
        TrustAnchors::from_str(&std::fs::read_to_string(dir.join("root.ksk")).unwrap()).unwrap(),
    );
    let servers = [format!("{ADDR}:5353").parse().unwrap()];
    let dns = Dns::default();
    let secure = dns
        .validated(
            &servers,
            Some(anchors.clone()),
            "_25._tcp.mx.secure.test",
            RecordType::TLSA,
        )
        .await
        .unwrap();
    assert_eq!(secure.security, Security::Secure, "{secure:?}");
    assert_eq!(secure.records.len(), 1, "{secure:?}");
    let bogus = dns
        .validated(
            &servers,
            Some(anchors.clone()),
            "_25._tcp.mx.bogus.test",
            RecordType::TLSA,
        )
        .await
        .unwrap();
    assert_eq!(bogus.security, Security::Bogus, "{bogus:?}");
    assert!(bogus.records.is_empty(), "{bogus:?}");
    // A name the signed zone does not have: a secure denial (NSEC), no
    // records: DANE does not apply, and that is known for certain.
    let none = dns
        .validated(
            &servers,
            Some(anchors.clone()),
            "_25._tcp.nowhere.secure.test",
            RecordType::TLSA,
        )
        .await
        .unwrap();
    assert!(none.records.is_empty(), "{none:?}");
    assert_eq!(none.security, Security::Secure, "{none:?}");
    let plain = dns
        .validated(
            &servers,
            Some(anchors.clone()),
            "_25._tcp.mx.plain.test",
            RecordType::TLSA,
        )
        .await
        .unwrap();
    assert_eq!(plain.security, Security::Insecure, "{plain:?}");
    // The real root's anchors do not vouch for the test root.
    let other = Dns::default()
        .validated(&servers, None, "_25._tcp.mx.secure.test", RecordType::TLSA)
        .await
        .unwrap();
    assert_eq!(other.security, Security::Bogus, "{other:?}");
}
