//! Shared counters behind the connection and rate limits of receive
//! connectors: concurrent connections per connector and per source
//! (MaxInboundConnection, MaxInboundConnectionPerSource and its percentage),
//! and messages per minute (MessageRateLimit).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::model::ReceiveConnector;
use crate::model::receive_connector::MessageRateSource;

#[derive(Default)]
struct Counts {
    per_connector: HashMap<Uuid, u64>,
    per_source: HashMap<(Uuid, IpAddr), u64>,
    /// Acceptance times per rate key, oldest first.
    rates: HashMap<(Uuid, String), VecDeque<Instant>>,
}

#[derive(Clone, Default)]
pub struct Limiter {
    inner: Arc<Mutex<Counts>>,
}

/// Why a connection is refused.
pub enum Refusal {
    Server,
    Source,
}

/// Holds one connection's place in the counters until dropped.
pub struct ConnectionGuard {
    limiter: Limiter,
    connector: Uuid,
    ip: IpAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut c = self.limiter.inner.lock().expect("not poisoned");
        if let Some(n) = c.per_connector.get_mut(&self.connector) {
            *n = n.saturating_sub(1);
        }
        if let Some(n) = c.per_source.get_mut(&(self.connector, self.ip)) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_source.remove(&(self.connector, self.ip));
            }
        }
    }
}

impl Limiter {
    /// Admits a connection or says which limit it would break.
    pub fn admit(
        &self,
        id: Uuid,
        c: &ReceiveConnector,
        ip: IpAddr,
    ) -> Result<ConnectionGuard, Refusal> {
        let mut counts = self.inner.lock().expect("not poisoned");
        let total = counts.per_connector.get(&id).copied().unwrap_or(0);
        let from_source = counts.per_source.get(&(id, ip)).copied().unwrap_or(0);
        if !c.max_inbound_connection.allows(total + 1) {
            return Err(Refusal::Server);
        }
        let mut per_source = c.max_inbound_connection_per_source.value();
        if let Some(max) = c.max_inbound_connection.value() {
            let pct = (max * c.max_inbound_connection_percentage_per_source as u64 / 100).max(1);
            per_source = Some(per_source.map_or(pct, |p| p.min(pct)));
        }
        if per_source.is_some_and(|p| from_source + 1 > p) {
            return Err(Refusal::Source);
        }
        *counts.per_connector.entry(id).or_default() += 1;
        *counts.per_source.entry((id, ip)).or_default() += 1;
        Ok(ConnectionGuard {
            limiter: self.clone(),
            connector: id,
            ip,
        })
    }

    fn rate_keys(c: &ReceiveConnector, ip: IpAddr, user: Option<&str>) -> Vec<String> {
        let by_ip = format!("ip:{ip}");
        let by_user = user.map(|u| format!("user:{}", u.to_ascii_lowercase()));
        match c.message_rate_source {
            MessageRateSource::None => vec![],
            MessageRateSource::IPAddress => vec![by_ip],
            MessageRateSource::User => by_user.into_iter().collect(),
            MessageRateSource::All => std::iter::once(by_ip).chain(by_user).collect(),
        }
    }

    /// Whether another message may start now under MessageRateLimit (per minute).
    pub fn rate_allows(
        &self,
        id: Uuid,
        c: &ReceiveConnector,
        ip: IpAddr,
        user: Option<&str>,
    ) -> bool {
        let Some(limit) = c.message_rate_limit.value() else {
            return true;
        };
        let mut counts = self.inner.lock().expect("not poisoned");
        let now = Instant::now();
        Self::rate_keys(c, ip, user).into_iter().all(|k| {
            let q = counts.rates.entry((id, k)).or_default();
            while q
                .front()
                .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
            {
                q.pop_front();
            }
            (q.len() as u64) < limit
        })
    }

    /// Counts an accepted message against the rate limit.
    pub fn record_message(&self, id: Uuid, c: &ReceiveConnector, ip: IpAddr, user: Option<&str>) {
        if c.message_rate_limit.value().is_none() {
            return;
        }
        let mut counts = self.inner.lock().expect("not poisoned");
        for k in Self::rate_keys(c, ip, user) {
            counts
                .rates
                .entry((id, k))
                .or_default()
                .push_back(Instant::now());
        }
    }
}
