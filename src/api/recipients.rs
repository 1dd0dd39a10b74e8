//! `/api/v1/recipients`: the recipient directory Ferry holds — the `List`
//! source of recipient validation and a Hub's mailbox directory. One
//! recipient at a time, or the whole list at once: bulk add or bulk replace
//! of 100,000 entries in one request (bodies up to 64 MiB on these paths),
//! and export.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::AppState;
use super::extract::JsonBody;
use super::problem::{ApiError, Problem};
use crate::model::from_json;
use crate::model::recipient::DirectoryRecipient;

/// The whole directory, or a batch of recipients to write.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RecipientList {
    pub items: Vec<DirectoryRecipient>,
}

/// What a write left.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryCount {
    /// Recipients in the directory now.
    pub recipients: usize,
}

#[utoipa::path(get, path = "/api/v1/recipients", tag = "recipients",
    responses((status = 200, body = RecipientList, description = "Every recipient, by primary address (export)")))]
pub async fn list(State(s): State<AppState>) -> Result<Json<RecipientList>, ApiError> {
    let directory = s.directory.clone();
    let items = tokio::task::spawn_blocking(move || directory.export())
        .await
        .map_err(|e| ApiError::from(crate::config::ServiceError::Internal(e.into())))?;
    Ok(Json(RecipientList { items }))
}

#[utoipa::path(get, path = "/api/v1/recipients/{address}", tag = "recipients",
    params(("address" = String, Path, description = "A primary address or an alias")),
    responses((status = 200, body = DirectoryRecipient),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> Result<Json<DirectoryRecipient>, ApiError> {
    s.directory
        .get(&address)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no recipient answers to '{address}'")))
}

fn batch(body: serde_json::Value) -> Result<Vec<DirectoryRecipient>, ApiError> {
    let list: RecipientList = from_json(body).map_err(ApiError::from)?;
    Ok(list.items)
}

#[utoipa::path(post, path = "/api/v1/recipients", tag = "recipients",
    request_body = DirectoryRecipient,
    responses((status = 201, body = DirectoryRecipient),
              (status = 409, description = "An address is already in the directory", body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<DirectoryRecipient>), ApiError> {
    let r: DirectoryRecipient = from_json(body).map_err(ApiError::from)?;
    if s.directory.lookup(&r.primary_address).is_some() {
        return Err(ApiError::from(crate::config::ServiceError::Conflict {
            field: Some("primaryAddress".into()),
            message: format!("{} is already in the directory", r.primary_address),
        }));
    }
    let primary = r.primary_address.clone();
    // One recipient: its fields are the body's own, not `items[0]`'s.
    s.directory.write(vec![r], false).await.map_err(|e| {
        ApiError::from(e).map_fields(|f| f.strip_prefix("items[0].").unwrap_or(f).to_string())
    })?;
    let stored = s
        .directory
        .get(&primary)
        .ok_or_else(|| ApiError::not_found("the recipient was removed meanwhile"))?;
    Ok((StatusCode::CREATED, Json(stored)))
}

#[utoipa::path(post, path = "/api/v1/recipients/bulk", tag = "recipients",
    request_body = RecipientList,
    responses((status = 200, body = DirectoryCount, description = "Added, or their addresses replaced when already there"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn bulk_add(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<DirectoryCount>, ApiError> {
    let recipients = s.directory.write(batch(body)?, false).await?;
    Ok(Json(DirectoryCount { recipients }))
}

#[utoipa::path(put, path = "/api/v1/recipients", tag = "recipients",
    request_body = RecipientList,
    responses((status = 200, body = DirectoryCount, description = "The directory is now exactly these recipients"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn replace(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<DirectoryCount>, ApiError> {
    let recipients = s.directory.write(batch(body)?, true).await?;
    Ok(Json(DirectoryCount { recipients }))
}

#[utoipa::path(delete, path = "/api/v1/recipients/{address}", tag = "recipients",
    params(("address" = String, Path, description = "A primary address or an alias")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(address): Path<String>,
) -> Result<StatusCode, ApiError> {
    if s.directory.remove(&address).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "no recipient answers to '{address}'"
        )))
    }
}
