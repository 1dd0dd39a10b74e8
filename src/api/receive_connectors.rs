//! `/api/v1/receive-connectors`: New-, Get-, Set- and Remove-ReceiveConnector.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{List, ReceiveConnectorView, receive_view};
use crate::config::{Change, ServiceError, Snapshot};
use crate::model::{Invalid, ReceiveConnector};
use uuid::Uuid;

/// Rules that involve other objects: binding and range overlaps (spec rule
/// 5) and a pinned certificate that must exist.
pub(super) fn check_references(
    snap: &Snapshot,
    c: &ReceiveConnector,
    id: Option<Uuid>,
) -> Result<(), ServiceError> {
    c.check_against(
        snap.receive_connectors
            .iter()
            .filter(|o| Some(o.id) != id)
            .map(|o| &o.spec),
    )?;
    if let Some(pin) = &c.tls_certificate_name
        && !snap
            .certificate_info
            .values()
            .any(|i| &i.tls_certificate_name == pin)
    {
        return Err(Invalid::field(
            "tlsCertificateName",
            "no stored certificate has that issuer and subject",
        )
        .into());
    }
    Ok(())
}

#[utoipa::path(get, path = "/api/v1/receive-connectors", tag = "receive-connectors",
    responses((status = 200, body = List<ReceiveConnectorView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<ReceiveConnectorView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap
            .receive_connectors
            .iter()
            .map(|c| receive_view(&snap, &s.smtp, c))
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/receive-connectors/{id}", tag = "receive-connectors",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 200, body = ReceiveConnectorView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<ReceiveConnectorView>, ApiError> {
    let snap = s.config.snapshot();
    let c = crate::config::find::<ReceiveConnector>(&snap, &id)
        .ok_or_else(|| ApiError::not_found(format!("receive connector '{id}' does not exist")))?;
    Ok(ok(c.version, receive_view(&snap, &s.smtp, c)))
}

#[utoipa::path(post, path = "/api/v1/receive-connectors", tag = "receive-connectors",
    request_body = super::openapi::ReceiveConnectorCreate,
    responses((status = 201, body = ReceiveConnectorView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Tagged<ReceiveConnectorView>, ApiError> {
    let stored = s
        .config
        .create::<ReceiveConnector>(|snap, _| {
            let c = ReceiveConnector::from_create(&body, &snap.ctx)?;
            check_references(snap, &c, None)?;
            Ok(Change::of(c))
        })
        .await?;
    Ok(created(
        stored.version,
        receive_view(&s.config.snapshot(), &s.smtp, &stored),
    ))
}

#[utoipa::path(patch, path = "/api/v1/receive-connectors/{id}", tag = "receive-connectors",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::ReceiveConnectorPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = ReceiveConnectorView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(body): JsonBody,
) -> Result<Tagged<ReceiveConnectorView>, ApiError> {
    let stored = s
        .config
        .update::<ReceiveConnector>(&id, if_match, |snap, current| {
            let c = current.spec.patched(&body, &snap.ctx)?;
            check_references(snap, &c, Some(current.id))?;
            Ok(Change::of(c))
        })
        .await?;
    Ok(ok(
        stored.version,
        receive_view(&s.config.snapshot(), &s.smtp, &stored),
    ))
}

#[utoipa::path(delete, path = "/api/v1/receive-connectors/{id}", tag = "receive-connectors",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<ReceiveConnector>(&id, if_match, |_, _| Ok(()))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A connection to explain: the address and port it reaches, and where it
/// comes from.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionQuestion {
    #[schema(schema_with = crate::model::schema::ip_address)]
    pub local_address: std::net::IpAddr,
    #[schema(minimum = 1, maximum = 65535)]
    pub local_port: u16,
    #[schema(schema_with = crate::model::schema::ip_address)]
    pub remote_address: std::net::IpAddr,
}

/// What one receive connector makes of the connection.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorVerdict {
    pub id: Uuid,
    pub name: String,
    /// `Selected`, `Lost` (it could take it, another wins), `NoBinding`,
    /// `NoRange` or `Disabled`.
    pub verdict: String,
    /// The binding that covers the local address (Selected, Lost).
    pub binding: Option<String>,
    /// The smallest remote range containing the client (Selected, Lost).
    pub remote_ip_range: Option<String>,
    /// Why, in words.
    pub reason: String,
}

/// What the selected connector offers the client before it authenticates.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionOffer {
    /// Who the client is before AUTH: `Anonymous`, or `ExternallySecuredServers`
    /// on an ExternalAuthoritative connector.
    pub principal: crate::model::permissions::Principal,
    /// The rights that principal holds here.
    pub rights: Vec<crate::model::permissions::ExtendedRight>,
    /// Every principal's rights here (what AUTH as a user or server gives).
    pub effective_rights: std::collections::BTreeMap<
        crate::model::permissions::Principal,
        Vec<crate::model::permissions::ExtendedRight>,
    >,
    /// The name it greets with.
    pub fqdn: String,
    /// STARTTLS is offered: Tls is among its mechanisms and a certificate covers its FQDN.
    pub starttls: bool,
    /// `AUTH LOGIN PLAIN` is offered: `Now`, `AfterStartTls` (BasicAuthRequireTLS) or `No`.
    pub auth: String,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionExplanation {
    /// The connector that takes the connection, the one a real session
    /// lands on; null when none does.
    pub selected: Option<String>,
    /// With none: the reply the client gets before the connection closes.
    pub reply: Option<String>,
    pub offer: Option<SessionOffer>,
    /// Every connector, the selected one first, then the ones that lost,
    /// then the rest.
    pub candidates: Vec<ConnectorVerdict>,
}

/// Which receive connector takes a connection, and why each other one does
/// not (spec §2.1: the binding covers the local address and port, the
/// smallest remote range containing the client wins, an exact-address
/// binding beats a wildcard one) — computed by the function the listeners
/// use, so it is the engine's own answer.
#[utoipa::path(post, path = "/api/v1/receive-connectors/explain", tag = "receive-connectors",
    request_body = ConnectionQuestion,
    responses((status = 200, body = ConnectionExplanation),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn explain(
    State(s): State<AppState>,
    JsonBody(body): JsonBody,
) -> Result<Json<ConnectionExplanation>, ApiError> {
    use crate::model::AuthMechanism as A;
    use crate::smtp::server::select::{Verdict, explain, why_lost};
    let q: ConnectionQuestion = crate::model::from_json(body)?;
    let snap = s.config.snapshot();
    let local = std::net::SocketAddr::new(q.local_address, q.local_port);
    let remote = std::net::SocketAddr::new(q.remote_address, 40000);
    let e = explain(&snap, local, remote);
    let winner = e.selected.map(|i| e.verdicts[i]);
    let mut candidates: Vec<(u8, ConnectorVerdict)> = e
        .verdicts
        .iter()
        .enumerate()
        .map(|(i, (c, v))| {
            let (rank, verdict, reason) = match v {
                Verdict::Candidate { .. } if Some(i) == e.selected => {
                    (0, "Selected", "takes the connection".to_string())
                }
                Verdict::Candidate { .. } => (
                    1,
                    "Lost",
                    winner
                        .map(|(w, wv)| why_lost((&w.spec, wv), (&c.spec, *v)))
                        .unwrap_or_default(),
                ),
                Verdict::NoBinding => (
                    2,
                    "NoBinding",
                    format!(
                        "no binding covers {local} (it binds {})",
                        c.spec
                            .bindings_on(&snap.ctx.server_name)
                            .iter()
                            .map(|b| b.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ),
                Verdict::NoRange => (
                    2,
                    "NoRange",
                    format!("no remote IP range contains {}", q.remote_address),
                ),
                Verdict::Disabled => (3, "Disabled", "is disabled".to_string()),
            };
            let (binding, range) = match v {
                Verdict::Candidate { binding, range } => {
                    (Some(binding.to_string()), Some(range.to_string()))
                }
                _ => (None, None),
            };
            (
                rank,
                ConnectorVerdict {
                    id: c.id,
                    name: c.spec.name.clone(),
                    verdict: verdict.into(),
                    binding,
                    remote_ip_range: range,
                    reason,
                },
            )
        })
        .collect();
    candidates.sort_by_key(|(rank, _)| *rank);
    let offer = winner.map(|(w, _)| {
        let c = &w.spec;
        let principal = if c.auth_mechanism.has(A::ExternalAuthoritative) {
            crate::model::permissions::Principal::ExternallySecuredServers
        } else {
            crate::model::permissions::Principal::Anonymous
        };
        let fqdn = snap.effective_fqdn(&c.fqdn);
        let effective_rights = c.rights();
        SessionOffer {
            principal,
            rights: effective_rights
                .get(&principal)
                .cloned()
                .unwrap_or_default(),
            fqdn: fqdn.to_string(),
            starttls: c.auth_mechanism.has(A::Tls)
                && snap
                    .select_certificate(fqdn, c.tls_certificate_name.as_deref())
                    .is_some(),
            auth: if !c.auth_mechanism.has(A::BasicAuth) {
                "No"
            } else if c.auth_mechanism.has(A::BasicAuthRequireTls) {
                "AfterStartTls"
            } else {
                "Now"
            }
            .into(),
            effective_rights,
        }
    });
    Ok(Json(ConnectionExplanation {
        selected: winner.map(|(w, _)| w.spec.name.clone()),
        reply: winner
            .is_none()
            .then(|| "421 4.3.2 Service not available".to_string()),
        offer,
        candidates: candidates.into_iter().map(|(_, c)| c).collect(),
    }))
}
