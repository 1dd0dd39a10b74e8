//! Rights and authentication (spec §3 steps 4, 5 and 8, receiving side).

use crate::support::client::Client;
use crate::support::scenario::{HUB_PASSWORD, edge, queued};
use base64::Engine;
use ferry::smtp::replies;
use serde_json::json;

fn line(r: &ferry::smtp::replies::Reply) -> String {
    r.to_line(true).trim_end().to_string()
}

#[tokio::test]
async fn relay_is_denied_to_anonymous_internet_clients_and_the_session_stays_usable() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    assert_eq!(c.cmd("EHLO mta.fabrikam.example").await.code, 250);
    assert_eq!(
        c.cmd("MAIL FROM:<a@fabrikam.example>").await.line(),
        line(&replies::SENDER_OK)
    );
    assert_eq!(
        c.cmd("RCPT TO:<x@gmail.example>").await.line(),
        line(&replies::UNABLE_TO_RELAY)
    );
    assert_eq!(
        c.cmd("RCPT TO:<bob@contoso.test>").await.line(),
        line(&replies::RECIPIENT_OK)
    );
    assert_eq!(
        c.cmd("RCPT TO:<postmaster>").await.code,
        250,
        "<postmaster> is always local"
    );
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.raw(b"Subject: inbound\r\n\r\nhello bob\r\n.\r\n").await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.code, 250);
    assert!(
        r.text.starts_with("2.6.0 <") && r.text.ends_with("Queued mail for delivery"),
        "{}",
        r.text
    );
    let q = queued(&e.app).await;
    assert_eq!(q.len(), 1);
    assert_eq!(
        q[0].2,
        vec!["bob@contoso.test", "postmaster"],
        "the refused recipient is not queued"
    );
    assert!(
        q[0].3.contains("receive connector \"From Internet\""),
        "{}",
        q[0].3
    );
    assert!(
        q[0].3.contains("\r\nMessage-ID: <"),
        "a Message-ID is added when missing"
    );
    assert!(r.text.contains(&format!("[InternalId={}]", q[0].0)));
}

#[tokio::test]
async fn anonymous_may_claim_the_authoritative_domain_until_the_right_is_revoked() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.fabrikam.example").await;
    assert_eq!(
        c.cmd("MAIL FROM:<ceo@contoso.test>").await.line(),
        line(&replies::SENDER_OK)
    );
    let r = e
        .app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"extendedRights": [{"principal": "Anonymous",
                "right": "ms-Exch-SMTP-Accept-Authoritative-Domain-Sender", "access": "Deny"}]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The open session keeps the rights it started with; the next one has the new.
    c.cmd("RSET").await;
    assert_eq!(c.cmd("MAIL FROM:<ceo@contoso.test>").await.code, 250);
    let (mut c2, _) = Client::open(&e.internet, &e.e3()).await;
    c2.cmd("EHLO mta.fabrikam.example").await;
    assert_eq!(
        c2.cmd("MAIL FROM:<ceo@contoso.test>").await.line(),
        line(&replies::NO_SEND_AS)
    );
    assert_eq!(
        c2.cmd("MAIL FROM:<a@fabrikam.example>").await.code,
        250,
        "other senders are fine"
    );
}

#[tokio::test]
async fn hub_facing_connector_requires_tls_before_auth_and_auth_before_mail() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.hub1, &e.e4()).await;
    let ehlo = c.cmd("EHLO hub01.corp.contoso.test").await;
    assert!(ehlo.text.contains("STARTTLS"), "{}", ehlo.text);
    assert!(
        !ehlo.text.contains("AUTH"),
        "AUTH is not offered before TLS under BasicAuthRequireTLS: {}",
        ehlo.text
    );
    let plain =
        base64::engine::general_purpose::STANDARD.encode(format!("\0hub01\0{HUB_PASSWORD}"));
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {plain}")).await.line(),
        line(&replies::MUST_STARTTLS)
    );
    // Anonymous MAIL FROM on E4 (no AUTH).
    assert_eq!(
        c.cmd("MAIL FROM:<bob@contoso.test>").await.line(),
        line(&replies::NOT_AUTHENTICATED)
    );

    let mut c = c
        .starttls("edge01.corp.contoso.test", &e.ca.cert_pem)
        .await
        .expect("TLS with the internal certificate");
    let ehlo = c.cmd("EHLO hub01.corp.contoso.test").await;
    assert!(ehlo.text.contains("AUTH LOGIN PLAIN"), "{}", ehlo.text);
    assert!(!ehlo.text.contains("STARTTLS"));
    // Wrong password.
    let wrong = base64::engine::general_purpose::STANDARD.encode("\0hub01\0not-the-password");
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {wrong}")).await.line(),
        line(&replies::AUTH_FAILED)
    );
    // AUTH LOGIN with the right one.
    assert_eq!(c.cmd("AUTH LOGIN").await.code, 334);
    assert_eq!(
        c.cmd(&base64::engine::general_purpose::STANDARD.encode("hub01"))
            .await
            .code,
        334
    );
    let ok = c
        .cmd(&base64::engine::general_purpose::STANDARD.encode(HUB_PASSWORD))
        .await;
    assert_eq!(ok.line(), line(&replies::AUTH_OK));
    // A server login holds Any-Sender and Any-Recipient.
    let r = c
        .send_mail(
            "bob@contoso.test",
            &["carol@fabrikam.example"],
            "Subject: out\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    let q = queued(&e.app).await;
    assert!(q[0].3.contains("with ESMTPSA"), "{}", q[0].3);
    assert!(q[0].3.contains("version=TLSv1_3"), "{}", q[0].3);
}

#[tokio::test]
async fn logon_failures_are_limited() {
    let e = edge().await;
    let (c, _) = Client::open(&e.hub1, &e.e4()).await;
    let mut c = c
        .starttls("edge01.corp.contoso.test", &e.ca.cert_pem)
        .await
        .unwrap();
    c.cmd("EHLO hub01").await;
    let wrong = base64::engine::general_purpose::STANDARD.encode("\0hub01\0nope");
    assert_eq!(c.cmd(&format!("AUTH PLAIN {wrong}")).await.code, 535);
    assert_eq!(c.cmd(&format!("AUTH PLAIN {wrong}")).await.code, 535);
    // MaxLogonFailures = 3: the third failure closes the session.
    assert_eq!(
        c.cmd(&format!("AUTH PLAIN {wrong}")).await.line(),
        line(&replies::TOO_MANY_ERRORS)
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn external_authoritative_trusts_the_whole_connection() {
    let e = edge().await;
    let addr = format!("{}:2610", e.internal);
    let r = e
        .app
        .post(
            "/api/v1/receive-connectors",
            json!({"name": "App relay", "usage": "Custom", "bindings": [addr.clone()],
            "remoteIpRanges": [e.ip(40)], "authMechanism": ["Tls", "ExternalAuthoritative"],
            "permissionGroups": ["ExchangeServers"], "tarpitInterval": "00:00:00"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(
        r.body["effectiveRights"]["ExternallySecuredServers"]
            .to_string()
            .contains("Any-Recipient")
    );
    // No handshake: the listed host may relay at once.
    let (mut c, _) = Client::open(&e.ip(40), &addr).await;
    c.cmd("EHLO app").await;
    let r = c
        .send_mail(
            "app@contoso.test",
            &["someone@fabrikam.example"],
            "Subject: app\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    // Anyone else does not even reach it.
    let (_, banner) = Client::open(&e.ip(41), &addr).await;
    assert_eq!(banner.code, 421);
}

#[tokio::test]
async fn failures_are_tarpitted() {
    let e = edge().await;
    e.app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"tarpitInterval": "00:00:01"}),
            None,
        )
        .await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta").await;
    c.cmd("MAIL FROM:<a@fabrikam.example>").await;
    let t = std::time::Instant::now();
    assert_eq!(c.cmd("RCPT TO:<x@gmail.example>").await.code, 550);
    assert!(
        t.elapsed() >= std::time::Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
    let t = std::time::Instant::now();
    assert_eq!(c.cmd("RCPT TO:<bob@contoso.test>").await.code, 250);
    assert!(
        t.elapsed() < std::time::Duration::from_millis(900),
        "successes are not delayed"
    );
}
