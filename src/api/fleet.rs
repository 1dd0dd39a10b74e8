//! `/api/v1/servers`: the fleet's servers (`--config-store postgres://…`)
//! with their role, version, last heartbeat, configuration revision and
//! queue totals; one server alone without a fleet.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use time::OffsetDateTime;
use utoipa::ToSchema;

use super::AppState;
use super::problem::ApiError;
use crate::store::fleet::ServerEntry;

/// A server missing this many seconds of heartbeats is shown as not alive.
const ALIVE_WITHIN: i64 = 20;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetServer {
    #[serde(flatten)]
    pub server: ServerEntry,
    /// Messages in its queue at its last heartbeat.
    pub queued_messages: i64,
    /// Whether its last heartbeat is recent (within 20 seconds).
    pub alive: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetView {
    /// `postgres` (a fleet) or `sqlite` (this server alone).
    pub config_store: String,
    /// The shared configuration's revision this server runs (a fleet).
    pub revision: Option<i64>,
    /// Whether this server reaches the fleet's PostgreSQL now.
    pub connected: Option<bool>,
    pub items: Vec<FleetServer>,
}

#[utoipa::path(get, path = "/api/v1/servers", tag = "server",
    responses((status = 200, body = FleetView),
              (status = 503, body = super::problem::Problem, content_type = "application/problem+json")))]
pub async fn list(State(s): State<AppState>) -> Result<Json<FleetView>, ApiError> {
    let now = OffsetDateTime::now_utc();
    let view = |e: ServerEntry| {
        let queued_messages = serde_json::from_str::<serde_json::Value>(&e.queue)
            .ok()
            .and_then(|q| q["messages"].as_i64())
            .unwrap_or(-1);
        FleetServer {
            alive: (now - e.heartbeat_at).whole_seconds() <= ALIVE_WITHIN,
            queued_messages,
            server: e,
        }
    };
    match s.config.fleet() {
        Some(fleet) => {
            let servers = fleet.servers().await.map_err(|e| {
                ApiError::new(
                    axum::http::StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "The shared configuration store is unavailable",
                    format!("the fleet's PostgreSQL is unreachable: {e:#}"),
                )
            })?;
            Ok(Json(FleetView {
                config_store: "postgres".into(),
                revision: Some(fleet.revision()),
                connected: Some(fleet.connected()),
                items: servers.into_iter().map(view).collect(),
            }))
        }
        None => {
            let snap = s.config.snapshot();
            let messages = s.queue.count().await.unwrap_or(-1);
            Ok(Json(FleetView {
                config_store: "sqlite".into(),
                revision: None,
                connected: None,
                items: vec![view(ServerEntry {
                    name: snap.ctx.server_name.clone(),
                    role: snap.ctx.role.as_str().into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    fqdn: snap.ctx.fqdn.to_string(),
                    api: String::new(),
                    revision: 0,
                    started_at: now,
                    heartbeat_at: now,
                    queue: serde_json::json!({ "messages": messages }).to_string(),
                })],
            }))
        }
    }
}
