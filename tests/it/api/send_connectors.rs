use crate::support::app::TestApp;
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::json;

const SC: &str = "/api/v1/send-connectors";

async fn smart_host_credential(app: &TestApp) {
    app.create("/api/v1/credentials", json!({"name": "edge-to-hub", "kind": "SmartHost", "userName": "edge01", "password": "Hub-Relay-Pass-1"}))
        .await;
}

#[tokio::test]
async fn create_get_list_patch_delete() {
    let app = TestApp::spawn(Role::Edge).await;
    let c = app
        .create(SC, json!({"name": "To Internet", "usage": "Internet", "addressSpaces": ["SMTP:*;1"],
            "useExternalDNSServersEnabled": true, "fqdn": "mail.contoso.test", "sourceIPAddress": "127.0.0.2"}))
        .await;
    assert_eq!(c["dnsRoutingEnabled"], true);
    assert_eq!(c["maxMessageSize"], 10485760);
    assert_eq!(c["port"], 25);
    assert_eq!(c["addressSpaces"], json!(["SMTP:*;1"]));
    let id = c["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("{SC}/to%20internet")).await.body["id"], id);
    assert_eq!(app.get(SC).await.body["items"].as_array().unwrap().len(), 1);
    let p = app
        .patch(
            &format!("{SC}/{id}"),
            json!({"addressSpaces": ["*;5", "fabrikam.test;1"], "enabled": false}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(
        p.body["addressSpaces"],
        json!(["SMTP:*;5", "SMTP:fabrikam.test;1"])
    );
    assert_eq!(p.body["enabled"], false);
    assert_eq!(
        app.delete(&format!("{SC}/{id}"), Some("\"2\""))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get(&format!("{SC}/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// The send-side negative cases of spec §3 step 1.
#[tokio::test]
async fn seed_scenario_validation_cases() {
    let app = TestApp::spawn(Role::Edge).await;
    let e2 = json!({"name": "To Internal Org", "usage": "Internal", "addressSpaces": ["--"],
        "smartHosts": ["hub01.contoso.test", "hub02.contoso.test"], "smartHostAuthMechanism": "BasicAuthRequireTLS"});
    // E2 without a credential.
    app.post(SC, e2.clone())
        .await
        .assert_problem(422, "authenticationCredential");
    // E2 with DNSRoutingEnabled=true plus SmartHosts.
    let mut both = e2.clone();
    both["dnsRoutingEnabled"] = json!(true);
    both["authenticationCredential"] = json!("edge-to-hub");
    smart_host_credential(&app).await;
    app.post(SC, both).await.assert_problem(422, "smartHosts");
    // With its credential, E2 is accepted, with Internal's unlimited size.
    let mut ok = e2.clone();
    ok["authenticationCredential"] = json!("edge-to-hub");
    let c = app.create(SC, ok).await;
    assert_eq!(c["maxMessageSize"], "unlimited");
    assert_eq!(c["dnsRoutingEnabled"], false);
    assert!(!c.to_string().contains("Hub-Relay-Pass-1"));
    // A credential that does not exist, or is a login, is refused.
    let mut missing = e2.clone();
    missing["name"] = json!("other");
    missing["authenticationCredential"] = json!("nobody");
    app.post(SC, missing.clone())
        .await
        .assert_problem(422, "authenticationCredential");
    app.create(
        "/api/v1/credentials",
        json!({"kind": "Login", "userName": "alice", "password": "Alice-Pass-123"}),
    )
    .await;
    missing["authenticationCredential"] = json!("alice");
    app.post(SC, missing)
        .await
        .assert_problem(422, "authenticationCredential");

    // `--` on a non-Edge role.
    let hub = TestApp::spawn(Role::Hub).await;
    hub.post(
        SC,
        json!({"name": "x", "addressSpaces": ["--"], "smartHosts": ["127.0.0.3"]}),
    )
    .await
    .assert_problem(422, "addressSpaces[0]");
    // SourceTransportServers is Hub-only; SourceIPAddress is Edge-only.
    app.post(
        SC,
        json!({"name": "y", "addressSpaces": ["*"], "sourceTransportServers": ["HUB01"]}),
    )
    .await
    .assert_problem(422, "sourceTransportServers");
    hub.post(
        SC,
        json!({"name": "y", "addressSpaces": ["*"], "sourceIPAddress": "127.0.0.11"}),
    )
    .await
    .assert_problem(422, "sourceIPAddress");
    let h1 = hub.create(SC, json!({"name": "To Edge", "usage": "Internal", "addressSpaces": ["*"], "smartHosts": ["edge01.corp.contoso.test"]})).await;
    assert_eq!(h1["sourceTransportServers"], json!(["HUB01"]));
}

#[tokio::test]
async fn tls_and_address_space_rules() {
    let app = TestApp::spawn(Role::Edge).await;
    app.post(
        SC,
        json!({"name": "x", "addressSpaces": ["*"], "requireTLS": true, "ignoreSTARTTLS": true}),
    )
    .await
    .assert_problem(422, "ignoreSTARTTLS");
    app.post(
        SC,
        json!({"name": "x", "addressSpaces": ["*"], "tlsAuthLevel": "CertificateValidation"}),
    )
    .await
    .assert_problem(422, "tlsAuthLevel");
    app.post(SC, json!({"name": "x", "addressSpaces": ["*"], "requireTLS": true, "tlsAuthLevel": "DomainValidation"}))
        .await
        .assert_problem(422, "tlsDomain");
    app.post(SC, json!({"name": "x", "addressSpaces": ["*contoso.test"]}))
        .await
        .assert_problem(422, "addressSpaces[0]");
    app.post(SC, json!({"name": "x", "addressSpaces": ["*;0"]}))
        .await
        .assert_problem(422, "addressSpaces[0]");
    app.post(SC, json!({"name": "x", "addressSpaces": []}))
        .await
        .assert_problem(422, "addressSpaces");
    app.post(
        SC,
        json!({"name": "x", "addressSpaces": ["*"], "port": 70000}),
    )
    .await
    .assert_problem(422, "port");
    app.post(
        SC,
        json!({"name": "x", "addressSpaces": ["*"], "smartHostAuthMechanism": "BasicAuth"}),
    )
    .await
    .assert_problem(422, "smartHostAuthMechanism");
    let ok = app
        .create(SC, json!({"name": "Partner", "addressSpaces": ["fabrikam.test"], "requireTLS": true,
            "tlsAuthLevel": "DomainValidation", "tlsDomain": "*.fabrikam.test", "domainSecureEnabled": true}))
        .await;
    assert_eq!(ok["tlsDomain"], "*.fabrikam.test");
}

#[tokio::test]
async fn credentials_in_use_cannot_be_deleted_or_renamed() {
    let app = TestApp::spawn(Role::Edge).await;
    smart_host_credential(&app).await;
    app.create(
        SC,
        json!({"name": "To Hub", "addressSpaces": ["--"], "smartHosts": ["127.0.0.11"],
        "smartHostAuthMechanism": "BasicAuth", "authenticationCredential": "edge-to-hub"}),
    )
    .await;
    let r = app.delete("/api/v1/credentials/edge-to-hub", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    app.patch(
        "/api/v1/credentials/edge-to-hub",
        json!({"name": "renamed"}),
        None,
    )
    .await
    .assert_problem(409, "name");
    assert_eq!(
        app.delete("/api/v1/send-connectors/To%20Hub", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete("/api/v1/credentials/edge-to-hub", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}
