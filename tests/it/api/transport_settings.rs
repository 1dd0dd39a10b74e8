use crate::support::app::TestApp;
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::json;

const TS: &str = "/api/v1/transport-settings";

#[tokio::test]
async fn get_and_patch_with_validation_and_preconditions() {
    let app = TestApp::spawn(Role::Edge).await;
    let g = app.get(TS).await;
    // The harness has changed the settings once (disk back pressure off).
    let v1 = g.etag();
    assert_eq!(v1, "\"2\"");
    let p = app
        .patch(TS, json!({"externalDNSServers": ["127.0.0.1:5353"], "messageRetryInterval": "00:00:30",
            "externalPostmasterAddress": "postmaster@contoso.test", "serverFqdn": "edge01.corp.contoso.test"}), Some(&v1))
        .await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text);
    assert_eq!(p.etag(), "\"3\"");
    assert_eq!(p.body["externalDNSServers"], json!(["127.0.0.1:5353"]));
    assert_eq!(
        p.body["effectivePostmasterAddress"],
        "postmaster@contoso.test"
    );
    // The server FQDN is every connector's default FQDN.
    let rc = app.get("/api/v1/receive-connectors").await.body["items"][0].clone();
    assert_eq!(rc["effectiveFqdn"], "edge01.corp.contoso.test");
    assert_eq!(
        app.get("/api/v1/server").await.body["fqdn"],
        "edge01.corp.contoso.test"
    );

    assert_eq!(
        app.patch(TS, json!({"transientFailureRetryCount": 7}), Some(&v1))
            .await
            .status,
        StatusCode::PRECONDITION_FAILED
    );
    app.patch(TS, json!({"transientFailureRetryCount": 16}), None)
        .await
        .assert_problem(422, "transientFailureRetryCount");
    // Below the stored retry schedule: a conflict with the stored values.
    app.patch(TS, json!({"delayNotificationTimeout": "00:30:00"}), None)
        .await
        .assert_problem(409, "delayNotificationTimeout");
    app.patch(TS, json!({"externalDNSServers": ["dns.example"]}), None)
        .await
        .assert_problem(422, "externalDNSServers[0]");
    app.patch(
        TS,
        json!({"externalPostmasterAddress": "not an address"}),
        None,
    )
    .await
    .assert_problem(422, "externalPostmasterAddress");
    app.patch(TS, json!({"messageExpirationTimeout": "00:00:01"}), None)
        .await
        .assert_problem(422, "messageExpirationTimeout");
    app.patch(TS, json!({"role": "Hub"}), None)
        .await
        .assert_problem(422, "role");
    assert_eq!(
        app.get(TS).await.body["version"],
        3,
        "rejected patches changed nothing"
    );
}
