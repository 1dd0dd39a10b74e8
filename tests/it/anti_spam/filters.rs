//! The Sender Filter and Recipient Filter agents, recipient validation
//! against the recipient list Ferry holds (100,000 entries in one request),
//! and the same list as a Hub's mailbox directory.

use serde_json::{Value, json};
use std::time::Instant;

use crate::delivery::setup::{env, eventually};
use crate::support::client::Client;
use crate::support::scenario::{Edge, edge};
use ferry::model::Role;

async fn mail_from(e: &Edge, from: &str, sender: &str) -> (Client, crate::support::client::Reply) {
    let (mut c, _) = Client::open(from, &e.e3()).await;
    assert_eq!(c.cmd("EHLO mta.fabrikam.test").await.code, 250);
    let r = c.cmd(&format!("MAIL FROM:<{sender}>")).await;
    (c, r)
}

#[tokio::test]
async fn the_sender_filter_rejects_or_stamps_and_spares_allowed_clients() {
    let e = edge().await;
    let r = e
        .app
        .patch(
            "/api/v1/sender-filter-config",
            json!({"blockedSenders": ["spammer@fabrikam.test"], "blockedDomainsAndSubdomains": ["junk.test"],
                   "blankSenderBlockingEnabled": true}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for sender in ["spammer@fabrikam.test", "x@deep.junk.test", ""] {
        let (_, r) = mail_from(&e, &e.internet, sender).await;
        assert_eq!(r.line(), "554 5.1.0 Sender Denied", "<{sender}>");
    }
    let (_, r) = mail_from(&e, &e.internet, "friend@fabrikam.test").await;
    assert_eq!(r.code, 250, "{}", r.line());
    // A client on the IP Allow list skips the other agents.
    e.app
        .post(
            "/api/v1/ip-allow-list-entries",
            json!({"ipRange": e.ip(80)}),
        )
        .await;
    let (_, r) = mail_from(&e, &e.ip(80), "spammer@fabrikam.test").await;
    assert_eq!(r.code, 250, "{}", r.line());
    // StampStatus: accepted, and the message says so.
    let r = e
        .app
        .patch(
            "/api/v1/sender-filter-config",
            json!({"action": "StampStatus"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (mut c, r) = mail_from(&e, &e.internet, "spammer@fabrikam.test").await;
    assert_eq!(r.code, 250, "{}", r.line());
    assert_eq!(c.cmd("RCPT TO:<bob@contoso.test>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.raw(b"Subject: stamped\r\n\r\nhi\r\n.\r\n").await;
    assert_eq!(c.reply().await.unwrap().code, 250);
    let q = crate::support::scenario::queued(&e.app).await;
    let body = &q.last().unwrap().3;
    assert!(
        body.contains("X-Ferry-Sender-Filter: Blocked (blocked sender spammer@fabrikam.test)"),
        "{body}"
    );
}

async fn rcpt(e: &Edge, to: &str) -> crate::support::client::Reply {
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.fabrikam.test").await;
    c.cmd("MAIL FROM:<a@fabrikam.test>").await;
    c.cmd(&format!("RCPT TO:<{to}>")).await
}

fn recipients(n: usize) -> Value {
    let items: Vec<Value> = (0..n)
        .map(|i| json!({"primaryAddress": format!("user{i}@contoso.test"), "aliases": [format!("alias{i}@contoso.test")]}))
        .collect();
    json!({ "items": items })
}

#[tokio::test]
async fn recipient_validation_from_a_list_of_100000_refuses_unknown_recipients_at_rcpt() {
    let e = edge().await;
    // 100,000 recipients (200,000 addresses) in one request.
    let started = Instant::now();
    let r = e
        .app
        .request("PUT", "/api/v1/recipients", Some(recipients(100_000)), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["recipients"], 100_000);
    eprintln!("loaded 100,000 recipients in {:?}", started.elapsed());
    let r = e
        .app
        .patch(
            "/api/v1/accepted-domains/contoso.test",
            json!({"recipientDirectory": {"type": "List"}}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // Validation is off by default: anyone in the domain is accepted.
    assert_eq!(rcpt(&e, "nobody@contoso.test").await.code, 250);
    let r = e
        .app
        .patch(
            "/api/v1/recipient-filter-config",
            json!({"recipientValidationEnabled": true, "blockedListEnabled": true,
                   "blockedRecipients": ["user7@contoso.test"]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        rcpt(&e, "nobody@contoso.test").await.line(),
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found"
    );
    assert_eq!(rcpt(&e, "user99999@contoso.test").await.code, 250);
    assert_eq!(
        rcpt(&e, "ALIAS5@Contoso.test").await.code,
        250,
        "aliases count, in any case"
    );
    assert_eq!(
        rcpt(&e, "user7@contoso.test").await.line(),
        "550 5.7.1 Recipient not authorized"
    );
    // Other domains are not validated (relay rules decide).
    assert_eq!(rcpt(&e, "x@fabrikam.test").await.code, 550);
    // Lookups stay O(1): a thousand RCPTs against 200,000 addresses.
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.fabrikam.test").await;
    let started = Instant::now();
    for i in 0..10 {
        c.cmd("MAIL FROM:<a@fabrikam.test>").await;
        for j in 0..100 {
            let r = c
                .cmd(&format!("RCPT TO:<user{}@contoso.test>", 10 + i * 9000 + j))
                .await;
            assert_eq!(r.code, 250, "{}", r.line());
        }
        c.cmd("RSET").await;
    }
    eprintln!("1,000 validated RCPTs in {:?}", started.elapsed());
    // Authenticated and internal traffic is never validated.
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"internalSMTPServers": [e.ip(81)]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (mut c, _) = Client::open(&e.ip(81), &e.e3()).await;
    c.cmd("EHLO upstream.contoso.test").await;
    c.cmd("MAIL FROM:<a@fabrikam.test>").await;
    assert_eq!(c.cmd("RCPT TO:<nobody@contoso.test>").await.code, 250);
}

#[tokio::test]
async fn harvesting_unknown_recipients_ends_the_session() {
    let e = edge().await;
    e.app
        .post(
            "/api/v1/recipients",
            json!({"primaryAddress": "bob@contoso.test"}),
        )
        .await;
    e.app
        .patch(
            "/api/v1/accepted-domains/contoso.test",
            json!({"recipientDirectory": {"type": "List"}}),
            None,
        )
        .await;
    e.app
        .patch(
            "/api/v1/recipient-filter-config",
            json!({"recipientValidationEnabled": true}),
            None,
        )
        .await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO harvester.test").await;
    c.cmd("MAIL FROM:<a@fabrikam.test>").await;
    for i in 0..10 {
        assert_eq!(
            c.cmd(&format!("RCPT TO:<guess{i}@contoso.test>"))
                .await
                .code,
            550
        );
    }
    assert_eq!(
        c.cmd("RCPT TO:<guess10@contoso.test>").await.line(),
        "421 4.7.0 Too many unknown recipients, closing transmission channel"
    );
    assert!(c.closed().await);
}

#[tokio::test]
async fn the_recipient_api_adds_exports_conflicts_and_removes() {
    let e = edge().await;
    let r = e
        .app
        .post(
            "/api/v1/recipients",
            json!({"primaryAddress": "Bob@contoso.test", "aliases": ["robert@contoso.test"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["primaryAddress"], "bob@contoso.test");
    let r = e
        .app
        .post(
            "/api/v1/recipients",
            json!({"primaryAddress": "carol@contoso.test", "aliases": ["Robert@contoso.test"]}),
        )
        .await;
    r.assert_problem(422, "aliases[0]");
    let r = e
        .app
        .post(
            "/api/v1/recipients",
            json!({"primaryAddress": "not an address"}),
        )
        .await;
    r.assert_problem(422, "primaryAddress");
    let r = e.app.post("/api/v1/recipients/bulk", recipients(3)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["recipients"], 4);
    let r = e.app.get("/api/v1/recipients/robert@contoso.test").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["primaryAddress"], "bob@contoso.test");
    let all = e.app.get("/api/v1/recipients").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 4);
    let r = e
        .app
        .delete("/api/v1/recipients/robert@contoso.test", None)
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        e.app
            .get("/api/v1/recipients/bob@contoso.test")
            .await
            .status,
        404
    );
    // The directory survives a restart.
    let mut app = e.app;
    app.restart().await;
    let all = app.get("/api/v1/recipients").await;
    assert_eq!(
        all.body["items"].as_array().unwrap().len(),
        3,
        "{}",
        all.text
    );
}

#[tokio::test]
async fn a_hub_delivers_only_to_mailboxes_in_its_directory_and_bounces_the_rest() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let r = e
        .app
        .request(
            "PUT",
            "/api/v1/recipients",
            Some(json!({"items": [
                {"primaryAddress": "alice@contoso.test", "aliases": ["ally@contoso.test"]},
                {"primaryAddress": "carol@contoso.test"}]})),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // A message queued before the domain names its directory, held in a
    // suspended queue meanwhile.
    e.submit("carol@contoso.test", &["alice@contoso.test"], "first")
        .await;
    eventually(10, "the first delivery", || async {
        e.maildir("alice@contoso.test").len() == 1
    })
    .await;
    let q = e.queue("contoso.test").await.expect("the mailbox queue");
    let id = q["id"].as_str().unwrap();
    let r = e
        .app
        .post(&format!("/api/v1/queues/{id}/suspend"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    e.submit(
        "carol@contoso.test",
        &["ghost@contoso.test", "ally@contoso.test"],
        "held",
    )
    .await;
    let r = e
        .app
        .patch(
            "/api/v1/accepted-domains/contoso.test",
            json!({"recipientDirectory": {"type": "List"}}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    // From now on an unknown mailbox is refused at RCPT.
    let (mut c, _) = Client::open(&e.ip(30), &e.app.bind(5, 2525)).await;
    c.cmd("EHLO client.test").await;
    c.cmd("MAIL FROM:<carol@contoso.test>").await;
    assert_eq!(
        c.cmd("RCPT TO:<nobody@contoso.test>").await.line(),
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found"
    );
    // The held message: the alias lands in its primary address's mailbox,
    // no Maildir is made for the unknown address, and the sender gets
    // Exchange's NDR.
    let r = e
        .app
        .post(&format!("/api/v1/queues/{id}/resume"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    eventually(10, "alice's second message and carol's NDR", || async {
        e.maildir("alice@contoso.test").len() == 2 && e.maildir("carol@contoso.test").len() == 1
    })
    .await;
    assert!(
        e.maildir("alice@contoso.test")
            .iter()
            .any(|m| m.contains("Delivered-To: ally@contoso.test"))
    );
    assert!(e.maildir("ghost@contoso.test").is_empty());
    let ndr = &e.maildir("carol@contoso.test")[0];
    assert!(
        ndr.contains("550 5.1.10 RESOLVER.ADR.RecipientNotFound"),
        "{ndr}"
    );
}

#[tokio::test]
async fn recipient_validation_by_callout_asks_the_hub_once_and_says_450_when_it_is_down() {
    let e = edge().await;
    let mut hub = crate::support::app::TestApp::spawn(Role::Hub).await;
    let hub_smtp = hub.bind(11, 2525);
    hub.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test", "mailboxDelivery": {"type": "Maildir"},
               "recipientDirectory": {"type": "List"}}),
    )
    .await;
    hub.create(
        "/api/v1/receive-connectors",
        json!({"name": "From Edge", "usage": "Custom", "bindings": [hub_smtp.clone()],
               "remoteIpRanges": ["127.0.0.0/8"], "permissionGroups": ["AnonymousUsers"],
               "tarpitInterval": "00:00:00"}),
    )
    .await;
    hub.post(
        "/api/v1/recipients",
        json!({"primaryAddress": "alice@contoso.test"}),
    )
    .await;
    let (hub_ip, hub_port) = hub_smtp.rsplit_once(':').unwrap();
    let r = e
        .app
        .post(
            "/api/v1/send-connectors",
            json!({"name": "To Hub", "usage": "Internal", "addressSpaces": ["--"],
                   "smartHosts": [hub_ip], "port": hub_port.parse::<u16>().unwrap()}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = e
        .app
        .patch(
            "/api/v1/accepted-domains/contoso.test",
            json!({"recipientDirectory": {"type": "Callout", "positiveTtl": "01:00:00", "negativeTtl": "00:10:00"}}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    e.app
        .patch(
            "/api/v1/recipient-filter-config",
            json!({"recipientValidationEnabled": true}),
            None,
        )
        .await;
    for _ in 0..5 {
        assert_eq!(rcpt(&e, "alice@contoso.test").await.code, 250);
    }
    assert_eq!(
        rcpt(&e, "nobody@contoso.test").await.line(),
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found"
    );
    assert_eq!(rcpt(&e, "nobody@contoso.test").await.code, 550);
    // One callout per address, whatever the number of messages.
    let m = e.app.get("/metrics").await.text;
    assert!(
        m.contains(
            "ferry_agent_actions_total{agent=\"Recipient Filter Agent\",action=\"Callout\"} 2"
        ),
        "{m}"
    );
    // A Hub that refuses the null sender says nothing about recipients:
    // "try later", never a false 550.
    hub.patch(
        "/api/v1/transport-agents/Sender%20Filter%20Agent",
        json!({"enabled": true}),
        None,
    )
    .await;
    let r = hub
        .patch(
            "/api/v1/sender-filter-config",
            json!({"blankSenderBlockingEnabled": true}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(rcpt(&e, "carol@contoso.test").await.code, 450);
    // A Hub that is down: a new address is "try later", a known one is
    // still known from the cache.
    hub.app.take().unwrap().stop().await.unwrap();
    assert_eq!(
        rcpt(&e, "bob@contoso.test").await.line(),
        "450 4.1.1 Recipient address could not be verified now; try again later"
    );
    assert_eq!(rcpt(&e, "alice@contoso.test").await.code, 250);
}

const LDIF: &str = "dn: dc=contoso,dc=test
objectClass: dcObject
objectClass: organization
o: Contoso
dc: contoso

dn: ou=people,dc=contoso,dc=test
objectClass: organizationalUnit
ou: people

dn: uid=alice,ou=people,dc=contoso,dc=test
objectClass: inetOrgPerson
uid: alice
cn: Alice
sn: Example
mail: alice@contoso.test

dn: cn=ferry,dc=contoso,dc=test
objectClass: simpleSecurityObject
objectClass: organizationalRole
cn: ferry
userPassword: ferry-bind-secret
";

#[tokio::test]
async fn recipient_validation_against_ldap_with_a_bind_credential() {
    let e = edge().await;
    let Some(ldap) = crate::support::slapd::Slapd::start(
        &format!("{}:3389", e.ip(89)),
        "dc=contoso,dc=test",
        LDIF,
    ) else {
        return;
    };
    let r = e
        .app
        .post(
            "/api/v1/credentials",
            json!({"name": "ldap bind", "kind": "SmartHost", "userName": "cn=ferry,dc=contoso,dc=test",
                   "password": "ferry-bind-secret"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = e
        .app
        .patch(
            "/api/v1/accepted-domains/contoso.test",
            json!({"recipientDirectory": {"type": "Ldap", "url": ldap.url, "baseDn": "ou=people,dc=contoso,dc=test",
                   "bindCredential": "ldap bind"}}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    e.app
        .patch(
            "/api/v1/recipient-filter-config",
            json!({"recipientValidationEnabled": true}),
            None,
        )
        .await;
    assert_eq!(rcpt(&e, "alice@contoso.test").await.code, 250);
    assert_eq!(
        rcpt(&e, "Alice@Contoso.test").await.code,
        250,
        "cached, any case"
    );
    assert_eq!(
        rcpt(&e, "nobody@contoso.test").await.line(),
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found"
    );
    // A filter that cannot be a filter is refused by field.
    let r = e
        .app
        .patch(
            "/api/v1/accepted-domains/contoso.test",
            json!({"recipientDirectory": {"type": "Ldap", "url": "http://x", "baseDn": "", "filter": "mail=%s"}}),
            None,
        )
        .await;
    r.assert_problem(422, "recipientDirectory.url");
    // The directory down: a new address is "try later", a known one cached.
    ldap.stop();
    assert_eq!(rcpt(&e, "bob@contoso.test").await.code, 450);
    assert_eq!(rcpt(&e, "alice@contoso.test").await.code, 250);
    // Each search that asked the directory is an agent action.
    let m = e.app.get("/metrics").await.text;
    assert!(
        m.contains("ferry_agent_actions_total{agent=\"Recipient Filter Agent\",action=\"Ldap\"}"),
        "{m}"
    );
}

#[tokio::test]
async fn ldap_over_starttls_is_validated_against_the_trust_anchors() {
    let e = edge().await;
    let addr = format!("{}:3389", e.ip(90));
    let (cert, key) = e.ca.issue(&[&e.ip(90)]);
    let Some(ldap) = crate::support::slapd::Slapd::start_tls(
        &addr,
        "dc=contoso,dc=test",
        LDIF,
        Some((&cert, &key)),
    ) else {
        return;
    };
    let r = e
        .app
        .patch(
            "/api/v1/accepted-domains/contoso.test",
            json!({"recipientDirectory": {"type": "Ldap", "url": ldap.url, "baseDn": "dc=contoso,dc=test",
                   "filter": "(mail=%s)", "startTls": true}}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    e.app
        .patch(
            "/api/v1/recipient-filter-config",
            json!({"recipientValidationEnabled": true}),
            None,
        )
        .await;
    // The directory's certificate is not trusted yet: no answer, so 450.
    assert_eq!(rcpt(&e, "alice@contoso.test").await.code, 450);
    let r = e
        .app
        .post(
            "/api/v1/certificates",
            json!({"source": "trustAnchor", "certificatePem": e.ca.cert_pem}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(rcpt(&e, "alice@contoso.test").await.code, 250);
    assert_eq!(rcpt(&e, "nobody@contoso.test").await.code, 550);
}
