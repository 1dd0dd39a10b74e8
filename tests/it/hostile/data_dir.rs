//! The data directory is Ferry's alone and is trusted only when whole: a
//! second process is refused, a lost secret key is never silently replaced,
//! and a damaged queue stops acceptance instead of swallowing mail.

use crate::hostile::process::{Ferry, command};
use crate::support::client::Client;
use serde_json::json;
use std::time::Duration;

/// Runs `ferry serve` expecting it to refuse to start; returns its stderr.
fn refused(data: &std::path::Path, net: u8, extra: &[&str]) -> String {
    use std::io::Read;
    let mut child = command(data, net)
        .args(extra)
        .spawn()
        .expect("the ferry binary runs");
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("Ferry started although it should have refused");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "Ferry should refuse to start: {err}");
    err
}

fn stop(f: Ferry) {
    let pid = f.child.id().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let mut f = f;
    let _ = f.child.wait();
}

#[tokio::test]
async fn a_second_process_on_the_same_data_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Ferry::start(&data, 205).await;
    let err = refused(&data, 206, &[]);
    assert!(err.contains("is in use by another Ferry"), "{err}");
    assert!(
        err.contains(&format!("process {}", first.child.id())),
        "names the holder: {err}"
    );
    // The first one is untouched and still answers.
    assert_eq!(first.healthz().await, Some(reqwest::StatusCode::OK));
    stop(first);
    // Once it has stopped, the directory is free again.
    let again = Ferry::start(&data, 206).await;
    assert_eq!(again.healthz().await, Some(reqwest::StatusCode::OK));
}

#[tokio::test]
async fn a_deleted_secret_key_is_not_silently_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = Ferry::start(&data, 207).await;
    f.ok("POST", "/api/v1/credentials",
        json!({"name": "relay", "kind": "SmartHost", "userName": "edge", "password": "Smart-Host-Pass-1"})).await;
    let (_, certs) = f.call("GET", "/api/v1/certificates", None).await;
    let with_keys = certs["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["hasPrivateKey"] == true)
        .count();
    assert!(
        with_keys > 0,
        "the self-signed certificate has its key: {certs}"
    );
    stop(f);

    std::fs::remove_file(data.join("secret.key")).unwrap();
    let err = refused(&data, 207, &[]);
    assert!(err.contains("secret.key is missing"), "{err}");
    assert!(
        err.contains("private keys of stored certificates"),
        "says what it protects: {err}"
    );
    assert!(
        err.contains("--discard-undecryptable-secrets"),
        "says how to go on: {err}"
    );
    assert!(!data.join("secret.key").exists(), "nothing was generated");

    // Knowingly: a new key, and the private keys it cannot open are dropped.
    let mut c = command(&data, 207);
    c.arg("--discard-undecryptable-secrets");
    let child = c.spawn().unwrap();
    let f = Ferry::adopt(child, &data, 207).await;
    let (_, certs) = f.call("GET", "/api/v1/certificates", None).await;
    assert!(
        certs["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["hasPrivateKey"] == false),
        "no certificate claims a key it cannot use: {certs}"
    );
    assert!(data.join("secret.key").exists());
}

/// Moves everything from the WAL into the file itself.
async fn checkpoint(path: &std::path::Path) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

/// Overwrites every page of a SQLite file but the first with garbage.
fn damage(path: &std::path::Path) {
    let len = std::fs::metadata(path).unwrap().len() as usize;
    let mut bytes = std::fs::read(path).unwrap();
    for (i, b) in bytes.iter_mut().enumerate().take(len).skip(4096) {
        *b = (i * 7 % 251) as u8;
    }
    std::fs::write(path, bytes).unwrap();
}

#[tokio::test]
async fn a_damaged_queue_refuses_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = Ferry::start(&data, 208).await;
    stop(f);
    checkpoint(&data.join("queue.db")).await;
    damage(&data.join("queue.db"));
    let err = refused(&data, 208, &[]);
    assert!(err.contains("queue.db is damaged"), "{err}");
    assert!(err.contains(".recover"), "gives the recovery steps: {err}");
}

#[tokio::test]
async fn a_queue_damaged_at_run_time_turns_acceptance_into_451_and_health_into_failing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let f = Ferry::start(&data, 209).await;
    f.ok(
        "POST",
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    // Enough messages that the queue spans many pages.
    let smtp = format!("{}:2525", f.ip(2));
    let (mut c, _) = Client::open(&f.ip(20), &smtp).await;
    c.cmd("EHLO mta.test").await;
    for i in 0..40 {
        let body = format!("Subject: m{i}\r\n\r\n{}\r\n", "x".repeat(2000));
        assert_eq!(
            c.send_mail("a@fabrikam.example", &["bob@contoso.test"], &body)
                .await
                .code,
            250
        );
    }
    // Checkpoint the WAL into the file, then damage it under the running server.
    checkpoint(&data.join("queue.db")).await;
    damage(&data.join("queue.db"));
    let mut failing = None;
    for _ in 0..100 {
        let r = reqwest::get(format!("{}/healthz", f.base)).await.unwrap();
        if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            failing = Some(r.text().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failing = failing.expect("health turns failing");
    assert!(failing.contains("queue.db"), "{failing}");
    let r = c
        .send_mail(
            "a@fabrikam.example",
            &["bob@contoso.test"],
            "Subject: after\r\n\r\nhi\r\n",
        )
        .await;
    assert_eq!(
        r.code, 451,
        "no 250 for mail the queue cannot keep: {}",
        r.text
    );
}
