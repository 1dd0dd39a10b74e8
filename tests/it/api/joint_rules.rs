//! Rules that join fields: the document states them (`if`/`then`), so a
//! body that breaks one on its own is refused with 422 naming the field
//! as the model does; a merge patch that breaks one only together with a
//! field it leaves as stored conflicts with the object (409, RFC 5789
//! §2.2) and changes nothing.

use crate::support::app::TestApp;
use ferry::model::Role;
use serde_json::{Value, json};

/// The message the problem gives for `field`.
fn message(r: &crate::support::app::Resp, field: &str) -> String {
    r.body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["field"] == field)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_else(|| panic!("no error on {field}: {}", r.text))
        .to_string()
}

#[tokio::test]
async fn transport_rule_header_names_go_with_their_words() {
    let app = TestApp::spawn(Role::Edge).await;
    const TR: &str = "/api/v1/transport-rules";
    // Words without the header to look in: refused by the document.
    let r = app
        .post(
            TR,
            json!({"name": "Tag", "conditions": {"headerContainsWords": ["urgent"]},
                   "actions": {"setHeaderName": "X-Tag", "setHeaderValue": "1"}}),
        )
        .await;
    r.assert_problem(422, "conditions.headerContainsMessageHeader");
    assert_eq!(
        message(&r, "conditions.headerContainsMessageHeader"),
        "is required with headerContainsWords"
    );
    let r = app
        .post(
            TR,
            json!({"name": "Tag", "conditions": {"subjectContainsWords": ["x"]},
                   "actions": {"setHeaderName": "X-Tag", "setHeaderValue": null}}),
        )
        .await;
    r.assert_problem(422, "actions.setHeaderValue");
    let made = app
        .create(
            TR,
            json!({"name": "Tag", "conditions": {"headerContainsWords": ["urgent"], "headerContainsMessageHeader": "X-Priority"},
                   "actions": {"setHeaderName": "X-Tag", "setHeaderValue": "1"}}),
        )
        .await;
    let before = app.get(&format!("{TR}/Tag")).await;
    // A patch may change the words alone: the stored header goes with them.
    let p = app
        .patch(
            &format!("{TR}/Tag"),
            json!({"conditions": {"headerContainsWords": ["urgent", "asap"]}}),
            None,
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    // Removing the header while the stored words stay: a conflict with
    // the stored rule, naming the header and the words it goes with.
    let r = app
        .patch(
            &format!("{TR}/Tag"),
            json!({"conditions": {"headerContainsMessageHeader": null}}),
            None,
        )
        .await;
    r.assert_problem(409, "conditions.headerContainsMessageHeader");
    assert_eq!(
        message(&r, "conditions.headerContainsMessageHeader"),
        "is required with headerContainsWords"
    );
    let r = app
        .patch(
            &format!("{TR}/Tag"),
            json!({"actions": {"setHeaderValue": null}}),
            None,
        )
        .await;
    r.assert_problem(409, "actions.setHeaderValue");
    // Both stated in the patch and at odds: the patch's own fault.
    app.patch(
        &format!("{TR}/Tag"),
        json!({"conditions": {"headerContainsWords": ["x"], "headerContainsMessageHeader": null}}),
        None,
    )
    .await
    .assert_problem(422, "conditions.headerContainsMessageHeader");
    // A rule takes an action, and at most one that ends the message's way.
    let r = app
        .post(
            TR,
            json!({"name": "Idle", "actions": {"deleteMessage": false}}),
        )
        .await;
    r.assert_problem(422, "actions");
    assert_eq!(message(&r, "actions"), "a rule needs an action");
    let r = app
        .post(
            TR,
            json!({"name": "Both", "actions": {"deleteMessage": true, "quarantine": true}}),
        )
        .await;
    r.assert_problem(422, "actions.quarantine");
    assert_eq!(
        message(&r, "actions.quarantine"),
        "reject, deleteMessage, quarantine and redirectMessageTo exclude one another"
    );
    // Taking away the stored rule's only action: a conflict.
    app.patch(
        &format!("{TR}/Tag"),
        json!({"actions": {"setHeaderName": null, "setHeaderValue": null}}),
        None,
    )
    .await
    .assert_problem(409, "actions");
    let after = app.get(&format!("{TR}/Tag")).await;
    assert_eq!(
        after.body["conditions"]["headerContainsMessageHeader"],
        "X-Priority"
    );
    assert_ne!(after.body, before.body, "the words were changed once");
    assert_eq!(made["name"], "Tag");
}

#[tokio::test]
async fn a_domain_keeps_its_mailboxes_only_while_authoritative() {
    let app = TestApp::spawn(Role::Hub).await;
    const AD: &str = "/api/v1/accepted-domains";
    let r = app
        .post(
            AD,
            json!({"domainName": "fabrikam.test", "domainType": "InternalRelay",
                   "mailboxDelivery": {"type": "Maildir"}}),
        )
        .await;
    r.assert_problem(422, "mailboxDelivery");
    assert_eq!(
        message(&r, "mailboxDelivery"),
        "only an Authoritative domain has its mailboxes here"
    );
    let d = app
        .create(
            AD,
            json!({"domainName": "contoso.test", "mailboxDelivery": {"type": "Maildir"}}),
        )
        .await;
    let at = format!("{AD}/{}", d["id"].as_str().unwrap());
    let r = app
        .patch(&at, json!({"domainType": "InternalRelay"}), None)
        .await;
    r.assert_problem(409, "mailboxDelivery");
    assert_eq!(
        app.get(&at).await.body["domainType"],
        "Authoritative",
        "nothing changed"
    );
    // Said together, it is one consistent change.
    let p = app
        .patch(
            &at,
            json!({"domainType": "InternalRelay", "mailboxDelivery": null}),
            None,
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    let r = app
        .patch(&at, json!({"mailboxDelivery": {"type": "Maildir"}}), None)
        .await;
    r.assert_problem(409, "mailboxDelivery");
}

#[tokio::test]
async fn a_login_takes_its_addresses_from_itself_or_the_directory() {
    let app = TestApp::spawn(Role::Hub).await;
    const CR: &str = "/api/v1/credentials";
    let password = "wB7#kQ2-mZ9!pL4x";
    let r = app
        .post(
            CR,
            json!({"kind": "Login", "userName": "ann", "password": password,
                   "aliases": ["a@contoso.test"], "directoryRecipient": "ann@contoso.test"}),
        )
        .await;
    r.assert_problem(422, "directoryRecipient");
    let r = app
        .post(
            CR,
            json!({"kind": "SmartHost", "userName": "relay", "password": password, "principal": "User"}),
        )
        .await;
    r.assert_problem(422, "principal");
    assert_eq!(message(&r, "principal"), "applies to logins only");
    let c = app
        .create(
            CR,
            json!({"kind": "Login", "userName": "ann", "password": password,
                   "primaryAddress": "ann@contoso.test"}),
        )
        .await;
    let at = format!("{CR}/{}", c["id"].as_str().unwrap());
    let r = app
        .patch(&at, json!({"directoryRecipient": "ann@contoso.test"}), None)
        .await;
    r.assert_problem(409, "directoryRecipient");
    let p = app
        .patch(
            &at,
            json!({"directoryRecipient": "ann@contoso.test", "primaryAddress": null}),
            None,
        )
        .await;
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.body["primaryAddress"], Value::Null);
}

#[tokio::test]
async fn the_delay_notice_waits_past_the_retry_schedule() {
    let app = TestApp::spawn(Role::Edge).await;
    const TS: &str = "/api/v1/transport-settings";
    let before = app.get(TS).await.body;
    // 15 × 1 h passes the stored 4 h delay notice: a conflict with it.
    let r = app
        .patch(
            TS,
            json!({"transientFailureRetryCount": 15, "transientFailureRetryInterval": "01:00:00"}),
            None,
        )
        .await;
    r.assert_problem(409, "delayNotificationTimeout");
    assert!(
        message(&r, "delayNotificationTimeout").contains("15:00:00"),
        "{}",
        r.text
    );
    // All three in one patch and at odds: the patch's own fault.
    app.patch(
        TS,
        json!({"transientFailureRetryCount": 15, "transientFailureRetryInterval": "01:00:00",
               "delayNotificationTimeout": "02:00:00"}),
        None,
    )
    .await
    .assert_problem(422, "delayNotificationTimeout");
    assert_eq!(app.get(TS).await.body, before, "nothing changed");
}
