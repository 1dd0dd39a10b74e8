//! `/api/v1/receive-connectors`: New-, Get-, Set- and Remove-ReceiveConnector.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{List, ReceiveConnectorView, receive_view};
use crate::config::{Change, ServiceError, Snapshot};
use crate::model::{Invalid, ReceiveConnector};
use uuid::Uuid;

/// Rules that involve other objects: binding and range overlaps (spec rule
/// 5) and a pinned certificate that must exist.
fn check_references(
    snap: &Snapshot,
    c: &ReceiveConnector,
    id: Option<Uuid>,
) -> Result<(), ServiceError> {
    c.check_against(
        snap.receive_connectors
            .iter()
            .filter(|o| Some(o.id) != id)
            .map(|o| &o.spec),
    )?;
    if let Some(pin) = &c.tls_certificate_name
        && !snap
            .certificate_info
            .values()
            .any(|i| &i.tls_certificate_name == pin)
    {
        return Err(Invalid::field(
            "tlsCertificateName",
            "no stored certificate has that issuer and subject",
        )
        .into());
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/receive-connectors", tag = "receive-connectors",
    responses((status = 200, body = List<ReceiveConnectorView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<ReceiveConnectorView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap
            .receive_connectors
            .iter()
            .map(|c| receive_view(&snap, &s.smtp, c))
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/receive-connectors/{id}", tag = "receive-connectors",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 200, body = ReceiveConnectorView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<ReceiveConnectorView>, ApiError> {
    let snap = s.config.snapshot();
    let c = crate::config::find::<ReceiveConnector>(&snap, &id)
        .ok_or_else(|| ApiError::not_found(format!("receive connector '{id}' does not exist")))?;
    Ok(ok(c.version, receive_view(&snap, &s.smtp, c)))
}

#[utoipa::path(post, path = "/api/v1/receive-connectors", tag = "receive-connectors",
    request_body = super::openapi::ReceiveConnectorCreate,
    responses((status = 201, body = ReceiveConnectorView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<ReceiveConnectorView>, ApiError> {
    let stored = s
        .config
        .create::<ReceiveConnector>(|snap, _| {
            let c = ReceiveConnector::from_create(&body, &snap.ctx)?;
            check_references(snap, &c, None)?;
            Ok(Change::of(c))
        })
        .await?;
    Ok(created(
        stored.version,
        receive_view(&s.config.snapshot(), &s.smtp, &stored),
    ))
}

#[utoipa::path(patch, path = "/api/v1/receive-connectors/{id}", tag = "receive-connectors",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::ReceiveConnectorPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = ReceiveConnectorView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<ReceiveConnectorView>, ApiError> {
    let stored = s
        .config
        .update::<ReceiveConnector>(&id, if_match, |snap, current| {
            let c = current.spec.patched(&body, &snap.ctx)?;
            check_references(snap, &c, Some(current.id))?;
            Ok(Change::of(c))
        })
        .await?;
    Ok(ok(
        stored.version,
        receive_view(&s.config.snapshot(), &s.smtp, &stored),
    ))
}

#[utoipa::path(delete, path = "/api/v1/receive-connectors/{id}", tag = "receive-connectors",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<ReceiveConnector>(&id, if_match, |_, _| Ok(()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
