//! One delivery attempt over a send connector: resolve the next hop,
//! connect, send a batch, record each recipient's result; and what a
//! connection failure does to the queue (the retry schedule is in
//! `queue/schedule.rs`).

use super::*;

impl DeliveryEngine {
    pub(super) async fn deliver(
        &self,
        snap: &Snapshot,
        hop: &str,
        batch: &[i64],
    ) -> anyhow::Result<()> {
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
    pub(super) async fn send_one(
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
    pub(super) async fn connected(&self, hop: &str) -> anyhow::Result<()> {
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
    pub(super) async fn connection_failed(
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
}
