//! Named API tokens and their roles (issue 19): View-Only reads, Operator
//! acts on queues, Administrator does everything; expired and revoked
//! tokens are refused; and every route enforces the role its OpenAPI
//! operation declares.

use crate::support::app::{TestApp, contains};
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn make_token(app: &TestApp, name: &str, role: &str) -> String {
    let r = app
        .post("/api/v1/api-tokens", json!({"name": name, "role": role}))
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    assert_eq!(r.body["role"], role);
    assert_eq!(r.body["state"], "Active");
    r.body["secret"].as_str().unwrap().to_string()
}

#[track_caller]
fn assert_forbidden(r: &crate::support::app::Resp, needs: &str) {
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(r.headers["content-type"], "application/problem+json");
    assert!(
        r.body["detail"].as_str().unwrap().contains(needs),
        "the problem names the role needed: {}",
        r.text
    );
}

#[tokio::test]
async fn tokens_carry_roles_and_can_expire_be_revoked_and_rotated() {
    let app = TestApp::spawn(Role::Hub).await;
    let viewer = make_token(&app, "grafana", "View-Only").await;
    let operator = make_token(&app, "night-shift", "Operator").await;
    let v = Some(viewer.as_str());
    let o = Some(operator.as_str());

    // The secret is shown once: neither listed nor stored.
    let list = app.get("/api/v1/api-tokens").await;
    assert_eq!(list.status, StatusCode::OK);
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "grafana", "night-shift"], "{}", list.text);
    assert_eq!(list.body["items"][0]["bootstrap"], true);
    assert!(!list.text.contains(&viewer) && !list.text.contains(&operator));
    let stored = app.data_bytes_without_token_file();
    assert!(!contains(&stored, viewer.as_bytes()) && !contains(&stored, operator.as_bytes()));
    // Names are unique.
    let r = app
        .post(
            "/api/v1/api-tokens",
            json!({"name": "GRAFANA", "role": "Operator"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    app.post("/api/v1/api-tokens", json!({"name": "x", "role": "Root"}))
        .await
        .assert_problem(422, "role");
    app.post(
        "/api/v1/api-tokens",
        json!({"name": "x", "role": "Operator", "expiresAt": "2001-01-01T00:00:00Z"}),
    )
    .await
    .assert_problem(422, "expiresAt");

    // View-Only reads everything but raw bodies and the tokens.
    for p in [
        "/api/v1/receive-connectors",
        "/api/v1/transport-settings",
        "/api/v1/queues",
        "/api/v1/credentials",
    ] {
        let r = app.request_as(v, "GET", p, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{p}: {}", r.text);
    }
    let r = app
        .request_as(
            v,
            "POST",
            "/api/v1/accepted-domains",
            Some(json!({"domainName": "x.test"})),
            None,
        )
        .await;
    assert_forbidden(&r, "Administrator");
    let r = app
        .request_as(v, "GET", "/api/v1/messages/1/raw", None, None)
        .await;
    assert_forbidden(&r, "Operator");
    let r = app
        .request_as(v, "POST", "/api/v1/queues/Submission/retry", None, None)
        .await;
    assert_forbidden(&r, "Operator");
    let r = app
        .request_as(v, "GET", "/api/v1/api-tokens", None, None)
        .await;
    assert_forbidden(&r, "Administrator");
    assert!(
        app.get("/api/v1/accepted-domains").await.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["domainName"] != "x.test")
    );

    // Operator acts on queues, not on connectors.
    let r = app
        .request_as(o, "POST", "/api/v1/queues/Submission/retry", None, None)
        .await;
    assert!(
        r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
        "{}",
        r.text
    );
    let r = app
        .request_as(o, "GET", "/api/v1/messages/1/raw", None, None)
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "{}", r.text);
    let conn = app.get("/api/v1/send-connectors").await;
    assert_eq!(conn.status, StatusCode::OK);
    let r = app
        .request_as(
            o,
            "POST",
            "/api/v1/send-connectors",
            Some(json!({"name": "Out", "addressSpaces": ["*"]})),
            None,
        )
        .await;
    assert_forbidden(&r, "Administrator");

    // Last use is recorded, with the address.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let t = app.get("/api/v1/api-tokens/night-shift").await;
    assert_eq!(t.body["lastUsedFrom"], "127.0.0.1", "{}", t.text);
    assert!(t.body["lastUsedAt"].is_string(), "{}", t.text);

    // Rotation: the old secret stops working, the new one works.
    let r = app
        .post("/api/v1/api-tokens/grafana/rotate", json!({}))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    let rotated = r.body["secret"].as_str().unwrap().to_string();
    assert_ne!(rotated, viewer);
    let r = app.request_as(v, "GET", "/api/v1/server", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = app
        .request_as(Some(&rotated), "GET", "/api/v1/server", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);

    // Revoked: 401, and still listed as Revoked.
    assert_eq!(
        app.delete("/api/v1/api-tokens/night-shift", None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = app.request_as(o, "GET", "/api/v1/queues", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.body["detail"].as_str().unwrap().contains("revoked"));
    // Revoked is gone (410) as an object; the list keeps its record.
    let gone = app.get("/api/v1/api-tokens/night-shift").await;
    assert_eq!(gone.status, StatusCode::GONE, "{}", gone.text);
    assert!(gone.body["detail"].as_str().unwrap().contains("revoked"));
    let listed = app.get("/api/v1/api-tokens").await.body;
    assert!(
        listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "night-shift" && t["state"] == "Revoked"),
        "{listed}"
    );

    // Expired: 401.
    let soon = (time::OffsetDateTime::now_utc() + time::Duration::seconds(2))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let r = app
        .post(
            "/api/v1/api-tokens",
            json!({"name": "short-lived", "role": "View-Only", "expiresAt": soon}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let short = r.body["secret"].as_str().unwrap().to_string();
    let r = app
        .request_as(Some(&short), "GET", "/api/v1/server", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let r = app
        .request_as(Some(&short), "GET", "/api/v1/server", None, None)
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    assert!(r.body["detail"].as_str().unwrap().contains("expired"));
    assert_eq!(
        app.get("/api/v1/api-tokens/short-lived").await.body["state"],
        "Expired"
    );

    // The bootstrap token cannot be revoked while it is the only
    // Administrator; once another exists, it can, and is refused after.
    let r = app.delete("/api/v1/api-tokens/admin", None).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
    let admin2 = make_token(&app, "automation", "Administrator").await;
    let r = app.delete("/api/v1/api-tokens/admin", None).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.text);
    assert_eq!(
        app.get("/api/v1/server").await.status,
        StatusCode::UNAUTHORIZED
    );
    let r = app
        .request_as(Some(&admin2), "GET", "/api/v1/api-tokens", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK);
    // Nor can the last one revoke itself.
    let r = app
        .request_as(
            Some(&admin2),
            "DELETE",
            "/api/v1/api-tokens/automation",
            None,
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.text);
}

#[tokio::test]
async fn giving_the_admin_token_at_start_brings_a_revoked_bootstrap_token_back() {
    let mut app = TestApp::spawn_with(Role::Edge, |s| {
        s.admin_token = Some("bootstrap-token-0123456789".into())
    })
    .await;
    let other = make_token(&app, "other-admin", "Administrator").await;
    assert_eq!(
        app.delete("/api/v1/api-tokens/admin", None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        app.get("/api/v1/server").await.status,
        StatusCode::UNAUTHORIZED
    );
    app.restart().await;
    assert_eq!(app.get("/api/v1/server").await.status, StatusCode::OK);
    let r = app
        .request_as(Some(&other), "GET", "/api/v1/server", None, None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "named tokens survive a restart");
}

/// Walks the OpenAPI document: every operation with a bearer requirement
/// names one role, and the running API gives exactly that role (and the
/// ones above it) past authorization — 403 below it, 401 without a token.
#[tokio::test]
async fn every_route_enforces_the_role_its_openapi_operation_declares() {
    let app = TestApp::spawn(Role::Hub).await;
    let doc = app.get("/api/v1/openapi.json").await.body;
    let tokens = [
        (
            "View-Only",
            make_token(&app, "walk-viewer", "View-Only").await,
        ),
        (
            "Operator",
            make_token(&app, "walk-operator", "Operator").await,
        ),
        ("Administrator", app.token.clone()),
    ];
    let rank = |r: &str| {
        ["View-Only", "Operator", "Administrator"]
            .iter()
            .position(|x| *x == r)
            .unwrap_or_else(|| panic!("unknown role {r}"))
    };
    let mut checked = 0;
    let mut per_role = [0; 3];
    // The two tokens made above.
    let mut mutations = 2;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let security = op["security"]
                .as_array()
                .unwrap_or_else(|| panic!("{method} {path} declares no security requirement"));
            if security.iter().all(|s| s.as_object().unwrap().is_empty()) {
                // Public: no token needed.
                let r = app
                    .request_as(None, &method.to_uppercase(), path, None, None)
                    .await;
                assert!(r.status.is_success(), "{method} {path}: {}", r.text);
                continue;
            }
            let scopes = security[0]["bearer"].as_array().unwrap();
            assert_eq!(scopes.len(), 1, "{method} {path} names one role");
            let needed = rank(scopes[0].as_str().unwrap());
            per_role[needed] += 1;
            // Path parameters that name nothing: authorization comes
            // first, so the answer is 403 or, past it, a 404 or 4xx.
            let concrete = path
                .split('/')
                .map(|seg| {
                    if seg.starts_with('{') {
                        "no-such-object"
                    } else {
                        seg
                    }
                })
                .collect::<Vec<_>>()
                .join("/");
            let m = method.to_uppercase();
            let r = app.request_as(None, &m, &concrete, None, None).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{m} {path} without a token"
            );
            for (role, secret) in &tokens {
                let r = app
                    .request_as(Some(secret), &m, &concrete, None, None)
                    .await;
                if rank(role) < needed {
                    assert_forbidden(&r, scopes[0].as_str().unwrap());
                } else {
                    assert!(
                        r.status != StatusCode::FORBIDDEN && r.status != StatusCode::UNAUTHORIZED,
                        "{m} {path} as {role}: {} {}",
                        r.status,
                        r.text
                    );
                }
                checked += 1;
                // What View-Only may call changes nothing, and is not
                // audited (the explain questions).
                if m != "GET" && m != "HEAD" && needed > 0 {
                    mutations += 1;
                }
            }
        }
    }
    assert!(checked > 300, "{checked} checks");
    // Every mutation that got past authentication is in the audit log,
    // refused or not.
    let mut logged = 0;
    let mut cursor = String::new();
    loop {
        let page = app
            .get(&format!("/api/v1/audit-log?limit=1000{cursor}"))
            .await
            .body;
        logged += page["items"].as_array().unwrap().len();
        match page["nextCursor"].as_str() {
            Some(c) => cursor = format!("&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(logged, mutations, "every mutation leaves one audit entry");
    assert!(per_role.iter().all(|n| *n > 0), "{per_role:?}");
    let _: Value = doc;
}
