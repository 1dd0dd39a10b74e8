//! AUTH from the Internet: a flood of password guesses costs bounded memory
//! that goes back after the burst, unknown and known users take the same
//! time, and a source that keeps failing is locked out across sessions.

use crate::hostile::process::Ferry;
use crate::support::client::Client;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use std::time::{Duration, Instant};

const PASSWORD: &str = "Hub01-Password-42";

/// An Edge whose connector on 127.N.0.3:2525 offers AUTH in clear to
/// 127.N.0.0/24, with no connection limits in the way of the flood.
async fn edge(net: u8) -> (tempfile::TempDir, Ferry) {
    let dir = tempfile::tempdir().unwrap();
    let f = Ferry::start(&dir.path().join("data"), net).await;
    f.ok(
        "POST",
        "/api/v1/credentials",
        json!({"kind": "Login", "userName": "hub01", "principal": "Server", "password": PASSWORD}),
    )
    .await;
    f.ok("POST", "/api/v1/receive-connectors", json!({
        "name": "auth", "usage": "Custom", "bindings": [format!("{}:2525", f.ip(3))],
        "remoteIpRanges": [format!("127.{net}.0.0/24")], "authMechanism": ["BasicAuth"],
        "permissionGroups": ["ExchangeServers"], "maxInboundConnection": "unlimited",
        "maxInboundConnectionPerSource": "unlimited", "maxInboundConnectionPercentagePerSource": 100,
        "maxLogonFailures": 0, "authTarpitInterval": "00:00:00", "tarpitInterval": "00:00:00",
        "connectionInactivityTimeout": "00:05:00", "connectionTimeout": "00:10:00"})).await;
    (dir, f)
}

fn plain(user: &str, password: &str) -> String {
    STANDARD.encode(format!("\0{user}\0{password}"))
}

async fn try_auth(from: String, to: String, user: &str, password: &str) -> Option<u16> {
    let mut c = Client::connect(&from, &to).await.ok()?;
    c.reply().await?;
    c.try_cmd("EHLO flood.test").await?;
    let r = c
        .try_cmd(&format!("AUTH PLAIN {}", plain(user, password)))
        .await?;
    Some(r.code)
}

#[tokio::test]
async fn an_auth_flood_has_bounded_memory_that_returns_after_the_burst() {
    let (_dir, f) = edge(201).await;
    f.ok(
        "PATCH",
        "/api/v1/transport-settings",
        json!({"authFailureLockoutThreshold": 0}),
    )
    .await;
    // Warm up once so the baseline includes a finished verification.
    try_auth(f.ip(10), format!("{}:2525", f.ip(3)), "hub01", "wrong").await;
    let before = f.status_kib("VmRSS");
    let started = Instant::now();
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let (from, to) = (f.ip(10 + (i % 10) as u8), format!("{}:2525", f.ip(3)));
            let user = if i % 2 == 0 { "hub01" } else { "nobody" };
            tokio::spawn(async move { try_auth(from, to, user, &format!("guess-{i}")).await })
        })
        .collect();
    let mut peak = 0;
    let mut codes = vec![];
    for t in tasks {
        while !t.is_finished() {
            peak = peak.max(f.status_kib("VmRSS"));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        codes.push(t.await.unwrap());
    }
    let took = started.elapsed();
    assert!(
        codes.iter().all(|c| *c == Some(535)),
        "every guess is refused, none dropped: {codes:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = f.status_kib("VmRSS");
    let hwm = f.status_kib("VmHWM");
    eprintln!(
        "AUTH flood, 200 concurrent from 10 sources in {took:?}: RSS {} MiB before, peak {} MiB (high-water {} MiB), {} MiB after",
        before / 1024,
        peak / 1024,
        hwm / 1024,
        after / 1024
    );
    assert!(
        hwm < before + 200 * 1024,
        "peak memory is bounded by the cores, not the flood: {hwm} KiB"
    );
    assert!(
        after < before + 64 * 1024,
        "memory returns after the burst: {after} KiB vs {before} KiB"
    );
}

#[tokio::test]
async fn unknown_and_known_users_fail_in_the_same_time() {
    let (_dir, f) = edge(202).await;
    let to = format!("{}:2525", f.ip(3));
    let time = |user: &'static str, from: String| {
        let to = to.clone();
        async move {
            let mut c = Client::connect(&from, &to).await.unwrap();
            c.reply().await.unwrap();
            c.cmd("EHLO timing.test").await;
            let mut total = Duration::ZERO;
            for i in 0..6 {
                let t = Instant::now();
                let r = c
                    .cmd(&format!(
                        "AUTH PLAIN {}",
                        plain(user, &format!("wrong-{i}"))
                    ))
                    .await;
                total += t.elapsed();
                assert_eq!(r.code, 535);
            }
            total
        }
    };
    let known = time("hub01", f.ip(20)).await;
    let unknown = time("no-such-login", f.ip(21)).await;
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    eprintln!("failed AUTH: known user {known:?}, unknown user {unknown:?} (ratio {ratio:.2})");
    assert!(
        (0.5..2.0).contains(&ratio),
        "an unknown user answers as slowly as a known one"
    );
}

#[tokio::test]
async fn a_source_that_keeps_failing_is_locked_out_across_sessions() {
    let (_dir, f) = edge(203).await;
    f.ok(
        "PATCH",
        "/api/v1/transport-settings",
        json!({"authFailureLockoutThreshold": 3, "authFailureLockoutWindow": "00:10:00"}),
    )
    .await;
    let to = format!("{}:2525", f.ip(3));
    for i in 0..3 {
        // A new session each time: the per-session MaxLogonFailures never trips.
        assert_eq!(
            try_auth(f.ip(30), to.clone(), "hub01", &format!("bad-{i}")).await,
            Some(535)
        );
    }
    assert_eq!(
        try_auth(f.ip(30), to.clone(), "hub01", PASSWORD).await,
        Some(454),
        "even the right password is refused while the source is locked out"
    );
    assert_eq!(
        try_auth(f.ip(31), to.clone(), "hub01", PASSWORD).await,
        Some(235),
        "other sources are not"
    );
    f.ok(
        "PATCH",
        "/api/v1/transport-settings",
        json!({"authFailureLockoutThreshold": 0}),
    )
    .await;
    assert_eq!(
        try_auth(f.ip(30), to, "hub01", PASSWORD).await,
        Some(235),
        "0 turns the lockout off"
    );
}
