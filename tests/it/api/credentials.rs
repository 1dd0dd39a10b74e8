use crate::support::app::{TestApp, contains};
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::json;

const CR: &str = "/api/v1/credentials";

#[tokio::test]
async fn passwords_are_write_only_and_never_stored_in_clear() {
    let app = TestApp::spawn(Role::Edge).await;
    let login_pw = "Login-Password-7f3a9";
    let relay_pw = "Relay-Password-c41e2";
    let rotated_pw = "Rotated-Password-99b0";
    let login = app.create(CR, json!({"kind": "Login", "userName": "hub01", "principal": "Server", "password": login_pw})).await;
    assert_eq!(login["passwordSet"], true);
    assert_eq!(login["principal"], "Server");
    assert!(login.get("password").is_none());
    let relay = app.create(CR, json!({"name": "to-hub", "kind": "SmartHost", "userName": "edge01", "password": relay_pw})).await;
    assert_eq!(relay["principal"], serde_json::Value::Null);
    let rotated = app
        .patch(
            &format!("{CR}/to-hub"),
            json!({"password": rotated_pw}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(rotated.status, StatusCode::OK);
    assert_eq!(rotated.body["version"], 2);

    // No response body carries a password, a hash or a ciphertext.
    let all = app.everything().await;
    for needle in [login_pw, relay_pw, rotated_pw, "$argon2"] {
        assert!(!all.contains(needle), "{needle} leaked through the API");
    }
    // Nothing in the data directory holds them in clear.
    let bytes = app.data_bytes();
    for pw in [login_pw, relay_pw, rotated_pw] {
        assert!(!contains(&bytes, pw.as_bytes()), "{pw} stored in clear");
    }
    // What is stored opens to the rotated password (smart host) and verifies (login).
    let snap = app.app.as_ref().unwrap().config.snapshot();
    let relay = snap
        .credentials
        .iter()
        .find(|c| c.spec.name == "to-hub")
        .unwrap();
    let opened = app
        .app
        .as_ref()
        .unwrap()
        .config
        .secrets
        .open(&relay.id.to_string(), relay.secret.as_ref().unwrap())
        .unwrap();
    assert_eq!(opened, rotated_pw.as_bytes());
    let login = snap
        .credentials
        .iter()
        .find(|c| c.spec.name == "hub01")
        .unwrap();
    let hash = String::from_utf8(login.secret.clone().unwrap()).unwrap();
    assert!(ferry::secrets::verify_password(&hash, login_pw));
}

#[tokio::test]
async fn crud_and_validation() {
    let app = TestApp::spawn(Role::Hub).await;
    app.post(CR, json!({"kind": "Login", "userName": "bob"}))
        .await
        .assert_problem(422, "password");
    app.post(CR, json!({"userName": "bob", "password": "x-long-enough"}))
        .await
        .assert_problem(422, "kind");
    app.post(
        CR,
        json!({"kind": "SmartHost", "userName": "bob", "password": "pw", "principal": "User"}),
    )
    .await
    .assert_problem(422, "principal");
    app.post(
        CR,
        json!({"kind": "Login", "userName": "bob", "password": 5}),
    )
    .await
    .assert_problem(422, "password");
    let bob = app
        .create(
            CR,
            json!({"kind": "Login", "userName": "bob@contoso.test", "password": "Bob-Pass-1"}),
        )
        .await;
    assert_eq!(bob["principal"], "User");
    app.post(
        CR,
        json!({"name": "bob2", "kind": "Login", "userName": "BOB@contoso.test", "password": "x"}),
    )
    .await
    .assert_problem(409, "userName");
    let id = bob["id"].as_str().unwrap();
    assert_eq!(
        app.get(&format!("{CR}/{id}")).await.body["userName"],
        "bob@contoso.test"
    );
    assert_eq!(app.get(CR).await.body["items"].as_array().unwrap().len(), 1);
    app.patch(&format!("{CR}/{id}"), json!({"kind": "SmartHost"}), None)
        .await
        .assert_problem(422, "kind");
    // Becoming a Server login (relay rights) needs a new, long password.
    app.patch(
        &format!("{CR}/{id}"),
        json!({"principal": "Server", "comment": "relay host"}),
        None,
    )
    .await
    .assert_problem(422, "password");
    app.patch(
        &format!("{CR}/{id}"),
        json!({"principal": "Server", "password": "short"}),
        None,
    )
    .await
    .assert_problem(422, "password");
    // Long enough, but among the most common passwords, or made of the
    // login's own name: refused, saying why, and nothing changes.
    for common in [
        "password123456",
        "qwertyuiop123",
        "1q2w3e4r5t6y7u",
        "bob@contoso.test1",
    ] {
        let r = app
            .patch(
                &format!("{CR}/{id}"),
                json!({"principal": "Server", "password": common}),
                None,
            )
            .await;
        r.assert_problem(422, "password");
        assert!(
            r.text.contains("most common or easily guessed"),
            "{common}: {}",
            r.text
        );
    }
    assert_eq!(
        app.get(&format!("{CR}/{id}")).await.body["principal"],
        "User"
    );
    // A User login (no relay rights) keeps its choice.
    let r = app
        .patch(
            &format!("{CR}/{id}"),
            json!({"password": "password123456"}),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let p = app
        .patch(
            &format!("{CR}/{id}"),
            json!({"principal": "Server", "comment": "relay host", "password": "Relay-Host-Password-1"}),
            None,
        )
        .await;
    assert_eq!(p.body["principal"], "Server", "{}", p.text);
    assert_eq!(
        app.delete(&format!("{CR}/{id}"), Some("\"1\""))
            .await
            .status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        app.delete(&format!("{CR}/{id}"), Some("\"3\""))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}
