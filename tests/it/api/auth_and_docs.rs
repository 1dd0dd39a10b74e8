use crate::support::app::TestApp;
use ferry::model::Role;
use reqwest::StatusCode;

#[tokio::test]
async fn api_requires_the_admin_token() {
    let app = TestApp::spawn(Role::Edge).await;
    let client = reqwest::Client::new();
    for path in [
        "/api/v1/receive-connectors",
        "/api/v1/transport-settings",
        "/api/v1/certificates",
    ] {
        let r = client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(r.headers()["www-authenticate"], "Bearer realm=\"ferry\"");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        let r = client
            .get(format!("{}{path}", app.base))
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = client
        .post(format!("{}/api/v1/accepted-domains", app.base))
        .json(&serde_json::json!({"domainName": "contoso.test"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.get("/api/v1/accepted-domains").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        app.get("/api/v1/receive-connectors").await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn admin_token_file_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn(Role::Edge).await;
    let meta = std::fs::metadata(app.data_dir().join("admin-token")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(app.token.len() >= 40);
    assert!(!crate::support::app::contains(
        &app.data_bytes_without_token_file(),
        app.token.as_bytes()
    ));
}

#[tokio::test]
async fn operator_chosen_token_replaces_the_generated_one() {
    let app = TestApp::spawn_with(Role::Hub, |s| {
        s.admin_token = Some("an-operator-chosen-token-123".into())
    })
    .await;
    assert!(!app.data_dir().join("admin-token").exists());
    assert_eq!(app.get("/api/v1/server").await.body["role"], "Hub");
}

#[tokio::test]
async fn health_and_docs_need_no_token() {
    let app = TestApp::spawn(Role::Edge).await;
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{}/healthz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let spec: serde_json::Value = client
        .get(format!("{}/api/v1/openapi.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spec["openapi"], "3.1.0");
    assert!(spec["paths"]["/api/v1/receive-connectors/{id}"]["patch"].is_object());
}

/// Swagger UI must render offline: every script and stylesheet it loads is
/// served by Ferry itself, and none of them points the browser elsewhere.
#[tokio::test]
async fn swagger_ui_is_served_entirely_from_the_appliance() {
    let app = TestApp::spawn(Role::Edge).await;
    let client = reqwest::Client::new();
    let html = client
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let mut assets = vec![];
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            assets.push(part.split('"').next().unwrap().to_string());
        }
    }
    assert!(
        assets.iter().any(|a| a.ends_with("swagger-ui-bundle.js")),
        "{assets:?}"
    );
    for a in &assets {
        assert!(
            !a.starts_with("http") && !a.starts_with("//"),
            "external asset {a}"
        );
        let url = format!("{}/docs/{}", app.base, a.trim_start_matches("./"));
        let r = client.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{url}");
        assert!(!r.bytes().await.unwrap().is_empty());
    }
    let init = client
        .get(format!("{}/docs/swagger-initializer.js", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(init.contains("/api/v1/openapi.json"), "{init}");
}

#[tokio::test]
async fn committed_openapi_document_matches_the_code() {
    let committed =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/ferry.json"))
            .unwrap();
    assert!(
        committed == ferry::api::openapi::json(),
        "openapi/ferry.json is stale: run `cargo run -q -- openapi > openapi/ferry.json`"
    );
}

/// The document is valid OpenAPI 3.1 to a validator nobody here wrote
/// (`openapi-spec-validator` from PyPI): unique operation ids, resolvable
/// references, schemas that are JSON Schema.
#[test]
fn the_openapi_document_passes_openapi_spec_validator() {
    let Some(python) = crate::support::python::with(&["openapi_spec_validator"]) else {
        return;
    };
    let out = std::process::Command::new(python)
        .args(["-m", "openapi_spec_validator"])
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi/ferry.json"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success() && text.contains("OK"), "{text}");
}

#[tokio::test]
async fn malformed_bodies_get_problems_and_change_nothing() {
    let app = TestApp::spawn(Role::Edge).await;
    let before = app.get("/api/v1/server").await.body["configGeneration"].clone();
    let r = app
        .client
        .post(format!("{}/api/v1/accepted-domains", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "application/json")
        .body("{\"domainName\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let r = app
        .client
        .post(format!("{}/api/v1/accepted-domains", app.base))
        .bearer_auth(&app.token)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let r = app
        .post(
            "/api/v1/accepted-domains",
            serde_json::json!({"domainName": "contoso.test", "colour": "blue"}),
        )
        .await;
    r.assert_problem(422, "colour");
    let r = app.get("/api/v1/no-such-thing").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get("/api/v1/server").await.body["configGeneration"],
        before
    );
}

/// `/docs` renders in a real browser with no network: headless Chromium
/// loads Swagger UI from the appliance and builds the operation list.
#[tokio::test]
async fn swagger_ui_renders_in_headless_chromium() {
    if !crate::support::peers::require(&["chromium"]) {
        return;
    }
    let app = TestApp::spawn(Role::Edge).await;
    let url = format!("{}/docs/", app.base);
    let profile = app.dir.path().join("chromium-profile");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .output()
            .expect("chromium is installed (see .ci/run)")
    })
    .await
    .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout);
    for tag in [
        "receive-connectors",
        "send-connectors",
        "certificates",
        "transport-settings",
    ] {
        assert!(
            dom.contains(&format!("id=\"operations-tag-{tag}\"")),
            "Swagger UI did not render the {tag} operations; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Wrong tokens are counted per source address: past the lockout
/// threshold the address gets `429` with `Retry-After` (even with the
/// right token, until the window passes), other addresses are untouched,
/// missing tokens are not counted, and the metrics show both.
#[tokio::test]
async fn wrong_tokens_lock_the_source_address_out() {
    let app = TestApp::spawn(Role::Edge).await;
    let r = app
        .patch(
            "/api/v1/transport-settings",
            serde_json::json!({"authFailureLockoutThreshold": 3, "authFailureLockoutWindow": "00:01:00"}),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let from = |host: u8| {
        reqwest::Client::builder()
            .local_address(Some(format!("127.{}.0.{host}", app.net).parse().unwrap()))
            .build()
            .unwrap()
    };
    let (attacker, other) = (from(77), from(78));
    let url = format!("{}/api/v1/transport-settings", app.base);
    // Requests without a token are not guesses.
    for _ in 0..5 {
        let r = attacker.get(&url).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    for _ in 0..3 {
        let r = attacker
            .get(&url)
            .bearer_auth("guess")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    // Locked out: even the right token waits.
    let r = attacker
        .get(&url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["status"], 429, "{body}");
    // Another address is not.
    let r = other
        .get(&url)
        .bearer_auth(&app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Every response says it may not be framed or leak a referrer.
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert_eq!(
        r.headers()["content-security-policy"],
        "frame-ancestors 'none'"
    );
    let m = app.get("/metrics").await.text;
    assert!(
        m.contains("ferry_api_auth_failures_total{result=\"refused\"} 3")
            && m.contains("ferry_api_auth_failures_total{result=\"throttled\"} 1"),
        "{m}"
    );
}
