//! The API's answers to what automation and browsers get wrong or try on
//! purpose: duplicate keys, weak ETags, lost updates, look-alike names, and
//! one error format and hardening headers on every response.

use crate::support::app::TestApp;
use ferry::model::Role;
use serde_json::json;

const RC: &str = "/api/v1/receive-connectors";
const DEFAULT: &str =
    "/api/v1/receive-connectors/Default%20internal%20receive%20connector%20EDGE01";

async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    ct: &str,
    body: &str,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = reqwest::Client::new()
        .request(method.parse().unwrap(), format!("{}{path}", app.base))
        .bearer_auth(&app.token)
        .header("Content-Type", ct)
        .body(body.to_string());
    for (k, v) in extra {
        r = r.header(*k, *v);
    }
    r.send().await.unwrap()
}

fn is_problem(r: &reqwest::Response) -> bool {
    r.headers()
        .get("content-type")
        .is_some_and(|v| v.to_str().unwrap().starts_with("application/problem+json"))
}

#[tokio::test]
async fn duplicate_json_keys_are_refused_and_change_nothing() {
    let app = TestApp::spawn(Role::Edge).await;
    let r = raw(
        &app,
        "PATCH",
        DEFAULT,
        "application/merge-patch+json",
        r#"{"enabled": false, "enabled": true}"#,
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(is_problem(&r));
    assert!(r.text().await.unwrap().contains("duplicate key 'enabled'"));
    let r = raw(
        &app,
        "POST",
        "/api/v1/accepted-domains",
        "application/json",
        r#"{"domainName": "a.test", "nested": {"x": 1, "x": 2}}"#,
        &[],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert_eq!(app.get(DEFAULT).await.body["version"], 1);
}

#[tokio::test]
async fn only_strong_etags_satisfy_if_match() {
    let app = TestApp::spawn(Role::Edge).await;
    let r = raw(
        &app,
        "PATCH",
        DEFAULT,
        "application/merge-patch+json",
        r#"{"maxHopCount": 40}"#,
        &[("If-Match", "W/\"1\"")],
    )
    .await;
    assert_eq!(r.status(), 412);
    assert!(is_problem(&r));
    let r = raw(
        &app,
        "PATCH",
        DEFAULT,
        "application/merge-patch+json",
        r#"{"maxHopCount": 40}"#,
        &[("If-Match", "\"1\"")],
    )
    .await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn concurrent_patches_without_if_match_lose_no_change() {
    let app = TestApp::spawn(Role::Edge).await;
    let changes = [
        json!({"maxMessageSize": 20971520}),
        json!({"maxRecipientsPerMessage": 300}),
        json!({"maxHeaderSize": 200000}),
        json!({"maxHopCount": 40}),
        json!({"maxLocalHopCount": 9}),
        json!({"banner": "220 mail.contoso.test ready"}),
        json!({"fqdn": "mx.contoso.test"}),
        json!({"tarpitInterval": "00:00:01"}),
        json!({"authTarpitInterval": "00:00:02"}),
        json!({"maxInboundConnection": 4000}),
        json!({"maxInboundConnectionPerSource": 30}),
        json!({"maxInboundConnectionPercentagePerSource": 3}),
        json!({"maxLogonFailures": 4}),
        json!({"maxProtocolErrors": 7}),
        json!({"messageRateLimit": 500}),
        json!({"pipeliningEnabled": false}),
        json!({"enhancedStatusCodesEnabled": false}),
        json!({"comment": "edited"}),
        json!({"eightBitMimeEnabled": false}),
        json!({"connectionTimeout": "00:20:00"}),
    ];
    let tasks: Vec<_> = changes
        .iter()
        .map(|c| {
            let (base, token, c) = (app.base.clone(), app.token.clone(), c.clone());
            tokio::spawn(async move {
                let r = reqwest::Client::new()
                    .patch(format!("{base}{DEFAULT}"))
                    .bearer_auth(token)
                    .header("Content-Type", "application/merge-patch+json")
                    .body(c.to_string())
                    .send()
                    .await
                    .unwrap();
                (r.status(), r.text().await.unwrap())
            })
        })
        .collect();
    for t in tasks {
        let (status, text) = t.await.unwrap();
        assert_eq!(status, 200, "{text}");
    }
    let now = app.get(DEFAULT).await.body;
    assert_eq!(now["version"], 21);
    for c in &changes {
        let (k, v) = c.as_object().unwrap().iter().next().unwrap();
        assert_eq!(&now[k], v, "{k} kept");
    }
}

#[tokio::test]
async fn names_with_bidi_controls_or_zero_width_characters_are_refused() {
    let app = TestApp::spawn(Role::Edge).await;
    for name in [
        "From \u{202E}tenretnI",
        "From\u{200B}Internet",
        "\u{2066}x\u{2069}",
    ] {
        app.post(
            RC,
            json!({"name": name, "usage": "Custom", "bindings": [app.bind(3, 25)],
                            "remoteIpRanges": ["127.0.0.50"]}),
        )
        .await
        .assert_problem(422, "name");
    }
}

#[tokio::test]
async fn every_error_is_problem_json_and_every_response_is_hardened() {
    let app = TestApp::spawn(Role::Edge).await;
    let client = reqwest::Client::new();
    // 405 from the router, 401 without a token, 404, 415, 400 for a bad path.
    let cases = [
        client
            .put(format!("{}{RC}", app.base))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap(),
        client
            .get(format!("{}{RC}", app.base))
            .send()
            .await
            .unwrap(),
        client
            .get(format!("{}/api/v1/nothing-here", app.base))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap(),
        client
            .post(format!("{}{RC}", app.base))
            .bearer_auth(&app.token)
            .header("Content-Type", "text/plain")
            .body("x")
            .send()
            .await
            .unwrap(),
        client
            .get(format!("{}/api/v1/messages/not-a-number", app.base))
            .bearer_auth(&app.token)
            .send()
            .await
            .unwrap(),
    ];
    let mut statuses = vec![];
    for r in cases {
        statuses.push(r.status().as_u16());
        assert!(is_problem(&r), "{} is problem+json", r.status());
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["type"]
                .as_str()
                .unwrap()
                .starts_with("urn:ferry:problem:"),
            "{body}"
        );
    }
    assert_eq!(statuses, [405, 401, 404, 415, 400]);
    for path in ["/healthz", "/", "/docs/", "/api/v1/openapi.json"] {
        let r = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.headers()["x-content-type-options"], "nosniff", "{path}");
    }
    let docs = client
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    let csp = docs.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}
