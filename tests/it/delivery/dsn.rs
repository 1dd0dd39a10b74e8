//! The DSN extension (RFC 3461) end to end: a client's RET, ENVID, NOTIFY
//! and ORCPT are kept with the message, passed on to a next hop that
//! offers DSN (a private Postfix holding what it receives; its queue file
//! read back with postcat), and answered by Ferry itself where the request
//! stops here: a "relayed" notice for a next hop without DSN (Postfix with
//! the keyword discarded), a "delivered" notice on delivery into a Hub's
//! mailbox, no NDR for NOTIFY=NEVER (while the same failure without it
//! gets one), and ORCPT and ENVID in every report.

use crate::delivery::setup::{Env, env, envelopes, eventually, hold_postfix};
use crate::support::client::Client;
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;

/// One message through the submission connector with DSN parameters.
async fn submit(e: &Env, mail_params: &str, rcpts: &[(&str, &str)], subject: &str) {
    let (mut c, _) = Client::open(&e.ip(30), &e.app.bind(5, 2525)).await;
    let ehlo = c.cmd("EHLO client.test").await;
    assert!(ehlo.text.contains("DSN"), "DSN is offered: {}", ehlo.text);
    let r = c
        .cmd(&format!("MAIL FROM:<alice@fabrikam.test>{mail_params}"))
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    for (to, params) in rcpts {
        let r = c.cmd(&format!("RCPT TO:<{to}>{params}")).await;
        assert_eq!(r.code, 250, "{}", r.line());
    }
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.raw(
        format!(
            "From: <alice@fabrikam.test>\r\nSubject: {subject}\r\n\r\nThe body of {subject}.\r\n.\r\n"
        )
        .as_bytes(),
    )
    .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.code, 250, "{}", r.line());
}

/// Where notices to Alice (fabrikam.test, the sender) are delivered.
async fn alice(e: &Env) -> Sink {
    crate::delivery::setup::fabrikam_inbox(&e.app, &e.ip(14)).await
}

/// The notices Alice received, by their Action.
fn notices(sink: &Sink, action: &str) -> Vec<String> {
    sink.messages()
        .into_iter()
        .filter(|(sender, rcpts, body)| {
            sender.is_empty()
                && rcpts == &vec!["alice@fabrikam.test".to_string()]
                && body.contains(&format!("Action: {action}\r\n"))
        })
        .map(|m| m.2)
        .collect()
}

#[tokio::test]
async fn requests_go_on_to_a_dsn_next_hop_and_are_answered_for_one_without() {
    if !crate::support::peers::require(&["postfix", "postcat", "postqueue"]) {
        return;
    }
    let Some(e) = env(Role::Edge, &[]).await else {
        return;
    };
    let inbox = alice(&e).await;
    let with = hold_postfix(&e, "pf-dsn", &e.ip(11), true, None);
    let without = hold_postfix(&e, "pf-nodsn", &e.ip(12), false, None);
    e.connector(json!({"name": "To A", "addressSpaces": ["a.test"], "smartHosts": [e.ip(11)], "port": 2525}))
        .await;
    e.connector(json!({"name": "To B", "addressSpaces": ["b.test"], "smartHosts": [e.ip(12)], "port": 2525}))
        .await;
    // ENVID "ENV+42" is sent as xtext, ENV+2B42.
    submit(
        &e,
        " RET=HDRS ENVID=ENV+2B42",
        &[(
            "bob@a.test",
            " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@A.test",
        )],
        "to a DSN next hop",
    )
    .await;
    submit(
        &e,
        " RET=HDRS ENVID=ENV+2B43",
        &[
            ("carol@b.test", " NOTIFY=SUCCESS ORCPT=rfc822;Carol@B.test"),
            ("dave@b.test", ""),
        ],
        "to a next hop without DSN",
    )
    .await;

    // Postfix with DSN received the requests as the client made them.
    eventually(20, "Postfix A holds the message", || async {
        envelopes(&with).contains("recipient: bob@a.test")
    })
    .await;
    let a = envelopes(&with);
    for want in [
        "named_attribute: envelope_id=ENV+42",
        "named_attribute: ret_flags=2",
        // Postfix's bits: SUCCESS 2 | FAILURE 4.
        "named_attribute: notify_flags=6",
        "named_attribute: dsn_orig_rcpt=rfc822;Bob@A.test",
    ] {
        assert!(a.contains(want), "{want}\n{a}");
    }
    // Postfix without DSN was not sent them (it would have refused them).
    eventually(20, "Postfix B holds the message", || async {
        envelopes(&without).contains("recipient: dave@b.test")
    })
    .await;
    let b = envelopes(&without);
    // (Postfix records its own original recipient, in lower case; the
    // client's ORCPT is mixed case.)
    assert!(
        !b.contains("envelope_id=")
            && !b.contains("notify_flags=")
            && !b.contains("ret_flags=")
            && !b.contains("dsn_orig_rcpt=rfc822;Carol@B.test"),
        "{b}"
    );

    // Ferry answers for the request that stopped here: one "relayed"
    // notice, for Carol only (Dave asked for nothing), with ORCPT, ENVID
    // and only the headers (RET=HDRS). A relayed notice for Bob would be
    // wrong: Postfix A took his request on.
    eventually(20, "the relayed notice arrives", || async {
        !notices(&inbox, "relayed").is_empty()
    })
    .await;
    let relayed = notices(&inbox, "relayed");
    assert_eq!(relayed.len(), 1, "{relayed:?}");
    let n = &relayed[0];
    assert!(
        n.contains("Subject: Relayed: to a next hop without DSN"),
        "{n}"
    );
    assert!(n.contains("Original-Envelope-Id: ENV+43\r\n"), "{n}");
    assert!(
        n.contains("Original-Recipient: rfc822; Carol@B.test\r\nFinal-Recipient: rfc822; carol@b.test\r\nAction: relayed\r\nStatus: 2.0.0"),
        "{n}"
    );
    assert!(
        !n.contains("dave@b.test") && !n.contains("bob@a.test"),
        "{n}"
    );
    assert!(
        n.contains("Content-Type: text/rfc822-headers") && !n.contains("The body of"),
        "{n}"
    );
}

#[tokio::test]
async fn notify_never_suppresses_the_ndr_and_failure_reports_carry_orcpt_and_envid() {
    let Some(e) = env(Role::Edge, &[]).await else {
        return;
    };
    let inbox = alice(&e).await;
    // The sink refuses local parts starting with "reject".
    let _sink = Sink::start(&format!("{}:2525", e.ip(13)), SinkOptions::default()).await;
    e.connector(json!({"name": "To C", "addressSpaces": ["c.test"], "smartHosts": [e.ip(13)], "port": 2525}))
        .await;
    submit(
        &e,
        "",
        &[("reject-never@c.test", " NOTIFY=NEVER")],
        "never tell me",
    )
    .await;
    submit(
        &e,
        " ENVID=ENV-7",
        &[(
            "reject-told@c.test",
            " NOTIFY=FAILURE ORCPT=rfc822;Told@C.test",
        )],
        "tell me",
    )
    .await;
    eventually(20, "the NDR for the second message", || async {
        !notices(&inbox, "failed").is_empty()
    })
    .await;
    // Both recipients failed (tracking has both FAIL events) ...
    eventually(20, "both failures tracked", || async {
        let t = e.app.get("/api/v1/tracking?event=FAIL").await.text;
        t.contains("reject-never@c.test") && t.contains("reject-told@c.test")
    })
    .await;
    // ... and only the one that asked got an NDR, with ORCPT and ENVID.
    let ndrs = notices(&inbox, "failed");
    assert_eq!(ndrs.len(), 1, "{ndrs:?}");
    let n = &ndrs[0];
    assert!(!n.contains("reject-never@c.test"), "{n}");
    assert!(n.contains("Original-Envelope-Id: ENV-7\r\n"), "{n}");
    assert!(
        n.contains("Original-Recipient: rfc822; Told@C.test\r\nFinal-Recipient: rfc822; reject-told@c.test\r\nAction: failed"),
        "{n}"
    );
    // Without RET=HDRS the original is returned whole.
    assert!(n.contains("The body of tell me."), "{n}");
    let t = e.app.get("/api/v1/tracking?event=DSN").await.text;
    assert!(!t.contains("reject-never@c.test"), "{t}");
}

#[tokio::test]
async fn notify_success_on_mailbox_delivery_gets_a_delivered_notice() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let inbox = alice(&e).await;
    submit(
        &e,
        " ENVID=HUB-1",
        &[
            (
                "bob@contoso.test",
                " NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Bob@Contoso.test",
            ),
            ("carol@contoso.test", " NOTIFY=FAILURE"),
        ],
        "into the mailbox",
    )
    .await;
    eventually(20, "both mailboxes hold the message", || async {
        !e.maildir("bob@contoso.test").is_empty() && !e.maildir("carol@contoso.test").is_empty()
    })
    .await;
    eventually(20, "the delivered notice arrives", || async {
        !notices(&inbox, "delivered").is_empty()
    })
    .await;
    let delivered = notices(&inbox, "delivered");
    assert_eq!(delivered.len(), 1, "{delivered:?}");
    let n = &delivered[0];
    assert!(n.contains("Subject: Delivered: into the mailbox"), "{n}");
    assert!(n.contains("Original-Envelope-Id: HUB-1\r\n"), "{n}");
    assert!(
        n.contains("Original-Recipient: rfc822; Bob@Contoso.test\r\nFinal-Recipient: rfc822; bob@contoso.test\r\nAction: delivered\r\nStatus: 2.0.0"),
        "{n}"
    );
    assert!(!n.contains("carol@contoso.test"), "{n}");
}
