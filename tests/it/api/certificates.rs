use crate::support::app::{TestApp, contains};
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;

const CE: &str = "/api/v1/certificates";

/// A certificate and key made by OpenSSL, an independent implementation.
fn openssl_cert(
    dir: &std::path::Path,
    name: &str,
    cn: &str,
    sans: &str,
    key_type: &str,
) -> (String, String) {
    let key = dir.join(format!("{name}.key"));
    let crt = dir.join(format!("{name}.crt"));
    let st = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", key_type, "-nodes", "-days", "30", "-subj",
        ])
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName={sans}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&crt)
        .output()
        .expect("openssl is installed");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    (
        std::fs::read_to_string(crt).unwrap(),
        std::fs::read_to_string(key).unwrap(),
    )
}

#[tokio::test]
async fn import_with_matching_key_reports_details_and_hides_the_key() {
    let app = TestApp::spawn(Role::Edge).await;
    let (crt, key) = openssl_cert(
        app.dir.path(),
        "mail",
        "mail.contoso.test",
        "DNS:mail.contoso.test,IP:127.0.0.2",
        "rsa:2048",
    );
    let c = app.create(CE, json!({"source": "import", "friendlyName": "Internet", "certificatePem": crt, "privateKeyPem": key})).await;
    assert_eq!(c["subject"], "CN=mail.contoso.test");
    assert_eq!(
        c["subjectAlternativeNames"],
        json!(["mail.contoso.test", "127.0.0.2"])
    );
    assert_eq!(c["hasPrivateKey"], true);
    assert_eq!(c["expired"], false);
    assert_eq!(c["kind"], "Certificate");
    let fp = c["sha256Fingerprint"].as_str().unwrap().to_string();
    assert_eq!(fp.len(), 64);
    // Cross-check the thumbprint with OpenSSL.
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(app.dir.path().join("mail.crt"))
        .output()
        .unwrap();
    let theirs = String::from_utf8(out.stdout)
        .unwrap()
        .split('=')
        .nth(1)
        .unwrap()
        .trim()
        .replace(':', "")
        .to_lowercase();
    assert_eq!(fp, theirs);
    // Reachable by thumbprint; listed; key never returned nor stored in clear.
    assert_eq!(app.get(&format!("{CE}/{fp}")).await.body["id"], c["id"]);
    assert_eq!(app.get(CE).await.body["items"].as_array().unwrap().len(), 2);
    assert!(!app.everything().await.contains("PRIVATE KEY"));
    let key_body: String = key.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(
        !contains(&app.data_bytes(), &key_body.as_bytes()[..60]),
        "private key stored in clear"
    );
    // The same certificate twice is a conflict.
    let again = app
        .post(
            CE,
            json!({"source": "import", "certificatePem": crt, "privateKeyPem": key}),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    // A connector whose FQDN it covers now presents it.
    let rc = app
        .patch(
            "/api/v1/receive-connectors/Default%20internal%20receive%20connector%20EDGE01",
            json!({"fqdn": "mail.contoso.test"}),
            None,
        )
        .await;
    assert_eq!(rc.body["tlsCertificate"], fp.as_str());
    assert!(
        rc.body["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|w| !w.as_str().unwrap().contains("STARTTLS"))
    );
}

#[tokio::test]
async fn broken_input_is_refused_with_the_field_at_fault() {
    let app = TestApp::spawn(Role::Edge).await;
    let (crt_a, _) = openssl_cert(
        app.dir.path(),
        "b",
        "b.contoso.test",
        "DNS:b.contoso.test",
        "rsa:2048",
    );
    let (_, key_c) = openssl_cert(
        app.dir.path(),
        "c",
        "c.contoso.test",
        "DNS:c.contoso.test",
        "rsa:2048",
    );
    let before = app.get(CE).await.body["items"].as_array().unwrap().len();
    app.post(
        CE,
        json!({"source": "import", "certificatePem": crt_a, "privateKeyPem": key_c}),
    )
    .await
    .assert_problem(422, "privateKeyPem");
    app.post(
        CE,
        json!({"source": "import", "certificatePem": "not a certificate", "privateKeyPem": key_c}),
    )
    .await
    .assert_problem(422, "certificatePem");
    let truncated =
        crt_a.lines().take(5).collect::<Vec<_>>().join("\n") + "\n-----END CERTIFICATE-----\n";
    app.post(
        CE,
        json!({"source": "import", "certificatePem": truncated, "privateKeyPem": key_c}),
    )
    .await
    .assert_problem(422, "certificatePem");
    app.post(
        CE,
        json!({"source": "import", "certificatePem": crt_a, "privateKeyPem": "garbage"}),
    )
    .await
    .assert_problem(422, "privateKeyPem");
    app.post(CE, json!({"source": "magic"}))
        .await
        .assert_problem(422, "source");
    app.post(CE, json!({"source": "selfSigned", "subjectNames": []}))
        .await
        .assert_problem(422, "subjectNames");
    app.post(
        CE,
        json!({"source": "selfSigned", "subjectNames": ["bad name"]}),
    )
    .await
    .assert_problem(422, "subjectNames[0]");
    app.post(
        CE,
        json!({"source": "trustAnchor", "certificatePem": crt_a, "privateKeyPem": key_c}),
    )
    .await
    .assert_problem(422, "privateKeyPem");
    assert_eq!(
        app.get(CE).await.body["items"].as_array().unwrap().len(),
        before,
        "nothing was stored"
    );
}

#[tokio::test]
async fn self_signed_and_trust_anchor() {
    let app = TestApp::spawn(Role::Hub).await;
    let s = app
        .create(CE, json!({"source": "selfSigned", "subjectNames": ["hub01.corp.contoso.test", "*.corp.contoso.test"], "validDays": 90}))
        .await;
    assert_eq!(s["subject"], "CN=hub01.corp.contoso.test");
    assert_eq!(s["selfSigned"], true);
    assert_eq!(s["hasPrivateKey"], true);
    let (ca, _) = openssl_cert(
        app.dir.path(),
        "ca",
        "Contoso Test CA",
        "DNS:ca.contoso.test",
        "rsa:2048",
    );
    let t = app
        .create(
            CE,
            json!({"source": "trustAnchor", "friendlyName": "Contoso CA", "certificatePem": ca}),
        )
        .await;
    assert_eq!(t["kind"], "TrustAnchor");
    assert_eq!(t["hasPrivateKey"], false);
    assert_eq!(t["subject"], "CN=Contoso Test CA");
    let id = t["id"].as_str().unwrap();
    let p = app
        .patch(
            &format!("{CE}/{id}"),
            json!({"friendlyName": "Contoso root"}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(p.body["friendlyName"], "Contoso root");
    app.patch(&format!("{CE}/{id}"), json!({"kind": "Certificate"}), None)
        .await
        .assert_problem(422, "kind");
    assert_eq!(
        app.delete(&format!("{CE}/{id}"), Some("\"1\""))
            .await
            .status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        app.delete(&format!("{CE}/{id}"), None).await.status,
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn a_certificate_in_use_cannot_be_deleted() {
    let app = TestApp::spawn(Role::Edge).await;
    // The install certificate serves the default connector's FQDN.
    let install = app.get(CE).await.body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app.delete(&format!("{CE}/{install}"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert!(
        r.text.contains("Default internal receive connector EDGE01"),
        "{}",
        r.text
    );

    // A pinned certificate is in use by the connector that pins it.
    let pinned = app
        .create(
            CE,
            json!({"source": "selfSigned", "subjectNames": ["other.contoso.test"]}),
        )
        .await;
    let name = pinned["tlsCertificateName"].as_str().unwrap();
    let rc = app
        .post(
            "/api/v1/receive-connectors",
            json!({"name": "Pinned", "usage": "Custom", "bindings": [app.bind(9, 25)],
            "remoteIpRanges": ["127.0.0.10"], "tlsCertificateName": name}),
        )
        .await;
    assert_eq!(rc.status, StatusCode::CREATED, "{}", rc.text);
    assert_eq!(rc.body["tlsCertificate"], pinned["sha256Fingerprint"]);
    let pid = pinned["id"].as_str().unwrap();
    let got = app.get(&format!("{CE}/{pid}")).await;
    assert_eq!(got.body["usedBy"][0]["how"], "Pinned");
    assert_eq!(
        app.delete(&format!("{CE}/{pid}"), None).await.status,
        StatusCode::CONFLICT
    );
    // A pin to a certificate that does not exist is refused.
    app.patch(
        "/api/v1/receive-connectors/Pinned",
        json!({"tlsCertificateName": "<I>CN=nobody<S>CN=nobody"}),
        None,
    )
    .await
    .assert_problem(422, "tlsCertificateName");
    app.patch(
        "/api/v1/receive-connectors/Pinned",
        json!({"tlsCertificateName": null}),
        None,
    )
    .await;
    assert_eq!(
        app.delete(&format!("{CE}/{pid}"), None).await.status,
        StatusCode::NO_CONTENT
    );
}
