//! TLS reports (RFC 8460): the delivery engine counts each outbound TLS
//! session to a domain with an MTA-STS policy (`tlsrpt_sessions`, per UTC
//! day); once a period has ended, each such domain that publishes a
//! `_smtp._tls` record (parsed by mail-auth) gets one report — the RFC's
//! JSON, written by mail-auth's `TlsReport`, gzipped in its
//! `multipart/report; report-type=tlsrpt` message — DKIM-signed with the
//! postmaster domain's key and queued like any message to the record's
//! `mailto:` addresses. `https:` report addresses are not posted to (they
//! are named in the report's detail). Off by default
//! (`tlsReportsEnabled`).

use std::collections::BTreeMap;

use mail_auth::common::parse::TxtRecordParser;
use mail_auth::mta_sts::{ReportUri, TlsRpt};
use mail_auth::report::tlsrpt::{
    DateRange, FailureDetails, Policy, PolicyDetails, PolicyType, ResultType, Summary, TlsReport,
};

use super::dmarc_report::{Outgoing, mailto, queue_report};
use crate::config::{ConfigService, Snapshot};
use crate::observe::Observer;
use crate::observe::periods::period_end;
use crate::queue::Queue;
use crate::store::tlsrpt::{self as db, Group, TlsReportRow};
use std::sync::Arc;

/// The reporter; the counting is the delivery engine's.
pub struct TlsReports {
    observe: Arc<Observer>,
    /// One pass at a time (the daily tick and "send now").
    pass: tokio::sync::Mutex<()>,
}

impl TlsReports {
    pub fn new(observe: Arc<Observer>) -> TlsReports {
        TlsReports {
            observe,
            pass: tokio::sync::Mutex::new(()),
        }
    }
}

impl super::reports::Reporter for TlsReports {
    type Group = Group;
    type Made = TlsReportRow;
    const NAME: &'static str = "TLS reports";

    fn periods(&self) -> &crate::observe::periods::Periods {
        &self.observe.tls_periods
    }
    fn tracking(&self) -> &crate::observe::tracking::Tracker {
        &self.observe.tracking
    }
    fn pass(&self) -> &tokio::sync::Mutex<()> {
        &self.pass
    }
    fn enabled(snap: &Snapshot) -> bool {
        snap.transport.spec.tls_reports_enabled
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
    ) -> anyhow::Result<TlsReportRow> {
        let r = self
            .send(snap, config, queue, agents, group, before)
            .await?;
        tracing::info!(domain = %r.policy_domain, status = %r.status,
            successes = r.successes, failures = r.failures, "TLS report");
        Ok(r)
    }
    async fn done(
        pool: &sqlx::SqlitePool,
        group: &Group,
        made: &TlsReportRow,
    ) -> anyhow::Result<()> {
        db::done(pool, group, made).await
    }
    async fn forget(pool: &sqlx::SqlitePool, before: i64) -> anyhow::Result<u64> {
        db::forget(pool, before).await
    }
}

impl TlsReports {
    async fn send(
        &self,
        snap: &Snapshot,
        config: &ConfigService,
        queue: &Queue,
        agents: &super::Agents,
        g: &Group,
        before: i64,
    ) -> anyhow::Result<TlsReportRow> {
        let fqdn = snap.transport.spec.server_fqdn.to_string();
        let from = snap.postmaster();
        let domain = &g.policy_domain;
        let begin = g.period_start;
        let end = period_end(begin, before);
        let report_id = format!("{begin}.{domain}@{fqdn}");
        let report = to_report(g, &fqdn, &from, &report_id, end);
        let json = to_json(&report)?;
        let mut row = TlsReportRow {
            id: 0,
            created_ms: crate::observe::tracking::now_ms(),
            report_id: report_id.clone(),
            policy_domain: domain.clone(),
            begin_s: begin,
            end_s: end,
            successes: report
                .policies
                .iter()
                .map(|p| p.summary.total_success as i64)
                .sum(),
            failures: report
                .policies
                .iter()
                .map(|p| p.summary.total_failure as i64)
                .sum(),
            size: 0,
            recipients: vec![],
            status: "NotSent".into(),
            detail: None,
            message_id: None,
        };
        // Where the domain wants its reports.
        let servers = snap.transport.spec.external_lookup_servers();
        let dns = crate::routing::dns::Dns::default();
        let records = dns
            .txt(&servers, &format!("_smtp._tls.{domain}"))
            .await
            .unwrap_or_default();
        let mut to = vec![];
        let mut left_out = vec![];
        for record in records.iter().filter(|r| r.starts_with("v=TLSRPTv1")) {
            match TlsRpt::parse(record.as_bytes()) {
                Ok(r) => {
                    for uri in r.rua {
                        match uri {
                            ReportUri::Mail(m) => match mailto(&m) {
                                Some(a) if !to.contains(&a) => to.push(a),
                                Some(_) => {}
                                None => left_out.push(format!("{m}: not an address")),
                            },
                            ReportUri::Http(u) => {
                                left_out.push(format!("{u}: https reporting is not supported"))
                            }
                        }
                    }
                }
                Err(_) => left_out.push(format!("{record:?}: not a TLSRPTv1 record")),
            }
        }
        if to.is_empty() && left_out.is_empty() {
            left_out.push(format!("_smtp._tls.{domain} publishes no report address"));
        }
        row.detail = (!left_out.is_empty()).then(|| left_out.join("; "));
        if to.is_empty() {
            return Ok(row);
        }
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut e, json.as_bytes())?;
            e.finish()?
        };
        let mut message = vec![];
        report.write_rfc5322_from_bytes(
            domain,
            &fqdn,
            from.as_str(),
            to.iter().map(String::as_str),
            &gz,
            &mut message,
        )?;
        let head = String::from_utf8_lossy(&message[..message.len().min(8192)]).into_owned();
        let message_id =
            crate::smtp::server::session::data_header_value(head.as_bytes(), "message-id")
                .map(|v| v.trim().to_string())
                .unwrap_or_default();
        let subject = format!("Report Domain: {domain} Submitter: {fqdn} Report-ID: <{report_id}>");
        row.size = queue_report(
            snap,
            config,
            queue,
            agents,
            &self.observe.tracking,
            Outgoing {
                from: &from,
                to: &to,
                message_id: &message_id,
                subject: &subject,
                connector: "Ferry TLS reports",
                detail: format!(
                    "TLS report for {domain}: {} successful, {} failed sessions",
                    row.successes, row.failures
                ),
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

/// A group's rows as RFC 8460's report: one policy entry per policy
/// applied, its sessions summed, its failures by result and place.
fn to_report(g: &Group, fqdn: &str, contact: &str, report_id: &str, end: i64) -> TlsReport {
    let mut policies: BTreeMap<String, Policy> = BTreeMap::new();
    for row in &g.rows {
        let key = serde_json::to_string(&row.applied).unwrap_or_default();
        let p = policies.entry(key).or_insert_with(|| Policy {
            policy: PolicyDetails {
                policy_type: match row.applied.policy_type.as_str() {
                    "tlsa" => PolicyType::Tlsa,
                    _ => PolicyType::Sts,
                },
                policy_string: row.applied.policy_string.clone(),
                policy_domain: g.policy_domain.clone(),
                mx_host: row.applied.mx_host.clone(),
            },
            summary: Summary {
                total_success: 0,
                total_failure: 0,
            },
            failure_details: vec![],
        });
        let n = row.count.clamp(0, u32::MAX as i64) as u32;
        match &row.result {
            None => p.summary.total_success += n,
            Some(result) => {
                p.summary.total_failure += n;
                p.failure_details.push(FailureDetails {
                    result_type: serde_json::from_value::<ResultType>(serde_json::Value::String(
                        result.clone(),
                    ))
                    .unwrap_or_default(),
                    sending_mta_ip: None,
                    receiving_mx_hostname: row.at.receiving_mx_hostname.clone(),
                    receiving_mx_helo: None,
                    receiving_ip: row.at.receiving_ip.as_deref().and_then(|i| i.parse().ok()),
                    failed_session_count: n,
                    // RFC 8460 §4.3: additional-information is a URI; the
                    // error text is the failure-reason-code.
                    additional_information: None,
                    failure_reason_code: row.at.additional_information.clone(),
                });
            }
        }
    }
    TlsReport {
        organization_name: Some(fqdn.to_string()),
        date_range: DateRange::from_timestamps(g.period_start, end),
        contact_info: Some(contact.to_string()),
        report_id: report_id.to_string(),
        policies: policies.into_values().collect(),
    }
}

/// The report's JSON without the members mail-auth writes as `null` (RFC
/// 8460 leaves optional members out; a null is not a string).
fn to_json(report: &TlsReport) -> anyhow::Result<String> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|_, x| !x.is_null());
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(report)?;
    strip(&mut v);
    Ok(serde_json::to_string(&v)?)
}
