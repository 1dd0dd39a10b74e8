//! Drain and transfer (issue 21): an Edge whose next hop is dead is
//! drained into another Edge over SMTP (STARTTLS, AUTH as a server login):
//! 5,000 queued messages all arrive there once, keeping their original
//! arrival time, and are delivered from there; the drained Edge refuses new
//! sessions with `421 4.3.2` until it resumes.

use crate::delivery::setup::{env, eventually};
use crate::support::app::TestApp;
use crate::support::client::Client;
use crate::support::pki::Ca;
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;

const PASSWORD: &str = "Edge01-Transfer-Pass-9x!";
const N: usize = 5000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_drained_edge_hands_its_whole_queue_to_another_and_nothing_is_lost() {
    if !crate::support::peers::require(&["smtp-source"]) {
        return;
    }
    // B, the Edge that takes over, with a CA-issued certificate for its name.
    let b = TestApp::spawn_with(Role::Edge, |s| {
        s.server_name = Some("EDGE02".into());
        s.fqdn = Some("edge02.corp.contoso.test".into());
    })
    .await;
    let bn = b.net;
    let ca = Ca::new(b.dir.path());
    let (crt, key) = ca.issue(&["edge02.corp.contoso.test"]);
    b.create(
        "/api/v1/certificates",
        json!({"source": "import", "certificatePem": crt, "privateKeyPem": key}),
    )
    .await;
    // A, the Edge to drain: its next hop for fabrikam.test is dead.
    let Some(a) = env(
        Role::Edge,
        &[&format!(
            "--host-record=edge02.corp.contoso.test,127.{bn}.0.3"
        )],
    )
    .await
    else {
        return;
    };
    let from_a = a.ip(2);
    b.create(
        "/api/v1/credentials",
        json!({"name": "edge01", "kind": "Login", "userName": "edge01", "principal": "Server", "password": PASSWORD}),
    )
    .await;
    b.create(
        "/api/v1/receive-connectors",
        json!({"name": "From Edges", "usage": "Internal", "bindings": [format!("127.{bn}.0.3:2525")],
               "remoteIpRanges": [from_a], "authMechanism": ["Tls", "BasicAuth", "BasicAuthRequireTLS"],
               "permissionGroups": ["ExchangeServers"], "tarpitInterval": "00:00:00",
               "messageRateLimit": "unlimited", "maxInboundConnectionPerSource": "unlimited"}),
    )
    .await;
    let sink_addr = format!("127.{bn}.0.20");
    b.create(
        "/api/v1/send-connectors",
        json!({"name": "To Fabrikam", "addressSpaces": ["fabrikam.test"], "smartHosts": [sink_addr], "port": 2525}),
    )
    .await;
    let r = b
        .patch(
            "/api/v1/transport-settings",
            json!({"queueGlitchRetryInterval": "00:00:01", "outboundConnectionFailureRetryInterval": "00:00:02",
                   "transientFailureRetryInterval": "00:00:02", "messageRetryInterval": "00:00:01"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    a.app
        .create(
            "/api/v1/certificates",
            json!({"source": "trustAnchor", "certificatePem": ca.cert_pem}),
        )
        .await;
    a.app
        .create(
            "/api/v1/credentials",
            json!({"name": "to-edge02", "kind": "SmartHost", "userName": "edge01", "password": PASSWORD}),
        )
        .await;
    a.connector(json!({"name": "To Fabrikam", "addressSpaces": ["fabrikam.test"], "smartHosts": [a.ip(99)], "port": 2525}))
        .await;
    a.connector(
        json!({"name": "To EDGE02", "addressSpaces": ["drain.invalid"],
        "smartHosts": ["edge02.corp.contoso.test"], "port": 2525, "sourceIPAddress": from_a,
        "smartHostAuthMechanism": "BasicAuthRequireTLS", "authenticationCredential": "to-edge02"}),
    )
    .await;
    let r = a
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"queueGlitchRetryInterval": "00:10:00", "outboundConnectionFailureRetryInterval": "00:10:00"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // smtp-source connects from 127.0.0.1.
    let load = a.app.bind(6, 2525);
    a.app
        .create(
            "/api/v1/receive-connectors",
            json!({"name": "Load", "usage": "Custom", "bindings": [load], "remoteIpRanges": ["127.0.0.1"],
                   "permissionGroups": ["AnonymousUsers"], "tarpitInterval": "00:00:00",
                   "messageRateLimit": "unlimited", "maxInboundConnectionPerSource": "unlimited",
                   "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]}),
        )
        .await;
    let out = tokio::process::Command::new("smtp-source")
        .args(["-s", "20", "-m", &N.to_string(), "-l", "512"])
        .args(["-f", "bob@contoso.test", "-t", "x@fabrikam.test", &load])
        .output()
        .await
        .expect("smtp-source runs");
    assert!(out.status.success(), "{out:?}");
    let count = |app: &TestApp| {
        let req = app
            .client
            .get(format!("{}/api/v1/messages?limit=1", app.base))
            .bearer_auth(&app.token);
        async move {
            req.send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()["total"]
                .as_i64()
                .unwrap()
        }
    };
    eventually(60, "5,000 messages queued on A", || async {
        count(&a.app).await == N as i64
    })
    .await;

    let drain_started = time::OffsetDateTime::now_utc();
    let r = a
        .app
        .post("/api/v1/server/drain", json!({"transferVia": "To EDGE02"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "Draining", "{}", r.text);
    // No new mail while draining.
    let (_, banner) = Client::open(&a.ip(30), &a.app.bind(5, 2525)).await;
    assert_eq!(
        banner.line(),
        ferry::smtp::replies::DRAINING.to_line(true).trim_end()
    );
    eventually(300, "A's whole queue handed to B", || async {
        count(&a.app).await == 0 && count(&b).await == N as i64
    })
    .await;
    let server = a.app.get("/api/v1/server").await;
    assert_eq!(server.body["drain"]["state"], "Drained", "{}", server.text);
    // On B, each message keeps the time it arrived on A, before the drain.
    let page = b.get("/api/v1/messages?limit=200").await;
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 200, "{}", page.text);
    for m in items {
        let at = time::OffsetDateTime::parse(
            m["receivedAt"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(
            at < drain_started,
            "arrived {at}, drain began {drain_started}: {m}"
        );
    }
    // B delivers them, each once, without the header that carried the time.
    let sink = Sink::start(&format!("{sink_addr}:2525"), SinkOptions::default()).await;
    eventually(300, "B delivered all 5,000", || async {
        sink.messages().len() >= N
    })
    .await;
    let delivered = sink.messages();
    assert_eq!(delivered.len(), N);
    let ids: std::collections::HashSet<String> = delivered
        .iter()
        .map(|(_, _, data)| {
            data.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("message-id:"))
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), N, "each message once, by its Message-ID");
    assert!(
        delivered
            .iter()
            .all(|(_, _, d)| !d.contains("X-Ferry-Organization-OriginalArrivalTime")),
        "the arrival header stays between the servers"
    );
    // Resume: A serves sessions again.
    let r = a.app.post("/api/v1/server/resume", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["state"], "Normal");
    let (_, banner) = Client::open(&a.ip(30), &a.app.bind(5, 2525)).await;
    assert_eq!(banner.code, 220, "{banner:?}");
}

/// A transfer connector must authenticate over TLS to another server, and
/// an arrival time is taken only from a session that may set the
/// organization's headers.
#[tokio::test]
async fn a_transfer_goes_only_over_an_authenticated_tls_connector() {
    let app = TestApp::spawn(Role::Edge).await;
    let n = app.net;
    app.create(
        "/api/v1/send-connectors",
        json!({"name": "Plain", "addressSpaces": ["drain.invalid"], "smartHosts": [format!("127.{n}.0.9")]}),
    )
    .await;
    app.create(
        "/api/v1/send-connectors",
        json!({"name": "Dns", "addressSpaces": ["drain2.invalid"]}),
    )
    .await;
    for (via, why) in [
        ("Plain", "BasicAuthRequireTLS"),
        ("Dns", "routes by DNS"),
        ("Missing", "no send connector"),
    ] {
        let r = app
            .post("/api/v1/server/drain", json!({"transferVia": via}))
            .await;
        r.assert_problem(422, "transferVia");
        assert!(r.text.contains(why), "{}", r.text);
    }
    assert_eq!(
        app.get("/api/v1/server").await.body["drain"]["state"],
        "Normal"
    );
    // An anonymous client's arrival header is removed and ignored.
    app.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    let (mut c, _) = Client::open(&format!("127.{n}.0.40"), &app.bind(1, 2525)).await;
    c.cmd("EHLO anon").await;
    let r = c
        .send_mail(
            "a@fabrikam.test",
            &["bob@contoso.test"],
            "X-Ferry-Organization-OriginalArrivalTime: 2001-01-01T00:00:00Z\r\nSubject: old\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{r:?}");
    let q = crate::support::scenario::queued(&app).await;
    assert!(!q[0].3.contains("OriginalArrivalTime"), "{}", q[0].3);
    let m = app.get("/api/v1/messages?limit=1").await;
    let at = m.body["items"][0]["receivedAt"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!at.starts_with("2001"), "{at}");
}
