//! The categorizer step of the engine: every unrouted recipient gets a
//! delivery queue (or fails as too large), in one group commit, with one
//! ROUTE event per message and queue.

use super::*;

const TOO_LARGE: &str =
    "550 5.3.4 The message is larger than every send connector that could carry it allows";

impl DeliveryEngine {
    /// Categorizer: every unrouted recipient gets a delivery queue.
    pub(super) async fn route_pending(&self, snap: &Snapshot) -> anyhow::Result<()> {
        let pool = self.queue.pool();
        // Every decision goes into one group commit; one ROUTE event per
        // message and delivery queue.
        let mut decisions = vec![];
        let mut routed: Vec<(db::Unrouted, crate::routing::QueueKey, Vec<String>)> = vec![];
        let mut index: HashMap<(i64, routing::HopKey), usize> = HashMap::new();
        for r in db::unrouted(pool, 5000).await? {
            let route = match &r.address.domain_name() {
                Some(d) => routing::route(snap, d, r.size as u64),
                None => Route::Unreachable {
                    reason: format!("the recipient {} has no domain to route on", r.address),
                },
            };
            match route.queue_key() {
                Some(key) => {
                    decisions.push((r.message, r.idx, key.clone()));
                    match index.get(&(r.message, key.key.clone())) {
                        Some(&i) => routed[i].2.push(r.address.to_string()),
                        None => {
                            index.insert((r.message, key.key.clone()), routed.len());
                            let address = r.address.to_string();
                            routed.push((r, key, vec![address]));
                        }
                    }
                }
                None => {
                    // Rare: fetch the whole message for the outcome.
                    if let Some(m) = db::message(pool, r.message).await? {
                        let outcome = Outcome {
                            results: vec![super::outcome::RecipientResult {
                                idx: r.idx,
                                address: r.address.clone(),
                                status: RecipientStatus::Failed,
                                text: TOO_LARGE.into(),
                                next_attempt_ms: 0,
                            }],
                            ..Outcome::new(&m, Source::Routing)
                        };
                        self.record(snap, outcome).await?;
                    }
                }
            }
        }
        self.queue.route(decisions).await?;
        for (r, key, recipients) in routed {
            self.observe.tracking.record(Event {
                event: EventKind::Route,
                source: Source::Routing,
                internal_id: r.message,
                message_id: r.message_id,
                sender: r.sender.to_string(),
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
}
