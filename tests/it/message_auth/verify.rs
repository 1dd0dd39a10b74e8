//! The Sender Id agent on real mail: messages signed by dkimpy verify in
//! Ferry (and fail once changed), SPF and DMARC against records served by
//! dnsmasq, a spoofed `p=reject` domain refused (or only stamped with the
//! policy switch off), injected Authentication-Results removed, and the
//! header Ferry writes parsed by `authres`.

use serde_json::{Value, json};

use super::{openssl, txt};
use crate::support::client::{Client, Reply};
use crate::support::dns::Dnsmasq;
use crate::support::scenario::{Edge, edge, queued};

/// dkimpy signs stdin with the PEM key in argv[1] for d=argv[2], s=argv[3].
const SIGN: &str = r#"
import sys, dkim
msg = sys.stdin.buffer.read()
key = open(sys.argv[1], 'rb').read()
sig = dkim.sign(msg, sys.argv[3].encode(), sys.argv[2].encode(), key,
                include_headers=[b'from', b'to', b'subject', b'date'])
sys.stdout.buffer.write(sig + msg)
"#;

/// authres parses the Authentication-Results value on stdin.
const PARSE: &str = r#"
import sys, authres
v = sys.stdin.read()
h = authres.AuthenticationResultsHeader.parse('Authentication-Results: ' + v)
print(h.authserv_id, sorted((r.method, r.result) for r in h.results))
"#;

struct World {
    e: Edge,
    _dns: Dnsmasq,
    key_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
    python: std::path::PathBuf,
}

/// An Edge with its Sender Id agent on, and DNS for fabrikam.test (SPF for
/// the Internet host, a DKIM key, DMARC p=reject) and woodgrove.test
/// (DMARC p=quarantine).
async fn world() -> Option<World> {
    if !crate::support::peers::require(&["dnsmasq", "dig", "openssl"]) {
        return None;
    }
    let python = crate::support::python::with(&["dkim", "authres", "dns.resolver"])?;
    let e = edge().await;
    let dir = tempfile::tempdir().unwrap();
    let key_path = dir.path().join("fabrikam.pem");
    std::fs::write(
        &key_path,
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
        key_path.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]);
    use base64::Engine;
    let p = base64::engine::general_purpose::STANDARD.encode(public);
    let records = vec![
        txt("fabrikam.test", &format!("v=spf1 ip4:{} -all", e.internet)),
        txt(
            "py._domainkey.fabrikam.test",
            &format!("v=DKIM1; k=rsa; p={p}"),
        ),
        txt("_dmarc.fabrikam.test", "v=DMARC1; p=reject"),
        txt("woodgrove.test", &format!("v=spf1 ip4:{} -all", e.ip(21))),
        txt("_dmarc.woodgrove.test", "v=DMARC1; p=quarantine"),
        txt("attacker.test", &format!("v=spf1 ip4:{} -all", e.ip(66))),
    ];
    let dns = Dnsmasq::start(&e.ip(53), &records).await;
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
    Some(World {
        e,
        _dns: dns,
        key_path,
        _dir: dir,
        python,
    })
}

impl World {
    async fn send_from(&self, ip: &str, sender: &str, body: &str) -> Reply {
        let (mut c, _) = Client::open(ip, &self.e.e3()).await;
        c.cmd("EHLO mta.fabrikam.test").await;
        c.send_mail(sender, &["bob@contoso.test"], body).await
    }

    fn signed(&self, body: &str) -> String {
        let (ok, out) = crate::support::python::run(
            &self.python,
            SIGN,
            &[self.key_path.to_str().unwrap(), "fabrikam.test", "py"],
            body.as_bytes(),
        );
        assert!(ok, "dkimpy: {out}");
        out
    }

    /// The Authentication-Results Ferry wrote on the newest queued message.
    async fn results(&self) -> String {
        let q = queued(&self.e.app).await;
        let body = &q.last().unwrap().3;
        let unfolded = body.replace("\r\n\t", " ").replace("\r\n ", " ");
        unfolded
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix("Authentication-Results: mail.contoso.test;"))
            .unwrap_or_else(|| panic!("no Authentication-Results: {body}"))
            .to_string()
    }
}

const LETTER: &str = "From: Alice <alice@fabrikam.test>\r\nTo: bob@contoso.test\r\nSubject: Contract\r\n\
Date: Mon, 30 Nov 2026 09:00:00 +0000\r\nMessage-ID: <contract-1@fabrikam.test>\r\n\r\nPlease sign the contract.\r\n";

#[tokio::test]
async fn dkimpy_signatures_verify_and_spf_and_dmarc_pass_from_the_right_host() {
    let Some(w) = world().await else {
        return;
    };
    let signed = w.signed(LETTER);
    let r = w
        .send_from(&w.e.internet, "alice@fabrikam.test", &signed)
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    let ar = w.results().await;
    assert!(ar.contains("dkim=pass"), "{ar}");
    assert!(ar.contains("header.i=@fabrikam.test header.s=py"), "{ar}");
    assert!(ar.contains("spf=pass"), "{ar}");
    assert!(ar.contains("dmarc=pass"), "{ar}");
    // authres (PyPI) reads the header Ferry wrote.
    let (ok, parsed) = crate::support::python::run(
        &w.python,
        PARSE,
        &[],
        format!("mail.contoso.test;{ar}").as_bytes(),
    );
    assert!(ok, "authres: {parsed}");
    assert!(parsed.starts_with("mail.contoso.test"), "{parsed}");
    assert!(
        parsed.contains("('dkim', 'pass')") && parsed.contains("('dmarc', 'pass')"),
        "{parsed}"
    );
    // Changed after signing: the body hash no longer matches. SPF still
    // passes and aligns, so DMARC passes on SPF.
    let tampered = signed.replace("Please sign", "Please do not sign");
    let r = w
        .send_from(&w.e.internet, "alice@fabrikam.test", &tampered)
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    let ar = w.results().await;
    // mail-auth reports a body hash mismatch as neutral (RFC 6376 §6.1.3
    // leaves the word to the verifier); the summary counts it as a failure.
    assert!(
        ar.contains("dkim=neutral (body hash did not verify)") || ar.contains("dkim=fail"),
        "{ar}"
    );
    assert!(!ar.contains("dkim=pass"), "{ar}");
    assert!(ar.contains("spf=pass") && ar.contains("dmarc=pass"), "{ar}");
    // Tracking and metrics carry the verdicts.
    let t = w.e.app.get("/api/v1/tracking?event=AGENT").await.text;
    assert!(
        t.contains("Sender Id Agent: Verified: spf=pass dkim=fail dmarc=pass"),
        "{t}"
    );
    let m = w.e.app.get("/metrics").await.text;
    assert!(
        m.contains("ferry_agent_actions_total{agent=\"Sender Id Agent\",action=\"dkim=pass\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn a_spoofed_p_reject_domain_is_refused_or_only_stamped_with_the_policy_off() {
    let Some(w) = world().await else {
        return;
    };
    // From: fabrikam.test, sent by the attacker's own host with its own
    // envelope: SPF passes for attacker.test, but nothing aligns.
    let spoof = "From: Alice <alice@fabrikam.test>\r\nTo: bob@contoso.test\r\nSubject: Invoice\r\n\r\nPay now.\r\n";
    let before = queued(&w.e.app).await.len();
    let r = w
        .send_from(&w.e.ip(66), "billing@attacker.test", spoof)
        .await;
    assert_eq!(
        r.line(),
        "550 5.7.1 Email rejected per DMARC policy for fabrikam.test"
    );
    assert_eq!(queued(&w.e.app).await.len(), before);
    // Injected results claiming our authserv-id are removed first, whatever
    // the verdict; and with the policy switch off the spoof is stamped.
    let r =
        w.e.app
            .patch(
                "/api/v1/sender-id-config",
                json!({"dmarcHonorPolicy": false}),
                None,
            )
            .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let injected = format!(
        "Authentication-Results: mail.contoso.test; dkim=pass header.d=fabrikam.test; dmarc=pass\r\n\
Authentication-Results: elsewhere.test; spf=pass\r\n{spoof}"
    );
    let r = w
        .send_from(&w.e.ip(66), "billing@attacker.test", &injected)
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    let q = queued(&w.e.app).await;
    let body = &q.last().unwrap().3;
    assert_eq!(
        body.matches("Authentication-Results: mail.contoso.test")
            .count(),
        1,
        "{body}"
    );
    assert!(
        body.contains("Authentication-Results: elsewhere.test; spf=pass"),
        "{body}"
    );
    let ar = w.results().await;
    assert!(
        ar.contains("dmarc=fail") && ar.contains("policy.dmarc=reject"),
        "{ar}"
    );
    assert!(ar.contains("spf=pass"), "{ar}");
    let t = w.e.app.get("/api/v1/tracking?event=AGENT").await.text;
    assert!(t.contains("Sender Id Agent: RemovedHeader"), "{t}");
    assert!(
        t.contains("Sender Id Agent: Reject: Email rejected per DMARC policy"),
        "{t}"
    );
}

#[tokio::test]
async fn spf_fail_actions_and_dmarc_quarantine() {
    let Some(w) = world().await else {
        return;
    };
    // fabrikam.test's SPF does not list this host: fail, stamped by default.
    let plain = "From: x@contoso-partner.test\r\nSubject: hi\r\n\r\nhi\r\n";
    let r = w.send_from(&w.e.ip(22), "alice@fabrikam.test", plain).await;
    assert_eq!(r.code, 250, "{}", r.line());
    assert!(w.results().await.contains("spf=fail"));
    let patch = |v: Value| {
        let app = &w.e.app;
        async move {
            let r = app.patch("/api/v1/sender-id-config", v, None).await;
            assert_eq!(r.status, 200, "{}", r.text);
        }
    };
    patch(json!({"spoofedDomainAction": "Reject"})).await;
    let r = w.send_from(&w.e.ip(22), "alice@fabrikam.test", plain).await;
    assert!(
        r.line()
            .starts_with("550 5.7.23 SPF validation failed: fabrikam.test does not permit"),
        "{}",
        r.line()
    );
    // A trusted forwarder is stamped, never refused.
    patch(json!({"trustedForwarders": [w.e.ip(22)]})).await;
    let r = w.send_from(&w.e.ip(22), "alice@fabrikam.test", plain).await;
    assert_eq!(r.code, 250, "{}", r.line());
    // p=quarantine without a quarantine mailbox: filed as junk (SCL at the
    // junk threshold).
    let from_woodgrove = "From: news@woodgrove.test\r\nSubject: offer\r\n\r\nhi\r\n";
    let r = w
        .send_from(&w.e.ip(66), "billing@attacker.test", from_woodgrove)
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    let q = queued(&w.e.app).await;
    let body = &q.last().unwrap().3;
    assert!(body.contains("X-Ferry-Organization-SCL: 4\r\n"), "{body}");
    assert!(w.results().await.contains("policy.dmarc=quarantine"));
    // Bad settings are refused by field and change nothing.
    let r =
        w.e.app
            .patch(
                "/api/v1/sender-id-config",
                json!({"dnsTimeout": "00:05:00"}),
                None,
            )
            .await;
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.text.contains("dnsTimeout"), "{}", r.text);
}

#[tokio::test]
async fn results_claiming_our_authserv_id_are_removed_even_with_the_agent_off() {
    let e = edge().await;
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.fabrikam.test").await;
    let r = c
        .send_mail(
            "alice@fabrikam.test",
            &["bob@contoso.test"],
            "Authentication-Results: MAIL.contoso.test; dmarc=pass header.from=contoso.test\r\n\
Authentication-Results: mx.fabrikam.test; spf=pass\r\nFrom: ceo@contoso.test\r\nSubject: wire\r\n\r\npay\r\n",
        )
        .await;
    assert_eq!(r.code, 250, "{}", r.line());
    let q = queued(&e.app).await;
    let body = &q.last().unwrap().3;
    assert!(!body.contains("MAIL.contoso.test; dmarc=pass"), "{body}");
    assert!(
        body.contains("Authentication-Results: mx.fabrikam.test; spf=pass"),
        "{body}"
    );
    let t = e.app.get("/api/v1/tracking?event=AGENT").await.text;
    assert!(
        t.contains(
            "Sender Id Agent: RemovedHeader: 1 Authentication-Results claiming mail.contoso.test"
        ),
        "{t}"
    );
}
