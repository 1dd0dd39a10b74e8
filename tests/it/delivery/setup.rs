//! A Ferry with a submission connector for the test client, DNS pointed at
//! a dnsmasq on the same loopback network, and short retry intervals.

use crate::support::app::TestApp;
use crate::support::client::Client;
use crate::support::dns::Dnsmasq;
use ferry::model::Role;
use serde_json::{Value, json};
use std::time::Duration;

pub struct Env {
    pub app: TestApp,
    /// Kept for its lifetime: dnsmasq stops when the test ends.
    #[allow(dead_code)]
    pub dns: Dnsmasq,
}

impl Env {
    pub fn ip(&self, host: u8) -> String {
        format!("127.{}.0.{host}", self.app.net)
    }

    /// Submits a message through the submission connector; returns the 250 text.
    pub async fn submit(&self, from: &str, to: &[&str], subject: &str) -> String {
        let (mut c, _) = Client::open(&self.ip(30), &self.app.bind(5, 2525)).await;
        c.cmd("EHLO client.test").await;
        let r = c
            .send_mail(
                from,
                to,
                &format!("From: <{from}>\r\nSubject: {subject}\r\n\r\nbody of {subject}\r\n"),
            )
            .await;
        assert_eq!(r.code, 250, "{}", r.text);
        r.text
    }

    pub async fn connector(&self, body: Value) -> Value {
        self.app.create("/api/v1/send-connectors", body).await
    }

    pub async fn queues(&self) -> Vec<Value> {
        self.app.get("/api/v1/queues").await.body["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// The queue whose next hop contains `hop`.
    pub async fn queue(&self, hop: &str) -> Option<Value> {
        self.queues()
            .await
            .into_iter()
            .find(|q| q["nextHopDomain"].as_str().unwrap_or("").contains(hop))
    }

    /// The last error of the queue whose next hop contains `hop` (empty
    /// when there is none).
    pub async fn queue_error(&self, hop: &str) -> String {
        self.queue(hop)
            .await
            .and_then(|q| q["lastError"].as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub async fn messages(&self) -> Vec<Value> {
        self.app.get("/api/v1/messages").await.body["items"]
            .as_array()
            .unwrap()
            .clone()
    }

    /// Files in a Hub mailbox (Maildir new/).
    pub fn maildir(&self, address: &str) -> Vec<String> {
        self.app.maildir(address)
    }
}

/// Polls `check` until it holds or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting for: {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Ferry of `role` whose DNS is a dnsmasq serving `records`; on a Hub,
/// contoso.test is Authoritative with Maildir mailboxes.
/// A Ferry of `role` with dnsmasq beside it on its network; None (the test
/// is skipped, and says so) when dnsmasq is not installed.
pub async fn env(role: Role, records: &[&str]) -> Option<Env> {
    env_with(role, records, |_| {}).await
}

/// `env`, with the settings Ferry starts with changed by `tweak`.
pub async fn env_with(
    role: Role,
    records: &[&str],
    tweak: impl FnOnce(&mut ferry::startup::Settings),
) -> Option<Env> {
    if !crate::support::peers::require(&["dnsmasq"]) {
        return None;
    }
    let app = TestApp::spawn_with(role, tweak).await;
    let ip = |h: u8| format!("127.{}.0.{h}", app.net);
    let records: Vec<String> = records
        .iter()
        .map(|r| r.replace("{net}", &app.net.to_string()))
        .collect();
    let dns = Dnsmasq::start(&ip(53), &records).await;
    let domain = match role {
        Role::Hub => json!({"domainName": "contoso.test", "mailboxDelivery": {"type": "Maildir"}}),
        Role::Edge => json!({"domainName": "contoso.test"}),
    };
    app.create("/api/v1/accepted-domains", domain).await;
    app.create(
        "/api/v1/receive-connectors",
        json!({"name": "Submission", "usage": "Custom", "bindings": [app.bind(5, 2525)], "remoteIpRanges": [ip(30)],
               "permissionGroups": ["AnonymousUsers"], "tarpitInterval": "00:00:00", "messageRateLimit": "unlimited",
               "extendedRights": [{"principal": "Anonymous", "right": "ms-Exch-SMTP-Accept-Any-Recipient"}]}),
    )
    .await;
    let r = app
        .patch(
            "/api/v1/transport-settings",
            json!({"internalDNSServers": [dns.server], "externalDNSServers": [dns.server],
                   "queueGlitchRetryInterval": "00:00:01", "transientFailureRetryInterval": "00:00:02",
                   "outboundConnectionFailureRetryInterval": "00:00:03", "messageRetryInterval": "00:00:01"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    Some(Env { app, dns })
}

/// Where mail to fabrikam.test (the tests' senders) goes: a recording peer
/// on `ip`:2525 behind a send connector, so notices can be read.
pub async fn fabrikam_inbox(app: &TestApp, ip: &str) -> crate::support::sink::Sink {
    let sink = crate::support::sink::Sink::start(
        &format!("{ip}:2525"),
        crate::support::sink::SinkOptions::default(),
    )
    .await;
    app.create(
        "/api/v1/send-connectors",
        json!({"name": "To Fabrikam", "addressSpaces": ["fabrikam.test"], "smartHosts": [ip], "port": 2525}),
    )
    .await;
    sink
}

/// Waits for the NDR about `subject` in `inbox`; its text.
pub async fn ndr_about(inbox: &crate::support::sink::Sink, subject: &str) -> String {
    let title = format!("Subject: Undeliverable: {subject}");
    eventually(30, &format!("the NDR about {subject}"), || async {
        inbox.messages().iter().any(|m| m.2.contains(&title))
    })
    .await;
    inbox
        .messages()
        .into_iter()
        .find(|m| m.2.contains(&title))
        .unwrap()
        .2
}

const HOLD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/postfix-hold.sh");

/// A Postfix on `ip`:2525 that holds what it receives
/// (`tests/peers/postfix-hold.sh`); without DSN when `dsn` is false; with
/// STARTTLS and this certificate and key when given.
pub fn hold_postfix(
    e: &Env,
    name: &str,
    ip: &str,
    dsn: bool,
    tls: Option<(&std::path::Path, &std::path::Path)>,
) -> crate::support::peers::Postfix {
    let pf = crate::support::peers::Postfix {
        dir: e.app.dir.path().join(name),
    };
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(HOLD).arg(&pf.dir).args([ip, "2525"]);
    cmd.arg(if dsn { "dsn" } else { "nodsn" });
    if let Some((cert, key)) = tls {
        cmd.arg(cert).arg(key);
    }
    let out = cmd.output().expect("bash runs");
    assert!(
        out.status.success(),
        "Postfix set-up failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    pf
}

/// postcat's envelope records of every message the Postfix holds.
pub fn envelopes(pf: &crate::support::peers::Postfix) -> String {
    let out = std::process::Command::new("bash")
        .arg(HOLD)
        .arg(&pf.dir)
        .arg("envelopes")
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}
