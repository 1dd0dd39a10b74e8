//! The `ferry` command: `ferry serve` runs the appliance, `ferry openapi`
//! prints the API description, `ferry config` exports, plans and applies
//! configuration documents through the API.

mod config_cli;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;

use ferry::model::{Binding, Role};
use ferry::startup::{App, Settings};

#[derive(Parser)]
#[command(
    name = "ferry",
    version,
    about = "An SMTP transport appliance managed over a REST API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the transport server and its API.
    Serve(Box<ServeArgs>),
    /// Print the OpenAPI document.
    Openapi,
    /// Configuration as code: export, plan and apply one document through the API.
    #[command(subcommand)]
    Config(config_cli::ConfigCommand),
    /// Exit 0 if the API at FERRY_API_LISTEN answers /healthz (for container health checks).
    Healthcheck {
        #[arg(long, env = "FERRY_API_LISTEN", default_value = "127.0.0.1:8080")]
        api_listen: SocketAddr,
        /// The API is served over HTTPS (as `serve --api-tls`). The check
        /// sends no token, so it accepts whatever certificate is presented.
        #[arg(long, env = "FERRY_API_TLS")]
        api_tls: bool,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Where the database, keys and queue live.
    #[arg(long, env = "FERRY_DATA_DIR", default_value = "./ferry-data")]
    data_dir: PathBuf,
    /// `edge` or `hub`. Chosen at first start (default edge); must match afterwards.
    #[arg(long, env = "FERRY_ROLE")]
    role: Option<Role>,
    /// The server's short name (default: the first label of the FQDN, upper-case). First start only.
    #[arg(long, env = "FERRY_SERVER_NAME")]
    server_name: Option<String>,
    /// The server's FQDN (default: the host name). First start only; later, PATCH transport-settings.
    #[arg(long, env = "FERRY_FQDN")]
    fqdn: Option<String>,
    /// Where the REST API listens.
    #[arg(long, env = "FERRY_API_LISTEN", default_value = "127.0.0.1:8080")]
    api_listen: SocketAddr,
    /// Serve the API over HTTPS, with the certificate of Ferry's store that
    /// covers the server FQDN (the self-signed one made at first start until
    /// another is imported); a new certificate is served without a restart.
    #[arg(long, env = "FERRY_API_TLS")]
    api_tls: bool,
    /// Allow the API in plain HTTP on an address other than loopback (the
    /// tokens then cross the network readable). Without it, Ferry refuses.
    #[arg(long, env = "FERRY_API_INSECURE_HTTP")]
    api_insecure_http: bool,
    /// A web origin (`https://ops.contoso.com`) whose pages may call the API
    /// from a browser (CORS); repeat, or comma-separate in the variable.
    /// None by default: only the dashboard, on the API's own origin.
    #[arg(long, env = "FERRY_API_CORS_ORIGINS", value_delimiter = ',')]
    api_cors_origin: Vec<String>,
    /// Binding of the default SMTP receive connector. First start only.
    #[arg(long, env = "FERRY_DEFAULT_SMTP_BIND", default_value = "0.0.0.0:25")]
    default_smtp_bind: Binding,
    /// Binding of the Hub's default Client (submission) connector. First start only.
    #[arg(
        long,
        env = "FERRY_DEFAULT_SUBMISSION_BIND",
        default_value = "0.0.0.0:587"
    )]
    default_submission_bind: Binding,
    /// The admin token (otherwise generated at first start into <data-dir>/admin-token).
    #[arg(long, env = "FERRY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A file holding the admin token (e.g. a Docker secret).
    #[arg(long, env = "FERRY_ADMIN_TOKEN_FILE")]
    admin_token_file: Option<PathBuf>,
    /// The key that encrypts secrets at rest, base64 of 32 bytes (otherwise <data-dir>/secret.key).
    #[arg(long, env = "FERRY_SECRET_KEY", hide_env_values = true)]
    secret_key: Option<String>,
    /// This host's address for outbound SMTP when a send connector sets no
    /// sourceIPAddress (multi-homed hosts; several Ferrys on one machine).
    #[arg(long, env = "FERRY_OUTBOUND_SOURCE_IP")]
    outbound_source_ip: Option<std::net::IpAddr>,
    /// DNSSEC trust anchors for DANE: a file of DNSKEY records (zone-file
    /// form). Without it, the root zone's keys built into Ferry.
    #[arg(long, env = "FERRY_DNSSEC_TRUST_ANCHOR")]
    dnssec_trust_anchor: Option<PathBuf>,
    /// Also serve `/metrics` here, without the admin token (e.g. 127.0.0.1:9025).
    /// On the API address it always needs the token.
    #[arg(long, env = "FERRY_METRICS_LISTEN")]
    metrics_listen: Option<SocketAddr>,
    /// Start although <data-dir>/secret.key is lost: make a new key and drop
    /// the certificate private keys sealed with the old one (smart-host
    /// passwords must then be set again). Without it, Ferry refuses to start.
    #[arg(long)]
    discard_undecryptable_secrets: bool,
    /// A directory of secret files (e.g. /run/secrets) that configuration
    /// documents may name: `{"file": "smarthost-password"}`. Without it,
    /// documents can give secrets only as `{"env": "FERRY_SECRET_…"}`.
    #[arg(long, env = "FERRY_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
    /// A fleet's shared configuration: `postgres://user:password@host/db`.
    /// Every server of the fleet names the same database and is given the
    /// same FERRY_SECRET_KEY; each keeps running on its own copy while
    /// PostgreSQL is away. Without it, the configuration is this server's
    /// SQLite alone.
    #[arg(long, env = "FERRY_CONFIG_STORE")]
    config_store: Option<String>,
    /// Log format: `text` (human-readable) or `json` (one object per line,
    /// with the session's or delivery's fields on every line).
    #[arg(long, env = "FERRY_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// glibc raises its mmap threshold to the size of each large block freed,
/// so after one argon2 verification (19 MiB) the next ones come from the
/// heap arenas and stay there: an AUTH flood then keeps its peak for good.
/// A fixed threshold keeps every block of 1 MiB or more in its own mapping,
/// returned to the system the moment it is freed.
fn return_big_allocations_to_the_system() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before any
    // other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

fn main() -> anyhow::Result<()> {
    return_big_allocations_to_the_system();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run())
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Openapi => {
            // `ferry openapi | head` closes the pipe early: that is not an error.
            use std::io::Write;
            match std::io::stdout().write_all(ferry::api::openapi::json().as_bytes()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
        Command::Healthcheck {
            api_listen,
            api_tls,
        } => healthcheck(api_listen, api_tls),
        Command::Config(c) => match config_cli::run(c).await {
            Ok(0) => Ok(()),
            Ok(code) => std::process::exit(code),
            Err(e) => {
                eprintln!("ferry config: {e:#}");
                std::process::exit(1)
            }
        },
        Command::Serve(a) => {
            let a = *a;
            let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
            let fmt = tracing_subscriber::fmt().with_env_filter(filter);
            if a.log_format == LogFormat::Json {
                fmt.json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .flatten_event(true)
                    .init();
            } else {
                // Colour codes only for a terminal, never into a log file or pipe.
                fmt.with_ansi(std::io::stdout().is_terminal()).init();
            }
            let admin_token = match (a.admin_token, a.admin_token_file) {
                (Some(t), _) => Some(t),
                (None, Some(f)) => Some(
                    std::fs::read_to_string(&f)
                        .map_err(|e| {
                            anyhow::anyhow!("reading the admin token file {}: {e}", f.display())
                        })?
                        .trim()
                        .to_string(),
                ),
                (None, None) => None,
            };
            if admin_token.as_deref().is_some_and(|t| t.len() < 16) {
                anyhow::bail!("the admin token must be at least 16 characters");
            }
            let app = App::build(Settings {
                data_dir: a.data_dir,
                role: a.role,
                server_name: a.server_name,
                fqdn: a.fqdn,
                api_listen: a.api_listen,
                api_tls: a.api_tls,
                api_insecure_http: a.api_insecure_http,
                api_cors_origins: a.api_cors_origin,
                default_smtp_bind: a.default_smtp_bind,
                default_submission_bind: a.default_submission_bind,
                admin_token,
                secret_key: a.secret_key,
                outbound_source_ip: a.outbound_source_ip,
                dnssec_trust_anchor: a.dnssec_trust_anchor,
                metrics_listen: a.metrics_listen,
                discard_undecryptable_secrets: a.discard_undecryptable_secrets,
                secrets_dir: a.secrets_dir,
                config_store: a.config_store,
            })
            .await?;
            app.run_until_signalled().await
        }
    }
}

/// A minimal HTTP/1.0 GET of /healthz, so the container image needs no curl.
fn healthcheck(mut addr: SocketAddr, tls: bool) -> anyhow::Result<()> {
    use std::io::{Read, Write};
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = std::time::Duration::from_secs(3);
    let s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    let request = b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n";
    let mut reply = Vec::new();
    if tls {
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()?
            .dangerous()
            // It sends no token and reads only the health status from a
            // loopback address: whatever certificate is presented will do.
            .with_custom_certificate_verifier(std::sync::Arc::new(ferry::tls::any::AcceptAny(
                provider,
            )))
            .with_no_client_auth();
        let conn = rustls::ClientConnection::new(
            std::sync::Arc::new(config),
            rustls::pki_types::ServerName::try_from("localhost")?,
        )?;
        let mut stream = rustls::StreamOwned::new(conn, s);
        stream.write_all(request)?;
        // The server may close without close_notify once the answer is sent.
        let _ = stream.read_to_end(&mut reply);
    } else {
        let mut s = s;
        s.write_all(request)?;
        s.read_to_end(&mut reply)?;
    }
    let reply = String::from_utf8_lossy(&reply);
    if reply.starts_with("HTTP/1.0 200") || reply.starts_with("HTTP/1.1 200") {
        Ok(())
    } else if !reply.starts_with("HTTP/") {
        anyhow::bail!(
            "no HTTP answer from {addr}{}",
            if tls {
                ""
            } else {
                " (if the API is served over HTTPS, add --api-tls)"
            }
        )
    } else {
        anyhow::bail!("unhealthy: {}", reply.lines().next().unwrap_or("no reply"))
    }
}
