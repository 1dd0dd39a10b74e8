//! The API over HTTPS (issue 19): served with the store's certificate for
//! the server FQDN, a replacement imported through the API served at once,
//! HSTS on every answer, and plain HTTP refused off loopback.

use crate::support::app::TestApp;
use crate::support::pki::Ca;
use ferry::model::Role;
use ferry::startup::{App, Settings};
use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;

/// What `openssl s_client` sees at `addr`: (subject and issuer lines,
/// verification result), verifying against `ca` for `name`.
fn s_client(addr: &str, ca: &std::path::Path, name: &str) -> (String, String) {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            addr,
            "-servername",
            name,
            "-verify_hostname",
            name,
        ])
        .arg("-CAfile")
        .arg(ca)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl runs");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let who = text
        .lines()
        .filter(|l| l.starts_with("subject=") || l.starts_with("issuer="))
        .collect::<Vec<_>>()
        .join("\n");
    let verify = text
        .lines()
        .find(|l| l.trim_start().starts_with("Verify return code:"))
        .unwrap_or("")
        .trim()
        .to_string();
    (who, verify)
}

// Several threads: openssl and the health check block this one while
// Ferry, in the same process, answers them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_over_https_serves_the_store_certificate_and_a_new_one_without_a_restart() {
    let app = TestApp::spawn_with(Role::Hub, |s| s.api_tls = true).await;
    assert!(app.base.starts_with("https://"));
    let addr = app.base.trim_start_matches("https://").to_string();
    let ca = Ca::new(app.dir.path());
    let ca_file = app.dir.path().join("ca.pem");
    std::fs::write(&ca_file, &ca.cert_pem).unwrap();

    // First: the self-signed certificate made at first start, whose
    // thumbprint the API lists.
    let r = app.get("/api/v1/server").await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["strict-transport-security"], "max-age=31536000");
    let (who, verify) = s_client(&addr, &ca_file, "hub01.contoso.test");
    assert!(
        who.contains("subject=CN = HUB01") && who.contains("issuer=CN = HUB01"),
        "{who}"
    );
    assert!(
        !verify.contains("0 (ok)"),
        "not trusted by the test CA: {verify}"
    );

    // A CA-issued certificate for the FQDN, imported through the API: the
    // next connection gets it, and it verifies for the name.
    let (crt, key) = ca.issue(&["hub01.contoso.test"]);
    app.create(
        "/api/v1/certificates",
        json!({"source": "import", "friendlyName": "API", "certificatePem": crt, "privateKeyPem": key}),
    )
    .await;
    let (who, verify) = s_client(&addr, &ca_file, "hub01.contoso.test");
    assert!(who.contains("issuer=CN = Ferry Test CA"), "{who}");
    assert_eq!(verify, "Verify return code: 0 (ok)");

    // A client that trusts only the CA, by the FQDN, with a token.
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let strict = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap())
        .resolve("hub01.contoso.test", addr.parse().unwrap())
        .build()
        .unwrap();
    let r = strict
        .get(format!("https://hub01.contoso.test:{port}/api/v1/server"))
        .bearer_auth(&app.token)
        .send()
        .await
        .expect("verified HTTPS");
    assert_eq!(r.status(), StatusCode::OK);

    // Plain HTTP to the HTTPS port gets nowhere.
    let plain = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));

    // The container's health check speaks HTTPS too.
    let bin = env!("CARGO_BIN_EXE_ferry");
    let ok = Command::new(bin)
        .args(["healthcheck", "--api-tls", "--api-listen", &addr])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let plain = Command::new(bin)
        .args(["healthcheck", "--api-listen", &addr])
        .output()
        .unwrap();
    assert!(!plain.status.success());
    assert!(String::from_utf8_lossy(&plain.stderr).contains("--api-tls"));
}

#[tokio::test]
async fn plain_http_off_loopback_is_refused_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::for_tests(dir.path().join("data"), Role::Edge);
    s.api_listen = "0.0.0.0:0".parse().unwrap();
    let err = match App::build(s).await {
        Ok(_) => panic!("Ferry started with the API in clear on every address"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("--api-tls") && err.contains("--api-insecure-http"),
        "{err}"
    );
    // Nothing was created: the check comes before the data directory.
    assert!(!dir.path().join("data").join("ferry.db").exists());
}

/// CORS is closed unless origins are given: a preflight from another
/// site's page gets no `Access-Control-Allow-Origin`; a listed origin does,
/// and only for itself.
#[tokio::test]
async fn cors_is_closed_unless_an_origin_is_allowed() {
    let preflight = |app: &TestApp, origin: &str| {
        app.client
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/api/v1/receive-connectors", app.base),
            )
            .header("Origin", origin.to_string())
            .header("Access-Control-Request-Method", "POST")
            .header(
                "Access-Control-Request-Headers",
                "authorization, content-type",
            )
            .send()
    };
    let closed = TestApp::spawn(Role::Edge).await;
    let r = preflight(&closed, "https://ops.contoso.test")
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    let r = closed
        .client
        .get(format!("{}/api/v1/server", closed.base))
        .bearer_auth(&closed.token)
        .header("Origin", "https://evil.test")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let open = TestApp::spawn_with(Role::Edge, |s| {
        s.api_cors_origins = vec!["https://ops.contoso.test".into()]
    })
    .await;
    let r = preflight(&open, "https://ops.contoso.test").await.unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://ops.contoso.test"
    );
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("if-match"),
        "{allowed}"
    );
    let r = preflight(&open, "https://evil.test").await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
    // The token is still needed.
    let r = open
        .client
        .get(format!("{}/api/v1/server", open.base))
        .header("Origin", "https://ops.contoso.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // A malformed origin stops the start, naming it.
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::for_tests(dir.path().join("data"), Role::Edge);
    s.api_cors_origins = vec!["https://ops.contoso.test/".into()];
    let err = match App::build(s).await {
        Ok(_) => panic!("a path in an origin was accepted"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains("--api-cors-origin 'https://ops.contoso.test/'"),
        "{err}"
    );
}

/// Mutual TLS for automation: a token bound to a client certificate's
/// thumbprint is that certificate's, with no bearer; clients are asked for
/// a certificate only once some token is bound to one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_certificate_bound_to_a_token_authenticates_without_a_bearer() {
    let app = TestApp::spawn_with(Role::Hub, |s| s.api_tls = true).await;
    let addr = app.base.trim_start_matches("https://").to_string();
    let dir = app.dir.path();
    let make = |name: &str| {
        let out = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args(["-days", "2", "-subj", &format!("/CN={name}")])
            .arg("-keyout")
            .arg(dir.join(format!("{name}.key")))
            .arg("-out")
            .arg(dir.join(format!("{name}.crt")))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let fp = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(dir.join(format!("{name}.crt")))
            .output()
            .unwrap();
        let fp = String::from_utf8_lossy(&fp.stdout).to_string();
        let pem = std::fs::read_to_string(dir.join(format!("{name}.crt"))).unwrap()
            + &std::fs::read_to_string(dir.join(format!("{name}.key"))).unwrap();
        (fp.trim().split('=').nth(1).unwrap().to_string(), pem)
    };
    let asked = |addr: &str| {
        let out = Command::new("openssl")
            .args(["s_client", "-connect", addr])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        // Printed only when the server sent a CertificateRequest.
        String::from_utf8_lossy(&out.stdout).contains("Requested Signature Algorithms")
    };
    assert!(
        !asked(&addr),
        "no certificate is asked for while no token is bound to one"
    );

    let (thumb, pem) = make("ansible");
    let (_, stranger) = make("stranger");
    let r = app
        .post(
            "/api/v1/api-tokens",
            json!({"name": "ansible", "role": "Operator", "clientCertificateSha256": thumb}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(
        r.body["clientCertificateSha256"],
        thumb.replace(':', "").to_lowercase()
    );
    app.post(
        "/api/v1/api-tokens",
        json!({"name": "bad", "role": "Operator", "clientCertificateSha256": "12:34"}),
    )
    .await
    .assert_problem(422, "clientCertificateSha256");
    assert!(
        asked(&addr),
        "clients are asked for a certificate once one is bound"
    );

    let with = |pem: &str| {
        reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .identity(reqwest::Identity::from_pem(pem.as_bytes()).unwrap())
            .build()
            .unwrap()
    };
    let ansible = with(&pem);
    let r = ansible
        .get(format!("{}/api/v1/queues", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "the certificate is the token");
    let r = ansible
        .post(format!("{}/api/v1/accepted-domains", app.base))
        .json(&json!({"domainName": "x.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "with the token's role");
    let e = &app.get("/api/v1/audit-log?token=ansible").await.body["items"][0];
    assert_eq!(e["status"], 403, "{e}");
    // A certificate bound to nothing, and no certificate: 401.
    let r = with(&stranger)
        .get(format!("{}/api/v1/queues", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Browsers without certificates are not hindered.
    let r = app
        .client
        .get(format!("{}/api/v1/queues", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Revoked: the certificate no longer works.
    assert_eq!(
        app.delete("/api/v1/api-tokens/ansible", None).await.status,
        StatusCode::NO_CONTENT
    );
    let r = with(&pem)
        .get(format!("{}/api/v1/queues", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}
