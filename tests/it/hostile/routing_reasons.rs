//! A Hub's send connector names its source servers as the admin wrote
//! them, short name or FQDN in any case; and mail routed nowhere says why.

use crate::support::app::TestApp;
use crate::support::client::Client;
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;
use std::time::Duration;

#[tokio::test]
async fn source_transport_servers_by_fqdn_route_and_unreachable_says_why() {
    let app = TestApp::spawn(Role::Hub).await;
    let ip = |h: u8| format!("127.{}.0.{h}", app.net);
    let sink = Sink::start(&format!("{}:2525", ip(16)), SinkOptions::default()).await;
    for d in ["contoso.test", "fabrikam.test"] {
        app.create("/api/v1/accepted-domains", json!({"domainName": d}))
            .await;
    }
    // The article's own form: FQDNs, here in upper case.
    app.create(
        "/api/v1/send-connectors",
        json!({"name": "To Edge", "addressSpaces": ["contoso.test"],
        "smartHosts": [ip(16)], "port": 2525, "sourceTransportServers": ["HUB01.CONTOSO.TEST"]}),
    )
    .await;
    app.create(
        "/api/v1/send-connectors",
        json!({"name": "Other hub", "addressSpaces": ["fabrikam.test"],
        "smartHosts": [ip(16)], "port": 2525, "sourceTransportServers": ["hub02.contoso.test"]}),
    )
    .await;
    app.create("/api/v1/receive-connectors", json!({"name": "test client", "usage": "Custom",
        "bindings": [app.bind(4, 2525)], "remoteIpRanges": [ip(20)], "permissionGroups": ["AnonymousUsers"],
        "tarpitInterval": "00:00:00"})).await;
    let (mut c, _) = Client::open(&ip(20), &app.bind(4, 2525)).await;
    c.cmd("EHLO client.test").await;
    assert_eq!(
        c.send_mail(
            "a@contoso.test",
            &["bob@contoso.test"],
            "Subject: in scope\r\n\r\nhi\r\n"
        )
        .await
        .code,
        250
    );
    assert_eq!(
        c.send_mail(
            "a@contoso.test",
            &["alice@fabrikam.test"],
            "Subject: out of scope\r\n\r\nhi\r\n"
        )
        .await
        .code,
        250
    );

    let mut delivered = false;
    let mut unreachable = None;
    for _ in 0..100 {
        delivered = !sink.messages().is_empty();
        let queues = app.get("/api/v1/queues").await.body;
        unreachable = queues["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["deliveryType"] == "Unreachable")
            .cloned();
        if delivered && unreachable.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivered,
        "the FQDN in sourceTransportServers puts the connector in scope"
    );
    let q = unreachable.expect("the out-of-scope message waits in Unreachable");
    let why = q["lastError"].as_str().unwrap_or_default().to_string();
    assert!(
        why.contains("'Other hub'") && why.contains("HUB01"),
        "lastError says why: {q}"
    );
    let events = app
        .get("/api/v1/tracking?recipient=alice@fabrikam.test&event=ROUTE")
        .await
        .body;
    assert!(
        events.to_string().contains("does not list this server"),
        "the ROUTE event says why: {events}"
    );
}
