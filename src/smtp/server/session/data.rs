//! DATA and BDAT, and what happens at the end of a message: size, header
//! and hop-count limits, the Received and Message-ID headers, and durable
//! acceptance into the queue before the "250".

use tokio::io::{AsyncRead, AsyncWrite};

use super::{Filled, Next, Session, rfc5322_now};
use crate::model::ExtendedRight as R;
use crate::queue::Envelope;
use crate::smtp::replies::{self, Reply};
use crate::smtp::server::dot_reader::DotReader;

/// With the Bypass-Message-Size-Limit right, a message may exceed the
/// connector's MaxMessageSize, but never this: it bounds session memory.
const HARD_SIZE_CEILING: u64 = 256 * 1024 * 1024;

impl<S: AsyncRead + AsyncWrite + Unpin + Send> Session<S> {
    fn size_limit(&self) -> u64 {
        if self.has_right(R::BypassMessageSizeLimit) {
            HARD_SIZE_CEILING
        } else {
            self.c().max_message_size
        }
    }

    pub(super) async fn data(&mut self) -> std::io::Result<Next> {
        let Some(tx) = &self.tx else {
            return Ok(self.protocol_error(replies::NEED_MAIL).await);
        };
        if tx.recipients.is_empty() {
            return Ok(self.protocol_error(replies::NEED_RCPT).await);
        }
        if tx.body_type == Some("BINARYMIME") || tx.chunking {
            return Ok(self.protocol_error(replies::BINARYMIME_NEEDS_BDAT).await);
        }
        self.write(&replies::START_DATA);
        self.flush().await?;
        let mut reader = DotReader::with_spool(self.size_limit(), self.shared.queue.spool());
        loop {
            let (used, done) = reader.feed(&self.inbuf);
            self.inbuf.drain(..used);
            if done {
                break;
            }
            if let Filled::Done = self.fill(false).await? {
                return Ok(Next::Close);
            }
        }
        let over = reader.over_limit();
        Ok(self.finish(reader.body, over).await)
    }

    pub(super) async fn bdat(&mut self, size: usize, last: bool) -> std::io::Result<Next> {
        // The chunk is read whatever the verdict, so the stream stays in step.
        let limit = self.size_limit();
        let keep =
            self.tx.as_ref().is_some_and(|t| !t.recipients.is_empty()) && self.c().chunking_enabled;
        let mut remaining = size;
        // The chunk goes straight into the transaction's spool: a large
        // chunk is never held whole in memory.
        let mut spool = match self.tx.as_mut() {
            Some(t) if keep => Some(t.chunks.take().unwrap_or_else(|| self.shared.queue.spool())),
            _ => None,
        };
        loop {
            let take = remaining.min(self.inbuf.len());
            let already = spool.as_ref().map_or(0, |s| s.len());
            match &mut spool {
                Some(s) if already + (take as u64) <= limit => {
                    s.extend_from_slice(&self.inbuf[..take])
                }
                _ => {}
            }
            self.inbuf.drain(..take);
            remaining -= take;
            if remaining == 0 {
                break;
            }
            if let Filled::Done = self.fill(false).await? {
                return Ok(Next::Close);
            }
        }
        if let Some(t) = self.tx.as_mut() {
            t.chunks = spool;
        }
        if !self.c().chunking_enabled {
            return Ok(self.protocol_error(replies::BDAT_NOT_ENABLED).await);
        }
        let Some(tx) = self.tx.as_mut() else {
            return Ok(self.protocol_error(replies::NEED_MAIL).await);
        };
        if tx.recipients.is_empty() {
            return Ok(self.protocol_error(replies::NEED_RCPT).await);
        }
        tx.chunking = true;
        tx.chunks_size += size as u64;
        if !last {
            return Ok(self
                .reply(Reply::new(250, "2.0.0", format!("{size} octets received")))
                .await);
        }
        let over = tx.chunks_size > limit;
        let body = tx
            .chunks
            .take()
            .unwrap_or_else(crate::queue::spool::Spool::in_memory);
        Ok(self.finish(body, over).await)
    }

    /// Checks a complete message, stamps it, and queues it durably.
    async fn finish(&mut self, body: crate::queue::spool::Spool, over_limit: bool) -> Next {
        let Some(mut tx) = self.tx.take() else {
            return self.protocol_error(replies::NEED_MAIL).await;
        };
        if over_limit {
            return self.reply(replies::SIZE_EXCEEDED).await;
        }
        // The header block is in the in-memory part of the spool; one that
        // does not end there is larger than 256 KiB.
        let head = body.head();
        let header_len = header_block_len(head);
        let unterminated = header_len == head.len() && (body.len() as usize) > head.len();
        if header_len as u64 > self.c().max_header_size
            || unterminated && body.len() > self.c().max_header_size
        {
            return self.reply(replies::HEADER_TOO_BIG).await;
        }
        let headers = &head[..header_len];
        if received_count(headers) >= self.c().max_hop_count as usize {
            return self.reply(replies::HOP_COUNT).await;
        }
        if let Some(next) = self.end_of_headers(headers, &tx).await {
            return next;
        }
        let fqdn = self.fqdn();
        let message_id = header_value(headers, "message-id")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| format!("<{}@{}>", uuid::Uuid::new_v4().simple(), fqdn));
        let has_message_id = header_value(headers, "message-id").is_some();
        // The header block outlives the spool it is read from.
        let header_block = headers.to_vec();
        let mut stamped = match body.finish() {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "the message could not be spooled");
                return self.reply(replies::QUEUE_FAILED).await;
            }
        };
        // The agents at the end of data may edit the message and its
        // envelope, refuse it or drop it.
        match self.end_of_data(stamped, &header_block, &mut tx).await {
            Ok(body) => stamped = body,
            Err(next) => return next,
        }
        // The subject as queued (a rule may have changed it).
        let subject = header_value(&stamped.head[..header_block_len(&stamped.head)], "subject")
            .map(|v| v.trim().to_string());
        // RFC 5322 requires Message-ID and Date: a message without them
        // gets them here (RFC 6409 §8.2, §8.3), before it is signed.
        let mut added_id = if has_message_id {
            String::new()
        } else {
            format!("Message-ID: {message_id}\r\n")
        };
        if header_value(&header_block, "date").is_none() {
            added_id.push_str(&format!("Date: {}\r\n", rfc5322_now()));
        }
        let signature = self.dkim_signature(&stamped, added_id.as_bytes()).await;
        let mut prefix = Vec::with_capacity(1024);
        prefix.extend_from_slice(self.received_header(&fqdn, &tx).as_bytes());
        if let Some(sig) = &signature {
            prefix.extend_from_slice(sig.as_bytes());
        }
        for stamp in &tx.stamps {
            prefix.extend_from_slice(stamp.as_bytes());
            prefix.extend_from_slice(b"\r\n");
        }
        prefix.extend_from_slice(added_id.as_bytes());
        stamped.prepend(&prefix);
        let size = stamped.len() as i64;
        // Each recipient goes into its delivery queue in the commit that
        // accepts it, routed by the configuration of this moment.
        let mut recipients = tx.recipients.clone();
        crate::queue::delivery::route_at_acceptance(
            &self.shared.config.snapshot(),
            &mut recipients,
            size as u64,
        );
        let envelope = Envelope {
            message_id: message_id.clone(),
            sender: tx.sender.clone(),
            recipients,
            receive_connector: self.c().name.clone(),
            client_ip: self.remote.ip().to_string(),
            client_helo: self.helo.clone(),
            auth_user: self.auth_user.clone().or(tx.auth_param.clone()),
            env_id: tx.env_id.clone(),
            ret: tx.ret.map(str::to_string),
            body_type: tx.body_type.map(str::to_string),
            smtputf8: tx.smtputf8,
            require_tls: tx.require_tls,
            subject: subject.clone(),
            arrived_ms: tx.arrived_ms,
        };
        // Kept for the ROUTE events the enqueue's commit makes true.
        let routed: Vec<crate::queue::Recipient> = envelope
            .recipients
            .iter()
            .filter(|r| r.route.is_some())
            .cloned()
            .collect();
        match self.shared.queue.enqueue(envelope, stamped).await {
            Ok(internal) => {
                let ip = self.remote.ip();
                let user = self.auth_user.clone();
                self.shared.limiter.record_message(
                    self.connector.id,
                    self.c(),
                    ip,
                    user.as_deref(),
                );
                tracing::info!(
                    message_id = %message_id, internal_id = internal,
                    sender = %tx.sender, recipients = tx.recipients.len(), "RECEIVE"
                );
                let observe = &self.shared.observe;
                observe.metrics.received(&self.connector.spec.name);
                observe.tracking.record(crate::observe::tracking::Event {
                    event: crate::observe::tracking::EventKind::Receive,
                    source: crate::observe::tracking::Source::Smtp,
                    internal_id: internal,
                    message_id: message_id.clone(),
                    sender: tx.sender.to_string(),
                    recipients: tx
                        .recipients
                        .iter()
                        .map(|r| r.address.to_string())
                        .collect(),
                    size: Some(size),
                    subject: subject.clone(),
                    connector: Some(self.connector.spec.name.clone()),
                    client_ip: Some(self.remote.ip().to_string()),
                    client_hostname: self.helo.clone(),
                    server_ip: Some(self.local.ip().to_string()),
                    server_hostname: Some(fqdn.clone()),
                    tls: self.tls.clone(),
                    auth: self.auth_user.clone(),
                    session: Some(self.id.clone()),
                    ..Default::default()
                });
                for event in crate::queue::delivery::routed_at_acceptance(
                    crate::queue::delivery::Routed {
                        internal_id: internal,
                        message_id: message_id.clone(),
                        sender: tx.sender.to_string(),
                        size,
                        subject: subject.clone(),
                    },
                    &routed,
                ) {
                    observe.tracking.record(event);
                }
                // The client's Message-ID is echoed only as printable ASCII.
                let echoed: String = message_id
                    .chars()
                    .take(250)
                    .map(|c| {
                        if c.is_ascii_graphic() || c == ' ' {
                            c
                        } else {
                            '?'
                        }
                    })
                    .collect();
                self.reply(Reply::queued(&echoed, internal)).await
            }
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "message could not be queued");
                self.reply(replies::QUEUE_FAILED).await
            }
        }
    }

    /// Connection Filtering at the end of the headers, for a session from
    /// one of `internalSMTPServers`: the original client is read from the
    /// Received headers and judged as external mail; a blocked one's
    /// message is refused after DATA (`550 5.7.1`). Some(next) when it was.
    async fn end_of_headers(&mut self, headers: &[u8], tx: &super::Transaction) -> Option<Next> {
        let snap = self.snap.clone();
        let internal = &snap.transport.spec.internal_smtp_servers;
        let ip = self.remote.ip();
        if self.principal != crate::model::Principal::Anonymous
            || self.has_right(crate::model::ExtendedRight::BypassAntiSpam)
            || !internal.iter().any(|r| r.contains_ip(ip))
        {
            return None;
        }
        let received = header_values(headers, "received");
        let original = crate::agents::connection_filter::original_client(&received, internal)?;
        let (connector, id) = (self.c().name.clone(), self.id.clone());
        let info = crate::agents::SessionInfo {
            snap: &snap,
            client_ip: original,
            connector: &connector,
            session: &id,
            origin: crate::agents::Origin::External,
        };
        match crate::agents::connection_filter::judge(&self.shared.agents, &info).await {
            crate::agents::connection_filter::Verdict::Blocked { text, bypassed }
                if !tx.recipients.iter().all(|r| {
                    bypassed
                        .iter()
                        .any(|b| b.eq_ignore_ascii_case(r.address.as_str()))
                }) =>
            {
                Some(self.reply(Reply::new(550, "5.7.1", text)).await)
            }
            _ => None,
        }
    }

    /// `Received:` naming the receive connector and the TLS parameters.
    fn received_header(&self, fqdn: &str, tx: &super::Transaction) -> String {
        let proto = match (self.esmtp, self.tls.is_some(), self.auth_user.is_some()) {
            (false, _, _) => "SMTP",
            (true, false, false) => "ESMTP",
            (true, true, false) => "ESMTPS",
            (true, false, true) => "ESMTPA",
            (true, true, true) => "ESMTPSA",
        };
        let tls = self
            .tls
            .as_ref()
            .map(|t| format!("; {t}"))
            .unwrap_or_default();
        let local = self
            .snap
            .transport
            .spec
            .external_ip_address
            .unwrap_or(self.local.ip());
        let rcpt = match tx.recipients.as_slice() {
            [one] => format!("\r\n\tfor {}", one.address.path()),
            _ => String::new(),
        };
        format!(
            "Received: from {} ([{}]) by {} ([{}]) with {} (Ferry; receive connector \"{}\"{}{}){}; {}\r\n",
            self.helo
                .as_deref()
                .unwrap_or("unknown")
                .replace(['\r', '\n', '(', ')'], ""),
            self.remote.ip(),
            fqdn,
            local,
            proto,
            self.c().name.replace(['"', '\r', '\n'], ""),
            tls,
            // The login, as Postfix's "Authenticated sender" names it.
            self.auth_user
                .as_ref()
                .map(|u| format!(
                    "; authenticated as {}",
                    u.replace(['\r', '\n', '(', ')', '\\'], "")
                ))
                .unwrap_or_default(),
            rcpt,
            rfc5322_now()
        )
    }
}

/// Length of the header block, its terminating empty line included (the
/// whole message when it has no body).
pub(crate) fn header_block_len(msg: &[u8]) -> usize {
    if msg.starts_with(b"\r\n") {
        return 2;
    }
    msg.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(msg.len())
}

fn header_lines(headers: &[u8]) -> impl Iterator<Item = &[u8]> {
    headers.split(|&b| b == b'\n')
}

/// How many Received headers there are: the hop count (spec rule 9).
/// `Received :` (white space before the colon, RFC 5322's obsolete syntax
/// that mail still carries) counts too, so it cannot hide a loop.
pub(crate) fn received_count(headers: &[u8]) -> usize {
    header_lines(headers)
        .filter(|l| {
            l.len() >= 8
                && l[..8].eq_ignore_ascii_case(b"received")
                && l[8..]
                    .iter()
                    .find(|b| **b != b' ' && **b != b'\t')
                    .is_some_and(|b| *b == b':')
        })
        .count()
}

/// Every value of a header, unfolded, in order (newest first for Received).
pub(crate) fn header_values(headers: &[u8], name: &str) -> Vec<String> {
    let mut out = vec![];
    let mut lines = header_lines(headers).peekable();
    while let Some(l) = lines.next() {
        let matches = l.len() > name.len()
            && l[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && l[name.len()..]
                .iter()
                .find(|b| **b != b' ' && **b != b'\t')
                .is_some_and(|b| *b == b':');
        if !matches {
            continue;
        }
        let colon = l.iter().position(|b| *b == b':').unwrap_or(name.len());
        let mut v = String::from_utf8_lossy(&l[colon + 1..]).trim().to_string();
        while let Some(next) = lines.peek() {
            if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                v.push(' ');
                v.push_str(String::from_utf8_lossy(next).trim());
                lines.next();
            } else {
                break;
            }
        }
        out.push(v);
    }
    out
}

/// The first value of a header, unfolded.
pub(crate) fn header_value(headers: &[u8], name: &str) -> Option<String> {
    let mut lines = header_lines(headers).peekable();
    while let Some(l) = lines.next() {
        if l.len() > name.len()
            && l[..name.len()].eq_ignore_ascii_case(name.as_bytes())
            && l[name.len()] == b':'
        {
            let mut v = String::from_utf8_lossy(&l[name.len() + 1..])
                .trim_end()
                .to_string();
            while let Some(next) = lines.peek() {
                if next.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
                    v.push(' ');
                    v.push_str(String::from_utf8_lossy(next).trim());
                    lines.next();
                } else {
                    break;
                }
            }
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_helpers() {
        let msg = b"Received: a\r\nreceived: b\r\nReceived : c\r\nReceivedX: d\r\nMessage-ID:\r\n <x@y>\r\nSubject: s\r\n\r\nReceived: not a header\r\n";
        let h = &msg[..header_block_len(msg)];
        assert_eq!(received_count(h), 3);
        assert_eq!(header_value(h, "message-id").unwrap().trim(), "<x@y>");
        assert_eq!(header_value(h, "subject").unwrap().trim(), "s");
        assert!(header_value(h, "from").is_none());
        assert_eq!(header_block_len(b"\r\nbody"), 2);
        assert_eq!(header_block_len(b"Subject: only"), 13);
    }
}
