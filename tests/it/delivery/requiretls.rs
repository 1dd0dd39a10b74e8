//! REQUIRETLS (RFC 8689) end to end between two Ferrys: the Edge offers it
//! only under TLS, keeps the flag with the message, and sends such a
//! message to the Hub only over TLS validated for the Hub's name, with
//! REQUIRETLS on its MAIL FROM (read back from the Edge's send protocol
//! log). Over opportunistic TLS, or to a peer that offers no STARTTLS at
//! all, it is returned with `5.7.10` (headers only) and never sent, while
//! ordinary mail on the same path is delivered.

use crate::delivery::setup::{eventually, fabrikam_inbox, ndr_about};
use crate::support::app::TestApp;
use crate::support::client::Client;
use crate::support::dns::Dnsmasq;
use crate::support::scenario::{Edge, edge};
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::{Value, json};

/// A Hub on its own loopback network: contoso.test in Maildir, and a
/// connector for the Edge under the name hub01.corp.contoso.test, with a
/// certificate from the Edge's CA.
async fn hub(e: &Edge) -> TestApp {
    let hub = TestApp::spawn(Role::Hub).await;
    let (crt, key) = e.ca.issue(&["hub01.corp.contoso.test"]);
    hub.create(
        "/api/v1/certificates",
        json!({"source": "import", "certificatePem": crt, "privateKeyPem": key}),
    )
    .await;
    hub.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test", "mailboxDelivery": {"type": "Maildir"}}),
    )
    .await;
    hub.create(
        "/api/v1/receive-connectors",
        json!({"name": "From Edge", "usage": "Custom", "bindings": [hub.bind(11, 2525)],
               "remoteIpRanges": ["127.0.0.0/8"], "fqdn": "hub01.corp.contoso.test",
               "permissionGroups": ["AnonymousUsers"], "tarpitInterval": "00:00:00"}),
    )
    .await;
    hub
}

/// Sends one message from the Internet host to the Edge over STARTTLS,
/// with or without REQUIRETLS.
async fn send(e: &Edge, to: &str, subject: &str, require_tls: bool) {
    let (c, _) = Client::open(&e.internet, &e.e3()).await;
    let mut c = c
        .starttls("mail.contoso.test", &e.ca.cert_pem)
        .await
        .unwrap();
    let ehlo = c.cmd("EHLO mta.fabrikam.test").await;
    assert!(ehlo.text.contains("REQUIRETLS"), "{}", ehlo.text);
    let param = if require_tls { " REQUIRETLS" } else { "" };
    let r = c
        .cmd(&format!("MAIL FROM:<alice@fabrikam.test>{param}"))
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    assert_eq!(c.cmd(&format!("RCPT TO:<{to}>")).await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.raw(
        format!("From: <alice@fabrikam.test>\r\nSubject: {subject}\r\n\r\nThe secret of {subject}.\r\n.\r\n")
            .as_bytes(),
    )
    .await;
    let r = c.reply().await.unwrap();
    assert_eq!(r.code, 250, "{}", r.line());
}

/// DNS for the Edge (dnsmasq serving `records`, short retries), trust in
/// the test CA, and a recording peer for notices to fabrikam.test.
async fn prepare(e: &Edge, records: &[String]) -> (Dnsmasq, Sink) {
    let dns = Dnsmasq::start(&e.ip(53), records).await;
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"internalDNSServers": [dns.server], "externalDNSServers": [dns.server],
                   "messageRetryInterval": "00:00:01", "transientFailureRetryInterval": "00:00:02"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    e.app
        .create(
            "/api/v1/certificates",
            json!({"source": "trustAnchor", "certificatePem": e.ca.cert_pem}),
        )
        .await;
    (dns, fabrikam_inbox(&e.app, &e.ip(14)).await)
}

async fn patch_connector(e: &Edge, name: &str, body: Value) {
    let r = e
        .app
        .patch(&format!("/api/v1/send-connectors/{name}"), body, None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn requiretls_mail_leaves_only_over_validated_tls_to_a_next_hop_that_offers_it() {
    if !crate::support::peers::require(&["dnsmasq"]) {
        return;
    }
    let e = edge().await;
    let hub = hub(&e).await;
    let (_dns, inbox) = prepare(
        &e,
        &[
            format!("--host-record=hub01.corp.contoso.test,127.{}.0.11", hub.net),
            // The same Hub under a name its certificate does not carry.
            format!("--host-record=hub02.corp.contoso.test,127.{}.0.11", hub.net),
        ],
    )
    .await;
    // First the Hub behind opportunistic TLS: encrypted, not validated.
    e.app
        .create(
            "/api/v1/send-connectors",
            json!({"name": "To Hub", "addressSpaces": ["--"], "smartHosts": ["hub01.corp.contoso.test"], "port": 2525,
                   "protocolLoggingLevel": "Verbose"}),
        )
        .await;

    // Before STARTTLS it is neither offered nor taken.
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    let ehlo = c.cmd("EHLO mta.fabrikam.test").await;
    assert!(!ehlo.text.contains("REQUIRETLS"), "{}", ehlo.text);
    let r = c.cmd("MAIL FROM:<alice@fabrikam.test> REQUIRETLS").await;
    assert_eq!(r.code, 555, "{}", r.line());
    drop(c);

    send(&e, "bob@contoso.test", "ordinary", false).await;
    send(&e, "bob@contoso.test", "opportunistic", true).await;
    eventually(20, "the ordinary message reaches Bob", || async {
        hub.maildir("bob@contoso.test")
            .iter()
            .any(|m| m.contains("Subject: ordinary"))
    })
    .await;
    let ndr = ndr_about(&inbox, "opportunistic").await;
    assert!(ndr.contains("Status: 5.7.10"), "{ndr}");
    assert!(ndr.contains("REQUIRETLS"), "{ndr}");
    // Headers only: the body never travels in a notice without REQUIRETLS.
    assert!(
        ndr.contains("text/rfc822-headers") && !ndr.contains("The secret of opportunistic"),
        "{ndr}"
    );
    assert!(
        !hub.maildir("bob@contoso.test")
            .iter()
            .any(|m| m.contains("Subject: opportunistic")),
        "sent over unvalidated TLS"
    );

    // The Hub validated for its name: delivered, with REQUIRETLS on MAIL.
    patch_connector(
        &e,
        "To%20Hub",
        json!({"requireTLS": true, "tlsAuthLevel": "DomainValidation", "tlsDomain": "hub01.corp.contoso.test"}),
    )
    .await;
    send(&e, "bob@contoso.test", "validated", true).await;
    eventually(20, "the REQUIRETLS message reaches Bob", || async {
        hub.maildir("bob@contoso.test")
            .iter()
            .any(|m| m.contains("Subject: validated"))
    })
    .await;
    let sends = e.app.get("/api/v1/tracking?event=SEND").await;
    let mut mails = vec![];
    for ev in sends.body["items"].as_array().unwrap() {
        if ev["connector"] != "To Hub" {
            continue;
        }
        let session = ev["session"].as_str().unwrap();
        let log = e
            .app
            .get(&format!("/api/v1/protocol-logs?session={session}"))
            .await;
        for l in log.body["lines"].as_array().unwrap() {
            let data = l["data"].as_str().unwrap_or("");
            if l["event"] == ">" && data.starts_with("MAIL FROM:") {
                mails.push(data.to_string());
            }
        }
    }
    assert!(
        mails.iter().any(|m| m.ends_with(" REQUIRETLS")),
        "{mails:#?}"
    );
    assert!(
        mails.iter().any(|m| !m.contains("REQUIRETLS")),
        "the ordinary message went without it: {mails:#?}"
    );

    // The wrong certificate: the Hub reached as hub02, which its
    // certificate does not name. Nothing leaves; the message waits.
    patch_connector(
        &e,
        "To%20Hub",
        json!({"smartHosts": ["hub02.corp.contoso.test"], "tlsDomain": "hub02.corp.contoso.test"}),
    )
    .await;
    send(&e, "bob@contoso.test", "wrong name", true).await;
    eventually(20, "the queue waits on the certificate", || async {
        let q = e.app.get("/api/v1/queues").await;
        q.body["items"].as_array().unwrap().iter().any(|q| {
            q["lastError"]
                .as_str()
                .is_some_and(|l| l.contains("4.7.5") && l.contains("TLS"))
        })
    })
    .await;
    assert!(
        !hub.maildir("bob@contoso.test")
            .iter()
            .any(|m| m.contains("Subject: wrong name")),
        "sent to a certificate that does not name the host"
    );

    // A peer that offers no STARTTLS at all, reached opportunistically:
    // REQUIRETLS mail is returned and never reaches it.
    let plain = Sink::start(&format!("{}:2525", e.ip(15)), SinkOptions::default()).await;
    e.app
        .create(
            "/api/v1/send-connectors",
            json!({"name": "To Plain", "addressSpaces": ["plain.test"], "smartHosts": [e.ip(15)], "port": 2525}),
        )
        .await;
    // The Edge relays plain.test only for the Hubs: send it from inside.
    let mut c = e.hub_session().await;
    assert_eq!(
        c.cmd("MAIL FROM:<alice@fabrikam.test> REQUIRETLS")
            .await
            .code,
        250
    );
    assert_eq!(c.cmd("RCPT TO:<carol@plain.test>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.raw(b"From: <alice@fabrikam.test>\r\nSubject: to plain\r\n\r\nThe secret of plain.\r\n.\r\n")
        .await;
    assert_eq!(c.reply().await.unwrap().code, 250);
    ndr_about(&inbox, "to plain").await;
    assert!(
        plain.messages().is_empty() && !plain.commands().iter().any(|c| c.starts_with("MAIL")),
        "{:?}",
        plain.commands()
    );
}

#[tokio::test]
async fn a_validated_next_hop_without_requiretls_gets_none_of_it() {
    if !crate::support::peers::require(&["dnsmasq", "postfix"]) {
        return;
    }
    let e = edge().await;
    let pf_ip = e.ip(40);
    let (_dns, inbox) = prepare(&e, &[format!("--host-record=relay.partner.test,{pf_ip}")]).await;
    // Postfix (which does not implement REQUIRETLS) with STARTTLS, a
    // certificate from the CA for its name, and AUTH.
    let pf = crate::support::peers::postfix_smarthost(
        e.app.dir.path(),
        &pf_ip,
        "relay.partner.test",
        "partner.test",
        ("edge01", "Edge-Relay-Pass-7"),
        &e.ca,
    );
    e.app
        .create("/api/v1/credentials", json!({"name": "to-partner", "kind": "SmartHost", "userName": "edge01", "password": "Edge-Relay-Pass-7"}))
        .await;
    e.app
        .create(
            "/api/v1/send-connectors",
            json!({"name": "To Partner", "addressSpaces": ["partner.test"], "smartHosts": ["relay.partner.test"], "port": 2525,
                   "smartHostAuthMechanism": "BasicAuthRequireTLS", "authenticationCredential": "to-partner"}),
        )
        .await;
    // From a Hub, which may relay: one REQUIRETLS message, one ordinary.
    let mut c = e.hub_session().await;
    for (param, subject) in [(" REQUIRETLS", "needs it"), ("", "does not")] {
        assert_eq!(
            c.cmd(&format!("MAIL FROM:<alice@fabrikam.test>{param}"))
                .await
                .code,
            250
        );
        assert_eq!(c.cmd("RCPT TO:<dave@partner.test>").await.code, 250);
        assert_eq!(c.cmd("DATA").await.code, 354);
        c.raw(
            format!("From: <alice@fabrikam.test>\r\nSubject: {subject}\r\n\r\nBody.\r\n.\r\n")
                .as_bytes(),
        )
        .await;
        assert_eq!(c.reply().await.unwrap().code, 250);
    }
    let mailbox = || pf.mailbox("partner.test");
    eventually(30, "the ordinary message reaches Postfix", || async {
        mailbox().iter().any(|m| m.contains("Subject: does not"))
    })
    .await;
    let ndr = ndr_about(&inbox, "needs it").await;
    assert!(ndr.contains("Status: 5.7.30"), "{ndr}");
    assert!(!mailbox().iter().any(|m| m.contains("Subject: needs it")));
}
