use crate::support::app::TestApp;
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::json;

const AD: &str = "/api/v1/accepted-domains";

#[tokio::test]
async fn create_get_list_patch_delete_and_the_single_default() {
    let app = TestApp::spawn(Role::Hub).await;
    let a = app.create(AD, json!({"domainName": "contoso.test"})).await;
    assert_eq!(a["name"], "contoso.test");
    assert_eq!(a["domainType"], "Authoritative");
    assert_eq!(a["default"], true, "the first domain is the default");
    let b = app.create(AD, json!({"name": "Fabrikam", "domainName": "*.fabrikam.test", "domainType": "InternalRelay"})).await;
    assert_eq!(b["default"], false);
    assert_eq!(b["addressBookEnabled"], false);
    assert_eq!(
        app.get(&format!("{AD}/fabrikam")).await.body["domainName"],
        "*.fabrikam.test"
    );
    assert_eq!(app.get(AD).await.body["items"].as_array().unwrap().len(), 2);

    // Hub postmaster follows the default accepted domain.
    assert_eq!(
        app.get("/api/v1/transport-settings").await.body["effectivePostmasterAddress"],
        "postmaster@contoso.test"
    );

    // Unsetting the only default is refused; moving the default works.
    app.patch(
        &format!("{AD}/contoso.test"),
        json!({"default": false}),
        None,
    )
    .await
    .assert_problem(409, "default");
    let moved = app
        .patch(
            &format!("{AD}/Fabrikam"),
            json!({"default": true}),
            Some("\"1\""),
        )
        .await;
    assert_eq!(moved.status, StatusCode::OK, "{}", moved.text);
    let a = app.get(&format!("{AD}/contoso.test")).await;
    assert_eq!(a.body["default"], false);
    assert_eq!(a.body["version"], 2, "the old default changed too");

    // The default cannot be deleted while others exist.
    let r = app.delete(&format!("{AD}/Fabrikam"), None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    assert_eq!(
        app.delete(&format!("{AD}/contoso.test"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.delete(&format!("{AD}/Fabrikam"), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.get(AD).await.body["items"], json!([]));
}

#[tokio::test]
async fn validation() {
    let app = TestApp::spawn(Role::Edge).await;
    app.post(AD, json!({"domainName": "*contoso.test"}))
        .await
        .assert_problem(422, "domainName");
    app.post(AD, json!({"domainName": "contoso..test"}))
        .await
        .assert_problem(422, "domainName");
    app.post(
        AD,
        json!({"domainName": "contoso.test", "domainType": "Internal"}),
    )
    .await
    .assert_problem(422, "domainType");
    app.post(AD, json!({}))
        .await
        .assert_problem(422, "domainName");
    let a = app.create(AD, json!({"domainName": "Contoso.Test"})).await;
    assert_eq!(a["domainName"], "contoso.test");
    assert_eq!(
        a["addressBookEnabled"], false,
        "an Edge has no directory to look recipients up in"
    );
    app.post(AD, json!({"name": "again", "domainName": "contoso.test"}))
        .await
        .assert_problem(409, "domainName");
}
