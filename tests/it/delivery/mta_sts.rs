//! MTA-STS (RFC 8461) on DNS-routed delivery: dnsmasq serves each test
//! domain's MX and `_mta-sts` TXT records, an HTTPS server on loopback
//! (Python's http.server with a certificate from the test CA, which Ferry
//! trusts as an anchor) serves their policies, and two private Postfix MX
//! hosts hold what they receive — one whose certificate names it, one
//! whose certificate names another host. `enforce` keeps mail from an MX
//! the policy does not list and from a certificate that does not name the
//! host, with the policy named in the queue's error and in tracking;
//! `testing` delivers; a policy behind a redirect, or over 64 KiB, is
//! ignored as the RFC says.

use std::io::BufRead;
use std::process::{Child, Command, Stdio};

use crate::delivery::setup::{Env, env, envelopes, eventually, hold_postfix};
use crate::support::pki::Ca;
use ferry::model::Role;
use serde_json::json;

/// The HTTPS policy server, killed when dropped.
struct PolicyServer(Child);

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const DOMAINS: [&str; 7] = [
    "a.test", "b.test", "c.test", "d.test", "e.test", "f.test", "g.test",
];

fn policy(mode: &str, mx: &str) -> String {
    format!("version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n")
}

fn policy_server(e: &Env, ca: &Ca) -> PolicyServer {
    let dir = e.app.dir.path().join("mta-sts");
    std::fs::create_dir_all(&dir).unwrap();
    let names: Vec<String> = DOMAINS.iter().map(|d| format!("mta-sts.{d}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let (crt, key) = ca.issue(&refs);
    std::fs::write(dir.join("server.crt"), crt).unwrap();
    std::fs::write(dir.join("server.key"), key).unwrap();
    let files = [
        ("mta-sts.a.test.txt", policy("enforce", "mx-a.test")),
        // b.test's MX (mx-a.test) is not the one its policy names.
        ("mta-sts.b.test.txt", policy("enforce", "mx-z.test")),
        // c.test's MX presents a certificate for another name.
        ("mta-sts.c.test.txt", policy("enforce", "*.mx.test")),
        ("mta-sts.d.test.txt", policy("testing", "*.mx.test")),
        // Behind a redirect: not followed, so no policy.
        (
            "mta-sts.e.test.redirect",
            "https://mta-sts.c.test/.well-known/mta-sts.txt".to_string(),
        ),
        // g.test's first MX presents a wrong certificate, its second a
        // right one: a day with both outcomes for its TLS report.
        ("mta-sts.g.test.txt", policy("enforce", "*.mx.test")),
        // Over 64 KiB: refused, so no policy.
        (
            "mta-sts.f.test.txt",
            policy("enforce", "mx-z.test") + &"x-padding: 0123456789abcdef\r\n".repeat(3000),
        ),
    ];
    for (name, body) in files {
        std::fs::write(dir.join(name), body).unwrap();
    }
    let mut child = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/mta-sts-server.py"
        ))
        .args([&e.ip(80), "443"])
        .arg(dir.join("server.crt"))
        .arg(dir.join("server.key"))
        .arg(&dir)
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready");
    PolicyServer(child)
}

#[tokio::test]
async fn mta_sts_policies_are_enforced_tested_and_ignored_as_the_rfc_says() {
    if !crate::support::peers::require(&["postfix", "postcat", "python3"]) {
        return;
    }
    let mut records = vec![
        "--host-record=mx-a.test,127.{net}.0.21".to_string(),
        "--host-record=a.mx.test,127.{net}.0.21".to_string(),
        "--host-record=b.mx.test,127.{net}.0.22".to_string(),
        "--mx-host=g.test,a.mx.test,20".to_string(),
        "--txt-record=_smtp._tls.g.test,v=TLSRPTv1; rua=mailto:tls@reports.test".to_string(),
    ];
    for d in DOMAINS {
        let mx = if matches!(d, "a.test" | "b.test") {
            "mx-a.test"
        } else {
            "b.mx.test"
        };
        records.push(format!("--mx-host={d},{mx},10"));
        records.push(format!("--host-record=mta-sts.{d},127.{{net}}.0.80"));
        records.push(format!("--txt-record=_mta-sts.{d},v=STSv1; id=20261130"));
    }
    let refs: Vec<&str> = records.iter().map(String::as_str).collect();
    let Some(e) = env(Role::Edge, &refs).await else {
        return;
    };
    let ca = Ca::new(e.app.dir.path());
    e.app
        .create(
            "/api/v1/certificates",
            json!({"source": "trustAnchor", "certificatePem": ca.cert_pem}),
        )
        .await;
    let dir = e.app.dir.path();
    let tls = |name: &str, file: &str| {
        let (crt, key) = ca.issue(&[name]);
        let (c, k) = (
            dir.join(format!("{file}.crt")),
            dir.join(format!("{file}.key")),
        );
        std::fs::write(&c, crt).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    };
    let (a_crt, a_key) = {
        let (crt, key) = ca.issue(&["mx-a.test", "a.mx.test"]);
        let (c, k) = (dir.join("mx-a.crt"), dir.join("mx-a.key"));
        std::fs::write(&c, crt).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    };
    // b.mx.test's certificate names another host.
    let (b_crt, b_key) = tls("somewhere.else.test", "mx-b");
    let mx_a = hold_postfix(&e, "mx-a", &e.ip(21), true, Some((&a_crt, &a_key)));
    let mx_b = hold_postfix(&e, "mx-b", &e.ip(22), true, Some((&b_crt, &b_key)));
    let _policies = policy_server(&e, &ca);
    // A "To Internet" connector: DNS routing, MTA-STS by default.
    let c = e
        .connector(json!({"name": "To Internet", "addressSpaces": ["*"], "port": 2525}))
        .await;
    assert_eq!(c["tlsPolicy"], "MtaSts", "{c}");
    // TLS reports on; they go to reports.test's recording peer.
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"tlsReportsEnabled": true}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let reports = crate::support::sink::Sink::start(
        &format!("{}:2525", e.ip(16)),
        crate::support::sink::SinkOptions::default(),
    )
    .await;
    e.connector(json!({"name": "To Reports", "addressSpaces": ["reports.test"], "smartHosts": [e.ip(16)], "port": 2525}))
        .await;

    for d in DOMAINS {
        e.submit(
            "alice@fabrikam.test",
            &[&format!("user@{d}")],
            &format!("to {d}"),
        )
        .await;
    }
    // Delivered: a.test (policy met), d.test (testing), e.test (redirect
    // not followed), f.test (oversize policy refused).
    eventually(30, "a.test and g.test delivered to their MX", || async {
        let a = envelopes(&mx_a);
        a.contains("recipient: user@a.test") && a.contains("recipient: user@g.test")
    })
    .await;
    eventually(
        30,
        "d, e and f delivered despite the certificate",
        || async {
            let b = envelopes(&mx_b);
            ["user@d.test", "user@e.test", "user@f.test"]
                .iter()
                .all(|r| b.contains(&format!("recipient: {r}")))
        },
    )
    .await;
    // Held back, with the policy named: b.test (MX not listed) and c.test
    // (the certificate does not name the MX).
    eventually(30, "b.test and c.test wait on their policies", || async {
        e.queue_error("b.test")
            .await
            .contains("MTA-STS policy of b.test")
            && e.queue_error("c.test")
                .await
                .contains("MTA-STS policy of c.test")
    })
    .await;
    let b = e.queue_error("b.test").await;
    assert!(
        b.contains(
            "4.7.5 MTA-STS policy of b.test (enforce, id 20261130): no MX host of b.test is allowed"
        ) && b.contains("mx-a.test not in mx: mx-z.test"),
        "{b}"
    );
    let c = e.queue_error("c.test").await;
    assert!(
        c.starts_with("MTA-STS policy of c.test (enforce, id 20261130): ") && c.contains("4.7.5"),
        "{c}"
    );
    assert!(!envelopes(&mx_a).contains("user@b.test"));
    assert!(!envelopes(&mx_b).contains("user@c.test"));
    // Tracking shows the same on the DEFER events.
    let t = e.app.get("/api/v1/tracking?event=DEFER").await.text;
    assert!(
        t.contains("MTA-STS policy of b.test") && t.contains("MTA-STS policy of c.test"),
        "{t}"
    );

    // The same domains behind an Opportunistic connector deliver c.test.
    let r = e
        .app
        .patch(
            "/api/v1/send-connectors/To%20Internet",
            json!({"tlsPolicy": "Opportunistic"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    eventually(30, "c.test delivered without the policy", || async {
        envelopes(&mx_b).contains("recipient: user@c.test")
    })
    .await;

    tls_report_of_a_day_with_both_outcomes(&e, &reports).await;
}

/// The TLS report (RFC 8460) of g.test: each delivery attempt fails one
/// session on the wrong certificate of b.mx.test and succeeds one on
/// a.mx.test. It goes to the address of g.test's `_smtp._tls` record, and
/// its JSON validates against RFC 8460's format (`tests/schemas/rfc8460-tlsrpt.schema.json`, by
/// Python's jsonschema); the other domains publish no such record.
async fn tls_report_of_a_day_with_both_outcomes(e: &Env, inbox: &crate::support::sink::Sink) {
    let Some(python) = crate::support::python::with(&["jsonschema", "rfc3339_validator"]) else {
        return;
    };
    let r = e.app.get("/api/v1/tls-reports").await;
    assert_eq!(r.body["enabled"], true, "{}", r.text);
    // Each delivery attempt to g.test makes both sessions. On a loaded
    // machine an attempt may be made again (a clean-clone CI run counted
    // 4), so the count is the attempts' and the report must carry it whole.
    let sessions = r.body["pending"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["policyDomain"] == "g.test")
        .and_then(|p| p["sessions"].as_i64())
        .unwrap_or_else(|| panic!("{}", r.text));
    assert!(sessions >= 2, "{}", r.text);
    let r = e.app.post("/api/v1/tls-reports/send", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let all = r.body["reports"].as_array().unwrap().clone();
    let g = all
        .iter()
        .find(|x| x["policyDomain"] == "g.test")
        .unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(g["status"], "Queued", "{g}");
    let (successes, failures) = (
        g["successes"].as_i64().unwrap(),
        g["failures"].as_i64().unwrap(),
    );
    assert!(successes >= 1 && failures >= 1, "{g}");
    assert_eq!(successes + failures, sessions, "{g}");
    assert_eq!(g["recipients"], json!(["tls@reports.test"]));
    let c = all.iter().find(|x| x["policyDomain"] == "c.test").unwrap();
    assert_eq!(c["status"], "NotSent", "{c}");
    assert!(
        c["detail"]
            .as_str()
            .unwrap()
            .contains("publishes no report address"),
        "{c}"
    );
    eventually(30, "the TLS report arrives", || async {
        !inbox.messages().is_empty()
    })
    .await;
    let (sender, rcpts, data) = inbox.messages().remove(0);
    assert_eq!(rcpts, vec!["tls@reports.test"]);
    assert!(sender.starts_with("postmaster@"), "{sender}");
    assert!(data.contains("TLS-Report-Domain: g.test"), "{data}");
    assert!(
        data.contains("report-type=\"tlsrpt\"") || data.contains("report-type=tlsrpt"),
        "{data}"
    );
    const CHECK: &str = r#"
import sys, json, email, gzip, jsonschema
m = email.message_from_bytes(sys.stdin.buffer.read())
parts = [p for p in m.walk() if p.get_content_type() == 'application/tlsrpt+gzip']
assert len(parts) == 1, [p.get_content_type() for p in m.walk()]
report = json.loads(gzip.decompress(parts[0].get_payload(decode=True)))
schema = json.load(open(sys.argv[1]))
checker = jsonschema.Draft202012Validator.FORMAT_CHECKER
jsonschema.Draft202012Validator(schema, format_checker=checker).validate(report)
# The check can fail: a result-type the RFC does not define.
bad = json.loads(json.dumps(report))
bad['policies'][0].setdefault('failure-details', [{}])[0]['result-type'] = 'bogus'
try:
    jsonschema.Draft202012Validator(schema, format_checker=checker).validate(bad)
    print('INVALID ACCEPTED')
except jsonschema.ValidationError:
    pass
print(json.dumps(report))
"#;
    let (ok, out) = crate::support::python::run(
        &python,
        CHECK,
        &[concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/schemas/rfc8460-tlsrpt.schema.json"
        )],
        data.as_bytes(),
    );
    assert!(ok, "{out}");
    assert!(!out.contains("INVALID ACCEPTED"), "{out}");
    let report: serde_json::Value = serde_json::from_str(out.lines().last().unwrap()).unwrap();
    let p = &report["policies"][0];
    assert_eq!(p["policy"]["policy-type"], "sts");
    assert_eq!(p["policy"]["policy-domain"], "g.test");
    assert_eq!(p["policy"]["mx-host"], json!(["*.mx.test"]));
    assert!(
        p["policy"]["policy-string"]
            .as_array()
            .unwrap()
            .contains(&json!("mode: enforce"))
    );
    assert_eq!(
        p["summary"],
        json!({"total-successful-session-count": successes, "total-failure-session-count": failures})
    );
    let f = &p["failure-details"][0];
    assert_eq!(f["result-type"], "certificate-host-mismatch", "{f}");
    assert_eq!(f["receiving-mx-hostname"], "b.mx.test");
    assert_eq!(f["receiving-ip"], e.ip(22));
    assert_eq!(f["failed-session-count"], failures);
}
