//! Message authentication: DKIM signing keys (`/api/v1/dkim-signing-keys`),
//! after Exchange Online's New-/Get-/Set-/Rotate-DkimSigningConfig — a key
//! is generated (or its PEM imported), its DNS record shown to be
//! published, then activated; the private key is sealed and never
//! returned — and the Sender Id agent's checks of inbound mail
//! (`/api/v1/sender-id-config`, Set-SenderIdConfig).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{List, Meta};
use crate::config::{Change, ServiceError, Snapshot};
use crate::model::Invalid;
use crate::model::dkim::{DkimKeyState, DkimSigningKey};
use crate::store::Stored;

/// A DKIM signing key as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DkimSigningKeyView {
    #[serde(flatten)]
    pub meta: Meta,
    #[serde(flatten)]
    pub key: DkimSigningKey,
    /// Where to publish the record: `<selector>._domainkey.<domain>`.
    pub dns_record_name: String,
    /// The TXT record to publish there.
    pub dns_record: String,
}

fn view(k: &Stored<DkimSigningKey>) -> DkimSigningKeyView {
    DkimSigningKeyView {
        meta: k.into(),
        dns_record_name: k.spec.record_name(),
        dns_record: k.spec.record(),
        key: k.spec.clone(),
    }
}

/// What DNS holds for a key.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DkimDnsCheck {
    pub dns_record_name: String,
    /// The record Ferry expects.
    pub expected: String,
    /// The TXT records found there.
    pub found: Vec<String>,
    /// One of them publishes this key.
    pub published: bool,
    /// Why the lookup failed, when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/dkim-signing-keys", tag = "message-authentication",
    responses((status = 200, body = List<DkimSigningKeyView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<DkimSigningKeyView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap.dkim_keys.iter().map(view).collect(),
    })
}

fn find<'a>(snap: &'a Snapshot, id: &str) -> Result<&'a Stored<DkimSigningKey>, ApiError> {
    crate::config::find::<DkimSigningKey>(snap, id)
        .ok_or_else(|| ApiError::not_found(format!("DKIM signing key '{id}' does not exist")))
}

#[utoipa::path(get, path = "/api/v1/dkim-signing-keys/{id}", tag = "message-authentication",
    params(("id" = String, Path, description = "Id or `<selector>._domainkey.<domain>`")),
    responses((status = 200, body = DkimSigningKeyView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<DkimSigningKeyView>, ApiError> {
    let snap = s.config.snapshot();
    let k = find(&snap, &id)?;
    Ok(ok(k.version, view(k)))
}

/// Other keys of the domain that an active key retires.
fn retiring(
    snap: &Snapshot,
    key: &DkimSigningKey,
    except: Option<uuid::Uuid>,
) -> Vec<(uuid::Uuid, i64, DkimSigningKey)> {
    if key.state != DkimKeyState::Active {
        return vec![];
    }
    snap.dkim_keys
        .iter()
        .filter(|k| Some(k.id) != except)
        .filter(|k| k.spec.state == DkimKeyState::Active && k.spec.domain == key.domain)
        .map(|k| {
            let mut spec = k.spec.clone();
            spec.state = DkimKeyState::Retired;
            (k.id, k.version, spec)
        })
        .collect()
}

#[utoipa::path(post, path = "/api/v1/dkim-signing-keys", tag = "message-authentication",
    request_body = super::openapi::DkimSigningKeyCreate,
    responses((status = 201, body = DkimSigningKeyView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<DkimSigningKeyView>, ApiError> {
    let today = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!("[year][month][day]"))
        .unwrap_or_default();
    let mut key = DkimSigningKey::from_create(&body, &today)?;
    let pem = match body.get("privateKeyPem") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) => Some(p.clone()),
        Some(_) => return Err(Invalid::field("privateKeyPem", "must be a PEM string").into()),
    };
    let alg = key.algorithm;
    // RSA key generation is seconds of CPU: off the async workers.
    let pair = tokio::task::spawn_blocking(move || match pem {
        Some(p) => {
            crate::agents::dkim::import(&p, alg).map_err(|m| Invalid::field("privateKeyPem", m))
        }
        None => crate::agents::dkim::generate(alg).map_err(|m| Invalid::field("algorithm", m)),
    })
    .await
    .map_err(|e| ApiError::from(ServiceError::Internal(e.into())))??;
    key.public_key = pair.public_b64;
    let secrets = s.config.secrets.clone();
    let stored = s
        .config
        .create::<DkimSigningKey>(|snap, id| {
            if let Some(existing) = crate::config::find::<DkimSigningKey>(snap, &key.record_name())
            {
                return Err(ServiceError::Conflict {
                    field: Some("selector".into()),
                    message: format!("{} is already key {}", key.record_name(), existing.id),
                });
            }
            Ok(Change {
                also: retiring(snap, &key, None),
                secret: Some(secrets.seal(&id.to_string(), &pair.private)),
                spec: key,
            })
        })
        .await?;
    Ok(created(stored.version, view(&stored)))
}

#[utoipa::path(patch, path = "/api/v1/dkim-signing-keys/{id}", tag = "message-authentication",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::DkimSigningKeyPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = DkimSigningKeyView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<DkimSigningKeyView>, ApiError> {
    let obj = body
        .as_object()
        .ok_or_else(|| Invalid::field("", "the body must be a JSON object"))?;
    for k in obj.keys() {
        if k != "state" {
            return Err(Invalid::field(
                k,
                "only state changes; make a new key for another domain, selector or algorithm",
            )
            .into());
        }
    }
    let stored = s
        .config
        .update::<DkimSigningKey>(&id, if_match, |snap, current| {
            let mut next = current.spec.clone();
            next.state = crate::model::from_json(obj["state"].clone()).map_err(|_: Invalid| {
                Invalid::field("state", "must be Published, Active or Retired")
            })?;
            Ok(Change {
                also: retiring(snap, &next, Some(current.id)),
                secret: None,
                spec: next,
            })
        })
        .await?;
    Ok(ok(stored.version, view(&stored)))
}

#[utoipa::path(delete, path = "/api/v1/dkim-signing-keys/{id}", tag = "message-authentication",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<DkimSigningKey>(&id, if_match, |_, k| {
            if k.spec.state == DkimKeyState::Active {
                return Err(ServiceError::Conflict {
                    field: Some("state".into()),
                    message: "the key signs mail: activate another key of the domain, or retire this one, first".into(),
                });
            }
            Ok(())
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/dkim-signing-keys/{id}/dns-check", tag = "message-authentication",
    params(("id" = String, Path)),
    responses((status = 200, body = DkimDnsCheck),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn dns_check(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<DkimDnsCheck>, ApiError> {
    let snap = s.config.snapshot();
    let k = find(&snap, &id)?;
    let ts = &snap.transport.spec;
    let servers = ts.external_lookup_servers();
    let name = k.spec.record_name();
    let dns = crate::routing::dns::Dns::default();
    let (found, error) =
        match tokio::time::timeout(std::time::Duration::from_secs(10), dns.txt(&servers, &name))
            .await
        {
            Ok(Ok(found)) => (found, None),
            Ok(Err(e)) => (vec![], Some(e)),
            Err(_) => (vec![], Some("no DNS answer within 10 s".to_string())),
        };
    Ok(Json(DkimDnsCheck {
        published: found.iter().any(|t| k.spec.published_in(t)),
        expected: k.spec.record(),
        dns_record_name: name,
        found,
        error,
    }))
}

/// Set-SenderIdConfig as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SenderIdConfigView {
    /// 0 until first changed; sent as the ETag, expected in If-Match.
    pub version: i64,
    #[serde(flatten)]
    pub config: crate::model::sender_id::SenderIdConfig,
}

#[utoipa::path(get, path = "/api/v1/sender-id-config", tag = "message-authentication",
    responses((status = 200, body = SenderIdConfigView, headers(("ETag" = String)))))]
pub async fn get_sender_id(State(s): State<AppState>) -> Tagged<SenderIdConfigView> {
    let c = s.config.snapshot().anti_spam.sender_id_config.clone();
    ok(
        c.version,
        SenderIdConfigView {
            version: c.version,
            config: c.spec,
        },
    )
}

#[utoipa::path(patch, path = "/api/v1/sender-id-config", tag = "message-authentication",
    params(("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::SenderIdConfigPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = SenderIdConfigView, headers(("ETag" = String))),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch_sender_id(
    State(s): State<AppState>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<SenderIdConfigView>, ApiError> {
    let c = s
        .config
        .update_setting(
            crate::config::setting::SENDER_ID_CONFIG,
            |snap| &snap.anti_spam.sender_id_config,
            if_match,
            |_, current| Ok(current.patched(&body)?),
        )
        .await?;
    Ok(ok(
        c.version,
        SenderIdConfigView {
            version: c.version,
            config: c.spec,
        },
    ))
}

#[utoipa::path(get, path = "/api/v1/spf-check", tag = "message-authentication",
    responses((status = 200, body = List<crate::agents::sender_auth::DomainSpfCheck>)))]
/// Whether each accepted domain's published SPF record authorizes the
/// addresses its mail leaves from (an explain-style lint; nothing is
/// assumed: an address Ferry cannot know is reported as unknown).
pub async fn spf_check(
    State(s): State<AppState>,
) -> Json<List<crate::agents::sender_auth::DomainSpfCheck>> {
    let snap = s.config.snapshot();
    Json(List {
        items: crate::agents::sender_auth::spf_lint(&snap).await,
    })
}

/// DMARC aggregate reports: what is counted and not yet reported, and the
/// reports made (newest first, as long as the tracking log keeps them).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DmarcReportsView {
    /// `dmarcReportsEnabled` of the Sender Id configuration.
    pub enabled: bool,
    pub pending: Vec<crate::store::dmarc::Pending>,
    pub reports: Vec<crate::store::dmarc::ReportRow>,
}

#[utoipa::path(get, path = "/api/v1/dmarc-reports", tag = "message-authentication",
    responses((status = 200, body = DmarcReportsView)))]
pub async fn dmarc_reports(State(s): State<AppState>) -> Result<Json<DmarcReportsView>, ApiError> {
    let pool = s.smtp.dmarc_reports_pool().await;
    let internal = |e| ApiError::from(ServiceError::Internal(e));
    Ok(Json(DmarcReportsView {
        enabled: s
            .config
            .snapshot()
            .anti_spam
            .sender_id_config
            .spec
            .dmarc_reports_enabled,
        pending: crate::store::dmarc::pending(pool).await.map_err(internal)?,
        reports: crate::store::dmarc::reports(pool, 500)
            .await
            .map_err(internal)?,
    }))
}

/// The reports one "send now" made.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DmarcReportsSent {
    pub reports: Vec<crate::store::dmarc::ReportRow>,
}

/// Ends the current reporting period now and queues the reports of every
/// ended period (otherwise done once a day, after midnight UTC).
#[utoipa::path(post, path = "/api/v1/dmarc-reports/send", tag = "message-authentication",
    responses((status = 200, body = DmarcReportsSent),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn send_dmarc_reports(
    State(s): State<AppState>,
) -> Result<Json<DmarcReportsSent>, ApiError> {
    let on = s
        .config
        .snapshot()
        .anti_spam
        .sender_id_config
        .spec
        .dmarc_reports_enabled;
    if !on {
        return Err(reports_off(
            "DMARC aggregate reports",
            "dmarcReportsEnabled",
            "sender-id-config",
        ));
    }
    let reports = s.smtp.send_dmarc_reports().await.map_err(unavailable)?;
    Ok(Json(DmarcReportsSent { reports }))
}

/// TLS reports (RFC 8460): sessions counted and not yet reported, and the
/// reports made (newest first, as long as the tracking log keeps them).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsReportsView {
    /// `tlsReportsEnabled` of the transport settings.
    pub enabled: bool,
    pub pending: Vec<crate::store::tlsrpt::TlsPending>,
    pub reports: Vec<crate::store::tlsrpt::TlsReportRow>,
}

#[utoipa::path(get, path = "/api/v1/tls-reports", tag = "message-authentication",
    responses((status = 200, body = TlsReportsView)))]
pub async fn tls_reports(State(s): State<AppState>) -> Result<Json<TlsReportsView>, ApiError> {
    let pool = s.smtp.dmarc_reports_pool().await;
    let internal = |e| ApiError::from(ServiceError::Internal(e));
    Ok(Json(TlsReportsView {
        enabled: s.config.snapshot().transport.spec.tls_reports_enabled,
        pending: crate::store::tlsrpt::pending(pool)
            .await
            .map_err(internal)?,
        reports: crate::store::tlsrpt::reports(pool, 500)
            .await
            .map_err(internal)?,
    }))
}

/// The reports one "send now" made.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsReportsSent {
    pub reports: Vec<crate::store::tlsrpt::TlsReportRow>,
}

/// Ends the current reporting period now and queues the TLS reports of
/// every ended period (otherwise done once a day, after midnight UTC).
#[utoipa::path(post, path = "/api/v1/tls-reports/send", tag = "message-authentication",
    responses((status = 200, body = TlsReportsSent),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 503, body = Problem, content_type = "application/problem+json")))]
pub async fn send_tls_reports(State(s): State<AppState>) -> Result<Json<TlsReportsSent>, ApiError> {
    if !s.config.snapshot().transport.spec.tls_reports_enabled {
        return Err(reports_off(
            "TLS reports",
            "tlsReportsEnabled",
            "transport-settings",
        ));
    }
    let reports = s.smtp.send_tls_reports().await.map_err(unavailable)?;
    Ok(Json(TlsReportsSent { reports }))
}

/// `409`: reports of this kind are switched off, and where to switch them on.
fn reports_off(what: &str, field: &str, resource: &str) -> ApiError {
    ApiError::conflict(format!("{what} are off: set {field} in /api/v1/{resource}"))
        .with_field(field, "is false")
}

/// `503`: the reports could not be made now (DNS, the queue).
fn unavailable(e: anyhow::Error) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        "Service Unavailable",
        format!("{e:#}; try again later"),
    )
}
