//! A fleet sharing one configuration in PostgreSQL (issue 21 part 1):
//! three servers in this process, each with its own SQLite copy, following
//! one private PostgreSQL. A receive connector created through one answers
//! on the two others; with PostgreSQL stopped every server keeps accepting
//! mail and refuses changes with 503; when it returns they converge.

use std::time::{Duration, Instant};

use crate::support::app::TestApp;
use crate::support::client::Client;
use crate::support::postgres::Postgres;
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::{Value, json};

const KEY: &str = "c2hhcmVkLWZsZWV0LXNlY3JldC1rZXktMzItYnl0ZXM=";

async fn node(name: &str, url: &str) -> TestApp {
    let (name, url) = (name.to_string(), url.to_string());
    TestApp::spawn_with(Role::Edge, move |s| {
        s.fqdn = Some(format!("{}.contoso.test", name.to_lowercase()));
        s.server_name = Some(name);
        s.config_store = Some(url);
        // Every server of a fleet is given the same key.
        s.secret_key = Some(KEY.into());
    })
    .await
}

fn ip(app: &TestApp, host: u8) -> String {
    app.bind(host, 1).rsplit_once(':').unwrap().0.to_string()
}

/// Waits for an SMTP banner at `addr` (from `from`); how long it took.
async fn banner_within(from: &str, addr: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if let Ok(mut c) = Client::connect(from, addr).await
            && let Some(r) = c.reply().await
            && r.code == 220
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "no banner at {addr} within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn eventually(what: &str, limit: Duration, mut check: impl AsyncFnMut() -> bool) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends one message to `rcpt` through `addr`; the final reply code.
async fn send(from_ip: &str, addr: &str, rcpt: &str) -> u16 {
    let mut c = Client::connect(from_ip, addr).await.unwrap();
    c.reply().await.expect("a banner");
    assert_eq!(c.cmd("EHLO client.test").await.code, 250);
    c.send_mail(
        "alice@partner.test",
        &[rcpt],
        "Subject: fleet\r\n\r\nhello\r\n",
    )
    .await
    .code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_follow_one_configuration_and_keep_taking_mail_without_postgres() {
    let pg_net = crate::support::net::next();
    let Some(pg) = Postgres::start(&format!("127.{pg_net}.0.5"), 5432) else {
        return;
    };
    let a = node("EDGE01", &pg.url).await;
    let b = node("EDGE02", &pg.url).await;
    let c = node("EDGE03", &pg.url).await;

    // The registry: three servers, alive, at the same revision.
    let mut servers = Value::Null;
    eventually(
        "three servers in the registry",
        Duration::from_secs(10),
        async || {
            servers = a.get("/api/v1/servers").await.body;
            servers["items"].as_array().is_some_and(|i| i.len() == 3)
        },
    )
    .await;
    assert_eq!(servers["configStore"], "postgres");
    assert_eq!(servers["connected"], true);
    let names: Vec<&str> = servers["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["EDGE01", "EDGE02", "EDGE03"]);
    assert!(
        servers["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["alive"] == true && s["role"] == "Edge")
    );

    // A named API token made through A works on B and C; revoked through
    // C, it stops working on A.
    let ops = a
        .create(
            "/api/v1/api-tokens",
            json!({"name": "ops", "role": "View-Only"}),
        )
        .await;
    let secret = ops["secret"].as_str().unwrap().to_string();
    for n in [&b, &c] {
        eventually("the token everywhere", Duration::from_secs(5), async || {
            n.request_as(Some(&secret), "GET", "/api/v1/accepted-domains", None, None)
                .await
                .status
                == StatusCode::OK
        })
        .await;
    }
    assert_eq!(
        c.request("DELETE", "/api/v1/api-tokens/ops", None, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    eventually(
        "the revocation everywhere",
        Duration::from_secs(5),
        async || {
            a.request_as(Some(&secret), "GET", "/api/v1/accepted-domains", None, None)
                .await
                .status
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;

    // The fleet's accepted domain, created through B, is on A and C.
    b.create(
        "/api/v1/accepted-domains",
        json!({"name": "Contoso", "domainName": "contoso.test"}),
    )
    .await;
    for n in [&a, &c] {
        eventually(
            "the accepted domain everywhere",
            Duration::from_secs(5),
            async || n.get("/api/v1/accepted-domains/Contoso").await.status == StatusCode::OK,
        )
        .await;
    }

    // A receive connector created through A, with each server's own
    // address: it answers on B and C.
    let (ab, bb, cb) = (a.bind(1, 2690), b.bind(1, 2690), c.bind(1, 2690));
    let client = ip(&a, 9);
    let r = a
        .post(
            "/api/v1/receive-connectors",
            json!({"name": "Partners", "usage": "Custom", "permissionGroups": ["AnonymousUsers"], "bindings": [ab],
                   "serverBindings": {"EDGE02": [bb], "EDGE03": [cb]},
                   "remoteIpRanges": ["127.0.0.0/8"]}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    let on_b = banner_within(&client, &bb, Duration::from_secs(5)).await;
    let on_c = banner_within(&client, &cb, Duration::from_secs(5)).await;
    eprintln!("the new connector answered on EDGE02 after {on_b:?} and on EDGE03 after {on_c:?}");
    banner_within(&client, &ab, Duration::from_secs(1)).await;
    let seen = b.get("/api/v1/receive-connectors/Partners").await.body;
    assert_eq!(seen["serverBindings"]["EDGE03"], json!([cb]));

    // The fleet's next hop for its domains, created through C.
    let sink = Sink::start(&a.bind(11, 2525), SinkOptions::default()).await;
    let r = c
        .post(
            "/api/v1/send-connectors",
            json!({"name": "To Hub", "addressSpaces": ["--"], "smartHosts": [ip(&a, 11)], "port": 2525}),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for n in [&a, &b] {
        eventually(
            "the send connector everywhere",
            Duration::from_secs(5),
            async || n.get("/api/v1/send-connectors/To Hub").await.status == StatusCode::OK,
        )
        .await;
    }

    // The queue viewer for one server, or all of them, from any server.
    let q = a.get("/api/v1/queues?server=EDGE02").await;
    assert_eq!(q.status, StatusCode::OK, "{}", q.text);
    let items = q.body["items"].as_array().unwrap();
    assert!(
        !items.is_empty()
            && items
                .iter()
                .all(|i| i["server"] == "EDGE02" && i["asOf"].is_string()),
        "{}",
        q.text
    );
    let all = a.get("/api/v1/queues?server=all").await.body;
    let mut seen: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["server"].as_str().unwrap())
        .collect();
    seen.dedup();
    assert_eq!(seen, ["EDGE01", "EDGE02", "EDGE03"]);
    assert_eq!(
        a.get("/api/v1/queues?server=EDGE09").await.status,
        StatusCode::NOT_FOUND
    );

    // PostgreSQL stops: every server keeps accepting and delivering mail
    // on the configuration in force, and refuses changes with 503.
    pg.stop();
    for addr in [&ab, &bb, &cb] {
        assert_eq!(send(&client, addr, "bob@contoso.test").await, 250, "{addr}");
    }
    eventually(
        "three messages delivered without PostgreSQL",
        Duration::from_secs(20),
        async || sink.messages().len() == 3,
    )
    .await;
    let r = c
        .post(
            "/api/v1/accepted-domains",
            json!({"name": "Fabrikam", "domainName": "fabrikam.test"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert!(r.text.contains("PostgreSQL"), "{}", r.text);
    assert_eq!(
        c.get("/api/v1/accepted-domains/Fabrikam").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get("/api/v1/servers").await.status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let r = b
        .post(
            "/api/v1/api-tokens",
            json!({"name": "late", "role": "View-Only"}),
        )
        .await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(
        b.get("/api/v1/api-tokens/late").await.status,
        StatusCode::NOT_FOUND
    );

    // It returns: they reconnect, and a change through C reaches A and B.
    pg.restart();
    let mut r = c
        .post(
            "/api/v1/accepted-domains",
            json!({"name": "Fabrikam", "domainName": "fabrikam.test"}),
        )
        .await;
    let start = Instant::now();
    while r.status == StatusCode::SERVICE_UNAVAILABLE && start.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        r = c
            .post(
                "/api/v1/accepted-domains",
                json!({"name": "Fabrikam", "domainName": "fabrikam.test"}),
            )
            .await;
    }
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
    for n in [&a, &b] {
        eventually(
            "the change made after PostgreSQL returned everywhere",
            Duration::from_secs(10),
            async || n.get("/api/v1/accepted-domains/Fabrikam").await.status == StatusCode::OK,
        )
        .await;
    }
    // All at one revision, and the same configuration.
    eventually(
        "one revision everywhere",
        Duration::from_secs(10),
        async || {
            let s = a.get("/api/v1/servers").await.body;
            s["items"]
                .as_array()
                .is_some_and(|i| i.len() == 3 && i.iter().all(|x| x["revision"] == s["revision"]))
        },
    )
    .await;
    let shared = |v: Value| {
        let mut v = v;
        v.as_object_mut().unwrap().retain(|k, _| {
            !["certificates", "transportSettings", "acmeCertificates"].contains(&k.as_str())
        });
        v
    };
    let doc_a = shared(a.get("/api/v1/config").await.body);
    assert_eq!(doc_a, shared(b.get("/api/v1/config").await.body));
    assert_eq!(doc_a, shared(c.get("/api/v1/config").await.body));
}

/// Changes sent through two servers at once: each is either made (201) or
/// refused because the other server wrote first (409, nothing made); in
/// the end both servers hold exactly the changes that were made.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_through_two_servers_end_in_one_configuration() {
    let pg_net = crate::support::net::next();
    let Some(pg) = Postgres::start(&format!("127.{pg_net}.0.5"), 5432) else {
        return;
    };
    let a = node("EDGE01", &pg.url).await;
    let b = node("EDGE02", &pg.url).await;
    async fn post(app: &TestApp, i: usize, who: &str) -> StatusCode {
        let body =
            json!({"name": format!("{who}{i}"), "domainName": format!("{who}{i}.contoso.test")});
        app.post("/api/v1/accepted-domains", body).await.status
    }
    let mut made = std::collections::BTreeSet::new();
    let (mut created, mut conflicts) = (0, 0);
    for i in 0..30 {
        let (ra, rb) = tokio::join!(post(&a, i, "a"), post(&b, i, "b"));
        for (who, status) in [("a", ra), ("b", rb)] {
            match status {
                StatusCode::CREATED => {
                    created += 1;
                    made.insert(format!("{who}{i}"));
                }
                StatusCode::CONFLICT => conflicts += 1,
                other => panic!("{who}{i}: {other}"),
            }
        }
    }
    eprintln!("{created} made, {conflicts} refused with 409");
    assert!(created >= 30, "at least one of each pair is made");
    for n in [&a, &b] {
        let mut names = std::collections::BTreeSet::new();
        eventually(
            "one configuration on both",
            Duration::from_secs(10),
            async || {
                names = n.get("/api/v1/accepted-domains").await.body["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["name"].as_str().unwrap().to_string())
                    .collect();
                names == made
            },
        )
        .await;
    }
    drop(pg);
}
