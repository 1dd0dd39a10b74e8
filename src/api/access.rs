//! Who may call the API, and what each caller may do: the named tokens
//! (bootstrap admin token included), the role each route needs, and the
//! middleware that checks both before any handler reads the request.
//!
//! The role a route needs is decided here, from its method and path
//! template, and nowhere else: the OpenAPI document states the same role
//! for each operation (its bearer security requirement's scope), and a test
//! walks the document to check that every route enforces it.

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{ApiError, AppState};
use crate::model::api_token::{ApiRole, ApiToken};
use crate::secrets::hash_token;
use crate::store::Store;
use crate::store::api_tokens::TokenRow;

/// The authenticated caller, put in the request's extensions for the
/// handlers and the audit log.
#[derive(Debug, Clone)]
pub struct Caller {
    pub token_id: String,
    /// The token's name.
    pub name: String,
    pub role: ApiRole,
    pub addr: Option<IpAddr>,
}

/// Non-GET routes an Operator may call: the queue viewer's actions.
const OPERATOR_ACTIONS: &[(&str, &str)] = &[
    ("POST", "/api/v1/queues/{id}/retry"),
    ("POST", "/api/v1/queues/{id}/suspend"),
    ("POST", "/api/v1/queues/{id}/resume"),
    ("DELETE", "/api/v1/messages/{id}"),
    ("POST", "/api/v1/messages/bulk"),
    ("POST", "/api/v1/messages/{id}/suspend"),
    ("POST", "/api/v1/messages/{id}/resume"),
    ("POST", "/api/v1/messages/{id}/resubmit"),
];

/// POST routes that ask a question and change nothing (a body too rich
/// for a query string): View-Only may call them, and the audit log, which
/// records changes, leaves them out.
const QUESTIONS: &[&str] = &[
    "/api/v1/receive-connectors/explain",
    "/api/v1/routing/explain",
];

/// The role a route needs, by method and path template (`{id}` style).
pub fn required_role(method: &Method, template: &str) -> ApiRole {
    if template.starts_with("/api/v1/api-tokens") {
        return ApiRole::Administrator;
    }
    if method == Method::POST && QUESTIONS.contains(&template) {
        return ApiRole::ViewOnly;
    }
    if method == Method::GET || method == Method::HEAD {
        // A message's content is the one thing a GET shows that View-Only
        // must not read (Exchange: the queue viewer's Export-Message).
        if template == "/api/v1/messages/{id}/raw" {
            return ApiRole::Operator;
        }
        return ApiRole::ViewOnly;
    }
    if OPERATOR_ACTIONS
        .iter()
        .any(|(m, p)| method.as_str() == *m && template == *p)
    {
        return ApiRole::Operator;
    }
    ApiRole::Administrator
}

/// A working token, as the middleware looks it up.
struct Entry {
    id: String,
    name: String,
    role: ApiRole,
    expires_at: Option<OffsetDateTime>,
    /// When its last use was written to the store, and from where: uses
    /// are written at most once a minute per token and address.
    persisted: Mutex<Option<(Instant, IpAddr)>>,
}

/// The tokens that are not revoked, by the SHA-256 of their secret.
pub struct Tokens {
    store: Store,
    by_hash: RwLock<HashMap<String, Arc<Entry>>>,
    /// The same tokens, by the thumbprint of their client certificate.
    by_certificate: RwLock<HashMap<String, Arc<Entry>>>,
}

fn parse_time(s: &Option<String>) -> Option<OffsetDateTime> {
    s.as_deref()
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
}

pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .expect("0 is valid")
        .format(&Rfc3339)
        .expect("UTC times format")
}

impl Tokens {
    pub async fn load(store: Store) -> anyhow::Result<Arc<Tokens>> {
        let t = Arc::new(Tokens {
            store,
            by_hash: RwLock::default(),
            by_certificate: RwLock::default(),
        });
        t.reload().await?;
        Ok(t)
    }

    /// Re-reads the tokens after a change.
    pub async fn reload(&self) -> anyhow::Result<()> {
        let rows = self.store.api_tokens().await?;
        let mut map = HashMap::new();
        let mut certs = HashMap::new();
        for r in rows.into_iter().filter(|r| r.revoked_at.is_none()) {
            let Ok(role) = r.role.parse() else { continue };
            let e = Arc::new(Entry {
                expires_at: parse_time(&r.expires_at),
                id: r.id,
                name: r.name,
                role,
                persisted: Mutex::new(None),
            });
            if let Some(c) = r.client_certificate_sha256 {
                certs.insert(c, e.clone());
            }
            map.insert(r.token_sha256, e);
        }
        *self.by_hash.write().expect("not poisoned") = map;
        *self.by_certificate.write().expect("not poisoned") = certs;
        Ok(())
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Whether any working token is bound to a client certificate (then
    /// HTTPS clients are asked for one).
    pub fn any_client_certificate(&self) -> bool {
        !self.by_certificate.read().expect("not poisoned").is_empty()
    }

    /// The caller a presented secret stands for; `Err` names why not.
    fn authenticate(&self, secret: &str, addr: Option<IpAddr>) -> Result<Caller, &'static str> {
        let entry = self
            .by_hash
            .read()
            .expect("not poisoned")
            .get(&hash_token(secret))
            .cloned()
            .ok_or("the token is not known, or was revoked")?;
        self.admit(entry, addr)
    }

    /// The token a client certificate (its SHA-256) stands for, if any.
    fn authenticate_certificate(
        &self,
        sha256: &str,
        addr: Option<IpAddr>,
    ) -> Option<Result<Caller, &'static str>> {
        let entry = self
            .by_certificate
            .read()
            .expect("not poisoned")
            .get(sha256)
            .cloned()?;
        Some(self.admit(entry, addr))
    }

    fn admit(&self, entry: Arc<Entry>, addr: Option<IpAddr>) -> Result<Caller, &'static str> {
        if entry
            .expires_at
            .is_some_and(|e| e <= OffsetDateTime::now_utc())
        {
            return Err("the token has expired");
        }
        if let Some(ip) = addr {
            let mut p = entry.persisted.lock().expect("not poisoned");
            let due = match *p {
                Some((at, from)) => from != ip || at.elapsed() >= Duration::from_secs(60),
                None => true,
            };
            if due {
                *p = Some((Instant::now(), ip));
                let store = self.store.clone();
                let id = entry.id.clone();
                tokio::spawn(async move {
                    if let Err(e) = store
                        .touch_api_token(&id, &now_rfc3339(), &ip.to_string())
                        .await
                    {
                        tracing::warn!(error = %format!("{e:#}"), "recording an API token's use");
                    }
                });
            }
        }
        Ok(Caller {
            token_id: entry.id.clone(),
            name: entry.name.clone(),
            role: entry.role,
            addr,
        })
    }
}

/// A stored token as the API shows it.
pub fn view(r: TokenRow) -> ApiToken {
    let now = OffsetDateTime::now_utc();
    let state = if r.revoked_at.is_some() {
        "Revoked"
    } else if parse_time(&r.expires_at).is_some_and(|e| e <= now) {
        "Expired"
    } else {
        "Active"
    };
    ApiToken {
        id: r.id.parse().unwrap_or_default(),
        name: r.name,
        role: r.role.parse().unwrap_or(ApiRole::ViewOnly),
        bootstrap: r.bootstrap,
        created_at: r.created_at,
        expires_at: r.expires_at,
        revoked_at: r.revoked_at,
        last_used_at: r.last_used_at,
        last_used_from: r.last_used_from,
        client_certificate_sha256: r.client_certificate_sha256,
        state: state.into(),
    }
}

fn too_many(ip: IpAddr, secs: u64) -> Response {
    let mut resp = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "too-many-requests",
        "Too Many Requests",
        format!("too many wrong tokens from {ip}; try again in {secs} s"),
    )
    .into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    resp
}

/// Authenticates the caller, then checks its role against the route's.
/// Wrong tokens count toward a per-address lockout (`429`); a missing
/// token does not (a browser's first visit, a probe of the routes).
pub async fn require_token(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<super::https::ApiPeer>>()
        .map(|c| c.0.clone());
    let ip = peer.as_ref().map(|p| p.addr.ip().to_canonical());
    let (threshold, window) = {
        let snap = s.config.snapshot();
        let ts = &snap.transport.spec;
        (
            ts.auth_failure_lockout_threshold,
            ts.auth_failure_lockout_window.duration(),
        )
    };
    if let Some(ip) = ip
        && let Some(wait) = s.api_failures.locked_out(ip, threshold, window)
    {
        s.observe.metrics.api_auth("throttled");
        return too_many(ip, wait.as_secs().max(1));
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let outcome = match (presented, peer.and_then(|p| p.client_certificate)) {
        (Some(secret), _) => s.tokens.authenticate(secret, ip),
        // Mutual TLS: a certificate bound to a token, and no bearer.
        (None, Some(cert)) => match s.tokens.authenticate_certificate(&cert, ip) {
            Some(r) => r,
            None => return ApiError::unauthorized().into_response(),
        },
        (None, None) => return ApiError::unauthorized().into_response(),
    };
    let caller = match outcome {
        Ok(c) => c,
        Err(why) => {
            s.observe.metrics.api_auth("refused");
            if let Some(ip) = ip {
                s.api_failures.failed(ip, window);
            }
            return ApiError::unauthorized()
                .with_detail(format!(
                    "{why}; send a valid API token as 'Authorization: Bearer <token>'"
                ))
                .into_response();
        }
    };
    let template = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let needed = required_role(req.method(), &template);
    if caller.role < needed {
        s.observe.metrics.api_auth("forbidden");
        let detail = format!(
            "{} {template} needs the {} role; token '{}' has the {} role",
            req.method(),
            needed.as_str(),
            caller.name,
            caller.role.as_str()
        );
        if !matches!(*req.method(), Method::GET | Method::HEAD) {
            super::audit::write(
                &s,
                &caller,
                req.method(),
                req.uri().path(),
                403,
                Some(detail.clone()),
                Default::default(),
            )
            .await;
        }
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "The token's role does not allow this",
            detail,
        )
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}
