//! The Edge of spec §3 on loopback: E3 "From Internet" on the external
//! address, E4 "From Hub" on the internal one for the two Hubs, the accepted
//! domain contoso.test, a server login for the Hubs, and CA-issued
//! certificates for both FQDNs.

use crate::support::app::TestApp;
use crate::support::pki::Ca;
use ferry::model::Role;
use serde_json::json;

pub const PORT: u16 = 2525;
pub const HUB_PASSWORD: &str = "Hub01-Password-42";

pub struct Edge {
    pub app: TestApp,
    pub ca: Ca,
    /// 127.N.0.2 — "203.0.113.10", mail.contoso.test
    pub external: String,
    /// 127.N.0.3 — "10.1.1.2", edge01.corp.contoso.test
    pub internal: String,
    /// 127.N.0.11 and .12 — the Hubs
    pub hub1: String,
    pub hub2: String,
    /// 127.N.0.20 — an Internet MTA
    pub internet: String,
    /// 127.N.0.99 — a host no connector serves on the internal address
    pub stranger: String,
}

impl Edge {
    pub fn ip(&self, host: u8) -> String {
        format!("127.{}.0.{host}", self.app.net)
    }
    pub fn e3(&self) -> String {
        format!("{}:{PORT}", self.external)
    }
    pub fn e4(&self) -> String {
        format!("{}:{PORT}", self.internal)
    }
}

pub async fn edge() -> Edge {
    let app = TestApp::spawn(Role::Edge).await;
    let ip = |h: u8| format!("127.{}.0.{h}", app.net);
    let ca = Ca::new(app.dir.path());
    for names in [["mail.contoso.test"], ["edge01.corp.contoso.test"]] {
        let (crt, key) = ca.issue(&names);
        app.create(
            "/api/v1/certificates",
            json!({"source": "import", "certificatePem": crt, "privateKeyPem": key}),
        )
        .await;
    }
    app.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    app.create(
        "/api/v1/credentials",
        json!({"kind": "Login", "userName": "hub01", "principal": "Server", "password": HUB_PASSWORD}),
    )
    .await;
    let e3 = app
        .patch(
            "/api/v1/receive-connectors/Default%20internal%20receive%20connector%20EDGE01",
            json!({"name": "From Internet", "bindings": [format!("{}:{PORT}", ip(2))], "fqdn": "mail.contoso.test",
                   "tarpitInterval": "00:00:00", "authTarpitInterval": "00:00:00"}),
            None,
        )
        .await;
    assert_eq!(e3.status, 200, "{}", e3.text);
    app.create(
        "/api/v1/receive-connectors",
        json!({"name": "From Hub", "usage": "Internal", "bindings": [format!("{}:{PORT}", ip(3))],
               "remoteIpRanges": [ip(11), ip(12)], "fqdn": "edge01.corp.contoso.test",
               "authMechanism": ["Tls", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer"],
               "permissionGroups": ["ExchangeServers"], "tarpitInterval": "00:00:00", "authTarpitInterval": "00:00:00"}),
    )
    .await;
    Edge {
        external: ip(2),
        internal: ip(3),
        hub1: ip(11),
        hub2: ip(12),
        internet: ip(20),
        stranger: ip(99),
        app,
        ca,
    }
}

impl Edge {
    /// A Hub's session on E4: STARTTLS (the Edge's certificate checked
    /// against the CA), EHLO, and AUTH PLAIN as the server login hub01.
    pub async fn hub_session(&self) -> crate::support::client::Client {
        use base64::Engine;
        let (c, _) = crate::support::client::Client::open(&self.hub1, &self.e4()).await;
        let mut c = c
            .starttls("edge01.corp.contoso.test", &self.ca.cert_pem)
            .await
            .unwrap();
        c.cmd("EHLO hub01").await;
        let auth =
            base64::engine::general_purpose::STANDARD.encode(format!("\0hub01\0{HUB_PASSWORD}"));
        assert_eq!(c.cmd(&format!("AUTH PLAIN {auth}")).await.code, 235);
        c
    }
}

/// Messages in the queue, oldest first: (internal id, sender, recipients, body).
pub async fn queued(app: &TestApp) -> Vec<(i64, String, Vec<String>, String)> {
    let pool = app.app.as_ref().unwrap().queue.pool().clone();
    let rows: Vec<(i64, String, Vec<u8>)> =
        sqlx::query_as("SELECT m.id, m.sender, b.body FROM messages m JOIN bodies b ON b.message = m.id ORDER BY m.id")
            .fetch_all(&pool)
            .await
            .unwrap();
    let mut out = vec![];
    for (id, sender, body) in rows {
        let rcpts: Vec<(String,)> =
            sqlx::query_as("SELECT address FROM recipients WHERE message = ? ORDER BY idx")
                .bind(id)
                .fetch_all(&pool)
                .await
                .unwrap();
        out.push((
            id,
            sender,
            rcpts.into_iter().map(|r| r.0).collect(),
            String::from_utf8_lossy(&body).into_owned(),
        ));
    }
    out
}
