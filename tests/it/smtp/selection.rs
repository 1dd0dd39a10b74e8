//! Spec §3 step 2: receive-connector selection by binding, then by the most
//! specific remote range.

use crate::support::client::Client;
use crate::support::scenario::edge;
use ferry::smtp::replies;

#[tokio::test]
async fn seed_scenario_selection_cases() {
    let e = edge().await;
    // Internet MTA → external address ⇒ E3 (its FQDN is in the banner).
    let (_, banner) = Client::open(&e.internet, &e.e3()).await;
    assert_eq!(banner.code, 220);
    assert!(
        banner
            .text
            .starts_with("mail.contoso.test Ferry ESMTP service ready at "),
        "{}",
        banner.text
    );
    // Hub → internal address ⇒ E4.
    let (_, banner) = Client::open(&e.hub1, &e.e4()).await;
    assert!(
        banner.text.starts_with("edge01.corp.contoso.test "),
        "{}",
        banner.text
    );
    let (_, banner) = Client::open(&e.hub2, &e.e4()).await;
    assert!(
        banner.text.starts_with("edge01.corp.contoso.test "),
        "{}",
        banner.text
    );
    // A stranger → internal address ⇒ no connector: refused and closed.
    let (mut c, banner) = Client::open(&e.stranger, &e.e4()).await;
    assert_eq!(
        banner.line(),
        replies::SERVICE_NOT_AVAILABLE.to_line(true).trim_end()
    );
    assert!(c.closed().await);
    // A Hub → external address ⇒ E3: the binding decides.
    let (_, banner) = Client::open(&e.hub1, &e.e3()).await;
    assert!(
        banner.text.starts_with("mail.contoso.test "),
        "{}",
        banner.text
    );
}

#[tokio::test]
async fn most_specific_range_and_exact_binding_win() {
    let e = edge().await;
    let app = &e.app;
    let port = 2600;
    let mk = |name: &str, binding: String, range: String, fqdn: &str| {
        serde_json::json!({"name": name, "usage": "Custom", "bindings": [binding], "remoteIpRanges": [range],
            "permissionGroups": ["AnonymousUsers"], "fqdn": fqdn})
    };
    let wildcard = format!("0.0.0.0:{port}");
    let exact = format!("{}:{port}", e.internal);
    app.create(
        "/api/v1/receive-connectors",
        mk(
            "all",
            wildcard.clone(),
            "0.0.0.0/0".into(),
            "all.contoso.test",
        ),
    )
    .await;
    app.create(
        "/api/v1/receive-connectors",
        mk(
            "slash24",
            wildcard.clone(),
            format!("127.{}.0.0/24", app.net),
            "net.contoso.test",
        ),
    )
    .await;
    app.create(
        "/api/v1/receive-connectors",
        mk("host", wildcard, e.hub2.clone(), "host.contoso.test"),
    )
    .await;
    app.create(
        "/api/v1/receive-connectors",
        mk(
            "exact",
            exact.clone(),
            "0.0.0.0/0".into(),
            "exact.contoso.test",
        ),
    )
    .await;
    let banner = |from: String, to: String| async move { Client::open(&from, &to).await.1.text };
    // /32 beats /24 beats 0/0 on the wildcard binding.
    assert!(
        banner(e.hub2.clone(), format!("{}:{port}", e.external))
            .await
            .starts_with("host.contoso.test")
    );
    assert!(
        banner(e.hub1.clone(), format!("{}:{port}", e.external))
            .await
            .starts_with("net.contoso.test")
    );
    assert!(
        banner("127.1.2.3".into(), format!("{}:{port}", e.external))
            .await
            .starts_with("all.contoso.test")
    );
    // On the exact address: equal range 0/0 — the exact binding beats the wildcard;
    // but the wildcard's /32 for hub2 is more specific and still wins.
    assert!(
        banner("127.1.2.3".into(), exact.clone())
            .await
            .starts_with("exact.contoso.test")
    );
    assert!(
        banner(e.hub2.clone(), exact.clone())
            .await
            .starts_with("host.contoso.test")
    );
    // A disabled connector is skipped: the /24 is next most specific.
    app.patch(
        "/api/v1/receive-connectors/host",
        serde_json::json!({"enabled": false}),
        None,
    )
    .await;
    assert!(
        banner(e.hub2.clone(), exact)
            .await
            .starts_with("net.contoso.test")
    );
}

#[tokio::test]
async fn ipv6_clients_are_selected_by_their_ranges() {
    let e = edge().await;
    let port = 2620 + (e.app.net as u16 % 50);
    e.app
        .create("/api/v1/receive-connectors", serde_json::json!({"name": "v6", "usage": "Custom",
            "bindings": [format!("[::1]:{port}")], "remoteIpRanges": ["::1"], "permissionGroups": ["AnonymousUsers"],
            "fqdn": "v6.contoso.test"}))
        .await;
    let stream = tokio::net::TcpStream::connect(format!("[::1]:{port}"))
        .await
        .expect("IPv6 loopback");
    let mut reader = tokio::io::BufReader::new(stream);
    let mut banner = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut banner)
        .await
        .unwrap();
    assert!(banner.starts_with("220 v6.contoso.test "), "{banner}");
}
