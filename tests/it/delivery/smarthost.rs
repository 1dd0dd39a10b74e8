//! Smart hosts: Postfix with STARTTLS and SASL behind BasicAuthRequireTLS,
//! a plain peer that must never see credentials, RequireTLS, failover.

use crate::delivery::setup::{env, eventually};
use crate::support::pki::Ca;
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;

const POSTFIX_IP: &str = "127.77.0.11";

#[tokio::test]
async fn postfix_smart_host_with_starttls_and_auth() {
    if !crate::support::peers::require(&["postfix"]) {
        return;
    }
    let Some(e) = env(
        Role::Edge,
        &["--host-record=hub01.corp.contoso.test,127.77.0.11"],
    )
    .await
    else {
        return;
    };
    let ca = Ca::new(e.app.dir.path());
    let pf = crate::support::peers::postfix_smarthost(
        e.app.dir.path(),
        POSTFIX_IP,
        "hub01.corp.contoso.test",
        "contoso.test",
        ("edge01", "Edge-Relay-Pass-7"),
        &ca,
    );

    e.app
        .create(
            "/api/v1/certificates",
            json!({"source": "trustAnchor", "certificatePem": ca.cert_pem}),
        )
        .await;
    e.app
        .create("/api/v1/credentials", json!({"name": "to-hub", "kind": "SmartHost", "userName": "edge01", "password": "Edge-Relay-Pass-7"}))
        .await;
    e.connector(
        json!({"name": "To Internal Org", "usage": "Internal", "addressSpaces": ["--"],
        "smartHosts": ["hub01.corp.contoso.test"], "port": 2525,
        "smartHostAuthMechanism": "BasicAuthRequireTLS", "authenticationCredential": "to-hub"}),
    )
    .await;
    let subject = format!("via-postfix-{}", uuid::Uuid::new_v4().simple());
    e.submit("alice@fabrikam.test", &["bob@contoso.test"], &subject)
        .await;
    eventually(20, "Postfix stored the message", || async {
        pf.mailbox("contoso.test")
            .iter()
            .any(|m| m.contains(&subject))
    })
    .await;
    let stored = pf
        .mailbox("contoso.test")
        .into_iter()
        .find(|m| m.contains(&subject))
        .unwrap();
    assert!(
        stored.contains("Delivered-To: bob@contoso.test"),
        "{stored}"
    );
    assert!(
        stored.contains("with ESMTPSA"),
        "Postfix saw TLS and AUTH: {stored}"
    );

    // The wrong password: the queue goes to Retry with the 535, nothing is delivered.
    e.app
        .patch(
            "/api/v1/credentials/to-hub",
            json!({"password": "wrong-password"}),
            None,
        )
        .await;
    let subject2 = format!("wrong-password-{}", uuid::Uuid::new_v4().simple());
    e.submit("alice@fabrikam.test", &["bob@contoso.test"], &subject2)
        .await;
    eventually(20, "the queue is in Retry with the 535", || async {
        e.queue("hub01.corp.contoso.test").await.is_some_and(|q| {
            q["status"] == "Retry" && q["lastError"].as_str().unwrap_or("").contains("535")
        })
    })
    .await;
    assert!(
        !pf.mailbox("contoso.test")
            .iter()
            .any(|m| m.contains(&subject2))
    );
    let msgs = e.messages().await;
    assert_eq!(msgs.len(), 1, "{msgs:#?}");
    assert_eq!(msgs[0]["status"], "Retry");
}

#[tokio::test]
async fn credentials_are_never_sent_to_a_peer_without_starttls() {
    let Some(e) = env(Role::Edge, &[]).await else {
        return;
    };
    let sink = Sink::start(
        &format!("{}:2525", e.ip(11)),
        SinkOptions {
            offer_auth: true,
            ..Default::default()
        },
    )
    .await;
    e.app.create("/api/v1/credentials", json!({"name": "to-hub", "kind": "SmartHost", "userName": "edge01", "password": "Secret-123"})).await;
    e.connector(
        json!({"name": "To Hub", "addressSpaces": ["--"], "smartHosts": [e.ip(11)], "port": 2525,
        "smartHostAuthMechanism": "BasicAuthRequireTLS", "authenticationCredential": "to-hub"}),
    )
    .await;
    e.submit("alice@fabrikam.test", &["bob@contoso.test"], "no-creds")
        .await;
    eventually(15, "the queue is in Retry", || async {
        e.queue(&e.ip(11))
            .await
            .is_some_and(|q| q["status"] == "Retry")
    })
    .await;
    let q = e.queue(&e.ip(11)).await.unwrap();
    assert!(
        q["lastError"].as_str().unwrap().contains("451 5.7.3"),
        "{q}"
    );
    let commands = sink.commands();
    assert!(
        commands.iter().any(|c| c.starts_with("EHLO")),
        "{commands:?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.to_ascii_uppercase().starts_with("AUTH")),
        "credentials sent: {commands:?}"
    );
    assert!(
        !commands
            .iter()
            .any(|c| c.contains("Secret") || c.contains("U2VjcmV0")),
        "{commands:?}"
    );
    assert!(
        !commands.iter().any(|c| c.starts_with("MAIL")),
        "{commands:?}"
    );
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn require_tls_against_a_peer_without_starttls_defers() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let sink = Sink::start(&format!("{}:2525", e.ip(12)), SinkOptions::default()).await;
    e.connector(json!({"name": "Partner", "addressSpaces": ["fabrikam.test"], "smartHosts": [e.ip(12)], "port": 2525,
        "requireTLS": true}))
        .await;
    e.submit("bob@contoso.test", &["carol@fabrikam.test"], "needs-tls")
        .await;
    eventually(15, "deferred with the spec's error", || async {
        e.queue(&e.ip(12)).await.is_some_and(|q| {
            q["lastError"]
                .as_str()
                .unwrap_or("")
                .contains("451 5.7.3 STARTTLS is required to send mail")
        })
    })
    .await;
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn smart_host_failover_to_the_second_host() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    // 127.N.0.13 listens on nothing; .14 is up.
    let up = Sink::start(&format!("{}:2525", e.ip(14)), SinkOptions::default()).await;
    e.connector(json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": [e.ip(13), e.ip(14)], "port": 2525})).await;
    for i in 0..4 {
        e.submit(
            "bob@contoso.test",
            &[&format!("carol{i}@fabrikam.test")],
            &format!("failover {i}"),
        )
        .await;
    }
    eventually(15, "all delivered through the second host", || async {
        up.messages().len() == 4
    })
    .await;
    assert!(e.messages().await.is_empty());
}

/// A smart host whose name does not resolve is retried: its queue and
/// recipients say so with a 4xx code, and each attempt is counted.
#[tokio::test]
async fn an_unresolvable_smart_host_is_a_transient_failure_with_counted_attempts() {
    let Some(e) = env(Role::Edge, &[]).await else {
        return;
    };
    e.connector(json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": ["gone.corp.contoso.test"], "port": 2525}))
        .await;
    e.submit("a@contoso.test", &["x@fabrikam.test"], "no such smart host")
        .await;
    let mut q = None;
    for _ in 0..200 {
        q = e.queue("gone.corp.contoso.test").await;
        if q.as_ref()
            .is_some_and(|q| q["status"] == "Retry" && q["lastError"].is_string())
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let q = q.expect("the smart host's queue exists");
    let why = q["lastError"].as_str().unwrap();
    assert!(
        why.starts_with("451 4.4.4 ") && why.contains("gone.corp.contoso.test"),
        "{q}"
    );
    let id = e.messages().await[0]["id"].clone();
    let m = e.app.get(&format!("/api/v1/messages/{id}")).await.body;
    let attempts = m["attempts"].as_array().unwrap().len();
    assert!(attempts >= 1, "{m}");
    assert_eq!(
        m["recipients"][0]["attempts"], attempts as i64,
        "recipient attempts match the attempt list: {m}"
    );
    assert!(
        m["recipients"][0]["lastError"]
            .as_str()
            .unwrap()
            .starts_with("451 "),
        "{m}"
    );
}

/// A message past the streaming threshold (1 MiB) goes out from its BLOB a
/// chunk at a time: the next hop gets every byte as received (dot-stuffing
/// right wherever a chunk ends: lines of every length, many starting with a
/// dot), `SIZE=` its exact length, and `BODY=8BITMIME` for its 8-bit text
/// (found by reading the stored body before MAIL).
#[tokio::test(flavor = "multi_thread")]
async fn a_large_message_goes_out_byte_for_byte_a_chunk_at_a_time() {
    let Some((e, sink)) = edge_to_sink(SinkOptions::default()).await else {
        return;
    };
    let mut body = String::from("From: <alice@fabrikam.test>\r\nSubject: large\r\n\r\n");
    let mut n = 0usize;
    while body.len() < 3 * 1024 * 1024 {
        let len = n * 7 % 97;
        let lead = match n % 4 {
            0 => ".",
            1 => "..",
            2 => "é",
            _ => "",
        };
        body.push_str(lead);
        body.push_str(&"x".repeat(len));
        body.push_str("\r\n");
        n += 1;
    }
    body.push_str(".\r\nthe end\r\n");
    let (mut c, _) = crate::support::client::Client::open(&e.ip(30), &e.app.bind(5, 2525)).await;
    c.cmd("EHLO client.test").await;
    // The test client stuffs a dot only after CRLF; none opens the body.
    let r = c
        .send_mail("alice@fabrikam.test", &["bob@contoso.test"], &body)
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    eventually(30, "the large message reached the next hop", || async {
        !sink.messages().is_empty()
    })
    .await;
    let (_, rcpts, data) = sink.messages().remove(0);
    assert_eq!(rcpts, vec!["bob@contoso.test".to_string()]);
    assert!(
        data.ends_with(&body),
        "the body arrived changed ({} bytes of {})",
        data.len(),
        body.len()
    );
    let mail = sink
        .commands()
        .into_iter()
        .find(|c| c.starts_with("MAIL FROM:"))
        .unwrap();
    assert!(
        mail.contains(&format!(" SIZE={}", data.len())),
        "{mail} for {} bytes",
        data.len()
    );
    assert!(mail.contains(" BODY=8BITMIME"), "{mail}");
}

/// An Edge whose send connector for its accepted domain leads to a sink.
async fn edge_to_sink(opts: SinkOptions) -> Option<(crate::delivery::setup::Env, Sink)> {
    let e = env(Role::Edge, &[]).await?;
    let sink = Sink::start(&format!("{}:2525", e.ip(11)), opts).await;
    e.connector(
        json!({"name": "To Hub", "addressSpaces": ["--"], "smartHosts": [e.ip(11)], "port": 2525}),
    )
    .await;
    Some((e, sink))
}

/// Sends one message through the Edge and waits for the sink to hold `n`.
async fn relay_one(e: &crate::delivery::setup::Env, sink: &Sink, n: usize) {
    let (mut c, _) = crate::support::client::Client::open(&e.ip(30), &e.app.bind(5, 2525)).await;
    c.cmd("EHLO client.test").await;
    let r = c
        .send_mail(
            "alice@fabrikam.test",
            &["bob@contoso.test"],
            &format!("Subject: {n}\r\n\r\nmessage {n}\r\n"),
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    eventually(20, "the message reached the next hop", || async {
        sink.messages().len() >= n
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_is_kept_open_for_the_next_batch_then_closed_when_idle() {
    let Some((e, sink)) = edge_to_sink(SinkOptions::default()).await else {
        return;
    };
    relay_one(&e, &sink, 1).await;
    relay_one(&e, &sink, 2).await;
    let commands = sink.commands();
    assert_eq!(
        sink.rec.lock().unwrap().connections,
        1,
        "both messages over one connection: {commands:?}"
    );
    // Reused without a round trip: the server had said nothing since its
    // last reply and had not closed, so no RSET went before the second
    // message (its MAIL follows the first message's end of data).
    let mails = commands
        .iter()
        .filter(|c| c.starts_with("MAIL FROM:"))
        .count();
    assert_eq!(mails, 2, "{commands:?}");
    assert!(!commands.iter().any(|c| c == "RSET"), "{commands:?}");
    assert!(!commands.iter().any(|c| c == "QUIT"), "{commands:?}");
    // Idle for over two seconds: closed with QUIT.
    eventually(10, "the idle connection is closed with QUIT", || async {
        sink.commands().iter().any(|c| c == "QUIT")
    })
    .await;
    // The next message opens a new one.
    relay_one(&e, &sink, 3).await;
    assert_eq!(sink.rec.lock().unwrap().connections, 2);
}

/// Two messages through an Edge to a sink that acts so after each message.
async fn relay_two(opts: SinkOptions) -> Option<(crate::delivery::setup::Env, Sink)> {
    let (e, sink) = edge_to_sink(opts).await?;
    relay_one(&e, &sink, 1).await;
    relay_one(&e, &sink, 2).await;
    Some((e, sink))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_connection_the_next_hop_spoke_on_is_checked_and_replaced() {
    let Some((e, sink)) = relay_two(SinkOptions {
        notice_after_message: true,
        ..SinkOptions::default()
    })
    .await
    else {
        return;
    };
    // The server said 421 after the first message: the kept connection was
    // not quiet, so it was checked with RSET (answered by that 421), not
    // used, and the second message went out on a new one at once.
    let commands = sink.commands();
    assert_eq!(sink.rec.lock().unwrap().connections, 2, "{commands:?}");
    assert!(commands.iter().any(|c| c == "RSET"), "{commands:?}");
    let queued = e.app.get("/api/v1/messages").await;
    assert_eq!(queued.body["total"], 0, "{}", queued.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kept_connection_the_next_hop_closed_is_replaced_not_a_deferral() {
    let Some((e, sink)) = relay_two(SinkOptions {
        close_after_message: true,
        ..SinkOptions::default()
    })
    .await
    else {
        return;
    };
    // The second went out on a new connection at once: the kept one had
    // heard the server close, RSET on it failed, so it was not used, and
    // nothing was deferred.
    assert_eq!(sink.rec.lock().unwrap().connections, 2);
    let queued = e.app.get("/api/v1/messages").await;
    assert_eq!(queued.body["total"], 0, "{}", queued.text);
}
