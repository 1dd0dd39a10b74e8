//! A bounded fuzz run of the SMTP session: random byte streams and mutations
//! of real sessions, fed in random chunks over an in-memory stream. Every
//! run must end (no hang) without a panic, and every reply line must be
//! well-formed.

use ferry::model::Role;
use ferry::startup::{App, Settings};
use proptest::prelude::*;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: App,
    _dir: tempfile::TempDir,
}

const LOCAL: &str = "127.249.0.1:2525";

fn fixture() -> &'static Arc<Fixture> {
    static F: OnceLock<Arc<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let app = rt.block_on(async {
            let mut s = Settings::for_tests(dir.path().join("data"), Role::Edge);
            s.fqdn = Some("fuzz.contoso.test".into());
            s.default_smtp_bind = LOCAL.parse().unwrap();
            s.default_submission_bind = "127.249.0.1:2587".parse().unwrap();
            let app = App::build(s).await.unwrap();
            let snap = app.config.snapshot();
            let id = snap.receive_connectors[0].id;
            app.config
                .update::<ferry::model::ReceiveConnector>(&id.to_string(), None, |snap, cur| {
                    let mut c = cur.spec.clone();
                    c.tarpit_interval = "00:00:00".parse().unwrap();
                    c.auth_tarpit_interval = "00:00:00".parse().unwrap();
                    c.max_inbound_connection_per_source = ferry::model::Limit::Unlimited;
                    c.max_protocol_errors = ferry::model::Limit::Unlimited;
                    c.message_rate_limit = ferry::model::Limit::Unlimited;
                    c.auth_mechanism
                        .0
                        .push(ferry::model::AuthMechanism::BasicAuth);
                    c.validate(&snap.ctx)?;
                    Ok(ferry::config::Change::of(c))
                })
                .await
                .unwrap();
            app.config
                .create::<ferry::model::AcceptedDomain>(|snap, _| {
                    let d = ferry::model::AcceptedDomain::from_create(
                        &serde_json::json!({"domainName": "contoso.test"}),
                        &snap.ctx,
                        true,
                    )?;
                    Ok(ferry::config::Change::of(d))
                })
                .await
                .unwrap();
            app
        });
        Arc::new(Fixture { rt, app, _dir: dir })
    })
}

/// Feeds `input` in `chunks`-sized pieces, then closes; returns what the server said.
fn run_session(input: Vec<u8>, chunk: usize) -> Vec<u8> {
    let f = fixture();
    let smtp = f.app.smtp.clone();
    f.rt.block_on(async move {
        let (mut client, server) = tokio::io::duplex(64 * 1024);
        let local: SocketAddr = LOCAL.parse().unwrap();
        let remote: SocketAddr = "127.249.0.77:40000".parse().unwrap();
        let session = tokio::spawn(async move { smtp.serve_stream(server, local, remote).await });
        let writer = async {
            for piece in input.chunks(chunk.max(1)) {
                if client.write_all(piece).await.is_err() {
                    break;
                }
            }
            let _ = client.shutdown().await;
            let mut out = vec![];
            let _ = client.read_to_end(&mut out).await;
            out
        };
        let out = tokio::time::timeout(Duration::from_secs(20), writer)
            .await
            .expect("the session ended (no hang)");
        tokio::time::timeout(Duration::from_secs(20), session)
            .await
            .expect("the session task ended")
            .expect("the session did not panic");
        out
    })
}

fn check_replies(out: &[u8]) {
    let text = String::from_utf8_lossy(out);
    assert!(text.starts_with("220 "), "a banner first: {text:?}");
    // After "220 2.0.0 SMTP server ready" the server speaks TLS records.
    let text = match text.find("220 2.0.0 SMTP server ready\r\n") {
        Some(i) => text[..i].to_string(),
        None => text.to_string(),
    };
    for line in text.split_terminator("\r\n") {
        let ok = line.len() >= 3
            && line[..3].bytes().all(|b| b.is_ascii_digit())
            && (line.len() == 3 || matches!(line.as_bytes()[3], b' ' | b'-'));
        assert!(ok, "malformed reply line {line:?} in {text:?}");
    }
}

const SEEDS: &[&[u8]] = &[
    b"EHLO a\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<bob@contoso.test>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n",
    b"EHLO a\r\nMAIL FROM:<a@b.example> BODY=BINARYMIME\r\nRCPT TO:<bob@contoso.test>\r\nBDAT 5 LAST\r\nhelloQUIT\r\n",
    b"EHLO a\r\nAUTH PLAIN AGJvYgBwdw==\r\nAUTH LOGIN\r\nYm9i\r\ncHc=\r\nQUIT\r\n",
    b"HELO a\r\nMAIL FROM:<> SIZE=99999999999\r\nRCPT TO:<postmaster>\r\nDATA\r\n..\r\n\n.\n\r.\r.\r\nRSET\r\nNOOP\r\nVRFY x\r\nHELP\r\n",
    b"EHLO a\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello",
    b"EHLO a\r\nMAIL FROM:<\xc3\xa9@b.example> SMTPUTF8\r\nRCPT TO:<\xc3\xa9@contoso.test>\r\nBDAT 3\r\nabcBDAT 0 LAST\r\n",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_or_hang(input in proptest::collection::vec(any::<u8>(), 0..4096), chunk in 1usize..512) {
        check_replies(&run_session(input, chunk));
    }

    #[test]
    fn mutated_sessions_never_panic_or_hang(
        seed in 0..SEEDS.len(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..12),
        chunk in 1usize..64,
    ) {
        let mut input = SEEDS[seed].to_vec();
        for (at, byte, op) in edits {
            if input.is_empty() { input.push(byte); continue; }
            let i = at.index(input.len());
            match op {
                0 => input[i] = byte,
                1 => input.insert(i, byte),
                _ => { input.remove(i); }
            }
        }
        check_replies(&run_session(input, chunk));
    }
}
