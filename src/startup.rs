//! Building and running the whole application from settings. `App::build`
//! returns the running app with the addresses it actually bound, so tests
//! can start the real thing on port 0 with a fresh data directory.

use anyhow::Context;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::shutdown::{Lifecycle, Shutdown};

use crate::api::{self, AppState};
use crate::config::{Bootstrap, ConfigService};
use crate::model::{Binding, Role};
use crate::observe::Observer;
use crate::observe::metrics::Metrics;
use crate::queue::Queue;
use crate::queue::delivery::DeliveryEngine;
use crate::smtp::server::SmtpServer;

/// Everything `ferry serve` is configured with (flags or `FERRY_*`).
#[derive(Debug, Clone)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub role: Option<Role>,
    pub server_name: Option<String>,
    pub fqdn: Option<String>,
    pub api_listen: SocketAddr,
    /// Serve the API over HTTPS with the store's certificate for the FQDN.
    pub api_tls: bool,
    /// Allow plain HTTP on an address other than loopback.
    pub api_insecure_http: bool,
    /// Web origins (`https://ops.contoso.com`) allowed to call the API from
    /// a browser.
    pub api_cors_origins: Vec<String>,
    pub default_smtp_bind: Binding,
    pub default_submission_bind: Binding,
    pub admin_token: Option<String>,
    pub secret_key: Option<String>,
    /// This host's own address for outbound connections when a send
    /// connector names none (a multi-homed host, or loopback test hosts).
    pub outbound_source_ip: Option<std::net::IpAddr>,
    /// DNSKEY records to trust instead of the root's (DANE's DNSSEC).
    pub dnssec_trust_anchor: Option<PathBuf>,
    /// A second listener serving only `/metrics`, without a token.
    pub metrics_listen: Option<SocketAddr>,
    /// Start with a new secret key although the old one is lost.
    pub discard_undecryptable_secrets: bool,
    /// Where a configuration document's `{"file": …}` secrets are read.
    pub secrets_dir: Option<PathBuf>,
    /// The fleet's shared configuration (`postgres://…`); None: this
    /// server's own SQLite alone.
    pub config_store: Option<String>,
}

impl Settings {
    /// Defaults for a data directory: Edge role, API on an ephemeral loopback port.
    pub fn for_tests(data_dir: PathBuf, role: Role) -> Self {
        Settings {
            data_dir,
            role: Some(role),
            server_name: None,
            fqdn: None,
            api_listen: "127.0.0.1:0".parse().expect("valid"),
            api_tls: false,
            api_insecure_http: false,
            api_cors_origins: vec![],
            default_smtp_bind: "0.0.0.0:25".parse().expect("valid"),
            default_submission_bind: "0.0.0.0:587".parse().expect("valid"),
            admin_token: None,
            secret_key: None,
            outbound_source_ip: None,
            dnssec_trust_anchor: None,
            metrics_listen: None,
            discard_undecryptable_secrets: false,
            secrets_dir: None,
            config_store: None,
        }
    }
}

/// A web origin as browsers send it: scheme, host and optional port,
/// nothing else (no path, no trailing slash, no `*`).
fn parse_origin(o: &str) -> anyhow::Result<axum::http::HeaderValue> {
    let bad = || {
        anyhow::anyhow!(
            "--api-cors-origin '{o}' is not a web origin like https://ops.contoso.com or https://ops.contoso.com:8443"
        )
    };
    let rest = o
        .strip_prefix("https://")
        .or_else(|| o.strip_prefix("http://"))
        .ok_or_else(bad)?;
    if rest.is_empty() || rest.contains(['/', '*', '?', '#', '@', ' ']) {
        return Err(bad());
    }
    axum::http::HeaderValue::from_str(o).map_err(|_| bad())
}

/// A running Ferry.
pub struct App {
    pub api_addr: SocketAddr,
    /// Where `/metrics` is served without a token, if asked for.
    pub metrics_addr: Option<SocketAddr>,
    pub config: Arc<ConfigService>,
    pub queue: Queue,
    pub smtp: Arc<SmtpServer>,
    pub delivery: Arc<DeliveryEngine>,
    pub observe: Arc<Observer>,
    /// Set when this start created the data directory's configuration.
    pub token_file: Option<PathBuf>,
    /// Everything this app started runs under it (`shutdown.rs`).
    life: Arc<Lifecycle>,
    /// Held while this app runs: no second Ferry on the same data directory.
    _data_dir_lock: std::fs::File,
}

/// Takes `<data-dir>/ferry.lock` exclusively (an advisory lock the kernel
/// drops when the process ends, however it ends) and writes this process's
/// id into it. A second Ferry on the same directory would keep its own
/// view of the configuration and the queue; it is refused instead, naming
/// the holder.
pub fn lock_data_dir(dir: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read, Seek, Write};
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let path = dir.join("ferry.lock");
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    // A lock can outlive its Ferry by a moment: a child process forked
    // elsewhere in this process holds every descriptor until its exec
    // closes them. Only a lock still held after two seconds is a holder.
    let mut locked = f.try_lock().is_ok();
    for _ in 0..20 {
        if locked {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        locked = f.try_lock().is_ok();
    }
    if !locked {
        let mut holder = String::new();
        let _ = f.read_to_string(&mut holder);
        anyhow::bail!(
            "{} is in use by another Ferry (process {}, per {}): stop it first, or give this one \
             its own --data-dir",
            dir.display(),
            holder.split_whitespace().next().unwrap_or("unknown"),
            path.display()
        );
    }
    f.set_len(0)?;
    f.rewind()?;
    writeln!(f, "{}", std::process::id())?;
    f.sync_all()?;
    Ok(f)
}

impl App {
    pub async fn build(settings: Settings) -> anyhow::Result<App> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        if !settings.api_tls
            && !settings.api_listen.ip().is_loopback()
            && !settings.api_insecure_http
        {
            anyhow::bail!(
                "the API would listen on {} in plain HTTP, where the tokens cross the network readable: \
                 add --api-tls (HTTPS with the certificate for the server FQDN), listen on loopback, \
                 or, knowingly, --api-insecure-http",
                settings.api_listen
            );
        }
        let cors_origins = settings
            .api_cors_origins
            .iter()
            .map(|o| parse_origin(o))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let data_dir_lock = lock_data_dir(&settings.data_dir)?;
        let (config, first) = Bootstrap {
            data_dir: settings.data_dir.clone(),
            role: settings.role,
            server_name: settings.server_name.clone(),
            fqdn: settings.fqdn.clone(),
            default_smtp_bind: settings.default_smtp_bind,
            default_submission_bind: settings.default_submission_bind,
            admin_token: settings.admin_token.clone(),
            secret_key: settings.secret_key.clone(),
            discard_undecryptable_secrets: settings.discard_undecryptable_secrets,
        }
        .open()
        .await?;
        let config = Arc::new(config);
        let tokens = crate::api::access::Tokens::load(config.store().clone()).await?;
        let snap = config.snapshot();
        if let Some(first) = &first {
            tracing::info!(role = first.role.as_str(), data_dir = %settings.data_dir.display(), "first start: created the default configuration");
            if let Some(path) = &first.token_file {
                tracing::warn!(path = %path.display(), "generated the admin token and wrote it to this file (mode 0600); it is not shown again");
            }
        }
        let anchors = match &settings.dnssec_trust_anchor {
            Some(path) => Some(Arc::new(
                hickory_resolver::proto::dnssec::TrustAnchors::from_file(path).with_context(
                    || format!("reading the DNSSEC trust anchors {}", path.display()),
                )?,
            )),
            None => None,
        };
        let life = Arc::new(Lifecycle::default());
        let queue = Queue::open(&settings.data_dir.join("queue.db"), &life).await?;
        let metrics = Arc::new(Metrics::new());
        config.set_metrics(metrics.clone());
        queue.health.spawn_monitor(
            settings.data_dir.clone(),
            config.clone(),
            metrics.clone(),
            &life,
        );
        let observe = Observer::start(&settings.data_dir, &config, metrics, &life).await?;
        let directory = crate::directory::Directory::open(config.store().clone()).await?;
        let smtp = SmtpServer::start(
            config.clone(),
            queue.clone(),
            observe.clone(),
            directory.clone(),
            life.clone(),
        );
        config.set_reconciler(smtp.clone());
        let fleet = match &settings.config_store {
            Some(url) => {
                let fleet = crate::config::fleet::Fleet::open(url, &config).await?;
                config.set_fleet(fleet.clone());
                // A joining server takes the fleet's configuration before it
                // serves; without PostgreSQL it starts on its own copy.
                match tokio::time::timeout(Duration::from_secs(10), fleet.first_sync(&config)).await
                {
                    Ok(Ok(())) => {
                        tracing::info!(
                            revision = fleet.revision(),
                            "joined the fleet's configuration"
                        )
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %format!("{e:#}"), "the fleet's PostgreSQL is unreachable: starting on this server's copy of the configuration")
                    }
                    Err(_) => tracing::warn!(
                        "the fleet's PostgreSQL did not answer: starting on this server's copy of the configuration"
                    ),
                }
                life.spawn(
                    "fleet",
                    fleet.clone().run(Arc::downgrade(&config), life.token()),
                );
                // The fleet's API tokens arrive with its configuration: the
                // tokens in force are read again after every new snapshot.
                let (tokens, mut changes, mut stop) =
                    (tokens.clone(), config.subscribe(), life.token());
                life.spawn("fleet-tokens", async move {
                    loop {
                        tokio::select! {
                            _ = stop.recv() => return,
                            r = changes.changed() => {
                                if r.is_err() {
                                    return;
                                }
                                if let Err(e) = tokens.reload().await {
                                    tracing::warn!(error = %format!("{e:#}"), "reading the API tokens again");
                                }
                            }
                        }
                    }
                });
                Some(fleet)
            }
            None => None,
        };
        let delivery = DeliveryEngine::start(
            config.clone(),
            queue.clone(),
            settings.data_dir.clone(),
            settings.outbound_source_ip,
            anchors,
            observe.clone(),
            directory.clone(),
            life.clone(),
        );
        let acme = crate::tls::acme::Acme::new(config.clone());
        life.spawn("acme", acme.clone().run(life.token()));
        let state = AppState {
            acme,
            directory,
            config: config.clone(),
            smtp: smtp.clone(),
            queue: queue.clone(),
            delivery: delivery.clone(),
            observe: observe.clone(),
            tokens,
            api_failures: Arc::default(),
            https: settings.api_tls,
            cors_origins: Arc::new(cors_origins),
            secrets_dir: settings.secrets_dir.clone().map(Arc::new),
        };
        let listener = tokio::net::TcpListener::bind(settings.api_listen)
            .await
            .with_context(|| format!("binding the API to {}", settings.api_listen))?;
        let api_addr = listener.local_addr()?;
        if let Some(fleet) = &fleet {
            let (fleet, config, queue) = (fleet.clone(), config.clone(), queue.clone());
            let started_at = time::OffsetDateTime::now_utc();
            let mut stop = life.token();
            life.spawn("fleet-heartbeat", async move {
                loop {
                    let snap = config.snapshot();
                    let messages = queue.count().await.unwrap_or(-1);
                    let queues = crate::api::queue_views(&queue).await.unwrap_or_default();
                    let entry = crate::store::fleet::ServerEntry {
                        name: snap.ctx.server_name.clone(),
                        role: snap.ctx.role.as_str().to_string(),
                        version: env!("CARGO_PKG_VERSION").to_string(),
                        fqdn: snap.ctx.fqdn.to_string(),
                        api: api_addr.to_string(),
                        revision: fleet.revision(),
                        started_at,
                        heartbeat_at: time::OffsetDateTime::now_utc(),
                        queue: serde_json::json!({ "messages": messages, "queues": queues })
                            .to_string(),
                    };
                    if let Err(e) = fleet.journal().heartbeat(&entry).await {
                        tracing::debug!(error = %format!("{e:#}"), "fleet heartbeat failed");
                    }
                    tokio::select! {
                        _ = stop.recv() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            });
        }
        tracing::info!(
            %api_addr, role = snap.ctx.role.as_str(), server = %snap.ctx.server_name, fqdn = %snap.ctx.fqdn,
            "Ferry API listening"
        );
        let metrics_addr = match settings.metrics_listen {
            Some(addr) => {
                let l = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the metrics listener to {addr}"))?;
                let bound = l.local_addr()?;
                tracing::info!(%bound, "metrics listening (no token)");
                life.spawn(
                    "metrics-server",
                    serve_http(l, api::metrics_router(state.clone()), life.token()),
                );
                Some(bound)
            }
            None => None,
        };
        if settings.api_tls {
            match snap.select_certificate(&snap.ctx.fqdn, None) {
                Some((_, info)) => tracing::info!(
                    sha256 = %info.sha256_fingerprint, subject = %info.subject, not_after = %info.not_after,
                    "the API is served over HTTPS with this certificate (pin it, or trust its issuer)"
                ),
                None => tracing::warn!(fqdn = %snap.ctx.fqdn,
                    "no certificate covers the server FQDN: the API is served with another stored certificate"),
            }
            let tls =
                api::https::TlsListener::start(listener, config.clone(), state.tokens.clone())?;
            life.spawn(
                "api-server",
                serve_https(tls, api::router(state), life.token()),
            );
        } else {
            life.spawn(
                "api-server",
                serve_http(listener, api::router(state), life.token()),
            );
        }
        Ok(App {
            api_addr,
            metrics_addr,
            config,
            queue,
            smtp,
            delivery,
            observe,
            token_file: first.and_then(|f| f.token_file),
            life,
            _data_dir_lock: data_dir_lock,
        })
    }

    /// Stops accepting mail and API requests, lets sessions in flight finish
    /// (idle ones hear `421 4.3.2 Service shutting down`) for up to
    /// `deadline`, then closes the databases.
    ///
    /// One signal stops everything (`shutdown.rs`), in this order: the
    /// listeners, the API and the delivery scheduler stop taking work;
    /// sessions and delivery attempts in progress finish; then the
    /// writers commit what they hold and their threads are joined.
    pub async fn stop_within(self, deadline: std::time::Duration) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        self.life.signal();
        self.smtp.drain(deadline).await;
        let left = deadline.saturating_sub(started.elapsed());
        self.life
            .join_tasks(left.max(std::time::Duration::from_secs(1)))
            .await;
        // Nothing produces any more: the writers end, and are joined.
        self.queue.close().await;
        self.observe.stop().await;
        self.life.join_threads().await;
        self.config.store().close().await;
        Ok(())
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop_within(std::time::Duration::from_secs(30)).await
    }

    /// Runs until SIGTERM or SIGINT, then stops cleanly.
    pub async fn run_until_signalled(self) -> anyhow::Result<()> {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        }
        self.stop().await
    }
}

/// Serves an HTTP router until the shutdown signal, then lets requests in
/// progress finish.
async fn serve_https(
    listener: api::https::TlsListener,
    router: axum::Router,
    mut shutdown: Shutdown,
) {
    // The peer's address and client certificate reach the handlers.
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<api::https::ApiPeer>(),
    )
    .with_graceful_shutdown(async move { shutdown.recv().await })
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTPS server failed");
    }
}

async fn serve_http(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    mut shutdown: Shutdown,
) {
    // The peer's address reaches the handlers (the API's lockout).
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<api::https::ApiPeer>(),
    )
    .with_graceful_shutdown(async move { shutdown.recv().await })
    .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "HTTP server failed");
    }
}
