//! A client generated from the served OpenAPI document by a generator
//! nobody here wrote (openapi-python-client, PyPI) drives the README's
//! main flows against a live Hub: an accepted domain with mailboxes, a
//! receive connector created, read with its ETag, patched with If-Match
//! (and refused when stale), a login that submits over STARTTLS and AUTH
//! as its alias (and is refused as another sender), the delivery found in
//! message tracking, queues, transport settings, a problem parsed.

use crate::support::app::TestApp;
use ferry::model::Role;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_generated_from_the_document_drives_the_main_flows() {
    let Some(python) = crate::support::python::with(&["httpx", "openapi_python_client"]) else {
        return;
    };
    let hub = TestApp::spawn(Role::Hub).await;
    let out = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/contract/client_flows.py"
    );
    let run = tokio::process::Command::new(&python)
        .arg(script)
        .args([
            hub.base.as_str(),
            hub.token.as_str(),
            &hub.bind(1, 2587),
            &format!("127.{}.0.40", hub.net),
        ])
        .arg(out.path())
        .output()
        .await
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(run.status.success(), "{text}");
    assert!(text.contains("OK: 15 steps"), "{text}");
    // What the client did is what the server holds.
    let bob = hub.maildir("bob@contoso.test");
    assert!(
        bob.len() == 1 && bob[0].contains("Subject: sent as sales"),
        "{bob:?}"
    );
    let ts = hub.get("/api/v1/transport-settings").await.body;
    assert_eq!(ts["messageRetryInterval"], "00:00:30");
    assert_eq!(hub.get("/api/v1/credentials/ann").await.status, 200);
}
