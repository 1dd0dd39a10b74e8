//! `/api/v1/credentials`: logins that SMTP clients AUTH as (stored as argon2
//! hashes) and smart-host credentials that send connectors present (sealed
//! with the data directory's key). Passwords are write-only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::extract::{IfMatch, JsonBody, Tagged, created, ok};
use super::problem::{ApiError, Problem};
use super::views::{CredentialView, List};
use crate::config::{Change, ServiceError, Snapshot};
use crate::model::credential::take_password;
use crate::model::{Credential, CredentialKind, Invalid, LoginPrincipal};
use crate::secrets::hash_password;
use crate::store::Stored;
use uuid::Uuid;

fn view(
    snap: &Snapshot,
    directory: &crate::directory::Directory,
    s: &Stored<Credential>,
) -> CredentialView {
    let login = s.spec.kind == CredentialKind::Login;
    let send_as = login.then(|| s.spec.send_as(directory));
    CredentialView {
        meta: s.into(),
        credential: s.spec.clone(),
        password_set: s.secret.is_some(),
        warnings: send_as
            .as_deref()
            .map(|a| login_warnings(snap, &s.spec, a))
            .unwrap_or_default(),
        send_as,
    }
}

/// What makes a login less useful than its admin probably thinks.
fn login_warnings(snap: &Snapshot, c: &Credential, send_as: &[String]) -> Vec<String> {
    use crate::model::permissions::{ExtendedRight, Principal};
    let mut w = vec![];
    if let Some(d) = &c.directory_recipient
        && send_as.is_empty()
    {
        w.push(format!(
            "no recipient of the directory answers to '{d}': this login may send as no one until one does"
        ));
    }
    if c.principal == Some(LoginPrincipal::User) && send_as.is_empty() {
        let submit: Vec<&str> = snap
            .receive_connectors
            .iter()
            .filter(|rc| {
                rc.spec
                    .rights()
                    .get(&Principal::ExchangeUsers)
                    .is_some_and(|r| r.contains(&ExtendedRight::Submit))
            })
            .map(|rc| rc.spec.name.as_str())
            .collect();
        if !submit.is_empty() && c.directory_recipient.is_none() {
            w.push(format!(
                "this login has no address: it can authenticate on {} but send as no one \
                 (set primaryAddress, aliases or directoryRecipient)",
                submit
                    .iter()
                    .map(|n| format!("'{n}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    for a in send_as {
        let accepted = a
            .rsplit_once('@')
            .and_then(|(_, d)| d.parse::<crate::model::Domain>().ok())
            .is_some_and(|d| snap.accepted_domains.iter().any(|ad| ad.spec.covers(&d)));
        if !accepted {
            w.push(format!(
                "'{a}' is not in any accepted domain: mail sent as it leaves as a foreign sender"
            ));
        }
    }
    w
}

fn users_of(snap: &Snapshot, name: &str) -> Vec<String> {
    snap.send_connectors
        .iter()
        .filter(|c| {
            c.spec
                .authentication_credential
                .as_deref()
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        })
        .map(|c| c.spec.name.clone())
        .collect()
}

pub(super) fn unique_login(
    snap: &Snapshot,
    c: &Credential,
    id: Option<Uuid>,
) -> Result<(), ServiceError> {
    if c.kind == CredentialKind::Login
        && snap.credentials.iter().any(|o| {
            Some(o.id) != id
                && o.spec.kind == CredentialKind::Login
                && o.spec.user_name.eq_ignore_ascii_case(&c.user_name)
        })
    {
        return Err(ServiceError::Conflict {
            field: Some("userName".into()),
            message: format!("a login for '{}' already exists", c.user_name),
        });
    }
    Ok(())
}

/// A login of principal `Server` carries relay rights on the default
/// connectors: its password must be at least minServerPasswordLength
/// characters. A login becoming `Server` needs a new password, since only
/// its hash is kept and the old one's length is unknown.
pub(super) fn check_server_password(
    snap: &Snapshot,
    c: &Credential,
    password: Option<&str>,
    was_server: bool,
) -> Result<(), ServiceError> {
    if c.kind != CredentialKind::Login || c.principal != Some(LoginPrincipal::Server) {
        return Ok(());
    }
    let min = snap.transport.spec.min_server_password_length as usize;
    match password {
        Some(p) if p.chars().count() < min => Err(Invalid::field(
            "password",
            format!(
                "a login of principal Server may relay: its password needs at least {min} characters \
                 (transport setting minServerPasswordLength)"
            ),
        )
        .into()),
        Some(p) => guessable(snap, c, p).map_or(Ok(()), |why| {
            Err(Invalid::field(
                "password",
                format!(
                    "a login of principal Server may relay: this password is among the most common or \
                     easily guessed ({why}); use a random one, e.g. from `openssl rand -base64 24`"
                ),
            )
            .into())
        }),
        None if !was_server => Err(Invalid::field(
            "password",
            format!("is required when a login becomes principal Server (at least {min} characters)"),
        )
        .into()),
        _ => Ok(()),
    }
}

/// Why a password is too easily guessed, if it is: zxcvbn's estimate (its
/// 30,000 most common passwords, names, words, keyboard walks, dates,
/// repeats and l33t variants, plus this login's and this server's names)
/// puts it within a million guesses (score 0 or 1).
fn guessable(snap: &Snapshot, c: &Credential, password: &str) -> Option<String> {
    let fqdn = snap.ctx.fqdn.to_string();
    let mut inputs = vec![
        c.user_name.as_str(),
        c.name.as_str(),
        snap.ctx.server_name.as_str(),
        fqdn.as_str(),
    ];
    inputs.extend(fqdn.split('.'));
    let e = zxcvbn::zxcvbn(password, &inputs);
    if e.score() >= zxcvbn::Score::Two {
        return None;
    }
    Some(
        e.feedback()
            .and_then(|f| f.warning())
            .map(|w| w.to_string().trim_end_matches('.').to_lowercase())
            .unwrap_or_else(|| format!("about 10^{:.0} guesses", e.guesses_log10())),
    )
}

/// Hashing is slow on purpose, so it happens before the writer lock.
pub(super) fn login_hash(kind: CredentialKind, password: Option<&str>) -> Option<Vec<u8>> {
    match (kind, password) {
        (CredentialKind::Login, Some(p)) => Some(hash_password(p).into_bytes()),
        _ => None,
    }
}

#[utoipa::path(get, path = "/api/v1/credentials", tag = "credentials",
    responses((status = 200, body = List<CredentialView>)))]
pub async fn list(State(s): State<AppState>) -> Json<List<CredentialView>> {
    let snap = s.config.snapshot();
    Json(List {
        items: snap
            .credentials
            .iter()
            .map(|c| view(&snap, &s.directory, c))
            .collect(),
    })
}

#[utoipa::path(get, path = "/api/v1/credentials/{id}", tag = "credentials",
    params(("id" = String, Path, description = "Id or name")),
    responses((status = 200, body = CredentialView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json")))]
pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Tagged<CredentialView>, ApiError> {
    let snap = s.config.snapshot();
    let c = crate::config::find::<Credential>(&snap, &id)
        .ok_or_else(|| ApiError::not_found(format!("credential '{id}' does not exist")))?;
    Ok(ok(c.version, view(&snap, &s.directory, c)))
}

#[utoipa::path(post, path = "/api/v1/credentials", tag = "credentials",
    request_body = super::openapi::CredentialCreate,
    responses((status = 201, body = CredentialView, headers(("ETag" = String))),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(s): State<AppState>,
    JsonBody(mut body): JsonBody,
) -> Result<Tagged<CredentialView>, ApiError> {
    let password = take_password(&mut body, true)?.expect("required");
    let spec = Credential::from_create(&body)?;
    let hash = login_hash(spec.kind, Some(&password));
    let secrets = s.config.secrets.clone();
    let stored = s
        .config
        .create::<Credential>(|snap, id| {
            unique_login(snap, &spec, None)?;
            check_server_password(snap, &spec, Some(&password), false)?;
            let secret = hash.unwrap_or_else(|| secrets.seal(&id.to_string(), password.as_bytes()));
            Ok(Change {
                spec,
                secret: Some(secret),
                also: vec![],
            })
        })
        .await?;
    Ok(created(
        stored.version,
        view(&s.config.snapshot(), &s.directory, &stored),
    ))
}

#[utoipa::path(patch, path = "/api/v1/credentials/{id}", tag = "credentials",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    request_body(content = super::openapi::CredentialPatch, content_type = "application/merge-patch+json"),
    responses((status = 200, body = CredentialView, headers(("ETag" = String))),
              (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn patch(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
    JsonBody(mut body): JsonBody,
) -> Result<Tagged<CredentialView>, ApiError> {
    let password = take_password(&mut body, false)?;
    let kind = crate::config::find::<Credential>(&s.config.snapshot(), &id).map(|c| c.spec.kind);
    let hash = kind.and_then(|k| login_hash(k, password.as_deref()));
    let secrets = s.config.secrets.clone();
    let stored = s
        .config
        .update::<Credential>(&id, if_match, |snap, current| {
            let c = current
                .spec
                .patched(&body)
                .map_err(ServiceError::against(&body))?;
            unique_login(snap, &c, Some(current.id))?;
            let was_server = current.spec.principal == Some(LoginPrincipal::Server);
            check_server_password(snap, &c, password.as_deref(), was_server)?;
            let users = users_of(snap, &current.spec.name);
            if !c.name.eq_ignore_ascii_case(&current.spec.name) && !users.is_empty() {
                return Err(ServiceError::Conflict {
                    field: Some("name".into()),
                    message: format!("send connectors {users:?} refer to this credential by name; change them first"),
                });
            }
            let secret = match (c.kind, &password) {
                (CredentialKind::Login, Some(_)) => hash.clone(),
                (CredentialKind::SmartHost, Some(p)) => Some(secrets.seal(&current.id.to_string(), p.as_bytes())),
                (_, None) => None,
            };
            Ok(Change { spec: c, secret, also: vec![] })
        })
        .await?;
    Ok(ok(
        stored.version,
        view(&s.config.snapshot(), &s.directory, &stored),
    ))
}

#[utoipa::path(delete, path = "/api/v1/credentials/{id}", tag = "credentials",
    params(("id" = String, Path, description = "Id or name"), ("If-Match" = Option<String>, Header, description = "ETag from a GET")),
    responses((status = 204), (status = 404, body = Problem, content_type = "application/problem+json"),
              (status = 409, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(s): State<AppState>,
    Path(id): Path<String>,
    IfMatch(if_match): IfMatch,
) -> Result<StatusCode, ApiError> {
    s.config
        .delete::<Credential>(&id, if_match, |snap, c| {
            let users = users_of(snap, &c.spec.name);
            if users.is_empty() {
                Ok(())
            } else {
                Err(ServiceError::Conflict {
                    field: None,
                    message: format!("send connectors {users:?} use this credential"),
                })
            }
        })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
