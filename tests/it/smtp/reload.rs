//! Hot reload: configuration changes reach the listeners by the time the API
//! call returns, without touching sessions in flight.

use crate::support::client::Client;
use crate::support::scenario::{edge, queued};
use ferry::smtp::replies;
use serde_json::json;

#[tokio::test]
async fn changes_apply_to_the_next_session_and_listeners_follow_the_api() {
    let e = edge().await;
    let app = &e.app;
    // A session open on A (From Internet) under the old limit.
    let (mut old, _) = Client::open(&e.internet, &e.e3()).await;
    assert!(old.cmd("EHLO mta").await.text.contains("SIZE 10485760"));

    let r = app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"maxMessageSize": 20971520}),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let b_addr = format!("{}:2700", e.external);
    let b = app
        .post("/api/v1/receive-connectors", json!({"name": "B", "usage": "Custom", "bindings": [b_addr.clone()],
            "remoteIpRanges": ["0.0.0.0/0"], "permissionGroups": ["AnonymousUsers"], "fqdn": "b.contoso.test",
            "tarpitInterval": "00:00:00"}))
        .await;
    assert_eq!(b.status, 201, "{}", b.text);
    assert_eq!(b.body["listeners"][0]["state"], "Listening");
    // B accepts at once.
    let (mut on_b, banner) = Client::open(&e.internet, &b_addr).await;
    assert!(banner.text.starts_with("b.contoso.test"), "{}", banner.text);

    // A's open session keeps its old limit; A's next session has the new one.
    assert_eq!(
        old.cmd("MAIL FROM:<a@fabrikam.example> SIZE=15000000")
            .await
            .line(),
        replies::SIZE_EXCEEDED.to_line(true).trim_end()
    );
    let (mut new, _) = Client::open(&e.internet, &e.e3()).await;
    assert!(new.cmd("EHLO mta").await.text.contains("SIZE 20971520"));
    assert_eq!(
        new.cmd("MAIL FROM:<a@fabrikam.example> SIZE=15000000")
            .await
            .code,
        250
    );

    // A message in flight on B while B is deleted.
    on_b.cmd("EHLO mta").await;
    on_b.cmd("MAIL FROM:<a@fabrikam.example>").await;
    on_b.cmd("RCPT TO:<bob@contoso.test>").await;
    assert_eq!(on_b.cmd("DATA").await.code, 354);
    on_b.raw(b"Subject: in flight\r\n\r\nfirst half\r\n").await;
    assert_eq!(
        app.delete("/api/v1/receive-connectors/B", None)
            .await
            .status,
        204
    );
    // B's listener is closed when the DELETE returns. Other tests in this
    // process spawn programs, and a child holds every descriptor of the
    // process (this socket too) between its fork and its exec: a connection
    // can be accepted by that copy for a moment. Ferry spawns nothing, so
    // allow the test process that moment (at most a second).
    let mut refused = Client::connect(&e.internet, &b_addr).await.is_err();
    for _ in 0..10 {
        if refused {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        refused = Client::connect(&e.internet, &b_addr).await.is_err();
    }
    assert!(refused, "B's listener is closed when the DELETE returns");
    on_b.raw(b"second half\r\n.\r\n").await;
    assert_eq!(
        on_b.reply().await.unwrap().code,
        250,
        "the in-flight message completes"
    );
    assert!(
        queued(&e.app)
            .await
            .iter()
            .any(|m| m.3.contains("second half"))
    );
}

#[tokio::test]
async fn an_unbindable_binding_is_refused_with_the_os_error() {
    let e = edge().await;
    let taken = format!("{}:2800", e.external);
    let _squatter = std::net::TcpListener::bind(&taken).unwrap();
    let before = e.app.get("/api/v1/server").await.body["configGeneration"].clone();
    let r = e
        .app
        .post(
            "/api/v1/receive-connectors",
            json!({"name": "C", "usage": "Custom", "bindings": [taken],
            "remoteIpRanges": ["0.0.0.0/0"], "permissionGroups": ["AnonymousUsers"]}),
        )
        .await;
    r.assert_problem(422, "bindings[0]");
    assert!(r.text.contains("Address already in use"), "{}", r.text);
    assert_eq!(
        e.app.get("/api/v1/receive-connectors/C").await.status,
        404,
        "nothing was stored"
    );
    assert_eq!(
        e.app.get("/api/v1/server").await.body["configGeneration"],
        before
    );
    // Moving an existing connector onto it is refused too, and it keeps listening where it was.
    let r = e
        .app
        .patch(
            "/api/v1/receive-connectors/From%20Internet",
            json!({"bindings": [format!("{}:2800", e.external)]}),
            None,
        )
        .await;
    r.assert_problem(422, "bindings[0]");
    assert_eq!(Client::open(&e.internet, &e.e3()).await.1.code, 220);
}

#[tokio::test]
async fn a_listener_that_fails_at_start_is_reported_and_the_rest_runs() {
    let mut e = edge().await;
    e.app.app.take().unwrap().stop().await.unwrap();
    let _squatter = std::net::TcpListener::bind(e.e4()).unwrap();
    let app = ferry::startup::App::build(e.app.settings.clone())
        .await
        .expect("starts despite the taken port");
    e.app.base = format!("http://{}", app.api_addr);
    e.app.app = Some(app);
    let hub = e.app.get("/api/v1/receive-connectors/From%20Hub").await;
    assert_eq!(hub.body["listeners"][0]["state"], "Failed", "{}", hub.text);
    assert!(
        hub.body["listeners"][0]["error"]
            .as_str()
            .unwrap()
            .contains("in use")
    );
    assert_eq!(
        Client::open(&e.internet, &e.e3()).await.1.code,
        220,
        "E3 still serves"
    );
    // An unrelated change is not blocked by the failed binding.
    assert_eq!(
        e.app
            .patch(
                "/api/v1/receive-connectors/From%20Internet",
                json!({"maxHopCount": 40}),
                None
            )
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn shutdown_tells_idle_sessions_and_lets_busy_ones_finish() {
    let mut e = edge().await;
    let (mut idle, _) = Client::open(&e.internet, &e.e3()).await;
    idle.cmd("EHLO mta").await;
    let (mut busy, _) = Client::open(&e.internet, &e.e3()).await;
    busy.cmd("EHLO mta").await;
    busy.cmd("MAIL FROM:<a@fabrikam.example>").await;
    busy.cmd("RCPT TO:<bob@contoso.test>").await;
    busy.cmd("DATA").await;
    busy.raw(b"Subject: during shutdown\r\n\r\n").await;
    let app = e.app.app.take().unwrap();
    let stopping =
        tokio::spawn(async move { app.stop_within(std::time::Duration::from_secs(10)).await });
    let r = idle.reply().await.expect("idle session is told");
    assert_eq!(r.line(), replies::SHUTTING_DOWN.to_line(true).trim_end());
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert!(
        Client::connect(&e.internet, &e.e3()).await.is_err(),
        "no new connections"
    );
    busy.raw(b"finishing\r\n.\r\n").await;
    assert_eq!(
        busy.reply().await.unwrap().code,
        250,
        "the message in DATA completes"
    );
    busy.send("QUIT").await;
    stopping.await.unwrap().unwrap();
}
