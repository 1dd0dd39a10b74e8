//! Explain (issue 20): which receive connector takes a connection, and
//! why each other one does not, compared with the connector real sessions
//! land on (each connector greets with its own FQDN) for a table of
//! (local, remote) pairs.

use crate::support::app::TestApp;
use crate::support::client::Client;
use ferry::model::Role;
use serde_json::{Value, json};

#[tokio::test]
async fn the_receive_explanation_is_the_connector_a_session_lands_on() {
    let app = TestApp::spawn(Role::Edge).await;
    let n = app.net;
    let ip = |h: u8| format!("127.{n}.0.{h}");
    let connector = |name: &str, host: u8, port: u16, ranges: Value, enabled: bool| {
        json!({"name": name, "usage": "Custom", "bindings": [format!("127.{n}.0.{host}:{port}")],
               "remoteIpRanges": ranges, "fqdn": format!("{}.edge.test", name.to_lowercase()),
               "enabled": enabled})
    };
    for c in [
        connector("Loopback", 7, 2526, json!(["127.0.0.0/8"]), true),
        connector("Net", 7, 2526, json!([format!("127.{n}.0.0/24")]), true),
        connector("Host", 7, 2526, json!([ip(41)]), true),
        connector("Off", 7, 2526, json!([ip(42)]), false),
        connector("Other", 8, 2526, json!([format!("127.{n}.0.0/24")]), true),
    ] {
        app.create("/api/v1/receive-connectors", c).await;
    }
    // (local host, local port, client) -> the connector expected, if any.
    let table: [(u8, u16, String, Option<&str>); 6] = [
        (7, 2526, ip(41), Some("Host")),
        (7, 2526, ip(42), Some("Net")),
        (7, 2526, ip(43), Some("Net")),
        (7, 2526, "127.201.0.9".into(), Some("Loopback")),
        (8, 2526, ip(41), Some("Other")),
        (8, 2526, "127.201.0.9".into(), None),
    ];
    for (host, port, client, expected) in &table {
        let r = app
            .post(
                "/api/v1/receive-connectors/explain",
                json!({"localAddress": ip(*host), "localPort": port, "remoteAddress": client}),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text);
        let x = r.body;
        assert_eq!(
            x["selected"].as_str(),
            *expected,
            "{client} -> {}:{port}: {x}",
            ip(*host)
        );
        // A real session from that client to that address.
        let mut c = Client::connect(client, &format!("{}:{port}", ip(*host)))
            .await
            .expect("connects");
        let banner = c.reply().await.expect("a first reply");
        match expected {
            Some(name) => {
                assert_eq!(banner.code, 220, "{banner:?}");
                assert!(
                    banner
                        .text
                        .starts_with(&format!("{}.edge.test", name.to_lowercase())),
                    "{client} landed on {banner:?}, explain said {name}"
                );
                assert_eq!(x["reply"], Value::Null);
                assert_eq!(x["candidates"][0]["name"], *name);
                assert_eq!(x["candidates"][0]["verdict"], "Selected");
            }
            None => {
                assert_eq!(banner.code, 421, "{banner:?}");
                assert_eq!(x["reply"], "421 4.3.2 Service not available");
                assert_eq!(x["offer"], Value::Null);
            }
        }
    }

    // The reasons, for the client that a single-host range captures.
    let x = app
        .post(
            "/api/v1/receive-connectors/explain",
            json!({"localAddress": ip(7), "localPort": 2526, "remoteAddress": ip(41)}),
        )
        .await
        .body;
    let verdict = |name: &str| {
        x["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {x}"))
            .clone()
    };
    assert_eq!(verdict("Host")["remoteIpRange"], ip(41));
    assert_eq!(verdict("Net")["verdict"], "Lost");
    assert!(
        verdict("Net")["reason"]
            .as_str()
            .unwrap()
            .contains("smaller remote range"),
        "{x}"
    );
    assert_eq!(verdict("Off")["verdict"], "Disabled");
    assert_eq!(verdict("Other")["verdict"], "NoBinding");
    // The default connectors listen elsewhere.
    assert!(
        x["candidates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["verdict"] == "NoBinding")
            .count()
            >= 2
    );
    // What the client is offered: an anonymous session, no AUTH on Custom.
    assert_eq!(x["offer"]["principal"], "Anonymous");
    assert_eq!(x["offer"]["fqdn"], "host.edge.test");
    assert_eq!(x["offer"]["auth"], "No");

    // A View-Only token may ask; asking changes nothing and is not audited.
    let before = app.get("/api/v1/audit-log?limit=1000").await.body["items"]
        .as_array()
        .unwrap()
        .len();
    let viewer = app
        .create(
            "/api/v1/api-tokens",
            json!({"name": "viewer", "role": "View-Only"}),
        )
        .await["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let r = app
        .request_as(
            Some(&viewer),
            "POST",
            "/api/v1/receive-connectors/explain",
            Some(json!({"localAddress": ip(7), "localPort": 2526, "remoteAddress": ip(41)})),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = app.get("/api/v1/audit-log?limit=1000").await.body["items"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(after, before + 1, "only the token's creation is audited");
    // A malformed question is a problem naming the field.
    app.post(
        "/api/v1/receive-connectors/explain",
        json!({"localAddress": "10.0.0.300", "localPort": 25, "remoteAddress": ip(41)}),
    )
    .await
    .assert_problem(422, "localAddress");
}

/// Save-time lints: a send connector out of scope on this server or
/// shadowed by a cheaper one, a receive range that would capture a Hub's
/// or Edge's clients.
#[tokio::test]
async fn lints_name_connectors_that_would_not_do_what_they_seem_to() {
    let app = TestApp::spawn(Role::Hub).await;
    let n = app.net;
    let warnings = |v: &Value| v["warnings"].to_string();
    let elsewhere = app
        .create(
            "/api/v1/send-connectors",
            json!({"name": "Elsewhere", "addressSpaces": ["northwind.test"], "smartHosts": ["10.0.0.1"],
                   "sourceTransportServers": ["hub09"]}),
        )
        .await;
    assert!(
        warnings(&elsewhere).contains("not among its sourceTransportServers"),
        "{elsewhere}"
    );
    let cheap = app
        .create(
            "/api/v1/send-connectors",
            json!({"name": "Cheap", "addressSpaces": ["fabrikam.test;1"], "smartHosts": ["10.0.0.2"]}),
        )
        .await;
    assert_eq!(cheap["warnings"], json!([]));
    let dear = app
        .create(
            "/api/v1/send-connectors",
            json!({"name": "Dear", "addressSpaces": ["fabrikam.test;5", "tailspin.test"], "smartHosts": ["10.0.0.3"]}),
        )
        .await;
    let w = warnings(&dear);
    assert!(
        w.contains("fabrikam.test;5 is shadowed by 'Cheap'") && !w.contains("tailspin"),
        "{dear}"
    );
    // The explain answer agrees.
    let x = app
        .post(
            "/api/v1/routing/explain",
            json!({"recipient": "a@fabrikam.test"}),
        )
        .await
        .body;
    assert_eq!(x["connector"], "Cheap", "{x}");

    // A narrower range on the binding of a connector for the Edges.
    let edges = json!({"name": "From Edges", "usage": "Internal", "bindings": [format!("127.{n}.0.9:2525")],
                       "remoteIpRanges": [format!("127.{n}.0.0/24")], "permissionGroups": ["ExchangeServers"],
                       "authMechanism": ["Tls"]});
    let made = app.create("/api/v1/receive-connectors", edges).await;
    assert_eq!(made["warnings"].as_array().map(Vec::len), Some(0), "{made}");
    let narrow = app
        .create(
            "/api/v1/receive-connectors",
            json!({"name": "Scanner", "usage": "Custom", "bindings": [format!("127.{n}.0.9:2525")],
                   "remoteIpRanges": [format!("127.{n}.0.20")]}),
        )
        .await;
    assert!(
        warnings(&narrow).contains("serves as Hubs or Edges"),
        "{narrow}"
    );
    // Another port: nothing captured.
    let apart = app
        .create(
            "/api/v1/receive-connectors",
            json!({"name": "Apart", "usage": "Custom", "bindings": [format!("127.{n}.0.9:2526")],
                   "remoteIpRanges": [format!("127.{n}.0.20")]}),
        )
        .await;
    assert!(!warnings(&apart).contains("Hubs or Edges"), "{apart}");
}
