//! Observability over HTTP: message tracking search, one session's
//! protocol log, and Prometheus metrics.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::observe::protolog::LogLine;
use crate::observe::tracking::{Filter, TrackingEvent};

pub(super) fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::bad_request(format!("{field}: {message}")).with_field(field, message)
}

pub(super) fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("the query string is invalid: {e}")))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TrackingQuery {
    /// The Message-ID header, with or without angle brackets.
    pub message_id: Option<String>,
    /// Ferry's internal id (the `InternalId` of the 250 reply).
    #[param(value_type = Option<i64>, minimum = 1)]
    pub internal_id: Option<String>,
    /// The envelope sender (exact, case-insensitive); `<>` for the null sender.
    pub sender: Option<String>,
    /// A recipient (exact, case-insensitive).
    pub recipient: Option<String>,
    /// Event names, comma-separated (`FAIL,DEFER`); the pattern lists every
    /// event there is (`openapi::TrackingEvents` writes it from `EventKind`).
    pub event: Option<String>,
    /// A receive or send connector name (or `mailbox`).
    pub connector: Option<String>,
    /// RFC 3339: events at or after this time.
    #[param(format = DateTime)]
    pub start: Option<String>,
    /// RFC 3339: events before this time.
    #[param(format = DateTime)]
    pub end: Option<String>,
    /// Page size, 1–1000 (default 100).
    #[param(value_type = Option<i64>, minimum = 1, maximum = 1000)]
    pub limit: Option<String>,
    /// The `nextCursor` of the previous page.
    #[param(pattern = r"^[0-9]{1,18}$")]
    pub cursor: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackingEventView {
    #[serde(flatten)]
    pub event: TrackingEvent,
    /// RFC 3339 with milliseconds.
    pub time: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrackingPage {
    /// Oldest first.
    pub items: Vec<TrackingEventView>,
    /// Pass as `cursor` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A query parameter, trimmed; an empty one (as forms send) is absent.
pub(super) fn nonempty(v: &Option<String>) -> Option<String> {
    v.as_ref()
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
}

/// `limit`: 1–1000, 100 when absent.
pub(super) fn page_limit(v: &Option<String>) -> Result<i64, ApiError> {
    nonempty(v)
        .map(|v| {
            v.parse::<i64>()
                .ok()
                .filter(|n| (1..=1000).contains(n))
                .ok_or_else(|| invalid("limit", "must be a number from 1 to 1000"))
        })
        .transpose()
        .map(|l| l.unwrap_or(100))
}

/// `cursor`: a `nextCursor` this server gave.
pub(super) fn page_cursor(v: &Option<String>) -> Result<Option<i64>, ApiError> {
    nonempty(v)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| invalid("cursor", "must be a nextCursor value"))
        })
        .transpose()
}

pub(super) fn parse_time(field: &str, v: &Option<String>) -> Result<Option<i64>, ApiError> {
    v.as_deref()
        .map(|t| {
            OffsetDateTime::parse(t, &Rfc3339)
                .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
                .map_err(|_| invalid(field, "must be an RFC 3339 time like 2026-11-27T10:00:00Z"))
        })
        .transpose()
}

fn time_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            let f = time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            );
            t.format(&f).ok()
        })
        .unwrap_or_default()
}

#[utoipa::path(get, path = "/api/v1/tracking", tag = "tracking", params(TrackingQuery),
    responses((status = 200, body = TrackingPage), (status = 400, body = Problem, content_type = "application/problem+json")))]
pub async fn tracking(
    State(s): State<AppState>,
    q: Result<Query<TrackingQuery>, QueryRejection>,
) -> Result<Json<TrackingPage>, ApiError> {
    let q = query(q)?;
    let message_id = nonempty(&q.message_id).map(|m| {
        if m.starts_with('<') {
            m
        } else {
            format!("<{m}>")
        }
    });
    let internal_id = nonempty(&q.internal_id)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| invalid("internalId", "must be a number"))
        })
        .transpose()?;
    let sender = nonempty(&q.sender).map(|v| if v == "<>" { String::new() } else { v });
    let events: Vec<String> = nonempty(&q.event)
        .map(|e| {
            e.split(',')
                .map(|x| x.trim().to_ascii_uppercase())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if let Some(bad) = events
        .iter()
        .find(|e| e.parse::<crate::observe::tracking::EventKind>().is_err())
    {
        let all: Vec<&str> = crate::observe::tracking::EventKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        return Err(invalid(
            "event",
            format!("'{bad}' is not an event; use {}", all.join(", ")),
        ));
    }
    let limit = page_limit(&q.limit)?;
    let after = page_cursor(&q.cursor)?;
    let filter = Filter {
        message_id,
        internal_id,
        sender,
        recipient: nonempty(&q.recipient),
        events,
        connector: nonempty(&q.connector),
        start_ms: parse_time("start", &q.start)?,
        end_ms: parse_time("end", &q.end)?,
        after,
        limit: limit + 1,
    };
    let mut rows = s
        .observe
        .tracking
        .search(&filter)
        .await
        .map_err(|e| ApiError::from(crate::config::ServiceError::Internal(e)))?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next_cursor = more
        .then(|| rows.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Json(TrackingPage {
        items: rows
            .into_iter()
            .map(|e| TrackingEventView {
                time: time_ms(e.time_ms),
                event: e,
            })
            .collect(),
        next_cursor,
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ProtocolLogQuery {
    /// A session id: the 16 hex digits of the protocol log (and of tracking events' `session`).
    #[param(required = true, pattern = r"^[0-9A-Fa-f]{16}$")]
    pub session: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProtocolLogPage {
    pub session: String,
    /// The session's lines in order, from the receive and send logs.
    pub lines: Vec<LogLine>,
}

#[utoipa::path(get, path = "/api/v1/protocol-logs", tag = "tracking", params(ProtocolLogQuery),
    responses((status = 200, body = ProtocolLogPage), (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn protocol_logs(
    State(s): State<AppState>,
    q: Result<Query<ProtocolLogQuery>, QueryRejection>,
) -> Result<Json<ProtocolLogPage>, ApiError> {
    let q = query(q)?;
    let session = q
        .session
        .map(|v| v.trim().to_ascii_uppercase())
        .ok_or_else(|| invalid("session", "is required"))?;
    if session.len() != 16 || !session.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(invalid("session", "must be 16 hexadecimal digits"));
    }
    let lines = s
        .observe
        .protolog
        .session_lines(&session)
        .await
        .map_err(|e| ApiError::from(crate::config::ServiceError::Internal(e)))?;
    if lines.is_empty() {
        return Err(ApiError::not_found(format!(
            "no protocol log line for session {session} (is the connector's protocolLoggingLevel Verbose, and is the file still kept?)"
        )));
    }
    Ok(Json(ProtocolLogPage { session, lines }))
}

/// The Prometheus text exposition.
pub async fn metrics_text(s: &crate::observe::Observer, queue: &crate::queue::Queue) -> Response {
    match crate::store::queue::depth(queue.pool()).await {
        Ok(rows) => s.metrics.set_queue_depth(&rows),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "metrics: queue depth unavailable"),
    }
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
        )],
        s.metrics.encode(),
    )
        .into_response()
}

#[utoipa::path(get, path = "/metrics", tag = "tracking",
    responses((status = 200, description = "Prometheus/OpenMetrics text", content_type = "application/openmetrics-text", body = String)))]
pub async fn metrics(State(s): State<AppState>) -> Response {
    metrics_text(&s.observe, &s.queue).await
}
