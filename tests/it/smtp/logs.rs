//! The real binary with `--log-format json`: one JSON object per line, the
//! session id (and connector, peer) on every line of an SMTP session, the
//! Message-ID on the RECEIVE line; and `--metrics-listen` serving /metrics
//! without a token.

use crate::support::client::Client;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const TOKEN: &str = "json-logs-admin-token-0123456789";

#[tokio::test]
async fn json_logs_carry_the_session_and_message_ids() {
    // reqwest is built without a TLS provider of its own; the in-process
    // apps install one, but this test may run before any of them.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let net = 247;
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["serve", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(["--fqdn", "edge01.contoso.test", "--log-format", "json"])
        .args(["--api-listen", &format!("127.{net}.0.1:18247")])
        .args(["--metrics-listen", &format!("127.{net}.0.1:19247")])
        .args(["--default-smtp-bind", &format!("127.{net}.0.2:2525")])
        .env("FERRY_ADMIN_TOKEN", TOKEN)
        .env("FERRY_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map(crate::support::process::Running)
        .expect("the ferry binary runs");
    let base = format!("http://127.{net}.0.1:18247");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..400 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(up, "ferry did not come up");
    let r = http
        .post(format!("{base}/api/v1/accepted-domains"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({"domainName": "contoso.test"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (mut c, _) = Client::open(&format!("127.{net}.0.9"), &format!("127.{net}.0.2:2525")).await;
    c.cmd("EHLO sender.fabrikam.test").await;
    let r = c
        .send_mail(
            "alice@fabrikam.test",
            &["bob@contoso.test"],
            "Subject: json\r\n\r\nhello\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.text);
    let message_id = r.text.split_whitespace().nth(1).unwrap().to_string();
    c.cmd("QUIT").await;

    // Without a token on the metrics address; with one on the API's.
    let m = http
        .get(format!("http://127.{net}.0.1:19247/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(m.status(), 200);
    let text = m.text().await.unwrap();
    assert!(
        text.contains(r#"ferry_messages_received_total{connector="Default internal receive connector EDGE01"} 1"#),
        "{text}"
    );
    assert_eq!(
        http.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        http.get(format!("http://127.{net}.0.1:19247/api/v1/server"))
            .send()
            .await
            .unwrap()
            .status(),
        404,
        "the metrics address serves nothing else"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.stdout.take().unwrap();
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(out).lines().map_while(Result::ok).collect()
    })
    .await
    .unwrap();
    assert!(child.wait().unwrap().success());

    let json: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        json.iter()
            .all(|j| j["timestamp"].is_string() && j["level"].is_string())
    );
    let receive = json
        .iter()
        .find(|j| j["message"] == "RECEIVE")
        .unwrap_or_else(|| panic!("no RECEIVE line: {lines:#?}"));
    assert_eq!(receive["message_id"], message_id.as_str(), "{receive}");
    let session = receive["span"]["session"].as_str().unwrap();
    assert_eq!(session.len(), 16, "{receive}");
    assert_eq!(
        receive["span"]["connector"],
        "Default internal receive connector EDGE01"
    );
    assert!(
        receive["span"]["remote"]
            .as_str()
            .unwrap()
            .starts_with(&format!("127.{net}.0.9:"))
    );
    // Every line logged inside a session names it.
    for j in json.iter().filter(|j| j["span"]["name"] == "smtp") {
        assert_eq!(j["span"]["session"], session, "{j}");
    }
}
