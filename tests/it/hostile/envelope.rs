//! What a client writes into the envelope and the headers: a quoted local
//! part cannot inject parameters at the next hop, sender-specified routing
//! is for relay clients only, and control characters never travel on.

use crate::support::app::TestApp;
use crate::support::client::Client;
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;
use std::time::Duration;

struct Edge {
    app: TestApp,
    sink: Sink,
}

impl Edge {
    fn ip(&self, host: u8) -> String {
        format!("127.{}.0.{host}", self.app.net)
    }
    /// The default connector: anonymous, no relay.
    fn anonymous(&self) -> String {
        self.app.bind(1, 2525)
    }
    /// A connector that lets the one host 127.N.0.50 relay.
    fn relay(&self) -> String {
        self.app.bind(5, 2525)
    }
}

async fn edge() -> Edge {
    let app = TestApp::spawn(Role::Edge).await;
    let ip = |h: u8| format!("127.{}.0.{h}", app.net);
    let sink = Sink::start(&format!("{}:2525", ip(16)), SinkOptions::default()).await;
    app.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    app.create(
        "/api/v1/send-connectors",
        json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": [ip(16)], "port": 2525}),
    )
    .await;
    app.create(
        "/api/v1/receive-connectors",
        json!({"name": "relay host", "usage": "Custom", "bindings": [app.bind(5, 2525)],
               "remoteIpRanges": [ip(50)], "permissionGroups": ["AnonymousUsers"], "tarpitInterval": "00:00:00",
               "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]}),
    )
    .await;
    app.patch(
        "/api/v1/receive-connectors/Default%20internal%20receive%20connector%20EDGE01",
        json!({"tarpitInterval": "00:00:00", "maxHopCount": 3, "maxProtocolErrors": "unlimited"}),
        None,
    )
    .await;
    Edge { app, sink }
}

async fn wait_for_rcpt(sink: &Sink, line: &str) -> Vec<String> {
    for _ in 0..200 {
        let cmds = sink.commands();
        if cmds.iter().any(|c| c == line) {
            return cmds;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the next hop never saw {line:?}: {:?}", sink.commands());
}

#[tokio::test]
async fn a_quoted_local_part_reaches_the_next_hop_quoted() {
    let e = edge().await;
    // From a client that may relay: the address is accepted as it is.
    let (mut c, _) = Client::open(&e.ip(50), &e.relay()).await;
    c.cmd("EHLO relay.test").await;
    assert_eq!(c.cmd("MAIL FROM:<a@fabrikam.example>").await.code, 250);
    let r = c
        .cmd("RCPT TO:<\"victim@victim.example> NOTIFY=NEVER\"@contoso.test>")
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(c.cmd("DATA").await.code, 354);
    assert_eq!(c.cmd("Subject: q\r\n\r\nhi\r\n.").await.code, 250);
    // From an anonymous client, a quoted local part without routing in it.
    let (mut c, _) = Client::open(&e.ip(20), &e.anonymous()).await;
    c.cmd("EHLO mta.test").await;
    c.cmd("MAIL FROM:<\"odd sender\"@fabrikam.example>").await;
    assert_eq!(
        c.cmd("RCPT TO:<\"bob> NOTIFY=NEVER\"@contoso.test>")
            .await
            .code,
        250
    );
    assert_eq!(c.cmd("DATA").await.code, 354);
    assert_eq!(c.cmd("Subject: q\r\n\r\nhi\r\n.").await.code, 250);

    let cmds = wait_for_rcpt(
        &e.sink,
        "RCPT TO:<\"victim@victim.example> NOTIFY=NEVER\"@contoso.test>",
    )
    .await;
    wait_for_rcpt(&e.sink, "RCPT TO:<\"bob> NOTIFY=NEVER\"@contoso.test>").await;
    assert!(
        cmds.iter()
            .any(|c| c.starts_with("MAIL FROM:<a@fabrikam.example>"))
    );
    assert!(
        !cmds
            .iter()
            .any(|c| c.contains("TO:<victim@victim.example>")),
        "no unquoted form ever went out: {cmds:?}"
    );
    // The Received header's `for <…>` is quoted the same way.
    let mut msgs = e.sink.messages();
    for _ in 0..200 {
        if msgs.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        msgs = e.sink.messages();
    }
    let bob = msgs
        .iter()
        .find(|m| m.2.contains("for <\"bob> NOTIFY=NEVER\"@contoso.test>"));
    assert!(bob.is_some(), "{msgs:?}");
}

#[tokio::test]
async fn sender_specified_routing_is_refused_to_clients_that_may_not_relay() {
    let e = edge().await;
    let attacks = [
        "user%victim.example@contoso.test",
        "victim.example!user@contoso.test",
        "\"user@victim.example\"@contoso.test",
    ];
    let (mut c, _) = Client::open(&e.ip(20), &e.anonymous()).await;
    c.cmd("EHLO mta.test").await;
    c.cmd("MAIL FROM:<a@fabrikam.example>").await;
    for a in attacks {
        let r = c.cmd(&format!("RCPT TO:<{a}>")).await;
        assert_eq!(
            r.line(),
            "550 5.7.1 Sender-specified routing (%, ! or @ in the local part) is not allowed for this client",
            "{a}"
        );
    }
    assert_eq!(c.cmd("RCPT TO:<bob@contoso.test>").await.code, 250);
    // A client that may relay keeps them.
    let (mut c, _) = Client::open(&e.ip(50), &e.relay()).await;
    c.cmd("EHLO relay.test").await;
    c.cmd("MAIL FROM:<a@fabrikam.example>").await;
    for a in attacks {
        assert_eq!(c.cmd(&format!("RCPT TO:<{a}>")).await.code, 250, "{a}");
    }
}

#[tokio::test]
async fn control_characters_are_refused_in_commands_and_addresses() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.ip(20), &e.anonymous()).await;
    for helo in [
        &b"EHLO evil\0host"[..],
        b"EHLO evil\x1b[31mhost",
        b"HELO bell\x07",
        b"EHLO caf\xc3\xa9.test",
        b"EHLO \xff\xfe",
    ] {
        let mut line = helo.to_vec();
        line.extend_from_slice(b"\r\n");
        c.raw(&line).await;
        let r = c.reply().await.unwrap();
        assert_eq!(
            r.code,
            501,
            "{:?}: {}",
            String::from_utf8_lossy(helo),
            r.text
        );
    }
    assert_eq!(c.cmd("EHLO mta.test").await.code, 250);
    c.raw(b"MAIL FROM:<a\0b@fabrikam.example>\r\n").await;
    assert_eq!(c.reply().await.unwrap().line(), "501 5.1.7 Invalid address");
    assert_eq!(c.cmd("MAIL FROM:<a@fabrikam.example>").await.code, 250);
    c.raw(b"RCPT TO:<bob\0evil@contoso.test>\r\n").await;
    assert_eq!(c.reply().await.unwrap().line(), "501 5.1.3 Invalid address");
    c.raw(b"RCPT TO:<bob\x1b@contoso.test>\r\n").await;
    assert_eq!(c.reply().await.unwrap().code, 501);
    assert_eq!(c.cmd("RCPT TO:<bob@contoso.test>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    // A Message-ID with control characters is not echoed as it is.
    c.raw(b"Message-ID: <evil\x1b[2J\x07@x.test>\r\nSubject: m\r\n\r\nhi\r\n.\r\n")
        .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.code, 250);
    assert!(!r.text.contains(['\x1b', '\x07']), "{:?}", r.text);
    assert!(r.text.contains("<evil?[2J?@x.test>"), "{:?}", r.text);
}

#[tokio::test]
async fn received_with_a_space_before_the_colon_counts_toward_the_hop_count() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.ip(20), &e.anonymous()).await;
    c.cmd("EHLO mta.test").await;
    c.cmd("MAIL FROM:<a@fabrikam.example>").await;
    c.cmd("RCPT TO:<bob@contoso.test>").await;
    assert_eq!(c.cmd("DATA").await.code, 354);
    let r = c
        .cmd("Received : from a\r\nReceived\t: from b\r\nReceived: from c\r\nSubject: loop\r\n\r\nhi\r\n.")
        .await;
    assert_eq!(
        r.line(),
        "554 5.4.6 Hop count exceeded - possible mail loop"
    );
}
