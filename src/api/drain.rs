//! `/api/v1/server/drain` and `/resume`: Exchange's maintenance mode (and
//! KumoMTA's `xfer`). A draining server refuses new sessions with
//! `421 4.3.2`, delivers what it holds and, given a send connector to
//! another server (`transferVia`), hands that server every message it
//! still holds, each keeping its envelope, DSN requests and original
//! arrival time. `resume` undoes it.

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::JsonBody;
use super::problem::{ApiError, Problem};
use crate::config::setting;
use crate::model::auth::SmartHostAuthMechanism;
use crate::model::drain::DrainState;
use crate::model::{Invalid, from_json};
use crate::queue::delivery::BulkAction;

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DrainRequest {
    /// A send connector to another server: smart hosts (that server),
    /// `smartHostAuthMechanism` BasicAuthRequireTLS (it authenticates, over
    /// TLS). Every message is handed to it, now and as long as the drain
    /// lasts. Left out: messages are delivered as they route.
    #[schema(schema_with = crate::model::schema::object_name)]
    pub transfer_via: Option<String>,
}

/// Whether the server is draining, and how far.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainStatus {
    /// `Normal`, `Draining` (messages left) or `Drained` (none left).
    pub state: String,
    pub transfer_via: Option<String>,
    /// Messages still in the queue.
    pub queued: i64,
}

pub async fn status(s: &AppState) -> Result<DrainStatus, ApiError> {
    let snap = s.config.snapshot();
    let d = &snap.drain.spec;
    let queued = s.queue.count().await.map_err(internal)?;
    Ok(DrainStatus {
        state: match (d.draining, queued) {
            (false, _) => "Normal",
            (true, 0) => "Drained",
            (true, _) => "Draining",
        }
        .into(),
        transfer_via: d.transfer_via.clone().filter(|_| d.draining),
        queued,
    })
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::from(crate::config::ServiceError::Internal(e))
}

/// Routes every queued message again (to the transfer connector, or back
/// to where it routes once the drain ends).
async fn reroute_all(s: &AppState) -> Result<(), ApiError> {
    let all = crate::store::queue::BulkFilter::default();
    let ids: Vec<i64> = crate::store::queue::select_messages(s.queue.pool(), &all)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|m| m.id)
        .collect();
    s.delivery
        .bulk(BulkAction::Resubmit, &ids)
        .await
        .map_err(internal)?;
    Ok(())
}

/// Starts draining: new sessions get `421 4.3.2`; with `transferVia`,
/// every queued message is routed to that connector.
#[utoipa::path(post, path = "/api/v1/server/drain", tag = "server",
    request_body = DrainRequest,
    responses((status = 200, body = DrainStatus),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn drain(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<DrainStatus>, ApiError> {
    let req: DrainRequest = from_json(body)?;
    let transfer = req.transfer_via.clone();
    s.config
        .update_setting(setting::SERVER_DRAIN, |s| &s.drain, None, |snap, _| {
            if let Some(name) = &transfer {
                let Some(c) = snap
                    .send_connectors
                    .iter()
                    .find(|c| c.spec.name.eq_ignore_ascii_case(name))
                else {
                    return Err(Invalid::field(
                        "transferVia",
                        format!("no send connector named '{name}' exists"),
                    )
                    .into());
                };
                let c = &c.spec;
                let why = if !c.enabled {
                    Some("is disabled")
                } else if c.dns_routing_enabled || c.smart_hosts.is_empty() {
                    Some("routes by DNS: a transfer goes to the other server, its smart host")
                } else if c.smart_host_auth_mechanism != SmartHostAuthMechanism::BasicAuthRequireTls {
                    Some(
                        "must authenticate over TLS (smartHostAuthMechanism BasicAuthRequireTLS): \
                         a transfer carries the organization's arrival times, which the other \
                         server takes only from a server login",
                    )
                } else {
                    None
                };
                if let Some(why) = why {
                    return Err(
                        Invalid::field("transferVia", format!("'{}' {why}", c.name)).into()
                    );
                }
            }
            Ok(DrainState {
                draining: true,
                transfer_via: transfer.clone(),
            })
        })
        .await?;
    if req.transfer_via.is_some() {
        reroute_all(&s).await?;
    }
    Ok(Json(status(&s).await?))
}

/// Ends a drain: new sessions are served again, and messages waiting for
/// the transfer route as they would.
#[utoipa::path(post, path = "/api/v1/server/resume", tag = "server",
    responses((status = 200, body = DrainStatus)))]
pub async fn resume(State(s): State<AppState>) -> Result<Json<DrainStatus>, ApiError> {
    let was = s.config.snapshot().drain.spec.clone();
    s.config
        .update_setting(
            setting::SERVER_DRAIN,
            |s| &s.drain,
            None,
            |_, _| Ok(DrainState::default()),
        )
        .await?;
    if was.draining && was.transfer_via.is_some() {
        reroute_all(&s).await?;
    }
    Ok(Json(status(&s).await?))
}
