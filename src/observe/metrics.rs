//! Prometheus metrics: one registry per running Ferry (tests run several in
//! one process), encoded in the text exposition format at `/metrics`.
//!
//! Counters and histograms are updated where things happen; the queue
//! depth is a gauge filled from the queue database at scrape time, so it
//! is never out of step with what the queue viewer shows.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabel {
    pub connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueueLabels {
    pub next_hop: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TlsLabels {
    /// `inbound` (STARTTLS offered by a receive connector) or `outbound`.
    pub direction: String,
    /// `ok` or `failed`.
    pub result: String,
}

/// What became of an API request with a wrong token.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `refused` (401) or `throttled` (429).
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    /// `disk` or `memory`.
    pub resource: String,
}

fn connector(name: &str) -> ConnectorLabel {
    ConnectorLabel {
        connector: name.to_string(),
    }
}

/// A transport agent's decision, for `ferry_agent_actions`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct AgentLabels {
    pub agent: String,
    pub action: String,
}

/// A Spam Confidence Level, for `ferry_content_filter_scl`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
pub struct SclLabel {
    pub scl: i8,
}

pub struct Metrics {
    registry: Registry,
    /// Messages the Content Filter scanned, by the SCL they got.
    pub content_filter_scl: Family<SclLabel, Counter>,
    /// Decisions of the transport agents, by agent and action.
    pub agent_actions: Family<AgentLabels, Counter>,
    pub connections: Family<ConnectorLabel, Counter>,
    pub sessions: Family<ConnectorLabel, Gauge>,
    pub received: Family<ConnectorLabel, Counter>,
    pub delivered: Family<ConnectorLabel, Counter>,
    pub deferred: Family<ConnectorLabel, Counter>,
    pub failed: Family<ConnectorLabel, Counter>,
    pub queue_depth: Family<QueueLabels, Gauge>,
    pub delivery_latency: Histogram,
    pub tls: Family<TlsLabels, Counter>,
    pub auth_failures: Family<ConnectorLabel, Counter>,
    /// API requests with a wrong token (`refused`) and refused for too
    /// many of them (`throttled`).
    pub api_auth_failures: Family<ResultLabel, Counter>,
    /// 1 while a resource is past its back-pressure threshold.
    pub back_pressure: Family<ResourceLabel, Gauge>,
    pub reloads: Counter,
    pub reload_duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("ferry");
        let m = Metrics {
            content_filter_scl: Family::default(),
            agent_actions: Family::default(),
            connections: Family::default(),
            sessions: Family::default(),
            received: Family::default(),
            delivered: Family::default(),
            deferred: Family::default(),
            failed: Family::default(),
            queue_depth: Family::default(),
            // 10 ms … ~1.5 days.
            delivery_latency: Histogram::new(exponential_buckets(0.01, 4.0, 12)),
            tls: Family::default(),
            auth_failures: Family::default(),
            api_auth_failures: Family::default(),
            back_pressure: Family::default(),
            reloads: Counter::default(),
            // 0.1 ms … ~1.6 s.
            reload_duration: Histogram::new(exponential_buckets(0.0001, 4.0, 8)),
            registry: Registry::default(),
        };
        r.register(
            "smtp_connections",
            "SMTP connections accepted, by receive connector",
            m.connections.clone(),
        );
        r.register(
            "smtp_sessions",
            "SMTP sessions open now, by receive connector",
            m.sessions.clone(),
        );
        r.register(
            "messages_received",
            "Messages accepted (250 after DATA/BDAT), by receive connector",
            m.received.clone(),
        );
        r.register(
            "messages_delivered",
            "Messages handed to the next hop or a mailbox, by send connector",
            m.delivered.clone(),
        );
        r.register(
            "messages_deferred",
            "Delivery attempts that ended in a transient failure, by send connector",
            m.deferred.clone(),
        );
        r.register(
            "messages_failed",
            "Messages with recipients that failed permanently, by send connector",
            m.failed.clone(),
        );
        r.register(
            "queue_messages",
            "Recipients in the queue, by next hop and status",
            m.queue_depth.clone(),
        );
        r.register(
            "delivery_latency_seconds",
            "Time from acceptance to delivery at the next hop",
            m.delivery_latency.clone(),
        );
        r.register(
            "tls_handshakes",
            "TLS handshakes, by direction and result",
            m.tls.clone(),
        );
        r.register(
            "back_pressure",
            "1 while new mail is refused (452 4.3.1) because a resource crossed its threshold",
            m.back_pressure.clone(),
        );
        r.register(
            "auth_failures",
            "Failed SMTP AUTH attempts, by receive connector",
            m.auth_failures.clone(),
        );
        r.register(
            "api_auth_failures",
            "API requests with a wrong token (refused) or from an address locked out for them (throttled)",
            m.api_auth_failures.clone(),
        );
        r.register(
            "agent_actions",
            "Decisions of the transport agents (reject, allow, …), by agent and action",
            m.agent_actions.clone(),
        );
        r.register(
            "content_filter_scl",
            "Messages scanned by the Content Filter, by the SCL their verdict gave",
            m.content_filter_scl.clone(),
        );
        r.register(
            "config_reloads",
            "Configuration changes published to the running engines",
            m.reloads.clone(),
        );
        r.register(
            "config_reload_duration_seconds",
            "Time to load, check and activate a configuration change",
            m.reload_duration.clone(),
        );
        Metrics { registry: r, ..m }
    }

    pub fn scl(&self, scl: i8) {
        self.content_filter_scl
            .get_or_create(&SclLabel { scl })
            .inc();
    }

    pub fn agent_action(&self, agent: &str, action: &str) {
        self.agent_actions
            .get_or_create(&AgentLabels {
                agent: agent.to_string(),
                action: action.to_string(),
            })
            .inc();
    }

    pub fn connection(&self, name: &str) {
        self.connections.get_or_create(&connector(name)).inc();
    }

    /// Counts a session open until the guard is dropped.
    pub fn session(&self, name: &str) -> SessionGauge {
        let g = self.sessions.get_or_create_owned(&connector(name));
        g.inc();
        SessionGauge(g)
    }

    pub fn received(&self, name: &str) {
        self.received.get_or_create(&connector(name)).inc();
    }

    pub fn delivered(&self, name: &str, latency: Duration) {
        self.delivered.get_or_create(&connector(name)).inc();
        self.delivery_latency.observe(latency.as_secs_f64());
    }

    pub fn deferred(&self, name: &str) {
        self.deferred.get_or_create(&connector(name)).inc();
    }

    pub fn failed(&self, name: &str) {
        self.failed.get_or_create(&connector(name)).inc();
    }

    pub fn tls(&self, inbound: bool, ok: bool) {
        self.tls
            .get_or_create(&TlsLabels {
                direction: if inbound { "inbound" } else { "outbound" }.into(),
                result: if ok { "ok" } else { "failed" }.into(),
            })
            .inc();
    }

    pub fn api_auth(&self, result: &str) {
        self.api_auth_failures
            .get_or_create(&ResultLabel {
                result: result.to_string(),
            })
            .inc();
    }

    pub fn auth_failure(&self, name: &str) {
        self.auth_failures.get_or_create(&connector(name)).inc();
    }

    pub fn set_back_pressure(&self, resource: &str, on: bool) {
        self.back_pressure
            .get_or_create(&ResourceLabel {
                resource: resource.into(),
            })
            .set(on as i64);
    }

    pub fn reload(&self, took: Duration) {
        self.reloads.inc();
        self.reload_duration.observe(took.as_secs_f64());
    }

    /// Replaces the queue-depth gauges with `(next hop, status, count)` rows.
    pub fn set_queue_depth(&self, rows: &[(String, String, i64)]) {
        self.queue_depth.clear();
        for (hop, status, n) in rows {
            self.queue_depth
                .get_or_create(&QueueLabels {
                    next_hop: hop.clone(),
                    status: status.clone(),
                })
                .set(*n);
        }
    }

    /// The text exposition format (version 0.0.4 compatible).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Decrements the open-sessions gauge when the session ends.
pub struct SessionGauge(Gauge);

impl Drop for SessionGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}
