//! The seed scenario end to end (EXCHANGE-SPEC §3): the walkthrough script
//! sets up an Edge, two Hubs, an Internet MTA (real `ferry` processes) and
//! dnsmasq with curl alone and sends mail both ways; this test then checks
//! steps 2–12 against what the peers actually hold.

use crate::support::client::Client;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const NET: &str = "127.61.0";
const PORT: u16 = 2525;

struct Scenario {
    work: PathBuf,
    http: reqwest::Client,
}

impl Drop for Scenario {
    fn drop(&mut self) {
        for entry in std::fs::read_dir(&self.work)
            .into_iter()
            .flatten()
            .flatten()
        {
            if entry.path().extension().is_some_and(|e| e == "pid")
                && let Ok(pid) = std::fs::read_to_string(entry.path())
            {
                let _ = Command::new("kill").arg(pid.trim()).status();
            }
        }
    }
}

impl Scenario {
    fn ip(host: u8) -> String {
        format!("{NET}.{host}")
    }

    fn api_base(host: &str) -> String {
        let ip = match host {
            "edge" => Self::ip(3),
            "hub1" => Self::ip(11),
            "hub2" => Self::ip(12),
            _ => Self::ip(20),
        };
        format!("http://{ip}:8080/api/v1")
    }

    async fn api(&self, host: &str, method: &str, path: &str, body: Option<Value>) -> Value {
        let mut req = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", Self::api_base(host)),
            )
            .bearer_auth(format!("walkthrough-token-{host}-0123456789"));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status.is_success(),
            "{method} {path} on {host}: {status} {text}"
        );
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    fn mailbox(&self, host: &str, address: &str) -> Vec<String> {
        let (local, domain) = address.split_once('@').unwrap();
        let dir = self
            .work
            .join(host)
            .join("mailboxes")
            .join(domain)
            .join(local)
            .join("Maildir/new");
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn bob(&self) -> Vec<String> {
        let mut all = self.mailbox("hub1", "bob@contoso.test");
        all.extend(self.mailbox("hub2", "bob@contoso.test"));
        all
    }

    async fn queue(&self, host: &str, hop: &str) -> Option<Value> {
        self.api(host, "GET", "/queues", None).await["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|q| q["nextHopDomain"].as_str().unwrap_or("").contains(hop))
            .cloned()
    }

    /// Bob submits on Hub 1's client connector.
    async fn bob_sends(&self, to: &str, subject: &str) -> crate::support::client::Reply {
        let (c, _) = Client::open(&Self::ip(40), &format!("{}:2587", Self::ip(11))).await;
        let mut c = c
            .starttls(
                "hub01.corp.contoso.test",
                &std::fs::read_to_string(self.work.join("pki/ca.crt")).unwrap(),
            )
            .await
            .expect("TLS to Hub 1");
        c.cmd("EHLO bob-laptop").await;
        let auth = base64_plain("bob@contoso.test", "Bob-Mailbox-Pass-3");
        assert_eq!(c.cmd(&format!("AUTH PLAIN {auth}")).await.code, 235);
        c.send_mail(
            "bob@contoso.test",
            &[to],
            &format!("Subject: {subject}\r\n\r\nhello\r\n"),
        )
        .await
    }

    /// The Internet MTA sends to the Edge's external address.
    async fn internet_sends(&self, to: &str, subject: &str) -> crate::support::client::Reply {
        let (mut c, _) = Client::open(&Self::ip(20), &format!("{}:{PORT}", Self::ip(2))).await;
        c.cmd("EHLO mx.fabrikam.test").await;
        c.send_mail(
            "alice@fabrikam.test",
            &[to],
            &format!("Subject: {subject}\r\n\r\nhi\r\n"),
        )
        .await
    }
}

fn base64_plain(user: &str, pass: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{pass}"))
}

async fn eventually<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn run_walkthrough(work: &Path) {
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/edge-hub/run.sh"
        ))
        .env("NET", NET)
        .env("WORK", work)
        .env("KEEP_RUNNING", "1")
        .env("FERRY_BIN", env!("CARGO_BIN_EXE_ferry"))
        .env("FERRY_LOG", "info,sqlx=warn")
        .output()
        .expect("bash runs the walkthrough");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the walkthrough failed:\n{text}");
    assert!(text.contains("mail flows both ways"), "{text}");
}

#[tokio::test]
async fn edge_and_hub_without_edgesync() {
    if !crate::support::peers::require(&["dnsmasq", "jq", "swaks"]) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("edge-hub");
    let s = Scenario {
        work: work.clone(),
        http: reqwest::Client::new(),
    };
    tokio::task::spawn_blocking({
        let w = work.clone();
        move || run_walkthrough(&w)
    })
    .await
    .unwrap();

    // Step 3 (inbound) and step 7 (outbound), as the walkthrough left them.
    let inbound = s.bob();
    assert_eq!(inbound.len(), 1, "Bob has the inbound message");
    assert!(inbound[0].contains("Subject: inbound through the Edge"));
    assert!(
        inbound[0].contains("receive connector \"From Internet\"")
            && inbound[0].contains("with ESMTPS"),
        "{}",
        inbound[0]
    );
    assert!(
        inbound[0].contains("with ESMTPSA (Ferry; receive connector \"Default HUB0"),
        "Edge → Hub over TLS + AUTH: {}",
        inbound[0]
    );
    let outbound = s.mailbox("internet", "carol@fabrikam.test");
    assert_eq!(outbound.len(), 1);
    assert!(
        outbound[0].contains("receive connector \"From Hub\"")
            && outbound[0].contains("receive connector \"Client HUB01\"")
    );
    assert!(
        outbound[0].contains("by mx.fabrikam.test")
            && outbound[0].contains("from mail.contoso.test ([127.61.0.2])"),
        "E1 uses its FQDN and source address: {}",
        outbound[0]
    );

    // Step 2: a stranger on the internal address gets no connector.
    let (_, banner) = Client::open(&Scenario::ip(99), &format!("{}:{PORT}", Scenario::ip(3))).await;
    assert_eq!(banner.code, 421);

    // Step 4: relay denial on E3; the session stays usable.
    let (mut c, _) = Client::open(&Scenario::ip(20), &format!("{}:{PORT}", Scenario::ip(2))).await;
    c.cmd("EHLO mx.fabrikam.test").await;
    c.cmd("MAIL FROM:<alice@fabrikam.test>").await;
    assert_eq!(
        c.cmd("RCPT TO:<x@gmail.example>").await.line(),
        "550 5.7.1 Unable to relay"
    );
    assert_eq!(c.cmd("RCPT TO:<bob@contoso.test>").await.code, 250);

    // Step 8: anonymous MAIL on E4 from a Hub address.
    let (mut c, _) = Client::open(&Scenario::ip(11), &format!("{}:{PORT}", Scenario::ip(3))).await;
    let ehlo = c.cmd("EHLO hub01.corp.contoso.test").await;
    assert!(!ehlo.text.contains("AUTH"), "no AUTH before TLS on E4");
    assert_eq!(
        c.cmd("MAIL FROM:<bob@contoso.test>").await.line(),
        "530 5.7.1 Client was not authenticated"
    );

    // Step 8: a wrong Hub password leaves the Hub's queue in Retry with the 535, nothing sent.
    s.api(
        "hub1",
        "PATCH",
        "/credentials/hub-to-edge",
        Some(json!({"password": "wrong-password"})),
    )
    .await;
    assert_eq!(
        s.bob_sends("dave@fabrikam.test", "wrong password")
            .await
            .code,
        250
    );
    eventually(
        20,
        "Hub 1's queue to the Edge is in Retry with 535",
        || async {
            s.queue("hub1", "edge01.corp.contoso.test")
                .await
                .is_some_and(|q| {
                    q["status"] == "Retry"
                        && q["lastError"].as_str().unwrap_or("").contains("535 5.7.3")
                })
        },
    )
    .await;
    assert!(s.mailbox("internet", "dave@fabrikam.test").is_empty());
    // Fixing the password: the changed credential does not reset the timer, Retry-Queue does.
    s.api(
        "hub1",
        "PATCH",
        "/credentials/hub-to-edge",
        Some(json!({"password": "Hub-To-Edge-Pass-2"})),
    )
    .await;
    let q = s.queue("hub1", "edge01.corp.contoso.test").await.unwrap();
    s.api(
        "hub1",
        "POST",
        &format!("/queues/{}/retry", q["id"].as_str().unwrap()),
        None,
    )
    .await;
    eventually(20, "dave's message arrives after the fix", || async {
        s.mailbox("internet", "dave@fabrikam.test").len() == 1
    })
    .await;

    // Step 9: Hub 1 is down; the Edge fails over to Hub 2.
    let pid = std::fs::read_to_string(work.join("hub1.pid")).unwrap();
    assert!(
        Command::new("kill")
            .arg(pid.trim())
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..3 {
        assert_eq!(
            s.internet_sends("bob@contoso.test", &format!("failover {i}"))
                .await
                .code,
            250
        );
    }
    eventually(
        30,
        "three more messages in Bob's mailbox on Hub 2",
        || async {
            s.mailbox("hub2", "bob@contoso.test")
                .iter()
                .filter(|m| m.contains("Subject: failover"))
                .count()
                == 3
        },
    )
    .await;

    // Step 11: a permanent failure (no such domain) → an NDR reaches Bob's mailbox, via the Edge and Hub 2.
    let (c, _) = Client::open(&Scenario::ip(41), &format!("{}:2587", Scenario::ip(12))).await;
    let mut c = c
        .starttls(
            "hub02.corp.contoso.test",
            &std::fs::read_to_string(work.join("pki/ca.crt")).unwrap(),
        )
        .await
        .unwrap();
    c.cmd("EHLO bob-laptop").await;
    assert_eq!(
        c.cmd(&format!(
            "AUTH PLAIN {}",
            base64_plain("bob@contoso.test", "Bob-Mailbox-Pass-3")
        ))
        .await
        .code,
        235
    );
    let r = c
        .send_mail(
            "bob@contoso.test",
            &["nobody@nowhere.test"],
            "Subject: to nowhere\r\n\r\nx\r\n",
        )
        .await;
    assert_eq!(r.code, 250);
    eventually(30, "the NDR reaches Bob", || async {
        s.bob()
            .iter()
            .any(|m| m.contains("Subject: Undeliverable: to nowhere"))
    })
    .await;
    let ndr = s
        .bob()
        .into_iter()
        .find(|m| m.contains("Undeliverable: to nowhere"))
        .unwrap();
    assert!(
        ndr.contains("Status: 5.4.4")
            && ndr.contains("Final-Recipient: rfc822; nobody@nowhere.test"),
        "{ndr}"
    );

    // Step 10: the Internet MTA is unreachable: the Edge queue goes to Retry on the schedule.
    s.api("edge", "PATCH", "/transport-settings", Some(json!({"queueGlitchRetryCount": 1, "queueGlitchRetryInterval": "00:00:01",
        "transientFailureRetryCount": 1, "transientFailureRetryInterval": "00:00:02", "outboundConnectionFailureRetryInterval": "00:10:00"}))).await;
    let pid = std::fs::read_to_string(work.join("internet.pid")).unwrap();
    assert!(
        Command::new("kill")
            .arg(pid.trim())
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.bob_sends_via_hub2("erin@fabrikam.test", "mx down")
            .await
            .code,
        250
    );
    eventually(
        30,
        "three failed connections, then the long interval",
        || async {
            s.queue("edge", "fabrikam.test")
                .await
                .is_some_and(|q| q["failures"].as_i64().unwrap_or(0) >= 3)
        },
    )
    .await;
    let q = s.queue("edge", "fabrikam.test").await.unwrap();
    assert_eq!(q["status"], "Retry");
    let next = time::OffsetDateTime::parse(
        q["nextRetryTime"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let wait = next - time::OffsetDateTime::now_utc();
    assert!(
        wait > time::Duration::minutes(9),
        "after glitch and transient retries, the outbound interval (10 min): {wait}"
    );

    // Step 12: queue actions on the Edge. Suspend the queue, then remove the message with an NDR.
    let qid = q["id"].as_str().unwrap().to_string();
    assert_eq!(
        s.api("edge", "POST", &format!("/queues/{qid}/suspend"), None)
            .await["status"],
        "Suspended"
    );
    let msgs = s
        .api("edge", "GET", &format!("/messages?queue={qid}"), None)
        .await;
    let id = msgs["items"][0]["id"].as_i64().unwrap();
    s.api("edge", "DELETE", &format!("/messages/{id}"), None)
        .await;
    eventually(30, "the removal NDR reaches Bob", || async {
        s.bob().iter().any(|m| {
            m.contains("Subject: Undeliverable: mx down")
                && m.contains("deleted by an administrator")
        })
    })
    .await;
    assert_eq!(
        s.api("edge", "POST", &format!("/queues/{qid}/resume"), None)
            .await["status"],
        "Retry"
    );
}

impl Scenario {
    async fn bob_sends_via_hub2(&self, to: &str, subject: &str) -> crate::support::client::Reply {
        let (c, _) = Client::open(&Self::ip(42), &format!("{}:2587", Self::ip(12))).await;
        let mut c = c
            .starttls(
                "hub02.corp.contoso.test",
                &std::fs::read_to_string(self.work.join("pki/ca.crt")).unwrap(),
            )
            .await
            .unwrap();
        c.cmd("EHLO bob-laptop").await;
        assert_eq!(
            c.cmd(&format!(
                "AUTH PLAIN {}",
                base64_plain("bob@contoso.test", "Bob-Mailbox-Pass-3")
            ))
            .await
            .code,
            235
        );
        c.send_mail(
            "bob@contoso.test",
            &[to],
            &format!("Subject: {subject}\r\n\r\nhello\r\n"),
        )
        .await
    }
}
