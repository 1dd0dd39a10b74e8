//! Every queue viewer action, against mail really queued.

use crate::delivery::setup::{env, eventually};
use crate::support::sink::{Sink, SinkOptions};
use ferry::model::Role;
use serde_json::json;

#[tokio::test]
async fn suspend_and_resume_a_queue() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    let sink = Sink::start(&format!("{}:2525", e.ip(25)), SinkOptions::default()).await;
    e.connector(
        json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": [e.ip(25)], "port": 2525}),
    )
    .await;
    e.submit("bob@contoso.test", &["a@fabrikam.test"], "first")
        .await;
    eventually(10, "first delivered", || async {
        sink.messages().len() == 1
    })
    .await;
    let q = e.queue(&e.ip(25)).await.unwrap();
    assert_eq!(q["deliveryType"], "SmartHostConnectorDelivery");
    assert_eq!(q["connector"], "Out");
    let id = q["id"].as_str().unwrap().to_string();
    let r = e
        .app
        .post(&format!("/api/v1/queues/{id}/suspend"), json!({}))
        .await;
    assert_eq!(r.body["status"], "Suspended", "{}", r.text);
    e.submit("bob@contoso.test", &["b@fabrikam.test"], "second")
        .await;
    eventually(5, "the message waits in the suspended queue", || async {
        e.queue(&e.ip(25))
            .await
            .is_some_and(|q| q["messageCount"] == 1)
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(sink.messages().len(), 1, "nothing leaves a suspended queue");
    let listed = e
        .app
        .get(&format!("/api/v1/messages?queue={id}"))
        .await
        .body;
    assert_eq!(listed["total"], 1);
    assert_eq!(
        listed["items"][0]["recipients"][0]["address"],
        "b@fabrikam.test"
    );
    e.app
        .post(&format!("/api/v1/queues/{id}/resume"), json!({}))
        .await;
    eventually(10, "delivered after resume", || async {
        sink.messages().len() == 2
    })
    .await;
}

#[tokio::test]
async fn message_actions_suspend_resume_remove_raw() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    // After one failed attempt the queue waits, so no message is in flight
    // while the actions below run (in flight, they would be Pending*: 202).
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"queueGlitchRetryInterval": "00:10:00"}),
            None,
        )
        .await;
    e.connector(
        json!({"name": "Down", "addressSpaces": ["*"], "smartHosts": [e.ip(26)], "port": 2525}),
    )
    .await;
    e.submit("bob@contoso.test", &["a@fabrikam.test"], "keep")
        .await;
    e.submit("bob@contoso.test", &["b@fabrikam.test"], "drop with ndr")
        .await;
    e.submit("bob@contoso.test", &["c@fabrikam.test"], "drop silently")
        .await;
    eventually(
        10,
        "three messages queued behind a queue in Retry",
        || async {
            let msgs = e.messages().await;
            // Retry, and the failed attempt's task has ended (not Active).
            msgs.len() == 3
                && msgs
                    .iter()
                    .all(|m| m["status"] == "Retry" || m["status"] == "Ready")
                && e.queue(&e.ip(26))
                    .await
                    .is_some_and(|q| q["status"] == "Retry")
        },
    )
    .await;
    let msgs = e.messages().await;
    let id = |subject: &str| {
        msgs.iter()
            .find(|m| {
                m["recipients"][0]["address"]
                    .as_str()
                    .unwrap()
                    .starts_with(subject)
            })
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let (keep, ndr, silent) = (id("a@"), id("b@"), id("c@"));
    // Filters.
    assert_eq!(
        e.app
            .get("/api/v1/messages?recipient=b%40fabrikam")
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        e.app
            .get("/api/v1/messages?sender=bob%40contoso.test&limit=2")
            .await
            .body["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // Suspend and resume.
    let r = e
        .app
        .post(&format!("/api/v1/messages/{keep}/suspend"), json!({}))
        .await;
    assert_eq!(r.body["status"], "Suspended", "{}", r.text);
    assert_eq!(
        e.app.get("/api/v1/messages?status=Suspended").await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = e
        .app
        .post(&format!("/api/v1/messages/{keep}/resume"), json!({}))
        .await;
    assert_ne!(r.body["status"], "Suspended", "{}", r.text);
    // Details and the raw message.
    let d = e.app.get(&format!("/api/v1/messages/{keep}")).await.body;
    assert!(
        d["headers"].as_str().unwrap().contains("Subject: keep"),
        "{d}"
    );
    assert!(!d["attempts"].as_array().unwrap().is_empty());
    let raw = e
        .app
        .client
        .get(format!("{}/api/v1/messages/{keep}/raw", e.app.base))
        .bearer_auth(&e.app.token)
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["content-type"], "message/rfc822");
    assert!(raw.text().await.unwrap().contains("body of keep"));
    // Remove with and without an NDR.
    assert_eq!(
        e.app
            .delete(&format!("/api/v1/messages/{ndr}"), None)
            .await
            .status,
        204
    );
    assert_eq!(
        e.app
            .delete(&format!("/api/v1/messages/{silent}?withNdr=false"), None)
            .await
            .status,
        204
    );
    eventually(10, "one NDR for the removed message", || async {
        e.maildir("bob@contoso.test").len() == 1
    })
    .await;
    let n = &e.maildir("bob@contoso.test")[0];
    assert!(
        n.contains("b@fabrikam.test") && n.contains("deleted by an administrator"),
        "{n}"
    );
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        e.maildir("bob@contoso.test").len(),
        1,
        "none for the silent removal"
    );
    assert_eq!(e.messages().await.len(), 1);
    assert_eq!(
        e.app
            .get(&format!("/api/v1/messages/{silent}"))
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn retry_queue_and_resubmit_after_fixing_the_connector() {
    let Some(e) = env(Role::Hub, &[]).await else {
        return;
    };
    e.app
        .patch(
            "/api/v1/transport-settings",
            json!({"queueGlitchRetryInterval": "00:10:00"}),
            None,
        )
        .await;
    // A broken connector: wrong port.
    e.connector(
        json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": [e.ip(27)], "port": 2999}),
    )
    .await;
    let sink = Sink::start(&format!("{}:2525", e.ip(27)), SinkOptions::default()).await;
    e.submit("bob@contoso.test", &["a@fabrikam.test"], "fix me")
        .await;
    eventually(10, "the queue is in Retry", || async {
        e.queue(&e.ip(27))
            .await
            .is_some_and(|q| q["status"] == "Retry" && q["nextRetryTime"].is_string())
    })
    .await;
    let qid = e.queue(&e.ip(27)).await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // Retry-Queue forces an attempt now; it still fails, and the timer restarts.
    let r = e
        .app
        .post(&format!("/api/v1/queues/{qid}/retry"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    eventually(10, "a second failure", || async {
        e.queue(&e.ip(27)).await.is_some_and(|q| q["failures"] == 2)
    })
    .await;
    // Fix the connector; resubmitting the message routes it again, and it leaves.
    e.app
        .patch("/api/v1/send-connectors/Out", json!({"port": 2525}), None)
        .await;
    let id = e.messages().await[0]["id"].as_i64().unwrap();
    let r = e
        .app
        .post(&format!("/api/v1/messages/{id}/resubmit"), json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    eventually(10, "delivered after the fix", || async {
        sink.messages().len() == 1
    })
    .await;
    // Retry on a queue that is not in Retry is refused.
    eventually(10, "the queue is healthy", || async {
        e.queue(&e.ip(27))
            .await
            .is_some_and(|q| q["status"] == "Ready")
    })
    .await;
    assert_eq!(
        e.app
            .post(&format!("/api/v1/queues/{qid}/retry"), json!({}))
            .await
            .status,
        409
    );
}

#[tokio::test]
async fn queued_mail_survives_a_restart_and_goes_when_the_peer_returns() {
    let Some(mut e) = env(Role::Hub, &[]).await else {
        return;
    };
    e.connector(
        json!({"name": "Out", "addressSpaces": ["*"], "smartHosts": [e.ip(28)], "port": 2525}),
    )
    .await;
    e.submit("bob@contoso.test", &["a@fabrikam.test"], "across a restart")
        .await;
    eventually(10, "in Retry", || async {
        e.messages()
            .await
            .first()
            .is_some_and(|m| m["status"] == "Retry")
    })
    .await;
    e.app.restart().await;
    let sink = Sink::start(&format!("{}:2525", e.ip(28)), SinkOptions::default()).await;
    eventually(20, "delivered after the restart", || async {
        sink.messages().len() == 1
    })
    .await;
    assert!(sink.messages()[0].2.contains("Subject: across a restart"));
}
