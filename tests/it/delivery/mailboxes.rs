//! Mailbox delivery on a Hub: Maildir and LMTP.

use crate::delivery::setup::{env, eventually};
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;

#[tokio::test]
async fn maildir_delivery() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    e.submit(
        "carol@fabrikam.test",
        &["alice@contoso.test", "Bob@Contoso.test"],
        "to mailboxes",
    )
    .await;
    eventually(10, "both mailboxes", || async {
        e.maildir("alice@contoso.test").len() == 1 && e.maildir("bob@contoso.test").len() == 1
    })
    .await;
    let m = &e.maildir("alice@contoso.test")[0];
    assert!(
        m.starts_with("Return-Path: <carol@fabrikam.test>\r\nDelivered-To: alice@contoso.test\r\n"),
        "{m}"
    );
    assert!(
        m.contains("Subject: to mailboxes") && m.contains("Received: from client.test"),
        "{m}"
    );
    eventually(5, "the delivered message is gone", || async {
        e.messages().await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn lmtp_delivery() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let store = Sink::start(
        &format!("{}:2424", e.ip(24)),
        SinkOptions {
            lmtp: true,
            ..Default::default()
        },
    )
    .await;
    e.app
        .create(
            "/api/v1/accepted-domains",
            json!({"domainName": "fabrikam.test",
            "mailboxDelivery": {"type": "Lmtp", "host": format!("{}:2424", e.ip(24))}}),
        )
        .await;
    e.submit(
        "bob@contoso.test",
        &["carol@fabrikam.test", "dave@fabrikam.test"],
        "over lmtp",
    )
    .await;
    eventually(10, "the LMTP store has it", || async {
        store.messages().len() == 1
    })
    .await;
    assert!(
        store.commands()[0].starts_with("LHLO "),
        "{:?}",
        store.commands()
    );
    assert_eq!(
        store.messages()[0].1,
        vec!["carol@fabrikam.test", "dave@fabrikam.test"]
    );
    eventually(5, "the delivered message is gone", || async {
        e.messages().await.is_empty()
    })
    .await;
}
