//! Recipient validation by callout (address verification): the Edge asks
//! the next hop of a recipient's domain — through the send connector, TLS
//! and AUTH that mail to it would take — `MAIL FROM:<>`, `RCPT TO`, `RSET`,
//! and keeps the answer for the directory's positive or negative TTL. A
//! next hop that cannot be asked or answers 4xx is `Unavailable` (the
//! session answers `450 4.1.1`), never a guess either way.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::cache::TtlCache;

use crate::config::Snapshot;
use crate::model::Address;
use crate::observe::Observer;
use crate::routing::HopKey;
use crate::routing::dns::Dns;
use crate::routing::next_hop;
use crate::secrets::SecretBox;
use crate::smtp::client::{SmtpClient, policy};

#[derive(Default)]
pub struct Callout {
    dns: Dns,
    /// Known (true) or unknown, per address.
    cache: TtlCache<bool>,
}

/// What the next hop said about an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verified {
    Known,
    /// Refused for good, with the next hop's reply.
    Unknown(String),
    /// Could not ask, or a 4xx answer: try again later.
    Unavailable(String),
}

impl Callout {
    /// Whether the next hop knows `address`; `asked` tells whether this
    /// call asked it (false: the answer came from the cache).
    pub async fn verify(
        &self,
        snap: &Snapshot,
        secrets: &SecretBox,
        observe: &Arc<Observer>,
        address: &Address,
        ttl: (Duration, Duration),
    ) -> (Verified, bool) {
        let key = address.as_str().to_ascii_lowercase();
        if let Some(known) = self.cache.get(&key) {
            let v = if known {
                Verified::Known
            } else {
                Verified::Unknown("cached".into())
            };
            return (v, false);
        }
        let v = self.ask(snap, secrets, observe, address).await;
        let keep = match &v {
            Verified::Known => Some((true, ttl.0)),
            Verified::Unknown(_) => Some((false, ttl.1)),
            Verified::Unavailable(_) => None,
        };
        if let Some((known, for_)) = keep {
            self.cache.put(key, known, for_);
        }
        (v, true)
    }

    async fn ask(
        &self,
        snap: &Snapshot,
        secrets: &SecretBox,
        observe: &Arc<Observer>,
        address: &Address,
    ) -> Verified {
        let Some(domain) = address.domain_name() else {
            return Verified::Unavailable("the address has no domain".into());
        };
        let Some(HopKey::Connector { id, next_hop }) = crate::routing::route(snap, &domain, 0)
            .queue_key()
            .map(|k| k.key)
        else {
            return Verified::Unavailable(format!("no send connector leads to {domain}"));
        };
        let Some(connector) = snap
            .send_connectors
            .iter()
            .find(|c| c.id == id && c.spec.enabled)
        else {
            return Verified::Unavailable("the send connector is gone".into());
        };
        let targets =
            match next_hop::connector_targets(&self.dns, snap, &connector.spec, &next_hop).await {
                Ok(t) => t,
                Err(e) => return Verified::Unavailable(format!("{e:?}")),
            };
        let cfg = match policy::for_connector(snap, &connector.spec, secrets, None, observe) {
            Ok(c) => c,
            Err(e) => return Verified::Unavailable(format!("{e:#}")),
        };
        // A callout holds up a session: it gets at most 30 s in all.
        let asked = tokio::time::timeout(Duration::from_secs(30), async {
            let mut last = String::from("no host to ask");
            for t in &targets {
                for ip in &t.addresses {
                    let addr = SocketAddr::new(*ip, connector.spec.port);
                    match SmtpClient::open(addr, &t.name, &cfg).await {
                        Ok(mut client) => {
                            let r = client.verify(address).await;
                            client.quit().await;
                            return match r {
                                Ok(reply) if reply.is_positive() => Verified::Known,
                                Ok(reply) if reply.is_permanent() => {
                                    Verified::Unknown(reply.to_string())
                                }
                                Ok(reply) => Verified::Unavailable(reply.to_string()),
                                Err(e) => Verified::Unavailable(e.message),
                            };
                        }
                        Err(e) => last = format!("{} [{ip}]: {e}", t.name),
                    }
                }
            }
            Verified::Unavailable(last)
        })
        .await;
        asked.unwrap_or_else(|_| Verified::Unavailable("the callout timed out".into()))
    }
}
