//! `/api/v1/queues` and `/api/v1/messages`: the queue viewer (spec §1.11) —
//! Get-Queue, Get-Message, Retry-Queue (with Resubmit), Suspend/Resume-Queue,
//! Suspend/Resume-Message, Remove-Message with or without an NDR, resubmit,
//! and the raw message.

use crate::queue::status::{RecipientStatus, ViewStatus};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::queue::delivery::{Applied, Pending};
use crate::routing::HopKey;
use crate::store::queue as db;

/// A time column (Unix milliseconds) as RFC 3339, to the second.
fn ts(ms: i64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::from(crate::config::ServiceError::Internal(e))
}

/// A delivery queue (one per next hop and connector), or the Submission queue.
#[derive(Debug, Serialize, serde::Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct QueueView {
    /// The server whose queue it is (asked with `server`, in a fleet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// When that server last reported it (its heartbeat); none: read now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_of: Option<String>,
    /// A number, or `Submission`.
    pub id: String,
    /// The domain for DNS routing, the smart hosts, or the mailbox domain.
    pub next_hop_domain: String,
    /// `DnsConnectorDelivery`, `SmartHostConnectorDelivery`, `MailboxDelivery`, `Unreachable` or `Submission`.
    pub delivery_type: String,
    pub connector: Option<String>,
    /// `Ready`, `Retry` or `Suspended`.
    pub status: String,
    pub message_count: i64,
    pub last_error: Option<String>,
    pub next_retry_time: Option<String>,
    /// Connection failures in a row.
    pub failures: i64,
}

fn queue_view(q: &db::QueueRow) -> QueueView {
    // Retry times are Unix milliseconds.
    let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let status = if q.suspended {
        ViewStatus::Suspended
    } else if q.failures > 0 || q.next_hop == crate::routing::UNREACHABLE {
        ViewStatus::Retry
    } else {
        ViewStatus::Ready
    };
    QueueView {
        server: None,
        as_of: None,
        id: q.id.to_string(),
        next_hop_domain: q.display.clone(),
        delivery_type: q.delivery_type.clone(),
        connector: q.connector.clone(),
        status: status.as_str().into(),
        message_count: q.message_count,
        last_error: q.last_error.clone(),
        next_retry_time: (q.next_retry_ms > now)
            .then(|| ts(q.next_retry_ms))
            .flatten(),
        failures: q.failures,
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct QueueList {
    pub items: Vec<QueueView>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct QueueListQuery {
    /// In a fleet: a server's name for its queues, or `all` for every
    /// server's (as each last reported them, every few seconds). Without
    /// it, this server's, read now.
    pub server: Option<String>,
}

/// This server's queues, as the queue viewer lists them.
pub async fn local_views(queue: &crate::queue::Queue) -> anyhow::Result<Vec<QueueView>> {
    let pool = queue.pool();
    let mut items = vec![QueueView {
        server: None,
        as_of: None,
        id: "Submission".into(),
        next_hop_domain: "Submission".into(),
        delivery_type: "Submission".into(),
        connector: None,
        status: ViewStatus::Ready.as_str().into(),
        message_count: db::submission_count(pool).await?,
        last_error: None,
        next_retry_time: None,
        failures: 0,
    }];
    items.extend(db::queues(pool).await?.iter().map(queue_view));
    Ok(items)
}

#[utoipa::path(get, path = "/api/v1/queues", tag = "queues", params(QueueListQuery),
    responses((status = 200, body = QueueList),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(s): State<AppState>,
    Query(q): Query<QueueListQuery>,
) -> Result<Json<QueueList>, ApiError> {
    let own = s.config.snapshot().ctx.server_name.clone();
    let wanted = match q.server.as_deref() {
        None => {
            return Ok(Json(QueueList {
                items: local_views(&s.queue).await.map_err(internal)?,
            }));
        }
        Some(w) if w.eq_ignore_ascii_case(&own) => {
            let mut items = local_views(&s.queue).await.map_err(internal)?;
            for i in &mut items {
                i.server = Some(own.clone());
            }
            return Ok(Json(QueueList { items }));
        }
        Some(w) => w.to_string(),
    };
    let Some(fleet) = s.config.fleet() else {
        return Err(ApiError::not_found(format!(
            "server '{wanted}' is not this one, and this server is in no fleet"
        )));
    };
    let servers = fleet.servers().await.map_err(|e| {
        ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "The shared configuration store is unavailable",
            format!("the fleet's PostgreSQL is unreachable: {e:#}"),
        )
    })?;
    let all = wanted.eq_ignore_ascii_case("all");
    if !all && !servers.iter().any(|e| e.name.eq_ignore_ascii_case(&wanted)) {
        return Err(ApiError::not_found(format!(
            "no server '{wanted}' in the fleet"
        )));
    }
    let mut items = vec![];
    for e in servers {
        if e.name.eq_ignore_ascii_case(&own) {
            if all {
                let mut mine = local_views(&s.queue).await.map_err(internal)?;
                for i in &mut mine {
                    i.server = Some(own.clone());
                }
                items.extend(mine);
            }
            continue;
        }
        if !all && !e.name.eq_ignore_ascii_case(&wanted) {
            continue;
        }
        let reported: Vec<QueueView> = serde_json::from_str::<serde_json::Value>(&e.queue)
            .ok()
            .and_then(|v| serde_json::from_value(v["queues"].clone()).ok())
            .unwrap_or_default();
        let as_of = e
            .heartbeat_at
            .format(&time::format_description::well_known::Rfc3339)
            .ok();
        items.extend(reported.into_iter().map(|mut v| {
            v.server = Some(e.name.clone());
            v.as_of = as_of.clone();
            v
        }));
    }
    Ok(Json(QueueList { items }))
}

/// The key of a stored queue row.
fn hop_key(q: &db::QueueRow) -> Result<HopKey, ApiError> {
    q.next_hop
        .parse()
        .map_err(|e: String| internal(anyhow::anyhow!(e)))
}

async fn find_queue(s: &AppState, id: &str) -> Result<db::QueueRow, ApiError> {
    let n: i64 = id
        .parse()
        .map_err(|_| ApiError::not_found(format!("queue '{id}' does not exist")))?;
    db::queue(s.queue.pool(), n)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("queue '{id}' does not exist")))
}

#[utoipa::path(get, path = "/api/v1/queues/{id}", tag = "queues", params(("id" = String, Path)),
    responses((status = 200, body = QueueView), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    Ok(Json(queue_view(&find_queue(&s, &id).await?)))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct RetryParams {
    /// Route the queue's messages again (required for the Unreachable queue).
    pub resubmit: Option<bool>,
}

#[utoipa::path(post, path = "/api/v1/queues/{id}/retry", tag = "queues", params(("id" = String, Path), RetryParams),
    responses((status = 200, body = QueueView), (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn retry(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(p): Query<RetryParams>,
) -> Result<Json<QueueView>, ApiError> {
    let q = find_queue(&s, &id).await?;
    let resubmit = p.resubmit.unwrap_or(false);
    if !resubmit && q.next_hop == crate::routing::UNREACHABLE {
        return Err(ApiError::conflict(
            "the Unreachable queue can only be retried with resubmit=true",
        ));
    } else if !resubmit && queue_view(&q).status != ViewStatus::Retry.as_str() {
        return Err(ApiError::conflict("Retry acts only on a queue in Retry"));
    }
    s.delivery
        .retry_queue(&hop_key(&q)?, resubmit)
        .await
        .map_err(internal)?;
    Ok(Json(queue_view(&find_queue(&s, &id).await?)))
}

async fn set_suspended(
    s: &AppState,
    id: &str,
    suspended: bool,
) -> Result<Json<QueueView>, ApiError> {
    let q = find_queue(s, id).await?;
    s.delivery
        .suspend_queue(&hop_key(&q)?, suspended)
        .await
        .map_err(internal)?;
    Ok(Json(queue_view(&find_queue(s, id).await?)))
}

#[utoipa::path(post, path = "/api/v1/queues/{id}/suspend", tag = "queues", params(("id" = String, Path)),
    responses((status = 200, body = QueueView)))]
pub async fn suspend(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    set_suspended(&s, &id, true).await
}

#[utoipa::path(post, path = "/api/v1/queues/{id}/resume", tag = "queues", params(("id" = String, Path)),
    responses((status = 200, body = QueueView)))]
pub async fn resume(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<QueueView>, ApiError> {
    set_suspended(&s, &id, false).await
}

/// One recipient of a queued message.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecipientView {
    pub address: String,
    /// `Ready`, `Retry`, `Delivered`, `Failed`, `Bounced` (NDR sent) or `Removed`.
    pub status: String,
    /// The delivery queue's id, or `Submission` before routing.
    pub queue: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub remote_host: Option<String>,
    pub next_attempt: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: i64,
    pub message_id: String,
    /// Empty for the null sender.
    pub sender: String,
    pub received_at: String,
    pub size: i64,
    pub receive_connector: String,
    pub client_ip: String,
    /// `Ready`, `Active`, `Retry`, `Suspended`, `PendingSuspend` or `PendingRemove`.
    pub status: String,
    pub expiration_time: Option<String>,
    pub recipients: Vec<RecipientView>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub at: Option<String>,
    pub queue: String,
    pub remote_host: Option<String>,
    pub outcome: String,
    pub detail: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageDetail {
    #[serde(flatten)]
    pub message: MessageView,
    /// The header block as stored (Received and Message-ID included).
    pub headers: String,
    pub attempts: Vec<AttemptView>,
}

async fn queue_ids(s: &AppState) -> Result<HashMap<String, String>, ApiError> {
    Ok(db::queue_hops(s.queue.pool())
        .await
        .map_err(internal)?
        .into_iter()
        .map(|(id, next_hop)| (next_hop, id.to_string()))
        .collect())
}

async fn message_view(
    s: &AppState,
    m: &db::StoredMessage,
    ids: &HashMap<String, String>,
) -> Result<MessageView, ApiError> {
    let rcpts = db::recipients(s.queue.pool(), m.id)
        .await
        .map_err(internal)?;
    let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let status = match s.delivery.pending_action(m.id) {
        Some(Pending::Suspend) => ViewStatus::PendingSuspend,
        Some(Pending::Remove { .. }) => ViewStatus::PendingRemove,
        None if m.suspended => ViewStatus::Suspended,
        None if s.delivery.in_flight(m.id) => ViewStatus::Active,
        None if rcpts.iter().any(|r| r.status() == RecipientStatus::Retry) => ViewStatus::Retry,
        None => ViewStatus::Ready,
    };
    let expiry = s
        .config
        .snapshot()
        .transport
        .spec
        .message_expiration_timeout
        .as_secs() as i64;
    Ok(MessageView {
        id: m.id,
        message_id: m.message_id.clone(),
        sender: m.sender.to_string(),
        received_at: m.received_at(),
        size: m.size,
        receive_connector: m.receive_connector.clone(),
        client_ip: m.client_ip.clone(),
        status: status.as_str().into(),
        expiration_time: ts(m.received_ms + expiry * 1000),
        recipients: rcpts
            .into_iter()
            .map(|r| RecipientView {
                queue: match &r.next_hop {
                    None => "Submission".into(),
                    Some(h) => ids.get(h).cloned().unwrap_or_else(|| h.clone()),
                },
                next_attempt: (r.next_attempt_ms > now)
                    .then(|| ts(r.next_attempt_ms))
                    .flatten(),
                address: r.address.to_string(),
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
                remote_host: r.remote_host,
            })
            .collect(),
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct MessageQuery {
    /// A queue id (or `Submission`).
    pub queue: Option<String>,
    /// A message status, e.g. `Retry` or `Suspended`.
    pub status: Option<String>,
    /// Part of the sender address.
    pub sender: Option<String>,
    /// Part of a recipient address.
    pub recipient: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// Messages to skip.
    #[param(minimum = 0)]
    pub offset: Option<i64>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MessageList {
    pub items: Vec<MessageView>,
    /// Messages matching the queue, sender and recipient filters.
    pub total: i64,
}

#[utoipa::path(get, path = "/api/v1/messages", tag = "queues", params(MessageQuery),
    responses((status = 200, body = MessageList),
              (status = 404, body = Problem, content_type = "application/problem+json",
               description = "The queue named by `queue` does not exist")))]
pub async fn messages(
    State(s): State<AppState>,
    Query(q): Query<MessageQuery>,
) -> Result<Json<MessageList>, ApiError> {
    let ids = queue_ids(&s).await?;
    // An empty parameter (`?queue=`, as forms send) filters nothing.
    use super::observe::nonempty;
    let (queue_id, status, sender, recipient) = (
        nonempty(&q.queue),
        nonempty(&q.status),
        nonempty(&q.sender),
        nonempty(&q.recipient),
    );
    for (field, v, min, max) in [
        ("limit", q.limit, 1, 1000),
        ("offset", q.offset, 0, i64::MAX),
    ] {
        if v.is_some_and(|v| v < min || v > max) {
            return Err(
                ApiError::bad_request(format!("{field}: must be from {min} to {max}"))
                    .with_field(field, format!("must be from {min} to {max}")),
            );
        }
    }
    let queue = match queue_id.as_deref() {
        None => None,
        Some("Submission") => Some(String::new()),
        Some(id) => Some(find_queue(&s, id).await?.next_hop),
    };
    let filter = db::MessageFilter {
        queue,
        sender,
        recipient,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
        offset: q.offset.unwrap_or(0).max(0),
    };
    let (rows, total) = db::list_messages(s.queue.pool(), &filter)
        .await
        .map_err(internal)?;
    let mut items = vec![];
    for m in &rows {
        let v = message_view(&s, m, &ids).await?;
        if status
            .as_ref()
            .is_none_or(|st| st.eq_ignore_ascii_case(&v.status))
        {
            items.push(v);
        }
    }
    Ok(Json(MessageList { items, total }))
}

async fn find_message(s: &AppState, id: i64) -> Result<db::StoredMessage, ApiError> {
    db::message(s.queue.pool(), id)
        .await
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("message {id} is not in the queue")))
}

#[utoipa::path(get, path = "/api/v1/messages/{id}", tag = "queues", params(("id" = i64, Path)),
    responses((status = 200, body = MessageDetail), (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn message(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<MessageDetail>, ApiError> {
    let m = find_message(&s, id).await?;
    let ids = queue_ids(&s).await?;
    let body = db::body(s.queue.pool(), id)
        .await
        .map_err(internal)?
        .unwrap_or_default();
    let end = body
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 2)
        .unwrap_or(body.len());
    let attempts = db::attempts(s.queue.pool(), id)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|a| AttemptView {
            at: ts(a.at_ms),
            queue: ids.get(&a.next_hop).cloned().unwrap_or(a.next_hop),
            remote_host: a.remote_host,
            outcome: a.outcome,
            detail: a.detail,
        })
        .collect();
    Ok(Json(MessageDetail {
        message: message_view(&s, &m, &ids).await?,
        headers: String::from_utf8_lossy(&body[..end]).into_owned(),
        attempts,
    }))
}

#[utoipa::path(get, path = "/api/v1/messages/{id}/raw", tag = "queues", params(("id" = i64, Path)),
    responses((status = 200, content_type = "message/rfc822", body = String)))]
pub async fn raw(State(s): State<AppState>, Path(id): Path<i64>) -> Result<Response, ApiError> {
    find_message(&s, id).await?;
    let body = db::body(s.queue.pool(), id)
        .await
        .map_err(internal)?
        .unwrap_or_default();
    Ok(([(header::CONTENT_TYPE, "message/rfc822")], body).into_response())
}

#[utoipa::path(post, path = "/api/v1/messages/{id}/suspend", tag = "queues", params(("id" = i64, Path)),
    responses((status = 200, body = MessageView), (status = 202, body = MessageView, description = "In flight: PendingSuspend")))]
pub async fn suspend_message(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let m = find_message(&s, id).await?;
    let code = match s.delivery.suspend_message(id).await.map_err(internal)? {
        Applied::WhenAttemptEnds => StatusCode::ACCEPTED,
        Applied::Now => StatusCode::OK,
    };
    let m = find_message(&s, m.id).await?;
    Ok((
        code,
        Json(message_view(&s, &m, &queue_ids(&s).await?).await?),
    ))
}

#[utoipa::path(post, path = "/api/v1/messages/{id}/resume", tag = "queues", params(("id" = i64, Path)),
    responses((status = 200, body = MessageView)))]
pub async fn resume_message(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<MessageView>, ApiError> {
    find_message(&s, id).await?;
    s.delivery.resume_message(id).await.map_err(internal)?;
    let m = find_message(&s, id).await?;
    Ok(Json(message_view(&s, &m, &queue_ids(&s).await?).await?))
}

#[utoipa::path(post, path = "/api/v1/messages/{id}/resubmit", tag = "queues", params(("id" = i64, Path)),
    responses((status = 200, body = MessageView)))]
pub async fn resubmit(
    State(s): State<AppState>,
    Path(id): Path<i64>,
) -> Result<Json<MessageView>, ApiError> {
    find_message(&s, id).await?;
    s.delivery.resubmit_message(id).await.map_err(internal)?;
    let m = find_message(&s, id).await?;
    Ok(Json(message_view(&s, &m, &queue_ids(&s).await?).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct RemoveParams {
    /// Send an NDR for the recipients still pending (default true, as Exchange).
    pub with_ndr: Option<bool>,
}

#[utoipa::path(delete, path = "/api/v1/messages/{id}", tag = "queues", params(("id" = i64, Path), RemoveParams),
    responses((status = 204), (status = 202, description = "In flight: PendingRemove"),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn remove(
    State(s): State<AppState>,
    Path(id): Path<i64>,
    Query(p): Query<RemoveParams>,
) -> Result<StatusCode, ApiError> {
    find_message(&s, id).await?;
    let ndr = p.with_ndr.unwrap_or(true);
    if s.delivery.remove_message(id, ndr).await.map_err(internal)? == Applied::WhenAttemptEnds {
        return Ok(StatusCode::ACCEPTED);
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Which messages a bulk action acts on: every criterion given holds. At
/// least one must be given, so that no request acts on the whole queue by
/// leaving its filter out.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkFilter {
    /// A queue id, or `Submission`.
    #[schema(max_length = 64)]
    pub queue: Option<String>,
    /// `Ready`, `Active`, `Retry`, `Suspended`, `PendingSuspend` or `PendingRemove`.
    pub status: Option<ViewStatus>,
    /// Part of the sender address.
    #[schema(min_length = 1, max_length = 320)]
    pub sender: Option<String>,
    /// Part of a pending recipient's address.
    #[schema(min_length = 1, max_length = 320)]
    pub recipient: Option<String>,
    /// The domain of a pending recipient, whole (`contoso.com`).
    #[schema(schema_with = crate::model::schema::domain_name)]
    pub recipient_domain: Option<String>,
    /// At least this many bytes.
    #[schema(minimum = 0)]
    pub min_size: Option<i64>,
    /// At most this many bytes.
    #[schema(minimum = 0)]
    pub max_size: Option<i64>,
    /// Received at least this long ago.
    #[schema(schema_with = crate::model::schema::timespan_0_24855d)]
    pub older_than: Option<crate::model::Timespan>,
    /// Part of a pending recipient's last error (`4.4.1`, `Connection refused`).
    #[schema(min_length = 1, max_length = 1000)]
    pub last_error: Option<String>,
}

/// The action: Suspend-Message, Resume-Message, Retry, Resubmit or
/// Remove-Message, with a filter in place of an identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
pub enum BulkVerb {
    Suspend,
    Resume,
    Retry,
    Resubmit,
    Remove,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkRequest {
    pub action: BulkVerb,
    pub filter: BulkFilter,
    /// Remove only: send an NDR for the recipients still pending (default
    /// true, as Exchange's Remove-Message -WithNDR).
    pub with_ndr: Option<bool>,
    /// Count what would be acted on, and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkResult {
    pub action: BulkVerb,
    pub dry_run: bool,
    /// Messages the filter selected.
    pub matched: usize,
    /// Acted on now (0 in a dry run).
    pub applied: usize,
    /// In flight: suspended or removed when their attempt ends.
    pub when_attempt_ends: usize,
}

/// One action on every message a filter selects, as one operation (the
/// most-asked queue feature of gateways: remove everything for a domain,
/// suspend everything stuck on one error). `dryRun` counts first.
#[utoipa::path(post, path = "/api/v1/messages/bulk", tag = "queues",
    request_body = BulkRequest,
    responses((status = 200, body = BulkResult),
              (status = 404, body = Problem, content_type = "application/problem+json",
               description = "The queue named by `filter.queue` does not exist"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn bulk(
    State(s): State<AppState>,
    super::extract::JsonBody(body): super::extract::JsonBody,
) -> Result<Json<BulkResult>, ApiError> {
    let req: BulkRequest = crate::model::from_json(body)?;
    let f = &req.filter;
    let given = f.queue.is_some()
        || f.status.is_some()
        || f.sender.is_some()
        || f.recipient.is_some()
        || f.recipient_domain.is_some()
        || f.min_size.is_some()
        || f.max_size.is_some()
        || f.older_than.is_some()
        || f.last_error.is_some();
    if !given {
        return Err(crate::model::Invalid::field(
            "filter",
            "give at least one criterion: a bulk action never acts on the whole queue by default",
        )
        .into());
    }
    if req.with_ndr.is_some() && req.action != BulkVerb::Remove {
        return Err(crate::model::Invalid::field("withNdr", "applies to Remove only").into());
    }
    let queue = match f.queue.as_deref() {
        None => None,
        Some("Submission") => Some(String::new()),
        Some(id) => Some(find_queue(&s, id).await?.next_hop),
    };
    let now = (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let filter = db::BulkFilter {
        queue,
        sender: f.sender.clone(),
        recipient: f.recipient.clone(),
        recipient_domain: f.recipient_domain.clone(),
        min_size: f.min_size,
        max_size: f.max_size,
        received_before_ms: f.older_than.map(|t| now - t.as_secs() as i64 * 1000),
        last_error: f.last_error.clone(),
    };
    let selected = db::select_messages(s.queue.pool(), &filter)
        .await
        .map_err(internal)?;
    // The status is the queue viewer's: the engine knows what is in
    // flight and what waits for its attempt to end.
    let ids: Vec<i64> = selected
        .into_iter()
        .filter(|m| {
            f.status.is_none_or(|want| {
                let status = match s.delivery.pending_action(m.id) {
                    Some(Pending::Suspend) => ViewStatus::PendingSuspend,
                    Some(Pending::Remove { .. }) => ViewStatus::PendingRemove,
                    None if m.suspended => ViewStatus::Suspended,
                    None if s.delivery.in_flight(m.id) => ViewStatus::Active,
                    None if m.retrying => ViewStatus::Retry,
                    None => ViewStatus::Ready,
                };
                status == want
            })
        })
        .map(|m| m.id)
        .collect();
    let mut result = BulkResult {
        action: req.action,
        dry_run: req.dry_run,
        matched: ids.len(),
        applied: 0,
        when_attempt_ends: 0,
    };
    if !req.dry_run {
        use crate::queue::delivery::BulkAction;
        let action = match req.action {
            BulkVerb::Suspend => BulkAction::Suspend,
            BulkVerb::Resume => BulkAction::Resume,
            BulkVerb::Retry => BulkAction::Retry,
            BulkVerb::Resubmit => BulkAction::Resubmit,
            BulkVerb::Remove => BulkAction::Remove {
                ndr: req.with_ndr.unwrap_or(true),
            },
        };
        let done = s.delivery.bulk(action, &ids).await.map_err(internal)?;
        result.applied = done.applied;
        result.when_attempt_ends = done.when_attempt_ends;
    }
    Ok(Json(result))
}
