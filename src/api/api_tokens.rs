//! `/api/v1/api-tokens`: named API tokens with a role and an optional
//! expiry (Administrator only). The secret is shown once, when the token is
//! made or rotated; only its SHA-256 is kept.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use utoipa::ToSchema;

use super::AppState;
use super::access::view;
use super::extract::JsonBody;
use super::problem::{ApiError, Problem};
use super::views::List;
use crate::config::{ServiceError, audit};
use crate::model::Invalid;
use crate::model::api_token::{ApiRole, ApiToken};
use crate::secrets::{generate_token, hash_token};
use crate::store::api_tokens::TokenRow;

/// A new API token.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTokenCreate {
    /// 1–64 characters: letters, digits, space, `.`, `_`, `-`, `@`.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = r"^[A-Za-z0-9][A-Za-z0-9 ._@-]{0,63}$"
    )]
    pub name: String,
    pub role: ApiRole,
    /// RFC 3339, in the future; none: the token does not expire.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// Bind a client certificate: its SHA-256 thumbprint (64 hex digits,
    /// colons allowed, as `openssl x509 -fingerprint -sha256` prints it).
    /// Over HTTPS, a client presenting it is this token without a bearer.
    #[serde(default)]
    #[schema(pattern = "^([0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$")]
    pub client_certificate_sha256: Option<String>,
}

/// A new secret for a token; the old one stops working at once.
#[derive(Debug, Deserialize, ToSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ApiTokenRotate {
    /// A new expiry (RFC 3339, in the future); absent keeps the current one.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
}

/// A token with its secret: shown once, never again.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiTokenSecret {
    #[serde(flatten)]
    pub token: ApiToken,
    /// Send it as `Authorization: Bearer <secret>`.
    pub secret: String,
}

fn internal(e: anyhow::Error) -> ApiError {
    ServiceError::Internal(e).into()
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || " ._@-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Invalid::field(
            "name",
            "1–64 characters: letters, digits, space, '.', '_', '-', '@', starting with a letter or digit",
        )
        .into())
    }
}

fn check_expiry(e: &Option<String>) -> Result<Option<String>, ApiError> {
    let Some(e) = e else { return Ok(None) };
    let t = OffsetDateTime::parse(e, &Rfc3339)
        .map_err(|_| Invalid::field("expiresAt", format!("'{e}' is not an RFC 3339 time")))?;
    if t <= OffsetDateTime::now_utc() {
        return Err(Invalid::field("expiresAt", "the expiry must be in the future").into());
    }
    Ok(Some(
        t.to_offset(time::UtcOffset::UTC)
            .replace_nanosecond(0)
            .expect("0 is valid")
            .format(&Rfc3339)
            .expect("UTC times format"),
    ))
}

fn parse<T: serde::de::DeserializeOwned>(body: serde_json::Value) -> Result<T, ApiError> {
    Ok(crate::model::from_json(body)?)
}

/// Tells the audit log what changed on a token (`/apiTokens/<name>…`).
fn note(
    name: &str,
    op: &str,
    field: &str,
    old: Option<serde_json::Value>,
    new: Option<serde_json::Value>,
) {
    audit::note([audit::FieldChange {
        op: op.into(),
        path: format!("/apiTokens/{}{field}", audit::pointer_token(name)),
        old,
        new,
    }]);
}

async fn find(s: &AppState, key: &str) -> Result<TokenRow, ApiError> {
    s.tokens
        .store()
        .api_tokens()
        .await
        .map_err(internal)?
        .into_iter()
        .find(|t| t.id.eq_ignore_ascii_case(key) || t.name.eq_ignore_ascii_case(key))
        .ok_or_else(|| ApiError::not_found(format!("API token '{key}' does not exist")))
}

/// Get-ManagementRoleAssignment, for API tokens: every token, revoked and
/// expired ones included, never their secrets.
#[utoipa::path(get, path = "/api/v1/api-tokens", tag = "api-tokens",
    responses((status = 200, body = List<ApiToken>)))]
pub async fn list(State(s): State<AppState>) -> Result<Json<List<ApiToken>>, ApiError> {
    let rows = s.tokens.store().api_tokens().await.map_err(internal)?;
    Ok(Json(List {
        items: rows.into_iter().map(view).collect(),
    }))
}

/// One token. A revoked one is gone (`410`): DELETE revoked it, and what
/// it was stays on record in the list and the audit log.
#[utoipa::path(get, path = "/api/v1/api-tokens/{id}", tag = "api-tokens",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 200, body = ApiToken),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 410, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApiToken>, ApiError> {
    let t = find(&s, &id).await?;
    if let Some(at) = &t.revoked_at {
        return Err(ApiError::new(
            axum::http::StatusCode::GONE,
            "gone",
            "The API token was revoked",
            format!(
                "API token '{}' was revoked at {at}; the list of tokens keeps its record",
                t.name
            ),
        ));
    }
    Ok(Json(view(t)))
}

/// Makes a token. Its secret is in this answer and nowhere else.
#[utoipa::path(post, path = "/api/v1/api-tokens", tag = "api-tokens",
    request_body = ApiTokenCreate,
    responses((status = 201, body = ApiTokenSecret),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<ApiTokenSecret>), ApiError> {
    let req: ApiTokenCreate = parse(body)?;
    check_name(&req.name)?;
    let expires = check_expiry(&req.expires_at)?;
    let cert = req
        .client_certificate_sha256
        .as_deref()
        .map(|c| {
            let hex: String = c.chars().filter(|c| *c != ':').collect();
            if hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(hex.to_ascii_lowercase())
            } else {
                Err(Invalid::field(
                    "clientCertificateSha256",
                    "must be a SHA-256 thumbprint: 64 hex digits, colons allowed",
                ))
            }
        })
        .transpose()?;
    let secret = format!("ferry_{}", generate_token());
    s.config.fleet_gate().await?;
    let id = s
        .tokens
        .store()
        .insert_api_token(
            &req.name,
            req.role.as_str(),
            &hash_token(&secret),
            expires.as_deref(),
            cert.as_deref(),
        )
        .await
        .map_err(internal)?
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "an API token named '{}' (or bound to this client certificate) already exists",
                req.name
            ))
            .with_field("name", "taken")
        })?;
    s.tokens.reload().await.map_err(internal)?;
    s.config.push_fleet().await;
    let row = find(&s, &id.to_string()).await?;
    note(
        &row.name,
        "add",
        "",
        None,
        Some(
            serde_json::json!({"role": row.role, "expiresAt": row.expires_at,
            "clientCertificateSha256": row.client_certificate_sha256}),
        ),
    );
    Ok((
        StatusCode::CREATED,
        Json(ApiTokenSecret {
            token: view(row),
            secret,
        }),
    ))
}

/// Revokes a token: it is refused (`401`) from now on and stays listed.
/// The last working Administrator token cannot be revoked.
#[utoipa::path(delete, path = "/api/v1/api-tokens/{id}", tag = "api-tokens",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 204),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&s, &id).await?;
    if row.revoked_at.is_some() {
        return Ok(StatusCode::NO_CONTENT);
    }
    s.config.fleet_gate().await?;
    if !s
        .tokens
        .store()
        .revoke_api_token(&row.id)
        .await
        .map_err(internal)?
    {
        return Err(ApiError::conflict(format!(
            "'{}' is the last working Administrator token; make another Administrator token first",
            row.name
        )));
    }
    s.tokens.reload().await.map_err(internal)?;
    s.config.push_fleet().await;
    note(
        &row.name,
        "add",
        "/revokedAt",
        None,
        Some(super::access::now_rfc3339().into()),
    );
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a token a new secret (shown once); the old secret stops working.
#[utoipa::path(post, path = "/api/v1/api-tokens/{id}/rotate", tag = "api-tokens",
    params(("id" = String, Path, description = "Id or name")),
    request_body(content = Option<ApiTokenRotate>, description = "Optional: a new expiry"),
    responses((status = 200, body = ApiTokenSecret),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn rotate(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<ApiTokenSecret>, ApiError> {
    // The body is optional: an empty one keeps the expiry.
    let req: ApiTokenRotate = if body.iter().all(u8::is_ascii_whitespace) {
        ApiTokenRotate::default()
    } else {
        let v = super::extract::parse_strict(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        parse(v)?
    };
    let row = find(&s, &id).await?;
    if row.revoked_at.is_some() {
        return Err(ApiError::conflict(format!(
            "'{}' is revoked; make a new token instead",
            row.name
        )));
    }
    let expires = check_expiry(&req.expires_at)?;
    let secret = format!("ferry_{}", generate_token());
    s.config.fleet_gate().await?;
    s.tokens
        .store()
        .rotate_api_token(
            &row.id,
            &hash_token(&secret),
            expires.as_ref().map(|e| Some(e.as_str())),
        )
        .await
        .map_err(internal)?;
    s.tokens.reload().await.map_err(internal)?;
    s.config.push_fleet().await;
    let old_expiry = row.expires_at.clone();
    let row = find(&s, &row.id).await?;
    let mask = || Some(serde_json::Value::from(audit::MASK));
    note(&row.name, "replace", "/secret", mask(), mask());
    if row.expires_at != old_expiry {
        note(
            &row.name,
            "replace",
            "/expiresAt",
            Some(old_expiry.into()),
            Some(row.expires_at.clone().into()),
        );
    }
    Ok(Json(ApiTokenSecret {
        token: view(row),
        secret,
    }))
}
