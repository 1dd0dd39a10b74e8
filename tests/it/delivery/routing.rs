//! Send-connector selection and MX routing against real DNS (dnsmasq).

use crate::delivery::setup::{env, eventually};
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;

#[tokio::test]
async fn selection_prefers_specific_then_cost_then_name() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let mut sinks = vec![];
    for h in 40..47u8 {
        sinks.push(Sink::start(&format!("{}:2525", e.ip(h)), SinkOptions::default()).await);
    }
    let c = |name: &str, spaces: serde_json::Value, host: u8| json!({"name": name, "addressSpaces": spaces, "smartHosts": [format!("127.{}.0.{host}", e.app.net)], "port": 2525});
    e.connector(c("Exact", json!(["fabrikam.test"]), 40)).await;
    e.connector(c("Wildcard", json!(["*.fabrikam.test"]), 41))
        .await;
    e.connector(c("Star", json!(["*"]), 42)).await;
    e.connector(c("Expensive", json!(["cost.test;5"]), 43))
        .await;
    e.connector(c("Cheap", json!(["cost.test;2"]), 44)).await;
    e.connector(c("Bravo", json!(["name.test"]), 45)).await;
    e.connector(c("Alpha", json!(["name.test"]), 46)).await;
    // Too small for the message: dropped before the rest of the rules.
    e.connector(json!({"name": "Tiny", "addressSpaces": ["big.test"], "smartHosts": [e.ip(40)], "port": 2525, "maxMessageSize": 10})).await;
    let cases = [
        ("a@fabrikam.test", 0),
        ("b@sub.fabrikam.test", 1),
        ("c@elsewhere.test", 2),
        ("d@cost.test", 4),
        ("e@name.test", 6),
        ("f@big.test", 2),
    ];
    for (rcpt, _) in cases {
        e.submit("bob@contoso.test", &[rcpt], rcpt).await;
    }
    for (rcpt, sink) in cases {
        eventually(15, &format!("{rcpt} reaches sink {sink}"), || async {
            sinks[sink]
                .messages()
                .iter()
                .any(|m| m.1.contains(&rcpt.to_string()))
        })
        .await;
    }
}

#[tokio::test]
async fn mx_order_and_failover_to_the_second_mx() {
    let Some(e) = env(
        Role::Hub,
        &[
            "--mx-host=fabrikam.test,mx1.fabrikam.test,10",
            "--mx-host=fabrikam.test,mx2.fabrikam.test,20",
            "--host-record=mx1.fabrikam.test,127.{net}.0.21",
            "--host-record=mx2.fabrikam.test,127.{net}.0.22",
        ],
    )
    .await
    else {
        return;
    };
    // mx1 (preferred) is down; mx2 takes the mail.
    let mx2 = Sink::start(&format!("{}:2525", e.ip(22)), SinkOptions::default()).await;
    e.connector(json!({"name": "To Internet", "addressSpaces": ["*"], "useExternalDNSServersEnabled": true, "port": 2525})).await;
    e.submit("bob@contoso.test", &["carol@fabrikam.test"], "mx failover")
        .await;
    eventually(15, "delivered to mx2", || async {
        mx2.messages().len() == 1
    })
    .await;
    // With mx1 up, it is preferred.
    let mx1 = Sink::start(&format!("{}:2525", e.ip(21)), SinkOptions::default()).await;
    e.submit("bob@contoso.test", &["dave@fabrikam.test"], "mx preference")
        .await;
    eventually(15, "delivered to mx1", || async {
        mx1.messages().len() == 1
    })
    .await;
    assert_eq!(mx2.messages().len(), 1);
}

#[tokio::test]
async fn unreachable_until_a_connector_exists() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let sink = Sink::start(&format!("{}:2525", e.ip(15)), SinkOptions::default()).await;
    e.submit("bob@contoso.test", &["carol@fabrikam.test"], "unreachable")
        .await;
    eventually(10, "the message waits in Unreachable", || async {
        e.queue("Unreachable")
            .await
            .is_some_and(|q| q["messageCount"] == 1)
    })
    .await;
    assert!(
        e.maildir("bob@contoso.test").is_empty(),
        "no NDR for Unreachable (rule 17)"
    );
    e.connector(json!({"name": "Out", "addressSpaces": ["fabrikam.test"], "smartHosts": [e.ip(15)], "port": 2525})).await;
    eventually(15, "delivered once a connector exists", || async {
        sink.messages().len() == 1
    })
    .await;
}
