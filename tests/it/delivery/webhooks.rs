//! Event webhooks (issue 20): a receiver on loopback gets every event of a
//! delivered, a deferred and a bounced message as JSON signed with the
//! webhook's key; while the receiver is down the deliveries wait in the
//! outbox (their state in the API), and arrive once it is back.

use crate::delivery::setup::{env, eventually};
use crate::support::sink::{Sink, SinkOptions};
use axum::body::Bytes;
use axum::http::HeaderMap;
use ferry::model::Role;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};

type Got = Arc<Mutex<Vec<(HeaderMap, String)>>>;

/// A webhook receiver on `addr` recording what it is sent; answers 200.
async fn receiver(addr: &str, got: Got) -> tokio::task::JoinHandle<()> {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let got = got.clone();
            async move {
                got.lock()
                    .unwrap()
                    .push((headers, String::from_utf8_lossy(&body).into_owned()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    })
}

/// The events received so far, each POST checked against its signature;
/// a delivery received twice (a retry) counts once.
fn events(got: &Got, key: &[u8]) -> Vec<Value> {
    let mut seen = std::collections::HashSet::new();
    got.lock()
        .unwrap()
        .iter()
        .flat_map(|(headers, body)| {
            let sig = headers["ferry-signature"].to_str().unwrap();
            let (t, v1) = sig
                .strip_prefix("t=")
                .and_then(|s| s.split_once(",v1="))
                .unwrap_or_else(|| panic!("signature header {sig}"));
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
            mac.update(format!("{t}.{body}").as_bytes());
            mac.verify_slice(&hex::decode(v1).unwrap())
                .unwrap_or_else(|_| panic!("a valid signature over {body}"));
            let age = time::OffsetDateTime::now_utc().unix_timestamp() - t.parse::<i64>().unwrap();
            assert!((0..300).contains(&age), "signed {age} s ago");
            let v: Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["webhook"], "ops");
            assert_eq!(headers["ferry-webhook"], "ops");
            let batch = v["deliveries"].as_array().unwrap().clone();
            assert!((1..=100).contains(&batch.len()), "{v}");
            batch
        })
        .filter(|d| seen.insert(d["deliveryId"].as_i64().unwrap()))
        .map(|d| d["event"].clone())
        .collect()
}

fn has(events: &[Value], kind: &str, subject: &str) -> bool {
    events
        .iter()
        .any(|e| e["event"] == kind && e["subject"] == subject)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_every_event_signed_and_late_ones_after_an_outage() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let hook_addr = format!("{}:8088", e.ip(70));
    let got: Got = Arc::default();
    let server = receiver(&hook_addr, got.clone()).await;
    let made = e
        .app
        .create(
            "/api/v1/webhooks",
            json!({"name": "ops", "url": format!("http://{hook_addr}/hook")}),
        )
        .await;
    let key = hex::decode(made["secret"].as_str().unwrap()).unwrap();
    assert_eq!(key.len(), 32);
    assert!(
        !e.app
            .get("/api/v1/webhooks/ops")
            .await
            .text
            .contains(made["secret"].as_str().unwrap()),
        "the key is shown once"
    );
    // fabrikam.test waits (nothing listens); northwind.test refuses reject@.
    e.connector(json!({"name": "Down", "addressSpaces": ["fabrikam.test"], "smartHosts": [e.ip(71)], "port": 2525}))
        .await;
    let _sink = Sink::start(&format!("{}:2525", e.ip(72)), SinkOptions::default()).await;
    e.connector(json!({"name": "Northwind", "addressSpaces": ["northwind.test"], "smartHosts": [e.ip(72)], "port": 2525}))
        .await;
    e.submit("bob@contoso.test", &["ann@contoso.test"], "delivered")
        .await;
    e.submit("bob@contoso.test", &["a@fabrikam.test"], "deferred")
        .await;
    e.submit("bob@contoso.test", &["reject@northwind.test"], "bounced")
        .await;
    eventually(30, "every event of the three messages", || async {
        let ev = events(&got, &key);
        has(&ev, "RECEIVE", "delivered")
            && has(&ev, "DELIVER", "delivered")
            && has(&ev, "ROUTE", "deferred")
            && has(&ev, "DEFER", "deferred")
            && has(&ev, "FAIL", "bounced")
            && has(&ev, "DSN", "bounced")
    })
    .await;
    // Each carries the tracking event as the API shows it.
    let ev = events(&got, &key);
    let deliver = ev
        .iter()
        .find(|x| x["event"] == "DELIVER" && x["subject"] == "delivered")
        .unwrap();
    let tracked = e
        .app
        .get("/api/v1/tracking?event=DELIVER&recipient=ann@contoso.test")
        .await
        .body;
    assert_eq!(deliver["id"], tracked["items"][0]["id"], "{tracked}");
    assert_eq!(deliver["recipients"], json!(["ann@contoso.test"]));

    // The receiver goes away: the deliveries wait, with the reason.
    server.abort();
    let _ = server.await;
    e.submit("bob@contoso.test", &["ann@contoso.test"], "while down")
        .await;
    eventually(20, "a delivery waiting with its error", || async {
        let d = e.app.get("/api/v1/webhooks/ops/deliveries").await.body;
        d["pending"].as_i64().unwrap_or(0) > 0
            && d["items"].as_array().unwrap().iter().any(|i| {
                i["state"] == "Pending"
                    && i["attempts"].as_i64() >= Some(1)
                    && !i["lastError"].is_null()
            })
    })
    .await;
    assert!(!has(&events(&got, &key), "DELIVER", "while down"));
    // Back: what waited arrives.
    let _server = receiver(&hook_addr, got.clone()).await;
    eventually(30, "the events of the outage", || async {
        has(&events(&got, &key), "DELIVER", "while down")
    })
    .await;
    eventually(30, "nothing left pending", || async {
        e.app.get("/api/v1/webhooks/ops/deliveries").await.body["pending"] == 0
    })
    .await;
    let d = e.app.get("/api/v1/webhooks/ops/deliveries").await.body;
    assert!(d["delivered"].as_i64().unwrap() >= 8, "{d}");
    assert_eq!(d["failed"], 0, "{d}");

    // A filter: only FAIL events for northwind recipients.
    e.app
        .patch(
            "/api/v1/webhooks/ops",
            json!({"events": ["FAIL"], "filter": {"recipient": "northwind"}}),
            None,
        )
        .await;
    // What was written before the change is sent first.
    eventually(30, "the outbox emptied", || async {
        e.app.get("/api/v1/webhooks/ops/deliveries").await.body["pending"] == 0
    })
    .await;
    let before = events(&got, &key).len();
    e.submit("bob@contoso.test", &["ann@contoso.test"], "filtered out")
        .await;
    e.submit(
        "bob@contoso.test",
        &["reject2@northwind.test"],
        "filtered in",
    )
    .await;
    eventually(30, "the FAIL of the filtered message", || async {
        has(&events(&got, &key), "FAIL", "filtered in")
    })
    .await;
    let later: Vec<Value> = events(&got, &key).split_off(before);
    assert!(
        later.iter().all(|x| x["event"] == "FAIL"),
        "only FAIL events: {later:?}"
    );

    // With message tracking off, the webhook still gets its events (id 0:
    // nothing was logged).
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"messageTrackingLogEnabled": false}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    e.submit("bob@contoso.test", &["reject3@northwind.test"], "untracked")
        .await;
    eventually(30, "the FAIL of the untracked message", || async {
        has(&events(&got, &key), "FAIL", "untracked")
    })
    .await;
    let untracked = events(&got, &key)
        .into_iter()
        .find(|x| x["subject"] == "untracked")
        .unwrap();
    assert_eq!(untracked["id"], 0, "{untracked}");
}
