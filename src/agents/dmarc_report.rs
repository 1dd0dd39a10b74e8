//! DMARC aggregate reports (RFC 7489 §7.2): the Sender Id agent counts each
//! DMARC evaluation of a domain that asks for reports (`rua`), per UTC day,
//! in `tracking.db` (through the tracking writer's batches, never blocking a
//! session). Once a period has ended, each policy domain gets one report
//! per policy it published: RFC 7489's XML (Appendix C), gzipped, attached
//! to a message to its authorised `rua` addresses that fit their size
//! limits, DKIM-signed with the report address's domain key, and queued
//! like any other message. The rows are deleted once the report is queued.
//!
//! Failure reports (`ruf`, RFC 7489 §7.3) are never sent: they carry the
//! headers, and often the content, of someone's mail to a third party.
//!
//! The format is RFC 7489's: no namespace, `version` 1.0 first, and
//! `policy_published` with `pct` and `fo`, as every report consumer reads.
//! DMARCbis's aggregate reporting (the `dmarc-2.0` namespace) is what
//! mail-auth writes, and is not used.

use std::io;
use std::net::IpAddr;

use anyhow::Context;
use quick_xml::Writer;
use quick_xml::events::BytesText;

use crate::config::{ConfigService, Snapshot};
use crate::model::Address;
use crate::observe::tracking::{EventKind, Source, Tracker};
use crate::queue::Queue;
use crate::queue::envelope::{Envelope, Recipient};
use crate::store::dmarc::{self as db, Evaluation, Group, Published, ReportRow, Seen};

use crate::observe::periods::{Periods, now_s, period_end};

/// The counts and the reporter; one per server.
pub struct DmarcReports {
    tracking: Tracker,
    periods: Periods,
    /// One pass at a time (the daily tick and "send now").
    pass: tokio::sync::Mutex<()>,
}

impl DmarcReports {
    pub fn new(tracking: Tracker) -> DmarcReports {
        DmarcReports {
            tracking,
            periods: Periods::default(),
            pass: tokio::sync::Mutex::new(()),
        }
    }

    /// Counts one evaluation.
    pub fn count(&self, published: Published, seen: Seen) {
        self.tracking.record_dmarc(Evaluation {
            period_start: self.periods.current(),
            published,
            seen,
        });
    }
}

impl super::reports::Reporter for DmarcReports {
    type Group = Group;
    type Made = ReportRow;
    const NAME: &'static str = "DMARC reports";

    fn periods(&self) -> &Periods {
        &self.periods
    }
    fn tracking(&self) -> &Tracker {
        &self.tracking
    }
    fn pass(&self) -> &tokio::sync::Mutex<()> {
        &self.pass
    }
    fn enabled(snap: &Snapshot) -> bool {
        snap.anti_spam.sender_id_config.spec.dmarc_reports_enabled
    }
    async fn closed(pool: &sqlx::SqlitePool, before: i64) -> anyhow::Result<Vec<Group>> {
        db::closed(pool, before).await
    }
    async fn make(
        &self,
        snap: &Snapshot,
        config: &ConfigService,
        queue: &Queue,
        agents: &super::Agents,
        group: &Group,
        before: i64,
    ) -> anyhow::Result<ReportRow> {
        let r = self
            .send(snap, config, queue, agents, group, before)
            .await?;
        tracing::info!(domain = %r.policy_domain, status = %r.status, messages = r.messages,
            to = %r.recipients.join(", "), "DMARC aggregate report");
        Ok(r)
    }
    async fn done(pool: &sqlx::SqlitePool, group: &Group, made: &ReportRow) -> anyhow::Result<()> {
        db::done(pool, group, made).await
    }
    async fn forget(pool: &sqlx::SqlitePool, before: i64) -> anyhow::Result<u64> {
        db::forget(pool, before).await
    }
}

impl DmarcReports {
    /// Makes one group's report and queues it to the addresses that may
    /// have it.
    async fn send(
        &self,
        snap: &Snapshot,
        config: &ConfigService,
        queue: &Queue,
        agents: &super::Agents,
        g: &Group,
        before: i64,
    ) -> anyhow::Result<ReportRow> {
        let cfg = &snap.anti_spam.sender_id_config.spec;
        let fqdn = snap.transport.spec.server_fqdn.to_string();
        let from = cfg
            .dmarc_report_address
            .clone()
            .unwrap_or_else(|| snap.postmaster());
        let begin = g.period_start;
        let end = period_end(begin, before);
        let domain = &g.published.domain;
        let report_id = format!("{begin}.{}@{fqdn}", short_hash(&g.published));
        let meta = Meta {
            org_name: cfg.dmarc_report_org_name.as_deref().unwrap_or(&fqdn),
            email: &from,
            report_id: &report_id,
            begin,
            end,
        };
        let xml = to_xml(&meta, &g.published, &g.rows)?;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        io::Write::write_all(&mut gz, &xml)?;
        let gz = gz.finish()?;
        let messages: i64 = g.rows.iter().map(|(_, n)| n).sum();
        let mut row = ReportRow {
            id: 0,
            created_ms: crate::observe::tracking::now_ms(),
            report_id: report_id.clone(),
            policy_domain: domain.clone(),
            begin_s: begin,
            end_s: end,
            records: g.rows.len() as i64,
            messages,
            size: 0,
            recipients: vec![],
            status: "NotSent".into(),
            detail: None,
            message_id: None,
        };
        let mut left_out = vec![];
        let mut wanted: Vec<(String, u64)> = vec![];
        for (uri, limit) in &g.published.rua {
            match mailto(uri) {
                Some(a) => wanted.push((a, *limit)),
                None => left_out.push(format!("{uri}: not an address")),
            }
        }
        let addresses: Vec<String> = wanted.iter().map(|(a, _)| a.clone()).collect();
        let servers = snap.transport.spec.external_lookup_servers();
        let Some(authorized) = agents
            .verifier
            .report_addresses(&servers, domain, &addresses)
            .await
        else {
            anyhow::bail!("DNS could not tell which report addresses {domain} authorised");
        };
        for a in &addresses {
            if !authorized.contains(a) {
                left_out.push(format!(
                    "{a}: not authorised by {domain}._report._dmarc.{} (RFC 7489 §7.1)",
                    a.rsplit_once('@').map_or("", |(_, d)| d)
                ));
            }
        }
        let filename = format!("{fqdn}!{domain}!{begin}!{end}.xml.gz");
        let subject = format!("Report Domain: {domain} Submitter: {fqdn} Report-ID: <{report_id}>");
        let message_id = format!("<dmarc.{report_id}>");
        // RFC 7489 §7.2.1.1's Subject, in plain ASCII (an encoded word
        // would hide it from the filters it exists for), folded at its
        // FWS.
        let subject_folded =
            format!("Report Domain: {domain}\r\n Submitter: {fqdn}\r\n Report-ID: <{report_id}>");
        let build = |to: &[String]| -> io::Result<Vec<u8>> {
            mail_builder::MessageBuilder::new()
                .from(from.as_str())
                .to(mail_builder::headers::address::Address::new_list(
                    to.iter().map(|a| a.as_str().into()).collect(),
                ))
                .header(
                    "Subject",
                    mail_builder::headers::raw::Raw::new(subject_folded.as_str()),
                )
                .message_id(&message_id[1..message_id.len() - 1])
                .date(now_s())
                .header(
                    "Auto-Submitted",
                    mail_builder::headers::raw::Raw::new("auto-generated"),
                )
                .text_body(format!(
                    "This is a DMARC aggregate report (RFC 7489) from {fqdn}.\r\n\r\n\
                     Report Domain: {domain}\r\nSubmitter: {fqdn}\r\nReport-ID: {report_id}\r\n\
                     Period: {begin} to {end} (Unix time, UTC)\r\nMessages: {messages}\r\n"
                ))
                .attachment("application/gzip", filename.as_str(), gz.as_slice())
                .write_to_vec()
        };
        // The size limits (`!10m`) are the message's, per address: the
        // message is made for those it fits (RFC 7489 §7.2.1).
        let mut to: Vec<String> = authorized;
        let mut message = build(&to)?;
        loop {
            let too_small: Vec<String> = wanted
                .iter()
                .filter(|(a, limit)| to.contains(a) && *limit > 0 && message.len() as u64 > *limit)
                .map(|(a, _)| a.clone())
                .collect();
            if too_small.is_empty() {
                break;
            }
            for a in &too_small {
                let limit = wanted.iter().find(|(w, _)| w == a).map_or(0, |w| w.1);
                left_out.push(format!(
                    "{a}: the report ({} bytes) is over its limit of {limit} bytes",
                    message.len()
                ));
            }
            to.retain(|a| !too_small.contains(a));
            message = build(&to)?;
        }
        row.detail = (!left_out.is_empty()).then(|| left_out.join("; "));
        row.size = message.len() as i64;
        if to.is_empty() {
            return Ok(row);
        }
        row.size = queue_report(
            snap,
            config,
            queue,
            agents,
            &self.tracking,
            Outgoing {
                from: &from,
                to: &to,
                message_id: &message_id,
                subject: &subject,
                connector: "Ferry DMARC reports",
                detail: format!("DMARC aggregate report for {domain}: {messages} messages"),
            },
            message,
        )
        .await?;
        row.status = "Queued".into();
        row.recipients = to;
        row.message_id = Some(message_id);
        Ok(row)
    }
}

/// A report message on its way to the queue.
pub(crate) struct Outgoing<'a> {
    pub from: &'a str,
    pub to: &'a [String],
    pub message_id: &'a str,
    pub subject: &'a str,
    /// The receive connector tracking names as its source.
    pub connector: &'a str,
    /// The tracking event's detail.
    pub detail: String,
}

/// DKIM-signs a report with the From domain's key (when it has one),
/// queues it like any message and tracks it; its size as queued.
pub(crate) async fn queue_report(
    snap: &Snapshot,
    config: &ConfigService,
    queue: &Queue,
    agents: &super::Agents,
    tracking: &Tracker,
    out: Outgoing<'_>,
    mut message: Vec<u8>,
) -> anyhow::Result<i64> {
    let from_domain = out.from.rsplit_once('@').map_or("", |(_, d)| d);
    if let Some(signature) = super::dkim::sign_for(
        snap,
        &config.secrets,
        &agents.dkim,
        from_domain,
        message.clone(),
    )
    .await
    {
        message = [signature.into_bytes(), message].concat();
    }
    let size = message.len() as i64;
    let recipients = out
        .to
        .iter()
        .map(|a| {
            Ok(Recipient {
                address: Address::parse(a.as_str()).map_err(|e| anyhow::anyhow!(e))?,
                orcpt: None,
                notify: 0,
                route: None,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let internal = queue
        .enqueue(
            Envelope {
                message_id: out.message_id.to_string(),
                sender: Address::parse(out.from).map_err(|e| anyhow::anyhow!(e))?,
                recipients,
                receive_connector: out.connector.into(),
                client_ip: IpAddr::from([127, 0, 0, 1]).to_string(),
                client_helo: None,
                auth_user: None,
                env_id: None,
                ret: None,
                body_type: None,
                smtputf8: false,
                require_tls: false,
                subject: Some(out.subject.to_string()),
                arrived_ms: None,
            },
            message,
        )
        .await
        .context("queueing the report")?;
    tracking.record(crate::observe::tracking::Event {
        event: EventKind::Receive,
        source: Source::Agent,
        internal_id: internal,
        message_id: out.message_id.to_string(),
        sender: out.from.to_string(),
        recipients: out.to.to_vec(),
        size: Some(size),
        subject: Some(out.subject.to_string()),
        detail: Some(out.detail),
        ..Default::default()
    });
    Ok(size)
}

/// The address of a `rua` entry: mail-auth keeps only `mailto:` URIs (the
/// one scheme RFC 7489 §6.2 defines for reports), without the scheme; a
/// `mailto:` still there is taken off, `%` escapes decoded (RFC 6068) and
/// `?headers` dropped. None when what is left is not an address.
pub(crate) fn mailto(uri: &str) -> Option<String> {
    let rest = match uri.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case("mailto:") => &uri[7..],
        _ => uri,
    };
    let rest = rest.split('?').next()?;
    let bytes = rest.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let address = String::from_utf8(out).ok()?;
    Address::parse(address.as_str())
        .ok()
        .filter(|a| a.domain().is_some())
        .map(|a| a.as_str().to_string())
}

/// Eight bytes of SHA-256 of the policy, in hex: one report id per domain,
/// policy and period, so a report queued twice (a crash between queueing
/// and forgetting its rows) is recognisably the same report.
fn short_hash(p: &Published) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_string(p).unwrap_or_default();
    hex::encode(&Sha256::digest(json.as_bytes())[..8])
}

/// `report_metadata`.
struct Meta<'a> {
    org_name: &'a str,
    email: &'a str,
    report_id: &'a str,
    begin: i64,
    end: i64,
}

/// An IP address as RFC 7489's schema's `IPAddress` pattern takes it:
/// IPv6 in full, eight groups, without `::`.
fn schema_ip(ip: &str) -> String {
    match ip.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|s| format!("{s:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
        _ => ip.to_string(),
    }
}

/// The report's XML, in the element order of RFC 7489 Appendix C.
fn to_xml(meta: &Meta<'_>, p: &Published, rows: &[(Seen, i64)]) -> io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(quick_xml::events::Event::Decl(
        quick_xml::events::BytesDecl::new("1.0", Some("UTF-8"), None),
    ))?;
    fn leaf<W: io::Write>(w: &mut Writer<W>, name: &str, text: &str) -> io::Result<()> {
        w.create_element(name)
            .write_text_content(BytesText::new(text))?;
        Ok(())
    }
    w.create_element("feedback").write_inner_content(|w| {
        leaf(w, "version", "1.0")?;
        w.create_element("report_metadata")
            .write_inner_content(|w| {
                leaf(w, "org_name", meta.org_name)?;
                leaf(w, "email", meta.email)?;
                leaf(w, "report_id", meta.report_id)?;
                w.create_element("date_range").write_inner_content(|w| {
                    leaf(w, "begin", &meta.begin.to_string())?;
                    leaf(w, "end", &meta.end.to_string())
                })?;
                Ok(())
            })?;
        w.create_element("policy_published")
            .write_inner_content(|w| {
                leaf(w, "domain", &p.domain)?;
                leaf(w, "adkim", &p.adkim)?;
                leaf(w, "aspf", &p.aspf)?;
                leaf(w, "p", &p.p)?;
                leaf(w, "sp", &p.sp)?;
                leaf(w, "pct", &p.pct.to_string())?;
                leaf(w, "fo", &p.fo)
            })?;
        for (seen, count) in rows {
            w.create_element("record").write_inner_content(|w| {
                w.create_element("row").write_inner_content(|w| {
                    leaf(w, "source_ip", &schema_ip(&seen.source_ip))?;
                    leaf(w, "count", &count.to_string())?;
                    w.create_element("policy_evaluated")
                        .write_inner_content(|w| {
                            leaf(w, "disposition", &seen.disposition)?;
                            leaf(w, "dkim", &seen.dkim)?;
                            leaf(w, "spf", &seen.spf)?;
                            for (kind, comment) in &seen.reasons {
                                w.create_element("reason").write_inner_content(|w| {
                                    leaf(w, "type", kind)?;
                                    if let Some(c) = comment {
                                        leaf(w, "comment", c)?;
                                    }
                                    Ok(())
                                })?;
                            }
                            Ok(())
                        })?;
                    Ok(())
                })?;
                w.create_element("identifiers").write_inner_content(|w| {
                    leaf(w, "envelope_from", &seen.envelope_from)?;
                    leaf(w, "header_from", &seen.header_from)
                })?;
                w.create_element("auth_results").write_inner_content(|w| {
                    for (d, s, result) in &seen.dkim_results {
                        w.create_element("dkim").write_inner_content(|w| {
                            leaf(w, "domain", d)?;
                            leaf(w, "selector", s)?;
                            leaf(w, "result", result)
                        })?;
                    }
                    for (d, scope, result) in &seen.spf_results {
                        w.create_element("spf").write_inner_content(|w| {
                            leaf(w, "domain", d)?;
                            leaf(w, "scope", scope)?;
                            leaf(w, "result", result)
                        })?;
                    }
                    Ok(())
                })?;
                Ok(())
            })?;
        }
        Ok(())
    })?;
    let mut xml = w.into_inner();
    xml.push(b'\n');
    Ok(xml)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mailto_uris_and_ipv6_in_full() {
        assert_eq!(
            mailto("mailto:dmarc%2Breports@Example.test").as_deref(),
            Some("dmarc+reports@Example.test")
        );
        assert_eq!(
            mailto("MAILTO:a@b.test?subject=x").as_deref(),
            Some("a@b.test")
        );
        assert_eq!(mailto("dmarc@b.test").as_deref(), Some("dmarc@b.test"));
        assert_eq!(mailto("https://b.test/report"), None);
        assert_eq!(mailto("mailto:nobody"), None);
        assert_eq!(mailto("mailto:a%2@b.test"), None);
        assert_eq!(schema_ip("2001:db8::1"), "2001:db8:0:0:0:0:0:1");
        assert_eq!(schema_ip("::ffff:192.0.2.1"), "192.0.2.1");
        assert_eq!(schema_ip("192.0.2.1"), "192.0.2.1");
    }
}
