//! ACME certificates (issue 21 part 4) against Pebble, Let's Encrypt's
//! test CA, on loopback: issued over http-01 and tls-alpn-01, presented by
//! STARTTLS and the API's HTTPS, renewed by force without a restart, a
//! failure shown in the state, and the configuration document carrying
//! the ACME certificate but not what it issued.

use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::client::Client;
use crate::support::dns::Dnsmasq;
use crate::support::pebble::Pebble;
use crate::support::peers;
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Polls an ACME certificate until `done` holds of it (at most a minute).
async fn until(app: &TestApp, name: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..600 {
        let r = app.get(&format!("/api/v1/acme-certificates/{name}")).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.text);
        last = r.body.clone();
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ACME certificate {name} never got there: {last:#}");
}

fn status(v: &Value) -> &str {
    v["state"]["status"].as_str().unwrap_or_default()
}

/// `curl` to the API by name, trusting only `root_file`: the HTTPS
/// certificate must chain to it and name `host`.
fn curl_api(api: &str, host: &str, root_file: &std::path::Path) -> Result<String, String> {
    let (ip, port) = api.rsplit_once(':').unwrap();
    let out = std::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--resolve"])
        .arg(format!("{host}:{port}:{ip}"))
        .arg("--cacert")
        .arg(root_file)
        .arg(format!("https://{host}:{port}/healthz"))
        .output()
        .expect("curl runs");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_issues_starttls_presents_and_a_forced_renewal_swaps_without_a_restart() {
    if !peers::require(&["pebble", "dnsmasq"]) {
        return;
    }
    let app = TestApp::spawn_with(Role::Edge, |s| s.api_tls = true).await;
    let edge_ip = app.bind(1, 1).rsplit_once(':').unwrap().0.to_string();
    let pebble_ip = app.bind(20, 1).rsplit_once(':').unwrap().0.to_string();
    let dns_ip = app.bind(53, 1).rsplit_once(':').unwrap().0.to_string();
    let dns = Dnsmasq::start(
        &dns_ip,
        &[
            format!("--host-record=edge01.contoso.test,{edge_ip}"),
            format!("--host-record=mail.contoso.test,{edge_ip}"),
        ],
    )
    .await;
    let pebble = Pebble::start(&pebble_ip, &dns.server, 5002, 5001).await;

    // Pebble's directory is served under a private CA: a trust anchor.
    let r = app
        .post(
            "/api/v1/certificates",
            json!({"source": "trustAnchor", "friendlyName": "Pebble's HTTPS",
                   "certificatePem": pebble.https_ca}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);

    // Before: the self-signed certificate made at first start.
    let root = pebble.issuing_root();
    let root_file = app.dir.path().join("pebble-root.pem");
    std::fs::write(&root_file, &root).unwrap();
    let smtp = app.bind(1, 2525);
    let client_ip = app.bind(9, 1).rsplit_once(':').unwrap().0.to_string();
    let mut c = Client::connect(&client_ip, &smtp).await.unwrap();
    c.reply().await.expect("a banner");
    c.cmd("EHLO client.test").await;
    assert!(
        c.starttls("edge01.contoso.test", &root).await.is_err(),
        "the self-signed certificate does not chain to Pebble's root"
    );
    let api = app.base.trim_start_matches("https://").to_string();
    assert!(curl_api(&api, "edge01.contoso.test", &root_file).is_err());

    // http-01 on the Edge's address, port 5002 (Pebble's httpPort).
    let r = app
        .post(
            "/api/v1/acme-certificates",
            json!({"name": "edge", "directoryUrl": pebble.directory,
                   "contact": ["postmaster@contoso.test"],
                   "subjectNames": ["edge01.contoso.test"],
                   "challengeBinding": format!("{edge_ip}:5002")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body.clone()["challenge"], "http-01");
    let valid = until(&app, "edge", |v| status(v) == "Valid").await;
    let first = valid["state"]["certificate"].as_str().unwrap().to_string();
    assert_eq!(valid["state"]["accountRegistered"], true);
    assert_eq!(valid["state"]["lastError"], Value::Null);
    assert!(
        valid["state"]["renewAt"].as_str().unwrap() < valid["state"]["notAfter"].as_str().unwrap()
    );

    // The certificates API lists it, marked as the ACME certificate's.
    let cert = app.get(&format!("/api/v1/certificates/{first}")).await.body;
    assert_eq!(cert["acme"], "edge");
    assert_eq!(cert["hasPrivateKey"], true);
    assert!(
        cert["issuer"].as_str().unwrap().contains("Pebble"),
        "{cert:#}"
    );
    assert!(
        cert["chainLength"].as_u64().unwrap() >= 2,
        "the chain comes with it"
    );

    // STARTTLS presents it, valid for the FQDN under Pebble's root…
    let mut c = Client::connect(&client_ip, &smtp).await.unwrap();
    c.reply().await.expect("a banner");
    c.cmd("EHLO client.test").await;
    let (mut tls, presented) = c
        .starttls_thumbprint("edge01.contoso.test", &root)
        .await
        .expect("STARTTLS validates against Pebble's root");
    assert_eq!(presented, first);
    assert_eq!(tls.cmd("EHLO client.test").await.code, 250);
    // …and so does the API's HTTPS.
    let health = curl_api(&api, "edge01.contoso.test", &root_file).expect("HTTPS validates");
    assert!(health.contains("\"ok\""), "{health}");

    // A forced renewal: a new certificate, swapped in, the old one gone.
    let r = app
        .post("/api/v1/acme-certificates/edge/renew", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.text);
    assert_eq!(status(&r.body.clone()), "Ordering");
    let renewed = until(&app, "edge", |v| {
        status(v) == "Valid" && v["state"]["certificate"].as_str() != Some(first.as_str())
    })
    .await;
    let second = renewed["state"]["certificate"]
        .as_str()
        .unwrap()
        .to_string();
    let mut c = Client::connect(&client_ip, &smtp).await.unwrap();
    c.reply().await.expect("a banner");
    c.cmd("EHLO client.test").await;
    let (_, presented) = c
        .starttls_thumbprint("edge01.contoso.test", &root)
        .await
        .unwrap();
    assert_eq!(
        presented, second,
        "the listener presents the renewed certificate"
    );
    assert_eq!(
        app.get(&format!("/api/v1/certificates/{first}"))
            .await
            .status,
        StatusCode::NOT_FOUND,
        "the replaced certificate is removed"
    );
    curl_api(&api, "edge01.contoso.test", &root_file).expect("HTTPS after the renewal");

    // tls-alpn-01, on port 5001 (Pebble's tlsPort).
    let r = app
        .post(
            "/api/v1/acme-certificates",
            json!({"name": "mail", "directoryUrl": pebble.directory,
                   "subjectNames": ["mail.contoso.test"], "challenge": "tls-alpn-01",
                   "challengeBinding": format!("{edge_ip}:5001")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let alpn = until(&app, "mail", |v| status(v) == "Valid").await;
    let t = alpn["state"]["certificate"].as_str().unwrap();
    let cert = app.get(&format!("/api/v1/certificates/{t}")).await.body;
    assert_eq!(cert["acme"], "mail");
    assert_eq!(
        cert["subjectAlternativeNames"],
        json!(["mail.contoso.test"])
    );

    // A name the CA cannot validate: the failure is in the state, with the
    // CA's reason, and a retry is scheduled.
    let r = app
        .post(
            "/api/v1/acme-certificates",
            json!({"name": "nowhere", "directoryUrl": pebble.directory,
                   "subjectNames": ["nowhere.contoso.test"],
                   "challengeBinding": format!("{edge_ip}:5002")}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let failed = until(&app, "nowhere", |v| status(v) == "Failed").await;
    let why = failed["state"]["lastError"].as_str().unwrap();
    assert!(why.contains("nowhere.contoso.test"), "{why}");
    assert_eq!(failed["state"]["failures"], 1);
    assert!(failed["state"]["nextAttempt"].is_string());
    assert_eq!(failed["state"]["certificate"], Value::Null);

    // The configuration document carries the ACME certificates, not what
    // they issued; applying it changes nothing and deletes none of those.
    let doc = app.get("/api/v1/config").await.body;
    assert_eq!(
        doc["acmeCertificates"]["edge"]["subjectNames"],
        json!(["edge01.contoso.test"])
    );
    assert!(doc["acmeCertificates"]["edge"].get("secret").is_none());
    let certs = doc["certificates"].as_object().unwrap();
    assert!(
        !certs.contains_key(&second),
        "an issued certificate is not in the document"
    );
    assert!(certs.values().all(|c| c.get("acme").is_none()));
    let r = app.request("PUT", "/api/v1/config", Some(doc), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let plan = r.body.clone();
    assert!(
        plan["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|o| o["action"] == "Unchanged"),
        "{plan:#}"
    );
    assert_eq!(
        app.get(&format!("/api/v1/certificates/{second}"))
            .await
            .status,
        StatusCode::OK
    );

    // Bad input: a plain-HTTP directory, a single-label name.
    for (body, field) in [
        (
            json!({"name": "bad", "directoryUrl": "http://127.0.0.1/dir", "subjectNames": ["a.test"]}),
            "directoryUrl",
        ),
        (
            json!({"name": "bad", "directoryUrl": pebble.directory, "subjectNames": ["edge"]}),
            "subjectNames[0]",
        ),
    ] {
        app.post("/api/v1/acme-certificates", body)
            .await
            .assert_problem(422, field);
    }
    assert_eq!(
        app.get("/api/v1/acme-certificates/bad").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Renewal before expiry with nobody asking: Pebble issues 30-second
/// certificates, so the second half of each one's life is the renewal
/// window (a certificate shorter-lived than twice `renewBeforeDays`
/// renews at half its life).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_is_renewed_before_it_expires_without_a_restart() {
    if !peers::require(&["pebble", "dnsmasq"]) {
        return;
    }
    let app = TestApp::spawn(Role::Edge).await;
    let edge_ip = app.bind(1, 1).rsplit_once(':').unwrap().0.to_string();
    let pebble_ip = app.bind(20, 1).rsplit_once(':').unwrap().0.to_string();
    let dns_ip = app.bind(53, 1).rsplit_once(':').unwrap().0.to_string();
    let client_ip = app.bind(9, 1).rsplit_once(':').unwrap().0.to_string();
    let dns = Dnsmasq::start(
        &dns_ip,
        &[format!("--host-record=edge01.contoso.test,{edge_ip}")],
    )
    .await;
    let pebble = Pebble::start_with_validity(&pebble_ip, &dns.server, 5002, 5001, Some(30)).await;
    app.create(
        "/api/v1/certificates",
        json!({"source": "trustAnchor", "certificatePem": pebble.https_ca}),
    )
    .await;
    app.create(
        "/api/v1/acme-certificates",
        json!({"name": "edge", "directoryUrl": pebble.directory,
               "subjectNames": ["edge01.contoso.test"],
               "challengeBinding": format!("{edge_ip}:5002")}),
    )
    .await;
    let first = until(&app, "edge", |v| status(v) == "Valid").await;
    let thumbprint = first["state"]["certificate"].as_str().unwrap().to_string();
    let renew_at = time::OffsetDateTime::parse(
        first["state"]["renewAt"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let not_after = time::OffsetDateTime::parse(
        first["state"]["notAfter"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!(renew_at < not_after, "{first:#}");

    // No request: the next certificate arrives before the first expires.
    let mut next = Value::Null;
    for _ in 0..400 {
        next = app.get("/api/v1/acme-certificates/edge").await.body;
        if status(&next) == "Valid" && next["state"]["certificate"] != thumbprint.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let renewed = next["state"]["certificate"].as_str().unwrap().to_string();
    assert_ne!(renewed, thumbprint, "renewed by itself: {next:#}");
    assert!(
        time::OffsetDateTime::now_utc() < not_after,
        "renewed before the first certificate expired"
    );
    let root = pebble.issuing_root();
    let mut c = Client::connect(&client_ip, &app.bind(1, 2525))
        .await
        .unwrap();
    c.reply().await.expect("a banner");
    c.cmd("EHLO client.test").await;
    let (_, presented) = c
        .starttls_thumbprint("edge01.contoso.test", &root)
        .await
        .unwrap();
    assert_eq!(presented, renewed);
}
