//! The REST API: axum routers, bearer-token auth, problem+json errors, and
//! the OpenAPI document generated from the handlers. Only `/healthz`, the
//! API docs and the dashboard's static files are reachable without a token.

mod accepted_domains;
pub mod access;
mod acme;
mod anti_spam;
mod api_tokens;
mod audit;
mod certificates;
pub mod config_doc;
mod content;
pub mod contract;
mod credentials;
mod drain;
mod extract;
mod fleet;
pub use queues::local_views as queue_views;
pub mod https;
mod message_auth;
pub mod observe;
pub mod openapi;
mod problem;
mod queues;
mod receive_connectors;
mod recipients;
mod routing;
mod send_connectors;
mod transport_settings;
mod views;
mod webhooks;

use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::Arc;
use utoipa::{OpenApi, ToSchema};
use utoipa_swagger_ui::SwaggerUi;

use crate::config::ConfigService;
use crate::model::Role;
pub use problem::{ApiError, Problem};

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<ConfigService>,
    pub smtp: Arc<crate::smtp::server::SmtpServer>,
    pub queue: crate::queue::Queue,
    pub delivery: Arc<crate::queue::delivery::DeliveryEngine>,
    pub observe: Arc<crate::observe::Observer>,
    /// The recipient directory Ferry holds.
    pub directory: Arc<crate::directory::Directory>,
    /// The API tokens that work, with their roles.
    pub tokens: Arc<access::Tokens>,
    /// Wrong tokens per client address: past the transport settings'
    /// `authFailureLockoutThreshold` within `authFailureLockoutWindow`, the
    /// address gets `429` until the window has passed.
    pub api_failures: Arc<crate::smtp::server::auth_guard::Failures>,
    /// The API is served over HTTPS: responses carry HSTS.
    pub https: bool,
    /// Web origins allowed to call the API from a browser (CORS); none by
    /// default, so only the dashboard, served from the API's own origin, can.
    pub cors_origins: Arc<Vec<HeaderValue>>,
    /// Where a configuration document's `{"file": …}` secrets are read
    /// (`--secrets-dir`); none: only `{"env": …}` references work.
    pub secrets_dir: Option<Arc<std::path::PathBuf>>,
    /// The ACME certificates' orders and renewals.
    pub acme: Arc<crate::tls::acme::Acme>,
}

/// The server this API manages.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerInfo {
    pub role: Role,
    pub server_name: String,
    pub fqdn: String,
    /// Ferry's version.
    pub version: String,
    /// Increases with every configuration change.
    pub config_generation: u64,
    /// Whether the server is being drained (`POST /api/v1/server/drain`).
    pub drain: drain::DrainStatus,
}

#[utoipa::path(get, path = "/api/v1/server", tag = "server", responses((status = 200, body = ServerInfo)))]
async fn server_info(State(s): State<AppState>) -> Result<Json<ServerInfo>, ApiError> {
    let snap = s.config.snapshot();
    let drain = drain::status(&s).await?;
    Ok(Json(ServerInfo {
        role: snap.ctx.role,
        server_name: snap.ctx.server_name.clone(),
        fqdn: snap.ctx.fqdn.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        config_generation: snap.generation,
        drain,
    }))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// `ok`; `backpressure` while new mail is refused for lack of disk or
    /// memory (still 200: Ferry works, senders retry); `failing` (503)
    /// when Ferry cannot take mail safely.
    pub status: String,
    /// Why it is failing.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Which resources are past their back-pressure threshold, with figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back_pressure: Option<String>,
}

#[utoipa::path(get, path = "/healthz", tag = "server", security(),
    responses((status = 200, body = Health), (status = 503, body = Health)))]
async fn healthz(State(s): State<AppState>) -> (axum::http::StatusCode, Json<Health>) {
    let back_pressure = s.queue.health.back_pressure();
    match s.queue.health.failure() {
        None => (
            axum::http::StatusCode::OK,
            Json(Health {
                status: if back_pressure.is_some() {
                    "backpressure"
                } else {
                    "ok"
                }
                .into(),
                reason: None,
                back_pressure,
            }),
        ),
        Some(reason) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Json(Health {
                status: "failing".into(),
                reason: Some(reason),
                back_pressure,
            }),
        ),
    }
}

/// The dashboard's files, embedded in the binary: an appliance is often
/// offline, so nothing is loaded from anywhere else (the CSP says so too).
const CSP: &str =
    "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'";

async fn index() -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        )],
        Html(include_str!("../../web/index.html")),
    )
}

async fn app_js() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        include_str!("../../web/app.js"),
    )
}

async fn app_css() -> impl IntoResponse {
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/css; charset=utf-8"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        include_str!("../../web/app.css"),
    )
}

/// A router that serves only `/metrics`, without a token, for a separate
/// listen address (`--metrics-listen`) that Prometheus can scrape.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(observe::metrics))
        .fallback(not_found)
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such resource")
}

pub fn router(state: AppState) -> Router {
    contract::prepare();
    let https = state.https;
    let cors_origins = state.cors_origins.clone();
    use axum::routing::{get as g, patch as p};
    let api = Router::new()
        .route("/api/v1/server", g(server_info))
        .route("/api/v1/servers", g(fleet::list))
        .route("/api/v1/server/drain", axum::routing::post(drain::drain))
        .route("/api/v1/server/resume", axum::routing::post(drain::resume))
        .route(
            "/api/v1/receive-connectors",
            g(receive_connectors::list).post(receive_connectors::create),
        )
        .route(
            "/api/v1/config",
            g(config_doc::export).put(config_doc::apply),
        )
        .route("/api/v1/webhooks", g(webhooks::list).post(webhooks::create))
        .route(
            "/api/v1/webhooks/{id}",
            g(webhooks::get)
                .patch(webhooks::patch)
                .delete(webhooks::delete),
        )
        .route("/api/v1/webhooks/{id}/deliveries", g(webhooks::deliveries))
        .route(
            "/api/v1/routing/explain",
            axum::routing::post(routing::explain),
        )
        .route(
            "/api/v1/receive-connectors/explain",
            axum::routing::post(receive_connectors::explain),
        )
        .route(
            "/api/v1/receive-connectors/{id}",
            g(receive_connectors::get)
                .patch(receive_connectors::patch)
                .delete(receive_connectors::delete),
        )
        .route(
            "/api/v1/send-connectors",
            g(send_connectors::list).post(send_connectors::create),
        )
        .route(
            "/api/v1/send-connectors/{id}",
            g(send_connectors::get)
                .patch(send_connectors::patch)
                .delete(send_connectors::delete),
        )
        .route(
            "/api/v1/accepted-domains",
            g(accepted_domains::list).post(accepted_domains::create),
        )
        .route(
            "/api/v1/accepted-domains/{id}",
            g(accepted_domains::get)
                .patch(accepted_domains::patch)
                .delete(accepted_domains::delete),
        )
        .route(
            "/api/v1/credentials",
            g(credentials::list).post(credentials::create),
        )
        .route(
            "/api/v1/credentials/{id}",
            g(credentials::get)
                .patch(credentials::patch)
                .delete(credentials::delete),
        )
        .route(
            "/api/v1/certificates",
            g(certificates::list).post(certificates::create),
        )
        .route(
            "/api/v1/acme-certificates",
            g(acme::list).post(acme::create),
        )
        .route(
            "/api/v1/acme-certificates/{id}",
            g(acme::get).patch(acme::patch).delete(acme::delete),
        )
        .route(
            "/api/v1/acme-certificates/{id}/renew",
            axum::routing::post(acme::renew),
        )
        .route(
            "/api/v1/certificates/{id}",
            g(certificates::get)
                .patch(certificates::patch)
                .delete(certificates::delete),
        )
        .route(
            "/api/v1/recipients",
            g(recipients::list)
                .post(recipients::create)
                .put(recipients::replace)
                .layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route(
            "/api/v1/recipients/bulk",
            axum::routing::post(recipients::bulk_add)
                .layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route(
            "/api/v1/recipients/{address}",
            g(recipients::get).delete(recipients::delete),
        )
        .route(
            "/api/v1/sender-filter-config",
            g(anti_spam::get_sender_filter).patch(anti_spam::patch_sender_filter),
        )
        .route(
            "/api/v1/recipient-filter-config",
            g(anti_spam::get_recipient_filter).patch(anti_spam::patch_recipient_filter),
        )
        .route(
            "/api/v1/attachment-filter-config",
            g(anti_spam::get_attachment_filter).patch(anti_spam::patch_attachment_filter),
        )
        .route(
            "/api/v1/attachment-filter-entries",
            axum::routing::post(anti_spam::add_attachment_entry),
        )
        .route(
            "/api/v1/attachment-filter-entries/{identity}",
            axum::routing::delete(anti_spam::remove_attachment_entry),
        )
        .route(
            "/api/v1/content-filter-config",
            g(content::get_content_filter).patch(content::patch_content_filter),
        )
        .route(
            "/api/v1/address-rewrite-entries",
            g(content::list_rewrites).post(content::create_rewrite),
        )
        .route(
            "/api/v1/address-rewrite-entries/{name}",
            g(content::get_rewrite)
                .patch(content::patch_rewrite)
                .delete(content::delete_rewrite),
        )
        .route(
            "/api/v1/transport-rules",
            g(content::list_rules).post(content::create_rule),
        )
        .route(
            "/api/v1/transport-rules/{name}",
            g(content::get_rule)
                .patch(content::patch_rule)
                .delete(content::delete_rule),
        )
        .route("/api/v1/spf-check", g(message_auth::spf_check))
        .route("/api/v1/dmarc-reports", g(message_auth::dmarc_reports))
        .route("/api/v1/tls-reports", g(message_auth::tls_reports))
        .route(
            "/api/v1/tls-reports/send",
            axum::routing::post(message_auth::send_tls_reports),
        )
        .route(
            "/api/v1/dmarc-reports/send",
            axum::routing::post(message_auth::send_dmarc_reports),
        )
        .route(
            "/api/v1/sender-id-config",
            g(message_auth::get_sender_id).patch(message_auth::patch_sender_id),
        )
        .route(
            "/api/v1/dkim-signing-keys",
            g(message_auth::list).post(message_auth::create),
        )
        .route(
            "/api/v1/dkim-signing-keys/{id}",
            g(message_auth::get)
                .patch(message_auth::patch)
                .delete(message_auth::delete),
        )
        .route(
            "/api/v1/dkim-signing-keys/{id}/dns-check",
            g(message_auth::dns_check),
        )
        .route("/api/v1/transport-agents", g(anti_spam::agents))
        .route(
            "/api/v1/transport-agents/{identity}",
            p(anti_spam::patch_agent),
        )
        .route(
            "/api/v1/ip-block-list-config",
            g(anti_spam::block::get_config).patch(anti_spam::block::patch_config),
        )
        .route(
            "/api/v1/ip-block-list-entries",
            g(anti_spam::block::list_entries).post(anti_spam::block::create_entry),
        )
        .route(
            "/api/v1/ip-block-list-entries/bulk",
            axum::routing::post(anti_spam::block::create_entries)
                .layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route(
            "/api/v1/ip-block-list-entries/{id}",
            g(anti_spam::block::get_entry).delete(anti_spam::block::delete_entry),
        )
        .route(
            "/api/v1/ip-block-list-providers",
            g(anti_spam::block::list_providers).post(anti_spam::block::create_provider),
        )
        .route(
            "/api/v1/ip-block-list-providers/{id}",
            g(anti_spam::block::get_provider)
                .patch(anti_spam::block::patch_provider)
                .delete(anti_spam::block::delete_provider),
        )
        .route(
            "/api/v1/ip-allow-list-config",
            g(anti_spam::allow::get_config).patch(anti_spam::allow::patch_config),
        )
        .route(
            "/api/v1/ip-allow-list-entries",
            g(anti_spam::allow::list_entries).post(anti_spam::allow::create_entry),
        )
        .route(
            "/api/v1/ip-allow-list-entries/bulk",
            axum::routing::post(anti_spam::allow::create_entries)
                .layer(axum::extract::DefaultBodyLimit::max(64 << 20)),
        )
        .route(
            "/api/v1/ip-allow-list-entries/{id}",
            g(anti_spam::allow::get_entry).delete(anti_spam::allow::delete_entry),
        )
        .route(
            "/api/v1/ip-allow-list-providers",
            g(anti_spam::allow::list_providers).post(anti_spam::allow::create_provider),
        )
        .route(
            "/api/v1/ip-allow-list-providers/{id}",
            g(anti_spam::allow::get_provider)
                .patch(anti_spam::allow::patch_provider)
                .delete(anti_spam::allow::delete_provider),
        )
        .route("/api/v1/queues", g(queues::list))
        .route("/api/v1/queues/{id}", g(queues::get))
        .route(
            "/api/v1/queues/{id}/retry",
            axum::routing::post(queues::retry),
        )
        .route(
            "/api/v1/queues/{id}/suspend",
            axum::routing::post(queues::suspend),
        )
        .route(
            "/api/v1/queues/{id}/resume",
            axum::routing::post(queues::resume),
        )
        .route("/api/v1/messages", g(queues::messages))
        .route("/api/v1/messages/bulk", axum::routing::post(queues::bulk))
        .route(
            "/api/v1/messages/{id}",
            g(queues::message).delete(queues::remove),
        )
        .route("/api/v1/messages/{id}/raw", g(queues::raw))
        .route(
            "/api/v1/messages/{id}/suspend",
            axum::routing::post(queues::suspend_message),
        )
        .route(
            "/api/v1/messages/{id}/resume",
            axum::routing::post(queues::resume_message),
        )
        .route(
            "/api/v1/messages/{id}/resubmit",
            axum::routing::post(queues::resubmit),
        )
        .route(
            "/api/v1/transport-settings",
            g(transport_settings::get).merge(p(transport_settings::patch)),
        )
        .route(
            "/api/v1/api-tokens",
            g(api_tokens::list).post(api_tokens::create),
        )
        .route(
            "/api/v1/api-tokens/{id}",
            g(api_tokens::get).delete(api_tokens::revoke),
        )
        .route(
            "/api/v1/api-tokens/{id}/rotate",
            axum::routing::post(api_tokens::rotate),
        )
        .route("/api/v1/tracking", g(observe::tracking))
        .route("/api/v1/protocol-logs", g(observe::protocol_logs))
        .route("/metrics", g(observe::metrics))
        .route("/api/v1/audit-log", g(audit::search))
        // The outer layer authenticates and authorizes; the inner one
        // records every mutation that got past it.
        // Innermost: a query string the OpenAPI document refuses is 400.
        .route_layer(middleware::from_fn(contract::query_layer))
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            access::require_token,
        ))
        .with_state(state.clone());
    Router::new()
        .route("/healthz", get(healthz).with_state(state))
        .route("/", get(index))
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .merge(SwaggerUi::new("/docs").url("/api/v1/openapi.json", openapi::ApiDoc::openapi()))
        .merge(api)
        .fallback(not_found)
        .layer(middleware::from_fn(harden))
        .layer(middleware::from_fn_with_state(https, hsts))
        .layer(cors(&cors_origins))
}

/// CORS for the origins given with `--api-cors-origin`, and no other:
/// without any, no `Access-Control-Allow-Origin` is ever sent and browsers
/// keep other sites' pages from reading the API. Preflights are answered
/// here, before authentication (they carry no token).
fn cors(origins: &[HeaderValue]) -> tower_http::cors::CorsLayer {
    use axum::http::Method;
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return CorsLayer::new();
    }
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins.iter().cloned()))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::IF_MATCH,
        ])
        .expose_headers([header::ETAG, header::RETRY_AFTER, header::LOCATION])
        .max_age(std::time::Duration::from_secs(600))
}

/// Over HTTPS, browsers are told to come back only over HTTPS (a year).
async fn hsts(State(https): State<bool>, req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    if https {
        resp.headers_mut().insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    resp
}

/// Applied to every response, whoever produced it (our handlers, axum's
/// own rejections, Swagger UI): `nosniff` everywhere, a CSP on the docs
/// as on the dashboard, and an RFC 7807 body for every error that does
/// not already carry one (405 from the router, 413 from the body limit,
/// a path that does not parse…), so clients parse one error format.
async fn harden(req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with("/docs");
    let mut resp = next.run(req).await;
    let status = resp.status();
    let is_problem = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if (status.is_client_error() || status.is_server_error()) && !is_problem {
        let (parts, body) = resp.into_parts();
        let text = axum::body::to_bytes(body, 64 * 1024)
            .await
            .map(|b| String::from_utf8_lossy(&b).trim().to_string())
            .unwrap_or_default();
        let detail = if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            text
        };
        let kind = match status.as_u16() {
            405 => "method-not-allowed",
            413 => "payload-too-large",
            415 => "unsupported-media-type",
            s if s >= 500 => "internal",
            _ => "malformed-request",
        };
        let mut problem = problem::ApiError::new(
            status,
            kind,
            status.canonical_reason().unwrap_or("Error"),
            detail,
        )
        .into_response();
        for (name, value) in parts.headers.iter() {
            if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
                problem.headers_mut().insert(name.clone(), value.clone());
            }
        }
        resp = problem;
    }
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Never framed, never a referrer: on every response, JSON included.
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("frame-ancestors 'none'"),
        );
    }
    if docs {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(DOCS_CSP),
        );
    }
    resp
}

/// Swagger UI is served from the binary like the dashboard; its page sets
/// inline styles, so only styles get 'unsafe-inline'.
const DOCS_CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
     object-src 'none'; frame-ancestors 'none'";
