//! `ferry config export|plan|apply`: configuration as code from a shell or
//! a CI pipeline, through the API (`GET`/`PUT /api/v1/config`). The plan is
//! printed readably (coloured on a terminal); any problem with the document
//! or the server exits non-zero, so a pipeline step fails.

use anyhow::{Context, bail};
use serde_json::Value;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// How to reach the API.
#[derive(clap::Args)]
pub struct Connection {
    /// The API's base URL.
    #[arg(long, env = "FERRY_API_URL", default_value = "http://127.0.0.1:8080")]
    api_url: String,
    /// An API token: View-Only may export; plan and apply need Administrator.
    #[arg(long, env = "FERRY_API_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A file holding the API token (e.g. <data-dir>/admin-token).
    #[arg(long, env = "FERRY_API_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// A PEM certificate to trust for an HTTPS API besides the system's
    /// roots (e.g. the server's self-signed certificate).
    #[arg(long, env = "FERRY_API_CA_CERT")]
    ca_cert: Option<PathBuf>,
}

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Write the server's configuration as one document.
    Export {
        #[command(flatten)]
        conn: Connection,
        /// `yaml` or `json` (default: from the file's extension, else yaml).
        #[arg(long)]
        format: Option<String>,
        /// Write here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Show what applying a document would change, changing nothing.
    Plan {
        #[command(flatten)]
        conn: Connection,
        /// The document (`.yaml`, `.yml` or `.json`; `-` reads standard input).
        file: PathBuf,
        /// Exit 2 when the plan changes something (0: nothing to do).
        #[arg(long)]
        detailed_exitcode: bool,
    },
    /// Plan, then apply exactly that plan (refused with 412 if the
    /// configuration changed in between).
    Apply {
        #[command(flatten)]
        conn: Connection,
        file: PathBuf,
    },
}

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Connection {
    fn open(self) -> anyhow::Result<Api> {
        let token = match (self.token, self.token_file) {
            (Some(t), _) => t,
            (None, Some(f)) => std::fs::read_to_string(&f)
                .with_context(|| format!("reading the token file {}", f.display()))?
                .trim()
                .to_string(),
            (None, None) => bail!("no API token: give --token or --token-file (FERRY_API_TOKEN)"),
        };
        let mut roots = rustls::RootCertStore::empty();
        for c in ferry::tls::roots::native() {
            let _ = roots.add(c.clone());
        }
        if let Some(f) = &self.ca_cert {
            let pem =
                std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
            for c in ferry::tls::certs::parse_chain(&pem).map_err(anyhow::Error::msg)? {
                roots.add(c)?;
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .timeout(std::time::Duration::from_secs(120))
            .build()?;
        Ok(Api {
            base: self.api_url.trim_end_matches('/').to_string(),
            token,
            http,
        })
    }
}

/// A problem answer (RFC 7807) as lines for the terminal.
fn problem(status: reqwest::StatusCode, text: &str) -> anyhow::Error {
    let p: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let mut out = format!(
        "{} {}",
        status.as_u16(),
        p["title"]
            .as_str()
            .unwrap_or(status.canonical_reason().unwrap_or(""))
    );
    match p["errors"].as_array() {
        Some(errors) if !errors.is_empty() => {
            for e in errors {
                out.push_str(&format!(
                    "\n  {}: {}",
                    e["field"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                ));
            }
        }
        _ => {
            if let Some(d) = p["detail"].as_str() {
                out.push_str(&format!("\n  {d}"));
            } else if p.is_null() && !text.is_empty() {
                out.push_str(&format!("\n  {}", text.trim()));
            }
        }
    }
    anyhow::anyhow!(out)
}

fn is_yaml(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"))
}

/// The document's text and whether it is YAML.
fn read_doc(file: &Path) -> anyhow::Result<(String, bool)> {
    let text = if file == Path::new("-") {
        std::io::read_to_string(std::io::stdin())?
    } else {
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?
    };
    let yaml = if file == Path::new("-") {
        !text.trim_start().starts_with('{')
    } else {
        is_yaml(file)
    };
    Ok((text, yaml))
}

impl Api {
    async fn put(
        &self,
        body: &str,
        yaml: bool,
        dry_run: bool,
        if_match: Option<&str>,
    ) -> anyhow::Result<Value> {
        let mut req = self
            .http
            .put(format!("{}/api/v1/config?dryRun={dry_run}", self.base))
            .bearer_auth(&self.token)
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
            req = req.header("If-Match", format!("\"{v}\""));
        }
        let r = req
            .send()
            .await
            .with_context(|| format!("reaching {}", self.base))?;
        let status = r.status();
        let text = r.text().await?;
        if !status.is_success() {
            return Err(problem(status, &text));
        }
        Ok(serde_json::from_str(&text)?)
    }
}

struct Paint(bool);

impl Paint {
    fn on(&self, code: &str, s: &str) -> String {
        if self.0 {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

fn short(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.chars().count() > 100 {
        format!("{}…", s.chars().take(99).collect::<String>())
    } else {
        s
    }
}

/// The plan as an admin reads it: one line per object that changes, its
/// fields under it, and a summary.
pub fn render_plan(plan: &Value, colour: bool) -> String {
    let p = Paint(colour);
    let mut out = String::new();
    out.push_str(&format!(
        "Server {}{}\n",
        plan["server"].as_str().unwrap_or("?"),
        if plan["serverOverrides"] == true {
            format!(
                " (with the document's servers.{} values)",
                plan["server"].as_str().unwrap_or("?")
            )
        } else {
            String::new()
        }
    ));
    for o in plan["objects"].as_array().into_iter().flatten() {
        let (mark, code) = match o["action"].as_str() {
            Some("Create") => ("+", "32"),
            Some("Update") => ("~", "33"),
            Some("Delete") => ("-", "31"),
            _ => continue,
        };
        let name = match o["name"].as_str() {
            Some(n) => format!("{}/{n}", o["section"].as_str().unwrap_or("")),
            None => o["section"].as_str().unwrap_or("").to_string(),
        };
        out.push_str(&format!(
            "  {} {name} ({})\n",
            p.on(code, mark),
            o["action"].as_str().unwrap_or("").to_lowercase()
        ));
        if o["action"] == "Update" {
            let prefix = format!(
                "/{}{}",
                o["section"].as_str().unwrap_or(""),
                o["name"]
                    .as_str()
                    .map(|n| format!("/{}", n.replace('~', "~0").replace('/', "~1")))
                    .unwrap_or_default()
            );
            for c in o["changes"].as_array().into_iter().flatten() {
                let path = c["path"].as_str().unwrap_or("");
                let field = path
                    .strip_prefix(&prefix)
                    .unwrap_or(path)
                    .trim_start_matches('/');
                let line = match c["op"].as_str() {
                    Some("add") => format!("{field}: {}", short(&c["new"])),
                    Some("remove") => format!("{field}: {} (removed)", short(&c["old"])),
                    _ => format!("{field}: {} → {}", short(&c["old"]), short(&c["new"])),
                };
                out.push_str(&format!("      {line}\n"));
            }
        }
    }
    let s = &plan["summary"];
    let n = |k: &str| s[k].as_u64().unwrap_or(0);
    if n("create") + n("update") + n("delete") == 0 {
        out.push_str(&format!(
            "No changes: the configuration matches the document ({} objects).\n",
            n("unchanged")
        ));
    } else {
        out.push_str(&format!(
            "Plan: {} to create, {} to update, {} to delete, {} unchanged.\n",
            n("create"),
            n("update"),
            n("delete"),
            n("unchanged")
        ));
    }
    out
}

fn changes(plan: &Value) -> bool {
    let s = &plan["summary"];
    ["create", "update", "delete"]
        .iter()
        .any(|k| s[*k].as_u64().unwrap_or(0) > 0)
}

/// Runs a `ferry config` command; the exit code.
pub async fn run(cmd: ConfigCommand) -> anyhow::Result<i32> {
    let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    match cmd {
        ConfigCommand::Export {
            conn,
            format,
            output,
        } => {
            let api = conn.open()?;
            let yaml = match format.as_deref() {
                Some("yaml") | Some("yml") => true,
                Some("json") => false,
                Some(other) => bail!("--format {other}: give yaml or json"),
                None => output.as_deref().is_none_or(is_yaml),
            };
            let r = api
                .http
                .get(format!("{}/api/v1/config", api.base))
                .bearer_auth(&api.token)
                .header(
                    "Accept",
                    if yaml {
                        "application/yaml"
                    } else {
                        "application/json"
                    },
                )
                .send()
                .await
                .with_context(|| format!("reaching {}", api.base))?;
            let status = r.status();
            let text = r.text().await?;
            if !status.is_success() {
                return Err(problem(status, &text));
            }
            match output {
                Some(f) => {
                    std::fs::write(&f, text).with_context(|| format!("writing {}", f.display()))?
                }
                None => print!("{text}"),
            }
            Ok(0)
        }
        ConfigCommand::Plan {
            conn,
            file,
            detailed_exitcode,
        } => {
            let (text, yaml) = read_doc(&file)?;
            let api = conn.open()?;
            let plan = api.put(&text, yaml, true, None).await?;
            print!("{}", render_plan(&plan, colour));
            Ok(if detailed_exitcode && changes(&plan) {
                2
            } else {
                0
            })
        }
        ConfigCommand::Apply { conn, file } => {
            let (text, yaml) = read_doc(&file)?;
            let api = conn.open()?;
            let plan = api.put(&text, yaml, true, None).await?;
            print!("{}", render_plan(&plan, colour));
            if !changes(&plan) {
                return Ok(0);
            }
            let version = plan["version"].as_str().unwrap_or_default().to_string();
            let done = api.put(&text, yaml, false, Some(&version)).await?;
            println!(
                "Applied: the configuration is now at version {}.",
                done["version"].as_str().unwrap_or("?")
            );
            Ok(0)
        }
    }
}
