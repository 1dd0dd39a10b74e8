//! kill -9 while clients stream messages: every message acknowledged with
//! 250 is in the queue after a restart.

use crate::support::client::Client;
use crate::support::process::Running;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const TOKEN: &str = "crash-test-admin-token-0123456789";

fn spawn_ferry(data: &std::path::Path, net: u8, api_port: u16) -> Running {
    // reqwest is built without a TLS provider of its own; the in-process
    // apps install one, but these tests may run before any of them.
    let _ = rustls::crypto::ring::default_provider().install_default();
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--data-dir"])
        .arg(data)
        .args([
            "--fqdn",
            "edge01.contoso.test",
            "--api-listen",
            &format!("127.{net}.0.1:{api_port}"),
        ])
        .args(["--default-smtp-bind", &format!("127.{net}.0.2:2525")])
        .env("FERRY_ADMIN_TOKEN", TOKEN)
        .env("FERRY_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map(Running)
        .expect("the ferry binary runs")
}

async fn wait_healthy(base: &str) {
    for _ in 0..400 {
        if reqwest::get(format!("{base}/healthz"))
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("ferry did not come up at {base}");
}

/// Makes contoso.test an accepted domain of the Ferry at `base`.
async fn accept_contoso(client: &reqwest::Client, base: &str) {
    let r = client
        .post(format!("{base}/api/v1/accepted-domains"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"domainName": "contoso.test"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
}

async fn stream(from: String, to: String, worker: u8, acked: Arc<Mutex<Vec<String>>>) {
    let Ok(mut c) = Client::connect(&from, &to).await else {
        return;
    };
    if c.reply().await.is_none() || c.try_cmd("EHLO crash.test").await.is_none() {
        return;
    }
    for i in 0.. {
        let mid = format!("<crash-{worker}-{i}@crash.test>");
        let body = format!(
            "Message-ID: {mid}\r\nSubject: crash {i}\r\n\r\n{}\r\n",
            "payload ".repeat(64)
        );
        match c
            .try_send_mail("sender@crash.test", &["bob@contoso.test"], &body)
            .await
        {
            Some(r) if r.code == 250 => acked.lock().unwrap().push(mid),
            _ => return,
        }
    }
}

#[tokio::test]
async fn acknowledged_messages_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let net = 250;
    let base = format!("http://127.{net}.0.1:18250");
    let mut child = spawn_ferry(&data, net, 18250);
    wait_healthy(&base).await;
    let client = reqwest::Client::new();
    accept_contoso(&client, &base).await;
    let r = client
        .patch(format!(
            "{base}/api/v1/receive-connectors/Default%20internal%20receive%20connector%20EDGE01"
        ))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"messageRateLimit": "unlimited", "tarpitInterval": "00:00:00"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let tasks: Vec<_> = (0..4u8)
        .map(|w| {
            tokio::spawn(stream(
                format!("127.{net}.0.{}", 30 + w),
                format!("127.{net}.0.2:2525"),
                w,
                acked.clone(),
            ))
        })
        .collect();
    // Let the streams run, then kill the server without warning.
    let mut waited = 0;
    while acked.lock().unwrap().len() < 200 && waited < 200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        waited += 1;
    }
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 20,
        "the clients got going before the kill ({} acknowledged)",
        acked.len()
    );

    // Restart on the same data directory; the queue must hold every acknowledged message.
    let mut child = spawn_ferry(&data, net, 18250);
    wait_healthy(&base).await;
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        data.join("queue.db").display()
    ))
    .await
    .unwrap();
    let ids: Vec<(String,)> = sqlx::query_as("SELECT message_id FROM messages")
        .fetch_all(&pool)
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = ids.into_iter().map(|r| r.0).collect();
    let lost: Vec<&String> = acked.iter().filter(|m| !stored.contains(*m)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost: {lost:?}",
        lost.len(),
        acked.len()
    );
    pool.close().await;

    // SIGTERM: a clean stop within the shutdown deadline, exit status 0.
    let (mut idle, _) =
        Client::open(&format!("127.{net}.0.40"), &format!("127.{net}.0.2:2525")).await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let told = idle.reply().await.expect("idle session hears the shutdown");
    assert_eq!(told.code, 421, "{}", told.line());
    for _ in 0..300 {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit status {status}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    panic!("ferry did not stop within 15 s of SIGTERM");
}

/// Messages' rows reach `queue.db` itself while Ferry runs, with the WAL
/// far below the size at which the writer would checkpoint on its own:
/// the checkpointer copies them beside the writer (issue 22), so a
/// commit, and the 250 waiting on it, does not carry that copy.
#[tokio::test]
async fn the_checkpointer_copies_committed_messages_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let net = crate::support::net::next();
    let base = format!("http://127.{net}.0.1:18251");
    let mut child = spawn_ferry(&data, net, 18251);
    wait_healthy(&base).await;
    accept_contoso(&reqwest::Client::new(), &base).await;
    let mut c = Client::connect(&format!("127.{net}.0.30"), &format!("127.{net}.0.2:2525"))
        .await
        .unwrap();
    c.reply().await.unwrap();
    c.cmd("EHLO checkpoint.test").await;
    for i in 0..20 {
        let body =
            format!("Message-ID: <ckpt-{i}@checkpoint.test>\r\nSubject: {i}\r\n\r\nbody\r\n");
        let r = c
            .send_mail("sender@checkpoint.test", &["bob@contoso.test"], &body)
            .await;
        assert_eq!(r.code, 250, "{}", r.text);
    }
    // The database file alone, copied without its WAL, holds only what a
    // checkpoint has copied into it.
    let copy = tempfile::tempdir().unwrap();
    let mut seen = -1;
    for _ in 0..100 {
        std::fs::copy(data.join("queue.db"), copy.path().join("alone.db")).unwrap();
        let _ = std::fs::remove_file(copy.path().join("alone.db-wal"));
        if let Ok(n) = rusqlite::Connection::open(copy.path().join("alone.db")).and_then(|db| {
            db.query_row(
                "SELECT count(*) FROM messages WHERE message_id LIKE '<ckpt-%'",
                [],
                |r| r.get::<_, i64>(0),
            )
        }) {
            seen = n;
            if n == 20 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let wal = std::fs::metadata(data.join("queue.db-wal")).map_or(0, |m| m.len());
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(seen, 20, "the database file holds every committed message");
    assert!(
        wal < 4_000 * 4096,
        "the WAL ({wal} bytes) is far from the writer's own checkpoint"
    );
}
