//! The PROXY protocol behind HAProxy (issue 21): a client from 127.0.80.5
//! reaches Ferry through a load balancer and is selected, filtered and
//! logged as 127.0.80.5; a PROXY header from an address no connector lists
//! is refused.

use crate::support::app::TestApp;
use crate::support::client::Client;
use crate::support::haproxy::HaProxy;
use ferry::model::Role;
use serde_json::json;

const CLIENT: &str = "127.0.80.5";
const BLOCKED: &str = "127.0.80.6";

#[tokio::test(flavor = "multi_thread")]
async fn behind_haproxy_the_client_is_the_one_the_proxy_header_names() {
    let app = TestApp::spawn(Role::Edge).await;
    let n = app.net;
    let ip = |h: u8| format!("127.{n}.0.{h}");
    let ferry = format!("{}:2525", ip(5));
    let balancer = ip(80);
    app.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    // Everyone through the balancer; the office (127.0.80.5) by its own
    // narrower connector, which a real session must land on.
    app.create(
        "/api/v1/receive-connectors",
        json!({"name": "Balanced", "usage": "Custom", "bindings": [ferry],
               "remoteIpRanges": ["0.0.0.0-255.255.255.255"], "proxyProtocolFrom": [balancer],
               "fqdn": "balanced.contoso.test", "permissionGroups": ["AnonymousUsers"],
               "tarpitInterval": "00:00:00"}),
    )
    .await;
    app.create(
        "/api/v1/receive-connectors",
        json!({"name": "Office", "usage": "Custom", "bindings": [ferry],
               "remoteIpRanges": [CLIENT], "fqdn": "office.contoso.test",
               "permissionGroups": ["AnonymousUsers"], "protocolLoggingLevel": "Verbose",
               "tarpitInterval": "00:00:00"}),
    )
    .await;
    app.create(
        "/api/v1/ip-block-list-entries",
        json!({"ipRange": BLOCKED, "comment": "through the balancer"}),
    )
    .await;
    let Some(_v2) = HaProxy::start(&format!("{}:2525", ip(81)), &ferry, "v2", &balancer) else {
        return;
    };
    let _v1 = HaProxy::start(&format!("{}:2525", ip(82)), &ferry, "v1", &balancer).unwrap();

    for front in [ip(81), ip(82)] {
        let front = format!("{front}:2525");
        // Selected as 127.0.80.5: the Office connector's name greets it.
        let (mut c, banner) = Client::open(CLIENT, &front).await;
        assert!(
            banner.text.starts_with("office.contoso.test"),
            "{front}: {banner:?}"
        );
        c.cmd("EHLO office-pc").await;
        let r = c
            .send_mail(
                "ann@fabrikam.test",
                &["bob@contoso.test"],
                &format!("Subject: via {front}\r\n\r\nhi\r\n"),
            )
            .await;
        assert_eq!(r.code, 250, "{r:?}");
        c.cmd("QUIT").await;
        // Another client is another connector's.
        let (_, banner) = Client::open(&ip(30), &front).await;
        assert!(
            banner.text.starts_with("balanced.contoso.test"),
            "{banner:?}"
        );
        // Filtered as 127.0.80.6: the block list entry holds.
        let (mut c, _) = Client::open(BLOCKED, &front).await;
        c.cmd("EHLO spammer").await;
        assert_eq!(c.cmd("MAIL FROM:<x@spam.test>").await.code, 250);
        let r = c.cmd("RCPT TO:<bob@contoso.test>").await;
        assert_eq!(r.code, 550, "{r:?}");
    }
    // Logged as 127.0.80.5: tracking and the protocol log.
    let t = app.get("/api/v1/tracking?event=RECEIVE").await;
    let events = t.body["items"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{}", t.text);
    for ev in events {
        assert_eq!(ev["clientIp"], CLIENT, "{ev}");
        assert_eq!(ev["connector"], "Office", "{ev}");
    }
    let session = events[0]["session"].as_str().unwrap();
    let log = app
        .get(&format!("/api/v1/protocol-logs?session={session}"))
        .await;
    let lines = log.body["lines"].as_array().unwrap();
    assert!(!lines.is_empty(), "{}", log.text);
    for l in lines {
        assert!(
            l["remoteEndpoint"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{CLIENT}:")),
            "{l}"
        );
    }
    let t = app.get("/api/v1/tracking?event=AGENT").await;
    assert!(
        t.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|ev| ev["clientIp"] == BLOCKED),
        "{}",
        t.text
    );

    // A PROXY header from an address no connector lists: refused, whatever
    // address it claims.
    for header in [
        b"PROXY TCP4 127.0.80.5 127.0.0.1 40000 2525\r\n".to_vec(),
        ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (
                "127.0.80.5:40000".parse::<std::net::SocketAddr>().unwrap(),
                ferry.parse::<std::net::SocketAddr>().unwrap(),
            ),
        )
        .build()
        .unwrap(),
    ] {
        let (mut c, banner) = Client::open(&ip(31), &ferry).await;
        assert!(
            banner.text.starts_with("balanced.contoso.test"),
            "{banner:?}"
        );
        c.raw(&header).await;
        let r = c.reply().await.expect("a reply");
        assert_eq!(
            r.line(),
            ferry::smtp::replies::PROXY_REFUSED.to_line(true).trim_end(),
            "{r:?}"
        );
        assert!(c.closed().await);
    }
    // The balancer itself without a header: cut off before any banner.
    let mut c = Client::connect(&balancer, &ferry).await.unwrap();
    c.raw(b"EHLO not-a-header.example\r\n").await;
    assert!(
        c.reply().await.is_none(),
        "no banner without a PROXY header"
    );
}
