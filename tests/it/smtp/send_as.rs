//! Logins send as their addresses (issue 23): a `User` login with a
//! primary address and aliases (or linked to a recipient of the directory)
//! may use each of them as the sender on the Client connector and nothing
//! else; checked with swaks and with a private Postfix relaying through the
//! Hub with STARTTLS and AUTH. Save-time warnings name useless logins, and
//! logins whose user name is an address keep working through the migration.

use crate::support::app::TestApp;
use ferry::model::Role;
use reqwest::StatusCode;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const PASSWORD: &str = "Submit-Pfuser-7f3a9c2e";

fn swaks(server: &str, from_ip: &str, user: &str, sender: &str, subject: &str) -> (bool, String) {
    let out = Command::new("swaks")
        .args(["--server", server, "--local-interface", from_ip, "--tls"])
        .args([
            "--auth",
            "PLAIN",
            "--auth-user",
            user,
            "--auth-password",
            PASSWORD,
        ])
        .args(["--from", sender, "--to", "bob@contoso.test"])
        .args(["--header", &format!("Subject: {subject}")])
        .output()
        .expect("swaks runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn hub() -> TestApp {
    let hub = TestApp::spawn(Role::Hub).await;
    hub.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test", "mailboxDelivery": {"type": "Maildir"}}),
    )
    .await;
    hub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_sends_as_its_addresses_and_nothing_else() {
    if !crate::support::peers::require(&["swaks", "postfix"]) {
        return;
    }
    let hub = hub().await;
    let submission = hub.bind(1, 2587);
    let client_ip = format!("127.{}.0.40", hub.net);
    // Each refusal below would wait out the default 5 s tarpit; the
    // refusals, not the tarpit, are what this test is about.
    let r = hub
        .patch(
            "/api/v1/receive-connectors/Client%20HUB01",
            json!({"tarpitInterval": "00:00:00"}),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);

    // Made as the README used to show: it can log in, but send as no one;
    // the answer says so.
    let made = hub
        .create(
            "/api/v1/credentials",
            json!({"kind": "Login", "userName": "pfuser", "principal": "User", "password": PASSWORD}),
        )
        .await;
    let warnings = made["warnings"].to_string();
    assert!(
        warnings.contains("has no address") && warnings.contains("Client HUB01"),
        "{made}"
    );
    let (ok, out) = swaks(
        &submission,
        &client_ip,
        "pfuser",
        "pfuser@contoso.test",
        "before",
    );
    assert!(!ok && out.contains("550 5.7.1"), "{out}");

    // Its addresses: a primary address and an alias.
    let r = hub
        .patch(
            "/api/v1/credentials/pfuser",
            json!({"primaryAddress": "pfuser@contoso.test", "aliases": ["sales@contoso.test"]}),
            None,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(r.body["warnings"], json!([]), "{}", r.text);
    assert_eq!(
        r.body["sendAs"],
        json!(["pfuser@contoso.test", "sales@contoso.test"])
    );
    for (sender, subject) in [
        ("pfuser@contoso.test", "as primary"),
        ("sales@CONTOSO.TEST", "as alias"),
    ] {
        let (ok, out) = swaks(&submission, &client_ip, "pfuser", sender, subject);
        assert!(ok && out.contains("250 2.6.0"), "{sender}: {out}");
    }
    // Any other sender, authoritative or foreign, and the local part in
    // another case (RFC 5321 §2.4), is refused.
    for sender in [
        "ceo@contoso.test",
        "pfuser@fabrikam.test",
        "PFUSER@contoso.test",
    ] {
        let (ok, out) = swaks(&submission, &client_ip, "pfuser", sender, "refused");
        assert!(
            !ok && out
                .contains("550 5.7.1 Client does not have permissions to send as this sender"),
            "{sender}: {out}"
        );
    }
    eventually("two messages in Bob's Maildir", || {
        hub.maildir("bob@contoso.test").len() == 2
    })
    .await;
    let mail = hub.maildir("bob@contoso.test").join("\n");
    assert!(mail.contains("Subject: as primary") && mail.contains("Subject: as alias"));
    assert!(
        mail.contains("authenticated as pfuser"),
        "the Received header names the login: {mail}"
    );
    let t = hub
        .get("/api/v1/tracking?sender=sales@CONTOSO.TEST&event=RECEIVE")
        .await;
    assert_eq!(t.body["items"][0]["auth"], "pfuser", "{}", t.text);

    // Postfix as the authenticating client: mail from the login's address
    // arrives; mail from another address is refused at MAIL FROM.
    let dir = tempfile::tempdir().unwrap();
    let pf_ip = format!("127.{}.0.41", hub.net);
    let pf_dir = dir.path().join("postfix-app01");
    struct Stop(std::path::PathBuf);
    impl Drop for Stop {
        fn drop(&mut self) {
            let _ = Command::new("bash")
                .arg(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/peers/postfix-private.sh"
                ))
                .arg(&self.0)
                .arg("stop")
                .status();
        }
    }
    let _stop = Stop(pf_dir.clone());
    let (ip, port) = submission.split_once(':').unwrap();
    let out = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/postfix-submit.sh"
        ))
        .arg(&pf_dir)
        .args([pf_ip.as_str(), "2525", ip, port, "pfuser", PASSWORD])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (sender, subject) in [
        ("pfuser@contoso.test", "via postfix"),
        ("ceo@contoso.test", "spoofed via postfix"),
    ] {
        let (ok, out) = tokio::task::spawn_blocking({
            let (pf_ip, sender, subject) = (pf_ip.clone(), sender.to_string(), subject.to_string());
            move || {
                let o = Command::new("swaks")
                    .args(["--server", &format!("{pf_ip}:2525"), "--from", &sender])
                    .args([
                        "--to",
                        "bob@contoso.test",
                        "--header",
                        &format!("Subject: {subject}"),
                    ])
                    .output()
                    .unwrap();
                (
                    o.status.success(),
                    String::from_utf8_lossy(&o.stdout).to_string(),
                )
            }
        })
        .await
        .unwrap();
        assert!(ok, "Postfix takes the message: {out}");
    }
    eventually("the message relayed by Postfix", || {
        hub.maildir("bob@contoso.test")
            .iter()
            .any(|m| m.contains("Subject: via postfix"))
    })
    .await;
    let log = pf_dir.join("maillog");
    eventually("Postfix to log the refusal", || {
        std::fs::read_to_string(&log).is_ok_and(|l| {
            l.contains("ceo@contoso.test")
                && l.contains("Client does not have permissions to send as this sender")
        })
    })
    .await;
    assert!(
        !hub.maildir("bob@contoso.test")
            .iter()
            .any(|m| m.contains("spoofed via postfix"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_linked_to_a_directory_recipient_sends_as_its_addresses() {
    if !crate::support::peers::require(&["swaks"]) {
        return;
    }
    let hub = hub().await;
    let submission = hub.bind(1, 2587);
    let client_ip = format!("127.{}.0.40", hub.net);
    let made = hub
        .create(
            "/api/v1/credentials",
            json!({"kind": "Login", "userName": "ann", "principal": "User", "password": PASSWORD,
                   "directoryRecipient": "ann@contoso.test"}),
        )
        .await;
    assert!(
        made["warnings"]
            .to_string()
            .contains("no recipient of the directory"),
        "{made}"
    );
    hub.create(
        "/api/v1/recipients",
        json!({"primaryAddress": "ann@contoso.test", "aliases": ["a.smith@contoso.test"]}),
    )
    .await;
    let r = hub.get("/api/v1/credentials/ann").await;
    assert_eq!(
        r.body["sendAs"],
        json!(["ann@contoso.test", "a.smith@contoso.test"]),
        "{}",
        r.text
    );
    assert_eq!(r.body["warnings"], json!([]));
    let (ok, out) = swaks(
        &submission,
        &client_ip,
        "ann",
        "a.smith@contoso.test",
        "alias",
    );
    assert!(ok, "{out}");
    let (ok, out) = swaks(
        &submission,
        &client_ip,
        "ann",
        "bob@contoso.test",
        "not hers",
    );
    assert!(!ok && out.contains("550 5.7.1"), "{out}");
    // Both at once is refused.
    hub.post(
        "/api/v1/credentials",
        json!({"kind": "Login", "userName": "x", "password": PASSWORD,
               "directoryRecipient": "ann@contoso.test", "primaryAddress": "x@contoso.test"}),
    )
    .await
    .assert_problem(422, "directoryRecipient");
    // An address outside every accepted domain is saved, with a warning.
    let made = hub
        .create(
            "/api/v1/credentials",
            json!({"kind": "Login", "userName": "guest@fabrikam.test", "password": PASSWORD}),
        )
        .await;
    assert_eq!(made["primaryAddress"], "guest@fabrikam.test");
    assert!(
        made["warnings"]
            .to_string()
            .contains("not in any accepted domain"),
        "{made}"
    );
}

/// A login made before logins had addresses, whose user name is an
/// address, keeps sending as it after the upgrade's migration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_named_by_an_address_keep_sending_as_it_after_the_migration() {
    if !crate::support::peers::require(&["swaks"]) {
        return;
    }
    let mut hub = hub().await;
    hub.create(
        "/api/v1/credentials",
        json!({"kind": "Login", "userName": "old@contoso.test", "password": PASSWORD}),
    )
    .await;
    hub.app.take().unwrap().stop().await.unwrap();
    // As the database was before the migration: no address, not migrated.
    let db = hub.data_dir().join("ferry.db");
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute_batch(
            "UPDATE credentials SET spec = json_remove(spec, '$.primaryAddress'); \
             DELETE FROM _sqlx_migrations WHERE version = 20261130000006;",
        )
        .unwrap();
    let app = ferry::startup::App::build(hub.settings.clone())
        .await
        .unwrap();
    hub.base = format!("http://{}", app.api_addr);
    hub.app = Some(app);
    let r = hub.get("/api/v1/credentials/old@contoso.test").await;
    assert_eq!(r.body["primaryAddress"], "old@contoso.test", "{}", r.text);
    let (ok, out) = swaks(
        &hub.bind(1, 2587),
        &format!("127.{}.0.40", hub.net),
        "old@contoso.test",
        "old@contoso.test",
        "still",
    );
    assert!(ok, "{out}");
}
