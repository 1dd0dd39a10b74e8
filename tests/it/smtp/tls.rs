//! STARTTLS presents the certificate for the connector's FQDN, verified by
//! the client against the CA as a trust anchor; one STARTTLS per session.

use crate::support::client::Client;
use crate::support::scenario::edge;
use ferry::smtp::replies;

#[tokio::test]
async fn each_connector_presents_the_certificate_for_its_fqdn() {
    let e = edge().await;
    // E3 answers as mail.contoso.test; the client verifies that name.
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    assert!(c.cmd("EHLO mta").await.text.contains("STARTTLS"));
    let mut c = c
        .starttls("mail.contoso.test", &e.ca.cert_pem)
        .await
        .expect("valid certificate for mail.contoso.test");
    assert_eq!(c.cmd("EHLO mta").await.code, 250);
    assert_eq!(
        c.cmd("STARTTLS").await.line(),
        replies::TLS_ALREADY.to_line(true).trim_end()
    );
    // A client asking (SNI) for another stored name gets that certificate.
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta").await;
    c.starttls("edge01.corp.contoso.test", &e.ca.cert_pem)
        .await
        .expect("SNI is honoured");
    // A name no certificate covers gets the connector's, which fails verification.
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta").await;
    let err = c
        .starttls("other.contoso.test", &e.ca.cert_pem)
        .await
        .err()
        .expect("name mismatch");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

#[tokio::test]
async fn session_state_is_reset_after_starttls() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta").await;
    let mut c = c
        .starttls("mail.contoso.test", &e.ca.cert_pem)
        .await
        .unwrap();
    // RFC 3207: the client must say EHLO again.
    assert_eq!(
        c.cmd("MAIL FROM:<a@fabrikam.example>").await.line(),
        replies::HELLO_FIRST.to_line(true).trim_end()
    );
}

#[tokio::test]
async fn no_certificate_for_the_fqdn_means_no_starttls() {
    let e = edge().await;
    let r = e
        .app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            serde_json::json!({"fqdn": "nocert.contoso.test"}),
            None,
        )
        .await;
    assert!(
        r.body["warnings"]
            .to_string()
            .contains("STARTTLS will not be offered")
    );
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    let ehlo = c.cmd("EHLO mta").await;
    assert!(!ehlo.text.contains("STARTTLS"), "{}", ehlo.text);
    assert_eq!(c.cmd("STARTTLS").await.code, 454);
}
