//! After first start, the default objects of each role match spec §1.5 and §1.7.

use crate::support::app::TestApp;
use ferry::model::Role;
use serde_json::json;

#[tokio::test]
async fn edge_first_start_creates_the_default_internal_receive_connector() {
    let app = TestApp::spawn(Role::Edge).await;
    let items = app.get("/api/v1/receive-connectors").await.body["items"].clone();
    let items = items.as_array().unwrap();
    assert_eq!(items.len(), 1);
    let c = &items[0];
    assert_eq!(c["name"], "Default internal receive connector EDGE01");
    assert_eq!(
        c["bindings"],
        json!([app.bind(1, 2525)]),
        "the --default-smtp-bind override"
    );
    assert_eq!(c["remoteIpRanges"], json!(["0.0.0.0-255.255.255.255"]));
    assert_eq!(c["authMechanism"], json!(["Tls", "ExchangeServer"]));
    assert_eq!(
        c["permissionGroups"],
        json!(["AnonymousUsers", "ExchangeServers", "Partners"])
    );
    assert_eq!(c["maxMessageSize"], 10485760);
    assert_eq!(c["maxRecipientsPerMessage"], 200);
    assert_eq!(c["connectionTimeout"], "00:05:00");
    assert_eq!(c["connectionInactivityTimeout"], "00:01:00");
    assert_eq!(c["messageRateLimit"], 600);
    assert_eq!(c["maxInboundConnectionPerSource"], 20);
    assert_eq!(c["effectiveFqdn"], "edge01.contoso.test");
    assert!(
        c["tlsCertificate"].is_string(),
        "the install certificate covers the FQDN"
    );
    // Anonymous holds Authoritative-Domain-Sender but not relay (spec §1.6).
    let anon = c["effectiveRights"]["Anonymous"].as_array().unwrap();
    assert!(anon.contains(&json!("ms-Exch-SMTP-Accept-Authoritative-Domain-Sender")));
    assert!(!anon.contains(&json!("ms-Exch-SMTP-Accept-Any-Recipient")));
    assert_eq!(
        app.get("/api/v1/send-connectors").await.body["items"],
        json!([]),
        "no send connector by default"
    );
}

#[tokio::test]
async fn hub_first_start_creates_default_and_client_connectors() {
    let app = TestApp::spawn(Role::Hub).await;
    let items = app.get("/api/v1/receive-connectors").await.body["items"].clone();
    let by_name = |n: &str| {
        items
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .cloned()
            .unwrap()
    };
    let d = by_name("Default HUB01");
    assert_eq!(d["bindings"], json!([app.bind(1, 2525)]));
    assert_eq!(
        d["authMechanism"],
        json!([
            "Tls",
            "Integrated",
            "BasicAuth",
            "BasicAuthRequireTLS",
            "ExchangeServer"
        ])
    );
    assert_eq!(
        d["permissionGroups"],
        json!(["ExchangeUsers", "ExchangeServers", "ExchangeLegacyServers"])
    );
    assert!(
        d["effectiveRights"].get("Anonymous").is_none(),
        "no AnonymousUsers on the Hub's default connector"
    );
    assert_eq!(d["connectionTimeout"], "00:10:00");
    assert_eq!(d["connectionInactivityTimeout"], "00:05:00");
    assert_eq!(d["messageRateLimit"], "unlimited");
    let c = by_name("Client HUB01");
    assert_eq!(c["usage"], "Client");
    assert_eq!(c["bindings"], json!([app.bind(1, 2587)]));
    assert_eq!(
        c["authMechanism"],
        json!(["Tls", "Integrated", "BasicAuth", "BasicAuthRequireTLS"])
    );
    assert_eq!(c["permissionGroups"], json!(["ExchangeUsers"]));
}

#[tokio::test]
async fn transport_settings_defaults_differ_by_role() {
    let edge = TestApp::spawn(Role::Edge)
        .await
        .get("/api/v1/transport-settings")
        .await
        .body;
    let hub = TestApp::spawn(Role::Hub)
        .await
        .get("/api/v1/transport-settings")
        .await
        .body;
    for (s, transient, outbound) in [
        (&edge, "00:10:00", "00:30:00"),
        (&hub, "00:05:00", "00:10:00"),
    ] {
        assert_eq!(s["transientFailureRetryCount"], 6);
        assert_eq!(s["transientFailureRetryInterval"], transient);
        assert_eq!(s["outboundConnectionFailureRetryInterval"], outbound);
        assert_eq!(s["messageRetryInterval"], "00:01:00");
        assert_eq!(s["messageExpirationTimeout"], "2.00:00:00");
        assert_eq!(s["delayNotificationTimeout"], "04:00:00");
        assert_eq!(s["queueGlitchRetryCount"], 4);
        assert_eq!(s["queueGlitchRetryInterval"], "00:01:00");
        assert_eq!(s["maxOutboundConnections"], 1000);
        assert_eq!(s["maxPerDomainOutboundConnections"], 40);
        assert_eq!(s["externalDNSServers"], json!([]));
    }
    // An unsubscribed Edge's postmaster is postmaster@<Edge FQDN> (spec §1.8).
    assert_eq!(
        edge["effectivePostmasterAddress"],
        "postmaster@edge01.contoso.test"
    );
    assert_eq!(edge["role"], "Edge");
    assert_eq!(hub["serverName"], "HUB01");
}

#[tokio::test]
async fn first_start_creates_a_five_year_self_signed_certificate() {
    let app = TestApp::spawn(Role::Edge).await;
    let certs = app.get("/api/v1/certificates").await.body["items"].clone();
    let c = &certs.as_array().unwrap()[0];
    assert_eq!(c["subject"], "CN=EDGE01");
    assert_eq!(c["selfSigned"], true);
    assert_eq!(c["hasPrivateKey"], true);
    assert!(
        c["subjectAlternativeNames"]
            .as_array()
            .unwrap()
            .contains(&json!("edge01.contoso.test"))
    );
    let nb = time::OffsetDateTime::parse(
        c["notBefore"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let na = time::OffsetDateTime::parse(
        c["notAfter"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert!((na - nb).whole_days() >= 5 * 365, "valid five years");
    assert!(
        c["certificatePem"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN CERTIFICATE-----")
    );
    assert!(!app.everything().await.contains("PRIVATE KEY"));
}
