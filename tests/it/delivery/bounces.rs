//! Retries, expiry, delay notices and NDRs (spec rules 20–25); NDRs land in
//! the sender's Maildir on the Hub, so each test reads a real report.

use crate::delivery::setup::{Env, env, eventually};
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;

/// A Hub whose connector "Out" sends everything to a recording sink on
/// its host `host`.
async fn hub_to_sink(host: u8, opts: SinkOptions) -> Option<(Env, Sink)> {
    let e = env(Role::Hub, &[]).await?;
    let sink = Sink::start(&format!("{}:2525", e.ip(host)), opts).await;
    e.connector(
        json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": [e.ip(host)], "port": 2525}),
    )
    .await;
    Some((e, sink))
}

#[tokio::test]
async fn null_mx_and_nxdomain_are_permanent() {
    let Some(e) = env(Role::Hub, &["--mx-host=nullmx.test,.,0"]).await else {
        return;
    };
    e.connector(json!({"name": "To Internet", "addressSpaces": ["*"], "useExternalDNSServersEnabled": true})).await;
    e.submit("bob@contoso.test", &["x@nullmx.test"], "to null mx")
        .await;
    e.submit("bob@contoso.test", &["y@nothere.test"], "to nxdomain")
        .await;
    eventually(15, "two NDRs in bob's mailbox", || async {
        e.maildir("bob@contoso.test").len() == 2
    })
    .await;
    let ndrs = e.maildir("bob@contoso.test").join("\n---\n");
    assert!(
        ndrs.contains("Final-Recipient: rfc822; x@nullmx.test") && ndrs.contains("Status: 5.1.10"),
        "{ndrs}"
    );
    assert!(
        ndrs.contains("Final-Recipient: rfc822; y@nothere.test") && ndrs.contains("Status: 5.4.4"),
        "{ndrs}"
    );
    assert!(
        ndrs.contains("From: Mail Delivery System <postmaster@contoso.test>"),
        "{ndrs}"
    );
    eventually(5, "the bounced messages are gone", || async {
        e.messages().await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_5xx_for_one_recipient_bounces_that_recipient_only() {
    let Some((e, sink)) = hub_to_sink(16, SinkOptions::default()).await else {
        return;
    };
    e.submit(
        "bob@contoso.test",
        &["good@fabrikam.test", "reject-me@fabrikam.test"],
        "partial",
    )
    .await;
    eventually(15, "the good recipient is delivered", || async {
        sink.messages().len() == 1
    })
    .await;
    assert_eq!(sink.messages()[0].1, vec!["good@fabrikam.test"]);
    eventually(15, "an NDR reaches bob", || async {
        e.maildir("bob@contoso.test").len() == 1
    })
    .await;
    let ndr = &e.maildir("bob@contoso.test")[0];
    assert!(
        ndr.contains("Final-Recipient: rfc822; reject-me@fabrikam.test"),
        "{ndr}"
    );
    assert!(
        ndr.contains("Diagnostic-Code: smtp; 550 5.1.1 User unknown"),
        "{ndr}"
    );
    assert!(
        !ndr.contains("Final-Recipient: rfc822; good@fabrikam.test"),
        "{ndr}"
    );
    assert!(
        ndr.contains("Subject: partial"),
        "the original is attached: {ndr}"
    );
}

#[tokio::test]
async fn transient_replies_are_retried_until_accepted() {
    let deferrals = SinkOptions {
        deferrals: 2,
        ..Default::default()
    };
    let Some((e, sink)) = hub_to_sink(17, deferrals).await else {
        return;
    };
    let started = std::time::Instant::now();
    e.submit(
        "bob@contoso.test",
        &["defer@fabrikam.test"],
        "deferred twice",
    )
    .await;
    eventually(20, "delivered on the third attempt", || async {
        sink.messages().len() == 1
    })
    .await;
    let rcpts = sink
        .commands()
        .iter()
        .filter(|c| c.starts_with("RCPT"))
        .count();
    assert_eq!(rcpts, 3);
    assert!(
        started.elapsed() >= std::time::Duration::from_secs(2),
        "messageRetryInterval (1 s) was waited twice"
    );
    assert!(e.maildir("bob@contoso.test").is_empty(), "no NDR");
}

/// The first attempt sends the recipients the message was committed with,
/// handed to delivery in memory; once an outcome changes one of them, the
/// retry reads them back: it carries only the recipient still pending, and
/// the one delivered is never sent twice.
#[tokio::test]
async fn a_retry_after_a_partial_delivery_carries_only_the_recipient_still_pending() {
    let deferral = SinkOptions {
        deferrals: 1,
        ..Default::default()
    };
    let Some((e, sink)) = hub_to_sink(17, deferral).await else {
        return;
    };
    e.submit(
        "bob@contoso.test",
        &["good@fabrikam.test", "defer@fabrikam.test"],
        "half deferred",
    )
    .await;
    eventually(20, "both recipients delivered", || async {
        sink.messages().len() == 2
    })
    .await;
    let messages = sink.messages();
    assert_eq!(messages[0].1, vec!["good@fabrikam.test"]);
    assert_eq!(messages[1].1, vec!["defer@fabrikam.test"]);
    let rcpts: Vec<String> = sink
        .commands()
        .into_iter()
        .filter(|c| c.starts_with("RCPT"))
        .collect();
    assert_eq!(
        rcpts,
        vec![
            "RCPT TO:<good@fabrikam.test>",
            "RCPT TO:<defer@fabrikam.test>",
            "RCPT TO:<defer@fabrikam.test>"
        ],
        "the retry carries the deferred recipient alone"
    );
    assert!(e.maildir("bob@contoso.test").is_empty(), "no NDR");
}

#[tokio::test]
async fn connection_failures_follow_the_glitch_then_transient_then_outbound_schedule() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"queueGlitchRetryCount": 2, "transientFailureRetryCount": 1}),
            None,
        )
        .await;
    e.connector(
        json!({"name": "Down", "addressSpaces": ["*"], "smartHosts": [e.ip(18)], "port": 2525}),
    )
    .await;
    e.submit("bob@contoso.test", &["carol@fabrikam.test"], "down")
        .await;
    eventually(30, "five connection attempts", || async {
        let m = e.messages().await;
        let Some(id) = m.first().and_then(|m| m["id"].as_i64()) else {
            return false;
        };
        e.app.get(&format!("/api/v1/messages/{id}")).await.body["attempts"]
            .as_array()
            .unwrap()
            .len()
            >= 5
    })
    .await;
    let id = e.messages().await[0]["id"].as_i64().unwrap();
    let detail = e.app.get(&format!("/api/v1/messages/{id}")).await.body;
    let at: Vec<time::OffsetDateTime> = detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            time::OffsetDateTime::parse(
                a["at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap()
        })
        .collect();
    let gaps: Vec<i64> = at
        .windows(2)
        .map(|w| (w[1] - w[0]).whole_seconds())
        .collect();
    // glitch 1 s, glitch 1 s, transient 2 s, then outbound 3 s (timestamps are whole seconds).
    let expect = [1, 1, 2, 3];
    for (i, (gap, want)) in gaps.iter().zip(expect).enumerate() {
        assert!(
            (want..=want + 1).contains(gap),
            "gap {i} is {gap}s, expected about {want}s: {gaps:?}"
        );
    }
    assert!(
        detail["recipients"][0]["lastError"]
            .as_str()
            .unwrap()
            .contains("connection"),
        "{detail}"
    );
}

#[tokio::test]
async fn expiry_sends_an_ndr_with_4_4_7() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"messageExpirationTimeout": "00:00:05"}),
            None,
        )
        .await;
    e.connector(
        json!({"name": "Down", "addressSpaces": ["*"], "smartHosts": [e.ip(19)], "port": 2525}),
    )
    .await;
    e.submit("bob@contoso.test", &["carol@fabrikam.test"], "will expire")
        .await;
    eventually(20, "the expiry NDR", || async {
        e.maildir("bob@contoso.test").len() == 1
    })
    .await;
    let ndr = &e.maildir("bob@contoso.test")[0];
    assert!(
        ndr.contains("Status: 4.4.7") && ndr.contains("QUEUE.Expired"),
        "{ndr}"
    );
    assert!(ndr.contains("Action: failed"), "{ndr}");
    eventually(5, "the expired message is deleted", || async {
        e.messages().await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_delay_notice_goes_out_and_the_message_stays() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"transientFailureRetryCount": 0, "delayNotificationTimeout": "00:00:02"}),
            None,
        )
        .await;
    e.connector(
        json!({"name": "Down", "addressSpaces": ["*"], "smartHosts": [e.ip(20)], "port": 2525}),
    )
    .await;
    e.submit("bob@contoso.test", &["carol@fabrikam.test"], "slow one")
        .await;
    eventually(15, "the delay DSN", || async {
        e.maildir("bob@contoso.test").len() == 1
    })
    .await;
    let dsn = &e.maildir("bob@contoso.test")[0];
    assert!(
        dsn.contains("Subject: Delivery delayed: slow one") && dsn.contains("Action: delayed"),
        "{dsn}"
    );
    // The notice itself passes through the queue on its way to the
    // mailbox: wait until it has left, then only the slow one remains.
    eventually(10, "only the delayed message stays queued", || async {
        e.messages().await.len() == 1
    })
    .await;
    assert_eq!(
        e.messages().await[0]["sender"],
        "bob@contoso.test",
        "still queued"
    );
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(
        e.maildir("bob@contoso.test").len(),
        1,
        "only one delay notice"
    );
}

#[tokio::test]
async fn no_dsn_to_the_null_sender() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let sink = Sink::start(&format!("{}:2525", e.ip(23)), SinkOptions::default()).await;
    e.connector(
        json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": [e.ip(23)], "port": 2525}),
    )
    .await;
    e.submit("", &["reject-this@fabrikam.test"], "bounce of a bounce")
        .await;
    eventually(10, "the refusal is recorded", || async {
        sink.commands()
            .iter()
            .any(|c| c.starts_with("RCPT TO:<reject-this"))
    })
    .await;
    eventually(5, "the message is gone", || async {
        e.messages().await.is_empty()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(sink.messages().is_empty(), "no NDR was sent anywhere");
}
