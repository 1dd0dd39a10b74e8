//! Everything survives a restart on the same data directory.

use crate::support::app::TestApp;
use ferry::model::Role;
use ferry::startup::App;
use serde_json::json;

#[tokio::test]
async fn configuration_survives_a_restart() {
    let mut app = TestApp::spawn(Role::Edge).await;
    app.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    app.create("/api/v1/credentials", json!({"name": "to-hub", "kind": "SmartHost", "userName": "edge01", "password": "Relay-Pass-123"})).await;
    app.create("/api/v1/credentials", json!({"kind": "Login", "userName": "hub01", "principal": "Server", "password": "Login-Pass-123"})).await;
    app.create("/api/v1/send-connectors", json!({"name": "To Internal Org", "usage": "Internal", "addressSpaces": ["--"],
        "smartHosts": ["hub01.contoso.test"], "smartHostAuthMechanism": "BasicAuthRequireTLS", "authenticationCredential": "to-hub"}))
        .await;
    app.create(
        "/api/v1/receive-connectors",
        json!({"name": "From Hub", "usage": "Internal", "bindings": [app.bind(3, 25)],
        "remoteIpRanges": ["127.0.0.11"]}),
    )
    .await;
    app.create(
        "/api/v1/certificates",
        json!({"source": "selfSigned", "subjectNames": ["mail.contoso.test"]}),
    )
    .await;
    app.patch(
        "/api/v1/transport-settings",
        json!({"messageRetryInterval": "00:00:10"}),
        None,
    )
    .await;
    let before = app.everything().await;

    app.restart().await;

    let after = app.everything().await;
    // Everything but the server document's in-memory generation counter.
    let objects = |s: &str| {
        s.split("{\"role\":\"Edge\",\"serverName\"")
            .next()
            .unwrap()
            .to_string()
    };
    assert!(objects(&before).len() > 1000);
    assert_eq!(
        objects(&before),
        objects(&after),
        "every object, version and timestamp is back"
    );
    // The sealed secrets open with the persisted key.
    let snap = app.app.as_ref().unwrap().config.snapshot();
    let relay = snap
        .credentials
        .iter()
        .find(|c| c.spec.name == "to-hub")
        .unwrap();
    let plain = app
        .app
        .as_ref()
        .unwrap()
        .config
        .secrets
        .open(&relay.id.to_string(), relay.secret.as_ref().unwrap())
        .unwrap();
    assert_eq!(plain, b"Relay-Pass-123");
    // And the same token still works (the restart did not regenerate it).
    assert_eq!(
        app.get("/api/v1/server").await.status,
        reqwest::StatusCode::OK
    );
}

#[tokio::test]
async fn a_data_directory_keeps_its_role() {
    let mut app = TestApp::spawn(Role::Edge).await;
    app.app.take().unwrap().stop().await.unwrap();
    let mut s = app.settings.clone();
    s.role = Some(Role::Hub);
    let err = App::build(s)
        .await
        .err()
        .expect("a Hub cannot start on an Edge's data");
    assert!(err.to_string().contains("Edge"), "{err}");
    let mut s = app.settings.clone();
    s.role = None;
    let again = App::build(s)
        .await
        .expect("no role given: the stored one is used");
    assert_eq!(again.config.snapshot().ctx.role, Role::Edge);
    again.stop().await.unwrap();
}

#[tokio::test]
async fn stopping_the_app_stops_the_delivery_engine_and_the_queue_writer() {
    let mut app = TestApp::spawn(Role::Edge).await;
    let engine = app.app.as_ref().unwrap().delivery.clone();
    let queue = app.app.as_ref().unwrap().queue.clone();
    assert!(!engine.is_stopped());
    let envelope = |id: &str| ferry::queue::Envelope {
        arrived_ms: None,
        message_id: id.into(),
        sender: ferry::model::Address::parse("a@fabrikam.test").unwrap(),
        recipients: vec![],
        receive_connector: "test".into(),
        client_ip: "127.0.0.1".into(),
        client_helo: None,
        auth_user: None,
        env_id: None,
        ret: None,
        body_type: None,
        smtputf8: false,
        require_tls: false,
        subject: None,
    };
    queue
        .enqueue(
            envelope("<before@test>"),
            b"Subject: x\r\n\r\nx\r\n".to_vec(),
        )
        .await
        .expect("the writer takes messages while the app runs");
    app.restart().await;
    assert!(
        engine.is_stopped(),
        "the old engine's scheduler ended with its app"
    );
    let err = queue
        .enqueue(
            envelope("<after@test>"),
            b"Subject: x\r\n\r\nx\r\n".to_vec(),
        )
        .await
        .expect_err("the old app's queue writer has ended");
    assert!(err.to_string().contains("writer has stopped"), "{err}");
    let new = app.app.as_ref().unwrap().delivery.clone();
    assert!(!new.is_stopped(), "the new app runs its own");
}
