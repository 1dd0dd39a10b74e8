//! `/api/v1/send-connectors`: New-, Get-, Set- and Remove-SendConnector.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{List, SendConnectorView};
use crate::config::{Change, ServiceError, Snapshot};
use crate::model::{CredentialKind, Invalid, SendConnector};
use crate::store::Stored;

fn view(snap: &Snapshot, s: &Stored<SendConnector>) -> SendConnectorView {
    super::views::send_view(snap, s)
}

/// The credential and pinned certificate a connector names must exist.
pub(super) fn check_references(snap: &Snapshot, c: &SendConnector) -> Result<(), ServiceError> {
    if let Some(name) = &c.authentication_credential {
        match snap
            .credentials
            .iter()
            .find(|k| k.spec.name.eq_ignore_ascii_case(name))
        {
            None => {
                return Err(Invalid::field(
                    "authenticationCredential",
                    format!("no credential named '{name}' exists"),
                )
                .into());
            }
            Some(k) if k.spec.kind != CredentialKind::SmartHost => {
                return Err(Invalid::field(
                    "authenticationCredential",
                    format!("'{name}' is a login; a send connector needs a SmartHost credential"),
                )
                .into());
            }
            _ => {}
        }
    }
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

#[utoipa::path(get, path = "/api/v1/send-connectors", tag = "send-connectors",
    responses((status = 200, body = List<SendConnectorView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<SendConnectorView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap
            .send_connectors
            .iter()
            .map(|c| view(&snap, c))
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/send-connectors/{id}", tag = "send-connectors",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 200, body = SendConnectorView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<SendConnectorView>, ApiError> {
    let snap = s.config.snapshot();
    let c = crate::config::find::<SendConnector>(&snap, &id)
        .ok_or_else(|| ApiError::not_found(format!("send connector '{id}' does not exist")))?;
    Ok(ok(c.version, view(&snap, c)))
}

#[utoipa::path(post, path = "/api/v1/send-connectors", tag = "send-connectors",
    request_body = super::openapi::SendConnectorCreate,
    responses((status = 201, body = SendConnectorView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<SendConnectorView>, ApiError> {
    let stored = s
        .config
        .create::<SendConnector>(|snap, _| {
            let c = SendConnector::from_create(&body, &snap.ctx)?;
            check_references(snap, &c)?;
            Ok(Change::of(c))
        })
        .await?;
    Ok(created(stored.version, view(&s.config.snapshot(), &stored)))
}

#[utoipa::path(patch, path = "/api/v1/send-connectors/{id}", tag = "send-connectors",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::SendConnectorPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = SendConnectorView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<SendConnectorView>, ApiError> {
    let stored = s
        .config
        .update::<SendConnector>(&id, if_match, |snap, current| {
            let c = current.spec.patched(&body, &snap.ctx)?;
            check_references(snap, &c)?;
            Ok(Change::of(c))
        })
        .await?;
    Ok(ok(stored.version, view(&s.config.snapshot(), &stored)))
}

#[utoipa::path(delete, path = "/api/v1/send-connectors/{id}", tag = "send-connectors",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<SendConnector>(&id, if_match, |_, _| Ok(()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
