use crate::support::app::TestApp;
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

const RC: &str = "/api/v1/receive-connectors";

fn custom(name: &str, binding: &str, ranges: &[&str]) -> Value {
    json!({"name": name, "usage": "Custom", "bindings": [binding], "remoteIpRanges": ranges,
           "permissionGroups": ["ExchangeServers"], "authMechanism": ["Tls", "BasicAuth", "BasicAuthRequireTLS"]})
}

#[tokio::test]
async fn create_get_list_patch_delete() {
    let app = TestApp::spawn(Role::Edge).await;
    let r = app
        .post(
            RC,
            json!({"name": "From Hub", "usage": "Internal", "bindings": [app.bind(3, 25)],
            "remoteIpRanges": ["127.0.0.11", "127.0.0.12"],
            "authMechanism": ["Tls", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"],
            "permissionGroups": ["ExchangeServers"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.etag(), "\"1\"");
    let id = r.body["id"].as_str().unwrap().to_string();
    assert_eq!(
        r.body["connectionInactivityTimeout"], "00:01:00",
        "Edge preset"
    );

    let by_id = app.get(&format!("{RC}/{id}")).await;
    assert_eq!(by_id.status, StatusCode::OK);
    let by_name = app.get(&format!("{RC}/from%20hub")).await;
    assert_eq!(
        by_name.body["id"],
        id.as_str(),
        "names are case-insensitive handles"
    );
    assert_eq!(app.get(RC).await.body["items"].as_array().unwrap().len(), 2);

    let p = app
        .patch(
            &format!("{RC}/{id}"),
            json!({"maxMessageSize": 20971520, "fqdn": "edge01.corp.contoso.test"}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.body["version"], 2);
    assert_eq!(p.etag(), "\"2\"");
    assert_eq!(p.body["maxMessageSize"], 20971520);
    assert_eq!(p.body["usage"], "Internal");
    assert_eq!(p.body["effectiveFqdn"], "edge01.corp.contoso.test");
    assert!(
        p.body["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_str().unwrap().contains("STARTTLS will not be offered")),
        "no certificate covers the new FQDN: {}",
        p.text
    );
    // null resets an optional field
    let p = app
        .patch(&format!("{RC}/{id}"), json!({"fqdn": null}), None)
        .await;
    assert_eq!(p.body["fqdn"], Value::Null);

    let d = app.delete(&format!("{RC}/{id}"), Some(&p.etag())).await;
    assert_eq!(d.status, StatusCode::NO_CONTENT);
    assert_eq!(
        app.get(&format!("{RC}/{id}")).await.status,
        StatusCode::NOT_FOUND
    );
}

/// The receive-side negative cases of spec §3 step 1, and its accepted
/// containment case.
#[tokio::test]
async fn seed_scenario_validation_cases() {
    let app = TestApp::spawn(Role::Edge).await;
    let generation = app.get("/api/v1/server").await.body["configGeneration"].clone();

    // E3 with Usage Internet plus RemoteIPRanges at creation.
    app.post(
        RC,
        json!({"name": "From Internet", "usage": "Internet", "bindings": [app.bind(2, 25)],
        "remoteIpRanges": ["0.0.0.0-255.255.255.255"]}),
    )
    .await
    .assert_problem(422, "remoteIpRanges");
    // AuthMechanism None,Tls.
    let mut bad = custom("bad", &app.bind(3, 25), &["127.0.0.11"]);
    bad["authMechanism"] = json!(["None", "Tls"]);
    app.post(RC, bad.clone())
        .await
        .assert_problem(422, "authMechanism");
    // ExternalAuthoritative,BasicAuth.
    bad["authMechanism"] = json!(["ExternalAuthoritative", "BasicAuth"]);
    app.post(RC, bad).await.assert_problem(422, "authMechanism");
    // Nothing above changed anything.
    assert_eq!(
        app.get("/api/v1/server").await.body["configGeneration"],
        generation
    );

    // A partially overlapping pair on one binding.
    app.create(RC, custom("A", &app.bind(3, 25), &["10.0.0.11-10.0.0.13"]))
        .await;
    app.post(RC, custom("B", &app.bind(3, 25), &["10.0.0.12-10.0.0.14"]))
        .await
        .assert_problem(422, "remoteIpRanges[0]");
    // The same ranges on another binding are fine.
    app.create(
        RC,
        custom("B elsewhere", &app.bind(4, 25), &["10.0.0.12-10.0.0.14"]),
    )
    .await;
    // Identical (binding, range) pairs are refused.
    app.post(
        RC,
        custom("A twin", &app.bind(3, 25), &["10.0.0.11-10.0.0.13"]),
    )
    .await
    .assert_problem(422, "remoteIpRanges[0]");

    // E4 with /32s, then a fifth connector whose /28 contains them: accepted.
    app.create(
        RC,
        custom("From Hub", &app.bind(5, 25), &["10.0.0.11", "10.0.0.12"]),
    )
    .await;
    app.create(RC, custom("Fifth", &app.bind(5, 25), &["10.0.0.0/28"]))
        .await;
}

#[tokio::test]
async fn more_validation_rules() {
    let app = TestApp::spawn(Role::Edge).await;
    let mut c = custom("x", &app.bind(3, 25), &["127.0.0.11"]);
    c["authMechanism"] = json!(["BasicAuth", "BasicAuthRequireTLS"]);
    app.post(RC, c).await.assert_problem(422, "authMechanism");
    let mut c = custom("x", &app.bind(3, 25), &["127.0.0.11"]);
    c["authMechanism"] = json!(["BasicAuth"]);
    c["requireTLS"] = json!(true);
    app.post(RC, c).await.assert_problem(422, "requireTLS");
    let mut c = custom("x", &app.bind(3, 25), &["127.0.0.11"]);
    c["authMechanism"] = json!(["ExternalAuthoritative", "Tls"]);
    c["permissionGroups"] = json!(["AnonymousUsers"]);
    app.post(RC, c)
        .await
        .assert_problem(422, "permissionGroups");
    app.post(
        RC,
        json!({"name": "c", "usage": "Client", "remoteIpRanges": ["10.0.0.0/8"]}),
    )
    .await
    .assert_problem(422, "usage");
    let mut c = custom("x", &app.bind(3, 25), &["127.0.0.11"]);
    c["permissionGroups"] = json!(["ExchangeLegacyServers"]);
    app.post(RC, c)
        .await
        .assert_problem(422, "permissionGroups");
    app.post(RC, custom("x", &app.bind(3, 25), &["10.0.0.300"]))
        .await
        .assert_problem(422, "remoteIpRanges[0]");
    app.post(RC, custom("x", "localhost:25", &["127.0.0.11"]))
        .await
        .assert_problem(422, "bindings[0]");
    let mut c = custom("x", &app.bind(3, 25), &["127.0.0.11"]);
    c["maxMessageSize"] = json!(1000);
    app.post(RC, c).await.assert_problem(422, "maxMessageSize");
    let mut c = custom("x", &app.bind(3, 25), &["127.0.0.11"]);
    c["connectionTimeout"] = json!("5 minutes");
    app.post(RC, c)
        .await
        .assert_problem(422, "connectionTimeout");
    let mut c = custom("x", &app.bind(3, 25), &["127.0.0.11"]);
    c["banner"] = json!("hello");
    app.post(RC, c).await.assert_problem(422, "banner");
    // Safer than Exchange: anonymous relay from everywhere is an open relay.
    app.post(RC, json!({"name": "relay", "usage": "Custom", "bindings": [app.bind(3, 25)], "remoteIpRanges": ["0.0.0.0/0"],
        "permissionGroups": ["AnonymousUsers"],
        "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]}))
        .await
        .assert_problem(422, "remoteIpRanges");
    app.create(RC, custom("x", &app.bind(3, 25), &["127.0.0.11"]))
        .await;
    let dup = app
        .post(RC, custom("X", &app.bind(6, 25), &["127.0.0.11"]))
        .await;
    dup.assert_problem(409, "name");
    let r = app
        .patch(&format!("{RC}/x"), json!({"usage": "Internet"}), None)
        .await;
    r.assert_problem(422, "usage");
}

#[tokio::test]
async fn rights_can_be_revoked_and_granted_per_principal() {
    let app = TestApp::spawn(Role::Edge).await;
    let name = "Default%20internal%20receive%20connector%20EDGE01";
    let r = app
        .patch(&format!("{RC}/{name}"), json!({"extendedRights": [
            {"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender", "access": "Deny"}]}), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let anon = r.body["effectiveRights"]["Anonymous"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!anon.contains(&json!("ms-Exch-SMTP-Accept-Authoritative-Domain-Sender")));
    assert!(anon.contains(&json!("ms-Exch-SMTP-Submit")));
    let r = app
        .patch(
            &format!("{RC}/{name}"),
            json!({"extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Relay"}]}),
            None,
        )
        .await;
    r.assert_problem(422, "extendedRights[0].right");
}

#[tokio::test]
async fn stale_if_match_is_refused() {
    let app = TestApp::spawn(Role::Edge).await;
    let c = app
        .create(RC, custom("x", &app.bind(3, 25), &["127.0.0.11"]))
        .await;
    let id = c["id"].as_str().unwrap();
    // Admin 1 reads version 1 and saves: version 2.
    assert_eq!(
        app.patch(
            &format!("{RC}/{id}"),
            json!({"maxHopCount": 40}),
            Some("\"1\"")
        )
        .await
        .status,
        StatusCode::OK
    );
    // Admin 2 still holds version 1: refused, nothing overwritten.
    let r = app
        .patch(
            &format!("{RC}/{id}"),
            json!({"maxHopCount": 50}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert_eq!(app.get(&format!("{RC}/{id}")).await.body["maxHopCount"], 40);
    assert_eq!(
        app.delete(&format!("{RC}/{id}"), Some("\"1\""))
            .await
            .status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(app.get(&format!("{RC}/{id}")).await.status, StatusCode::OK);
    // A value that is no ETag of ours names no version: the condition is
    // false (RFC 9110 §13.1.1).
    assert_eq!(
        app.patch(&format!("{RC}/{id}"), json!({}), Some("garbage"))
            .await
            .status,
        StatusCode::PRECONDITION_FAILED
    );
    // If-Match compares strongly: a weak tag never matches.
    assert_eq!(
        app.delete(&format!("{RC}/{id}"), Some("W/\"2\""))
            .await
            .status,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        app.delete(&format!("{RC}/{id}"), Some("\"2\""))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
}
