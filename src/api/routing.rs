//! `/api/v1/routing/explain`: where a recipient's mail goes and why — the
//! accepted domain, each send connector's verdict (address space, scope by
//! sourceTransportServers, size, specificity, cost, name), and the next hop
//! or the reason it is Unreachable. The answer is the router's own.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::JsonBody;
use super::problem::{ApiError, Problem};
use crate::routing::Route;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RouteQuestion {
    #[schema(schema_with = crate::model::schema::email_address)]
    pub recipient: String,
    /// The sender does not change the route (spec rules 14–17); it is
    /// taken so a question can be asked as a message would be.
    #[schema(schema_with = crate::model::schema::optional_email_address)]
    pub sender: Option<String>,
    /// The message's size in bytes (default 0): connectors too small for
    /// it are passed over.
    #[schema(minimum = 0)]
    pub size: Option<u64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendConnectorVerdict {
    pub id: uuid::Uuid,
    pub name: String,
    /// `Selected`, `Lost`, `TooSmall`, `NotASource`, `NoAddressSpace` or `Disabled`.
    pub verdict: String,
    pub address_space: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RouteAnswer {
    pub domain: String,
    /// `Mailbox`, `Connector`, `Unreachable` or `TooLarge` (returned with an NDR).
    pub outcome: String,
    /// The send connector that carries it.
    pub connector: Option<String>,
    /// The delivery queue it waits in, as the queue viewer names it (a
    /// domain for MX and mailbox delivery, the smart hosts, or Unreachable).
    pub queue: Option<String>,
    /// The queue's delivery type (`DnsConnectorDelivery`, `SmartHostConnectorDelivery`,
    /// `MailboxDelivery`, `Unreachable`).
    pub delivery_type: Option<String>,
    /// Why it is Unreachable: the text the recipient's last error and its
    /// ROUTE tracking event carry.
    pub reason: Option<String>,
    /// Each step of the decision, in words.
    pub steps: Vec<String>,
    /// Every send connector, the selected one first.
    pub connectors: Vec<SendConnectorVerdict>,
}

#[utoipa::path(post, path = "/api/v1/routing/explain", tag = "routing",
    request_body = RouteQuestion,
    responses((status = 200, body = RouteAnswer),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn explain(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<RouteAnswer>, ApiError> {
    let q: RouteQuestion = crate::model::from_json(body)?;
    let address = crate::model::Address::parse(q.recipient.clone())
        .map_err(|e| crate::model::Invalid::field("recipient", e))?;
    let Some(domain) = address.domain_name() else {
        return Err(crate::model::Invalid::field("recipient", "has no domain to route on").into());
    };
    let snap = s.config.snapshot();
    let mut e = crate::routing::explain(&snap, &domain, q.size.unwrap_or(0));
    if let Some(sender) = &q.sender {
        e.steps.insert(
            0,
            format!("the sender {sender} does not change the route: only the recipient's domain and the size do"),
        );
    }
    let key = e.route.queue_key();
    let (outcome, connector, reason) = match &e.route {
        Route::Mailbox { .. } => ("Mailbox", None, None),
        Route::Connector { name, .. } => ("Connector", Some(name.clone()), None),
        Route::Unreachable { reason } => ("Unreachable", None, Some(reason.clone())),
        Route::TooLarge => ("TooLarge", None, None),
    };
    Ok(Json(RouteAnswer {
        domain: domain.to_string(),
        outcome: outcome.into(),
        connector,
        queue: key.as_ref().map(|k| k.display.clone()),
        delivery_type: key.as_ref().map(|k| k.delivery_type.to_string()),
        reason,
        steps: e.steps,
        connectors: e
            .connectors
            .into_iter()
            .map(|c| SendConnectorVerdict {
                id: c.id,
                name: c.name,
                verdict: c.verdict.into(),
                address_space: c.address_space,
                reason: c.reason,
            })
            .collect(),
    }))
}
