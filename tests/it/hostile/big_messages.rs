//! Messages in DATA go to disk past their first 256 KiB, so memory is
//! bounded by the number of sessions, not by message sizes; and back
//! pressure refuses new mail with 452 4.3.1 before disk or memory run out.

use crate::hostile::process::Ferry;
use crate::support::client::Client;
use serde_json::json;
use std::time::Duration;

const MB: usize = 1024 * 1024;

async fn edge(net: u8) -> (tempfile::TempDir, Ferry) {
    let dir = tempfile::tempdir().unwrap();
    let f = Ferry::start(&dir.path().join("data"), net).await;
    f.ok(
        "POST",
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    f.ok("PATCH", "/api/v1/receive-connectors/Default%20internal%20receive%20connector%20EDGE01",
        json!({"maxMessageSize": 20 * MB, "maxInboundConnection": 200, "maxInboundConnectionPerSource": 100,
               "maxInboundConnectionPercentagePerSource": 100, "tarpitInterval": "00:00:00",
               "messageRateLimit": "unlimited"})).await;
    (dir, f)
}

/// A 10 MB body of numbered lines, so a lost or reordered block shows.
fn body(tag: usize) -> Vec<u8> {
    let mut b = format!("Subject: big {tag}\r\n\r\n").into_bytes();
    let mut i = 0;
    while b.len() < 10 * MB {
        b.extend_from_slice(
            format!("{tag:04} line {i:08} of a large message, padded to length\r\n").as_bytes(),
        );
        i += 1;
    }
    b
}

#[tokio::test]
async fn fifty_unfinished_ten_megabyte_messages_do_not_take_500_mb() {
    let (_dir, f) = edge(211).await;
    let smtp = format!("{}:2525", f.ip(2));
    let before = f.status_kib("VmRSS");
    let mut sessions = vec![];
    for i in 0..50 {
        let (mut c, _) = Client::open(&f.ip(20 + (i % 5) as u8), &smtp).await;
        c.cmd("EHLO big.test").await;
        c.cmd("MAIL FROM:<a@fabrikam.example>").await;
        c.cmd("RCPT TO:<bob@contoso.test>").await;
        assert_eq!(c.cmd("DATA").await.code, 354);
        c.raw(&body(i)).await;
        sessions.push(c);
    }
    // Let the server read everything that was sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = f.status_kib("VmRSS");
    eprintln!(
        "50 sessions each holding an unfinished 10 MB message: RSS {} MiB before, {} MiB while held",
        before / 1024,
        held / 1024
    );
    assert!(
        held < before + 120 * 1024,
        "memory is bounded by sessions, not message size: {held} KiB"
    );
    // Two of them finish; their bodies are queued whole and in order.
    for (i, c) in sessions.iter_mut().enumerate().take(2) {
        let r = c.cmd(".").await;
        assert_eq!(r.code, 250, "{} {}", i, r.text);
    }
    drop(sessions);
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}?mode=ro",
        f.data.join("queue.db").display()
    ))
    .await
    .unwrap();
    let rows: Vec<(Vec<u8>,)> = sqlx::query_as("SELECT body FROM bodies ORDER BY message")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    for (stored,) in rows {
        let tag: usize = String::from_utf8_lossy(&stored)
            .split("Subject: big ")
            .nth(1)
            .and_then(|s| s.split("\r\n").next())
            .and_then(|s| s.parse().ok())
            .expect("the subject survives");
        let sent = body(tag);
        assert!(
            stored.ends_with(&sent),
            "the whole body, in order, after Ferry's own headers"
        );
    }
    let spool: Vec<_> = std::fs::read_dir(f.data.join("spool")).unwrap().collect();
    assert!(spool.is_empty(), "no spill file is left behind: {spool:?}");
}

/// The monitor measures at once after a change; give it a moment.
async fn health_until(f: &Ferry, status: &str) -> serde_json::Value {
    for _ in 0..50 {
        let (_, health) = f.call("GET", "/healthz", None).await;
        if health["status"] == status {
            return health;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("/healthz never said {status}");
}

#[tokio::test]
async fn back_pressure_refuses_new_mail_with_452_and_shows_in_health_and_metrics() {
    let (_dir, f) = edge(212).await;
    let smtp = format!("{}:2525", f.ip(2));
    let try_mail = || async {
        let (mut c, _) = Client::open(&f.ip(20), &smtp).await;
        c.cmd("EHLO bp.test").await;
        c.cmd("MAIL FROM:<a@fabrikam.example>").await
    };
    assert_eq!(try_mail().await.code, 250);
    for (setting, resource) in [
        (json!({"backPressureMinFreeDiskPercent": 100}), "disk"),
        (json!({"backPressureMaxMemory": 1048576}), "memory"),
    ] {
        f.ok("PATCH", "/api/v1/transport-settings", setting).await;
        let health = health_until(&f, "backpressure").await;
        assert_eq!(health["status"], "backpressure", "{health}");
        assert!(
            health["backPressure"].as_str().unwrap().contains(resource),
            "{health}"
        );
        assert_eq!(
            try_mail().await.line(),
            "452 4.3.1 Insufficient system resources"
        );
        let (_, metrics) = f.call("GET", "/metrics", None).await;
        let metrics = metrics.as_str().unwrap().to_string();
        assert!(
            metrics.contains(&format!("ferry_back_pressure{{resource=\"{resource}\"}} 1")),
            "{metrics}"
        );
        f.ok(
            "PATCH",
            "/api/v1/transport-settings",
            json!({"backPressureMinFreeDiskPercent": 0, "backPressureMaxMemory": "unlimited"}),
        )
        .await;
        health_until(&f, "ok").await;
        assert_eq!(try_mail().await.code, 250, "relieved: accepting again");
    }
}
