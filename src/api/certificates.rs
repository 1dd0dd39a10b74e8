//! `/api/v1/certificates`: import a PEM chain with its key, generate a
//! self-signed certificate, add a trust anchor. Private keys are sealed at
//! rest and never returned.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{CertificateView, List, certificate_uses, certificate_view};
use crate::config::{Change, ConfigObject, ServiceError};
use crate::model::{CertificateKind, CertificateRecord, DomainPattern, Invalid, from_json};
use crate::tls::certs;

/// Import a certificate chain (end-entity first) with its private key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImportCertificate {
    /// Always `import`: the discriminator, checked before parsing.
    #[allow(dead_code)]
    #[schema(schema_with = import_source)]
    pub source: String,
    #[schema(schema_with = crate::model::schema::friendly_name)]
    pub friendly_name: Option<String>,
    pub certificate_pem: String,
    /// PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM. Must belong to the certificate.
    pub private_key_pem: String,
}

/// Generate a self-signed certificate (ECDSA P-256, SHA-256).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelfSignedCertificate {
    /// Always `selfSigned`: the discriminator, checked before parsing.
    #[allow(dead_code)]
    #[schema(schema_with = self_signed_source)]
    pub source: String,
    #[schema(schema_with = crate::model::schema::friendly_name)]
    pub friendly_name: Option<String>,
    /// DNS names (`*.contoso.com` allowed) for the subjectAltName; the first is the CN unless `commonName` is given.
    pub subject_names: Vec<DomainPattern>,
    pub common_name: Option<String>,
    /// 1–3650, default 1825 (five years, as Exchange's own).
    #[schema(minimum = 1, maximum = 3650)]
    pub valid_days: Option<u32>,
}

/// Trust a peer's or a CA's certificate for outbound TLS validation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TrustAnchor {
    /// Always `trustAnchor`: the discriminator, checked before parsing.
    #[allow(dead_code)]
    #[schema(schema_with = trust_anchor_source)]
    pub source: String,
    #[schema(schema_with = crate::model::schema::friendly_name)]
    pub friendly_name: Option<String>,
    /// Exactly one certificate, in PEM.
    pub certificate_pem: String,
}

/// The `source` discriminator of a certificate to add: one fixed value.
fn source_schema(value: &str) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some([value]))
        .description(Some(format!(
            "Always `{value}`: the discriminator, checked before parsing."
        )))
        .build()
}

fn import_source() -> utoipa::openapi::Object {
    source_schema("import")
}
fn self_signed_source() -> utoipa::openapi::Object {
    source_schema("selfSigned")
}
fn trust_anchor_source() -> utoipa::openapi::Object {
    source_schema("trustAnchor")
}

/// One of the three ways to add a certificate, chosen by `source`: in the
/// document a `oneOf` of the three bodies with `source` as discriminator.
pub struct CertificateCreate;

impl utoipa::PartialSchema for CertificateCreate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::Ref;
        use utoipa::openapi::schema::{Discriminator, OneOfBuilder};
        let mut d = Discriminator::new("source");
        for (v, name) in [
            ("import", "ImportCertificate"),
            ("selfSigned", "SelfSignedCertificate"),
            ("trustAnchor", "TrustAnchor"),
        ] {
            d.mapping
                .insert(v.to_string(), format!("#/components/schemas/{name}"));
        }
        OneOfBuilder::new()
            .item(Ref::from_schema_name("ImportCertificate"))
            .item(Ref::from_schema_name("SelfSignedCertificate"))
            .item(Ref::from_schema_name("TrustAnchor"))
            .discriminator(Some(d))
            .description(Some(
                "One of the three ways to add a certificate, chosen by `source`.",
            ))
            .into()
    }
}
impl ToSchema for CertificateCreate {}

pub(super) use crate::tls::certs::to_pem;

pub(super) fn check_friendly_name(n: &Option<String>) -> Result<(), Invalid> {
    match n {
        Some(n) if n.chars().count() > 128 || n.chars().any(char::is_control) => {
            Err(Invalid::field(
                "friendlyName",
                "must be at most 128 characters without control characters",
            ))
        }
        _ => Ok(()),
    }
}

/// Parses a creation request into the record and the private key PEM.
fn prepare(body: Value) -> Result<(CertificateRecord, Option<String>), Invalid> {
    let source = body
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    match source.as_str() {
        "import" => {
            let r: ImportCertificate = from_json(body)?;
            check_friendly_name(&r.friendly_name)?;
            let chain = certs::parse_chain(&r.certificate_pem)
                .map_err(|e| Invalid::field("certificatePem", e))?;
            let key = certs::parse_key(&r.private_key_pem)
                .map_err(|e| Invalid::field("privateKeyPem", e))?;
            certs::check_key_matches(&chain, &key)
                .map_err(|e| Invalid::field("privateKeyPem", e))?;
            let record = CertificateRecord {
                kind: CertificateKind::Certificate,
                friendly_name: r.friendly_name,
                chain_pem: to_pem(&chain),
                acme: None,
            };
            Ok((record, Some(r.private_key_pem)))
        }
        "selfSigned" => {
            let r: SelfSignedCertificate = from_json(body)?;
            check_friendly_name(&r.friendly_name)?;
            if r.subject_names.is_empty() {
                return Err(Invalid::field(
                    "subjectNames",
                    "needs at least one DNS name",
                ));
            }
            let days = r.valid_days.unwrap_or(1825);
            if !(1..=3650).contains(&days) {
                return Err(Invalid::field("validDays", "must be between 1 and 3650"));
            }
            let names: Vec<String> = r.subject_names.iter().map(|d| d.to_string()).collect();
            let cn = r.common_name.unwrap_or_else(|| names[0].clone());
            if cn.is_empty() || cn.len() > 64 || cn.chars().any(char::is_control) {
                return Err(Invalid::field(
                    "commonName",
                    "must be 1 to 64 characters without control characters",
                ));
            }
            let (chain, key) = certs::self_signed(&cn, &names, days)
                .map_err(|e| Invalid::field("subjectNames", e))?;
            Ok((
                CertificateRecord {
                    kind: CertificateKind::Certificate,
                    friendly_name: r.friendly_name,
                    chain_pem: chain,
                    acme: None,
                },
                Some(key),
            ))
        }
        "trustAnchor" => {
            let r: TrustAnchor = from_json(body)?;
            check_friendly_name(&r.friendly_name)?;
            let chain = certs::parse_chain(&r.certificate_pem)
                .map_err(|e| Invalid::field("certificatePem", e))?;
            if chain.len() != 1 {
                return Err(Invalid::field(
                    "certificatePem",
                    "a trust anchor is exactly one certificate; add each one separately",
                ));
            }
            Ok((
                CertificateRecord {
                    kind: CertificateKind::TrustAnchor,
                    friendly_name: r.friendly_name,
                    chain_pem: to_pem(&chain),
                    acme: None,
                },
                None,
            ))
        }
        _ => Err(Invalid::field(
            "source",
            "must be 'import', 'selfSigned' or 'trustAnchor'",
        )),
    }
}

#[utoipa::path(get, path = "/api/v1/certificates", tag = "certificates",
    responses((status = 200, body = List<CertificateView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<CertificateView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap
            .certificates
            .iter()
            .map(|c| certificate_view(&snap, c))
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = String, Path, description = "Id or SHA-256 thumbprint")),
    responses((status = 200, body = CertificateView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<CertificateView>, ApiError> {
    let snap = s.config.snapshot();
    let c = crate::config::find::<CertificateRecord>(&snap, &id)
        .ok_or_else(|| ApiError::not_found(format!("certificate '{id}' does not exist")))?;
    Ok(ok(c.version, certificate_view(&snap, c)))
}

#[utoipa::path(post, path = "/api/v1/certificates", tag = "certificates",
    request_body = CertificateCreate,
    responses((status = 201, body = CertificateView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<CertificateView>, ApiError> {
    let (record, key) = prepare(body)?;
    let thumbprint = record.name();
    let secrets = s.config.secrets.clone();
    let stored = s
        .config
        .create::<CertificateRecord>(|snap, id| {
            if let Some(existing) = crate::config::find::<CertificateRecord>(snap, &thumbprint) {
                return Err(ServiceError::Conflict {
                    field: Some("certificatePem".into()),
                    message: format!("this certificate is already stored with id {}", existing.id),
                });
            }
            let secret = key.map(|k| secrets.seal(&id.to_string(), k.as_bytes()));
            Ok(Change {
                spec: record,
                secret,
                also: vec![],
            })
        })
        .await?;
    Ok(created(
        stored.version,
        certificate_view(&s.config.snapshot(), &stored),
    ))
}

#[utoipa::path(patch, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = String, Path, description = "Id or SHA-256 thumbprint"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::CertificatePatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = CertificateView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<CertificateView>, ApiError> {
    if let Some(k) = body
        .as_object()
        .and_then(|o| o.keys().find(|k| *k != "friendlyName"))
    {
        return Err(Invalid::field(
            k.clone(),
            "only friendlyName can be changed; add a new certificate instead",
        )
        .into());
    }
    let stored = s
        .config
        .update::<CertificateRecord>(&id, if_match, |_, current| {
            let friendly_name = match body.get("friendlyName") {
                None => current.spec.friendly_name.clone(),
                Some(Value::Null) => None,
                Some(Value::String(n)) => Some(n.clone()),
                Some(_) => {
                    return Err(Invalid::field("friendlyName", "must be a string or null").into());
                }
            };
            check_friendly_name(&friendly_name)?;
            Ok(Change::of(CertificateRecord {
                friendly_name,
                ..current.spec.clone()
            }))
        })
        .await?;
    Ok(ok(
        stored.version,
        certificate_view(&s.config.snapshot(), &stored),
    ))
}

#[utoipa::path(delete, path = "/api/v1/certificates/{id}", tag = "certificates",
    params(("id" = String, Path, description = "Id or SHA-256 thumbprint"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<CertificateRecord>(&id, if_match, |snap, c| {
            let uses = certificate_uses(snap, c);
            if uses.is_empty() {
                return Ok(());
            }
            let list: Vec<String> = uses.iter().map(|u| format!("{} '{}' ({})", u.connector_type, u.connector, u.how)).collect();
            Err(ServiceError::Conflict {
                field: None,
                message: format!(
                    "the certificate is in use by {}; give those connectors another certificate first",
                    list.join(", ")
                ),
            })
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
