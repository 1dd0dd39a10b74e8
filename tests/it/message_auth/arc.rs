//! ARC: a forward sealed by a trusted list (dkimpy's `arc_sign`) passes a
//! DMARC `p=reject` it would otherwise fail; a message Ferry verified and
//! then changed leaves sealed, and dkimpy's `arc_verify` accepts the chain.

use base64::Engine;
use serde_json::json;

use super::{openssl, txt};
use crate::support::client::Client;
use crate::support::dns::Dnsmasq;
use crate::support::scenario::{Edge, edge, queued};

/// dkimpy signs (DKIM) stdin with argv[1] for d=argv[2], s=argv[3].
const SIGN: &str = r#"
import sys, dkim
msg = sys.stdin.buffer.read()
key = open(sys.argv[1], 'rb').read()
sys.stdout.buffer.write(dkim.sign(msg, sys.argv[3].encode(), sys.argv[2].encode(), key,
    include_headers=[b'from', b'to', b'subject', b'date']) + msg)
"#;

/// dkimpy ARC-seals stdin (which carries the sealer's Authentication-Results)
/// with argv[1] for d=argv[2], s=argv[3].
const ARC_SIGN: &str = r#"
import sys, dkim
msg = sys.stdin.buffer.read()
key = open(sys.argv[1], 'rb').read()
headers = dkim.arc_sign(msg, sys.argv[3].encode(), sys.argv[2].encode(), key, sys.argv[2].encode())
sys.stdout.buffer.write(b''.join(headers) + msg)
"#;

/// dkimpy's verdict on the ARC chain of stdin, keys from the DNS at argv[1].
const ARC_VERIFY: &str = r#"
import sys, dkim, dns.resolver
host, port = sys.argv[1].rsplit(':', 1)
r = dns.resolver.Resolver(configure=False)
r.nameservers = [host]
r.port = int(port)
def dnsfunc(name, timeout=5):
    try:
        a = r.resolve(name.decode().rstrip('.'), 'TXT')
    except Exception:
        return None
    return b''.join(b''.join(x.strings) for x in a)
cv, results, comment = dkim.arc_verify(sys.stdin.buffer.read(), dnsfunc=dnsfunc)
print(cv.decode(), comment)
sys.exit(0 if cv == b'pass' else 1)
"#;

/// A new RSA key: its PEM file and the DNS `p=`.
fn key(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, String) {
    let path = dir.join(format!("{name}.pem"));
    std::fs::write(
        &path,
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ]),
    )
    .unwrap();
    let public = openssl(&[
        "pkey",
        "-in",
        path.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    (
        path,
        base64::engine::general_purpose::STANDARD.encode(public),
    )
}

async fn enable(e: &Edge, dns: &Dnsmasq) {
    for (path, body) in [
        (
            "/api/v1/transport-settings",
            json!({"externalDNSServers": [dns.server]}),
        ),
        (
            "/api/v1/transport-agents/Sender%20Id%20Agent",
            json!({"enabled": true}),
        ),
    ] {
        let r = e.app.patch(path, body, None).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
    }
}

const LETTER: &str = "From: Alice <alice@fabrikam.test>\r\nTo: team@lists.test\r\nSubject: Contract\r\n\
Date: Mon, 30 Nov 2026 09:00:00 +0000\r\nMessage-ID: <contract-2@fabrikam.test>\r\n\r\nPlease sign the contract.\r\n";

#[tokio::test]
async fn an_arc_sealed_forward_from_a_trusted_sealer_passes_a_failed_dmarc() {
    if !crate::support::peers::require(&["dnsmasq", "dig", "openssl"]) {
        return;
    }
    let Some(python) = crate::support::python::with(&["dkim", "dns.resolver"]) else {
        return;
    };
    let e = edge().await;
    let dir = tempfile::tempdir().unwrap();
    let (fab_key, fab_p) = key(dir.path(), "fabrikam");
    let (list_key, list_p) = key(dir.path(), "lists");
    let list_ip = e.ip(40);
    let dns = Dnsmasq::start(
        &e.ip(53),
        &[
            txt(
                "py._domainkey.fabrikam.test",
                &format!("v=DKIM1; k=rsa; p={fab_p}"),
            ),
            txt("_dmarc.fabrikam.test", "v=DMARC1; p=reject"),
            txt("fabrikam.test", &format!("v=spf1 ip4:{} -all", e.internet)),
            txt(
                "arc._domainkey.lists.test",
                &format!("v=DKIM1; k=rsa; p={list_p}"),
            ),
            txt("lists.test", &format!("v=spf1 ip4:{list_ip} -all")),
        ],
    )
    .await;
    enable(&e, &dns).await;
    let run = |script: &str, args: &[&str], input: &[u8]| {
        let (ok, out) = crate::support::python::run(&python, script, args, input);
        assert!(ok, "dkimpy: {out}");
        out
    };
    // Alice signs; the list tags the subject (breaking her signature),
    // records what it verified, and seals.
    let signed = run(
        SIGN,
        &[fab_key.to_str().unwrap(), "fabrikam.test", "py"],
        LETTER.as_bytes(),
    );
    let listed = format!(
        "Authentication-Results: lists.test; dkim=pass header.d=fabrikam.test; spf=pass smtp.mailfrom=alice@fabrikam.test; dmarc=pass header.from=fabrikam.test\r\n{}",
        signed.replace("Subject: Contract", "Subject: [team] Contract")
    );
    let sealed = run(
        ARC_SIGN,
        &[list_key.to_str().unwrap(), "lists.test", "arc"],
        listed.as_bytes(),
    );
    let send = || async {
        let (mut c, _) = Client::open(&list_ip, &e.e3()).await;
        c.cmd("EHLO mail.lists.test").await;
        c.send_mail("team-bounces@lists.test", &["bob@contoso.test"], &sealed)
            .await
    };
    // Not trusted: DMARC fails (the signature broke, SPF is the list's).
    assert_eq!(
        send().await.line(),
        "550 5.7.1 Email rejected per DMARC policy for fabrikam.test"
    );
    let r = e
        .app
        .patch(
            "/api/v1/sender-id-config",
            json!({"trustedArcSealers": ["lists.test"]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send().await;
    assert_eq!(r.code, 250, "{}", r.line());
    let q = queued(&e.app).await;
    let body = q.last().unwrap().3.replace("\r\n\t", " ");
    assert!(body.contains("arc=pass"), "{body}");
    assert!(body.contains("dmarc=fail"), "{body}");
    let t = e.app.get("/api/v1/tracking?event=AGENT").await.text;
    assert!(
        t.contains("Sender Id Agent: DmarcOverride: ARC sealed by trusted lists.test"),
        "{t}"
    );
}

#[tokio::test]
async fn a_message_ferry_verified_and_changed_leaves_sealed_and_dkimpy_accepts_the_chain() {
    if !crate::support::peers::require(&["dnsmasq", "dig", "openssl"]) {
        return;
    }
    let Some(python) = crate::support::python::with(&["dkim", "dns.resolver"]) else {
        return;
    };
    let e = edge().await;
    let dir = tempfile::tempdir().unwrap();
    let (fab_key, fab_p) = key(dir.path(), "fabrikam");
    // The Edge's own key (contoso.test) seals.
    let r = e
        .app
        .post(
            "/api/v1/dkim-signing-keys",
            json!({"domain": "contoso.test", "selector": "arc1", "state": "Active"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let ours = r.body;
    let dns = Dnsmasq::start(
        &e.ip(53),
        &[
            txt(
                "py._domainkey.fabrikam.test",
                &format!("v=DKIM1; k=rsa; p={fab_p}"),
            ),
            txt("_dmarc.fabrikam.test", "v=DMARC1; p=reject"),
            txt("fabrikam.test", &format!("v=spf1 ip4:{} -all", e.internet)),
            txt(
                ours["dnsRecordName"].as_str().unwrap(),
                ours["dnsRecord"].as_str().unwrap(),
            ),
        ],
    )
    .await;
    enable(&e, &dns).await;
    // Inbound rewriting changes the To header after verification.
    let r = e
        .app
        .post(
            "/api/v1/address-rewrite-entries",
            json!({"name": "corp", "internalAddress": "corp.contoso.test", "externalAddress": "contoso.test"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let letter = LETTER.replace("To: team@lists.test", "To: Bob <bob@contoso.test>");
    let (ok, signed) = crate::support::python::run(
        &python,
        SIGN,
        &[fab_key.to_str().unwrap(), "fabrikam.test", "py"],
        letter.as_bytes(),
    );
    assert!(ok, "{signed}");
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.fabrikam.test").await;
    let r = c
        .send_mail("alice@fabrikam.test", &["bob@contoso.test"], &signed)
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    let q = queued(&e.app).await;
    let body = &q.last().unwrap().3;
    assert!(body.contains("To: Bob <bob@corp.contoso.test>"), "{body}");
    assert!(body.contains("ARC-Seal: i=1; a=rsa-sha256;"), "{body}");
    assert!(body.contains("ARC-Message-Signature: i=1;"), "{body}");
    assert!(body.contains("ARC-Authentication-Results: i=1;"), "{body}");
    let (ok, out) =
        crate::support::python::run(&python, ARC_VERIFY, &[&dns.server], body.as_bytes());
    assert!(ok, "dkimpy arc_verify: {out}\n{body}");
    // Not changed: not sealed.
    let plain = LETTER.replace("To: team@lists.test", "To: carol@fabrikam.test");
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.fabrikam.test").await;
    let r = c
        .send_mail("alice@fabrikam.test", &["bob@contoso.test"], &plain)
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    let q = queued(&e.app).await;
    assert!(
        !q.last().unwrap().3.contains("ARC-Seal"),
        "{}",
        q.last().unwrap().3
    );
}
