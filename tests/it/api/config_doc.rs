//! Configuration as code (issue 20): `GET /api/v1/config` exports the whole
//! configuration as one document, `PUT /api/v1/config` plans (`dryRun`) or
//! applies one in a single transaction.

use crate::support::app::{Resp, TestApp};
use crate::support::pki::Ca;
use ferry::model::Role;
use serde_json::{Value, json};

/// PUTs a document (JSON, or YAML text with `yaml`).
pub async fn put_doc(
    app: &TestApp,
    body: &str,
    yaml: bool,
    dry_run: bool,
    if_match: Option<&str>,
) -> Resp {
    let mut req = app
        .client
        .put(format!("{}/api/v1/config?dryRun={dry_run}", app.base))
        .bearer_auth(&app.token)
        .header(
            "Content-Type",
            if yaml {
                "application/yaml"
            } else {
                "application/json"
            },
        )
        .body(body.to_string());
    if let Some(v) = if_match {
        req = req.header("If-Match", v);
    }
    let r = req.send().await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let text = r.text().await.unwrap();
    Resp {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// The export as text, and its ETag.
pub async fn export(app: &TestApp, accept: &str) -> (String, String) {
    let r = app
        .client
        .get(format!("{}/api/v1/config", app.base))
        .bearer_auth(&app.token)
        .header("Accept", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let tag = r.headers()["etag"].to_str().unwrap().to_string();
    (r.text().await.unwrap(), tag)
}

/// The objects a plan does something to: (section/name, action).
fn actions(plan: &Value) -> Vec<(String, String)> {
    plan["objects"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["action"] != "Unchanged")
        .map(|o| {
            (
                format!(
                    "{}/{}",
                    o["section"].as_str().unwrap(),
                    o["name"].as_str().unwrap_or("")
                ),
                o["action"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn openssl(args: &[&str]) -> String {
    let out = std::process::Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl");
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_export_applied_on_a_fresh_server_exports_the_same_bytes() {
    let mut a = TestApp::spawn(Role::Edge).await;
    let ca = Ca::new(a.dir.path());
    let (crt, key) = ca.issue(&["mail.contoso.test", "edge01.contoso.test"]);
    let cert = a
        .create(
            "/api/v1/certificates",
            json!({"source": "import", "certificatePem": crt, "privateKeyPem": key, "friendlyName": "mail"}),
        )
        .await;
    a.create(
        "/api/v1/certificates",
        json!({"source": "trustAnchor", "certificatePem": ca.cert_pem}),
    )
    .await;
    // The self-signed certificate of first start is this server's own:
    // its key cannot be exported, so the configuration leaves it out.
    for c in a.get("/api/v1/certificates").await.body["items"]
        .as_array()
        .unwrap()
    {
        if c["id"] != cert["id"] && c["kind"] == "Certificate" {
            let r = a
                .delete(
                    &format!("/api/v1/certificates/{}", c["id"].as_str().unwrap()),
                    None,
                )
                .await;
            assert_eq!(r.status, 204, "{}", r.text);
        }
    }
    let n = a.net;
    a.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    a.create(
        "/api/v1/accepted-domains",
        json!({"name": "Fabrikam", "domainName": "fabrikam.test", "domainType": "InternalRelay"}),
    )
    .await;
    a.create(
        "/api/v1/credentials",
        json!({"name": "Hub relay", "kind": "SmartHost", "userName": "edge01", "password": "S3cret-Hub-Relay!"}),
    )
    .await;
    a.create(
        "/api/v1/send-connectors",
        json!({"name": "To Hub", "usage": "Internal", "addressSpaces": ["SMTP:--;1"],
               "smartHosts": [format!("127.{n}.0.9")], "smartHostAuthMechanism": "BasicAuthRequireTLS",
               "authenticationCredential": "Hub relay"}),
    )
    .await;
    a.create(
        "/api/v1/receive-connectors",
        json!({"name": "Partners", "usage": "Partner", "bindings": [format!("127.{n}.0.2:2525")],
               "remoteIpRanges": [format!("127.{n}.0.40/29")]}),
    )
    .await;
    a.create(
        "/api/v1/ip-block-list-entries",
        json!({"ipRange": "127.66.0.0/16", "comment": "spammers"}),
    )
    .await;
    // An Internet connector whose ranges were narrowed after creation
    // (New-ReceiveConnector -Internet takes none; the document states them).
    a.create(
        "/api/v1/receive-connectors",
        json!({"name": "Internet", "usage": "Internet", "bindings": [format!("127.{n}.0.3:2525")]}),
    )
    .await;
    let r = a
        .patch(
            "/api/v1/receive-connectors/Internet",
            json!({"remoteIpRanges": ["127.0.0.0/8"]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    a.create(
        "/api/v1/ip-block-list-providers",
        json!({"name": "Zen", "lookupDomain": "zen.dnsbl.test"}),
    )
    .await;
    a.create(
        "/api/v1/transport-rules",
        json!({"name": "No exe", "conditions": {"subjectMatchesPatterns": ["invoice"]},
               "actions": {"setScl": 6}}),
    )
    .await;
    a.create(
        "/api/v1/address-rewrite-entries",
        json!({"name": "corp", "internalAddress": "corp.contoso.test", "externalAddress": "contoso.test"}),
    )
    .await;
    let hook = a
        .create(
            "/api/v1/webhooks",
            json!({"name": "ops", "url": "http://127.0.0.1:9/hook", "events": ["DELIVER"]}),
        )
        .await;
    let dkim_pem = openssl(&["genpkey", "-algorithm", "ed25519"]);
    a.create(
        "/api/v1/dkim-signing-keys",
        json!({"domain": "contoso.test", "algorithm": "Ed25519", "selector": "s1", "privateKeyPem": dkim_pem}),
    )
    .await;
    let r = a
        .patch(
            "/api/v1/transport-settings",
            json!({"messageRetryInterval": "00:02:00"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = a
        .patch(
            "/api/v1/sender-filter-config",
            json!({"blockedDomains": ["spam.test"]}),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);

    let (text, _) = export(&a, "application/json").await;
    assert!(!text.contains("S3cret-Hub-Relay!") && !text.contains("PRIVATE KEY"));
    let (yaml, _) = export(&a, "application/yaml").await;
    let from_yaml: Value = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(from_yaml, serde_json::from_str::<Value>(&text).unwrap());
    // The listeners' addresses move with the configuration: A gives way.
    a.app.take().unwrap().stop().await.unwrap();

    // The secrets, by reference to files in the new server's --secrets-dir.
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("hub-relay"), "S3cret-Hub-Relay!\n").unwrap();
    std::fs::write(secrets.path().join("mail.key"), &key).unwrap();
    std::fs::write(secrets.path().join("dkim.pem"), &dkim_pem).unwrap();
    std::fs::write(
        secrets.path().join("ops-hook"),
        hook["secret"].as_str().unwrap(),
    )
    .unwrap();
    let dir = secrets.path().to_path_buf();
    let b = TestApp::spawn_with(Role::Edge, |s| s.secrets_dir = Some(dir)).await;
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["credentials"]["Hub relay"]["password"] = json!({"file": "hub-relay"});
    let thumb = cert["sha256Thumbprint"]
        .as_str()
        .or(cert["thumbprint"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| {
            doc["certificates"]
                .as_object()
                .unwrap()
                .iter()
                .find(|(_, c)| c["kind"] == "Certificate")
                .unwrap()
                .0
                .clone()
        });
    doc["certificates"][&thumb]["privateKey"] = json!({"file": "mail.key"});
    doc["dkimSigningKeys"]["s1._domainkey.contoso.test"]["privateKey"] =
        json!({"file": "dkim.pem"});
    doc["webhooks"]["ops"]["secret"] = json!({"file": "ops-hook"});
    let body = doc.to_string();

    let plan = put_doc(&b, &body, false, true, None).await;
    assert_eq!(plan.status, 200, "{}", plan.text);
    assert_eq!(plan.body["applied"], false);
    assert!(
        plan.body["summary"]["create"].as_u64().unwrap() >= 10,
        "{}",
        plan.text
    );
    assert!(!plan.text.contains("S3cret-Hub-Relay!") && !plan.text.contains("PRIVATE KEY"));
    let done = put_doc(&b, &body, false, false, None).await;
    assert_eq!(done.status, 200, "{}", done.text);
    assert_eq!(done.body["applied"], true);
    let (again, tag) = export(&b, "application/json").await;
    assert_eq!(again, text, "the second export is the first, byte for byte");
    assert_eq!(
        format!("\"{}\"", done.body["version"].as_str().unwrap()),
        tag
    );

    // Applying it twice changes nothing, in JSON or YAML.
    for (body, yaml) in [(body.as_str(), false), (yaml.as_str(), true)] {
        let r = put_doc(&b, body, yaml, false, Some(&tag)).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["applied"], false, "{}", r.text);
        assert_eq!(actions(&r.body), vec![], "{}", r.text);
    }
    assert_eq!(export(&b, "application/json").await, (text, tag));

    // The secrets arrived: the webhook's key and the credential work.
    let snap = b.app.as_ref().unwrap().config.snapshot();
    let cfg = &b.app.as_ref().unwrap().config;
    let w = snap.webhooks.iter().find(|w| w.spec.name == "ops").unwrap();
    assert_eq!(
        hex::encode(
            cfg.secrets
                .open(&w.id.to_string(), w.secret.as_ref().unwrap())
                .unwrap()
        ),
        hook["secret"].as_str().unwrap()
    );
    let c = snap
        .credentials
        .iter()
        .find(|c| c.spec.name == "Hub relay")
        .unwrap();
    assert_eq!(
        cfg.secrets
            .open(&c.id.to_string(), c.secret.as_ref().unwrap())
            .unwrap(),
        b"S3cret-Hub-Relay!"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dry_run_lists_exactly_the_differences_and_changes_nothing() {
    let app = TestApp::spawn(Role::Edge).await;
    app.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test"}),
    )
    .await;
    app.create(
        "/api/v1/ip-block-list-entries",
        json!({"ipRange": "127.66.0.1"}),
    )
    .await;
    let (text, tag) = export(&app, "application/json").await;
    let base: Value = serde_json::from_str(&text).unwrap();
    let rc = "Default internal receive connector EDGE01";
    type Edit = fn(&mut Value);
    type Row = (Edit, Vec<(&'static str, &'static str)>, Vec<&'static str>);
    // (edit, the objects it touches, the changed paths)
    let table: Vec<Row> = vec![
        (|_| {}, vec![], vec![]),
        (
            |d| {
                d["receiveConnectors"]["Default internal receive connector EDGE01"]["maxRecipientsPerMessage"] =
                    json!(500)
            },
            vec![(
                "receiveConnectors/Default internal receive connector EDGE01",
                "Update",
            )],
            vec![
                "/receiveConnectors/Default internal receive connector EDGE01/maxRecipientsPerMessage",
            ],
        ),
        (
            |d| {
                d["acceptedDomains"]["Fabrikam"] =
                    json!({"domainName": "fabrikam.test", "domainType": "InternalRelay"})
            },
            vec![("acceptedDomains/Fabrikam", "Create")],
            vec!["/acceptedDomains/Fabrikam"],
        ),
        (
            |d| d["ipListEntries"] = json!({}),
            vec![("ipListEntries/Block:127.66.0.1", "Delete")],
            vec!["/ipListEntries/Block:127.66.0.1"],
        ),
        (
            |d| {
                d["transportSettings"]["messageRetryInterval"] = json!("00:05:00");
                d["senderFilterConfig"]["blockedSenders"] = json!(["a@spam.test"]);
            },
            vec![
                ("transportSettings/", "Update"),
                ("senderFilterConfig/", "Update"),
            ],
            vec![
                "/transportSettings/messageRetryInterval",
                "/senderFilterConfig/blockedSenders",
            ],
        ),
        (
            // A section left out leaves its kind alone.
            |d| {
                d.as_object_mut().unwrap().remove("ipListEntries");
                d.as_object_mut().unwrap().remove("receiveConnectors");
            },
            vec![],
            vec![],
        ),
    ];
    for (i, (edit, objects, paths)) in table.into_iter().enumerate() {
        let mut doc = base.clone();
        edit(&mut doc);
        let r = put_doc(&app, &doc.to_string(), false, true, Some(&tag)).await;
        assert_eq!(r.status, 200, "edit {i}: {}", r.text);
        let mut got = actions(&r.body);
        got.sort();
        let mut want: Vec<(String, String)> = objects
            .iter()
            .map(|(o, a)| (o.to_string(), a.to_string()))
            .collect();
        want.sort();
        assert_eq!(got, want, "edit {i}");
        let mut changed: Vec<String> = r.body["objects"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|o| o["changes"].as_array().unwrap().iter())
            .map(|c| c["path"].as_str().unwrap().to_string())
            .collect();
        changed.sort();
        let mut paths: Vec<String> = paths.iter().map(|p| p.to_string()).collect();
        paths.sort();
        assert_eq!(changed, paths, "edit {i}");
        assert_eq!(r.body["applied"], false);
        assert_eq!(
            export(&app, "application/json").await.1,
            tag,
            "edit {i} changed nothing"
        );
    }
    // The change is shown with both values.
    let mut doc = base.clone();
    doc["receiveConnectors"][rc]["maxRecipientsPerMessage"] = json!(500);
    let r = put_doc(&app, &doc.to_string(), false, true, None).await;
    let o = r.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["action"] == "Update")
        .unwrap()
        .clone();
    assert_eq!(o["changes"][0]["old"], 200);
    assert_eq!(o["changes"][0]["new"], 500);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_document_changes_nothing_and_names_each_problem_path() {
    let app = TestApp::spawn(Role::Edge).await;
    let (text, tag) = export(&app, "application/json").await;
    let base: Value = serde_json::from_str(&text).unwrap();
    let rc = "Default internal receive connector EDGE01";

    let mut doc = base.clone();
    doc["receiveConnectors"][rc]["bindings"] = json!(["not-an-address"]);
    doc["receiveConnectors"]["Second"] = json!({"usage": "Custom", "bindings": ["127.0.0.1:2525"]});
    doc["sendConnectors"]["Out"] = json!({"addressSpaces": ["SMTP:*;1"], "smartHosts": ["hub.test"],
        "smartHostAuthMechanism": "BasicAuth", "authenticationCredential": "missing", "usage": "Internal"});
    doc["credentials"]["NoPassword"] = json!({"kind": "SmartHost", "userName": "x"});
    doc["credentials"]["FromEnv"] = json!({"kind": "SmartHost", "userName": "y",
        "password": {"env": "FERRY_ADMIN_TOKEN"}});
    doc["credentials"]["Plain"] =
        json!({"kind": "SmartHost", "userName": "z", "password": "hunter2"});
    doc["transportSettings"]["messageRetryInterval"] = json!("soon");
    doc["unknownSection"] = json!({});
    // First what the document's schema says (in the OpenAPI document)…
    let r = put_doc(&app, &doc.to_string(), false, false, None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    for path in [
        "/unknownSection",
        "/credentials/FromEnv/password/env",
        "/credentials/Plain/password",
        "/transportSettings/messageRetryInterval",
    ] {
        r.assert_problem(422, path);
    }
    assert!(
        !r.text.contains("hunter2"),
        "a secret is never echoed: {}",
        r.text
    );
    // … then the model's rules, every object's at once.
    doc.as_object_mut().unwrap().remove("unknownSection");
    doc["credentials"]["FromEnv"]["password"] = json!({"env": "FERRY_SECRET_SURELY_UNSET_9"});
    doc["credentials"]["Plain"]["password"] = json!({"file": "pw"});
    doc["transportSettings"]["messageRetryInterval"] = json!("00:01:00");
    let r = put_doc(&app, &doc.to_string(), false, false, None).await;
    assert_eq!(r.status, 422, "{}", r.text);
    for path in [
        &format!("/receiveConnectors/{rc}/bindings/0"),
        "/receiveConnectors/Second/remoteIpRanges",
        "/credentials/NoPassword/password",
        "/credentials/FromEnv/password",
        "/credentials/Plain/password",
    ] {
        r.assert_problem(422, path);
    }
    assert!(!r.text.contains("hunter2"), "a secret is never echoed");
    // Each object on its own is right; together they are not.
    let mut doc = base.clone();
    doc["sendConnectors"]["Out"] = json!({"addressSpaces": ["SMTP:*;1"], "smartHosts": ["hub.test"],
        "smartHostAuthMechanism": "BasicAuth", "authenticationCredential": "missing", "usage": "Internal"});
    doc["acceptedDomains"] = json!({"A": {"domainName": "a.test", "default": true},
                                    "B": {"domainName": "b.test", "default": true}});
    let r = put_doc(&app, &doc.to_string(), false, false, None).await;
    r.assert_problem(422, "/sendConnectors/Out/authenticationCredential");
    r.assert_problem(422, "/acceptedDomains");
    // Not a document at all.
    let r = put_doc(&app, "{\"apiVersion\": \"ferry/v2\"}", false, false, None).await;
    r.assert_problem(422, "/apiVersion");
    r.assert_problem(422, "/kind");
    let r = put_doc(&app, "receiveConnectors: [", true, false, None).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Well-formed YAML with an integer past 64 bits: the value's fault
    // (found by schemathesis on seed 9319).
    let r = put_doc(
        &app,
        "apiVersion: ferry/v1\nkind: Configuration\ntransportSettings:\n  maxHopCount: 52440313544308732433709137920\n",
        true,
        false,
        None,
    )
    .await;
    r.assert_problem(422, "/transportSettings/maxHopCount");
    assert_eq!(export(&app, "application/json").await, (text, tag));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_concurrent_change_makes_the_apply_fail_with_412() {
    let app = TestApp::spawn(Role::Edge).await;
    let (text, tag) = export(&app, "application/json").await;
    let mut doc: Value = serde_json::from_str(&text).unwrap();
    doc["acceptedDomains"]["Contoso"] = json!({"domainName": "contoso.test"});
    let plan = put_doc(&app, &doc.to_string(), false, true, Some(&tag)).await;
    assert_eq!(plan.status, 200, "{}", plan.text);
    // Someone else changes the configuration between plan and apply.
    let r = app
        .patch(
            "/api/v1/transport-settings",
            json!({"messageRetryInterval": "00:03:00"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let r = put_doc(&app, &doc.to_string(), false, false, Some(&tag)).await;
    assert_eq!(r.status, 412, "{}", r.text);
    assert!(app.get("/api/v1/accepted-domains/Contoso").await.status == 404);
    // A password change alone is a change too.
    let (_, tag) = export(&app, "application/json").await;
    app.create(
        "/api/v1/credentials",
        json!({"name": "H", "kind": "SmartHost", "userName": "h", "password": "one-password-1"}),
    )
    .await;
    let (_, tag2) = export(&app, "application/json").await;
    let r = app
        .patch(
            "/api/v1/credentials/H",
            json!({"password": "another-password-2"}),
            None,
        )
        .await;
    assert_eq!(r.status, 200);
    let (_, tag3) = export(&app, "application/json").await;
    assert!(tag != tag2 && tag2 != tag3);
}

/// A certificate's SHA-256 thumbprint, as Ferry names it.
fn thumbprint(pem: &str, dir: &std::path::Path) -> String {
    let f = dir.join("thumb.pem");
    std::fs::write(&f, pem).unwrap();
    let out = openssl(&[
        "x509",
        "-noout",
        "-fingerprint",
        "-sha256",
        "-in",
        f.to_str().unwrap(),
    ]);
    out.trim()
        .split('=')
        .nth(1)
        .unwrap()
        .replace(':', "")
        .to_lowercase()
}

/// Spec §3's Edge (E1–E4, the Hubs' server login, the accepted domain,
/// the certificates) for three Edges, as one YAML document whose
/// `servers` entries give each its own addresses, FQDN and internal
/// certificate (Exchange's cloned configuration with an answer file).
#[tokio::test(flavor = "multi_thread")]
async fn three_edges_from_one_document_pass_the_edge_checks() {
    use base64::Engine;
    let secrets = tempfile::tempdir().unwrap();
    let dir = secrets.path().to_path_buf();
    let mut edges = vec![];
    for i in 1..=3 {
        let d = dir.clone();
        edges.push(
            TestApp::spawn_with(Role::Edge, |s| {
                s.server_name = Some(format!("EDGE0{i}"));
                s.fqdn = Some(format!("edge0{i}.contoso.test"));
                s.secrets_dir = Some(d);
            })
            .await,
        );
    }
    let ca = Ca::new(&dir);
    let (mail_crt, mail_key) = ca.issue(&["mail.contoso.test"]);
    std::fs::write(dir.join("mail.key"), &mail_key).unwrap();
    std::fs::write(dir.join("hub01-password"), "Hub01-Password-42\n").unwrap();
    std::fs::write(dir.join("hub-relay"), "Edge-Relay-Password-7\n").unwrap();
    let indent = |pem: &str| pem.trim_end().replace('\n', "\n      ");
    let mut servers = String::new();
    for (i, e) in edges.iter().enumerate() {
        let n = e.net;
        let name = format!("edge0{}.corp.contoso.test", i + 1);
        let (crt, key) = ca.issue(&[&name]);
        std::fs::write(dir.join(format!("edge0{}.key", i + 1)), &key).unwrap();
        servers.push_str(&format!(
            r#"  EDGE0{k}:
    transportSettings:
      serverFqdn: {name}
    certificates:
      {thumb}:
        kind: Certificate
        privateKey: {{file: edge0{k}.key}}
        chainPem: |
          {pem}
    receiveConnectors:
      From Internet:
        bindings: ["127.{n}.0.2:2525"]
      From Hub:
        bindings: ["127.{n}.0.3:2525"]
        remoteIpRanges: ["127.{n}.0.11", "127.{n}.0.12"]
        fqdn: {name}
    sendConnectors:
      To Internal Org:
        smartHosts: ["127.{n}.0.11", "127.{n}.0.12"]
      To Internet:
        sourceIPAddress: 127.{n}.0.2
"#,
            k = i + 1,
            thumb = thumbprint(&crt, &dir),
            pem = crt.trim_end().replace('\n', "\n          "),
        ));
    }
    let doc = format!(
        r#"apiVersion: ferry/v1
kind: Configuration
transportSettings:
  serverFqdn: edge.contoso.test
  backPressureMinFreeDiskPercent: 0
acceptedDomains:
  contoso.test:
    domainName: contoso.test
certificates:
  {mail_thumb}:
    kind: Certificate
    friendlyName: mail
    privateKey: {{file: mail.key}}
    chainPem: |
      {mail_pem}
credentials:
  hub01:
    kind: Login
    userName: hub01
    principal: Server
    password: {{file: hub01-password}}
  Hub relay:
    kind: SmartHost
    userName: edge
    password: {{file: hub-relay}}
receiveConnectors:
  From Internet:
    usage: Internet
    bindings: ["0.0.0.0:2525"]
    fqdn: mail.contoso.test
    tarpitInterval: "00:00:00"
    authTarpitInterval: "00:00:00"
  From Hub:
    usage: Internal
    bindings: ["0.0.0.0:2526"]
    remoteIpRanges: ["10.0.0.11"]
    authMechanism: [Tls, BasicAuth, BasicAuthRequireTLS, ExchangeServer]
    permissionGroups: [ExchangeServers]
    tarpitInterval: "00:00:00"
    authTarpitInterval: "00:00:00"
sendConnectors:
  To Internet:
    usage: Internet
    addressSpaces: ["SMTP:*;1"]
    fqdn: mail.contoso.test
  To Internal Org:
    usage: Internal
    addressSpaces: ["SMTP:--;1"]
    smartHosts: ["10.0.0.11"]
    smartHostAuthMechanism: BasicAuthRequireTLS
    authenticationCredential: Hub relay
servers:
{servers}"#,
        mail_thumb = thumbprint(&mail_crt, &dir),
        mail_pem = indent(&mail_crt),
    );
    for (i, e) in edges.iter().enumerate() {
        let fqdn = format!("edge0{}.corp.contoso.test", i + 1);
        let r = put_doc(e, &doc, true, false, None).await;
        assert_eq!(r.status, 200, "EDGE0{}: {}", i + 1, r.text);
        assert_eq!(r.body["serverOverrides"], true);
        assert_eq!(r.body["server"], format!("EDGE0{}", i + 1));
        // The same document again: nothing to do.
        let again = put_doc(e, &doc, true, true, None).await;
        assert_eq!(actions(&again.body), vec![], "{}", again.text);

        let ip = |h: u8| format!("127.{}.0.{h}", e.net);
        let e3 = format!("{}:2525", ip(2));
        let e4 = format!("{}:2525", ip(3));
        // Receive selection: the binding decides, then the range.
        let (c, banner) = crate::support::client::Client::open(&ip(20), &e3).await;
        assert!(banner.text.starts_with("mail.contoso.test"), "{banner:?}");
        let mut c = c
            .starttls("mail.contoso.test", &ca.cert_pem)
            .await
            .expect("TLS with the shared certificate");
        let ehlo = c.cmd("EHLO mta.fabrikam.test").await;
        assert!(!ehlo.text.contains("AUTH"), "{}", ehlo.text);
        assert_eq!(c.cmd("MAIL FROM:<a@fabrikam.test>").await.code, 250);
        let relay = c.cmd("RCPT TO:<x@gmail.test>").await;
        assert_eq!(relay.code, 550, "relay denial on E3: {relay:?}");
        assert!(relay.text.starts_with("5.7.1"), "{relay:?}");
        assert_eq!(c.cmd("RCPT TO:<bob@contoso.test>").await.code, 250);
        let (_, banner) = crate::support::client::Client::open(&ip(99), &e4).await;
        assert_eq!(banner.code, 421, "no connector for a stranger on E4");
        // A Hub: STARTTLS with this Edge's own certificate, then AUTH as
        // the server login whose password came from a file.
        let (c, banner) = crate::support::client::Client::open(&ip(11), &e4).await;
        assert!(banner.text.starts_with(&fqdn), "{banner:?}");
        let mut c = c
            .starttls(&fqdn, &ca.cert_pem)
            .await
            .expect("TLS as edge0N");
        c.cmd("EHLO hub01").await;
        let auth = base64::engine::general_purpose::STANDARD.encode("\0hub01\0Hub01-Password-42");
        assert_eq!(c.cmd(&format!("AUTH PLAIN {auth}")).await.code, 235);
        // Routing: the org's mail to the Hubs (`--` beats `*`), the rest out.
        for (rcpt, connector) in [
            ("bob@contoso.test", "To Internal Org"),
            ("carol@fabrikam.test", "To Internet"),
        ] {
            let r = e
                .post("/api/v1/routing/explain", json!({"recipient": rcpt}))
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(r.body["connector"], connector, "{}", r.text);
        }
        let sc = e.get("/api/v1/send-connectors/To%20Internet").await;
        assert_eq!(sc.body["sourceIPAddress"], ip(2));
    }
}

/// `ferry config` in a shell script with `set -e`: export, plan and apply
/// pass; a bad document stops the script with the problem's path.
#[tokio::test(flavor = "multi_thread")]
async fn ferry_config_plan_fails_a_script_on_a_bad_document() {
    let app = TestApp::spawn(Role::Edge).await;
    let work = tempfile::tempdir().unwrap();
    let script = r#"set -e
ferry config export -o edge.yaml
ferry config plan edge.yaml
echo "plan: unchanged"
sed 's/maxRecipientsPerMessage: 200/maxRecipientsPerMessage: 300/' edge.yaml > more.yaml
status=0; ferry config plan --detailed-exitcode more.yaml || status=$?
echo "detailed: $status"
ferry config apply more.yaml
sed 's/maxRecipientsPerMessage: 300/maxRecipientsPerMessage: lots/' more.yaml > bad.yaml
ferry config plan bad.yaml
echo "not reached"
"#;
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ferry"));
    let out = tokio::process::Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(work.path())
        .env(
            "PATH",
            format!(
                "{}:{}",
                bin.parent().unwrap().display(),
                std::env::var("PATH").unwrap()
            ),
        )
        .env("FERRY_API_URL", &app.base)
        .env("FERRY_API_TOKEN", &app.token)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("plan: unchanged"), "{stdout}");
    assert!(stdout.contains("No changes"), "{stdout}");
    assert!(stdout.contains("detailed: 2"), "{stdout}");
    assert!(
        stdout.contains("maxRecipientsPerMessage: 200 → 300"),
        "{stdout}"
    );
    assert!(stdout.contains("Applied"), "{stdout}");
    assert!(!stdout.contains("not reached"), "{stdout}");
    assert!(
        stderr.contains(
            "/receiveConnectors/Default internal receive connector EDGE01/maxRecipientsPerMessage"
        ),
        "{stderr}"
    );
    // The apply took effect; the bad plan changed nothing.
    let rc = app
        .get("/api/v1/receive-connectors/Default%20internal%20receive%20connector%20EDGE01")
        .await;
    assert_eq!(rc.body["maxRecipientsPerMessage"], 300);
    // No colour codes into a pipe.
    assert!(!stdout.contains('\x1b'));
    // The apply is in the audit log, field by field, as any change is.
    let log = app.get("/api/v1/audit-log?limit=50").await;
    let entry = log.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| {
            e["method"] == "PUT"
                && e["path"] == "/api/v1/config"
                && e["status"] == 200
                && !e["changes"].as_array().unwrap().is_empty()
        })
        .unwrap_or_else(|| panic!("no audit entry for the apply: {}", log.text))
        .clone();
    assert_eq!(
        entry["changes"][0]["path"],
        "/receiveConnectors/Default internal receive connector EDGE01/maxRecipientsPerMessage"
    );
    assert_eq!(entry["changes"][0]["new"], 300);
}

/// examples/gitops as a CI job runs it: `deploy.sh plan`, then
/// `deploy.sh apply`, on three Edges — the example's addresses mapped to
/// each Edge's loopback network, its secrets written to their directory.
#[tokio::test(flavor = "multi_thread")]
async fn the_gitops_example_plans_and_applies_on_three_edges() {
    let secrets = tempfile::tempdir().unwrap();
    for (f, v) in [
        ("hub01-password", "Hub01-Password-42-zq\n"),
        ("hub-relay-password", "Edge-Relay-Password-7\n"),
        (
            "ops-webhook-key",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        ),
    ] {
        std::fs::write(secrets.path().join(f), v).unwrap();
    }
    let mut edges = vec![];
    for k in 1..=3 {
        let d = secrets.path().to_path_buf();
        edges.push(
            TestApp::spawn_with(Role::Edge, |s| {
                s.server_name = Some(format!("EDGE0{k}"));
                s.secrets_dir = Some(d);
            })
            .await,
        );
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/gitops");
    let work = tempfile::tempdir().unwrap();
    let mut doc = std::fs::read_to_string(root.join("edge-fleet.yaml")).unwrap();
    let hubs = edges[0].net;
    doc = doc
        .replace("https://ops.contoso.com/", "http://127.0.0.1:9/")
        .replace("192.0.2.53", "127.0.0.53")
        .replace("10.0.0.11", &format!("127.{hubs}.0.11"))
        .replace("10.0.0.12", &format!("127.{hubs}.0.12"));
    for (k, e) in edges.iter().enumerate() {
        let n = e.net;
        doc = doc
            .replace(
                &format!("203.0.113.1{}:25", k + 1),
                &format!("127.{n}.0.2:2525"),
            )
            .replace(&format!("203.0.113.1{}", k + 1), &format!("127.{n}.0.2"))
            .replace(
                &format!("10.1.1.{}:25", k + 2),
                &format!("127.{n}.0.3:2525"),
            );
    }
    assert!(!doc.contains("203.0.113.") && !doc.contains("10.1.1."));
    std::fs::write(work.path().join("edge-fleet.yaml"), doc).unwrap();
    std::fs::copy(root.join("deploy.sh"), work.path().join("deploy.sh")).unwrap();
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_ferry"));
    let run = |action: &'static str| {
        let mut c = tokio::process::Command::new("bash");
        c.arg(work.path().join("deploy.sh")).arg(action).env(
            "PATH",
            format!(
                "{}:{}",
                bin.parent().unwrap().display(),
                std::env::var("PATH").unwrap()
            ),
        );
        for (k, e) in edges.iter().enumerate() {
            c.env(format!("FERRY_API_URL_EDGE0{}", k + 1), &e.base)
                .env(format!("FERRY_API_TOKEN_EDGE0{}", k + 1), &e.token);
        }
        c.output()
    };
    for action in ["plan", "apply", "plan"] {
        let out = run(action).await.unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "deploy.sh {action}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            stdout.matches("(with the document's servers.EDGE0").count(),
            3
        );
        if action == "apply" {
            assert_eq!(stdout.matches("Applied").count(), 3, "{stdout}");
        }
    }
    // Last plan: nothing left to do anywhere.
    let out = run("plan").await.unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout)
            .matches("No changes")
            .count(),
        3
    );
    for (k, e) in edges.iter().enumerate() {
        let (_, banner) = crate::support::client::Client::open(
            &format!("127.{}.0.20", e.net),
            &format!("127.{}.0.2:2525", e.net),
        )
        .await;
        assert!(banner.text.starts_with("mail.contoso.com"), "{banner:?}");
        let (_, banner) = crate::support::client::Client::open(
            &format!("127.{hubs}.0.11"),
            &format!("127.{}.0.3:2525", e.net),
        )
        .await;
        assert!(
            banner
                .text
                .starts_with(&format!("edge0{}.corp.contoso.com", k + 1)),
            "{banner:?}"
        );
    }
}

/// A Hub's configuration (its Client connector, mailbox delivery, a login
/// with its addresses) goes to a fresh Hub and comes back the same; its
/// certificates stay each Hub's own (the section is left out).
#[tokio::test(flavor = "multi_thread")]
async fn a_hubs_export_applied_on_a_fresh_hub_exports_the_same_bytes() {
    let mut a = TestApp::spawn(Role::Hub).await;
    a.create(
        "/api/v1/accepted-domains",
        json!({"domainName": "contoso.test", "mailboxDelivery": {"type": "Maildir"}}),
    )
    .await;
    a.create(
        "/api/v1/credentials",
        json!({"name": "ann", "kind": "Login", "userName": "ann", "principal": "User",
               "password": "Ann-Password-1234-x", "primaryAddress": "ann@contoso.test",
               "aliases": ["sales@contoso.test"]}),
    )
    .await;
    let without_certificates = |text: &str| {
        let mut d: Value = serde_yaml_ng::from_str(text).unwrap();
        d.as_object_mut().unwrap().remove("certificates");
        d
    };
    let (text, _) = export(&a, "application/yaml").await;
    a.app.take().unwrap().stop().await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("ann"), "Ann-Password-1234-x").unwrap();
    let dir = secrets.path().to_path_buf();
    let b = TestApp::spawn_with(Role::Hub, |s| s.secrets_dir = Some(dir)).await;
    let mut doc = without_certificates(&text);
    doc["credentials"]["ann"]["password"] = json!({"file": "ann"});
    let body = serde_yaml_ng::to_string(&doc).unwrap();
    let r = put_doc(&b, &body, true, false, None).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        without_certificates(&export(&b, "application/yaml").await.0),
        without_certificates(&text)
    );
    // The stored hash is the file's password: the same file changes
    // nothing, another password is a change (masked).
    let r = put_doc(&b, &body, true, true, None).await;
    assert_eq!(actions(&r.body), vec![], "{}", r.text);
    std::fs::write(secrets.path().join("ann"), "Another-Password-5678-y").unwrap();
    let r = put_doc(&b, &body, true, true, None).await;
    assert_eq!(
        actions(&r.body),
        vec![("credentials/ann".to_string(), "Update".to_string())]
    );
    let change = &r.body["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["action"] == "Update")
        .unwrap()["changes"][0];
    assert_eq!(change["path"], "/credentials/ann/secret");
    assert!(!r.text.contains("Another-Password"));
}
