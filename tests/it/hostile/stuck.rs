//! A client that pipelines megabytes of commands and never reads a reply
//! blocks the server's writes; the session's timeouts must still end it and
//! free its connection slot.

use crate::support::app::TestApp;
use ferry::model::Role;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

async fn banner_code(from: &str, to: &str) -> Option<u16> {
    let mut c = crate::support::client::Client::connect(from, to)
        .await
        .ok()?;
    c.reply().await.map(|r| r.code)
}

#[tokio::test]
async fn a_client_that_never_reads_loses_its_session_at_the_inactivity_timeout() {
    let app = TestApp::spawn(Role::Edge).await;
    let to = app.bind(7, 2525);
    let from = format!("127.{}.0.20", app.net);
    app.create(
        "/api/v1/receive-connectors",
        json!({"name": "one slot", "usage": "Custom", "bindings": [to], "remoteIpRanges": [format!("127.{}.0.0/24", app.net)],
               "permissionGroups": ["AnonymousUsers"], "maxInboundConnection": 1, "tarpitInterval": "00:00:00",
               "maxProtocolErrors": "unlimited", "connectionInactivityTimeout": "00:00:03", "connectionTimeout": "00:00:06"}),
    )
    .await;
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let stream = socket.connect(to.parse().unwrap()).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let noops = b"NOOP\r\n".repeat(800_000);
        let _ = wr.write_all(&noops).await;
        wr
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        banner_code(&from, &to).await,
        Some(421),
        "the stuck session holds the only slot for now"
    );
    let mut freed = None;
    while started.elapsed() < Duration::from_secs(20) {
        if banner_code(&from, &to).await == Some(220) {
            freed = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let freed = freed.expect("the slot is freed within the timeouts");
    eprintln!("a client that never reads was dropped after {freed:?}");
    assert!(freed < Duration::from_secs(8), "{freed:?}");
    // The server closed: reading what it wrote ends in EOF or a reset.
    let mut sink = vec![0u8; 1 << 16];
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rd.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the connection was closed by the server");
    writer.abort();
}
