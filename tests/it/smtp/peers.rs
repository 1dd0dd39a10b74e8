//! The same Edge driven by independent clients: swaks and Python's smtplib.

use crate::support::scenario::{HUB_PASSWORD, edge, queued};
use std::process::Command;

fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .args(args)
        .output()
        .expect("swaks is installed (see .ci/run)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test]
async fn swaks_delivers_inbound_mail_over_starttls() {
    if !crate::support::peers::require(&["swaks"]) {
        return;
    }
    let e = edge().await;
    let (ok, out) = tokio::task::spawn_blocking({
        let (server, from) = (e.e3(), e.internet.clone());
        move || {
            swaks(&[
                "--server",
                &server,
                "--local-interface",
                &from,
                "--ehlo",
                "mta.fabrikam.example",
                "--from",
                "a@fabrikam.example",
                "--to",
                "bob@contoso.test",
                "--tls",
                "--header",
                "Subject: via swaks",
            ])
        }
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("250 2.6.0"), "{out}");
    let q = queued(&e.app).await;
    assert_eq!(q.len(), 1);
    assert!(q[0].3.contains("Subject: via swaks"));
    assert!(
        q[0].3.contains("with ESMTPS"),
        "received over TLS: {}",
        q[0].3
    );
}

#[tokio::test]
async fn swaks_authenticates_as_a_hub_after_starttls() {
    if !crate::support::peers::require(&["swaks"]) {
        return;
    }
    let e = edge().await;
    let (server, from) = (e.e4(), e.hub1.clone());
    let (ok, out) = tokio::task::spawn_blocking(move || {
        swaks(&[
            "--server",
            &server,
            "--local-interface",
            &from,
            "--ehlo",
            "hub01.corp.contoso.test",
            "--tls",
            "--auth",
            "LOGIN",
            "--auth-user",
            "hub01",
            "--auth-password",
            HUB_PASSWORD,
            "--from",
            "bob@contoso.test",
            "--to",
            "carol@fabrikam.example",
        ])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.contains("235 2.7.0 Authentication successful"), "{out}");
    let q = queued(&e.app).await;
    assert_eq!(q[0].2, vec!["carol@fabrikam.example"]);
    // swaks without TLS cannot even try AUTH there.
    let (server, from) = (e.e4(), e.hub1.clone());
    let (ok, out) = tokio::task::spawn_blocking(move || {
        swaks(&[
            "--server",
            &server,
            "--local-interface",
            &from,
            "--auth",
            "LOGIN",
            "--auth-user",
            "hub01",
            "--auth-password",
            HUB_PASSWORD,
            "--from",
            "bob@contoso.test",
            "--to",
            "carol@fabrikam.example",
        ])
    })
    .await
    .unwrap();
    assert!(!ok, "{out}");
}

#[tokio::test]
async fn python_smtplib_sees_relay_refused_and_local_delivery_accepted() {
    if !crate::support::peers::require(&["python3"]) {
        return;
    }
    let e = edge().await;
    let script = format!(
        r#"
import smtplib, sys
s = smtplib.SMTP(source_address=("{src}", 0), timeout=20)
s.connect("{host}", {port})
s.ehlo("mta.fabrikam.example")
refused = s.sendmail("a@fabrikam.example", ["bob@contoso.test", "x@gmail.example"], "Subject: py\r\n\r\nfrom python\r\n")
assert list(refused) == ["x@gmail.example"], refused
assert refused["x@gmail.example"] == (550, b"5.7.1 Unable to relay"), refused
try:
    s.sendmail("a@fabrikam.example", ["y@gmail.example"], "Subject: py\r\n\r\nrelay\r\n")
    sys.exit("relay was accepted")
except smtplib.SMTPRecipientsRefused as e:
    pass
s.quit()
print("ok")
"#,
        src = e.internet,
        host = e.external,
        port = crate::support::scenario::PORT
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
    let q = queued(&e.app).await;
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].2, vec!["bob@contoso.test"]);
}
