//! Spec §3 step 6 and the other limits of the receive connector.

use crate::support::client::Client;
use crate::support::scenario::{edge, queued};
use ferry::smtp::replies;
use serde_json::json;

fn line(r: &ferry::smtp::replies::Reply) -> String {
    r.to_line(true).trim_end().to_string()
}

#[tokio::test]
async fn recipients_beyond_the_limit_get_452() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta").await;
    c.cmd("MAIL FROM:<a@fabrikam.example>").await;
    // Pipelined, as a real MTA would send them.
    let mut batch = String::new();
    for i in 0..201 {
        batch.push_str(&format!("RCPT TO:<user{i}@contoso.test>\r\n"));
    }
    c.raw(batch.as_bytes()).await;
    for i in 0..200 {
        assert_eq!(c.reply().await.unwrap().code, 250, "recipient {i}");
    }
    assert_eq!(
        c.reply().await.unwrap().line(),
        line(&replies::TOO_MANY_RECIPIENTS)
    );
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.raw(b"Subject: many\r\n\r\nx\r\n.\r\n").await;
    assert_eq!(c.reply().await.unwrap().code, 250);
    assert_eq!(queued(&e.app).await[0].2.len(), 200);
}

#[tokio::test]
async fn size_limits_by_parameter_and_by_content() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    assert!(c.cmd("EHLO mta").await.text.contains("SIZE 10485760"));
    assert_eq!(
        c.cmd("MAIL FROM:<a@fabrikam.example> SIZE=20000000")
            .await
            .line(),
        line(&replies::SIZE_EXCEEDED)
    );
    c.cmd("MAIL FROM:<a@fabrikam.example>").await;
    c.cmd("RCPT TO:<bob@contoso.test>").await;
    assert_eq!(c.cmd("DATA").await.code, 354);
    let long_line = "x".repeat(998);
    let body = (0..11_000)
        .map(|_| long_line.as_str())
        .collect::<Vec<_>>()
        .join("\r\n");
    let big = format!("Subject: big\r\n\r\n{body}\r\n.\r\n");
    c.raw(big.as_bytes()).await;
    assert_eq!(
        c.reply().await.unwrap().line(),
        line(&replies::SIZE_EXCEEDED)
    );
    // The session is still in step and usable.
    let r = c
        .send_mail(
            "a@fabrikam.example",
            &["bob@contoso.test"],
            "Subject: small\r\n\r\nok\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    assert_eq!(queued(&e.app).await.len(), 1);
}

#[tokio::test]
async fn header_size_and_hop_count() {
    let e = edge().await;
    e.app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"maxHeaderSize": 1024, "maxHopCount": 3}),
            None,
        )
        .await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta").await;
    let fat = format!("Subject: {}\r\n\r\nbody\r\n", "h".repeat(2000));
    assert_eq!(
        c.send_mail("a@fabrikam.example", &["bob@contoso.test"], &fat)
            .await
            .line(),
        line(&replies::HEADER_TOO_BIG)
    );
    let looped =
        "Received: from a\r\nReceived: from b\r\nReceived: from c\r\nSubject: loop\r\n\r\nbody\r\n";
    assert_eq!(
        c.send_mail("a@fabrikam.example", &["bob@contoso.test"], looped)
            .await
            .line(),
        line(&replies::HOP_COUNT)
    );
    let fine = "Received: from a\r\nReceived: from b\r\nSubject: ok\r\n\r\nbody\r\n";
    assert_eq!(
        c.send_mail("a@fabrikam.example", &["bob@contoso.test"], fine)
            .await
            .code,
        250
    );
}

#[tokio::test]
async fn idle_clients_are_timed_out() {
    let e = edge().await;
    e.app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"connectionInactivityTimeout": "00:00:01"}),
            None,
        )
        .await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta").await;
    let started = std::time::Instant::now();
    let r = c
        .reply()
        .await
        .expect("the server speaks first when the client idles");
    assert_eq!(r.line(), line(&replies::INACTIVITY_TIMEOUT));
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert!(c.closed().await);
}

#[tokio::test]
async fn twenty_first_connection_from_one_source_is_refused() {
    let e = edge().await;
    let mut open = vec![];
    for _ in 0..20 {
        let (c, banner) = Client::open(&e.internet, &e.e3()).await;
        assert_eq!(banner.code, 220);
        open.push(c);
    }
    let (mut c, banner) = Client::open(&e.internet, &e.e3()).await;
    assert_eq!(banner.line(), line(&replies::TOO_MANY_FROM_SOURCE));
    assert!(c.closed().await);
    // Another source is not affected; closing one frees a place.
    assert_eq!(Client::open(&e.ip(21), &e.e3()).await.1.code, 220);
    drop(open.pop());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(Client::open(&e.internet, &e.e3()).await.1.code, 220);
}

#[tokio::test]
async fn protocol_errors_and_message_rate_are_limited() {
    let e = edge().await;
    e.app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"maxProtocolErrors": 2, "messageRateLimit": 2}),
            None,
        )
        .await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    assert_eq!(c.cmd("FOO").await.line(), line(&replies::UNRECOGNIZED));
    assert_eq!(c.cmd("BAR").await.code, 500);
    assert_eq!(c.cmd("BAZ").await.line(), line(&replies::TOO_MANY_ERRORS));
    assert!(c.closed().await);

    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta").await;
    for _ in 0..2 {
        assert_eq!(
            c.send_mail(
                "a@fabrikam.example",
                &["bob@contoso.test"],
                "Subject: r\r\n\r\nx\r\n"
            )
            .await
            .code,
            250
        );
    }
    assert_eq!(
        c.cmd("MAIL FROM:<a@fabrikam.example>").await.line(),
        line(&replies::RATE_LIMITED)
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn overlong_command_lines_are_refused() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    let long = format!("EHLO {}", "a".repeat(5000));
    assert_eq!(c.cmd(&long).await.line(), line(&replies::LINE_TOO_LONG));
    assert_eq!(
        c.cmd("EHLO mta").await.code,
        250,
        "the session resynchronises on the next line"
    );
}

#[tokio::test]
async fn connector_wide_connection_limit_and_connection_timeout() {
    let e = edge().await;
    e.app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"maxInboundConnection": 2, "maxInboundConnectionPercentagePerSource": 100,
                   "connectionTimeout": "00:00:02", "connectionInactivityTimeout": "00:00:01.500"}),
            None,
        )
        .await;
    let (_a, _) = Client::open(&e.ip(31), &e.e3()).await;
    let (_b, _) = Client::open(&e.ip(32), &e.e3()).await;
    let (mut c, banner) = Client::open(&e.ip(33), &e.e3()).await;
    assert_eq!(banner.line(), line(&replies::TOO_MANY_CONNECTIONS));
    assert!(c.closed().await);
    drop((_a, _b));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // A client that keeps talking is still cut off at connectionTimeout.
    let (mut c, _) = Client::open(&e.ip(34), &e.e3()).await;
    let t = std::time::Instant::now();
    let mut last = None;
    while t.elapsed() < std::time::Duration::from_secs(5) {
        match c.try_cmd("NOOP").await {
            Some(r) if r.code == 250 => {
                tokio::time::sleep(std::time::Duration::from_millis(300)).await
            }
            other => {
                last = other;
                break;
            }
        }
    }
    assert_eq!(
        last.expect("the server ended the session").line(),
        line(&replies::CONNECTION_TIMEOUT)
    );
}

#[tokio::test]
async fn bdat_chunks_are_accepted() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    let ehlo = c.cmd("EHLO mta").await;
    assert!(ehlo.text.contains("CHUNKING") && ehlo.text.contains("BINARYMIME"));
    c.cmd("MAIL FROM:<a@fabrikam.example> BODY=BINARYMIME")
        .await;
    c.cmd("RCPT TO:<bob@contoso.test>").await;
    let part1 = b"Subject: chunks\r\n\r\nfirst ";
    c.raw(format!("BDAT {}\r\n", part1.len()).as_bytes()).await;
    c.raw(part1).await;
    assert_eq!(c.reply().await.unwrap().code, 250);
    let part2 = b"second\r\n.\r\nnot an end\r\n";
    c.raw(format!("BDAT {} LAST\r\n", part2.len()).as_bytes())
        .await;
    c.raw(part2).await;
    let r = c.reply().await.unwrap();
    assert!(r.text.contains("Queued mail for delivery"), "{}", r.text);
    let q = queued(&e.app).await;
    assert!(
        q[0].3.ends_with("first second\r\n.\r\nnot an end\r\n"),
        "BDAT content is taken verbatim: {:?}",
        q[0].3
    );
    // DATA is refused for a BINARYMIME transaction.
    c.cmd("MAIL FROM:<a@fabrikam.example> BODY=BINARYMIME")
        .await;
    c.cmd("RCPT TO:<bob@contoso.test>").await;
    assert_eq!(
        c.cmd("DATA").await.line(),
        line(&replies::BINARYMIME_NEEDS_BDAT)
    );
}
