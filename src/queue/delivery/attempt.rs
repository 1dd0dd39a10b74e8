//! One delivery attempt: the hosts a queue leads to, one connect-and-send
//! loop shared by send connectors (smart hosts, MX) and mail stores (SMTP,
//! LMTP), each recipient's result; and what a connection failure does to
//! the queue (the retry schedule is `queue/schedule.rs`).

use super::*;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;

impl DeliveryEngine {
    /// Delivers a batch of messages of one queue.
    pub(super) async fn deliver(
        &self,
        snap: &Snapshot,
        hop: &HopKey,
        batch: &[i64],
    ) -> anyhow::Result<()> {
        let (id, next_hop) = match hop {
            HopKey::Mailbox { domain } => {
                return self.deliver_mailbox(snap, hop, domain, batch).await;
            }
            HopKey::Connector { id, next_hop } => (id, next_hop),
            // Never due: the scheduler does not dispatch it.
            HopKey::Unreachable => return Ok(()),
        };
        let connector = snap
            .send_connectors
            .iter()
            .find(|c| c.id == *id && c.spec.enabled);
        let Some(connector) = connector else {
            // The connector went away or was disabled: route these again.
            self.queue
                .record(vec![Change::UnrouteQueue { hop: hop.clone() }])
                .await?;
            return Ok(());
        };
        let targets =
            match next_hop::connector_targets(&self.dns, snap, &connector.spec, next_hop).await {
                Ok(t) => t,
                Err(DnsError::Permanent(e)) => {
                    return self
                        .fail_batch(snap, hop, &connector.spec.name, batch, &e)
                        .await;
                }
                Err(DnsError::Transient(e)) => {
                    return self.connection_failed(snap, hop, batch, &e).await;
                }
            };
        let mut cfg = policy::for_connector(
            snap,
            &connector.spec,
            &self.config.secrets,
            self.source_ip,
            &self.observe,
        )?;
        let mut targets = targets;
        let mut sts = None;
        let mut hold = TlsHold {
            domain: next_hop.to_string(),
            report: snap.transport.spec.tls_reports_enabled,
            ..TlsHold::default()
        };
        let spec = &connector.spec;
        // DANE (RFC 7672) first where the connector asks for it.
        let mut dane_applies = false;
        if spec.dns_routing_enabled
            && matches!(
                spec.tls_policy,
                DnsTlsPolicy::Dane | DnsTlsPolicy::MtaStsAndDane
            )
            && !spec.ignore_starttls
        {
            match self.dane_plan(snap, spec, next_hop, targets.clone()).await {
                DanePlan::NotApplicable => {}
                DanePlan::Refuse(error) => {
                    return self.connection_failed(snap, hop, batch, &error).await;
                }
                DanePlan::Apply { hosts, dropped } => {
                    if hosts.is_empty() {
                        let error = format!(
                            "451 4.7.5 DANE policy of {next_hop}: no MX host is usable ({})",
                            dropped.join("; ")
                        );
                        return self.connection_failed(snap, hop, batch, &error).await;
                    }
                    dane_applies = hosts.iter().any(|(_, t)| t.is_some());
                    // A host whose TLSA answer was bogus is left out
                    // whatever else applies (RFC 7672 §2.2).
                    targets = hosts.iter().map(|(t, _)| t.clone()).collect();
                    for (t, tlsa) in hosts {
                        if let Some(tlsa) = tlsa {
                            hold.dane.insert(t.name, tlsa);
                        }
                    }
                    if dane_applies {
                        hold.label = Some(format!("DANE policy of {next_hop}"));
                    }
                }
            }
        }
        // MTA-STS (RFC 8461): the recipient domain's policy, when it
        // publishes one, for DNS-routed connectors that honour it (and
        // where DANE does not apply, §2).
        if spec.dns_routing_enabled
            && (spec.tls_policy == DnsTlsPolicy::MtaSts
                || (spec.tls_policy == DnsTlsPolicy::MtaStsAndDane && !dane_applies))
            && !spec.ignore_starttls
        {
            let servers = next_hop::lookup_servers(snap, spec);
            let roots = crate::tls::roots::trust_roots(snap);
            if let mta_sts::Found::Policy(p) = self
                .mta_sts
                .policy(&self.dns, &servers, roots.clone(), next_hop)
                .await
            {
                let held = Sts {
                    domain: next_hop.to_string(),
                    testing: p.mode == mta_sts::Mode::Testing,
                    policy: p.clone(),
                    report: snap.transport.spec.tls_reports_enabled,
                };
                match p.mode {
                    mta_sts::Mode::Enforce | mta_sts::Mode::Testing => {
                        let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
                        let (allowed, refused): (Vec<Target>, Vec<Target>) =
                            targets.into_iter().partition(|t| p.allows(&t.name));
                        for t in refused.iter().filter(|_| held.report) {
                            self.count_tls(
                                &held.reported(),
                                Some("validation-failure"),
                                Some(&t.name),
                                None,
                                Some(format!("MX {} is not in the policy's mx", t.name)),
                            );
                        }
                        // Testing: the policy is reported on, not applied.
                        targets = if held.testing {
                            allowed.into_iter().chain(refused).collect()
                        } else {
                            allowed
                        };
                        if targets.is_empty() {
                            let error = format!(
                                "451 4.7.5 {}: no MX host of {next_hop} is allowed ({} not in mx: {})",
                                p.describe(next_hop),
                                names.join(", "),
                                p.mx.join(", ")
                            );
                            return self.connection_failed(snap, hop, batch, &error).await;
                        }
                        // Only over TLS validated for the MX host's name
                        // (testing: tried first, then as opportunistic).
                        cfg.tls = TlsPolicy::Required(Verify::ChainAndName(roots));
                        sts = Some(held);
                    }
                    mta_sts::Mode::None => {}
                }
            }
        }
        if let Some(s) = &sts
            && !s.testing
        {
            hold.label = Some(s.policy.describe(&s.domain));
        }
        hold.sts = sts;
        self.connect_and_send(snap, hop, &targets, connector.spec.port, &cfg, batch, &hold)
            .await
    }

    /// RFC 7672 §2.2: whether DANE applies to `domain`'s MX hosts, and how.
    async fn dane_plan(
        &self,
        snap: &Snapshot,
        spec: &crate::model::SendConnector,
        domain: &str,
        targets: Vec<Target>,
    ) -> DanePlan {
        use crate::routing::dns::Security;
        use hickory_resolver::proto::rr::{RData, RecordType};
        let servers = next_hop::lookup_servers(snap, spec);
        let anchors = self.anchors.clone();
        let mx = match self
            .dns
            .validated(&servers, anchors.clone(), domain, RecordType::MX)
            .await
        {
            Ok(v) => v,
            Err(e) => return DanePlan::Refuse(e_text(e)),
        };
        match mx.security {
            Security::Secure => {}
            Security::Insecure => return DanePlan::NotApplicable,
            Security::Bogus | Security::Indeterminate => {
                return DanePlan::Refuse(format!(
                    "451 4.7.5 DANE policy of {domain}: its MX records failed DNSSEC validation ({:?})",
                    mx.security
                ));
            }
        }
        let mut hosts = vec![];
        let mut dropped = vec![];
        for t in targets {
            let name = format!("_{}._tcp.{}", spec.port, t.name.trim_end_matches('.'));
            let tlsa = self
                .dns
                .validated(&servers, anchors.clone(), &name, RecordType::TLSA)
                .await;
            match tlsa {
                Ok(v) if v.security == Security::Secure => {
                    let usable: Vec<Tlsa> = v
                        .records
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::TLSA(x) => Some(Tlsa {
                                usage: u8::from(x.cert_usage),
                                selector: u8::from(x.selector),
                                matching: u8::from(x.matching),
                                data: x.cert_data.clone(),
                            }),
                            _ => None,
                        })
                        .filter(Tlsa::usable)
                        .collect();
                    // Secure and none usable (or a secure denial): this host
                    // is not DANE-authenticated; opportunistic TLS.
                    let tlsa = (!usable.is_empty()).then(|| Arc::new(usable));
                    hosts.push((t, tlsa));
                }
                Ok(v) if v.security == Security::Insecure => hosts.push((t, None)),
                // Bogus or undecided: never this host in cleartext.
                Ok(v) => dropped.push(format!("{name}: TLSA {:?}", v.security)),
                Err(e) => dropped.push(format!("{name}: {}", e_text(e))),
            }
        }
        DanePlan::Apply { hosts, dropped }
    }

    /// Counts one TLS session to a domain with a policy, for its TLS
    /// report (RFC 8460): `result` None for success, else the RFC's
    /// result-type.
    fn count_tls(
        &self,
        to: &Reported,
        result: Option<&str>,
        mx: Option<&str>,
        ip: Option<IpAddr>,
        info: Option<String>,
    ) {
        use crate::store::tlsrpt::{FailedAt, Session};
        self.observe.tracking.record_tls(Session {
            period_start: self.observe.tls_periods.current(),
            policy_domain: to.domain.clone(),
            applied: to.applied.clone(),
            result: result.map(str::to_string),
            at: if result.is_some() {
                FailedAt {
                    receiving_mx_hostname: mx.map(str::to_string),
                    receiving_ip: ip.map(|i| i.to_string()),
                    additional_information: info,
                }
            } else {
                FailedAt::default()
            },
        });
    }

    /// The one connect-and-send loop: the first address that answers gets
    /// the whole batch; when none does, the queue goes to Retry, its error
    /// naming the MTA-STS policy that was applied, if any. Sessions to a
    /// domain with a policy are counted for its TLS report; under a
    /// `testing` policy a session that fails validation is counted, then
    /// made again as opportunistic TLS.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn connect_and_send(
        &self,
        snap: &Snapshot,
        hop: &HopKey,
        targets: &[Target],
        port: u16,
        cfg: &ClientConfig,
        batch: &[i64],
        hold: &TlsHold,
    ) -> anyhow::Result<()> {
        // A connection kept open by the last attempt to this queue goes on
        // if it has room under the connector's messages per connection and
        // is still there: a plain one that has heard nothing from the
        // server since its last reply (kept at most IDLE_FOR), else one
        // that still answers RSET (as Postfix checks a cached connection).
        // The look costs no round trip; RSET cost one per message when a
        // connection carried one message at a time (issue 22).
        let max_messages = hop
            .connector(snap)
            .map(|c| u64::from(c.spec.smtp_max_messages_per_connection))
            .unwrap_or(20);
        if let Some(mut idle) = self.take_idle(hop) {
            if idle.sent + batch.len() as u64 <= max_messages
                && (idle.client.quiet() || idle.client.rset_positive().await)
            {
                tracing::debug!(next_hop = %hop.next_hop(), remote = %idle.remote.display, "connection reused");
                let kept = self
                    .send_batch(snap, hop, &mut idle.client, &idle.remote, batch)
                    .await?;
                idle.sent += batch.len() as u64;
                self.keep_or_quit(hop, idle, kept, max_messages);
                return Ok(());
            }
            quit_later(idle.client);
        }
        let sts = hold.sts.as_ref();
        let mut last_error = String::from("no host to connect to");
        for target in targets {
            // What this host's sessions are counted against in TLS reports:
            // its DANE records, else the domain's MTA-STS policy.
            let (reported, testing) = match hold.dane.get(&target.name) {
                Some(tlsa) => (
                    hold.report
                        .then(|| dane_reported(&hold.domain, &target.name, tlsa)),
                    false,
                ),
                None => (
                    sts.filter(|s| s.report).map(Sts::reported),
                    sts.is_some_and(|s| s.testing),
                ),
            };
            // DANE: this host only over TLS its TLSA records vouch for.
            let dane_cfg;
            let cfg = match hold.dane.get(&target.name) {
                Some(tlsa) => {
                    let mut c = cfg.clone();
                    c.tls = TlsPolicy::Required(Verify::Dane(tlsa.clone()));
                    dane_cfg = c;
                    &dane_cfg
                }
                None => cfg,
            };
            for (n, ip) in target.addresses.iter().enumerate() {
                // Only a connection to the first choice is kept for the next
                // batch: one made after a failover is closed, so mail goes
                // back to the preferred host as soon as it answers.
                let first_choice = n == 0 && std::ptr::eq(target, &targets[0]);
                let addr = SocketAddr::new(*ip, port);
                let mut opened = SmtpClient::open(addr, &target.name, cfg).await;
                if let Some(to) = &reported {
                    match &opened {
                        Ok(_) => self.count_tls(to, None, None, None, None),
                        Err(e) => {
                            if let Some(result) = tls_result(&e.message) {
                                self.count_tls(
                                    to,
                                    Some(result),
                                    Some(&target.name),
                                    Some(*ip),
                                    Some(e.message.clone()),
                                );
                                if testing {
                                    let mut plain = cfg.clone();
                                    plain.tls = TlsPolicy::Opportunistic;
                                    opened = SmtpClient::open(addr, &target.name, &plain).await;
                                }
                            }
                        }
                    }
                }
                match opened {
                    Ok(mut client) => {
                        self.connected(hop).await?;
                        let remote = Remote::of(&client, &target.name);
                        tracing::debug!(next_hop = %hop.next_hop(), remote = %remote.display, session = %client.session, "connected");
                        let kept = self
                            .send_batch(snap, hop, &mut client, &remote, batch)
                            .await?;
                        let idle = Idle {
                            client,
                            remote,
                            sent: batch.len() as u64,
                            since: std::time::Instant::now(),
                        };
                        self.keep_or_quit(hop, idle, kept && first_choice, max_messages);
                        return Ok(());
                    }
                    Err(e) => {
                        tracing::info!(next_hop = %hop.next_hop(), host = %target.name, %ip, error = %e, "connection attempt failed");
                        last_error = format!("{} [{ip}]: {e}", target.name);
                    }
                }
            }
        }
        let error = if targets.len() > 1 {
            format!("{last_error}; attempted failover to alternate hosts, but that did not succeed")
        } else {
            last_error
        };
        let error = match &hold.label {
            Some(label) => format!("{label}: {error}"),
            None => error,
        };
        self.connection_failed(snap, hop, batch, &error).await
    }

    /// Sends a batch over an open connection, a window at a time: what the
    /// writer handed off in memory, the rest read in one query each
    /// (messages, recipients, small bodies). False when the connection was
    /// lost on the way.
    async fn send_batch(
        &self,
        snap: &Snapshot,
        hop: &HopKey,
        client: &mut SmtpClient,
        remote: &Remote,
        batch: &[i64],
    ) -> anyhow::Result<bool> {
        for window in batch.chunks(LOAD_WINDOW) {
            let loaded = self.load(hop, window).await?;
            // Outcomes are recorded while the next messages go out: the
            // connection does not sit idle through the writer's commits
            // (at 100 KB × 200 sessions a commit, with its fsync and
            // checkpoint, takes longer than sending a message). Every
            // outcome of the window is recorded before the next window
            // and before the batch ends, so a message stays carried (not
            // dispatched again) until it is; a crash in between sends it
            // again, never loses it.
            let mut recording = FuturesUnordered::new();
            for m in window {
                let send = self.send_one(snap, hop, client, remote, *m, &loaded);
                tokio::pin!(send);
                let sent = loop {
                    tokio::select! {
                        sent = &mut send => break sent,
                        Some(recorded) = recording.next(), if !recording.is_empty() => recorded?,
                    }
                };
                let (outcome, connected) = sent?;
                if let Some(o) = outcome {
                    recording.push(self.record(snap, o));
                }
                if !connected {
                    while let Some(recorded) = recording.next().await {
                        recorded?;
                    }
                    return Ok(false);
                }
            }
            while let Some(recorded) = recording.next().await {
                recorded?;
            }
        }
        Ok(true)
    }

    /// An idle connection to this queue's next hop, if one is kept.
    fn take_idle(&self, hop: &HopKey) -> Option<Idle> {
        let mut s = self.state.lock().expect("not poisoned");
        let idle = s.idle.get_mut(hop)?;
        let taken = idle.pop();
        if idle.is_empty() {
            s.idle.remove(hop);
        }
        taken
    }

    /// After a batch: the connection is kept open for the queue's next
    /// batch, or closed with QUIT when it is not to be kept (lost, or made
    /// after a failover), has carried the connector's messages per
    /// connection, or the engine is stopping.
    fn keep_or_quit(&self, hop: &HopKey, idle: Idle, keep: bool, max_messages: u64) {
        if !keep || idle.sent >= max_messages || self.life.token().is_shutdown() {
            quit_later(idle.client);
            return;
        }
        let idle = Idle {
            since: std::time::Instant::now(),
            ..idle
        };
        self.state
            .lock()
            .expect("not poisoned")
            .idle
            .entry(hop.clone())
            .or_default()
            .push(idle);
    }

    /// Closes (QUIT) kept connections idle for longer than `IDLE_FOR`, or
    /// all of them (a configuration change, shutdown).
    pub(super) fn close_idle(&self, all: bool) {
        let closing: Vec<Idle> = {
            let mut s = self.state.lock().expect("not poisoned");
            let mut closing = vec![];
            s.idle.retain(|_, conns| {
                let (old, young): (Vec<Idle>, Vec<Idle>) = std::mem::take(conns)
                    .into_iter()
                    .partition(|c| all || c.since.elapsed() >= IDLE_FOR);
                closing.extend(old);
                *conns = young;
                !conns.is_empty()
            });
            closing
        };
        for c in closing {
            quit_later(c.client);
        }
    }

    /// What a window of a batch needs to be sent: each message handed off
    /// in memory by the queue's writer, else read, and every pending
    /// recipient in this queue: those it was committed with while nothing
    /// has changed them (a first attempt), else read; a query each for
    /// what was not handed off.
    async fn load(&self, hop: &HopKey, ids: &[i64]) -> anyhow::Result<Loaded> {
        let pool = self.queue.pool();
        let handoff = self.queue.handoff();
        let mut loaded = Loaded::default();
        let mut missing = vec![];
        let mut unknown = vec![];
        let queue = hop.to_string();
        for id in ids {
            match handoff.get(*id) {
                Some(held) => {
                    loaded.messages.insert(*id, Stored::Held(held));
                }
                None => missing.push(*id),
            }
            match handoff.recipients(*id) {
                Some(committed) => {
                    let here: Vec<db::StoredRecipient> = committed
                        .iter()
                        .filter(|r| r.next_hop.as_deref() == Some(queue.as_str()))
                        .cloned()
                        .collect();
                    if !here.is_empty() {
                        loaded.recipients.insert(*id, here);
                    }
                }
                None => unknown.push(*id),
            }
        }
        if !missing.is_empty() {
            let mut bodies: HashMap<i64, (i64, Option<Vec<u8>>)> =
                db::bodies(pool, &missing, BODY_WITH_BATCH)
                    .await?
                    .into_iter()
                    .map(|(id, len, body)| (id, (len, body)))
                    .collect();
            for message in db::messages(pool, &missing).await? {
                let (len, body) = bodies.remove(&message.id).unwrap_or((0, Some(vec![])));
                loaded.messages.insert(
                    message.id,
                    Stored::Read {
                        message: Box::new(message),
                        len,
                        body,
                    },
                );
            }
        }
        if !unknown.is_empty() {
            for r in db::pending_for_batch(pool, &unknown, hop).await? {
                loaded.recipients.entry(r.message).or_default().push(r);
            }
        }
        Ok(loaded)
    }

    /// Sends one message over an open connection: the outcome to record,
    /// and false when the connection is lost.
    async fn send_one<'a>(
        &self,
        snap: &Snapshot,
        hop: &'a HopKey,
        client: &mut SmtpClient,
        remote: &'a Remote,
        id: i64,
        loaded: &'a Loaded,
    ) -> anyhow::Result<(Option<Outcome<'a>>, bool)> {
        let pool = self.queue.pool();
        if self.pending_action(id).is_some() {
            return Ok((None, true));
        }
        let Some(stored) = loaded.messages.get(&id) else {
            return Ok((None, true));
        };
        let m = stored.message();
        let Some(rcpts) = loaded.recipients.get(&id) else {
            return Ok((None, true));
        };
        // Handed to another server as this one drains: the message keeps
        // its original arrival time there (its expiry and delay notices
        // count from it).
        let transfer = matches!(hop, HopKey::Connector { id: connector, .. }
            if crate::routing::transfer_connector(snap).is_some_and(|c| c.id == *connector));
        let prefix = if transfer {
            arrival_header(m.received_ms).into_bytes()
        } else {
            vec![]
        };
        // A large body goes out from its BLOB a chunk at a time: delivery's
        // memory does not grow with the message.
        let stored_len = stored.len();
        let (bytes, streamed, read);
        let content = if stored_len > db::STREAM_ABOVE {
            let ascii = stored_is_ascii(self.queue.db_path(), id).await?;
            let path = self.queue.db_path().to_path_buf();
            streamed = crate::smtp::client::StreamedBody {
                len: prefix.len() as u64 + stored_len as u64,
                prefix,
                ascii,
                open: Box::new(move || db::body_chunks(&path, id)),
            };
            crate::smtp::client::Content::Stream(&streamed)
        } else {
            // Handed off or read with the batch: sent as it is, unless the
            // arrival header goes in front.
            let body: &[u8] = match stored {
                Stored::Held(held) => &held.body,
                Stored::Read { body: Some(b), .. } => b,
                Stored::Read { body: None, .. } => {
                    read = db::body(pool, id).await?.unwrap_or_default();
                    &read
                }
            };
            bytes = if prefix.is_empty() {
                std::borrow::Cow::Borrowed(body)
            } else {
                let mut whole = prefix;
                whole.extend_from_slice(body);
                std::borrow::Cow::Owned(whole)
            };
            crate::smtp::client::Content::Bytes(&bytes)
        };
        let addresses: Vec<Address> = rcpts.iter().map(|r| r.address.clone()).collect();
        // RFC 8689: a REQUIRETLS message leaves only over TLS validated for
        // the next hop's configured name, to a next hop that offers
        // REQUIRETLS (or into a mail store over LMTP); otherwise it is
        // returned to its sender, never sent with less.
        if m.require_tls && !client.is_lmtp() {
            let refusal = if !client.validated {
                Some(format!(
                    "550 5.7.10 REQUIRETLS: the connection to {} is not TLS validated for its name \
                     (send connector {}: requireTLS with DomainValidation, or BasicAuthRequireTLS)",
                    remote.display,
                    hop.connector_name(snap)
                ))
            } else if !client.extensions.requiretls {
                Some(format!(
                    "550 5.7.30 REQUIRETLS support required: {} does not offer REQUIRETLS",
                    remote.display
                ))
            } else {
                None
            };
            if let Some(text) = refusal {
                let results =
                    pending_results(pool, id, hop, RecipientStatus::Failed, &text, 0).await?;
                self.record(
                    snap,
                    Outcome {
                        hop: Some(hop),
                        connector: Some(hop.connector_name(snap)),
                        remote: Some(remote),
                        attempt: Some(AttemptOutcome::Fail),
                        metered: true,
                        results,
                        ..Outcome::new(m, Source::Smtp)
                    },
                )
                .await?;
                return Ok((None, true));
            }
        }
        let request = crate::smtp::client::MailOptions {
            require_tls: m.require_tls,
            ret: m.ret.clone(),
            env_id: m.env_id.clone(),
            recipients: rcpts
                .iter()
                .map(|r| (r.notify as u64, r.orcpt.clone()))
                .collect(),
        };
        let sent = client.send(&m.sender, &addresses, content, &request).await;
        // NOTIFY=SUCCESS: a mailbox store (LMTP) is final delivery; a next
        // hop without DSN takes the request no further, so the notice is
        // ours to send ("relayed", RFC 3461 §5.2.2); one with DSN was
        // given the request and answers for it.
        let success = if client.is_lmtp() {
            Some(crate::queue::dsn::Kind::Delivered)
        } else if !client.extensions.dsn {
            Some(crate::queue::dsn::Kind::Relayed)
        } else {
            None
        };
        let retry_at = retry_at(snap);
        let mut outcome = Outcome {
            hop: Some(hop),
            connector: Some(hop.connector_name(snap)),
            remote: Some(remote),
            metered: true,
            ..Outcome::new(m, Source::Smtp)
        };
        let connected = match sent {
            Ok(result) => {
                outcome.transaction = true;
                outcome.results = rcpts
                    .iter()
                    .zip(result.recipients)
                    .map(|(r, reply)| {
                        let (status, next) = if reply.is_positive() {
                            if let Some(kind) = success
                                && r.notify as u64 & smtp_proto::RCPT_NOTIFY_SUCCESS != 0
                            {
                                outcome.success.push((r.idx, kind));
                            }
                            (RecipientStatus::Delivered, 0)
                        } else if reply.is_permanent() {
                            (RecipientStatus::Failed, 0)
                        } else {
                            (RecipientStatus::Retry, retry_at)
                        };
                        super::outcome::RecipientResult {
                            idx: r.idx,
                            address: r.address.clone(),
                            status,
                            text: reply.to_string(),
                            next_attempt_ms: next,
                        }
                    })
                    .collect();
                true
            }
            Err(e) => {
                outcome.attempt = Some(AttemptOutcome::Defer);
                outcome.results = rcpts
                    .iter()
                    .map(|r| super::outcome::RecipientResult {
                        idx: r.idx,
                        address: r.address.clone(),
                        status: RecipientStatus::Retry,
                        text: e.message.clone(),
                        next_attempt_ms: retry_at,
                    })
                    .collect();
                false
            }
        };
        Ok((Some(outcome), connected))
    }

    /// Records that a queue's next hop answered (Active again, failures
    /// reset), at most once a second per queue.
    async fn connected(&self, hop: &HopKey) -> anyhow::Result<()> {
        let fresh = {
            let s = self.state.lock().expect("not poisoned");
            s.connected
                .get(hop)
                .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        };
        if !fresh {
            self.queue
                .record(vec![Change::QueueConnected { hop: hop.clone() }])
                .await?;
            self.state
                .lock()
                .expect("not poisoned")
                .connected
                .insert(hop.clone(), std::time::Instant::now());
        }
        Ok(())
    }

    /// The next hop cannot exist (its domain has no mail server): every
    /// pending recipient of the batch in this queue fails.
    async fn fail_batch(
        &self,
        snap: &Snapshot,
        hop: &HopKey,
        connector: &str,
        batch: &[i64],
        error: &str,
    ) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        for id in batch {
            let Some(m) = db::message(pool, *id).await? else {
                continue;
            };
            let results =
                pending_results(pool, *id, hop, RecipientStatus::Failed, error, 0).await?;
            self.record(
                snap,
                Outcome {
                    hop: Some(hop),
                    connector: Some(connector.to_string()),
                    attempt: Some(AttemptOutcome::Fail),
                    metered: true,
                    results,
                    ..Outcome::new(&m, Source::Smtp)
                },
            )
            .await?;
        }
        Ok(())
    }

    /// Rule 20: glitch retries, then the transient schedule, then the
    /// outbound connection failure interval.
    pub(super) async fn connection_failed(
        &self,
        snap: &Snapshot,
        hop: &HopKey,
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
        self.queue
            .record(vec![Change::QueueFailed {
                hop: hop.clone(),
                error: error.to_string(),
                next_retry_ms: next,
            }])
            .await?;
        let connector = hop.connector_name(snap);
        // The batch's outcomes go to the writer side by side, into one or
        // two group commits. One after another, each waited for a commit
        // of its own, and the attempt (with any administrator's action
        // waiting for it to end) lasted as long as all of them together.
        let connector = &connector;
        let mut recording: FuturesUnordered<_> = batch
            .iter()
            .map(|id| async move {
                let Some(m) = db::message(pool, *id).await? else {
                    return anyhow::Ok(());
                };
                let results =
                    pending_results(pool, *id, hop, RecipientStatus::Retry, error, next).await?;
                self.record(
                    snap,
                    Outcome {
                        hop: Some(hop),
                        connector: Some(connector.clone()),
                        attempt: Some(AttemptOutcome::Defer),
                        metered: true,
                        results,
                        ..Outcome::new(&m, Source::Smtp)
                    },
                )
                .await
            })
            .collect();
        // Every one is waited for: the batch stays carried until each is
        // recorded. The first error is returned once they are all done.
        let mut first_error = None;
        while let Some(r) = recording.next().await {
            if let Err(e) = r {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        tracing::info!(next_hop = %hop, failures, retry_in = %interval, error = %error, "queue in Retry");
        Ok(())
    }
}

/// The same result for every pending recipient of a message in a queue.
pub(super) async fn pending_results(
    pool: &sqlx::SqlitePool,
    message: i64,
    hop: &HopKey,
    status: RecipientStatus,
    text: &str,
    next_attempt_ms: i64,
) -> anyhow::Result<Vec<super::outcome::RecipientResult>> {
    Ok(db::pending_for_hop(pool, message, hop)
        .await?
        .into_iter()
        .map(|r| super::outcome::RecipientResult {
            idx: r.idx,
            address: r.address,
            status,
            text: text.to_string(),
            next_attempt_ms,
        })
        .collect())
}

/// What sessions are counted against in TLS reports (RFC 8460).
pub(super) struct Reported {
    pub domain: String,
    pub applied: crate::store::tlsrpt::Applied,
}

/// A DANE host's TLSA records, as a TLS report's `tlsa` policy.
fn dane_reported(domain: &str, host: &str, tlsa: &[Tlsa]) -> Reported {
    Reported {
        domain: domain.to_string(),
        applied: crate::store::tlsrpt::Applied {
            policy_type: "tlsa".into(),
            policy_string: tlsa
                .iter()
                .map(|t| {
                    let data: String = t.data.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{} {} {} {data}", t.usage, t.selector, t.matching)
                })
                .collect(),
            mx_host: vec![host.to_string()],
        },
    }
}

/// The TLS policies one attempt is held to.
#[derive(Default)]
pub(super) struct TlsHold {
    /// The recipient domain (for TLS reports of DANE sessions).
    pub domain: String,
    /// Sessions are counted for TLS reports (`tlsReportsEnabled`).
    pub report: bool,
    /// MTA-STS, for its TLS report (and, unless testing, applied).
    pub sts: Option<Sts>,
    /// DANE: the TLSA records of the MX hosts that have them.
    pub dane: std::collections::HashMap<String, Arc<Vec<Tlsa>>>,
    /// What the queue's error names when no host would do.
    pub label: Option<String>,
}

/// What DANE makes of a domain's MX hosts.
enum DanePlan {
    /// The MX records are provably unsigned: DANE does not apply.
    NotApplicable,
    /// Nothing may be tried: the MX records are bogus or undecided.
    Refuse(String),
    /// The hosts to try in order, each with its TLSA records (None: not
    /// DANE-authenticated, opportunistic TLS), and those left out.
    Apply {
        hosts: Vec<(Target, Option<Arc<Vec<Tlsa>>>)>,
        dropped: Vec<String>,
    },
}

fn e_text(e: DnsError) -> String {
    match e {
        DnsError::Transient(t) | DnsError::Permanent(t) => t,
    }
}

/// The MTA-STS policy a delivery to a domain is held to (or, `testing`,
/// reported against).
pub(super) struct Sts {
    pub domain: String,
    pub policy: std::sync::Arc<mta_sts::Policy>,
    pub testing: bool,
    /// Sessions are counted for TLS reports (`tlsReportsEnabled`).
    pub report: bool,
}

impl Sts {
    fn reported(&self) -> Reported {
        Reported {
            domain: self.domain.clone(),
            applied: crate::store::tlsrpt::Applied {
                policy_type: "sts".into(),
                policy_string: self.policy.lines.clone(),
                mx_host: self.policy.mx.clone(),
            },
        }
    }
}

/// RFC 8460's result-type for a connection that failed over TLS; None
/// when it failed for another reason (refused, timed out).
fn tls_result(error: &str) -> Option<&'static str> {
    let e = error.to_ascii_lowercase();
    if e.contains("starttls is required") {
        Some("starttls-not-supported")
    } else if e.contains("notvalidforname") || e.contains("not valid for name") {
        Some("certificate-host-mismatch")
    } else if e.contains("expired") {
        Some("certificate-expired")
    } else if e.contains("unknownissuer")
        || e.contains("unknown issuer")
        || e.contains("badsignature")
    {
        Some("certificate-not-trusted")
    } else if e.contains("tls") {
        Some("validation-failure")
    } else {
        None
    }
}

/// The message with the header that states its original arrival time.
/// How long a connection is kept open for the next batch to its queue
/// (Postfix's smtp_connection_cache_time_limit is 2 s too).
pub(super) const IDLE_FOR: Duration = Duration::from_secs(2);

/// A connection kept open between batches to one queue.
pub(super) struct Idle {
    client: SmtpClient,
    remote: Remote,
    /// Messages it has carried.
    sent: u64,
    /// When it was last left idle.
    since: std::time::Instant,
}

/// QUIT in the background, bounded: nobody waits on a closing connection.
fn quit_later(client: SmtpClient) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(5), client.quit()).await;
    });
}

/// How many messages of a batch are read from the queue at once.
const LOAD_WINDOW: usize = 64;

/// A body up to this size is read with its window's messages (at most
/// 4 MiB a window); a larger one on its own, or streamed.
const BODY_WITH_BATCH: i64 = 64 * 1024;

/// A window of a batch, ready to send.
#[derive(Default)]
pub(super) struct Loaded {
    messages: HashMap<i64, Stored>,
    /// Pending recipients in this queue, by message, in index order.
    recipients: HashMap<i64, Vec<db::StoredRecipient>>,
}

/// A message to send: handed off by the writer, or read from the queue
/// (its body's length, and the body when it is small).
pub(super) enum Stored {
    Held(Arc<crate::queue::handoff::Committed>),
    Read {
        message: Box<db::StoredMessage>,
        len: i64,
        body: Option<Vec<u8>>,
    },
}

impl Stored {
    fn message(&self) -> &db::StoredMessage {
        match self {
            Stored::Held(held) => &held.message,
            Stored::Read { message, .. } => message,
        }
    }

    fn len(&self) -> i64 {
        match self {
            Stored::Held(held) => held.body.len() as i64,
            Stored::Read { len, .. } => *len,
        }
    }
}

fn arrival_header(received_ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(received_ms as i128 * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    format!("{}: {t}\r\n", crate::model::drain::ARRIVAL_HEADER)
}

/// Whether a stored body is all 7-bit, read a chunk at a time (MAIL's
/// BODY=8BITMIME must be known before DATA).
async fn stored_is_ascii(db_path: &std::path::Path, id: i64) -> anyhow::Result<bool> {
    let mut chunks = db::body_chunks(db_path, id);
    while let Some(chunk) = chunks.recv().await {
        if !chunk?.is_ascii() {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tls_failures_get_rfc_8460_result_types() {
        use super::tls_result;
        assert_eq!(
            tls_result(
                "421 4.7.5 TLS negotiation with 1.2.3.4:25 failed: invalid peer certificate: NotValidForName"
            ),
            Some("certificate-host-mismatch")
        );
        assert_eq!(
            tls_result(
                "421 4.7.5 TLS negotiation with x failed: invalid peer certificate: UnknownIssuer"
            ),
            Some("certificate-not-trusted")
        );
        assert_eq!(
            tls_result(
                "421 4.7.5 TLS negotiation with x failed: invalid peer certificate: Expired"
            ),
            Some("certificate-expired")
        );
        assert_eq!(
            tls_result("451 5.7.3 STARTTLS is required to send mail"),
            Some("starttls-not-supported")
        );
        assert_eq!(
            tls_result("421 4.4.1 connection to 1.2.3.4:25 failed: refused"),
            None
        );
    }
}
