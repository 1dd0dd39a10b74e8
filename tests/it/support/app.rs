//! Spawning a real Ferry (the same `App::build` that `ferry serve` uses) on
//! port 0 with a fresh data directory, and talking to it over HTTP.

use ferry::model::Role;
use ferry::startup::{App, Settings};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;
use std::path::PathBuf;

pub struct TestApp {
    /// The second octet of this app's loopback network.
    pub net: u8,
    pub app: Option<App>,
    pub base: String,
    pub token: String,
    pub client: reqwest::Client,
    pub dir: tempfile::TempDir,
    pub settings: Settings,
}

pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Resp {
    pub fn etag(&self) -> String {
        self.headers
            .get("etag")
            .expect("ETag present")
            .to_str()
            .unwrap()
            .to_string()
    }

    /// The fields a problem response names.
    pub fn problem_fields(&self) -> Vec<String> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| e["field"].as_str().unwrap_or("").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    #[track_caller]
    pub fn assert_problem(&self, status: u16, field: &str) {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        assert_eq!(
            self.headers.get("content-type").unwrap(),
            "application/problem+json",
            "problems are RFC 7807 JSON"
        );
        assert_eq!(self.body["status"], status);
        assert!(
            self.problem_fields().iter().any(|f| f == field),
            "expected a problem naming '{field}', got {}",
            self.text
        );
    }
}

impl TestApp {
    pub async fn spawn(role: Role) -> TestApp {
        Self::spawn_with(role, |_| {}).await
    }

    pub async fn spawn_with(role: Role, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        // Its own 127.N.0.0/24, so tests in parallel never share a binding.
        let net = super::net::next();
        let dir = tempfile::tempdir().unwrap();
        let mut settings = Settings::for_tests(dir.path().join("data"), role);
        settings.fqdn = Some(match role {
            Role::Edge => "edge01.contoso.test".into(),
            Role::Hub => "hub01.contoso.test".into(),
        });
        settings.default_smtp_bind = format!("127.{net}.0.1:2525").parse().unwrap();
        settings.default_submission_bind = format!("127.{net}.0.1:2587").parse().unwrap();
        tweak(&mut settings);
        let app = App::build(settings.clone()).await.expect("Ferry starts");
        // Disk back pressure compares the free share of the file system
        // holding the data directory with a threshold (1% by default, as
        // Exchange): on a test host whose disk is nearly full every message
        // would get 452 4.3.1, whatever the test is about. Tests run with it
        // off; the back-pressure test turns it on itself. Changed through
        // the configuration service, not the API, so no audit entry.
        app.config
            .update_transport_settings(None, |s| {
                let mut t = s.transport.spec.clone();
                t.back_pressure_min_free_disk_percent = 0;
                Ok(t)
            })
            .await
            .expect("disk back pressure off");
        let token = match &settings.admin_token {
            Some(t) => t.clone(),
            None => std::fs::read_to_string(app.token_file.as_ref().expect("token file written"))
                .unwrap()
                .trim()
                .to_string(),
        };
        let (scheme, client) = if settings.api_tls {
            // The harness trusts whatever the API presents; the HTTPS tests
            // check the certificate themselves.
            let c = reqwest::Client::builder()
                .danger_accept_invalid_certs(true)
                .build()
                .unwrap();
            ("https", c)
        } else {
            ("http", reqwest::Client::new())
        };
        TestApp {
            net,
            base: format!("{scheme}://{}", app.api_addr),
            app: Some(app),
            token,
            client,
            dir,
            settings,
        }
    }

    /// `127.N.0.host:port` on this app's own loopback network.
    pub fn bind(&self, host: u8, port: u16) -> String {
        format!("127.{}.0.{host}:{port}", self.net)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.settings.data_dir.clone()
    }

    /// The messages in a mailbox of this Ferry (a Hub's Maildir `new/`).
    pub fn maildir(&self, address: &str) -> Vec<String> {
        let (local, domain) = address.split_once('@').unwrap();
        let dir = self
            .data_dir()
            .join("mailboxes")
            .join(domain)
            .join(local)
            .join("Maildir")
            .join("new");
        std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Stops Ferry and starts it again on the same data directory.
    pub async fn restart(&mut self) {
        self.app.take().unwrap().stop().await.unwrap();
        let app = App::build(self.settings.clone())
            .await
            .expect("Ferry restarts");
        assert!(
            app.token_file.is_none(),
            "a restart does not generate a new token"
        );
        let scheme = if self.settings.api_tls {
            "https"
        } else {
            "http"
        };
        self.base = format!("{scheme}://{}", app.api_addr);
        self.app = Some(app);
    }

    pub async fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Resp {
        self.request_as(Some(&self.token), method, path, body, if_match)
            .await
    }

    /// A request with another API token, or none.
    pub async fn request_as(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
        if_match: Option<&str>,
    ) -> Resp {
        let url = format!("{}{}", self.base, path);
        let mut req = self.client.request(method.parse().unwrap(), url);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        if let Some(tag) = if_match {
            req = req.header("If-Match", tag);
        }
        let r = req.send().await.expect("request sent");
        let status = r.status();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
            text,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request("GET", path, None, None).await
    }
    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.request("POST", path, Some(body), None).await
    }
    pub async fn patch(&self, path: &str, body: Value, if_match: Option<&str>) -> Resp {
        self.request("PATCH", path, Some(body), if_match).await
    }
    pub async fn delete(&self, path: &str, if_match: Option<&str>) -> Resp {
        self.request("DELETE", path, None, if_match).await
    }

    /// POSTs and insists on 201.
    pub async fn create(&self, path: &str, body: Value) -> Value {
        let r = self.post(path, body).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.text);
        r.body
    }

    /// Every GET-able document of the API, concatenated: for leak checks.
    pub async fn everything(&self) -> String {
        let mut all = String::new();
        for p in [
            "/api/v1/receive-connectors",
            "/api/v1/send-connectors",
            "/api/v1/accepted-domains",
            "/api/v1/credentials",
            "/api/v1/certificates",
            "/api/v1/transport-settings",
            "/api/v1/server",
        ] {
            let r = self.get(p).await;
            assert_eq!(r.status, StatusCode::OK);
            all.push_str(&r.text);
        }
        all
    }

    /// Every byte Ferry keeps in its data directory (database, WAL, keys).
    pub fn data_bytes(&self) -> Vec<u8> {
        let mut out = vec![];
        for e in std::fs::read_dir(self.data_dir()).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() {
                out.extend(std::fs::read(p).unwrap());
            }
        }
        out
    }
}

pub fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

impl TestApp {
    pub fn data_bytes_without_token_file(&self) -> Vec<u8> {
        let mut out = vec![];
        for e in std::fs::read_dir(self.data_dir()).unwrap() {
            let p = e.unwrap().path();
            if p.is_file() && p.file_name().unwrap() != "admin-token" {
                out.extend(std::fs::read(p).unwrap());
            }
        }
        out
    }
}
