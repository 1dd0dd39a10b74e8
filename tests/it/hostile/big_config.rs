//! A connector with 100,000 remote ranges on a binding another connector
//! also holds with 100,000: validated near-linearly, off the async workers,
//! while health checks and SMTP banners keep answering.

use crate::hostile::process::Ferry;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// 100,000 single addresses in 11.0.0.0/8 (IPv4) and 2001:db8::/32 (IPv6), `offset` apart.
fn ranges(offset: u32) -> Vec<String> {
    (0..100_000u32)
        .map(|i| {
            if i % 2 == 0 {
                std::net::Ipv4Addr::from(0x0B00_0000 + i * 4 + offset).to_string()
            } else {
                std::net::Ipv6Addr::from(0x2001_0db8_u128 << 96 | (i as u128) << 1 | offset as u128)
                    .to_string()
            }
        })
        .collect()
}

#[tokio::test]
async fn two_connectors_of_100000_ranges_on_one_binding_do_not_freeze_the_appliance() {
    let dir = tempfile::tempdir().unwrap();
    let f = Arc::new(Ferry::start(&dir.path().join("data"), 204).await);
    let binding = format!("{}:2526", f.ip(2));
    let body = |name: &str, offset: u32| {
        json!({"name": name, "usage": "Custom", "bindings": [binding], "remoteIpRanges": ranges(offset),
               "permissionGroups": ["AnonymousUsers"]})
    };
    f.ok("POST", "/api/v1/receive-connectors", body("first", 0))
        .await;

    // Probe /healthz and the SMTP banner of the default connector while
    // the second connector is saved.
    let done = Arc::new(AtomicBool::new(false));
    let probe = {
        let (f, done) = (f.clone(), done.clone());
        tokio::spawn(async move {
            let mut worst = Duration::ZERO;
            let mut n = 0;
            while !done.load(Ordering::SeqCst) {
                let t = Instant::now();
                assert_eq!(f.healthz().await, Some(reqwest::StatusCode::OK));
                let smtp = format!("{}:2525", f.ip(2));
                let mut c = crate::support::client::Client::connect(&f.ip(30), &smtp)
                    .await
                    .unwrap();
                assert_eq!(c.reply().await.unwrap().code, 220);
                worst = worst.max(t.elapsed());
                n += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (worst, n)
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    let (status, v) = f
        .call(
            "POST",
            "/api/v1/receive-connectors",
            Some(body("second", 1)),
        )
        .await;
    let saved = t.elapsed();
    assert_eq!(status, 201, "{v}");
    // A conflicting third one is refused just as fast, naming a few ranges.
    let t = Instant::now();
    let (status, v) = f
        .call("POST", "/api/v1/receive-connectors", Some(body("third", 0)))
        .await;
    let refused = t.elapsed();
    assert_eq!(status, 422);
    assert!(v.to_string().contains("more conflicting ranges"), "{v}");
    done.store(true, Ordering::SeqCst);
    let (worst, probes) = probe.await.unwrap();
    eprintln!(
        "100,000 + 100,000 ranges on one binding: saved in {saved:?}, conflict refused in {refused:?}; \
         {probes} health+banner probes meanwhile, slowest {worst:?} (debug build)"
    );
    assert!(saved < Duration::from_secs(15), "{saved:?}");
    assert!(probes > 0 && worst < Duration::from_secs(2), "{worst:?}");
}
