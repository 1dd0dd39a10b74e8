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

/// Routing explain (issue 20) against the next hop real messages take: for
/// each recipient of a table, the explain answer's queue and connector are
/// those of the ROUTE tracking event of a message really sent to it, and an
/// Unreachable recipient's reason is the queue's last error.
#[tokio::test]
async fn the_routing_explanation_is_the_route_real_messages_take() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    // Nothing listens on the smart hosts: messages wait in their queues.
    let c = |name: &str, spaces: serde_json::Value, host: u8| json!({"name": name, "addressSpaces": spaces, "smartHosts": [e.ip(host)], "port": 2525});
    e.connector(c("Star", json!(["*"]), 60)).await;
    e.connector(c("Fabrikam", json!(["fabrikam.test;3"]), 61))
        .await;
    e.connector(c("Fabrikam cheap", json!(["fabrikam.test;1"]), 62))
        .await;
    e.connector(
        json!({"name": "Elsewhere", "addressSpaces": ["northwind.test"], "smartHosts": [e.ip(63)],
        "port": 2525, "sourceTransportServers": ["hub09"]}),
    )
    .await;
    e.connector(json!({"name": "Tiny", "addressSpaces": ["big.test"], "smartHosts": [e.ip(64)], "port": 2525, "maxMessageSize": 10})).await;
    let table = [
        ("ann@contoso.test", "Mailbox"),
        ("a@fabrikam.test", "Connector"),
        ("b@sub.fabrikam.test", "Connector"),
        ("c@big.test", "Connector"),
    ];
    for (rcpt, outcome) in table {
        let x = e
            .app
            .post(
                "/api/v1/routing/explain",
                json!({"recipient": rcpt, "sender": "bob@contoso.test", "size": 600}),
            )
            .await;
        assert_eq!(x.status, 200, "{}", x.text);
        let x = x.body;
        assert_eq!(x["outcome"], outcome, "{rcpt}: {x}");
        e.submit("bob@contoso.test", &[rcpt], rcpt).await;
        let route_event = || async {
            e.app
                .get(&format!("/api/v1/tracking?event=ROUTE&recipient={rcpt}"))
                .await
                .body["items"][0]
                .clone()
        };
        eventually(15, &format!("the ROUTE event for {rcpt}"), || async {
            !route_event().await.is_null()
        })
        .await;
        let event = route_event().await;
        assert_eq!(event["nextHop"], x["queue"], "{rcpt}: {event} / {x}");
        assert_eq!(event["connector"], x["connector"], "{rcpt}: {event} / {x}");
        assert!(
            event["detail"]
                .as_str()
                .unwrap()
                .starts_with(x["deliveryType"].as_str().unwrap()),
            "{rcpt}: {event} / {x}"
        );
    }
    // The reasons: cost decides between the two Fabrikam connectors; Tiny
    // is too small for 600 bytes, so Star carries big.test.
    let x = e
        .app
        .post(
            "/api/v1/routing/explain",
            json!({"recipient": "a@fabrikam.test", "size": 600}),
        )
        .await
        .body;
    assert_eq!(x["connector"], "Fabrikam cheap");
    let verdict = |x: &serde_json::Value, name: &str| {
        x["connectors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(verdict(&x, "Fabrikam")["verdict"], "Lost");
    assert!(
        verdict(&x, "Fabrikam")["reason"]
            .as_str()
            .unwrap()
            .contains("lower cost"),
        "{x}"
    );
    assert!(
        verdict(&x, "Star")["reason"]
            .as_str()
            .unwrap()
            .contains("more specific address space"),
        "{x}"
    );
    assert_eq!(verdict(&x, "Elsewhere")["verdict"], "NoAddressSpace");
    let big = e
        .app
        .post(
            "/api/v1/routing/explain",
            json!({"recipient": "c@big.test", "size": 600}),
        )
        .await
        .body;
    assert_eq!(verdict(&big, "Tiny")["verdict"], "TooSmall");
    assert_eq!(big["connector"], "Star");

    // Unreachable: with Star off, only Elsewhere covers northwind.test,
    // and it is not this server's; the reason is the queue's last error.
    let r = e
        .app
        .patch(
            "/api/v1/send-connectors/Star",
            json!({"enabled": false}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let x = e
        .app
        .post(
            "/api/v1/routing/explain",
            json!({"recipient": "d@northwind.test"}),
        )
        .await
        .body;
    assert_eq!(x["outcome"], "Unreachable", "{x}");
    assert_eq!(verdict(&x, "Elsewhere")["verdict"], "NotASource");
    e.submit("bob@contoso.test", &["d@northwind.test"], "nowhere")
        .await;
    let reason = x["reason"].as_str().unwrap().to_string();
    // The recipient's last error in the queue viewer and the ROUTE event
    // say it in the same words.
    eventually(
        15,
        "the recipient waits in Unreachable, with the reason",
        || async {
            let m = e
                .app
                .get("/api/v1/messages?recipient=d%40northwind.test")
                .await
                .body;
            let r = &m["items"][0]["recipients"][0];
            r["queue"] != "Submission" && r["lastError"] == reason.as_str()
        },
    )
    .await;
    let route = e
        .app
        .get("/api/v1/tracking?event=ROUTE&recipient=d@northwind.test")
        .await
        .body;
    assert_eq!(
        route["items"][0]["detail"],
        format!("Unreachable: {reason}"),
        "{route}"
    );
}

/// A message for several next hops is carried to all of them at once: a
/// next hop that hangs (accepts the connection, never greets) does not hold
/// back the others.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_goes_to_all_its_next_hops_at_once() {
    let Some(e) = env(Role::Edge, &[]).await else {
        return;
    };
    let hang = tokio::net::TcpListener::bind(format!("{}:2525", e.ip(12)))
        .await
        .unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(vec![]));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = hang.accept().await {
            h.lock().unwrap().push(s); // never a banner
        }
    });
    let sink = Sink::start(&format!("{}:2525", e.ip(11)), SinkOptions::default()).await;
    e.connector(json!({"name": "To A", "addressSpaces": ["a.test"], "smartHosts": [e.ip(12)], "port": 2525}))
        .await;
    e.connector(json!({"name": "To B", "addressSpaces": ["b.test"], "smartHosts": [e.ip(11)], "port": 2525}))
        .await;
    e.submit("alice@fabrikam.test", &["x@a.test", "y@b.test"], "two hops")
        .await;
    eventually(
        10,
        "b.test's recipient delivered while a.test's hop hangs",
        || async {
            sink.messages()
                .iter()
                .any(|m| m.1 == vec!["y@b.test".to_string()])
        },
    )
    .await;
    assert!(
        !held.lock().unwrap().is_empty(),
        "a.test's hop was being tried meanwhile"
    );
}

/// Two next hops refusing their recipients at the same moment: each
/// recipient is in exactly one NDR (a message's outcomes are finished one
/// at a time), and the message leaves the queue.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_from_two_hops_at_once_give_each_recipient_one_ndr() {
    let Some(e) = env(Role::Edge, &[]).await else {
        return;
    };
    let inbox = crate::delivery::setup::fabrikam_inbox(&e.app, &e.ip(13)).await;
    let mut hops = vec![];
    for (i, d) in [(11u8, "a.test"), (12, "b.test")] {
        hops.push(Sink::start(&format!("{}:2525", e.ip(i)), SinkOptions::default()).await);
        e.connector(json!({"name": format!("To {d}"), "addressSpaces": [d], "smartHosts": [e.ip(i)], "port": 2525}))
            .await;
    }
    for n in 0..10 {
        e.submit(
            "alice@fabrikam.test",
            &["reject-1@a.test", "reject-2@b.test", "reject-3@a.test"],
            &format!("refused {n}"),
        )
        .await;
    }
    eventually(30, "every message has left the queue", || async {
        e.messages().await.is_empty()
    })
    .await;
    for n in 0..10 {
        let title = format!("Subject: Undeliverable: refused {n}\r\n");
        let ndrs: Vec<String> = inbox
            .messages()
            .into_iter()
            .map(|m| m.2)
            .filter(|m| m.contains(&title))
            .collect();
        for r in ["reject-1@a.test", "reject-2@b.test", "reject-3@a.test"] {
            let about = ndrs
                .iter()
                .filter(|m| m.contains(&format!("Final-Recipient: rfc822; {r}")))
                .count();
            assert_eq!(about, 1, "{r} of message {n} in {about} NDRs: {ndrs:?}");
        }
    }
}
