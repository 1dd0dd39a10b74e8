//! `/api/v1/webhooks`: event webhooks — subscriptions that receive message
//! tracking events as signed JSON (see `observe::webhooks`), and the state
//! of their deliveries.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{List, Meta};
use crate::config::{Change, ServiceError, Snapshot};
use crate::model::webhook::Webhook;
use crate::store::Stored;

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub webhook: Webhook,
}

/// A new webhook, with its HMAC key: shown in this answer only.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub webhook: Webhook,
    /// The HMAC-SHA256 key (hex) that signs every delivery
    /// (`Ferry-Signature: t=<unix seconds>,v1=<hex HMAC of "<t>.<body>">`).
    /// Shown once; Ferry keeps it sealed.
    pub secret: String,
}

fn view(s: &Stored<Webhook>) -> WebhookView {
    WebhookView {
        meta: s.into(),
        webhook: s.spec.clone(),
    }
}

fn find<'a>(snap: &'a Snapshot, id: &str) -> Result<&'a Stored<Webhook>, ApiError> {
    crate::config::find::<Webhook>(snap, id)
        .ok_or_else(|| ApiError::not_found(format!("webhook '{id}' does not exist")))
}

#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = List<WebhookView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<WebhookView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap.webhooks.iter().map(view).collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 200, body = WebhookView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<WebhookView>, ApiError> {
    let snap = s.config.snapshot();
    let w = find(&snap, &id)?;
    Ok(ok(w.version, view(w)))
}

/// Subscribes a URL to tracking events; the answer holds its signing key,
/// once.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks",
    request_body = super::openapi::WebhookCreate,
    responses((status = 201, body = WebhookCreated, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<WebhookCreated>, ApiError> {
    let w = Webhook::from_create(&body)?;
    let key: [u8; 32] = rand::random();
    let secrets = s.config.secrets.clone();
    let stored = s
        .config
        .create::<Webhook>(|_, id| {
            Ok(Change {
                secret: Some(secrets.seal(&id.to_string(), &key)),
                spec: w,
                also: vec![],
            })
        })
        .await?;
    Ok(created(
        stored.version,
        WebhookCreated {
            meta: (&stored).into(),
            webhook: stored.spec.clone(),
            secret: hex::encode(key),
        },
    ))
}

#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::WebhookPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = WebhookView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<WebhookView>, ApiError> {
    let stored = s
        .config
        .update::<Webhook>(&id, if_match, |_, current| {
            Ok(Change::of(current.spec.patched(&body)?))
        })
        .await?;
    Ok(ok(stored.version, view(&stored)))
}

#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<Webhook>(&id, if_match, |_, _| Ok::<(), ServiceError>(()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct DeliveryQuery {
    /// The newest deliveries to list, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryState {
    /// Deliveries waiting (first try or a retry).
    pub pending: i64,
    pub delivered: i64,
    /// Given up after a day of retries, or the webhook was deleted.
    pub failed: i64,
    /// The newest first.
    pub items: Vec<crate::observe::webhooks::Delivery>,
}

/// Where a webhook's deliveries stand: counts by state and the newest ones,
/// with their attempts and last error.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), DeliveryQuery),
    responses((status = 200, body = DeliveryState),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn deliveries(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<DeliveryQuery>,
) -> Result<Json<DeliveryState>, ApiError> {
    let w = find(&s.config.snapshot(), &id)?.id;
    let (counts, items) = crate::observe::webhooks::deliveries(
        s.observe.tracking.pool(),
        &w.to_string(),
        q.limit.unwrap_or(100).clamp(1, 1000),
    )
    .await
    .map_err(|e| ApiError::from(ServiceError::Internal(e)))?;
    let count = |state: &str| {
        counts
            .iter()
            .find(|(s, _)| s == state)
            .map_or(0, |(_, n)| *n)
    };
    Ok(Json(DeliveryState {
        pending: count("Pending"),
        delivered: count("Delivered"),
        failed: count("Failed"),
        items,
    }))
}
