//! DKIM signing: keys through the API (generated Ed25519 and RSA-2048,
//! imported RSA-3072), rotation, the DNS record and its check, and
//! signatures on mail from inside that dkimpy verifies — and rejects once
//! the message is changed.

use serde_json::{Value, json};

use super::{DKIM_VERIFY, openssl, txt};
use crate::support::client::Client;
use crate::support::dns::Dnsmasq;
use crate::support::peers::Postfix;
use crate::support::scenario::{Edge, edge, queued};

async fn api_key(e: &Edge, body: Value) -> Value {
    let r = e.app.post("/api/v1/dkim-signing-keys", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body
}

/// A Hub sends a message from inside; the Edge's queued copy.
async fn hub_sends(e: &Edge, from: &str) -> String {
    let mut c = e.hub_session().await;
    let body = format!(
        "From: Mary <{from}>\r\nTo: alice@fabrikam.test\r\nSubject: Quarterly figures\r\n\
Date: Mon, 30 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n\
Revenue is up.  Costs are down.\r\n\r\n\r\n"
    );
    let r = c.send_mail(from, &["alice@fabrikam.test"], &body).await;
    assert_eq!(r.code, 250, "{}", r.line());
    queued(&e.app).await.last().unwrap().3.clone()
}

#[tokio::test]
async fn signatures_of_both_key_types_verify_with_dkimpy_and_fail_once_changed() {
    if !crate::support::peers::require(&["dnsmasq", "dig", "openssl"]) {
        return;
    }
    let Some(python) = crate::support::python::with(&["dkim", "nacl", "dns.resolver"]) else {
        return;
    };
    let e = edge().await;
    // Generated: RSA-2048 for contoso.test, Ed25519 for ed.contoso.test.
    let rsa = api_key(
        &e,
        json!({"domain": "contoso.test", "selector": "r2048", "state": "Active"}),
    )
    .await;
    assert_eq!(rsa["algorithm"], "RSA-2048");
    assert_eq!(rsa["dnsRecordName"], "r2048._domainkey.contoso.test");
    let record = rsa["dnsRecord"].as_str().unwrap();
    assert!(
        record.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A"),
        "{record}"
    );
    assert!(rsa.get("privateKeyPem").is_none() && !rsa.to_string().contains("PRIVATE"));
    let ed = api_key(
        &e,
        json!({"domain": "ed.contoso.test", "algorithm": "Ed25519", "selector": "ed1", "state": "Active"}),
    )
    .await;
    // Imported: an RSA-3072 key from OpenSSL, for sales.contoso.test.
    let pem = String::from_utf8(openssl(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:3072",
    ]))
    .unwrap();
    let wrong = e
        .app
        .post(
            "/api/v1/dkim-signing-keys",
            json!({"domain": "sales.contoso.test", "algorithm": "RSA-2048", "privateKeyPem": pem}),
        )
        .await;
    assert_eq!(wrong.status, 422, "{}", wrong.text);
    assert!(wrong.text.contains("privateKeyPem"), "{}", wrong.text);
    let imported = api_key(
        &e,
        json!({"domain": "sales.contoso.test", "algorithm": "RSA-3072", "selector": "imp", "state": "Active",
               "privateKeyPem": pem}),
    )
    .await;
    let mut records = vec![];
    for k in [&rsa, &ed, &imported] {
        records.push(txt(
            k["dnsRecordName"].as_str().unwrap(),
            k["dnsRecord"].as_str().unwrap(),
        ));
    }
    let dns = Dnsmasq::start(&e.ip(53), &records).await;
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"externalDNSServers": [dns.server]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for (from, key) in [
        ("mary@contoso.test", &rsa),
        ("mary@ed.contoso.test", &ed),
        ("mary@sales.contoso.test", &imported),
    ] {
        let check = e
            .app
            .get(&format!(
                "/api/v1/dkim-signing-keys/{}/dns-check",
                key["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(check.body["published"], true, "{}", check.text);
        let queued = hub_sends(&e, from).await;
        // The stored message starts with our Received: what leaves is that.
        let sig = queued
            .lines()
            .find(|l| l.starts_with("DKIM-Signature:"))
            .unwrap_or_else(|| panic!("signed: {queued}"));
        assert!(
            sig.contains(&format!("s={};", key["selector"].as_str().unwrap())),
            "{sig}"
        );
        assert!(queued.contains("c=relaxed/relaxed"), "{queued}");
        assert!(!queued.contains("; l="), "no body length: {queued}");
        // From is signed once more than it occurs: no From can be added.
        let unfolded = queued.replace("\r\n\t", "").replace("\r\n ", " ");
        let h = unfolded
            .split("h=")
            .nth(1)
            .and_then(|v| v.split(';').next())
            .unwrap();
        assert_eq!(
            h.split(':').filter(|x| x.trim() == "From").count(),
            2,
            "{h}"
        );
        let (ok, out) =
            crate::support::python::run(&python, DKIM_VERIFY, &[&dns.server], queued.as_bytes());
        assert!(ok, "dkimpy: {out}\n{queued}");
        // Changed after signing: the signature no longer holds.
        let tampered = queued.replace("Revenue is up.", "Revenue is down.");
        let (ok, out) =
            crate::support::python::run(&python, DKIM_VERIFY, &[&dns.server], tampered.as_bytes());
        assert!(!ok, "a changed body must fail: {out}");
        let tampered = queued.replace("Subject: Quarterly figures", "Subject: Quarterly figures!");
        let (ok, _) =
            crate::support::python::run(&python, DKIM_VERIFY, &[&dns.server], tampered.as_bytes());
        assert!(!ok, "a changed header must fail");
    }
    // Mail from the Internet is not signed by us.
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.fabrikam.test").await;
    let r = c
        .send_mail(
            "alice@fabrikam.test",
            &["bob@contoso.test"],
            "From: mary@contoso.test\r\nSubject: spoof\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    let q = queued(&e.app).await;
    assert!(
        !q.last().unwrap().3.contains("DKIM-Signature"),
        "{}",
        q.last().unwrap().3
    );
}

#[tokio::test]
async fn rotation_retires_the_active_key_and_an_active_key_cannot_be_deleted() {
    if !crate::support::peers::require(&["dnsmasq", "dig"]) {
        return;
    }
    let e = edge().await;
    // DNS on loopback only: it knows no key.
    let dns = Dnsmasq::start(&e.ip(53), &[]).await;
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"externalDNSServers": [dns.server]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let old = api_key(&e, json!({"domain": "contoso.test", "selector": "old", "algorithm": "Ed25519", "state": "Active"})).await;
    let new = api_key(
        &e,
        json!({"domain": "contoso.test", "selector": "new", "algorithm": "Ed25519"}),
    )
    .await;
    assert_eq!(new["state"], "Published");
    // Published, not yet signing: the old key still signs.
    assert!(hub_sends(&e, "a@contoso.test").await.contains("s=old;"));
    let r = e
        .app
        .delete(
            &format!("/api/v1/dkim-signing-keys/{}", old["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = e
        .app
        .patch(
            "/api/v1/dkim-signing-keys/new._domainkey.contoso.test",
            json!({"state": "Active"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let old_now = e
        .app
        .get("/api/v1/dkim-signing-keys/old._domainkey.contoso.test")
        .await;
    assert_eq!(old_now.body["state"], "Retired");
    assert!(hub_sends(&e, "a@contoso.test").await.contains("s=new;"));
    // Bad input changes nothing and names the field.
    let r = e
        .app
        .patch(
            "/api/v1/dkim-signing-keys/new._domainkey.contoso.test",
            json!({"selector": "x"}),
            None,
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = e
        .app
        .post(
            "/api/v1/dkim-signing-keys",
            json!({"domain": "contoso.test", "selector": "new", "algorithm": "Ed25519"}),
        )
        .await;
    assert_eq!(r.status, 409, "{}", r.text);
    let r = e
        .app
        .post(
            "/api/v1/dkim-signing-keys",
            json!({"domain": "contoso.test", "privateKeyPem": "not a key"}),
        )
        .await;
    assert_eq!(r.status, 422, "{}", r.text);
    let r = e
        .app
        .delete(
            &format!("/api/v1/dkim-signing-keys/{}", old["id"].as_str().unwrap()),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    // Not published anywhere: the check says so rather than guessing.
    let check = e
        .app
        .get("/api/v1/dkim-signing-keys/new._domainkey.contoso.test/dns-check")
        .await;
    assert_eq!(check.status, 200, "{}", check.text);
    assert_eq!(check.body["published"], false, "{}", check.text);
}

/// The private OpenDKIM of one test, stopped when dropped.
struct OpenDkim {
    dir: std::path::PathBuf,
}

impl Drop for OpenDkim {
    fn drop(&mut self) {
        let _ = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/opendkim-private.sh"
            ))
            .arg(&self.dir)
            .arg("stop")
            .status();
    }
}

#[tokio::test]
async fn signatures_survive_a_postfix_relay_and_verify_with_opendkim_and_dkimpy_for_both_key_types()
{
    if !crate::support::peers::require(&["postfix", "dnsmasq", "dig"]) {
        return;
    }
    let Some(python) = crate::support::python::with(&["dkim", "nacl", "dns.resolver"]) else {
        return;
    };
    let postfix_ip = "127.78.0.11";
    let Some(e) = crate::delivery::setup::env(
        ferry::model::Role::Edge,
        &[&format!("--host-record=relay.contoso.test,{postfix_ip}")],
    )
    .await
    else {
        return;
    };
    // The submission client is inside: its mail is signed.
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"internalSMTPServers": [e.ip(30)]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let ca = crate::support::pki::Ca::new(e.app.dir.path());
    let pf = crate::support::peers::postfix_smarthost(
        e.app.dir.path(),
        postfix_ip,
        "relay.contoso.test",
        "fabrikam.test",
        ("edge01", "Edge-Relay-Pass-7"),
        &ca,
    );
    e.app
        .create(
            "/api/v1/certificates",
            json!({"source": "trustAnchor", "certificatePem": ca.cert_pem}),
        )
        .await;
    e.app
        .create(
            "/api/v1/credentials",
            json!({"name": "relay", "kind": "SmartHost", "userName": "edge01", "password": "Edge-Relay-Pass-7"}),
        )
        .await;
    e.connector(
        json!({"name": "Via Postfix", "addressSpaces": ["fabrikam.test"],
        "smartHosts": ["relay.contoso.test"], "port": 2525,
        "smartHostAuthMechanism": "BasicAuthRequireTLS", "authenticationCredential": "relay"}),
    )
    .await;
    let mut records = vec![];
    for (domain, alg) in [("contoso.test", "RSA-2048"), ("ed.contoso.test", "Ed25519")] {
        let r = e
            .app
            .post(
                "/api/v1/dkim-signing-keys",
                json!({"domain": domain, "algorithm": alg, "selector": "relay", "state": "Active"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        records.push(txt(
            r.body["dnsRecordName"].as_str().unwrap(),
            r.body["dnsRecord"].as_str().unwrap(),
        ));
    }
    let keys = Dnsmasq::start(&e.ip(54), &records).await;
    // OpenDKIM verifies on the relay, as a milter of the private Postfix,
    // its keys read from a file: Ferry's two, and for wrong.contoso.test a
    // key that is not the one Ferry signs with (so the check can fail).
    let odk_available = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/opendkim-private.sh"
        ))
        .arg("available")
        .status()
        .is_ok_and(|s| s.success());
    if !crate::support::peers::require_available(
        "opendkim (installed, or fetched by tests/peers/opendkim-private.sh fetch)",
        odk_available,
    ) {
        return;
    }
    let mut public = String::new();
    for (domain, alg) in [("contoso.test", "RSA-2048"), ("ed.contoso.test", "Ed25519")] {
        let k = e
            .app
            .get(&format!(
                "/api/v1/dkim-signing-keys/relay._domainkey.{domain}"
            ))
            .await;
        assert_eq!(k.body["algorithm"], alg);
        public.push_str(&format!(
            "{} {}\n",
            k.body["dnsRecordName"].as_str().unwrap(),
            k.body["dnsRecord"].as_str().unwrap()
        ));
    }
    let wrong = e
        .app
        .post(
            "/api/v1/dkim-signing-keys",
            json!({"domain": "wrong.contoso.test", "algorithm": "RSA-2048", "selector": "relay", "state": "Active"}),
        )
        .await;
    assert_eq!(wrong.status, 201, "{}", wrong.text);
    let other = e
        .app
        .post(
            "/api/v1/dkim-signing-keys",
            json!({"domain": "other.contoso.test", "algorithm": "RSA-2048", "selector": "relay"}),
        )
        .await;
    public.push_str(&format!(
        "relay._domainkey.wrong.contoso.test {}\n",
        other.body["dnsRecord"].as_str().unwrap()
    ));
    let keys_file = e.app.dir.path().join("opendkim-keys");
    std::fs::write(&keys_file, public).unwrap();
    let odk = OpenDkim {
        dir: e.app.dir.path().join("opendkim"),
    };
    let out = std::process::Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/opendkim-private.sh"
        ))
        .arg(&odk.dir)
        .args(["verify", "127.78.0.12", "8891", "relay.contoso.test"])
        .arg(&keys_file)
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "opendkim: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pfx = |args: &[&str]| {
        let out = std::process::Command::new("bash")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/postfix-private.sh"
            ))
            .arg(&pf.dir)
            .args(args)
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "postfix {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    pfx(&[
        "postconf",
        "-e",
        "smtpd_milters = inet:127.78.0.12:8891",
        "milter_default_action = tempfail",
    ]);
    pfx(&["stop"]);
    pfx(&["start"]);
    let stored = |pf: &Postfix| pf.mailbox("fabrikam.test");
    for from in [
        "mary@contoso.test",
        "mary@ed.contoso.test",
        "mary@wrong.contoso.test",
    ] {
        let expect_pass = !from.contains("wrong");
        let subject = format!("relayed-{}", uuid::Uuid::new_v4().simple());
        e.submit(from, &["alice@fabrikam.test"], &subject).await;
        crate::delivery::setup::eventually(20, "Postfix stored the message", || async {
            stored(&pf).iter().any(|m| m.contains(&subject))
        })
        .await;
        // Maildir keeps lines ending in LF; on the wire they end in CRLF.
        let got = stored(&pf)
            .into_iter()
            .find(|m| m.contains(&subject))
            .unwrap()
            .replace("\r\n", "\n")
            .replace('\n', "\r\n");
        assert!(got.contains("DKIM-Signature:"), "{got}");
        // OpenDKIM's verdict on the relay, in its Authentication-Results.
        let unfolded = got.replace("\r\n\t", " ").replace("\r\n ", " ");
        let odk_result = unfolded
            .lines()
            .find(|l| l.starts_with("Authentication-Results: relay.contoso.test;"))
            .unwrap_or_else(|| panic!("no OpenDKIM result: {got}"))
            .to_string();
        let domain = from.split('@').nth(1).unwrap();
        if expect_pass {
            assert!(
                odk_result.contains("dkim=pass")
                    && odk_result.contains(&format!("header.d={domain}")),
                "OpenDKIM: {odk_result}"
            );
        } else {
            assert!(odk_result.contains("dkim=fail"), "OpenDKIM: {odk_result}");
            continue;
        }
        // Postfix added its own headers and changed nothing signed.
        assert!(got.contains("Delivered-To: alice@fabrikam.test"), "{got}");
        let (ok, out) =
            crate::support::python::run(&python, DKIM_VERIFY, &[&keys.server], got.as_bytes());
        assert!(ok, "dkimpy after Postfix ({from}): {out}\n{got}");
        let changed = got.replace(&format!("body of {subject}"), "a different body");
        let (ok, _) =
            crate::support::python::run(&python, DKIM_VERIFY, &[&keys.server], changed.as_bytes());
        assert!(!ok, "a body changed after the relay must fail");
    }
}
