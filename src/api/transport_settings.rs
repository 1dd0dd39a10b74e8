//! `/api/v1/transport-settings`: Get- and Set-TransportServer, plus the
//! postmaster address of Set-TransportConfig.

use axum::extract::State;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, ok};
use super::problem::{ApiError, Problem};
use super::views::TransportSettingsView;
use crate::config::Snapshot;

fn view(snap: &Snapshot) -> TransportSettingsView {
    TransportSettingsView {
        version: snap.transport.version,
        updated_at: snap.transport.updated_at,
        role: snap.ctx.role,
        server_name: snap.ctx.server_name.clone(),
        settings: snap.transport.spec.clone(),
        effective_postmaster_address: snap.postmaster(),
    }
}

#[utoipa::path(get, path = "/api/v1/transport-settings", tag = "transport-settings",
    responses((status = 200, body = TransportSettingsView, headers(("ETag" = String)))))]
pub async fn get(State(s): State<AppState>) -> Tagged<TransportSettingsView> {
    let snap = s.config.snapshot();
    ok(snap.transport.version, view(&snap))
}

#[utoipa::path(patch, path = "/api/v1/transport-settings", tag = "transport-settings",
    params(("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::TransportSettingsPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = TransportSettingsView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<TransportSettingsView>, ApiError> {
    s.config
        .update_transport_settings(if_match, |snap| {
            snap.transport
                .spec
                .patched(&body)
                .map_err(crate::config::ServiceError::against(&body))
        })
        .await?;
    let snap = s.config.snapshot();
    Ok(ok(snap.transport.version, view(&snap)))
}
