//! DMARC aggregate reports end to end: inbound mail evaluated against a
//! domain that asks for reports (dnsmasq serves its records), the report
//! made on request, queued and delivered through a send connector to a
//! recording sink; there it is DKIM-verified by dkimpy, its gzipped XML
//! validated by xmllint against RFC 7489's schema (as Debian's Mail::DMARC
//! ships it), and its rows read back with Python's XML parser. Addresses
//! the domain did not authorise, or whose size limit the report exceeds,
//! are left out and say why.

use serde_json::{Value, json};

use super::{DKIM_VERIFY, openssl, txt};
use crate::support::client::Client;
use crate::support::dns::Dnsmasq;
use crate::support::sink::{Sink, SinkOptions};

/// dkimpy signs stdin with the PEM key in argv[1] for d=argv[2], s=argv[3].
const SIGN: &str = r#"
import sys, dkim
msg = sys.stdin.buffer.read()
key = open(sys.argv[1], 'rb').read()
sys.stdout.buffer.write(dkim.sign(msg, sys.argv[3].encode(), sys.argv[2].encode(), key) + msg)
"#;

/// The report's attachment: its file name, then the gunzipped XML.
const ATTACHMENT: &str = r#"
import sys, email, gzip
m = email.message_from_bytes(sys.stdin.buffer.read())
parts = [p for p in m.walk() if p.get_content_type() == 'application/gzip']
assert len(parts) == 1, [p.get_content_type() for p in m.walk()]
print(parts[0].get_filename())
sys.stdout.write(gzip.decompress(parts[0].get_payload(decode=True)).decode())
"#;

/// The XML on stdin as JSON: metadata, policy and records.
const READ: &str = r#"
import sys, json, xml.etree.ElementTree as ET
f = ET.fromstring(sys.stdin.read())
t = lambda e, p: e.findtext(p)
out = {
  'version': t(f, 'version'), 'org': t(f, 'report_metadata/org_name'),
  'email': t(f, 'report_metadata/email'), 'id': t(f, 'report_metadata/report_id'),
  'policy': {c.tag: c.text for c in f.find('policy_published')},
  'records': sorted([{
      'ip': t(r, 'row/source_ip'), 'count': int(t(r, 'row/count')),
      'disposition': t(r, 'row/policy_evaluated/disposition'),
      'dkim': t(r, 'row/policy_evaluated/dkim'), 'spf': t(r, 'row/policy_evaluated/spf'),
      'reasons': [t(x, 'type') for x in r.findall('row/policy_evaluated/reason')],
      'from': t(r, 'identifiers/header_from'), 'envelope_from': t(r, 'identifiers/envelope_from'),
      'dkim_results': [[t(d, 'domain'), t(d, 'selector'), t(d, 'result')] for d in r.findall('auth_results/dkim')],
      'spf_results': [[t(s, 'domain'), t(s, 'scope'), t(s, 'result')] for s in r.findall('auth_results/spf')],
  } for r in f.findall('record')], key=lambda r: r['ip']),
}
print(json.dumps(out))
"#;

const LETTER: &str = "From: Alice <alice@fabrikam.test>\r\nTo: bob@contoso.test\r\nSubject: Invoice\r\n\
Date: Mon, 30 Nov 2026 09:00:00 +0000\r\nMessage-ID: <invoice-7@fabrikam.test>\r\n\r\nThe invoice is attached.\r\n";

/// RFC 7489's schema as published declares a target namespace without
/// binding a prefix to it, so its own type references do not resolve and
/// no validator compiles it (xmllint: "References from this schema to
/// components in no namespace are not allowed"). Without the attribute it
/// is the schema of reports in no namespace: the form of the RFC's
/// examples and of the large reporters'. Nothing else is changed.
fn rfc7489_schema(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let out = std::process::Command::new("bash")
        .args(["tests/peers/dmarc-schema.sh", "path"])
        .output()
        .ok()?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !crate::support::peers::require_available(
        "RFC 7489's schema (bash tests/peers/dmarc-schema.sh fetch)",
        out.status.success() && !path.is_empty(),
    ) {
        return None;
    }
    let xsd = std::fs::read_to_string(&path).unwrap();
    assert!(
        xsd.contains("targetNamespace=\"http://dmarc.org/dmarc-xml/0.1\""),
        "{path}"
    );
    let fixed = dir.join("rua-schema.xsd");
    std::fs::write(
        &fixed,
        xsd.replace(" targetNamespace=\"http://dmarc.org/dmarc-xml/0.1\"", ""),
    )
    .unwrap();
    Some(fixed)
}

fn xmllint(schema: &std::path::Path, xml: &std::path::Path) -> (bool, String) {
    let out = std::process::Command::new("xmllint")
        .args(["--noout", "--schema"])
        .arg(schema)
        .arg(xml)
        .output()
        .expect("xmllint runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn aggregate_reports_are_valid_signed_and_delivered_to_the_authorised_addresses() {
    if !crate::support::peers::require(&["dnsmasq", "dig", "openssl", "xmllint"]) {
        return;
    }
    let Some(python) = crate::support::python::with(&["dkim", "dns.resolver"]) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let Some(schema) = rfc7489_schema(dir.path()) else {
        return;
    };
    let e = crate::support::scenario::edge().await;
    // Ferry's own key signs the reports it sends from contoso.test.
    let key = e
        .app
        .post(
            "/api/v1/dkim-signing-keys",
            json!({"domain": "contoso.test", "selector": "rep", "algorithm": "Ed25519", "state": "Active"}),
        )
        .await;
    assert_eq!(key.status, 201, "{}", key.text);
    // fabrikam.test signs with its own key (dkimpy) and asks for reports
    // at four addresses: its own, an external one it authorised, its own
    // with a 1 KB limit no report fits, and an external one it did not
    // authorise.
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
    use base64::Engine;
    let public = base64::engine::general_purpose::STANDARD.encode(openssl(&[
        "pkey",
        "-in",
        key_path.to_str().unwrap(),
        "-pubout",
        "-outform",
        "DER",
    ]));
    let records = vec![
        txt(
            key.body["dnsRecordName"].as_str().unwrap(),
            key.body["dnsRecord"].as_str().unwrap(),
        ),
        txt("fabrikam.test", &format!("v=spf1 ip4:{} -all", e.internet)),
        txt(
            "py._domainkey.fabrikam.test",
            &format!("v=DKIM1; k=rsa; p={public}"),
        ),
        txt(
            "_dmarc.fabrikam.test",
            "v=DMARC1; p=reject; adkim=s; rua=mailto:dmarc@fabrikam.test,mailto:agg@reports.test,\
             mailto:tiny@fabrikam.test!1k,mailto:nope@elsewhere.test",
        ),
        txt("fabrikam.test._report._dmarc.reports.test", "v=DMARC1"),
        // A domain without rua: evaluated, never reported.
        txt("woodgrove.test", &format!("v=spf1 ip4:{} -all", e.internet)),
        txt("_dmarc.woodgrove.test", "v=DMARC1; p=none"),
    ];
    let dns = Dnsmasq::start(&e.ip(53), &records).await;
    let sink = Sink::start(&format!("{}:2525", e.ip(30)), SinkOptions::default()).await;
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
    e.app
        .create(
            "/api/v1/send-connectors",
            json!({"name": "Reports", "addressSpaces": ["fabrikam.test", "reports.test", "elsewhere.test"],
                   "smartHosts": [e.ip(30)], "port": 2525}),
        )
        .await;
    // Off by default: nothing is counted, and "send now" says why not.
    let r = e.app.get("/api/v1/sender-id-config").await;
    assert_eq!(r.body["dmarcReportsEnabled"], false, "{}", r.text);
    let r = e.app.post("/api/v1/dmarc-reports/send", json!({})).await;
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(
        r.body["errors"][0]["field"], "dmarcReportsEnabled",
        "{}",
        r.text
    );
    let r = e
        .app
        .patch(
            "/api/v1/sender-id-config",
            json!({"dmarcReportsEnabled": true, "dmarcReportAddress": "dmarc-reports@contoso.test",
                   "dmarcReportOrgName": "Contoso Edge"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let signed = {
        let (ok, out) = crate::support::python::run(
            &python,
            SIGN,
            &[key_path.to_str().unwrap(), "fabrikam.test", "py"],
            LETTER.as_bytes(),
        );
        assert!(ok, "dkimpy: {out}");
        out
    };
    let send = |ip: String, body: String| {
        let to = e.e3();
        async move {
            let (mut c, _) = Client::open(&ip, &to).await;
            c.cmd("EHLO mta.fabrikam.test").await;
            c.send_mail("alice@fabrikam.test", &["bob@contoso.test"], &body)
                .await
        }
    };
    // Twice from fabrikam's own host, signed: DMARC passes.
    for _ in 0..2 {
        let r = send(e.internet.clone(), signed.clone()).await;
        assert_eq!(r.code, 250, "{}", r.line());
    }
    // Once from a host fabrikam never named, unsigned: refused by p=reject.
    let r = send(e.ip(66), LETTER.to_string()).await;
    assert_eq!(r.code, 550, "{}", r.line());
    assert!(r.line().contains("DMARC"), "{}", r.line());
    // woodgrove.test publishes no rua.
    let woodgrove = LETTER.replace("alice@fabrikam.test", "ann@woodgrove.test");
    let (mut c, _) = Client::open(&e.internet, &e.e3()).await;
    c.cmd("EHLO mta.woodgrove.test").await;
    let r = c
        .send_mail("ann@woodgrove.test", &["bob@contoso.test"], &woodgrove)
        .await;
    assert_eq!(r.code, 250, "{}", r.line());

    let r = e.app.get("/api/v1/dmarc-reports").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["enabled"], true);
    assert_eq!(
        r.body["pending"],
        json!([{"policyDomain": "fabrikam.test", "messages": 3, "sinceS": r.body["pending"][0]["sinceS"]}]),
        "{}",
        r.text
    );

    let r = e.app.post("/api/v1/dmarc-reports/send", json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let reports = r.body["reports"].as_array().unwrap().clone();
    assert_eq!(reports.len(), 1, "{}", r.text);
    let report = &reports[0];
    assert_eq!(report["policyDomain"], "fabrikam.test");
    assert_eq!(report["status"], "Queued", "{report}");
    assert_eq!(report["messages"], 3);
    assert_eq!(report["records"], 2);
    assert_eq!(
        report["recipients"],
        json!(["dmarc@fabrikam.test", "agg@reports.test"]),
        "{report}"
    );
    let detail = report["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "nope@elsewhere.test: not authorised by fabrikam.test._report._dmarc.elsewhere.test"
        ),
        "{detail}"
    );
    assert!(
        detail.contains("tiny@fabrikam.test: the report (")
            && detail.contains("over its limit of 1024 bytes"),
        "{detail}"
    );
    // Reported rows are gone; a second "send now" has nothing to send.
    let r = e.app.get("/api/v1/dmarc-reports").await;
    assert_eq!(r.body["pending"], json!([]), "{}", r.text);
    assert_eq!(r.body["reports"][0]["reportId"], report["reportId"]);
    let r = e.app.post("/api/v1/dmarc-reports/send", json!({})).await;
    assert_eq!(r.body["reports"], json!([]), "{}", r.text);

    // Delivered through the queue and the send connector to the sink.
    let mut got = None;
    for _ in 0..200 {
        if let Some(m) = sink.messages().into_iter().next() {
            got = Some(m);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (sender, rcpts, data) = got.expect("the report reaches the sink");
    assert_eq!(sender, "dmarc-reports@contoso.test");
    assert_eq!(rcpts, vec!["dmarc@fabrikam.test", "agg@reports.test"]);
    let report_id = report["reportId"].as_str().unwrap();
    // The submitter is the server's FQDN.
    let ts = e.app.get("/api/v1/transport-settings").await;
    let fqdn = ts.body["serverFqdn"].as_str().unwrap().to_string();
    let unfolded = data.replace("\r\n\t", " ").replace("\r\n ", " ");
    assert!(
        unfolded.contains(&format!(
            "Subject: Report Domain: fabrikam.test Submitter: {fqdn} Report-ID: <{report_id}>\r\n"
        )),
        "{data}"
    );
    // DKIM-signed with contoso.test's key; dkimpy verifies it, and fails
    // it once changed.
    let (ok, out) =
        crate::support::python::run(&python, DKIM_VERIFY, &[&dns.server], data.as_bytes());
    assert!(ok, "dkimpy: {out}\n{data}");
    assert!(out.contains("d=contoso.test"), "{out}");
    let changed = data.replace("Messages: 3", "Messages: 4");
    assert_ne!(changed, data);
    let (ok, _) =
        crate::support::python::run(&python, DKIM_VERIFY, &[&dns.server], changed.as_bytes());
    assert!(!ok, "a changed report must fail DKIM");

    let (ok, out) = crate::support::python::run(&python, ATTACHMENT, &[], data.as_bytes());
    assert!(ok, "{out}");
    let (filename, xml) = out.split_once('\n').unwrap();
    let begin = report["beginS"].as_i64().unwrap();
    let end = report["endS"].as_i64().unwrap();
    assert!(begin <= end, "{report}");
    assert_eq!(
        filename,
        format!("{fqdn}!fabrikam.test!{begin}!{end}.xml.gz")
    );
    // Valid against RFC 7489's schema; and the check can fail.
    let xml_path = dir.path().join("report.xml");
    std::fs::write(&xml_path, xml).unwrap();
    let (valid, why) = xmllint(&schema, &xml_path);
    assert!(valid, "{why}\n{xml}");
    let broken = dir.path().join("broken.xml");
    std::fs::write(&broken, xml.replace("<pct>100</pct>", "")).unwrap();
    let (valid, why) = xmllint(&schema, &broken);
    assert!(!valid && why.contains("pct"), "{why}");

    let (ok, out) = crate::support::python::run(&python, READ, &[], xml.as_bytes());
    assert!(ok, "{out}");
    let parsed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(parsed["version"], "1.0");
    assert_eq!(parsed["org"], "Contoso Edge");
    assert_eq!(parsed["email"], "dmarc-reports@contoso.test");
    assert_eq!(parsed["id"], report_id);
    assert_eq!(
        parsed["policy"],
        json!({"domain": "fabrikam.test", "adkim": "s", "aspf": "r", "p": "reject", "sp": "reject",
               "pct": "100", "fo": "0"})
    );
    let spf_pass = json!([
        ["fabrikam.test", "mfrom", "pass"],
        ["mta.fabrikam.test", "helo", "none"]
    ]);
    assert_eq!(
        parsed["records"],
        json!([
            {"ip": e.internet, "count": 2, "disposition": "none", "dkim": "pass", "spf": "pass", "reasons": [],
             "from": "fabrikam.test", "envelope_from": "fabrikam.test",
             "dkim_results": [["fabrikam.test", "py", "pass"]], "spf_results": spf_pass},
            {"ip": e.ip(66), "count": 1, "disposition": "reject", "dkim": "fail", "spf": "fail", "reasons": [],
             "from": "fabrikam.test", "envelope_from": "fabrikam.test",
             "dkim_results": [], "spf_results": [["fabrikam.test", "mfrom", "fail"], ["mta.fabrikam.test", "helo", "none"]]},
        ]),
        "{xml}"
    );
}
