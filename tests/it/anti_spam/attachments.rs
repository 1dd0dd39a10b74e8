//! The Attachment Filter agent on real mail: Strip delivers the rest with a
//! notice part, Reject refuses after DATA, SilentDelete drops; encoded and
//! nested names are caught; exception connectors are not filtered.

use serde_json::json;

use crate::support::client::Client;
use crate::support::scenario::{Edge, edge, queued};

const WITH_EXE: &str = "From: a@fabrikam.test\r\nSubject: tools\r\nMIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=outer\r\n\r\n\
--outer\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n\
--outer\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n\
--inner\r\nContent-Type: text/plain\r\n\r\nplain\r\n\
--inner\r\nContent-Type: application/octet-stream\r\n\
Content-Disposition: attachment; filename=\"=?UTF-8?B?c2V0dXAuZXhl?=\"\r\n\r\nMZ-PAYLOAD\r\n\
--inner--\r\n\
--outer\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=report.pdf\r\n\r\n%PDF-1.7\r\n\
--outer--\r\n";

async fn send(e: &Edge, body: &str) -> crate::support::client::Reply {
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.fabrikam.test").await;
    c.send_mail("a@fabrikam.test", &["bob@contoso.test"], body)
        .await
}

#[tokio::test]
async fn strip_replaces_an_encoded_nested_exe_and_delivers_the_rest() {
    let e = edge().await;
    let r = send(&e, WITH_EXE).await;
    assert_eq!(r.code, 250, "Strip is the default: {}", r.line());
    let q = queued(&e.app).await;
    let body = &q.last().unwrap().3;
    assert!(!body.contains("MZ-PAYLOAD"), "{body}");
    assert!(
        body.contains("This attachment was removed. (setup.exe (FileName:*.exe))"),
        "{body}"
    );
    assert!(
        body.contains("%PDF-1.7") && body.contains("see attached"),
        "{body}"
    );
    let t = e.app.get("/api/v1/tracking?event=AGENT").await;
    assert!(
        t.text.contains("Attachment Filtering Agent: Strip"),
        "{}",
        t.text
    );
}

#[tokio::test]
async fn reject_and_silent_delete_do_what_they_say_and_exceptions_pass() {
    let e = edge().await;
    let r = e
        .app
        .patch(
            "/api/v1/attachment-filter-config",
            json!({"action": "Reject", "rejectResponse": "No programs, please"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let before = queued(&e.app).await.len();
    assert_eq!(
        send(&e, WITH_EXE).await.line(),
        "550 5.7.1 No programs, please"
    );
    assert_eq!(queued(&e.app).await.len(), before);
    // A content type entry added through Add-AttachmentFilterEntry.
    let r = e
        .app
        .post(
            "/api/v1/attachment-filter-entries",
            json!({"type": "ContentType", "name": "application/x-evil"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let evil = "Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Type: application/x-evil\r\n\r\nboo\r\n--b--\r\n";
    assert_eq!(send(&e, evil).await.code, 550);
    // SilentDelete: 250, and nothing queued.
    e.app
        .patch(
            "/api/v1/attachment-filter-config",
            json!({"action": "SilentDelete"}),
            None,
        )
        .await;
    assert_eq!(send(&e, WITH_EXE).await.code, 250);
    assert_eq!(queued(&e.app).await.len(), before);
    // An exception connector is not filtered.
    e.app
        .patch(
            "/api/v1/attachment-filter-config",
            json!({"exceptionConnectors": ["From Internet"]}),
            None,
        )
        .await;
    assert_eq!(send(&e, WITH_EXE).await.code, 250);
    assert_eq!(queued(&e.app).await.len(), before + 1);
    let r = e
        .app
        .delete("/api/v1/attachment-filter-entries/FileName:*.nothing", None)
        .await;
    assert_eq!(r.status, 404);
    let r = e
        .app
        .delete(
            "/api/v1/attachment-filter-entries/ContentType:application%2Fx-evil",
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
}
