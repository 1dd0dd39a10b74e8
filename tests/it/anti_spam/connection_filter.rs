//! Connection Filtering (spec §1.9, rule 33 and §3 step 13): the static IP
//! Block and Allow lists, DNS list providers in every match mode and in
//! priority order, bypassed recipients, a list that never answers, and the
//! traffic the agent must never touch.

use serde_json::json;
use std::time::{Duration, Instant};

use crate::support::client::Client;
use crate::support::dns::Dnsmasq;
use crate::support::scenario::{Edge, edge};

const BLOCKED: &str = "Your address is on our block list";

/// EHLO, MAIL and one RCPT from `from` to E3; the RCPT's reply and the
/// client.
async fn rcpt_from(e: &Edge, from: &str, rcpt: &str) -> (Client, crate::support::client::Reply) {
    let (mut c, _) = Client::open(from, &e.e3()).await;
    assert_eq!(c.cmd("EHLO mta.fabrikam.test").await.code, 250);
    assert_eq!(c.cmd("MAIL FROM:<someone@fabrikam.test>").await.code, 250);
    let r = c.cmd(&format!("RCPT TO:<{rcpt}>")).await;
    (c, r)
}

async fn block(e: &Edge, range: &str) {
    let r = e
        .app
        .post(
            "/api/v1/ip-block-list-entries",
            json!({"ipRange": range, "comment": "test"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn a_blocked_ip_gets_the_configured_550_after_rcpt_and_is_disconnected() {
    let e = edge().await;
    let r = e
        .app
        .patch(
            "/api/v1/ip-block-list-config",
            json!({"staticEntryRejectionResponse": BLOCKED}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let blocked = e.ip(66);
    block(&e, &blocked).await;
    let r = e
        .app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"protocolLoggingLevel": "Verbose"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (mut c, r) = rcpt_from(&e, &blocked, "bob@contoso.test").await;
    assert_eq!(r.line(), format!("550 5.7.1 {BLOCKED}"));
    // Every recipient is refused the same way (the reply comes after RCPT).
    assert_eq!(
        c.cmd("RCPT TO:<carol@contoso.test>").await.line(),
        format!("550 5.7.1 {BLOCKED}")
    );
    // Going on after the RCPTs: the reply again, and the connection closes.
    assert_eq!(c.cmd("DATA").await.line(), format!("550 5.7.1 {BLOCKED}"));
    assert!(
        c.closed().await,
        "the connection is closed after the refusal"
    );
    // A client that is not listed is served as before.
    let (_, ok) = rcpt_from(&e, &e.internet, "bob@contoso.test").await;
    assert_eq!(ok.code, 250, "{}", ok.line());
    // Tracked and counted.
    let t = e.app.get("/api/v1/tracking?event=AGENT").await;
    let events = t.body["items"].as_array().unwrap();
    assert!(
        events.iter().any(|ev| ev["clientIp"] == blocked
            && ev["detail"]
                .as_str()
                .unwrap()
                .contains("Connection Filtering Agent: Block")),
        "{}",
        t.text
    );
    let m = e.app.get("/metrics").await.text;
    assert!(
        m.contains(
            "ferry_agent_actions_total{agent=\"Connection Filtering Agent\",action=\"Block\"} 1"
        ),
        "{m}"
    );
}

#[tokio::test]
async fn a_block_entry_covering_a_hub_does_not_touch_its_authenticated_traffic() {
    let e = edge().await;
    block(&e, &format!("{}/31", e.hub1)).await;
    let mut c = e.hub_session().await;
    let r = c
        .send_mail(
            "bob@contoso.test",
            &["carol@fabrikam.test"],
            "Subject: out\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
}

#[tokio::test]
async fn the_allow_list_wins_expired_entries_lapse_and_a_disabled_agent_filters_nothing() {
    let e = edge().await;
    let both = e.ip(67);
    block(&e, &format!("{}/24", e.ip(0))).await;
    let r = e
        .app
        .post("/api/v1/ip-allow-list-entries", json!({"ipRange": both}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let (_, r) = rcpt_from(&e, &both, "bob@contoso.test").await;
    assert_eq!(r.code, 250, "on the allow list: {}", r.line());
    let (_, r) = rcpt_from(&e, &e.ip(68), "bob@contoso.test").await;
    assert_eq!(r.code, 550, "{}", r.line());

    // An entry past its expiration time no longer applies.
    let e2 = edge().await;
    let r = e2
        .app
        .post(
            "/api/v1/ip-block-list-entries",
            json!({"ipRange": e2.ip(69), "expirationTime": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["expired"], true);
    let (_, r) = rcpt_from(&e2, &e2.ip(69), "bob@contoso.test").await;
    assert_eq!(r.code, 250, "{}", r.line());

    // Disable-TransportAgent: nothing is filtered any more.
    let r = e
        .app
        .patch(
            "/api/v1/transport-agents/Connection%20Filtering%20Agent",
            json!({"enabled": false}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], false);
    let (_, r) = rcpt_from(&e, &e.ip(68), "bob@contoso.test").await;
    assert_eq!(r.code, 250, "{}", r.line());
}

/// An Edge whose external DNS is dnsmasq serving the lists `bl.test`,
/// `bits.test` and `exact.test` for the client 127.N.0.70.
async fn edge_with_lists() -> Option<(Edge, Dnsmasq, String)> {
    if !crate::support::peers::require(&["dnsmasq"]) {
        return None;
    }
    let e = edge().await;
    let client = e.ip(70);
    let o: Vec<&str> = client.split('.').collect();
    let reversed = format!("{}.{}.{}.{}", o[3], o[2], o[1], o[0]);
    let records = vec![
        format!("--host-record={reversed}.bl.test,127.0.0.2"),
        format!("--host-record={reversed}.bits.test,127.0.0.6"),
        format!("--host-record={reversed}.exact.test,127.0.0.11"),
    ];
    let dns = Dnsmasq::start(&e.ip(53), &records).await;
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"externalDNSServers": [dns.server]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    Some((e, dns, client))
}

async fn provider(e: &Edge, body: serde_json::Value) -> String {
    let r = e.app.post("/api/v1/ip-block-list-providers", body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.body["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn each_match_mode_of_a_block_list_provider() {
    let Some((e, _dns, client)) = edge_with_lists().await else {
        return;
    };
    // BitmaskMatch 127.0.0.8 does not match the answer 127.0.0.6 …
    let bits = provider(
        &e,
        json!({"name": "bits", "lookupDomain": "bits.test", "match": {"type": "BitmaskMatch", "bitmask": "127.0.0.8"},
               "rejectionResponse": "bits says %0 via %1 (%2)"}),
    )
    .await;
    // … nor does IPAddressesMatch of other addresses.
    let exact = provider(
        &e,
        json!({"name": "exact", "lookupDomain": "exact.test",
               "match": {"type": "IpAddressesMatch", "ipAddresses": ["127.0.0.10"]}}),
    )
    .await;
    let (_, r) = rcpt_from(&e, &client, "bob@contoso.test").await;
    assert_eq!(r.code, 250, "no provider matches: {}", r.line());
    // Now each matches in turn; the reply names what %0 %1 %2 stand for.
    let r = e
        .app
        .patch(
            &format!("/api/v1/ip-block-list-providers/{bits}"),
            json!({"match": {"type": "BitmaskMatch", "bitmask": "127.0.0.4"}}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, r) = rcpt_from(&e, &client, "bob@contoso.test").await;
    assert_eq!(
        r.line(),
        format!("550 5.7.1 bits says {client} via From Internet (bits)")
    );
    e.app
        .patch(
            &format!("/api/v1/ip-block-list-providers/{bits}"),
            json!({"enabled": false}),
            None,
        )
        .await;
    e.app
        .patch(
            &format!("/api/v1/ip-block-list-providers/{exact}"),
            json!({"match": {"type": "IpAddressesMatch", "ipAddresses": ["127.0.0.10", "127.0.0.11"]},
                   "rejectionResponse": "exact"}),
            None,
        )
        .await;
    let (_, r) = rcpt_from(&e, &client, "bob@contoso.test").await;
    assert_eq!(r.line(), "550 5.7.1 exact");
    // AnyMatch: any 127/8 answer.
    e.app
        .patch(
            &format!("/api/v1/ip-block-list-providers/{exact}"),
            json!({"enabled": false}),
            None,
        )
        .await;
    provider(
        &e,
        json!({"name": "any", "lookupDomain": "bl.test", "rejectionResponse": "any"}),
    )
    .await;
    let (_, r) = rcpt_from(&e, &client, "bob@contoso.test").await;
    assert_eq!(r.line(), "550 5.7.1 any");
    // A client no list knows (NXDOMAIN) is not listed.
    let (_, r) = rcpt_from(&e, &e.ip(71), "bob@contoso.test").await;
    assert_eq!(r.code, 250, "{}", r.line());
}

#[tokio::test]
async fn the_first_provider_by_priority_decides_and_bypassed_recipients_pass() {
    let Some((e, _dns, client)) = edge_with_lists().await else {
        return;
    };
    provider(
        &e,
        json!({"name": "second", "lookupDomain": "bl.test", "rejectionResponse": "second"}),
    )
    .await;
    let first = provider(
        &e,
        json!({"name": "first", "lookupDomain": "exact.test", "priority": 1,
               "match": {"type": "IpAddressesMatch", "ipAddresses": ["127.0.0.11"]},
               "rejectionResponse": "first", "bypassedRecipients": ["postmaster@contoso.test"]}),
    )
    .await;
    let list = e.app.get("/api/v1/ip-block-list-providers").await;
    let names: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["first", "second"], "listed by priority");
    let (mut c, r) = rcpt_from(&e, &client, "bob@contoso.test").await;
    assert_eq!(
        r.line(),
        "550 5.7.1 first",
        "the first match stops the scan"
    );
    // A bypassed recipient is accepted from the listed client, and its
    // message goes through.
    assert_eq!(c.cmd("RCPT TO:<postmaster@contoso.test>").await.code, 250);
    assert_eq!(c.cmd("DATA").await.code, 354);
    c.raw(b"Subject: abuse report\r\n\r\nhello\r\n.\r\n").await;
    assert_eq!(c.reply().await.unwrap().code, 250);
    let r = e
        .app
        .delete(&format!("/api/v1/ip-block-list-providers/{first}"), None)
        .await;
    assert_eq!(r.status, 204, "{}", r.text);
    let (_, r) = rcpt_from(&e, &client, "bob@contoso.test").await;
    assert_eq!(r.line(), "550 5.7.1 second");
}

#[tokio::test]
async fn a_list_that_never_answers_costs_a_session_at_most_its_timeout() {
    let e = edge().await;
    // A DNS "server" that reads queries and never answers.
    let silent = std::net::UdpSocket::bind(format!("{}:5353", e.ip(54))).unwrap();
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"externalDNSServers": [format!("{}:5353", e.ip(54))]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    provider(
        &e,
        json!({"name": "dead", "lookupDomain": "dead.test", "lookupTimeout": "00:00:01"}),
    )
    .await;
    let started = Instant::now();
    let (_, r) = rcpt_from(&e, &e.internet, "bob@contoso.test").await;
    let took = started.elapsed();
    assert_eq!(r.code, 250, "no answer is not listed: {}", r.line());
    assert!(
        took < Duration::from_millis(2500),
        "the session waited {took:?} for a 1 s timeout"
    );
    drop(silent);
}

#[tokio::test]
async fn bad_settings_are_refused_by_field_and_duplicates_conflict() {
    let e = edge().await;
    let r = e
        .app
        .patch(
            "/api/v1/ip-block-list-config",
            json!({"staticEntryRejectionResponse": "x".repeat(241)}),
            None,
        )
        .await;
    r.assert_problem(422, "staticEntryRejectionResponse");
    let r = e
        .app
        .post(
            "/api/v1/ip-block-list-entries",
            json!({"ipRange": "10.0.0.300"}),
        )
        .await;
    r.assert_problem(422, "ipRange");
    block(&e, "192.0.2.0/24").await;
    let r = e
        .app
        .post(
            "/api/v1/ip-block-list-entries",
            json!({"ipRange": "192.0.2.0/24"}),
        )
        .await;
    r.assert_problem(409, "ipRange");
    let r = e
        .app
        .post(
            "/api/v1/ip-allow-list-providers",
            json!({"name": "a", "lookupDomain": "allow.test", "rejectionResponse": "no"}),
        )
        .await;
    r.assert_problem(422, "rejectionResponse");
    // The list is the path's: a body naming the other list is refused, and
    // no Block list provider or entry appears through the Allow list's path
    // (schemathesis made one).
    for (path, body) in [
        (
            "/api/v1/ip-allow-list-providers",
            json!({"name": "b", "lookupDomain": "c.test", "list": "Block"}),
        ),
        (
            "/api/v1/ip-allow-list-entries",
            json!({"ipRange": "198.51.100.7", "list": "Block"}),
        ),
    ] {
        e.app.post(path, body).await.assert_problem(422, "list");
    }
    let providers = e.app.get("/api/v1/ip-block-list-providers").await.body;
    assert!(!providers.to_string().contains("c.test"), "{providers}");
    let r = e
        .app
        .patch(
            "/api/v1/transport-agents/Recipient%20Filter%20Agent",
            json!({"priority": 1}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let list = e.app.get("/api/v1/transport-agents").await;
    let order: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["identity"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        [
            "Recipient Filter Agent",
            "Connection Filtering Agent",
            "Sender Filter Agent",
            "Sender Id Agent",
            "Address Rewriting Inbound Agent",
            "Content Filter Agent",
            "Edge Rule Agent",
            "Attachment Filtering Agent",
            "Address Rewriting Outbound Agent",
        ]
    );
    // The list's ETag moved on with the change; the old one is refused.
    assert_eq!(list.etag(), "\"1\"");
    let r = e
        .app
        .patch(
            "/api/v1/transport-agents/Sender%20Filter%20Agent",
            json!({"enabled": false}),
            Some("\"0\""),
        )
        .await;
    assert_eq!(r.status, 412, "{}", r.text);
}

#[tokio::test]
async fn a_blocked_address_among_the_internal_smtp_servers_is_internal_mail_and_not_filtered() {
    let e = edge().await;
    let upstream = e.ip(72);
    block(&e, &upstream).await;
    let (_, r) = rcpt_from(&e, &upstream, "bob@contoso.test").await;
    assert_eq!(r.code, 550, "{}", r.line());
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"internalSMTPServers": [upstream.clone()]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, r) = rcpt_from(&e, &upstream, "bob@contoso.test").await;
    assert_eq!(r.code, 250, "internal mail: {}", r.line());
    // Unless the list is told to filter internal mail too.
    let r = e
        .app
        .patch(
            "/api/v1/ip-block-list-config",
            json!({"internalMailEnabled": true}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (_, r) = rcpt_from(&e, &upstream, "bob@contoso.test").await;
    assert_eq!(r.code, 550, "{}", r.line());
}

#[tokio::test]
async fn behind_an_internal_smtp_server_the_original_client_is_read_from_received_headers() {
    let e = edge().await;
    let upstream = e.ip(73);
    block(&e, "198.51.100.66").await;
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"internalSMTPServers": [upstream.clone()]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let send = |received: &'static str| {
        let (upstream, e3) = (upstream.clone(), e.e3());
        async move {
            let (mut c, _) = Client::open(&upstream, &e3).await;
            c.cmd("EHLO relay.contoso.test").await;
            c.send_mail(
                "a@fabrikam.test",
                &["bob@contoso.test"],
                &format!("Received: {received}\r\nSubject: relayed\r\n\r\nhi\r\n"),
            )
            .await
        }
    };
    let r = send("from mta.fabrikam.test (mta [198.51.100.66]) by relay.contoso.test; Mon, 30 Nov 2026 01:00:00 +0000").await;
    assert_eq!(
        r.line(),
        "550 5.7.1 External client with IP address 198.51.100.66 does not have permissions to submit to this server"
    );
    let r = send("from mta.fabrikam.test (mta [198.51.100.67]) by relay.contoso.test; Mon, 30 Nov 2026 01:00:00 +0000").await;
    assert_eq!(r.code, 250, "{}", r.line());
}

#[tokio::test]
async fn ten_thousand_block_list_entries_in_one_request_and_a_bad_one_refuses_them_all() {
    let e = edge().await;
    let items: Vec<serde_json::Value> = (0..10_000u32)
        .map(|i| json!({"ipRange": format!("10.{}.{}.0/24", i / 256, i % 256)}))
        .collect();
    let r = e
        .app
        .post(
            "/api/v1/ip-block-list-entries/bulk",
            json!({"items": items}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["created"], 10_000);
    let all = e.app.get("/api/v1/ip-block-list-entries").await;
    assert_eq!(all.body["items"].as_array().unwrap().len(), 10_000);
    let r = e
        .app
        .post(
            "/api/v1/ip-block-list-entries/bulk",
            json!({"items": [{"ipRange": "192.0.2.1"}, {"ipRange": "not-an-ip"}]}),
        )
        .await;
    r.assert_problem(422, "items[1].ipRange");
    let r = e
        .app
        .post(
            "/api/v1/ip-block-list-entries/bulk",
            json!({"items": [{"ipRange": "192.0.2.1"}, {"ipRange": "10.0.5.0/24"}]}),
        )
        .await;
    r.assert_problem(409, "items[1]");
    assert_eq!(
        e.app.get("/api/v1/ip-block-list-entries").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        10_000,
        "all or nothing"
    );
    // Still served: a listed client is refused, another is not.
    let (_, r) = rcpt_from(&e, &e.internet, "bob@contoso.test").await;
    assert_eq!(r.code, 250, "{}", r.line());
}
