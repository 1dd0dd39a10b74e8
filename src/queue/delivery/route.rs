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
            self.observe.tracking.record(route_event(
                Routed {
                    internal_id: r.message,
                    message_id: r.message_id,
                    sender: r.sender.to_string(),
                    size: r.size,
                    subject: r.subject,
                },
                &key,
                recipients,
            ));
        }
        Ok(())
    }
}

/// Routes a message's recipients as it is accepted, with the configuration
/// of that moment, so they are written into their delivery queues in the
/// commit that accepts them: no second write and no categorizer pass
/// between the `250` and the first delivery attempt.
///
/// Left to the categorizer: a recipient without a domain, one no connector
/// can carry at this size (its NDR is the categorizer's), and one that
/// would wait in Unreachable — that queue is routed again on every
/// configuration change (rule 17), and a change racing this commit must
/// not leave a recipient behind in it.
pub(crate) fn route_at_acceptance(snap: &Snapshot, recipients: &mut [Recipient], size: u64) {
    for r in recipients {
        let Some(domain) = r.address.domain_name() else {
            continue;
        };
        r.route = routing::route(snap, &domain, size)
            .queue_key()
            .filter(|k| k.key != routing::HopKey::Unreachable);
    }
}

/// A message as its ROUTE events name it.
#[derive(Clone)]
pub(crate) struct Routed {
    pub internal_id: i64,
    pub message_id: String,
    pub sender: String,
    pub size: i64,
    pub subject: Option<String>,
}

/// The ROUTE events of a message routed at acceptance: one per delivery
/// queue, as the categorizer records them.
pub(crate) fn routed_at_acceptance(message: Routed, recipients: &[Recipient]) -> Vec<Event> {
    let mut queues: Vec<(&routing::QueueKey, Vec<String>)> = vec![];
    for r in recipients {
        let Some(key) = &r.route else { continue };
        match queues.iter_mut().find(|(k, _)| k.key == key.key) {
            Some((_, list)) => list.push(r.address.to_string()),
            None => queues.push((key, vec![r.address.to_string()])),
        }
    }
    queues
        .into_iter()
        .map(|(key, list)| route_event(message.clone(), key, list))
        .collect()
}

fn route_event(m: Routed, key: &routing::QueueKey, recipients: Vec<String>) -> Event {
    Event {
        event: EventKind::Route,
        source: Source::Routing,
        internal_id: m.internal_id,
        message_id: m.message_id,
        sender: m.sender,
        recipients,
        size: Some(m.size),
        subject: m.subject,
        connector: key.connector.clone(),
        next_hop: Some(key.display.clone()),
        detail: Some(match &key.reason {
            Some(why) => format!("{}: {why}", key.delivery_type),
            None => key.delivery_type.to_string(),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::builder::SnapshotBuilder;
    use crate::model::Role;
    use serde_json::json;

    fn rcpt(a: &str) -> Recipient {
        Recipient {
            address: Address::parse(a).unwrap(),
            orcpt: None,
            notify: 0,
            route: None,
        }
    }

    /// Routed at acceptance: a recipient a connector carries; left to the
    /// categorizer: one that would wait in Unreachable and one too large for
    /// every connector (the categorizer bounces it).
    #[test]
    fn recipients_are_routed_as_they_are_accepted_unless_unreachable_or_too_large() {
        let snap = SnapshotBuilder::new(Role::Edge)
            .with_send_connector(
                json!({"name": "Fabrikam", "addressSpaces": ["fabrikam.test"],
                "smartHosts": ["10.0.0.1"], "maxMessageSize": 1_000_000}),
            )
            .build();
        let mut list = vec![
            rcpt("a@fabrikam.test"),
            rcpt("b@nowhere.test"),
            rcpt("c@fabrikam.test"),
        ];
        route_at_acceptance(&snap, &mut list, 10_000);
        let key = list[0].route.clone().expect("routed");
        assert_eq!(key.display, "[10.0.0.1]");
        assert_eq!(key.connector.as_deref(), Some("Fabrikam"));
        assert!(list[1].route.is_none(), "{:?}", list[1].route);
        assert_eq!(list[2].route.as_ref(), Some(&key));

        // One ROUTE event per queue, naming its recipients.
        let events = routed_at_acceptance(
            Routed {
                internal_id: 7,
                message_id: "<m@test>".into(),
                sender: "s@test".into(),
                size: 10_000,
                subject: None,
            },
            &list,
        );
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].recipients, ["a@fabrikam.test", "c@fabrikam.test"]);
        assert_eq!(events[0].next_hop.as_deref(), Some("[10.0.0.1]"));
        assert_eq!(events[0].internal_id, 7);

        let mut big = vec![rcpt("a@fabrikam.test")];
        route_at_acceptance(&snap, &mut big, 2_000_000);
        assert!(big[0].route.is_none());
    }
}
