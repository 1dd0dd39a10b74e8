//! Observability (issue 9): message tracking events for delivered,
//! deferred-then-delivered and bounced mail, Verbose protocol logs of both
//! directions with no AUTH secret in any file, Prometheus metrics before
//! and after, and retention and rotation under short limits.

use crate::delivery::setup::{Env, env, eventually};
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// `<id@host>` and the internal id from a `250 2.6.0 <id> [InternalId=N] …` reply.
fn ids(reply: &str) -> (String, i64) {
    let start = reply.find('<').expect("a message id");
    let end = reply[start..].find('>').expect("a message id") + start;
    let internal = reply
        .split("InternalId=")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .and_then(|n| n.parse().ok())
        .expect("an internal id");
    (reply[start..=end].to_string(), internal)
}

async fn track(e: &Env, query: &str) -> Vec<Value> {
    let r = e.app.get(&format!("/api/v1/tracking?{query}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["items"].as_array().unwrap().clone()
}

/// Tracks until an event named `until` is among the results.
async fn track_until(e: &Env, query: &str, until: &str) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let events = track(e, query).await;
        if names(&events).iter().any(|n| n == until) {
            return events;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {until} for {query}: {events:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn names(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect()
}

fn enc(s: &str) -> String {
    s.replace('<', "%3C")
        .replace('>', "%3E")
        .replace('@', "%40")
        .replace(' ', "%20")
}

/// Every sample of a Prometheus text exposition, `name{labels}` → value.
async fn metrics(e: &Env) -> HashMap<String, f64> {
    let r = e.app.get("/metrics").await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn m(map: &HashMap<String, f64>, key: &str) -> f64 {
    map.get(key).copied().unwrap_or(0.0)
}

#[tokio::test]
async fn tracking_and_metrics_follow_delivered_deferred_and_bounced_mail() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let sink = Sink::start(
        &format!("{}:2525", e.ip(16)),
        SinkOptions {
            deferrals: 1,
            ..Default::default()
        },
    )
    .await;
    e.connector(
        json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": [e.ip(16)], "port": 2525,
                       "protocolLoggingLevel": "Verbose"}),
    )
    .await;
    // Unauthenticated, /metrics is refused like the rest of the API.
    let anon = reqwest::get(format!("{}/metrics", e.app.base))
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);
    let before = metrics(&e).await;

    let t0 = time::OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let (good, good_id) = ids(&e
        .submit("bob@contoso.test", &["good@fabrikam.test"], "delivered")
        .await);
    let (deferred, _) = ids(&e
        .submit("bob@contoso.test", &["defer-1@fabrikam.test"], "deferred")
        .await);
    let (bounced, _) = ids(&e
        .submit("bob@contoso.test", &["reject-me@fabrikam.test"], "bounced")
        .await);
    eventually(20, "both deliverable messages reach the sink", || async {
        sink.messages().len() == 2
    })
    .await;
    eventually(20, "the NDR reaches bob's mailbox", || async {
        e.maildir("bob@contoso.test").len() == 1
    })
    .await;

    // Delivered: RECEIVE → ROUTE → SEND, each with the facts of its step.
    let events = track_until(&e, &format!("messageId={}", enc(&good)), "SEND").await;
    assert_eq!(names(&events), ["RECEIVE", "ROUTE", "SEND"], "{events:#?}");
    let rx = &events[0];
    assert_eq!(rx["source"], "SMTP");
    assert_eq!(rx["connector"], "Submission");
    assert_eq!(rx["clientIp"], e.ip(30));
    assert_eq!(rx["clientHostname"], "client.test");
    assert_eq!(rx["sender"], "bob@contoso.test");
    assert_eq!(rx["recipients"], json!(["good@fabrikam.test"]));
    assert_eq!(rx["subject"], "delivered");
    assert_eq!(rx["internalId"], good_id);
    assert!(rx["size"].as_i64().unwrap() > 50);
    assert_eq!(rx["session"].as_str().unwrap().len(), 16);
    assert_eq!(events[1]["connector"], "Out");
    assert_eq!(events[1]["nextHop"], format!("[{}]", e.ip(16)));
    let send = &events[2];
    assert_eq!(send["serverIp"], e.ip(16));
    assert!(
        send["detail"].as_str().unwrap().starts_with("250"),
        "{send}"
    );
    assert!(send["time"].as_str().unwrap().ends_with('Z'));

    // Deferred, then delivered on the retry.
    let events = track(&e, &format!("messageId={}", enc(&deferred))).await;
    assert_eq!(
        names(&events),
        ["RECEIVE", "ROUTE", "DEFER", "SEND"],
        "{events:#?}"
    );
    assert!(
        events[2]["detail"].as_str().unwrap().starts_with("451"),
        "{events:#?}"
    );

    // Bounced: FAIL with the remote reply, then a DSN to the sender, and the
    // DSN's own history under its Message-ID.
    let events = track(&e, &format!("messageId={}", enc(&bounced))).await;
    assert_eq!(
        names(&events),
        ["RECEIVE", "ROUTE", "FAIL", "DSN"],
        "{events:#?}"
    );
    assert!(
        events[2]["detail"].as_str().unwrap().contains("550 5.1.1"),
        "{events:#?}"
    );
    assert_eq!(events[3]["recipients"], json!(["bob@contoso.test"]));
    let dsn_id = events[3]["related"].as_str().unwrap().to_string();
    let dsn = track_until(&e, &format!("messageId={}", enc(&dsn_id)), "DELIVER").await;
    assert_eq!(names(&dsn), ["RECEIVE", "ROUTE", "DELIVER"], "{dsn:#?}");
    assert_eq!(dsn[0]["source"], "DSN");
    assert_eq!(dsn[0]["sender"], "");
    assert_eq!(dsn[0]["related"], bounced.as_str());

    // Searches: by recipient, sender + event, connector, time, and paging.
    let by_rcpt = track(&e, "recipient=REJECT-ME%40fabrikam.test").await;
    assert_eq!(names(&by_rcpt), ["RECEIVE", "ROUTE", "FAIL"]);
    let fails = track(&e, "sender=bob%40contoso.test&event=FAIL,DEFER").await;
    let mut got = names(&fails);
    got.sort();
    assert_eq!(got, ["DEFER", "FAIL"], "two messages, in either order");
    let sends = track(&e, "connector=Out&event=SEND").await;
    assert_eq!(sends.len(), 2);
    let future = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert!(
        track(&e, &format!("start={}", enc(&future)))
            .await
            .is_empty()
    );
    let since = t0
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let all = track(&e, &format!("start={}", enc(&since))).await;
    assert!(all.len() >= 14, "{}", all.len());
    let page1 = e.app.get("/api/v1/tracking?limit=2").await.body;
    let cursor = page1["nextCursor"].as_str().unwrap();
    let page2 = e
        .app
        .get(&format!("/api/v1/tracking?limit=2&cursor={cursor}"))
        .await
        .body;
    assert_eq!(
        page1["items"][1]["id"].as_i64().unwrap() + 1,
        page2["items"][0]["id"].as_i64().unwrap()
    );
    e.app
        .get("/api/v1/tracking?event=NOPE")
        .await
        .assert_problem(400, "event");
    e.app
        .get("/api/v1/tracking?start=yesterday")
        .await
        .assert_problem(400, "start");
    e.app
        .get("/api/v1/tracking?limit=0")
        .await
        .assert_problem(400, "limit");

    // The SEND event names the outbound session; its Verbose log is there.
    // The connection is kept open for a next batch, then closed when idle:
    // the log is whole once it has its end.
    let session = send["session"].as_str().unwrap();
    let path = format!("/api/v1/protocol-logs?session={session}");
    eventually(10, "the outbound session is closed", || async {
        let log = e.app.get(&path).await;
        log.body["lines"]
            .as_array()
            .and_then(|l| l.last())
            .is_some_and(|l| l["event"] == "-")
    })
    .await;
    let log = e
        .app
        .get(&format!("/api/v1/protocol-logs?session={session}"))
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let lines = log.body["lines"].as_array().unwrap();
    let ev: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["event"].as_str().unwrap(),
                l["data"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(ev.first().map(String::as_str), Some("+ "), "{ev:#?}");
    assert_eq!(ev.last().map(String::as_str), Some("- "), "{ev:#?}");
    assert!(ev.iter().any(|l| l.starts_with("> EHLO ")), "{ev:#?}");
    assert!(
        ev.iter().any(|l| l == "> RCPT TO:<good@fabrikam.test>"),
        "{ev:#?}"
    );
    assert!(ev.iter().any(|l| l.starts_with("< 250")), "{ev:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l["connectorId"] == "Out" && l["sessionId"] == session)
    );
    assert!(
        lines
            .iter()
            .all(|l| l["remoteEndpoint"] == format!("{}:2525", e.ip(16)))
    );
    let seq: Vec<u64> = lines
        .iter()
        .map(|l| l["sequenceNumber"].as_u64().unwrap())
        .collect();
    assert_eq!(seq, (0..seq.len() as u64).collect::<Vec<_>>());
    e.app
        .get("/api/v1/protocol-logs?session=zz")
        .await
        .assert_problem(400, "session");
    assert_eq!(
        e.app
            .get("/api/v1/protocol-logs?session=0123456789ABCDEF")
            .await
            .status,
        404
    );

    // Metrics moved by exactly what happened.
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"messageRetryInterval": "00:00:02"}),
            None,
        )
        .await;
    let after = metrics(&e).await;
    let d = |k: &str| m(&after, k) - m(&before, k);
    assert_eq!(
        d(r#"ferry_messages_received_total{connector="Submission"}"#),
        3.0
    );
    assert_eq!(d(r#"ferry_messages_delivered_total{connector="Out"}"#), 2.0);
    assert_eq!(d(r#"ferry_messages_deferred_total{connector="Out"}"#), 1.0);
    assert_eq!(d(r#"ferry_messages_failed_total{connector="Out"}"#), 1.0);
    assert_eq!(
        d(r#"ferry_messages_delivered_total{connector="mailbox"}"#),
        1.0
    );
    assert_eq!(
        d(r#"ferry_smtp_connections_total{connector="Submission"}"#),
        3.0
    );
    assert_eq!(d("ferry_delivery_latency_seconds_count"), 3.0);
    assert_eq!(d("ferry_config_reloads_total"), 1.0);
    assert_eq!(d("ferry_config_reload_duration_seconds_count"), 1.0);
    assert_eq!(
        m(&after, r#"ferry_smtp_sessions{connector="Submission"}"#),
        0.0
    );
}

#[tokio::test]
async fn queue_depth_and_admin_actions_are_observed() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    // A smart host that is not there: the message waits in Retry.
    e.connector(
        json!({"name": "Nowhere", "addressSpaces": ["*"], "smartHosts": [e.ip(17)], "port": 2525}),
    )
    .await;
    let (id, internal) = ids(&e
        .submit(
            "bob@contoso.test",
            &["x@fabrikam.test", "y@fabrikam.test"],
            "held",
        )
        .await);
    eventually(10, "the queue is in Retry", || async {
        e.queue(&e.ip(17))
            .await
            .is_some_and(|q| q["status"] == "Retry")
    })
    .await;
    let depth = metrics(&e).await;
    assert_eq!(
        m(
            &depth,
            &format!(
                r#"ferry_queue_messages{{next_hop="[{}]",status="Retry"}}"#,
                e.ip(17)
            )
        ),
        2.0,
        "{depth:#?}"
    );
    for action in ["suspend", "resume", "resubmit"] {
        let r = e
            .app
            .post(&format!("/api/v1/messages/{internal}/{action}"), json!({}))
            .await;
        assert!(r.status.is_success(), "{action}: {}", r.text);
    }
    let r = e
        .app
        .delete(&format!("/api/v1/messages/{internal}?withNdr=false"), None)
        .await;
    assert!(r.status.is_success(), "{}", r.text);
    let events = track_until(&e, &format!("internalId={internal}"), "DELETE").await;
    let n = names(&events);
    for want in [
        "RECEIVE", "ROUTE", "DEFER", "SUSPEND", "RESUME", "RESUBMIT", "DELETE",
    ] {
        assert!(n.contains(&want.to_string()), "{want} missing: {n:?}");
    }
    let defer = events.iter().find(|e| e["event"] == "DEFER").unwrap();
    assert!(
        defer["detail"].as_str().unwrap().contains(&e.ip(17)),
        "{defer}"
    );
    assert!(events.iter().all(|ev| ev["messageId"] == id.as_str()));
    let delete = events.iter().find(|e| e["event"] == "DELETE").unwrap();
    assert_eq!(delete["source"], "ADMIN");
    assert_eq!(
        delete["recipients"],
        json!(["x@fabrikam.test", "y@fabrikam.test"])
    );
}

const LOGIN_PASSWORD: &str = "Rx7-Login-Secret-Word";
const SMARTHOST_PASSWORD: &str = "Tq9-SmartHost-Secret";

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Every byte of every file under `dir`.
fn all_files(dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            all_files(&p, out);
        } else {
            out.push((
                p.display().to_string(),
                std::fs::read(&p).unwrap_or_default(),
            ));
        }
    }
}

#[tokio::test]
async fn verbose_protocol_logs_never_hold_an_auth_secret() {
    if !crate::support::peers::require(&["python3"]) {
        return;
    }
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let sink = Sink::start(
        &format!("{}:2525", e.ip(18)),
        SinkOptions {
            offer_auth: true,
            ..Default::default()
        },
    )
    .await;
    e.app
        .create(
            "/api/v1/credentials",
            json!({"kind": "Login", "userName": "carol@contoso.test", "password": LOGIN_PASSWORD}),
        )
        .await;
    e.app.create("/api/v1/credentials", json!({"name": "relay", "kind": "SmartHost", "userName": "hub01", "password": SMARTHOST_PASSWORD})).await;
    e.connector(
        json!({"name": "Relay", "addressSpaces": ["*"], "smartHosts": [e.ip(18)], "port": 2525,
                       "smartHostAuthMechanism": "BasicAuth", "authenticationCredential": "relay",
                       "protocolLoggingLevel": "Verbose"}),
    )
    .await;
    e.app.create(
        "/api/v1/receive-connectors",
        json!({"name": "Authenticated", "usage": "Custom", "bindings": [e.app.bind(6, 2525)], "remoteIpRanges": [e.ip(31)],
               "authMechanism": ["Tls", "BasicAuth"], "permissionGroups": ["ExchangeUsers"], "protocolLoggingLevel": "Verbose",
               "tarpitInterval": "00:00:00", "authTarpitInterval": "00:00:00"}),
    )
    .await;
    let before = metrics(&e).await;
    // Python's smtplib: STARTTLS, a failed login, then AUTH PLAIN and AUTH LOGIN.
    let script = format!(
        r#"
import smtplib, ssl, sys
ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
def session(mech, password):
    s = smtplib.SMTP("{host}", 2525, source_address=("{src}", 0), timeout=20)
    s.ehlo("client.test"); s.starttls(context=ctx); s.ehlo("client.test")
    s.user, s.password = "carol@contoso.test", password
    s.auth(mech, getattr(s, "auth_" + mech.lower()))
    return s
try:
    session("PLAIN", "wrong-{pw}")
    sys.exit("a wrong password was accepted")
except smtplib.SMTPAuthenticationError:
    pass
for mech in ("PLAIN", "LOGIN"):
    s = session(mech, "{pw}")
    s.sendmail("carol@contoso.test", ["dave@fabrikam.test"], "Subject: via " + mech + "\r\n\r\nhello\r\n")
    s.quit()
print("ok")
"#,
        host = e.ip(6),
        src = e.ip(31),
        pw = LOGIN_PASSWORD
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(20, "both messages reach the smart host", || async {
        sink.messages().len() == 2
    })
    .await;
    let cmds = sink.commands().join("\n");
    assert!(
        cmds.contains("AUTH"),
        "the smart host was authenticated to: {cmds}"
    );

    // The RECEIVE event names the login and the session.
    let rx = track(&e, "connector=Authenticated&event=RECEIVE").await;
    assert_eq!(rx.len(), 2, "{rx:#?}");
    assert_eq!(rx[0]["auth"], "carol@contoso.test");
    assert!(rx[0]["tls"].as_str().unwrap().contains("TLS"), "{}", rx[0]);
    let session = rx[0]["session"].as_str().unwrap();
    let log = e
        .app
        .get(&format!("/api/v1/protocol-logs?session={session}"))
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let lines = log.body["lines"].as_array().unwrap();
    let ev: Vec<String> = lines
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["event"].as_str().unwrap(),
                l["data"].as_str().unwrap()
            )
        })
        .collect();
    // Python writes its verbs in lower case.
    let has = |want: &str| {
        ev.iter()
            .any(|l| l.to_lowercase().starts_with(&want.to_lowercase()))
    };
    assert_eq!(ev[0], "+ ", "{ev:#?}");
    assert!(has("> 220 "), "{ev:#?}");
    assert!(has("< EHLO client.test"), "{ev:#?}");
    assert!(has("> 250-"), "{ev:#?}");
    assert!(has("< STARTTLS"), "{ev:#?}");
    assert!(has("* TLS negotiation succeeded"), "{ev:#?}");
    assert!(has("< AUTH PLAIN ****"), "{ev:#?}");
    assert!(has("> 235 "), "{ev:#?}");
    assert!(has("< MAIL FROM:<carol@contoso.test>"), "{ev:#?}");
    assert!(has("> 250 2.6.0 "), "{ev:#?}");
    assert_eq!(ev.last().unwrap(), "- ", "{ev:#?}");
    let server = e.app.get("/api/v1/server").await.body["serverName"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        lines
            .iter()
            .all(|l| l["connectorId"] == format!("{server}\\Authenticated"))
    );
    assert!(
        lines
            .iter()
            .all(|l| l["localEndpoint"] == format!("{}:2525", e.ip(6)))
    );
    assert!(lines.iter().all(|l| {
        l["remoteEndpoint"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}:", e.ip(31)))
    }));
    let file = lines[0]["file"].as_str().unwrap();
    let today = time::OffsetDateTime::now_utc();
    assert_eq!(
        file,
        format!(
            "RECV{:04}{:02}{:02}-1.log",
            today.year(),
            today.month() as u8,
            today.day()
        )
    );
    let raw = std::fs::read_to_string(
        e.app
            .data_dir()
            .join("logs/ProtocolLog/SmtpReceive")
            .join(file),
    )
    .unwrap();
    assert!(raw.starts_with("#Software: Ferry\r\n"), "{raw}");
    assert!(raw.contains("#Log-type: SMTP Receive Protocol Log\r\n"));
    assert!(raw.contains(
        "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context\r\n"
    ));
    // The AUTH LOGIN session logs its answers as ****.
    let login = &rx[1]["session"];
    let log = e
        .app
        .get(&format!(
            "/api/v1/protocol-logs?session={}",
            login.as_str().unwrap()
        ))
        .await;
    let data: Vec<&str> = log.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["data"].as_str().unwrap())
        .collect();
    // smtplib sends the user name as AUTH LOGIN's initial response, then
    // the password as the answer to the 334: both masked.
    assert!(data.contains(&"AUTH LOGIN ****"), "{data:#?}");
    assert!(data.contains(&"334 UGFzc3dvcmQ6"), "{data:#?}");
    assert_eq!(
        data.iter().filter(|d| **d == "****").count(),
        1,
        "{data:#?}"
    );

    // The send side authenticated to the smart host, masked too.
    let send = track(&e, "connector=Relay&event=SEND").await;
    let log = e
        .app
        .get(&format!(
            "/api/v1/protocol-logs?session={}",
            send[0]["session"].as_str().unwrap()
        ))
        .await;
    let data: Vec<String> = log.body["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["data"].as_str().unwrap().to_string())
        .collect();
    assert!(data.iter().any(|d| d == "AUTH PLAIN ****"), "{data:#?}");

    // No form of either password is in any file under the data directory's
    // logs, nor in the tracking database.
    e.app.get("/api/v1/tracking?limit=1").await;
    let mut files = vec![];
    all_files(&e.app.data_dir().join("logs"), &mut files);
    for f in ["tracking.db", "tracking.db-wal"] {
        let p = e.app.data_dir().join(f);
        if p.exists() {
            files.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    assert!(
        files.len() >= 3,
        "{:?}",
        files.iter().map(|f| &f.0).collect::<Vec<_>>()
    );
    let secrets = [
        LOGIN_PASSWORD.to_string(),
        b64(LOGIN_PASSWORD),
        b64(&format!("\0carol@contoso.test\0{LOGIN_PASSWORD}")),
        b64(&format!("\0carol@contoso.test\0wrong-{LOGIN_PASSWORD}")),
        SMARTHOST_PASSWORD.to_string(),
        b64(SMARTHOST_PASSWORD),
        b64(&format!("\0hub01\0{SMARTHOST_PASSWORD}")),
    ];
    for (name, bytes) in &files {
        for s in &secrets {
            assert!(
                !bytes.windows(s.len()).any(|w| w == s.as_bytes()),
                "{name} holds a secret ({s})"
            );
        }
    }

    let after = metrics(&e).await;
    let d = |k: &str| m(&after, k) - m(&before, k);
    assert_eq!(
        d(r#"ferry_auth_failures_total{connector="Authenticated"}"#),
        1.0
    );
    assert_eq!(
        d(r#"ferry_tls_handshakes_total{direction="inbound",result="ok"}"#),
        3.0
    );
    assert_eq!(
        d(r#"ferry_messages_received_total{connector="Authenticated"}"#),
        2.0
    );
}

#[tokio::test]
async fn retention_and_rotation_with_short_limits() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let s = e.app.get("/api/v1/receive-connectors/Submission").await;
    assert_eq!(s.status, 200, "{}", s.text);
    e.app
        .patch(
            "/api/v1/receive-connectors/Submission",
            json!({"protocolLoggingLevel": "Verbose"}),
            None,
        )
        .await;
    // A file may not be larger than the directory.
    e.app
        .patch("/api/v1/transport-settings", json!({"receiveProtocolLogMaxFileSize": 9000, "receiveProtocolLogMaxDirectorySize": 8192}), None)
        .await
        .assert_problem(422, "receiveProtocolLogMaxFileSize");
    let r = e
        .app
        .patch("/api/v1/transport-settings", json!({"receiveProtocolLogMaxFileSize": 2048, "receiveProtocolLogMaxDirectorySize": 8192}), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let dir = e.app.data_dir().join("logs/ProtocolLog/SmtpReceive");
    let files = || {
        let mut v: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|f| {
                (
                    f.file_name().to_string_lossy().into_owned(),
                    f.metadata().unwrap().len(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let mut max_n = 0;
    for i in 0..25 {
        e.submit(
            "bob@contoso.test",
            &["bob@contoso.test"],
            &format!("rotation {i}"),
        )
        .await;
        e.app
            .get("/api/v1/protocol-logs?session=0000000000000000")
            .await;
        let f = files();
        let total: u64 = f.iter().map(|x| x.1).sum();
        assert!(total <= 8192, "the directory grew to {total}: {f:?}");
        assert!(
            f.iter().all(|x| x.1 <= 2048),
            "a file outgrew its limit: {f:?}"
        );
        for (name, _) in &f {
            let n: u32 = name
                .rsplit_once('-')
                .unwrap()
                .1
                .trim_end_matches(".log")
                .parse()
                .unwrap();
            max_n = max_n.max(n);
        }
    }
    let f = files();
    assert!(max_n >= 6, "rotated into {max_n} files: {f:?}");
    assert!(
        f.len() >= 3 && f.len() < max_n as usize,
        "the oldest files were deleted: {f:?}"
    );
    assert!(!f.iter().any(|x| x.0.ends_with("-1.log")), "{f:?}");

    // MaxAge: closed files go once older than it; the open one stays.
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"receiveProtocolLogMaxAge": "00:00:02"}),
            None,
        )
        .await;
    eventually(10, "only the file being written is left", || async {
        files().len() == 1
    })
    .await;
    assert!(
        files()[0].0.ends_with(&format!("-{max_n}.log")),
        "{:?}",
        files()
    );

    // Tracking retention, and the subject and enabled switches.
    let (id, _) = ids(&e
        .submit("bob@contoso.test", &["bob@contoso.test"], "secret subject")
        .await);
    let q = format!("messageId={}", enc(&id));
    assert_eq!(track(&e, &q).await[0]["subject"], "secret subject");
    e.app
        .patch("/api/v1/transport-settings", json!({"messageTrackingLogMaxAge": "00:00:02", "messageTrackingLogSubjectLoggingEnabled": false}), None)
        .await;
    let (quiet, _) = ids(&e
        .submit("bob@contoso.test", &["bob@contoso.test"], "not recorded")
        .await);
    let events = track(&e, &format!("messageId={}", enc(&quiet))).await;
    assert!(!events.is_empty());
    assert!(
        events.iter().all(|ev| ev["subject"].is_null()),
        "{events:#?}"
    );
    eventually(10, "events older than two seconds are deleted", || async {
        track(&e, &q).await.is_empty()
    })
    .await;
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"messageTrackingLogEnabled": false, "messageTrackingLogMaxAge": "30.00:00:00"}),
            None,
        )
        .await;
    let (off, _) = ids(&e
        .submit("bob@contoso.test", &["bob@contoso.test"], "tracking off")
        .await);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        track(&e, &format!("messageId={}", enc(&off)))
            .await
            .is_empty()
    );
    assert_eq!(e.maildir("bob@contoso.test").len(), 28);
}
