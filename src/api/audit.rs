//! The admin audit log (Exchange's `Search-AdminAuditLog`): every mutation
//! through the API is recorded with its caller, its object, its result and
//! the fields it changed ([`crate::config::audit`]), and searched at
//! `/api/v1/audit-log`. Refusals for lack of a role are recorded too.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::access::Caller;
use super::observe::{invalid, nonempty, page_cursor, page_limit, parse_time, query};
use super::problem::{ApiError, Problem};
use crate::config::ServiceError;
use crate::config::audit::{self, FieldChange};
use crate::store::audit::AuditEntry;

/// The resource and object a path names: `/api/v1/send-connectors/Out`
/// is (`send-connectors`, `Out`); a creation names its object through
/// the change it made.
fn object_of(path: &str, changes: &[FieldChange]) -> (String, Option<String>) {
    let rest = path.strip_prefix("/api/v1/").unwrap_or(path);
    let mut segs = rest.split('/');
    let kind = segs.next().unwrap_or("").to_string();
    let id = segs
        .next()
        .filter(|s| !s.is_empty() && !["bulk", "send"].contains(s))
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .or_else(|| {
            // `/receiveConnectors/<name>/…`: the object the change touched.
            let p = &changes.first()?.path;
            let name = p.split('/').nth(2)?;
            Some(name.replace("~1", "/").replace("~0", "~"))
        });
    (kind, id)
}

/// Writes an entry; a failure is logged, never turned into an error for a
/// change that has been made.
pub async fn write(
    s: &AppState,
    caller: &Caller,
    method: &Method,
    path: &str,
    status: u16,
    detail: Option<String>,
    recorded: audit::Recorded,
) {
    let (object_type, object_id) = object_of(path, &recorded.changes);
    let entry = AuditEntry {
        id: 0,
        time_ms: (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64,
        token_name: caller.name.clone(),
        token_id: caller.token_id.clone(),
        role: caller.role.as_str().into(),
        client_ip: caller.addr.map(|a| a.to_string()),
        method: method.to_string(),
        path: path.to_string(),
        object_type,
        object_id,
        status,
        succeeded: status < 400,
        detail,
        changes: recorded.changes,
        more_changes: recorded.more as i64,
    };
    if let Err(e) = crate::store::audit::insert(s.observe.tracking.pool(), &entry).await {
        tracing::error!(error = %format!("{e:#}"), method = %method, path, token = %caller.name,
            "the admin audit log could not record this change");
    }
}

/// Runs a mutation inside an audit scope and records it.
pub async fn record(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(req).await;
    }
    // What View-Only may call changes nothing (an explain question).
    let template = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    if super::access::required_role(req.method(), &template)
        == crate::model::api_token::ApiRole::ViewOnly
    {
        return next.run(req).await;
    }
    let Some(caller) = req.extensions().get::<Caller>().cloned() else {
        return next.run(req).await;
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (resp, recorded) = audit::scope(next.run(req)).await;
    let status = resp.status();
    let (resp, detail) = if status.as_u16() >= 400 {
        // A problem document: small; keep its detail.
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 256 * 1024)
            .await
            .unwrap_or_default();
        let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .or_else(|| Some(String::from_utf8_lossy(&bytes).chars().take(500).collect()));
        (
            Response::from_parts(parts, axum::body::Body::from(bytes)),
            detail,
        )
    } else {
        (resp, None)
    };
    write(
        &s,
        &caller,
        &method,
        &path,
        status.as_u16(),
        detail,
        recorded,
    )
    .await;
    resp
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// A resource (`send-connectors`), an object's id or name, or part of
    /// a path.
    pub object: Option<String>,
    /// An API token's name.
    pub token: Option<String>,
    /// RFC 3339: entries at or after this time.
    #[param(format = DateTime)]
    pub start: Option<String>,
    /// RFC 3339: entries before this time.
    #[param(format = DateTime)]
    pub end: Option<String>,
    /// `true`: only changes that succeeded; `false`: only refusals.
    #[param(value_type = Option<bool>)]
    pub succeeded: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

/// A page of the audit log, newest first.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    /// Pass as `cursor` for older entries; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// Search-AdminAuditLog: who changed what, when, from where, and how.
#[utoipa::path(get, path = "/api/v1/audit-log", tag = "audit-log", params(AuditQuery),
    responses((status = 200, body = AuditPage),
              (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn search(
    State(s): State<AppState>,
    q: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Json<AuditPage>, ApiError> {
    let q = query(q)?;
    let limit = page_limit(&q.limit)?;
    let before = page_cursor(&q.cursor)?;
    let succeeded = nonempty(&q.succeeded)
        .map(|v| match v.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(invalid("succeeded", "must be true or false")),
        })
        .transpose()?;
    let f = crate::store::audit::Query {
        object: nonempty(&q.object),
        token: nonempty(&q.token),
        since_ms: parse_time("start", &nonempty(&q.start))?,
        until_ms: parse_time("end", &nonempty(&q.end))?,
        succeeded,
        before,
        limit: limit + 1,
    };
    let mut items = crate::store::audit::search(s.observe.tracking.pool(), &f)
        .await
        .map_err(|e| ApiError::from(ServiceError::Internal(e)))?;
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(|e| e.id.to_string())
    } else {
        None
    };
    Ok(Json(AuditPage { items, next_cursor }))
}
