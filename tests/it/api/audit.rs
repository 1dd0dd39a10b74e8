//! The admin audit log (issue 19): every mutation through the API leaves
//! an entry naming the token, the address, the object, the result and the
//! fields changed with old and new values; no secret is ever in it.

use crate::support::app::{TestApp, contains};
use crate::support::pki::Ca;
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn entries(app: &TestApp, query: &str) -> Vec<Value> {
    let r = app.get(&format!("/api/v1/audit-log?{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

fn change<'a>(e: &'a Value, path: &str) -> &'a Value {
    e["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("no change at {path} in {e}"))
}

#[tokio::test]
async fn every_change_is_recorded_with_its_diff_and_no_secret() {
    let app = TestApp::spawn(Role::Hub).await;
    let password = "Audit-Pass-1b7e3c-Longer";
    let new_password = "Audit-Pass-2d8f4a-Longer";
    let ca = Ca::new(app.dir.path());
    let (crt, key) = ca.issue(&["mail.contoso.test"]);

    // A receive connector's field.
    let rc = app.get("/api/v1/receive-connectors").await.body["items"][0].clone();
    let name = rc["name"].as_str().unwrap().to_string();
    let r = app
        .patch(
            &format!("/api/v1/receive-connectors/{}", rc["id"].as_str().unwrap()),
            json!({"maxMessageSize": 20971520}),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = &entries(&app, "limit=1").await[0];
    assert_eq!(e["method"], "PATCH");
    assert_eq!(e["objectType"], "receive-connectors");
    assert_eq!(e["tokenName"], "admin");
    assert_eq!(e["role"], "Administrator");
    assert_eq!(e["clientIp"], "127.0.0.1");
    assert_eq!(e["succeeded"], true);
    assert_eq!(e["status"], 200);
    let c = change(e, &format!("/receiveConnectors/{name}/maxMessageSize"));
    assert_eq!(c["op"], "replace");
    assert_ne!(c["old"], c["new"]);
    assert_eq!(e["changes"].as_array().unwrap().len(), 1, "{e}");

    // A new send connector: its object, added.
    app.create(
        "/api/v1/send-connectors",
        json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": ["relay.contoso.test"]}),
    )
    .await;
    let e = &entries(&app, "limit=1").await[0];
    assert_eq!(e["objectType"], "send-connectors");
    assert_eq!(e["objectId"], "Out");
    let c = change(e, "/sendConnectors/Out");
    assert_eq!(c["op"], "add");
    assert_eq!(c["new"]["smartHosts"][0], "relay.contoso.test", "{c}");

    // A login: its password set and changed, shown only as masked.
    app.create(
        "/api/v1/credentials",
        json!({"name": "pf", "kind": "Login", "userName": "pf@contoso.test", "principal": "User", "password": password}),
    )
    .await;
    let e = &entries(&app, "limit=1").await[0];
    assert_eq!(change(e, "/credentials/pf")["new"]["secret"], "********");
    let r = app
        .patch(
            "/api/v1/credentials/pf",
            json!({"password": new_password}),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let e = &entries(&app, "limit=1").await[0];
    let c = change(e, "/credentials/pf/secret");
    assert_eq!(
        (c["op"].as_str(), c["old"].as_str(), c["new"].as_str()),
        (Some("replace"), Some("********"), Some("********"))
    );

    // A certificate with its private key; a DKIM key imported with one.
    app.create(
        "/api/v1/certificates",
        json!({"source": "import", "friendlyName": "mail", "certificatePem": crt, "privateKeyPem": key}),
    )
    .await;
    let e = &entries(&app, "limit=1").await[0];
    assert_eq!(e["objectType"], "certificates");
    assert!(
        e["changes"][0]["new"]["subject"]
            .as_str()
            .unwrap()
            .contains("mail.contoso.test"),
        "{e}"
    );

    // Recipients (the directory, not the configuration snapshot).
    app.create(
        "/api/v1/recipients",
        json!({"primaryAddress": "ann@contoso.test", "aliases": ["a@contoso.test"]}),
    )
    .await;
    let e = &entries(&app, "limit=1").await[0];
    let c = change(e, "/recipients/ann@contoso.test");
    assert_eq!(c["new"]["aliases"], json!(["a@contoso.test"]));

    // Transport settings; a refused change with its reason and no diff.
    let r = app
        .patch(
            "/api/v1/transport-settings",
            json!({"maxHopCount": 5000}),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", r.text);
    let e = &entries(&app, "limit=1").await[0];
    assert_eq!(e["succeeded"], false);
    assert_eq!(e["status"], 422);
    assert!(e["detail"].as_str().unwrap().contains("maxHopCount"), "{e}");
    assert_eq!(e["changes"], json!([]));

    // A token: made (its secret never recorded), then used for a change
    // it may not make, which is recorded as refused under its name.
    let r = app
        .post(
            "/api/v1/api-tokens",
            json!({"name": "auditor", "role": "View-Only"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let e = &entries(&app, "limit=1").await[0];
    assert_eq!(change(e, "/apiTokens/auditor")["new"]["role"], "View-Only");
    let r = app
        .request_as(
            Some(&secret),
            "DELETE",
            "/api/v1/send-connectors/Out",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let refused = entries(&app, "token=auditor").await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0]["status"], 403);
    assert_eq!(refused[0]["role"], "View-Only");

    // Deleting: the whole object, removed.
    assert_eq!(
        app.delete("/api/v1/send-connectors/Out", None).await.status,
        StatusCode::NO_CONTENT
    );
    let e = &entries(&app, "limit=1").await[0];
    let c = change(e, "/sendConnectors/Out");
    assert_eq!(c["op"], "remove");
    assert_eq!(c["old"]["name"], "Out");

    // Searching: by object, by result, by time, in pages.
    let out = entries(&app, "object=Out").await;
    assert_eq!(out.len(), 3, "create, the refused delete, delete: {out:?}");
    let failed = entries(&app, "succeeded=false").await;
    assert_eq!(failed.len(), 2);
    let all = entries(&app, "").await;
    assert_eq!(all.len(), 10, "{all:#?}");
    let r = app.get("/api/v1/audit-log?limit=4").await;
    let cursor = r.body["nextCursor"].as_str().unwrap().to_string();
    let next = entries(&app, &format!("limit=4&cursor={cursor}")).await;
    assert_eq!(next[0]["id"], all[4]["id"]);
    assert!(entries(&app, "start=2099-01-01T00:00:00Z").await.is_empty());
    app.get("/api/v1/audit-log?limit=0")
        .await
        .assert_problem(400, "limit");

    // No secret anywhere in the tracking database, nor in the API's answer.
    let mut db = vec![];
    for f in ["tracking.db", "tracking.db-wal"] {
        db.extend(std::fs::read(app.data_dir().join(f)).unwrap_or_default());
    }
    assert!(contains(&db, b"auditor"), "the audit log is in tracking.db");
    let key_body = key.lines().nth(1).unwrap();
    for s in [
        password,
        new_password,
        secret.as_str(),
        key_body,
        app.token.as_str(),
    ] {
        assert!(
            !contains(&db, s.as_bytes()),
            "a secret is in tracking.db: {s}"
        );
        assert!(
            !app.get("/api/v1/audit-log?limit=1000")
                .await
                .text
                .contains(s)
        );
    }
}
