//! The delivery engine: routes accepted messages to their delivery queues,
//! connects to next hops over the send connectors' rules, records a result
//! per recipient, retries on the schedule of spec rules 20–21, expires
//! (rule 24), and sends delay notices and NDRs (rules 23 and 25).
//!
//! State lives in the queue database, so a restart picks up where it left
//! off. A message in flight when the process dies is sent again after the
//! restart: it may be delivered twice, never lost.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::sync::Notify;

use super::{Envelope, Queue, Recipient, dsn};
use crate::config::{ConfigService, Snapshot};
use crate::model::send_connector::TlsAuthLevel;
use crate::model::{
    CertificateKind, CredentialKind, Domain, Host, ProtocolLoggingLevel, SendConnector,
    SmartHostAuthMechanism,
};
use crate::observe::Observer;
use crate::observe::tracking::Event;
use crate::routing::dns::{Dns, DnsError};
use crate::routing::{self, HopKey, Route, UNREACHABLE};
use crate::smtp::client::{ClientConfig, ClientObserve, SmtpClient, TlsPolicy, Verify};
use crate::store::Stored;
use crate::store::queue as db;

/// An action asked for while a message was being delivered; applied when
/// the attempt ends (PendingSuspend / PendingRemove).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pending {
    Suspend,
    Remove { ndr: bool },
}

#[derive(Default)]
struct State {
    in_flight: HashSet<i64>,
    per_hop: HashMap<String, u64>,
    total: u64,
    pending: HashMap<i64, Pending>,
    /// When each queue last recorded a successful connection; the row is
    /// written at most once a second per queue, not once per connection.
    connected: HashMap<String, std::time::Instant>,
}

pub struct DeliveryEngine {
    config: Arc<ConfigService>,
    queue: Queue,
    dns: Dns,
    data_dir: PathBuf,
    /// The host's own address, when a connector sets no SourceIPAddress.
    source_ip: Option<IpAddr>,
    wake: Arc<Notify>,
    state: Mutex<State>,
    observe: Arc<Observer>,
}

/// A tracking event about a stored message.
fn event(
    event: &'static str,
    source: &'static str,
    m: &db::StoredMessage,
    recipients: Vec<String>,
) -> Event {
    Event {
        event,
        source,
        internal_id: m.id,
        message_id: m.message_id.clone(),
        sender: m.sender.clone(),
        recipients,
        size: Some(m.size),
        subject: m.subject.clone(),
        ..Default::default()
    }
}

/// The send connector of a delivery queue, by name; `mailbox` for mailbox delivery.
fn hop_connector(snap: &Snapshot, hop: &str) -> String {
    hop.parse::<HopKey>()
        .map(|k| k.connector_name(snap))
        .unwrap_or_else(|_| hop.to_string())
}

/// When a recipient deferred by a per-message failure is tried again.
fn retry_at(snap: &Snapshot) -> i64 {
    schedule::message_retry_at(&snap.transport.spec, now())
}

/// The next hop's display part of a queue key.
fn hop_display(hop: &str) -> String {
    hop.parse::<HopKey>()
        .map(|k| k.next_hop().to_string())
        .unwrap_or_else(|_| hop.to_string())
}

/// How long ago a message was accepted.
fn age(m: &db::StoredMessage) -> Duration {
    let received = time::OffsetDateTime::parse(
        &m.received_at,
        &time::format_description::well_known::Rfc3339,
    )
    .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
    .unwrap_or(m.received_unix * 1000);
    Duration::from_millis((now() - received).max(0) as u64)
}

use super::schedule::{self, now_ms as now, now_secs};
use super::status::RecipientStatus;

impl DeliveryEngine {
    pub fn start(
        config: Arc<ConfigService>,
        queue: Queue,
        data_dir: PathBuf,
        source_ip: Option<IpAddr>,
        observe: Arc<Observer>,
    ) -> Arc<DeliveryEngine> {
        let engine = Arc::new(DeliveryEngine {
            source_ip,
            wake: queue.notifier(),
            config,
            queue,
            dns: Dns::default(),
            data_dir,
            state: Mutex::new(State::default()),
            observe,
        });
        tokio::spawn(engine.clone().run());
        engine
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
            .contains(&message)
    }

    /// Records an action for a message in flight; false if it is not in flight.
    pub fn defer_action(&self, message: i64, action: Pending) -> bool {
        let mut s = self.state.lock().expect("not poisoned");
        if s.in_flight.contains(&message) {
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

    async fn run(self: Arc<Self>) {
        let mut config = self.config.subscribe();
        let mut previous = self.config.snapshot();
        loop {
            if let Err(e) = self.tick().await {
                tracing::error!(error = %format!("{e:#}"), "delivery tick failed");
                self.queue.health.check(&e, "queue.db");
            }
            // Under load every commit wakes the engine; a short pause lets
            // wake-ups coalesce, so one scan of the queue serves many messages.
            tokio::time::sleep(Duration::from_millis(20)).await;
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                changed = config.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    // Rule 17: the Unreachable queue is routed again on a configuration change.
                    let _ = db::unroute(self.queue.pool(), None, Some(UNREACHABLE)).await;
                    // A send connector that changed gets another try at once.
                    let current = self.config.snapshot();
                    for c in &current.send_connectors {
                        let before = previous.send_connectors.iter().find(|p| p.id == c.id).map(|p| p.version);
                        if before.is_some_and(|v| v != c.version) {
                            let _ = db::retry_connector_queues(self.queue.pool(), &c.id.to_string()).await;
                        }
                    }
                    previous = current;
                }
            }
        }
    }

    async fn tick(self: &Arc<Self>) -> anyhow::Result<()> {
        let snap = self.config.snapshot();
        self.route_pending(&snap).await?;
        self.expire_and_notify(&snap).await?;
        self.dispatch(&snap).await
    }

    /// Categorizer: every unrouted recipient gets a delivery queue.
    async fn route_pending(&self, snap: &Snapshot) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        // Every decision goes into one group commit; one ROUTE event per
        // message and delivery queue.
        let mut decisions = vec![];
        let mut routed: Vec<(db::Unrouted, crate::routing::QueueKey, Vec<String>)> = vec![];
        let mut index: HashMap<(i64, routing::HopKey), usize> = HashMap::new();
        for r in db::unrouted(pool, 5000).await? {
            let domain = r
                .address
                .rsplit_once('@')
                .and_then(|(_, d)| d.parse::<Domain>().ok());
            let route = match &domain {
                Some(d) => routing::route(snap, d, r.size as u64),
                None => Route::Unreachable {
                    reason: format!("the recipient {} has no domain to route on", r.address),
                },
            };
            match route.queue_key() {
                Some(key) => {
                    decisions.push((r.message, r.idx, key.clone()));
                    match index.get(&(r.message, key.key.clone())) {
                        Some(&i) => routed[i].2.push(r.address.clone()),
                        None => {
                            index.insert((r.message, key.key.clone()), routed.len());
                            let address = r.address.clone();
                            routed.push((r, key, vec![address]));
                        }
                    }
                }
                None => {
                    self.observe.tracking.record(Event {
                        event: "FAIL",
                        source: "ROUTING",
                        internal_id: r.message,
                        message_id: r.message_id.clone(),
                        sender: r.sender.clone(),
                        recipients: vec![r.address.clone()],
                        size: Some(r.size),
                        subject: r.subject.clone(),
                        detail: Some("550 5.3.4 The message is larger than every send connector that could carry it allows".into()),
                        ..Default::default()
                    });
                    db::set_recipient(
                        pool,
                        r.message,
                        r.idx,
                        RecipientStatus::Failed,
                        Some("550 5.3.4 The message is larger than every send connector that could carry it allows"),
                        None,
                        0,
                    )
                    .await?;
                    self.finish(snap, r.message).await?;
                }
            }
        }
        self.queue.route(decisions).await?;
        for (r, key, recipients) in routed {
            self.observe.tracking.record(Event {
                event: "ROUTE",
                source: "ROUTING",
                internal_id: r.message,
                message_id: r.message_id,
                sender: r.sender,
                recipients,
                size: Some(r.size),
                subject: r.subject,
                connector: key.connector.clone(),
                next_hop: Some(key.display.clone()),
                detail: Some(match &key.reason {
                    Some(why) => format!("{}: {why}", key.delivery_type),
                    None => key.delivery_type.to_string(),
                }),
                ..Default::default()
            });
        }
        Ok(())
    }

    /// Rule 24 (expiry → NDR 4.4.7) and rule 23 (delay notice).
    async fn expire_and_notify(&self, snap: &Snapshot) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let ts = &snap.transport.spec;
        let t = now_secs();
        for id in db::older_than(
            pool,
            t - ts.message_expiration_timeout.as_secs() as i64,
            false,
        )
        .await?
        {
            if self.in_flight(id) {
                continue;
            }
            let mut expired = vec![];
            for r in db::recipients(pool, id).await? {
                if r.status().is_pending() {
                    expired.push(r.address.clone());
                    let why = format!(
                        "550 4.4.7 QUEUE.Expired; message expired{}",
                        r.last_error
                            .as_ref()
                            .map(|e| format!(" (last error: {e})"))
                            .unwrap_or_default()
                    );
                    db::set_recipient(
                        pool,
                        id,
                        r.idx,
                        RecipientStatus::Failed,
                        Some(&why),
                        None,
                        0,
                    )
                    .await?;
                }
            }
            tracing::info!(internal_id = id, "EXPIRE");
            if let Some(m) = db::message(pool, id).await? {
                self.observe.tracking.record(Event {
                    detail: Some("550 4.4.7 QUEUE.Expired; message expired".into()),
                    ..event("EXPIRE", "QUEUE", &m, expired)
                });
            }
            self.finish(snap, id).await?;
        }
        if ts.external_delay_dsn_enabled || ts.internal_delay_dsn_enabled {
            for id in db::older_than(
                pool,
                t - ts.delay_notification_timeout.as_secs() as i64,
                true,
            )
            .await?
            {
                let Some(m) = db::message(pool, id).await? else {
                    continue;
                };
                db::set_delay_notified(pool, id).await?;
                if m.sender.is_empty() {
                    continue;
                }
                let rcpts = db::recipients(pool, id).await?;
                let pending: Vec<_> = rcpts.iter().filter(|r| r.status().is_pending()).collect();
                let failed: Vec<dsn::Failed<'_>> = pending
                    .iter()
                    .map(|r| dsn::Failed {
                        recipient: &r.address,
                        diagnostic: r
                            .last_error
                            .as_deref()
                            .unwrap_or("400 4.0.0 Delivery has not been completed yet"),
                        remote_host: r.remote_host.as_deref(),
                    })
                    .collect();
                let body = db::body(pool, id).await?.unwrap_or_default();
                let recipients = failed.iter().map(|f| f.recipient.to_string()).collect();
                self.send_dsn(snap, dsn::Kind::Delay, &m, &failed, &body, recipients)
                    .await?;
                tracing::info!(internal_id = id, "DSN delay");
            }
        }
        Ok(())
    }

    async fn dispatch(self: &Arc<Self>, snap: &Snapshot) -> anyhow::Result<()> {
        let ts = &snap.transport.spec;
        let per_hop_max = ts
            .max_per_domain_outbound_connections
            .value()
            .unwrap_or(u64::MAX);
        let total_max = ts.max_outbound_connections.value().unwrap_or(u64::MAX);
        let due = db::due(self.queue.pool(), now(), 2000).await?;
        let mut groups: Vec<(String, Vec<i64>)> = vec![];
        for (hop, msg) in due {
            match groups.iter_mut().find(|(h, _)| *h == hop) {
                Some((_, v)) => v.push(msg),
                None => groups.push((hop, vec![msg])),
            }
        }
        for (hop, msgs) in groups {
            let batch_size = hop
                .parse::<HopKey>()
                .ok()
                .and_then(|k| k.connector(snap).cloned())
                .map(|c| c.spec.smtp_max_messages_per_connection as usize)
                .unwrap_or(20)
                .max(1);
            let mut msgs: Vec<i64> = {
                let s = self.state.lock().expect("not poisoned");
                msgs.into_iter()
                    .filter(|m| !s.in_flight.contains(m))
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
                    s.in_flight.extend(batch.iter().copied());
                    *s.per_hop.entry(hop.clone()).or_default() += 1;
                    s.total += 1;
                    batch
                };
                let engine = self.clone();
                let hop = hop.clone();
                let span = tracing::info_span!("delivery", next_hop = %hop_display(&hop), connector = %hop_connector(snap, &hop));
                tokio::spawn(tracing::Instrument::instrument(
                    async move {
                        let snap = engine.config.snapshot();
                        if let Err(e) = engine.deliver(&snap, &hop, &batch).await {
                            tracing::error!(next_hop = %hop, error = %format!("{e:#}"), "delivery failed");
                        }
                        {
                            let mut s = engine.state.lock().expect("not poisoned");
                            for m in &batch {
                                s.in_flight.remove(m);
                            }
                            if let Some(n) = s.per_hop.get_mut(&hop) {
                                *n = n.saturating_sub(1);
                            }
                            s.total = s.total.saturating_sub(1);
                        }
                        for m in &batch {
                            let _ = engine.apply_pending(&snap, *m).await;
                        }
                        engine.wake();
                    },
                    span,
                ));
            }
        }
        Ok(())
    }

    /// Applies an action that waited for the attempt to end.
    async fn apply_pending(&self, snap: &Snapshot, message: i64) -> anyhow::Result<()> {
        let action = self
            .state
            .lock()
            .expect("not poisoned")
            .pending
            .remove(&message);
        match action {
            Some(Pending::Suspend) => {
                sqlx::query("UPDATE messages SET suspended = 1 WHERE id = ?")
                    .bind(message)
                    .execute(self.queue.pool())
                    .await?;
            }
            Some(Pending::Remove { ndr }) => self.remove(snap, message, ndr).await?,
            None => {}
        }
        Ok(())
    }

    /// Records an administrator's action on a message (SUSPEND, RESUME,
    /// RESUBMIT) in message tracking.
    pub async fn track_action(
        &self,
        message: i64,
        name: &'static str,
        detail: &str,
    ) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        if let Some(m) = db::message(pool, message).await? {
            let pending = db::recipients(pool, message)
                .await?
                .into_iter()
                .filter(|r| r.status().is_pending())
                .map(|r| r.address)
                .collect();
            tracing::info!(internal_id = message, message_id = %m.message_id, event = name, "queue action");
            self.observe.tracking.record(Event {
                detail: Some(detail.to_string()),
                ..event(name, "ADMIN", &m, pending)
            });
        }
        Ok(())
    }

    /// Remove-Message: with an NDR for pending recipients, or silently.
    pub async fn remove(&self, snap: &Snapshot, message: i64, ndr: bool) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        for r in db::recipients(pool, message).await? {
            if r.status().is_pending() {
                let status = if ndr {
                    RecipientStatus::Failed
                } else {
                    RecipientStatus::Removed
                };
                db::set_recipient(
                    pool,
                    message,
                    r.idx,
                    status,
                    Some("550 5.3.2 The message was deleted by an administrator"),
                    None,
                    0,
                )
                .await?;
            }
        }
        tracing::info!(internal_id = message, ndr, "DELETE");
        if let Some(m) = db::message(pool, message).await? {
            let all = db::recipients(pool, message)
                .await?
                .into_iter()
                .map(|r| r.address)
                .collect();
            self.observe.tracking.record(Event {
                detail: Some(if ndr {
                    "removed by an administrator, with an NDR".into()
                } else {
                    "removed by an administrator, without an NDR".into()
                }),
                ..event("DELETE", "ADMIN", &m, all)
            });
        }
        self.finish(snap, message).await
    }

    async fn deliver(&self, snap: &Snapshot, hop: &str, batch: &[i64]) -> anyhow::Result<()> {
        let key: Option<HopKey> = hop.parse().ok();
        if let Some(HopKey::Mailbox { domain }) = &key {
            return self.deliver_mailbox(snap, hop, domain, batch).await;
        }
        let connector = key
            .as_ref()
            .and_then(|k| k.connector(snap))
            .filter(|c| c.spec.enabled)
            .cloned();
        let Some(connector) = connector else {
            // The connector went away or was disabled: route these again.
            db::unroute(self.queue.pool(), None, Some(hop)).await?;
            return Ok(());
        };
        let hop_name = key
            .as_ref()
            .map(|k| k.next_hop().to_string())
            .unwrap_or_default();
        let hosts = match self.next_hop_hosts(snap, &connector.spec, &hop_name).await {
            Ok(h) => h,
            Err(DnsError::Permanent(e)) => {
                for m in batch {
                    let pending = db::pending_for_hop(self.queue.pool(), *m, hop).await?;
                    if let Some(stored) = db::message(self.queue.pool(), *m).await? {
                        self.observe.metrics.failed(&connector.spec.name);
                        self.observe.tracking.record(Event {
                            connector: Some(connector.spec.name.clone()),
                            next_hop: Some(hop_name.clone()),
                            detail: Some(e.clone()),
                            ..event(
                                "FAIL",
                                "SMTP",
                                &stored,
                                pending.iter().map(|r| r.address.clone()).collect(),
                            )
                        });
                    }
                    for r in pending {
                        db::set_recipient(
                            self.queue.pool(),
                            *m,
                            r.idx,
                            RecipientStatus::Failed,
                            Some(&e),
                            None,
                            0,
                        )
                        .await?;
                    }
                    db::record_attempt(self.queue.pool(), *m, hop, None, "FAIL", &e).await?;
                    self.finish(snap, *m).await?;
                }
                return Ok(());
            }
            Err(DnsError::Transient(e)) => {
                return self.connection_failed(snap, hop, batch, &e).await;
            }
        };
        let cfg = self.client_config(snap, &connector)?;
        let mut last_error = String::from("no host to connect to");
        let mut client = None;
        'hosts: for (name, addrs) in &hosts {
            for ip in addrs {
                match SmtpClient::open(SocketAddr::new(*ip, connector.spec.port), name, &cfg).await
                {
                    Ok(c) => {
                        client = Some((name.clone(), c));
                        break 'hosts;
                    }
                    Err(e) => {
                        tracing::info!(next_hop = %hop_name, host = %name, %ip, error = %e, "connection attempt failed");
                        last_error = format!("{name} [{ip}]: {e}");
                    }
                }
            }
        }
        let Some((host, mut client)) = client else {
            let error = if hosts.len() > 1 {
                format!(
                    "{last_error}; attempted failover to alternate hosts, but that did not succeed"
                )
            } else {
                last_error
            };
            return self.connection_failed(snap, hop, batch, &error).await;
        };
        self.connected(hop).await?;
        let remote = format!("{host} [{}]", client.remote.ip());
        tracing::debug!(next_hop = %hop_name, %remote, session = %client.session, "connected");
        for m in batch {
            match self.send_one(snap, hop, &mut client, &remote, *m).await? {
                true => {}
                false => break,
            }
        }
        client.quit().await;
        Ok(())
    }

    /// Sends one message over an open connection; false when the connection is lost.
    async fn send_one(
        &self,
        snap: &Snapshot,
        hop: &str,
        client: &mut SmtpClient,
        remote: &str,
        id: i64,
    ) -> anyhow::Result<bool> {
        let pool = self.queue.pool();
        if self.pending_action(id).is_some() {
            return Ok(true);
        }
        let Some(m) = db::message(pool, id).await? else {
            return Ok(true);
        };
        let rcpts = db::pending_for_hop(pool, id, hop).await?;
        if rcpts.is_empty() {
            return Ok(true);
        }
        let body = db::body(pool, id).await?.unwrap_or_default();
        let addresses: Vec<String> = rcpts.iter().map(|r| r.address.clone()).collect();
        match client.send(&m.sender, &addresses, &body).await {
            Ok(result) => {
                let retry_at = retry_at(snap);
                let mut results = Vec::with_capacity(rcpts.len());
                // Recipients by outcome and reply, one tracking event each.
                let mut outcomes: Vec<(&'static str, String, Vec<String>)> = vec![];
                for (r, reply) in rcpts.iter().zip(result.recipients) {
                    let text = reply.to_string();
                    let (status, next) = if reply.is_positive() {
                        (RecipientStatus::Delivered, 0)
                    } else if reply.is_permanent() {
                        (RecipientStatus::Failed, 0)
                    } else {
                        (RecipientStatus::Retry, retry_at)
                    };
                    let ev = status.attempt_event();
                    tracing::info!(internal_id = id, message_id = %m.message_id, recipient = %r.address, remote = %remote,
                        reply = %text, event = ev, session = %client.session, "delivery");
                    match outcomes.iter_mut().find(|(e, t, _)| *e == ev && *t == text) {
                        Some((_, _, list)) => list.push(r.address.clone()),
                        None => outcomes.push((ev, text.clone(), vec![r.address.clone()])),
                    }
                    results.push((r.idx, status, text, next));
                }
                let connector = hop_connector(snap, hop);
                for (ev, text, recipients) in outcomes {
                    match ev {
                        "SEND" => self.observe.metrics.delivered(&connector, age(&m)),
                        "FAIL" => self.observe.metrics.failed(&connector),
                        _ => self.observe.metrics.deferred(&connector),
                    }
                    self.observe.tracking.record(Event {
                        connector: Some(connector.clone()),
                        next_hop: Some(hop_display(hop)),
                        server_ip: Some(client.remote.ip().to_string()),
                        server_hostname: Some(
                            remote.split(" [").next().unwrap_or(remote).to_string(),
                        ),
                        tls: client.tls.clone(),
                        detail: Some(text),
                        session: Some(client.session.clone()),
                        ..event(ev, "SMTP", &m, recipients)
                    });
                }
                if self.queue.complete(id, hop, remote, results).await? {
                    self.finish(snap, id).await?;
                }
                Ok(true)
            }
            Err(e) => {
                let retry_at = retry_at(snap);
                for r in &rcpts {
                    db::set_recipient(
                        pool,
                        id,
                        r.idx,
                        RecipientStatus::Retry,
                        Some(&e.message),
                        Some(remote),
                        retry_at,
                    )
                    .await?;
                }
                db::record_attempt(pool, id, hop, Some(remote), "DEFER", &e.message).await?;
                let connector = hop_connector(snap, hop);
                self.observe.metrics.deferred(&connector);
                self.observe.tracking.record(Event {
                    connector: Some(connector),
                    next_hop: Some(hop_display(hop)),
                    server_ip: Some(client.remote.ip().to_string()),
                    detail: Some(e.message.clone()),
                    session: Some(client.session.clone()),
                    ..event(
                        "DEFER",
                        "SMTP",
                        &m,
                        rcpts.iter().map(|r| r.address.clone()).collect(),
                    )
                });
                Ok(false)
            }
        }
    }

    /// Records that a queue's next hop answered (Active again, failures reset).
    async fn connected(&self, hop: &str) -> anyhow::Result<()> {
        let fresh = {
            let s = self.state.lock().expect("not poisoned");
            s.connected
                .get(hop)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        };
        if !fresh {
            db::queue_connected(self.queue.pool(), hop).await?;
            self.state
                .lock()
                .expect("not poisoned")
                .connected
                .insert(hop.to_string(), std::time::Instant::now());
        }
        Ok(())
    }

    /// Rule 20: glitch retries, then the transient schedule, then the
    /// outbound connection failure interval.
    async fn connection_failed(
        &self,
        snap: &Snapshot,
        hop: &str,
        batch: &[i64],
        error: &str,
    ) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let ts = &snap.transport.spec;
        let failures = db::queue_failures(pool, hop).await? + 1;
        let interval = schedule::connection_retry_interval(ts, failures);
        let next = schedule::connection_retry_at(ts, failures, now());
        self.state
            .lock()
            .expect("not poisoned")
            .connected
            .remove(hop);
        db::queue_failed(pool, hop, error, next).await?;
        let connector = hop_connector(snap, hop);
        for m in batch {
            db::record_attempt(pool, *m, hop, None, "DEFER", error).await?;
            db::count_attempt(pool, *m, hop).await?;
            self.observe.metrics.deferred(&connector);
            if let Some(stored) = db::message(pool, *m).await? {
                let pending = db::pending_for_hop(pool, *m, hop)
                    .await?
                    .into_iter()
                    .map(|r| r.address)
                    .collect();
                self.observe.tracking.record(Event {
                    connector: Some(connector.clone()),
                    next_hop: Some(hop_display(hop)),
                    detail: Some(error.to_string()),
                    ..event("DEFER", "SMTP", &stored, pending)
                });
            }
        }
        tracing::info!(next_hop = %hop, failures, retry_in = %interval, error = %error, "queue in Retry");
        Ok(())
    }

    /// The hosts to try, in order, with their addresses.
    async fn next_hop_hosts(
        &self,
        snap: &Snapshot,
        c: &SendConnector,
        display: &str,
    ) -> Result<Vec<(String, Vec<IpAddr>)>, DnsError> {
        let ts = &snap.transport.spec;
        let internal: Vec<SocketAddr> = ts.internal_dns_servers.iter().map(|s| s.0).collect();
        let external: Vec<SocketAddr> = ts.external_dns_servers.iter().map(|s| s.0).collect();
        let mut out = vec![];
        if c.dns_routing_enabled {
            let servers = if c.use_external_dns_servers_enabled && !external.is_empty() {
                &external
            } else {
                &internal
            };
            let mx = self.dns.mail_exchangers(servers, display).await?;
            let mut last = None;
            for host in mx {
                match self.dns.addresses(servers, &host).await {
                    Ok(a) => out.push((host, a)),
                    Err(e) => last = Some(e),
                }
            }
            if out.is_empty() {
                return Err(match last {
                    Some(DnsError::Permanent(e)) => DnsError::Permanent(e),
                    Some(DnsError::Transient(e)) => DnsError::Transient(e),
                    None => {
                        DnsError::Transient(format!("451 4.4.0 no mail exchanger for {display}"))
                    }
                });
            }
        } else {
            // Smart hosts are load-balanced: start with a random one, fail over in turn.
            let mut hosts = c.smart_hosts.clone();
            if !hosts.is_empty() {
                let start = rand::random::<usize>() % hosts.len();
                hosts.rotate_left(start);
            }
            let mut last = None;
            for h in hosts {
                match h {
                    Host::Ip(ip) => out.push((ip.to_string(), vec![ip])),
                    Host::Name(n) => match self.dns.addresses(&internal, n.as_str()).await {
                        Ok(mut a) => {
                            a.shuffle(&mut rand::thread_rng());
                            out.push((n.to_string(), a))
                        }
                        Err(e) => last = Some(e),
                    },
                }
            }
            if out.is_empty() {
                return Err(match last {
                    // A smart host's name that does not resolve is the
                    // admin's to fix; the queue retries, so the code is 4xx.
                    Some(e) => e.into_transient(),
                    None => DnsError::Transient("451 4.4.0 no smart host".into()),
                });
            }
        }
        Ok(out)
    }

    fn client_config(
        &self,
        snap: &Snapshot,
        c: &Stored<SendConnector>,
    ) -> anyhow::Result<ClientConfig> {
        let spec = &c.spec;
        let roots = || Arc::new(trust_roots(snap));
        let tls = if spec.ignore_starttls {
            TlsPolicy::Ignore
        } else if spec.smart_host_auth_mechanism == SmartHostAuthMechanism::BasicAuthRequireTls {
            TlsPolicy::Required(Verify::ChainAndName(roots()))
        } else if spec.require_tls {
            TlsPolicy::Required(match spec.tls_auth_level {
                None | Some(TlsAuthLevel::EncryptionOnly) => Verify::Nothing,
                Some(TlsAuthLevel::CertificateValidation) => Verify::Chain(roots()),
                Some(TlsAuthLevel::DomainValidation) => Verify::ChainAndName(roots()),
            })
        } else {
            TlsPolicy::Opportunistic
        };
        let auth = if spec.smart_host_auth_mechanism.needs_credential() {
            let name = spec
                .authentication_credential
                .as_deref()
                .unwrap_or_default();
            let cred = snap
                .credentials
                .iter()
                .find(|k| {
                    k.spec.kind == CredentialKind::SmartHost
                        && k.spec.name.eq_ignore_ascii_case(name)
                })
                .ok_or_else(|| anyhow::anyhow!("credential {name} is missing"))?;
            let password = self.config.secrets.open(
                &cred.id.to_string(),
                cred.secret.as_deref().unwrap_or_default(),
            )?;
            Some((
                cred.spec.user_name.clone(),
                String::from_utf8_lossy(&password).into_owned(),
            ))
        } else {
            None
        };
        Ok(ClientConfig {
            helo_name: snap.effective_fqdn(&spec.fqdn).to_string(),
            force_helo: spec.force_helo,
            lmtp: false,
            tls,
            auth,
            auth_requires_tls: spec.smart_host_auth_mechanism
                == SmartHostAuthMechanism::BasicAuthRequireTls,
            timeout: spec.connection_inactivity_timeout.duration(),
            source_ip: spec.source_ip_address.or(self.source_ip),
            observe: Some(ClientObserve {
                observer: self.observe.clone(),
                connector: spec.name.clone(),
                verbose: spec.protocol_logging_level == ProtocolLoggingLevel::Verbose,
            }),
        })
    }

    async fn deliver_mailbox(
        &self,
        snap: &Snapshot,
        hop: &str,
        domain: &str,
        batch: &[i64],
    ) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let target = snap
            .accepted_domains
            .iter()
            .find(|d| d.spec.domain_name.domain().as_str() == domain)
            .and_then(|d| d.spec.mailbox_delivery.clone());
        let Some(target) = target else {
            db::unroute(pool, None, Some(hop)).await?;
            return Ok(());
        };
        use crate::model::MailboxDelivery as M;
        match target {
            M::Maildir => {
                for id in batch {
                    let Some(m) = db::message(pool, *id).await? else {
                        continue;
                    };
                    let body = db::body(pool, *id).await?.unwrap_or_default();
                    for r in db::pending_for_hop(pool, *id, hop).await? {
                        let (dir, sender, rcpt) =
                            (self.data_dir.clone(), m.sender.clone(), r.address.clone());
                        let b = body.clone();
                        let written = tokio::task::spawn_blocking(move || {
                            super::mailbox::deliver(&dir, &sender, &rcpt, &b)
                        })
                        .await?;
                        match written {
                            Ok(path) => {
                                db::set_recipient(
                                    pool,
                                    *id,
                                    r.idx,
                                    RecipientStatus::Delivered,
                                    Some("250 2.0.0 delivered to Maildir"),
                                    Some("Maildir"),
                                    0,
                                )
                                .await?;
                                tracing::info!(internal_id = id, recipient = %r.address, path = %path.display(), event = "DELIVER", "delivery");
                                self.observe.metrics.delivered("mailbox", age(&m));
                                self.observe.tracking.record(Event {
                                    connector: Some("mailbox".into()),
                                    next_hop: Some(domain.to_string()),
                                    detail: Some("250 2.0.0 delivered to Maildir".into()),
                                    ..event("DELIVER", "STOREDRIVER", &m, vec![r.address.clone()])
                                });
                            }
                            Err(e) => {
                                self.observe.metrics.deferred("mailbox");
                                self.observe.tracking.record(Event {
                                    connector: Some("mailbox".into()),
                                    next_hop: Some(domain.to_string()),
                                    detail: Some(format!("451 4.3.0 Maildir write failed: {e}")),
                                    ..event("DEFER", "STOREDRIVER", &m, vec![r.address.clone()])
                                });
                                let retry = retry_at(snap);
                                db::set_recipient(
                                    pool,
                                    *id,
                                    r.idx,
                                    RecipientStatus::Retry,
                                    Some(&format!("451 4.3.0 Maildir write failed: {e}")),
                                    None,
                                    retry,
                                )
                                .await?;
                            }
                        }
                    }
                    self.finish(snap, *id).await?;
                }
                Ok(())
            }
            M::Lmtp { host } | M::Smtp { host } => {
                let lmtp = hop_is_lmtp(snap, domain);
                let (h, port) = crate::model::accepted_domain::split_host_port(&host)
                    .ok_or_else(|| anyhow::anyhow!("bad mailbox host {host}"))?;
                let ips = match &h {
                    Host::Ip(ip) => vec![*ip],
                    Host::Name(n) => {
                        let internal: Vec<SocketAddr> = snap
                            .transport
                            .spec
                            .internal_dns_servers
                            .iter()
                            .map(|s| s.0)
                            .collect();
                        match self.dns.addresses(&internal, n.as_str()).await {
                            Ok(a) => a,
                            Err(e) => {
                                let DnsError::Transient(e) = e.into_transient() else {
                                    unreachable!("into_transient gives a transient error")
                                };
                                return self.connection_failed(snap, hop, batch, &e).await;
                            }
                        }
                    }
                };
                let cfg = ClientConfig {
                    helo_name: snap.ctx.fqdn.to_string(),
                    force_helo: false,
                    lmtp,
                    tls: if lmtp {
                        TlsPolicy::Ignore
                    } else {
                        TlsPolicy::Opportunistic
                    },
                    auth: None,
                    auth_requires_tls: false,
                    timeout: Duration::from_secs(60),
                    source_ip: self.source_ip,
                    observe: Some(ClientObserve {
                        observer: self.observe.clone(),
                        connector: format!("Mailbox delivery {domain}"),
                        verbose: false,
                    }),
                };
                let mut last = String::new();
                for ip in ips {
                    match SmtpClient::open(SocketAddr::new(ip, port), &h.to_string(), &cfg).await {
                        Ok(mut client) => {
                            self.connected(hop).await?;
                            let remote = format!("{h} [{ip}]");
                            for id in batch {
                                if !self.send_one(snap, hop, &mut client, &remote, *id).await? {
                                    break;
                                }
                            }
                            client.quit().await;
                            return Ok(());
                        }
                        Err(e) => last = e.to_string(),
                    }
                }
                self.connection_failed(snap, hop, batch, &last).await
            }
        }
    }

    /// After an attempt: NDR for newly failed recipients (never to <>),
    /// and the message is deleted once nothing is pending.
    async fn finish(&self, snap: &Snapshot, id: i64) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let Some(m) = db::message(pool, id).await? else {
            return Ok(());
        };
        let rcpts = db::recipients(pool, id).await?;
        let failed: Vec<_> = rcpts
            .iter()
            .filter(|r| r.status() == RecipientStatus::Failed)
            .collect();
        if !failed.is_empty() {
            if !m.sender.is_empty() {
                let list: Vec<dsn::Failed<'_>> = failed
                    .iter()
                    .map(|r| dsn::Failed {
                        recipient: &r.address,
                        diagnostic: r
                            .last_error
                            .as_deref()
                            .unwrap_or("550 5.0.0 Delivery failed"),
                        remote_host: r
                            .remote_host
                            .as_deref()
                            .map(|h| h.split(" [").next().unwrap_or(h)),
                    })
                    .collect();
                let body = db::body(pool, id).await?.unwrap_or_default();
                let recipients = failed.iter().map(|r| r.address.clone()).collect();
                self.send_dsn(snap, dsn::Kind::Failure, &m, &list, &body, recipients)
                    .await?;
                tracing::info!(internal_id = id, recipients = failed.len(), to = %m.sender, "DSN failure");
            } else {
                tracing::info!(internal_id = id, "no NDR for the null sender");
            }
            for r in &failed {
                sqlx::query(
                    "UPDATE recipients SET status = 'Bounced' WHERE message = ? AND idx = ?",
                )
                .bind(id)
                .bind(r.idx)
                .execute(pool)
                .await?;
            }
        }
        if db::finished(pool, id).await? {
            db::delete_message(pool, id).await?;
        }
        Ok(())
    }

    async fn send_dsn(
        &self,
        snap: &Snapshot,
        kind: dsn::Kind,
        m: &db::StoredMessage,
        failed: &[dsn::Failed<'_>],
        original: &[u8],
        about: Vec<String>,
    ) -> anyhow::Result<()> {
        let postmaster = snap.postmaster();
        let report = dsn::build(
            kind,
            &postmaster,
            snap.ctx.fqdn.as_str(),
            &m.sender,
            &m.received_at,
            &m.message_id,
            failed,
            original,
            snap.transport.spec.external_dsn_max_message_attach_size,
        );
        let message_id = crate::smtp::server::session::data_header_value(&report, "message-id")
            .unwrap_or_default()
            .trim()
            .to_string();
        let subject = crate::smtp::server::session::data_header_value(&report, "subject")
            .map(|s| s.trim().to_string());
        let size = report.len() as i64;
        let internal = self
            .queue
            .enqueue(
                Envelope {
                    message_id: message_id.trim().to_string(),
                    sender: String::new(),
                    recipients: vec![Recipient {
                        address: m.sender.clone(),
                        orcpt: None,
                        notify: 0,
                    }],
                    receive_connector: "Ferry DSN".into(),
                    client_ip: "127.0.0.1".into(),
                    client_helo: None,
                    auth_user: None,
                    env_id: None,
                    ret: None,
                    body_type: None,
                    smtputf8: false,
                    subject: subject.clone(),
                },
                report,
            )
            .await?;
        let kind_name = match kind {
            dsn::Kind::Failure => "failure",
            dsn::Kind::Delay => "delay",
        };
        // On the original: which notice went to whom.
        self.observe.tracking.record(Event {
            detail: Some(format!(
                "{kind_name} notice to {} about {}",
                if m.sender.is_empty() { "<>" } else { &m.sender },
                about.join(", ")
            )),
            related: Some(message_id.clone()),
            ..event("DSN", "DSN", m, vec![m.sender.clone()])
        });
        // The notice itself enters the queue like any message.
        self.observe.tracking.record(Event {
            event: "RECEIVE",
            source: "DSN",
            internal_id: internal,
            message_id,
            sender: String::new(),
            recipients: vec![m.sender.clone()],
            size: Some(size),
            subject,
            related: Some(m.message_id.clone()),
            detail: Some(format!("{kind_name} notice")),
            ..Default::default()
        });
        Ok(())
    }
}

fn hop_is_lmtp(snap: &Snapshot, domain: &str) -> bool {
    snap.accepted_domains
        .iter()
        .find(|d| d.spec.domain_name.domain().as_str() == domain)
        .is_some_and(|d| {
            matches!(
                d.spec.mailbox_delivery,
                Some(crate::model::MailboxDelivery::Lmtp { .. })
            )
        })
}

/// The system's trusted roots plus Ferry's trust anchors.
pub fn trust_roots(snap: &Snapshot) -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for c in snap
        .certificates
        .iter()
        .filter(|c| c.spec.kind == CertificateKind::TrustAnchor)
    {
        if let Ok(chain) = crate::tls::certs::parse_chain(&c.spec.chain_pem) {
            for cert in chain {
                let _ = roots.add(cert);
            }
        }
    }
    roots
}
