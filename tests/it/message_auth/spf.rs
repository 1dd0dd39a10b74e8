//! SPF verdicts cross-checked with pyspf (PyPI) on the same records, served
//! by dnsmasq: mechanisms, include and redirect, macros, the void-lookup
//! and ten-lookup limits, and malformed records — each case sent to Ferry
//! as real mail from its own 127.x address and read back from the
//! Authentication-Results header Ferry wrote.

use serde_json::json;

use crate::support::client::Client;
use crate::support::dns::Dnsmasq;
use crate::support::scenario::{edge, queued};

/// pyspf's verdict for argv: ip, sender, helo, the DNS server.
const PYSPF: &str = r#"
import sys, spf, dns.resolver
ip, sender, helo, server = sys.argv[1:5]
host, port = server.rsplit(':', 1)
r = dns.resolver.Resolver(configure=False)
r.nameservers = [host]
r.port = int(port)
dns.resolver.default_resolver = r
print(spf.check2(i=ip, s=sender, h=helo)[0])
"#;

#[tokio::test]
async fn spf_verdicts_agree_with_pyspf_on_every_case() {
    if !crate::support::peers::require(&["dnsmasq", "dig"]) {
        return;
    }
    let Some(python) = crate::support::python::with(&["spf", "dns.resolver"]) else {
        return;
    };
    let e = edge().await;
    let (a, b) = (e.ip(30), e.ip(31));
    let t = |name: &str, v: &str| format!("--txt-record={name},{v}");
    let mut records = vec![
        t("s1.test", &format!("v=spf1 ip4:{a} -all")),
        t("s2.test", &format!("v=spf1 ip4:{a} ~all")),
        t("s3.test", "v=spf1 ?all"),
        t("s5.test", "v=spf1 include:s1.test -all"),
        t("s6.test", "v=spf1 redirect=s1.test"),
        t("s7.test", "v=spf1 a -all"),
        format!("--host-record=s7.test,{a}"),
        t("s8.test", "v=spf1 mx -all"),
        "--mx-host=s8.test,mx.s8.test,10".to_string(),
        format!("--host-record=mx.s8.test,{b}"),
        t("s9.test", "v=spf1 exists:%{i}.ex.s9.test -all"),
        format!("--host-record={a}.ex.s9.test,127.0.0.2"),
        t("s10.test", &format!("v=spf1 ip4:{a}/24 -all")),
        t("s11.test", "v=spf1 include:nospf.s11.test -all"),
        t("s12.test", "v=spf1 +all"),
        t("s12.test", "v=spf1 -all"),
        t(
            "s14.test",
            "v=spf1 a:v1.s14.test a:v2.s14.test a:v3.s14.test -all",
        ),
        t("s15.test", &format!("v=spf1 -ip4:{a} +all")),
        t("s16.test", "v=spf1 ip4:999.1.1.1 -all"),
        t("s17.test", "v=spf1 exists:%{l}.users.s17.test -all"),
        "--host-record=bob.users.s17.test,127.0.0.2".to_string(),
        t("s18.test", "v=spf1 ip6:::1 -all"),
        t("s19.test", "v=spf1 a:host.s19.test/24 -all"),
        format!("--host-record=host.s19.test,{b}"),
    ];
    // Eleven DNS mechanisms: past RFC 7208's limit of ten.
    let many: Vec<String> = (1..=11).map(|i| format!("a:h{i}.s13.test")).collect();
    records.push(t("s13.test", &format!("v=spf1 {} -all", many.join(" "))));
    for i in 1..=11 {
        records.push(format!("--host-record=h{i}.s13.test,127.0.0.{}", 100 + i));
    }
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
    // (source address, MAIL FROM, the verdict RFC 7208 gives)
    let cases: Vec<(&str, &str, &str)> = vec![
        (&a, "x@s1.test", "pass"),
        (&b, "x@s1.test", "fail"),
        (&b, "x@s2.test", "softfail"),
        (&a, "x@s3.test", "neutral"),
        (&a, "x@s4.test", "none"),
        (&a, "x@s5.test", "pass"),
        (&b, "x@s5.test", "fail"),
        (&a, "x@s6.test", "pass"),
        (&b, "x@s6.test", "fail"),
        (&a, "x@s7.test", "pass"),
        (&b, "x@s7.test", "fail"),
        (&b, "x@s8.test", "pass"),
        (&a, "x@s8.test", "fail"),
        (&a, "x@s9.test", "pass"),
        (&b, "x@s9.test", "fail"),
        (&b, "x@s10.test", "pass"),
        (&a, "x@s11.test", "permerror"),
        (&a, "x@s12.test", "permerror"),
        (&b, "x@s13.test", "permerror"),
        (&b, "x@s14.test", "permerror"),
        (&a, "x@s15.test", "fail"),
        (&b, "x@s15.test", "pass"),
        (&a, "x@s16.test", "permerror"),
        (&a, "bob@s17.test", "pass"),
        (&a, "eve@s17.test", "fail"),
        (&a, "x@s18.test", "fail"),
        (&a, "x@s19.test", "pass"),
    ];
    let mut disagreements = vec![];
    for (ip, sender, expected) in &cases {
        let (mut c, _) = Client::open(ip, &e.e3()).await;
        c.cmd("EHLO client.spf.test").await;
        let r = c
            .send_mail(sender, &["bob@contoso.test"], "Subject: spf\r\n\r\nhi\r\n")
            .await;
        assert_eq!(r.code, 250, "{sender} from {ip}: {}", r.line());
        let q = queued(&e.app).await;
        let body = q.last().unwrap().3.replace("\r\n\t", " ");
        let ferry = body
            .split(";")
            .map(str::trim)
            .find(|p| p.starts_with("spf=") && p.contains("smtp.mailfrom="))
            .and_then(|p| p.strip_prefix("spf="))
            .and_then(|p| p.split_whitespace().next())
            .unwrap_or_else(|| panic!("no SPF result for {sender}: {body}"))
            .to_string();
        let (ok, out) = crate::support::python::run(
            &python,
            PYSPF,
            &[ip, sender, "client.spf.test", &dns.server],
            b"",
        );
        assert!(ok, "pyspf: {out}");
        let pyspf = out.trim().to_string();
        if ferry != pyspf || ferry != *expected {
            disagreements.push(format!(
                "{sender} from {ip}: Ferry {ferry}, pyspf {pyspf}, RFC 7208 {expected}"
            ));
        }
    }
    assert!(cases.len() >= 20);
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

#[tokio::test]
async fn the_spf_lint_says_which_of_our_domains_authorize_the_addresses_mail_leaves_from() {
    if !crate::support::peers::require(&["dnsmasq", "dig"]) {
        return;
    }
    let e = edge().await;
    let out = e.external.clone();
    let dns = Dnsmasq::start(
        &e.ip(53),
        &[
            format!("--txt-record=contoso.test,v=spf1 ip4:{out} -all"),
            "--txt-record=woodgrove.test,v=spf1 ip4:192.0.2.1 -all".to_string(),
            "--txt-record=broken.test,v=spf1 ip4:999.0.0.1 -all".to_string(),
        ],
    )
    .await;
    for d in ["woodgrove.test", "tailspin.test", "broken.test"] {
        e.app
            .create("/api/v1/accepted-domains", json!({"domainName": d}))
            .await;
    }
    let r = e
        .app
        .patch(
            "/api/v1/transport-settings",
            json!({"externalDNSServers": [dns.server], "externalIPAddress": out}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    for body in [
        json!({"name": "To Internet", "addressSpaces": ["*"]}),
        json!({"name": "Via relay", "addressSpaces": ["*;10"], "smartHosts": ["relay.contoso.test"]}),
    ] {
        let r = e.app.post("/api/v1/send-connectors", body).await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = e.app.get("/api/v1/spf-check").await;
    assert_eq!(r.status, 200, "{}", r.text);
    let by = |d: &str| {
        r.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["domain"] == d)
            .cloned()
            .unwrap_or_else(|| panic!("{d} in {}", r.text))
    };
    let path = |d: &str, c: &str| {
        by(d)["paths"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["connector"] == c)
            .cloned()
            .unwrap()
    };
    assert_eq!(
        path("contoso.test", "To Internet")["result"],
        "pass",
        "{}",
        r.text
    );
    assert_eq!(
        path("contoso.test", "To Internet")["sourceAddress"],
        out.as_str()
    );
    assert_eq!(
        path("woodgrove.test", "To Internet")["result"],
        "fail",
        "{}",
        r.text
    );
    assert!(
        path("woodgrove.test", "To Internet")["explanation"]
            .as_str()
            .unwrap()
            .contains(&format!("add {out}")),
        "{}",
        r.text
    );
    assert_eq!(path("tailspin.test", "To Internet")["result"], "none");
    assert_eq!(path("broken.test", "To Internet")["result"], "permerror");
    // Through a smart host Ferry cannot know the address: it says so.
    assert_eq!(path("contoso.test", "Via relay")["result"], "unknown");
    assert_eq!(by("contoso.test")["verdict"], "attention");
    assert_eq!(
        by("contoso.test")["records"][0],
        format!("v=spf1 ip4:{out} -all")
    );
}
