//! Bulk queue actions (issue 20): suspend, resume, retry, resubmit and
//! remove every message a filter selects, in one call, with a dry run that
//! counts first; 10,000 messages queued by Postfix's smtp-source removed by
//! their recipients' domain, with NDRs only when asked.

use crate::delivery::setup::{env, eventually};
use ferry::model::Role;
use serde_json::{Value, json};
use std::time::Instant;

const BULK: &str = "/api/v1/messages/bulk";

async fn total(e: &crate::delivery::setup::Env, query: &str) -> i64 {
    e.app
        .get(&format!("/api/v1/messages?limit=1{query}"))
        .await
        .body["total"]
        .as_i64()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_messages_removed_by_domain_in_one_call() {
    if !crate::support::peers::require(&["smtp-source"]) {
        return;
    }
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    // One failed connection and the queue waits ten minutes: nothing is in
    // flight while the actions run.
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"queueGlitchRetryInterval": "00:10:00", "outboundConnectionFailureRetryInterval": "00:10:00"}),
            None,
        )
        .await;
    e.connector(
        json!({"name": "Down", "addressSpaces": ["*"], "smartHosts": [e.ip(26)], "port": 2525}),
    )
    .await;
    // smtp-source connects from 127.0.0.1.
    let load = e.app.bind(6, 2525);
    e.app
        .create(
            "/api/v1/receive-connectors",
            json!({"name": "Load", "usage": "Custom", "bindings": [load], "remoteIpRanges": ["127.0.0.1"],
                   "permissionGroups": ["AnonymousUsers"], "tarpitInterval": "00:00:00",
                   "messageRateLimit": "unlimited", "maxInboundConnectionPerSource": "unlimited",
                   "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]}),
        )
        .await;
    let out = tokio::process::Command::new("smtp-source")
        .args(["-s", "20", "-m", "10000", "-l", "512"])
        .args(["-f", "bob@contoso.test", "-t", "x@fabrikam.test", &load])
        .output()
        .await
        .expect("smtp-source runs");
    assert!(out.status.success(), "{out:?}");
    for i in 0..5 {
        e.submit(
            "bob@contoso.test",
            &[&format!("n{i}@northwind.test")],
            &format!("northwind {i}"),
        )
        .await;
    }
    eventually(60, "10,005 messages queued", || async {
        total(&e, "").await == 10_005
    })
    .await;

    // A filter is required; withNdr is Remove's alone; an unknown queue is 404.
    e.app
        .post(BULK, json!({"action": "Remove", "filter": {}}))
        .await
        .assert_problem(422, "filter");
    e.app
        .post(
            BULK,
            json!({"action": "Suspend", "withNdr": false, "filter": {"sender": "bob"}}),
        )
        .await
        .assert_problem(422, "withNdr");
    assert_eq!(
        e.app
            .post(
                BULK,
                json!({"action": "Suspend", "filter": {"queue": "999"}})
            )
            .await
            .status,
        404
    );

    // Suspend, resume and retry what goes to northwind.test.
    let northwind = json!({"recipientDomain": "northwind.test"});
    let r = e
        .app
        .post(BULK, json!({"action": "Suspend", "filter": northwind}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["matched"], 5);
    assert_eq!(
        r.body["applied"].as_i64().unwrap() + r.body["whenAttemptEnds"].as_i64().unwrap(),
        5
    );
    eventually(10, "five suspended", || async {
        e.app
            .post(
                BULK,
                json!({"action": "Resume", "filter": {"status": "Suspended"}, "dryRun": true}),
            )
            .await
            .body["matched"]
            == 5
    })
    .await;
    let r = e
        .app
        .post(
            BULK,
            json!({"action": "Resume", "filter": {"status": "Suspended"}}),
        )
        .await;
    assert_eq!(r.body["applied"], 5, "{}", r.text);
    let r = e
        .app
        .post(BULK, json!({"action": "Retry", "filter": northwind}))
        .await;
    assert_eq!(r.body["matched"], 5, "{}", r.text);

    // The dry run counts and changes nothing.
    let fabrikam = json!({"recipientDomain": "FABRIKAM.test", "olderThan": "00:00:00"});
    let r = e
        .app
        .post(
            BULK,
            json!({"action": "Remove", "withNdr": false, "filter": fabrikam, "dryRun": true}),
        )
        .await;
    assert_eq!(
        r.body,
        json!({"action": "Remove", "dryRun": true, "matched": 10000, "applied": 0, "whenAttemptEnds": 0})
    );
    assert_eq!(total(&e, "").await, 10_005);

    // 10,000 removed in one call, silently.
    let started = Instant::now();
    let r = e
        .app
        .post(
            BULK,
            json!({"action": "Remove", "withNdr": false, "filter": fabrikam}),
        )
        .await;
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["matched"], 10_000);
    assert_eq!(
        r.body["applied"].as_i64().unwrap() + r.body["whenAttemptEnds"].as_i64().unwrap(),
        10_000
    );
    println!(
        "bulk remove of 10,000 messages: {took:?} (debug build): {}",
        r.text
    );
    // What was in flight is removed when its attempt ends: each attempt
    // records its batch's outcomes through the writer, which the removal
    // itself keeps busy (the call took 25 s in a loaded CI run).
    // On a timeout, what is left says why (its status: Active is still in
    // flight; its last error).
    let deadline = Instant::now() + std::time::Duration::from_secs(90);
    loop {
        let left = total(&e, "").await;
        if left == 5 {
            println!(
                "what was in flight was removed {:?} after the call",
                started.elapsed() - took
            );
            break;
        }
        if Instant::now() > deadline {
            let first = e.app.get("/api/v1/messages?limit=10").await.text;
            panic!(
                "timed out waiting for only northwind's five left: {left} left, the first ten: {first}"
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        e.maildir("bob@contoso.test").is_empty(),
        "no NDR for a removal without one"
    );

    // With an NDR (the default): one per message, to its sender.
    let r = e
        .app
        .post(BULK, json!({"action": "Remove", "filter": northwind}))
        .await;
    assert_eq!(r.body["matched"], 5, "{}", r.text);
    eventually(30, "five NDRs in bob's mailbox", || async {
        e.maildir("bob@contoso.test").len() == 5
    })
    .await;
    assert!(
        e.maildir("bob@contoso.test")
            .iter()
            .all(|n| n.contains("northwind.test") && n.contains("deleted by an administrator"))
    );
    assert_eq!(total(&e, "").await, 0);

    // Each bulk action is in the audit log under the token that made it.
    let audit = e.app.get("/api/v1/audit-log?limit=100").await.body;
    let bulk: Vec<&Value> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a.to_string().contains("/api/v1/messages/bulk"))
        .collect();
    assert!(bulk.len() >= 6, "{audit}");
}
