//! The open-relay guard judges the union of a connector's ranges, however
//! they are split, on create and on patch, for every way an unauthenticated
//! client can hold ms-Exch-SMTP-Accept-Any-Recipient.

use crate::support::app::TestApp;
use ferry::model::Role;
use serde_json::{Value, json};

const RC: &str = "/api/v1/receive-connectors";

fn anonymous_relay(app: &TestApp, name: &str, ranges: &[&str]) -> Value {
    json!({"name": name, "usage": "Custom", "bindings": [app.bind(3, 25)], "remoteIpRanges": ranges,
           "permissionGroups": ["AnonymousUsers"],
           "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]})
}

fn external_authoritative(app: &TestApp, name: &str, ranges: &[&str]) -> Value {
    json!({"name": name, "usage": "Custom", "bindings": [app.bind(4, 25)], "remoteIpRanges": ranges,
           "authMechanism": ["ExternalAuthoritative"], "permissionGroups": ["ExchangeServers"]})
}

const SPLITS: &[&[&str]] = &[
    &["0.0.0.0/1", "128.0.0.0/1"],
    &["0.0.0.0-255.255.255.254"],
    &["0.0.0.0/2", "64.0.0.0/2", "128.0.0.0/2", "192.0.0.0/2"],
    &["::/1", "8000::/1", "0.0.0.0/1", "128.0.0.0/1"],
    &["2000::/4", "3000::/4"],
    &["11.0.0.0/8", "12.0.0.0/8"],
];

#[tokio::test]
async fn split_ranges_cannot_make_an_anonymous_open_relay_on_create() {
    let app = TestApp::spawn(Role::Edge).await;
    for (i, ranges) in SPLITS.iter().enumerate() {
        let r = app
            .post(RC, anonymous_relay(&app, &format!("relay {i}"), ranges))
            .await;
        r.assert_problem(422, "remoteIpRanges");
        assert!(r.text.contains("open relay"), "{ranges:?}: {}", r.text);
        let r = app
            .post(RC, external_authoritative(&app, &format!("ea {i}"), ranges))
            .await;
        r.assert_problem(422, "remoteIpRanges");
    }
    // Nothing was saved.
    let names: Vec<String> = app.get(RC).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 1, "only the default connector: {names:?}");
}

#[tokio::test]
async fn split_ranges_cannot_make_an_open_relay_through_patch() {
    let app = TestApp::spawn(Role::Edge).await;
    let narrow = app
        .create(RC, anonymous_relay(&app, "relay", &["127.0.0.50"]))
        .await;
    let id = narrow["id"].as_str().unwrap();
    for ranges in SPLITS {
        let r = app
            .patch(
                &format!("{RC}/{id}"),
                json!({"remoteIpRanges": ranges}),
                None,
            )
            .await;
        r.assert_problem(422, "remoteIpRanges");
    }
    // Granting the right afterwards to a wide connector is judged too.
    let wide = app
        .create(
            RC,
            json!({"name": "wide", "usage": "Custom", "bindings": [app.bind(5, 25)],
                   "remoteIpRanges": ["0.0.0.0/1", "128.0.0.0/1"], "permissionGroups": ["AnonymousUsers"]}),
        )
        .await;
    let r = app
        .patch(
            &format!("{RC}/{}", wide["id"].as_str().unwrap()),
            json!({"extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]}),
            None,
        )
        .await;
    r.assert_problem(422, "remoteIpRanges");
    let r = app
        .patch(
            &format!("{RC}/{}", wide["id"].as_str().unwrap()),
            json!({"authMechanism": ["ExternalAuthoritative"], "permissionGroups": ["ExchangeServers"]}),
            None,
        )
        .await;
    r.assert_problem(422, "remoteIpRanges");
    assert_eq!(app.get(&format!("{RC}/{id}")).await.body["version"], 1);
}

#[tokio::test]
async fn a_very_wide_relay_range_is_saved_with_a_warning() {
    let app = TestApp::spawn(Role::Edge).await;
    // All private space: not the Internet, but wider than a /8.
    let c = app
        .create(
            RC,
            anonymous_relay(
                &app,
                "lan",
                &["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"],
            ),
        )
        .await;
    let warnings = c["warnings"].to_string();
    assert!(warnings.contains("wider than a /8"), "{warnings}");
    // A narrow one has no such warning.
    let c = app
        .create(
            RC,
            json!({"name": "one host", "usage": "Custom", "bindings": [app.bind(6, 25)], "remoteIpRanges": ["127.0.0.50"],
                   "permissionGroups": ["AnonymousUsers"],
                   "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]}),
        )
        .await;
    assert!(!c["warnings"].to_string().contains("wider than"), "{}", c);
}

#[tokio::test]
async fn a_relay_domain_wildcard_over_a_public_suffix_is_warned_about() {
    let app = TestApp::spawn(Role::Edge).await;
    let d = app
        .create(
            "/api/v1/accepted-domains",
            json!({"domainName": "contoso.test"}),
        )
        .await;
    assert_eq!(d["warnings"], json!([]));
    let d = app
        .create(
            "/api/v1/accepted-domains",
            json!({"domainName": "*.com", "domainType": "InternalRelay"}),
        )
        .await;
    assert!(d["warnings"].to_string().contains("public suffix"), "{d}");
}
