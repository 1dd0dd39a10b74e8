//! `/api/v1/acme-certificates`: certificates Ferry keeps issued by an ACME
//! CA (see `tls::acme`), each with its order state next to its
//! configuration; `…/{id}/renew` orders a new one now.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{List, Meta};
use crate::config::{Change, ServiceError, Snapshot};
use crate::model::acme::AcmeCertificate;
use crate::store::Stored;
use crate::tls::acme::AcmeState;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AcmeCertificateView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub acme: AcmeCertificate,
    pub state: AcmeState,
}

fn view(s: &AppState, snap: &Snapshot, a: &Stored<AcmeCertificate>) -> AcmeCertificateView {
    AcmeCertificateView {
        meta: a.into(),
        acme: a.spec.clone(),
        state: s.acme.state(snap, a),
    }
}

fn find<'a>(snap: &'a Snapshot, id: &str) -> Result<&'a Stored<AcmeCertificate>, ApiError> {
    crate::config::find::<AcmeCertificate>(snap, id)
        .ok_or_else(|| ApiError::not_found(format!("ACME certificate '{id}' does not exist")))
}

#[utoipa::path(get, path = "/api/v1/acme-certificates", tag = "certificates",
    responses((status = 200, body = List<AcmeCertificateView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<AcmeCertificateView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap
            .acme_certificates
            .iter()
            .map(|a| view(&s, &snap, a))
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/acme-certificates/{id}", tag = "certificates",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 200, body = AcmeCertificateView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<AcmeCertificateView>, ApiError> {
    let snap = s.config.snapshot();
    let a = find(&snap, &id)?;
    Ok(ok(a.version, view(&s, &snap, a)))
}

/// Keeps a certificate for these names issued by the CA of `directoryUrl`:
/// the first order starts at once (its progress is the answer's `state`).
/// Creating one agrees to the CA's terms of service.
#[utoipa::path(post, path = "/api/v1/acme-certificates", tag = "certificates",
    request_body = super::openapi::AcmeCertificateCreate,
    responses((status = 201, body = AcmeCertificateView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<AcmeCertificateView>, ApiError> {
    let a = AcmeCertificate::from_create(&body)?;
    let stored = s
        .config
        .create::<AcmeCertificate>(|_, _| Ok(Change::of(a)))
        .await?;
    // The new snapshot wakes the ACME task, which finds it due (asking it
    // to renew as well would order twice).
    let snap = s.config.snapshot();
    Ok(created(stored.version, view(&s, &snap, &stored)))
}

/// Changes an ACME certificate; new names are ordered at once.
#[utoipa::path(patch, path = "/api/v1/acme-certificates/{id}", tag = "certificates",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::AcmeCertificatePatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = AcmeCertificateView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<AcmeCertificateView>, ApiError> {
    let stored = s
        .config
        .update::<AcmeCertificate>(&id, if_match, |_, current| {
            Ok(Change::of(current.spec.patched(&body)?))
        })
        .await?;
    let snap = s.config.snapshot();
    Ok(ok(stored.version, view(&s, &snap, &stored)))
}

/// Stops keeping the certificate. The certificates it issued stay in
/// `/api/v1/certificates` (and in use) until they are deleted there.
#[utoipa::path(delete, path = "/api/v1/acme-certificates/{id}", tag = "certificates",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<AcmeCertificate>(&id, if_match, |_, _| Ok::<(), ServiceError>(()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Orders a new certificate now, whether or not renewal is due (a forced
/// renewal); it replaces the current one when issued. The answer is the
/// state as the order starts: follow it with GET.
#[utoipa::path(post, path = "/api/v1/acme-certificates/{id}/renew", tag = "certificates",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 202, body = AcmeCertificateView),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn renew(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<AcmeCertificateView>), ApiError> {
    let snap = s.config.snapshot();
    let a = find(&snap, &id)?;
    if !a.spec.enabled {
        return Err(ServiceError::Conflict {
            field: Some("enabled".into()),
            message: "the ACME certificate is disabled; enable it to order".into(),
        }
        .into());
    }
    s.acme.renew(a.id);
    Ok((StatusCode::ACCEPTED, Json(view(&s, &snap, a))))
}
