//! The bottom layer of the engine: the one place that records what
//! happened to recipients — their status, the attempt row, the tracking
//! events, the metrics — and then finishes the message: an NDR for the
//! recipients that failed (never to <>), and the message deleted once
//! nothing of it is pending. Every path of the engine ends here.

use super::*;

/// The far end of an attempt, for tracking.
pub(super) struct Remote {
    /// `host [ip]`, as the attempt rows and `remoteHost` show it.
    pub display: String,
    pub ip: IpAddr,
    pub tls: Option<String>,
    pub session: String,
}

impl Remote {
    pub(super) fn of(client: &SmtpClient, host: &str) -> Remote {
        Remote {
            display: format!("{host} [{}]", client.remote.ip()),
            ip: client.remote.ip(),
            tls: client.tls.clone(),
            session: client.session.clone(),
        }
    }

    fn host(&self) -> &str {
        self.display.split(" [").next().unwrap_or(&self.display)
    }
}

/// What happened to one recipient.
pub(super) struct RecipientResult {
    pub idx: i64,
    pub address: Address,
    pub status: RecipientStatus,
    /// The reply or the reason, as the recipient's last error keeps it.
    pub text: String,
    pub next_attempt_ms: i64,
}

/// What happened to some recipients of one message, and where.
pub(super) struct Outcome<'a> {
    pub message: &'a db::StoredMessage,
    pub source: Source,
    /// The queue it was tried from (None before routing and for actions
    /// that are not attempts).
    pub hop: Option<&'a HopKey>,
    /// The send connector's name (or `mailbox`) for tracking and metrics.
    pub connector: Option<String>,
    pub remote: Option<&'a Remote>,
    /// What the recipients' `remoteHost` says when there is no remote
    /// server (`Maildir`).
    pub remote_host: Option<String>,
    pub results: Vec<RecipientResult>,
    /// An attempt row: its outcome word (`DEFER`, `FAIL`), with the reply
    /// or reason as its detail.
    pub attempt: Option<AttemptOutcome>,
    /// A completed SMTP/LMTP transaction: recorded in the writer's fast
    /// path (`Queue::complete`), which also writes its attempt row.
    pub transaction: bool,
    /// One event of this kind for all recipients with this detail, instead
    /// of an event per outcome and reply (expiry, removal).
    pub summary: Option<(EventKind, String)>,
    /// Whether the delivery metrics count it (attempts do).
    pub metered: bool,
    /// Fsynced before it returns (an administrator's action); delivery
    /// results are committed like the writer's other results.
    pub durable: bool,
    /// Delivered recipients whose NOTIFY asked for SUCCESS, with the
    /// notice they get (RFC 3461).
    pub success: Vec<(i64, dsn::Kind)>,
}

impl<'a> Outcome<'a> {
    pub(super) fn new(message: &'a db::StoredMessage, source: Source) -> Outcome<'a> {
        Outcome {
            message,
            source,
            hop: None,
            connector: None,
            remote: None,
            remote_host: None,
            results: vec![],
            attempt: None,
            transaction: false,
            summary: None,
            metered: false,
            durable: false,
            success: vec![],
        }
    }
}

/// A tracking event about a stored message.
pub(super) fn event(
    kind: EventKind,
    source: Source,
    m: &db::StoredMessage,
    recipients: Vec<String>,
) -> Event {
    Event {
        event: kind,
        source,
        internal_id: m.id,
        message_id: m.message_id.clone(),
        sender: m.sender.to_string(),
        recipients,
        size: Some(m.size),
        subject: m.subject.clone(),
        ..Default::default()
    }
}

/// The tracking event an attempt with this result records.
fn attempt_event(status: RecipientStatus, source: Source) -> EventKind {
    match status {
        RecipientStatus::Delivered if source == Source::StoreDriver => EventKind::Deliver,
        RecipientStatus::Delivered => EventKind::Send,
        RecipientStatus::Failed | RecipientStatus::Bounced => EventKind::Fail,
        _ => EventKind::Defer,
    }
}

/// How long ago a message was accepted.
fn age(m: &db::StoredMessage) -> Duration {
    Duration::from_millis((now() - m.received_ms).max(0) as u64)
}

impl DeliveryEngine {
    /// Records an outcome everywhere it belongs, then finishes the message
    /// if a recipient reached a final state.
    pub(super) async fn record(&self, snap: &Snapshot, o: Outcome<'_>) -> anyhow::Result<()> {
        if o.results.is_empty() {
            return Ok(());
        }
        self.observe_outcome(&o);
        let id = o.message.id;
        // The success notices need the message, which a completed
        // transaction may delete: read first, sent after the commit.
        let notices = if o.success.is_empty() {
            None
        } else {
            let pool = self.queue.pool();
            let rcpts = db::recipients(pool, id).await?;
            // Each with the reply that settled it.
            let success: Vec<(i64, dsn::Kind, String)> = o
                .success
                .iter()
                .filter_map(|(idx, kind)| {
                    let r = o.results.iter().find(|r| r.idx == *idx)?;
                    Some((*idx, *kind, r.text.clone()))
                })
                .collect();
            Some((
                rcpts,
                db::body(pool, id).await?.unwrap_or_default(),
                o.message.clone(),
                success,
                o.remote.map(|r| r.host().to_string()),
            ))
        };
        let finish = if o.transaction {
            let hop = o
                .hop
                .ok_or_else(|| anyhow::anyhow!("a transaction without a queue"))?;
            let remote = o.remote.map(|r| r.display.as_str()).unwrap_or_default();
            let results = o
                .results
                .into_iter()
                .map(|r| (r.idx, r.status, r.text, r.next_attempt_ms))
                .collect();
            // Deletes the message itself when every recipient is delivered.
            self.queue.complete(id, hop, remote, results).await?
        } else {
            let mut changes: Vec<Change> = o
                .results
                .iter()
                .map(|r| Change::Recipient {
                    message: id,
                    idx: r.idx,
                    status: r.status,
                    error: Some(r.text.clone()),
                    remote: o
                        .remote
                        .map(|r| r.display.clone())
                        .or_else(|| o.remote_host.clone()),
                    next_attempt_ms: r.next_attempt_ms,
                })
                .collect();
            if let (Some(outcome), Some(hop)) = (o.attempt, o.hop) {
                changes.push(Change::Attempt {
                    message: id,
                    hop: hop.clone(),
                    remote: o.remote.map(|r| r.display.clone()),
                    outcome,
                    detail: o.results[0].text.clone(),
                });
            }
            if o.durable {
                self.queue.apply(changes).await?;
            } else {
                self.queue.record(changes).await?;
            }
            o.results.iter().any(|r| !r.status.is_pending())
        };
        if let Some((rcpts, body, m, success, remote)) = notices {
            self.send_success(snap, &m, &rcpts, &body, &success, remote.as_deref())
                .await?;
        }
        if finish {
            self.finish(snap, id).await?;
        }
        Ok(())
    }

    /// The success notices of NOTIFY=SUCCESS: "delivered" into a mailbox,
    /// "relayed" to a next hop without DSN. Never to <>.
    async fn send_success(
        &self,
        snap: &Snapshot,
        m: &db::StoredMessage,
        rcpts: &[db::StoredRecipient],
        body: &[u8],
        success: &[(i64, dsn::Kind, String)],
        remote: Option<&str>,
    ) -> anyhow::Result<()> {
        if m.sender.is_null() {
            return Ok(());
        }
        for kind in [dsn::Kind::Delivered, dsn::Kind::Relayed] {
            let these: Vec<(&db::StoredRecipient, &str)> = rcpts
                .iter()
                .filter_map(|r| {
                    let (_, _, text) = success
                        .iter()
                        .find(|(idx, k, _)| *idx == r.idx && *k == kind)?;
                    Some((r, text.as_str()))
                })
                .collect();
            if these.is_empty() {
                continue;
            }
            let list: Vec<dsn::Failed<'_>> = these
                .iter()
                .map(|(r, text)| dsn::Failed {
                    recipient: r.address.as_str(),
                    diagnostic: text,
                    remote_host: remote,
                    orcpt: r.orcpt.as_deref(),
                })
                .collect();
            let about = these.iter().map(|(r, _)| r.address.to_string()).collect();
            self.send_dsn(snap, kind, m, &list, body, about).await?;
        }
        Ok(())
    }

    /// Tracking events (one per event kind and reply, or one summary) and
    /// metrics for an outcome.
    fn observe_outcome(&self, o: &Outcome<'_>) {
        let mut groups: Vec<(EventKind, String, Vec<String>)> = vec![];
        for r in &o.results {
            let (kind, detail) = match &o.summary {
                Some((kind, detail)) => (*kind, detail.clone()),
                None => (attempt_event(r.status, o.source), r.text.clone()),
            };
            if o.source == Source::Smtp && o.transaction {
                tracing::info!(internal_id = o.message.id, message_id = %o.message.message_id,
                    recipient = %r.address, remote = o.remote.map(|r| r.display.as_str()).unwrap_or_default(),
                    reply = %r.text, event = %kind, "delivery");
            }
            match groups
                .iter_mut()
                .find(|(k, d, _)| *k == kind && *d == detail)
            {
                Some((_, _, list)) => list.push(r.address.to_string()),
                None => groups.push((kind, detail, vec![r.address.to_string()])),
            }
        }
        let connector = o.connector.clone().unwrap_or_default();
        for (kind, detail, recipients) in groups {
            if o.metered {
                match kind {
                    EventKind::Send | EventKind::Deliver => {
                        self.observe.metrics.delivered(&connector, age(o.message))
                    }
                    EventKind::Fail => self.observe.metrics.failed(&connector),
                    _ => self.observe.metrics.deferred(&connector),
                }
            }
            self.observe.tracking.record(Event {
                connector: o.connector.clone(),
                next_hop: o.hop.map(|h| h.next_hop().to_string()),
                server_ip: o.remote.map(|r| r.ip.to_string()),
                server_hostname: o.remote.map(|r| r.host().to_string()),
                tls: o.remote.and_then(|r| r.tls.clone()),
                session: o.remote.map(|r| r.session.clone()),
                detail: Some(detail),
                ..event(kind, o.source, o.message, recipients)
            });
        }
    }

    /// After an attempt: NDR for newly failed recipients (never to <>),
    /// and the message is deleted once nothing is pending.
    pub(super) async fn finish(&self, snap: &Snapshot, id: i64) -> anyhow::Result<()> {
        // Attempts on two queues may end together: one finishes at a time,
        // and the second reads what the first settled (no NDR twice).
        let lock = self.finish_lock(id);
        let guard = lock.lock().await;
        let r = self.finish_locked(snap, id).await;
        drop(guard);
        self.finish_unlock(id, lock);
        r
    }

    async fn finish_locked(&self, snap: &Snapshot, id: i64) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        let Some(m) = db::message(pool, id).await? else {
            return Ok(());
        };
        let rcpts = db::recipients(pool, id).await?;
        let failed: Vec<_> = rcpts
            .iter()
            .filter(|r| r.status() == RecipientStatus::Failed)
            .collect();
        let mut changes = vec![];
        // NOTIFY without FAILURE (or NEVER) asks for no NDR (RFC 3461).
        let to_notify: Vec<_> = failed
            .iter()
            .filter(|r| r.wants(smtp_proto::RCPT_NOTIFY_FAILURE))
            .collect();
        if !failed.is_empty() {
            if to_notify.is_empty() {
                tracing::info!(internal_id = id, "no NDR: NOTIFY did not ask for one");
            } else if !m.sender.is_null() {
                let list: Vec<dsn::Failed<'_>> = to_notify
                    .iter()
                    .map(|r| dsn::Failed {
                        recipient: r.address.as_str(),
                        diagnostic: r
                            .last_error
                            .as_deref()
                            .unwrap_or("550 5.0.0 Delivery failed"),
                        remote_host: r
                            .remote_host
                            .as_deref()
                            .map(|h| h.split(" [").next().unwrap_or(h)),
                        orcpt: r.orcpt.as_deref(),
                    })
                    .collect();
                let body = db::body(pool, id).await?.unwrap_or_default();
                let recipients = to_notify.iter().map(|r| r.address.to_string()).collect();
                self.send_dsn(snap, dsn::Kind::Failure, &m, &list, &body, recipients)
                    .await?;
                tracing::info!(internal_id = id, recipients = failed.len(), to = %m.sender, "DSN failure");
            } else {
                tracing::info!(internal_id = id, "no NDR for the null sender");
            }
            changes.extend(failed.iter().map(|r| Change::Bounced {
                message: id,
                idx: r.idx,
            }));
        }
        changes.push(Change::DeleteIfFinished { message: id });
        self.queue.record(changes).await?;
        Ok(())
    }

    /// Queues a delivery status notification about `m` to its sender and
    /// tracks it on both messages.
    pub(super) async fn send_dsn(
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
            m.sender.as_str(),
            &m.received_at(),
            &m.message_id,
            failed,
            original,
            snap.transport.spec.external_dsn_max_message_attach_size,
            dsn::Request {
                env_id: m.env_id.as_deref(),
                // RFC 8689 §5: a REQUIRETLS message's body does not go
                // back in a notice that is not itself REQUIRETLS.
                headers_only: m.ret.as_deref() == Some("HDRS") || m.require_tls,
            },
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
                    sender: Address::null(),
                    recipients: vec![Recipient {
                        address: m.sender.clone(),
                        orcpt: None,
                        notify: 0,
                        route: None,
                    }],
                    receive_connector: "Ferry DSN".into(),
                    client_ip: "127.0.0.1".into(),
                    client_helo: None,
                    auth_user: None,
                    env_id: None,
                    ret: None,
                    body_type: None,
                    smtputf8: false,
                    require_tls: false,
                    subject: subject.clone(),
                    arrived_ms: None,
                },
                report,
            )
            .await?;
        let kind_name = match kind {
            dsn::Kind::Failure => "failure",
            dsn::Kind::Delay => "delay",
            dsn::Kind::Delivered => "delivery",
            dsn::Kind::Relayed => "relay",
        };
        // On the original: which notice went to whom.
        self.observe.tracking.record(Event {
            detail: Some(format!(
                "{kind_name} notice to {} about {}",
                if m.sender.is_null() {
                    "<>"
                } else {
                    m.sender.as_str()
                },
                about.join(", ")
            )),
            related: Some(message_id.clone()),
            ..event(EventKind::Dsn, Source::Dsn, m, vec![m.sender.to_string()])
        });
        // The notice itself enters the queue like any message.
        self.observe.tracking.record(Event {
            event: EventKind::Receive,
            source: Source::Dsn,
            internal_id: internal,
            message_id,
            sender: String::new(),
            recipients: vec![m.sender.to_string()],
            size: Some(size),
            subject,
            related: Some(m.message_id.clone()),
            detail: Some(format!("{kind_name} notice")),
            ..Default::default()
        });
        Ok(())
    }
}
