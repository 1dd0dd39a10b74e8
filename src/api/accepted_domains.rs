//! `/api/v1/accepted-domains`: New-, Get-, Set- and Remove-AcceptedDomain.
//! Exactly one domain is the default; making another the default moves it.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use uuid::Uuid;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{AcceptedDomainView, List};
use crate::config::{Change, ServiceError, Snapshot};
use crate::model::{AcceptedDomain, DomainType};
use crate::store::Stored;

fn view(s: &Stored<AcceptedDomain>) -> AcceptedDomainView {
    let d = &s.spec;
    let mut warnings = vec![];
    if d.domain_type != DomainType::Authoritative && d.domain_name.is_wildcard_over_public_suffix()
    {
        warnings.push(format!(
            "{} is a wildcard over a public suffix: every domain registered under it is relayed \
             for whoever may send here. Name the organisation's own domains instead",
            d.domain_name
        ));
    }
    AcceptedDomainView {
        meta: s.into(),
        domain: d.clone(),
        warnings,
    }
}

/// The domain name is unique, and a new default takes the flag from the old one.
fn change(
    snap: &Snapshot,
    d: AcceptedDomain,
    id: Option<Uuid>,
) -> Result<Change<AcceptedDomain>, ServiceError> {
    if let Some(other) = snap
        .accepted_domains
        .iter()
        .find(|o| Some(o.id) != id && o.spec.domain_name == d.domain_name)
    {
        return Err(ServiceError::Conflict {
            field: Some("domainName".into()),
            message: format!(
                "{} is already the accepted domain '{}'",
                d.domain_name, other.spec.name
            ),
        });
    }
    let also = if d.default {
        snap.accepted_domains
            .iter()
            .filter(|o| Some(o.id) != id && o.spec.default)
            .map(|o| {
                (
                    o.id,
                    o.version,
                    AcceptedDomain {
                        default: false,
                        ..o.spec.clone()
                    },
                )
            })
            .collect()
    } else {
        vec![]
    };
    Ok(Change {
        spec: d,
        secret: None,
        also,
    })
}

#[utoipa::path(get, path = "/api/v1/accepted-domains", tag = "accepted-domains",
    responses((status = 200, body = List<AcceptedDomainView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<AcceptedDomainView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap.accepted_domains.iter().map(view).collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/accepted-domains/{id}", tag = "accepted-domains",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 200, body = AcceptedDomainView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<AcceptedDomainView>, ApiError> {
    let snap = s.config.snapshot();
    let d = crate::config::find::<AcceptedDomain>(&snap, &id)
        .ok_or_else(|| ApiError::not_found(format!("accepted domain '{id}' does not exist")))?;
    Ok(ok(d.version, view(d)))
}

#[utoipa::path(post, path = "/api/v1/accepted-domains", tag = "accepted-domains",
    request_body = super::openapi::AcceptedDomainCreate,
    responses((status = 201, body = AcceptedDomainView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<AcceptedDomainView>, ApiError> {
    let stored = s
        .config
        .create::<AcceptedDomain>(|snap, _| {
            let d = AcceptedDomain::from_create(&body, &snap.ctx, snap.accepted_domains.is_empty())
                .map_err(ServiceError::conflict_on("default"))?;
            change(snap, d, None)
        })
        .await?;
    Ok(created(stored.version, view(&stored)))
}

#[utoipa::path(patch, path = "/api/v1/accepted-domains/{id}", tag = "accepted-domains",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::AcceptedDomainPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = AcceptedDomainView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<AcceptedDomainView>, ApiError> {
    let stored = s
        .config
        .update::<AcceptedDomain>(&id, if_match, |snap, current| {
            let d = current
                .spec
                .patched(&body, &snap.ctx)
                .map_err(ServiceError::conflict_on("default"))
                .map_err(|e| match e {
                    ServiceError::Invalid(i) => ServiceError::against(&body)(i),
                    e => e,
                })?;
            change(snap, d, Some(current.id))
        })
        .await?;
    Ok(ok(stored.version, view(&stored)))
}

#[utoipa::path(delete, path = "/api/v1/accepted-domains/{id}", tag = "accepted-domains",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<AcceptedDomain>(&id, if_match, |snap, d| {
            if d.spec.default && snap.accepted_domains.len() > 1 {
                return Err(ServiceError::Conflict {
                    field: Some("default".into()),
                    message: format!("'{}' is the default accepted domain: make another domain the default first", d.spec.name),
                });
            }
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
