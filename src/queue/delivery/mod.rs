//! The delivery engine: routes accepted messages to their delivery queues,
//! connects to next hops over the send connectors' rules, records a result
//! per recipient, retries on the schedule of spec rules 20–21, expires
//! (rule 24), and sends delay notices and NDRs (rules 23 and 25).
//!
//! State lives in the queue database, so a restart picks up where it left
//! off. A message in flight when the process dies is sent again after the
//! restart: it may be delivered twice, never lost.
//!
//! Three layers, a file each:
//! - top, this file: the scheduler (tick, dispatch, in-flight accounting);
//! - middle: `route.rs` (the categorizer), `attempt.rs` (one connect-and-
//!   send loop for smart hosts, MX and mail stores; what a connection
//!   failure does to a queue), `mailbox.rs` (Maildir, or the mail store
//!   through `attempt.rs`), `expiry.rs` (expiry and delay notices) and
//!   `admin.rs` (suspend, resume, resubmit, remove — also in flight);
//! - bottom: `outcome.rs`, the one place that records what happened to
//!   recipients (status, attempt row, tracking event, metric) and then
//!   finishes the message (NDR, delete).
//!
//! Elsewhere: the retry schedule is `queue/schedule.rs`, the hosts a queue
//! leads to `routing/next_hop.rs`, the TLS/AUTH policy toward them
//! `smtp/client/policy.rs`, and every write lands in the queue's writer
//! (`store/queue/write.rs`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use super::schedule::{self, now_ms as now};
use super::status::{AttemptOutcome, RecipientStatus};
use super::{Change, Envelope, Queue, Recipient, dsn};
use crate::config::{ConfigService, Snapshot};
use crate::model::Address;
use crate::model::send_connector::DnsTlsPolicy;
use crate::observe::Observer;
use crate::observe::tracking::{Event, EventKind, Source};
use crate::routing::dns::{Dns, DnsError};
use crate::routing::mta_sts;
use crate::routing::next_hop::{self, Target};
use crate::routing::{self, HopKey, Route};
use crate::shutdown::{Lifecycle, Shutdown};
use crate::smtp::client::{ClientConfig, SmtpClient, TlsPolicy, Tlsa, Verify, policy};
use crate::store::queue as db;

mod admin;
mod attempt;
mod expiry;
mod mailbox;
mod outcome;
mod route;
pub(crate) use route::{Routed, route_at_acceptance, routed_at_acceptance};

pub use admin::{Applied, BulkAction, BulkDone};
use outcome::{Outcome, Remote};

/// An action asked for while a message was being delivered; applied when
/// the attempt ends (PendingSuspend / PendingRemove).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Suspend,
    Remove { ndr: bool },
}

#[derive(Default)]
struct State {
    /// How many attempts under way carry each message: one per queue at
    /// most, so a message for many next hops goes to all of them at once.
    in_flight: HashMap<i64, u32>,
    /// The (message, queue) pairs those attempts carry.
    carried: HashSet<(i64, HopKey)>,
    /// A message's outcomes are finished (NDR, deletion) one at a time:
    /// two queues' attempts may end together.
    finishing: HashMap<i64, Arc<tokio::sync::Mutex<()>>>,
    per_hop: HashMap<HopKey, u64>,
    total: u64,
    pending: HashMap<i64, Pending>,
    /// When each queue last recorded a successful connection; the row is
    /// written at most once a second per queue, not once per connection.
    connected: HashMap<HopKey, std::time::Instant>,
    /// Connections kept open between batches, by queue (`attempt.rs`).
    idle: HashMap<HopKey, Vec<attempt::Idle>>,
}

pub struct DeliveryEngine {
    config: Arc<ConfigService>,
    queue: Queue,
    dns: Dns,
    /// The MTA-STS policies of recipient domains, cached.
    mta_sts: mta_sts::MtaSts,
    /// DNSSEC trust anchors for DANE (None: the root's).
    anchors: Option<Arc<hickory_resolver::proto::dnssec::TrustAnchors>>,
    data_dir: PathBuf,
    /// The host's own address, when a connector sets no SourceIPAddress.
    source_ip: Option<IpAddr>,
    wake: Arc<Notify>,
    state: Mutex<State>,
    observe: Arc<Observer>,
    /// A Hub's mailbox directory for the domains that use one.
    directory: Arc<crate::directory::Directory>,
    /// The scheduler and the attempts run under it; they stop with it.
    life: Arc<Lifecycle>,
    /// Whether the scheduler's loop is running.
    running: std::sync::atomic::AtomicBool,
}

/// When a recipient deferred by a per-message failure is tried again.
fn retry_at(snap: &Snapshot) -> i64 {
    schedule::message_retry_at(&snap.transport.spec, now())
}

impl DeliveryEngine {
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        config: Arc<ConfigService>,
        queue: Queue,
        data_dir: PathBuf,
        source_ip: Option<IpAddr>,
        anchors: Option<Arc<hickory_resolver::proto::dnssec::TrustAnchors>>,
        observe: Arc<Observer>,
        directory: Arc<crate::directory::Directory>,
        life: Arc<Lifecycle>,
    ) -> Arc<DeliveryEngine> {
        let engine = Arc::new(DeliveryEngine {
            anchors,
            source_ip,
            wake: queue.notifier(),
            config,
            queue,
            dns: Dns::default(),
            mta_sts: mta_sts::MtaSts::default(),
            data_dir,
            state: Mutex::new(State::default()),
            observe,
            directory,
            life: life.clone(),
            running: std::sync::atomic::AtomicBool::new(true),
        });
        // Stops at the lifecycle's signal: no new attempt starts after it.
        // Attempts under way are tasks of the lifecycle too, joined before
        // the queue's writer closes; one cut short by the deadline is sent
        // again after the next start (the at-least-once window).
        life.spawn("delivery-scheduler", engine.clone().run(life.token()));
        engine
    }

    /// Whether the scheduler has left its loop for good (Ferry stopped).
    pub fn is_stopped(&self) -> bool {
        !self.running.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Makes the engine look at the queue now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn in_flight(&self, message: i64) -> bool {
        self.state
            .lock()
            .expect("not poisoned")
            .in_flight
            .contains_key(&message)
    }

    /// Held while a message's finished recipients are settled (`finish`).
    fn finish_lock(&self, message: i64) -> Arc<tokio::sync::Mutex<()>> {
        let mut s = self.state.lock().expect("not poisoned");
        s.finishing.entry(message).or_default().clone()
    }

    /// Drops a message's finish lock once no one else holds or waits on it.
    fn finish_unlock(&self, message: i64, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut s = self.state.lock().expect("not poisoned");
        // The map's reference and this one: nobody else is waiting.
        if Arc::strong_count(&lock) == 2 {
            s.finishing.remove(&message);
        }
    }

    /// Records an action for a message in flight; false if it is not in flight.
    fn defer_action(&self, message: i64, action: Pending) -> bool {
        let mut s = self.state.lock().expect("not poisoned");
        if s.in_flight.contains_key(&message) {
            s.pending.insert(message, action);
            true
        } else {
            false
        }
    }

    pub fn pending_action(&self, message: i64) -> Option<Pending> {
        self.state
            .lock()
            .expect("not poisoned")
            .pending
            .get(&message)
            .copied()
    }

    async fn run(self: Arc<Self>, shutdown: Shutdown) {
        self.schedule(shutdown).await;
        self.close_idle(true);
        self.running
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    async fn schedule(self: &Arc<Self>, mut shutdown: Shutdown) {
        let mut config = self.config.subscribe();
        let mut previous = self.config.snapshot();
        loop {
            if shutdown.is_shutdown() {
                return;
            }
            if let Err(e) = self.tick().await {
                tracing::error!(error = %format!("{e:#}"), "delivery tick failed");
                self.queue.health.check(&e, "queue.db");
            }
            // Under load every commit wakes the engine; a short pause lets
            // wake-ups coalesce, so one scan of the queue serves many messages.
            tokio::time::sleep(Duration::from_millis(20)).await;
            tokio::select! {
                _ = shutdown.recv() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                changed = config.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Rule 17: the Unreachable queue is routed again on a
                    // configuration change; a send connector that changed
                    // gets another try at once.
                    let current = self.config.snapshot();
                    // Connections kept open were made under the old rules.
                    self.close_idle(true);
                    let mut changes = vec![Change::UnrouteQueue { hop: HopKey::Unreachable }];
                    for c in &current.send_connectors {
                        let before = previous.send_connectors.iter().find(|p| p.id == c.id).map(|p| p.version);
                        if before.is_some_and(|v| v != c.version) {
                            changes.push(Change::RetryConnectorQueues { connector: c.id });
                        }
                    }
                    if let Err(e) = self.queue.record(changes).await {
                        tracing::error!(error = %format!("{e:#}"), "re-routing after a configuration change failed");
                    }
                    previous = current;
                }
            }
        }
    }

    async fn tick(self: &Arc<Self>) -> anyhow::Result<()> {
        self.close_idle(false);
        let snap = self.config.snapshot();
        self.route_pending(&snap).await?;
        self.expire_and_notify(&snap).await?;
        self.dispatch(&snap).await
    }

    async fn dispatch(self: &Arc<Self>, snap: &Snapshot) -> anyhow::Result<()> {
        let ts = &snap.transport.spec;
        let per_hop_max = ts
            .max_per_domain_outbound_connections
            .value()
            .unwrap_or(u64::MAX);
        let total_max = ts.max_outbound_connections.value().unwrap_or(u64::MAX);
        let due = db::due(self.queue.pool(), now(), 2000).await?;
        let mut groups: Vec<(HopKey, Vec<i64>)> = vec![];
        for (hop, msg) in due {
            match groups.iter_mut().find(|(h, _)| *h == hop) {
                Some((_, v)) => v.push(msg),
                None => groups.push((hop, vec![msg])),
            }
        }
        for (hop, msgs) in groups {
            let batch_size = hop
                .connector(snap)
                .map(|c| c.spec.smtp_max_messages_per_connection as usize)
                .unwrap_or(20)
                .max(1);
            let mut msgs: Vec<i64> = {
                let s = self.state.lock().expect("not poisoned");
                msgs.into_iter()
                    .filter(|m| !s.carried.contains(&(*m, hop.clone())))
                    .collect()
            };
            while !msgs.is_empty() {
                let batch: Vec<i64> = {
                    let mut s = self.state.lock().expect("not poisoned");
                    let active = s.per_hop.get(&hop).copied().unwrap_or(0);
                    if active >= per_hop_max || s.total >= total_max {
                        break;
                    }
                    // Spread what is due over the free connections, so a burst
                    // goes out in parallel rather than down one connection.
                    let free = (per_hop_max - active).min(total_max - s.total).max(1) as usize;
                    let n = batch_size.min(msgs.len().div_ceil(free)).max(1);
                    let batch: Vec<i64> = msgs.drain(..n).collect();
                    for m in &batch {
                        *s.in_flight.entry(*m).or_default() += 1;
                        s.carried.insert((*m, hop.clone()));
                    }
                    *s.per_hop.entry(hop.clone()).or_default() += 1;
                    s.total += 1;
                    batch
                };
                let engine = self.clone();
                let hop = hop.clone();
                let span = tracing::info_span!("delivery", next_hop = %hop.next_hop(), connector = %hop.connector_name(snap));
                self.life.spawn("delivery-attempt", tracing::Instrument::instrument(
                    async move {
                        let snap = engine.config.snapshot();
                        if let Err(e) = engine.deliver(&snap, &hop, &batch).await {
                            tracing::error!(next_hop = %hop, error = %format!("{e:#}"), "delivery failed");
                        }
                        // An action asked for while a message was carried is
                        // applied once no attempt carries it.
                        let done: Vec<i64> = {
                            let mut s = engine.state.lock().expect("not poisoned");
                            let mut done = vec![];
                            for m in &batch {
                                s.carried.remove(&(*m, hop.clone()));
                                if let Some(n) = s.in_flight.get_mut(m) {
                                    *n -= 1;
                                    if *n == 0 {
                                        s.in_flight.remove(m);
                                        done.push(*m);
                                    }
                                }
                            }
                            if let Some(n) = s.per_hop.get_mut(&hop) {
                                *n = n.saturating_sub(1);
                            }
                            s.total = s.total.saturating_sub(1);
                            done
                        };
                        for m in done {
                            engine.apply_pending(&snap, m).await;
                        }
                        engine.wake();
                    },
                    span,
                ));
            }
        }
        Ok(())
    }
}
