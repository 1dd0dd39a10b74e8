//! The SMTP receive engine: a listener supervisor that keeps one socket per
//! needed (address, port), connector selection at accept, connection limits,
//! and the per-connection session state machine.
//!
//! Listeners are reconciled with every configuration change in two steps
//! that bracket the database commit: `prepare` binds the new sockets (so a
//! binding that cannot be bound refuses the change, with the OS error, and
//! the transaction rolls back), and `activate` starts accepting on them and
//! closes the ones no longer needed. Sockets whose binding did not change
//! are left alone, and sessions in flight keep running on theirs.

pub mod auth_guard;
pub mod dot_reader;
pub mod limits;
pub mod proxy;
pub mod select;
pub mod session;

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Notify, oneshot};
use utoipa::ToSchema;

use crate::config::{ConfigService, Reconciler, Snapshot};
use crate::model::{Binding, Invalid};
use crate::queue::Queue;
use crate::shutdown::{Lifecycle, Shutdown};
use crate::smtp::replies;
use crate::tls::server::TlsCache;

/// What every session shares.
pub struct Shared {
    pub config: Arc<ConfigService>,
    pub queue: Queue,
    pub tls: TlsCache,
    pub limiter: limits::Limiter,
    /// Bounds password verifications and locks out sources that keep failing.
    pub auth: auth_guard::AuthGuard,
    /// Fires when Ferry stops: idle sessions end with `421 4.3.2`.
    pub shutdown: Shutdown,
    /// The transport agents' shared state (DNS list caches).
    pub agents: crate::agents::Agents,
    /// The recipient directory (recipient validation's List source).
    pub directory: Arc<crate::directory::Directory>,
    pub observe: Arc<crate::observe::Observer>,
}

/// The state of one connector binding, as the API shows it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    pub binding: String,
    /// `Listening`, `Failed`, `Disabled`, or `Shared` (served by the
    /// wildcard socket of the same port).
    pub state: String,
    /// The OS error when `Failed`.
    pub error: Option<String>,
}

struct Running {
    stop: oneshot::Sender<()>,
}

#[derive(Default)]
struct Listeners {
    running: HashMap<SocketAddr, Running>,
    /// Wanted but not bound, with the OS error.
    failed: HashMap<SocketAddr, String>,
}

/// Sockets bound by `prepare`, waiting for `activate`.
struct Prepared {
    bound: Vec<(SocketAddr, std::net::TcpListener)>,
    failed: Vec<(SocketAddr, String)>,
}

pub struct SmtpServer {
    shared: Arc<Shared>,
    /// Accept loops run under it.
    life: Arc<Lifecycle>,
    listeners: Mutex<Listeners>,
    sessions: Arc<AtomicUsize>,
    idle: Arc<Notify>,
    /// `wanted()` of the last snapshot asked about, for listing many connectors.
    wanted_cache: Mutex<Option<(u64, Arc<BTreeSet<SocketAddr>>)>>,
}

/// The sockets a snapshot needs: every binding of an enabled connector,
/// except specific addresses whose port a wildcard of the same family
/// already serves (selection tells them apart by local address).
pub fn wanted(snap: &Snapshot) -> BTreeSet<SocketAddr> {
    let bindings: Vec<Binding> = snap
        .receive_connectors
        .iter()
        .filter(|c| c.spec.enabled)
        .flat_map(|c| c.spec.bindings_on(&snap.ctx.server_name).iter().copied())
        .collect();
    let covered = |b: &Binding| {
        !b.is_wildcard()
            && bindings.iter().any(|w| {
                w.is_wildcard()
                    && w.port() == b.port()
                    && w.socket_addr().is_ipv4() == b.socket_addr().is_ipv4()
            })
    };
    bindings
        .iter()
        .filter(|b| !covered(b))
        .map(|b| b.socket_addr())
        .collect()
}

fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

impl SmtpServer {
    /// Binds what the current configuration needs; failures are recorded and
    /// logged, and the server runs without them.
    pub fn start(
        config: Arc<ConfigService>,
        queue: Queue,
        observe: Arc<crate::observe::Observer>,
        directory: Arc<crate::directory::Directory>,
        life: Arc<Lifecycle>,
    ) -> Arc<SmtpServer> {
        let shutdown = life.token();
        let shared = Arc::new(Shared {
            tls: TlsCache::new(config.secrets.clone()),
            config: config.clone(),
            queue,
            limiter: limits::Limiter::default(),
            auth: auth_guard::AuthGuard::default(),
            shutdown,
            agents: crate::agents::Agents::new(observe.clone()),
            directory,
            observe,
        });
        let reporter = shared.clone();
        let token = life.token();
        life.spawn("dmarc-reports", async move {
            let s = &reporter;
            crate::agents::reports::run(
                &s.agents.dmarc_reports,
                &s.config,
                &s.queue,
                &s.agents,
                token,
            )
            .await
        });
        let reporter = shared.clone();
        let token = life.token();
        life.spawn("tls-reports", async move {
            let s = &reporter;
            crate::agents::reports::run(
                &s.agents.tls_reports,
                &s.config,
                &s.queue,
                &s.agents,
                token,
            )
            .await
        });
        let server = Arc::new(SmtpServer {
            shared,
            life,
            listeners: Mutex::new(Listeners::default()),
            sessions: Arc::new(AtomicUsize::new(0)),
            idle: Arc::new(Notify::new()),
            wanted_cache: Mutex::new(None),
        });
        let snap = config.snapshot();
        let prepared = server.bind_missing(&snap, None).expect("not strict");
        for (addr, e) in &prepared.failed {
            tracing::error!(binding = %addr, error = %e, "cannot listen; the connectors on this binding are down");
        }
        server.start_prepared(prepared, &snap);
        server
    }

    /// DMARC aggregate reports, made now ("send now" in the API).
    pub async fn send_dmarc_reports(&self) -> anyhow::Result<Vec<crate::store::dmarc::ReportRow>> {
        let s = &self.shared;
        crate::agents::reports::send_now(&s.agents.dmarc_reports, &s.config, &s.queue, &s.agents)
            .await
    }

    /// TLS reports, made now ("send now" in the API).
    pub async fn send_tls_reports(
        &self,
    ) -> anyhow::Result<Vec<crate::store::tlsrpt::TlsReportRow>> {
        let s = &self.shared;
        crate::agents::reports::send_now(&s.agents.tls_reports, &s.config, &s.queue, &s.agents)
            .await
    }

    /// The tracking database DMARC and TLS reports are listed from, once everything counted so far is written
    /// (the writer gathers events for a few milliseconds before committing).
    pub async fn dmarc_reports_pool(&self) -> &sqlx::SqlitePool {
        let tracking = &self.shared.observe.tracking;
        tracking.flush().await;
        tracking.pool()
    }

    /// The state of each binding of a connector.
    pub fn status(
        &self,
        snap: &Snapshot,
        connector: &crate::model::ReceiveConnector,
    ) -> Vec<ListenerStatus> {
        let wanted = {
            let mut cache = self.wanted_cache.lock().expect("not poisoned");
            match cache.as_ref() {
                Some((generation, w)) if *generation == snap.generation => w.clone(),
                _ => {
                    let w = Arc::new(wanted(snap));
                    *cache = Some((snap.generation, w.clone()));
                    w
                }
            }
        };
        let l = self.listeners.lock().expect("not poisoned");
        connector
            .bindings_on(&snap.ctx.server_name)
            .iter()
            .map(|b| {
                let addr = b.socket_addr();
                let (state, error) = if !connector.enabled {
                    ("Disabled", None)
                } else if let Some(e) = l.failed.get(&addr) {
                    ("Failed", Some(e.clone()))
                } else if l.running.contains_key(&addr) {
                    ("Listening", None)
                } else if !wanted.contains(&addr) {
                    ("Shared", None)
                } else {
                    ("Failed", Some("not bound".to_string()))
                };
                ListenerStatus {
                    binding: b.to_string(),
                    state: state.into(),
                    error,
                }
            })
            .collect()
    }

    /// Binds every wanted socket not yet running. With `strict`, a socket
    /// that the previous configuration did not want and that cannot be
    /// bound refuses the change.
    fn bind_missing(
        &self,
        snap: &Snapshot,
        strict: Option<&Snapshot>,
    ) -> Result<Prepared, Invalid> {
        let running: BTreeSet<SocketAddr> = self
            .listeners
            .lock()
            .expect("not poisoned")
            .running
            .keys()
            .copied()
            .collect();
        let before = strict.map(wanted).unwrap_or_default();
        let mut prepared = Prepared {
            bound: vec![],
            failed: vec![],
        };
        for addr in wanted(snap).difference(&running) {
            let mut result = bind(*addr);
            if let Err(e) = &result
                && e.kind() == std::io::ErrorKind::AddrInUse
                && self.release_replaced(snap, *addr)
            {
                result = bind(*addr);
            }
            match result {
                Ok(l) => prepared.bound.push((*addr, l)),
                Err(e) if strict.is_some() && !before.contains(addr) => {
                    return Err(binding_error(snap, *addr, &e));
                }
                Err(e) => prepared.failed.push((*addr, e.to_string())),
            }
        }
        Ok(prepared)
    }

    /// Stops our own sockets on `addr`'s port that the new configuration no
    /// longer wants (a specific address giving way to a wildcard, or back),
    /// so the new socket can be bound. Returns whether any was stopped.
    fn release_replaced(&self, snap: &Snapshot, addr: SocketAddr) -> bool {
        let wanted = wanted(snap);
        let mut l = self.listeners.lock().expect("not poisoned");
        let doomed: Vec<SocketAddr> = l
            .running
            .keys()
            .filter(|a| {
                a.port() == addr.port() && a.is_ipv4() == addr.is_ipv4() && !wanted.contains(a)
            })
            .copied()
            .collect();
        for a in &doomed {
            if let Some(r) = l.running.remove(a) {
                let _ = r.stop.send(());
            }
        }
        // The accept loops drop their sockets as soon as they see the stop.
        if !doomed.is_empty() {
            std::thread::sleep(Duration::from_millis(20));
        }
        !doomed.is_empty()
    }

    fn start_prepared(&self, prepared: Prepared, snap: &Snapshot) {
        let wanted = wanted(snap);
        let mut l = self.listeners.lock().expect("not poisoned");
        let obsolete: Vec<SocketAddr> = l
            .running
            .keys()
            .filter(|a| !wanted.contains(a))
            .copied()
            .collect();
        for a in obsolete {
            if let Some(r) = l.running.remove(&a) {
                let _ = r.stop.send(());
                tracing::info!(binding = %a, "stopped listening");
            }
        }
        l.failed.retain(|a, _| wanted.contains(a));
        for (addr, e) in prepared.failed {
            l.failed.insert(addr, e);
        }
        for (addr, std_listener) in prepared.bound {
            match tokio::net::TcpListener::from_std(std_listener) {
                Ok(listener) => {
                    let (stop, stopped) = oneshot::channel();
                    self.life.spawn(
                        "smtp-accept",
                        accept_loop(
                            self.shared.clone(),
                            listener,
                            stopped,
                            self.sessions.clone(),
                            self.idle.clone(),
                        ),
                    );
                    l.failed.remove(&addr);
                    l.running.insert(addr, Running { stop });
                    tracing::info!(binding = %addr, "listening for SMTP");
                }
                Err(e) => {
                    l.failed.insert(addr, e.to_string());
                }
            }
        }
    }

    /// Runs one session over any byte stream, as if it had been accepted on
    /// `local` from `remote` (connector selection and limits included). The
    /// listeners use the same path; tests and fuzzing use it with in-memory
    /// streams.
    pub async fn serve_stream<S>(&self, stream: S, local: SocketAddr, remote: SocketAddr)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
    {
        serve(self.shared.clone(), stream, local, remote).await
    }

    /// After the lifecycle's signal (listeners stop accepting, idle
    /// sessions hear `421 4.3.2 Service shutting down`): waits up to
    /// `deadline` for the sessions in progress to finish.
    pub async fn drain(&self, deadline: Duration) {
        {
            let mut l = self.listeners.lock().expect("not poisoned");
            for (_, r) in l.running.drain() {
                let _ = r.stop.send(());
            }
        }
        let wait = async {
            while self.sessions.load(Ordering::SeqCst) > 0 {
                let notified = self.idle.notified();
                if self.sessions.load(Ordering::SeqCst) == 0 {
                    break;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(deadline, wait).await.is_err() {
            tracing::warn!(
                sessions = self.sessions.load(Ordering::SeqCst),
                "shutdown deadline reached with sessions open"
            );
        }
    }
}

fn binding_error(snap: &Snapshot, addr: SocketAddr, e: &std::io::Error) -> Invalid {
    let field = snap
        .receive_connectors
        .iter()
        .find_map(|c| {
            c.spec
                .bindings_on(&snap.ctx.server_name)
                .iter()
                .position(|b| b.socket_addr() == addr)
                .map(|i| format!("bindings[{i}]"))
        })
        .unwrap_or_else(|| "bindings".into());
    Invalid::field(field, format!("cannot listen on {addr}: {e}"))
}

impl Reconciler for SmtpServer {
    fn prepare(&self, old: &Snapshot, new: &Snapshot) -> Result<Box<dyn Any + Send>, Invalid> {
        Ok(Box::new(self.bind_missing(new, Some(old))?))
    }

    fn prepare_anyway(&self, new: &Snapshot) -> Box<dyn Any + Send> {
        match self.bind_missing(new, None) {
            Ok(p) => Box::new(p),
            // Not strict: every failure is in `failed`, never an error.
            Err(e) => {
                tracing::error!(error = %e, "listeners for the fleet's configuration");
                Box::new(())
            }
        }
    }

    fn activate(&self, prepared: Box<dyn Any + Send>, new: &Snapshot) {
        if let Ok(p) = prepared.downcast::<Prepared>() {
            self.start_prepared(*p, new);
        }
    }
}

struct SessionCount {
    sessions: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

impl Drop for SessionCount {
    fn drop(&mut self) {
        if self.sessions.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.idle.notify_waiters();
        }
    }
}

async fn accept_loop(
    shared: Arc<Shared>,
    listener: tokio::net::TcpListener,
    mut stop: oneshot::Receiver<()>,
    sessions: Arc<AtomicUsize>,
    idle: Arc<Notify>,
) {
    let mut backoff = Duration::from_millis(10);
    let mut shutdown = shared.shutdown.clone();
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = shutdown.recv() => break,
            r = listener.accept() => match r {
                Ok((stream, remote)) => {
                    backoff = Duration::from_millis(10);
                    sessions.fetch_add(1, Ordering::SeqCst);
                    let count = SessionCount { sessions: sessions.clone(), idle: idle.clone() };
                    tokio::spawn(connection(shared.clone(), stream, remote, count));
                }
                Err(e) => {
                    // Transient (e.g. out of file descriptors): back off, never die.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

async fn connection(
    shared: Arc<Shared>,
    stream: tokio::net::TcpStream,
    remote: SocketAddr,
    _count: SessionCount,
) {
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let _ = stream.set_nodelay(true);
    serve(shared, stream, local, remote).await
}

/// The one path from an accepted stream to a session: connector selection
/// (`421 4.3.2` when none matches), the connection limits, then the
/// session. The listeners and `serve_stream` (tests, fuzzing) both use it.
async fn serve<S>(shared: Arc<Shared>, mut stream: S, local: SocketAddr, peer: SocketAddr)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send,
{
    let snap = shared.config.snapshot();
    // Behind a listed load balancer the client is the one its PROXY
    // header names; a balancer that sends none, or a broken one, is cut off.
    let remote = if proxy::from_balancer(&snap, local, peer.ip()) {
        match tokio::time::timeout(proxy::HEADER_TIMEOUT, proxy::read_header(&mut stream)).await {
            Ok(Ok(Some(client))) => {
                tracing::debug!(%peer, %client, "PROXY header");
                client
            }
            Ok(Ok(None)) => peer,
            Ok(Err(why)) => {
                tracing::info!(%local, %peer, why, "refused: a load balancer sent no valid PROXY header");
                return;
            }
            Err(_) => {
                tracing::info!(%local, %peer, "refused: a load balancer sent no PROXY header in time");
                return;
            }
        }
    } else {
        peer
    };
    // A server being drained takes no new mail; its sessions in progress end
    // as they would.
    if snap.drain.spec.draining {
        tracing::info!(%local, %remote, "draining: refused a new session");
        let _ = stream
            .write_all(replies::DRAINING.to_line(true).as_bytes())
            .await;
        return;
    }
    let Some(connector) = select::select(&snap, local, remote).cloned() else {
        tracing::info!(%local, %remote, "no receive connector matches; refused");
        let _ = stream
            .write_all(replies::SERVICE_NOT_AVAILABLE.to_line(true).as_bytes())
            .await;
        return;
    };
    let guard = match shared
        .limiter
        .admit(connector.id, &connector.spec, remote.ip())
    {
        Ok(g) => g,
        Err(refusal) => {
            let reply = match refusal {
                limits::Refusal::Server => replies::TOO_MANY_CONNECTIONS,
                limits::Refusal::Source => replies::TOO_MANY_FROM_SOURCE,
            };
            tracing::info!(connector = %connector.spec.name, %remote, "connection limit reached");
            let _ = stream
                .write_all(
                    reply
                        .to_line(connector.spec.enhanced_status_codes_enabled)
                        .as_bytes(),
                )
                .await;
            return;
        }
    };
    session::Session::new(
        shared.clone(),
        snap.clone(),
        connector,
        stream,
        local,
        remote,
        Some(guard),
    )
    .run()
    .await;
}
