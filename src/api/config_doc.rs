//! `/api/v1/config`: the whole configuration as one document — exported,
//! planned and applied (Exchange's ExportEdgeConfig/ImportEdgeConfig with
//! its answer file, done as code).
//!
//! A document states the configuration it wants. Each section present is
//! the whole of its kind: objects it names are created or updated, objects
//! of that kind it leaves out are deleted; a section left out leaves its
//! kind alone. Every object is read by the same parsers as the API's
//! create bodies, the references between objects are checked on the
//! configuration the document makes, and the whole change is written in
//! one transaction and published as one snapshot (listeners reconciled
//! once). A dry run does all of it, then rolls back, and answers with the
//! plan. Secrets are never in the document: a password, a private key or
//! a webhook's signing key is given by reference to an environment
//! variable (`FERRY_SECRET_*`) or a file in `--secrets-dir`; a secret left
//! out keeps the stored one.

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::path::Path;
use utoipa::ToSchema;
use uuid::Uuid;

use super::AppState;
use super::problem::{ApiError, Problem};
use crate::config::audit::{FieldChange, diff, pointer_token};
use crate::config::document::{self, API_VERSION, COLLECTIONS, KIND, SINGLETONS};
use crate::config::{ConfigObject, ServiceError, Snapshot, Write, setting};
use crate::model::acme::AcmeCertificate;
use crate::model::anti_spam::{
    IpList, IpListConfig, IpListEntry, IpListProvider, RecipientFilterConfig, SenderFilterConfig,
    TransportAgents,
};
use crate::model::attachment_filter::AttachmentFilterConfig;
use crate::model::content_filter::ContentFilterConfig;
use crate::model::dkim::{DkimKeyState, DkimSigningKey};
use crate::model::edge_rule::TransportRules;
use crate::model::sender_id::SenderIdConfig;
use crate::model::webhook::Webhook;
use crate::model::{
    AcceptedDomain, CertificateKind, CertificateRecord, Credential, CredentialKind, FieldError,
    Invalid, ReceiveConnector, SendConnector, ServerContext, TransportSettings, from_json,
    merge_patch,
};
use crate::secrets::SecretBox;
use crate::store::Stored;

/// Environment variables a document may name hold this prefix, so a
/// document cannot read the server's other settings (its admin token).
pub const ENV_PREFIX: &str = "FERRY_SECRET_";

/// What `PUT /api/v1/config` does with an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum PlanAction {
    Create,
    Update,
    Delete,
    Unchanged,
}

/// One object of the plan.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectPlan {
    /// The document's section: `receiveConnectors`, `transportSettings`…
    pub section: String,
    /// The object's name in its section; null for a section that is one
    /// document (`transportSettings`).
    pub name: Option<String>,
    pub action: PlanAction,
    /// Field by field, with old and new values (secrets masked); a created
    /// or deleted object is one `add` or `remove`.
    pub changes: Vec<FieldChange>,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct PlanSummary {
    pub create: usize,
    pub update: usize,
    pub delete: usize,
    pub unchanged: usize,
}

/// The answer to `PUT /api/v1/config`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConfigPlan {
    /// This server's name, which picks its entry of `servers`.
    pub server: String,
    /// The document had an entry for this server in `servers`.
    pub server_overrides: bool,
    pub dry_run: bool,
    /// The plan was written (false for a dry run, and when nothing changes).
    pub applied: bool,
    /// The configuration's version now (after an apply: the new one), for
    /// the next `If-Match`.
    pub version: String,
    pub summary: PlanSummary,
    /// Every object the document or the server has, in document order.
    pub objects: Vec<ObjectPlan>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase")]
pub struct ApplyQuery {
    /// Answer with the plan and change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

fn wants_yaml(headers: &HeaderMap, name: header::HeaderName) -> bool {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("yaml"))
}

/// The configuration as one document: JSON, or YAML when `Accept` asks for
/// `application/yaml`. Its `ETag` is the configuration's version.
#[utoipa::path(get, path = "/api/v1/config", tag = "config",
    responses((status = 200, headers(("ETag" = String)),
               content((ConfigDocument = "application/json"), (ConfigDocument = "application/yaml")))))]
pub async fn export(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let snap = s.config.snapshot();
    let doc = Framed::of(document::export(&snap));
    let version = document::version(&snap);
    let mut r = if wants_yaml(&headers, header::ACCEPT) {
        let text = serde_yaml_ng::to_string(&doc).unwrap_or_default();
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/yaml"),
            )],
            text,
        )
            .into_response()
    } else {
        let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
        text.push('\n');
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            text,
        )
            .into_response()
    };
    if let Ok(v) = HeaderValue::from_str(&format!("\"{version}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
    r
}

/// The document as written out: its frame (`apiVersion`, `kind`) first,
/// then the sections by name.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Framed {
    api_version: Value,
    kind: Value,
    #[serde(flatten)]
    sections: Map<String, Value>,
}

impl Framed {
    fn of(doc: Value) -> Framed {
        let mut sections = match doc {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Framed {
            api_version: sections.remove("apiVersion").unwrap_or_default(),
            kind: sections.remove("kind").unwrap_or_default(),
            sections,
        }
    }
}

/// Plans (`dryRun=true`) or applies a configuration document (JSON, or
/// YAML with `Content-Type: application/yaml`). Applying writes the plan
/// in one transaction, all or nothing; applying the same document again
/// changes nothing.
#[utoipa::path(put, path = "/api/v1/config", tag = "config",
    params(ApplyQuery, ("If-Match" = Option<String>, Header, description = "The configuration's version (ETag of GET /api/v1/config, or a plan's version)")),
    request_body(content((ConfigDocument = "application/json"), (ConfigDocument = "application/yaml"))),
    responses((status = 200, body = ConfigPlan),
              (status = 400, body = Problem, content_type = "application/problem+json"),
              (status = 412, body = Problem, content_type = "application/problem+json"),
              (status = 422, body = Problem, content_type = "application/problem+json")))]
pub async fn apply(
    State(s): State<AppState>,
    Query(q): Query<ApplyQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<axum::Json<ConfigPlan>, ApiError> {
    let doc: Value = if wants_yaml(&headers, header::CONTENT_TYPE) {
        serde_yaml_ng::from_slice(&body).map_err(|e| {
            let text = e.to_string();
            // Well-formed YAML whose integer no JSON number holds (past 64
            // bits): the value is at fault, not the syntax.
            if text.contains("number out of range") {
                let field = text.split(": ").next().unwrap_or_default();
                return Invalid::field(
                    under("", field),
                    "is a number out of range: integers are at most 64 bits",
                )
                .into();
            }
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "The body is not YAML",
                text,
            )
        })?
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed-body",
                "The body is not JSON",
                e.to_string(),
            )
        })?
    };
    // The document's schema, as the OpenAPI document states it (a YAML
    // document too, once read).
    super::contract::check_body(&axum::http::Method::PUT, "/api/v1/config", &doc).map_err(|e| {
        ApiError::from(Invalid(
            e.0.into_iter()
                .map(|f| {
                    let path = under("", &f.field);
                    // The validator quotes the value; a secret's is never echoed.
                    let secret = path
                        .split('/')
                        .rev()
                        .take(2)
                        .any(|s| ITEM_SCHEMAS.iter().any(|(_, field)| *field == Some(s)));
                    let message = if secret {
                        reference_needed()
                    } else {
                        f.message
                    };
                    FieldError::new(path, message)
                })
                .collect(),
        ))
    })?;
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.trim()
                .trim_start_matches("W/")
                .trim_matches('"')
                .to_string()
        });
    let server = s.config.snapshot().ctx.server_name.clone();
    let (doc, server_overrides) = for_server(doc, &server)?;
    let secrets = s.config.secrets.clone();
    let dir = s.secrets_dir.clone();
    let done = s
        .config
        .replace(
            if_match.as_deref(),
            q.dry_run,
            |snap| {
                let mut b = Builder {
                    snap,
                    secrets: &secrets,
                    dir: dir.as_deref().map(|d| d.as_path()),
                    ctx: snap.ctx.clone(),
                    errors: vec![],
                    deletes: vec![],
                    writes: vec![],
                };
                b.build(&doc);
                if !b.errors.is_empty() {
                    return Err(Invalid(b.errors).into());
                }
                let mut writes = b.deletes;
                writes.extend(b.writes);
                Ok(writes)
            },
            check_whole,
        )
        .await?;
    let objects = plan(&done.before, &done.after);
    let mut summary = PlanSummary::default();
    for o in &objects {
        *match o.action {
            PlanAction::Create => &mut summary.create,
            PlanAction::Update => &mut summary.update,
            PlanAction::Delete => &mut summary.delete,
            PlanAction::Unchanged => &mut summary.unchanged,
        } += 1;
    }
    let changed = summary.create + summary.update + summary.delete > 0;
    Ok(axum::Json(ConfigPlan {
        server,
        server_overrides,
        dry_run: q.dry_run,
        applied: done.committed && changed,
        version: document::version(if done.committed {
            &done.after
        } else {
            &done.before
        }),
        summary,
        objects,
    }))
}

/// Checks the document's frame, and folds this server's entry of
/// `servers` (a JSON merge patch, RFC 7396) into it.
fn for_server(mut doc: Value, server: &str) -> Result<(Value, bool), ApiError> {
    let mut e = crate::model::error::Errors::default();
    let Some(obj) = doc.as_object_mut() else {
        return Err(Invalid::field("/", "a configuration document is a JSON object").into());
    };
    e.check(
        obj.get("apiVersion").and_then(Value::as_str) != Some(API_VERSION),
        "/apiVersion",
        format!("must be \"{API_VERSION}\""),
    );
    e.check(
        obj.get("kind").and_then(Value::as_str) != Some(KIND),
        "/kind",
        format!("must be \"{KIND}\""),
    );
    for k in obj.keys() {
        e.check(
            !(k == "apiVersion"
                || k == "kind"
                || k == "servers"
                || COLLECTIONS.contains(&k.as_str())
                || SINGLETONS.contains(&k.as_str())),
            &format!("/{}", pointer_token(k)),
            "is not a section of a configuration document",
        );
    }
    let mut found = false;
    match obj.remove("servers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(servers)) => {
            for (name, o) in &servers {
                let at = format!("/servers/{}", pointer_token(name));
                let Some(o) = o.as_object() else {
                    e.add(&at, "must be an object: a merge patch of this document");
                    continue;
                };
                for k in o.keys() {
                    e.check(
                        !(COLLECTIONS.contains(&k.as_str()) || SINGLETONS.contains(&k.as_str())),
                        &format!("{at}/{}", pointer_token(k)),
                        "is not a section a server can override",
                    );
                }
            }
            if let Some((_, o)) = servers.iter().find(|(n, _)| n.eq_ignore_ascii_case(server)) {
                found = true;
                merge_patch(&mut doc, o);
            }
        }
        Some(_) => e.add("/servers", "must be an object: server name → merge patch"),
    }
    e.finish()?;
    Ok((doc, found))
}

fn at(section: &str, name: &str) -> String {
    format!("/{section}/{}", pointer_token(name))
}

/// A model error's field (`bindings[0]`, `filter.sender`) as a JSON
/// pointer under `base`.
fn under(base: &str, field: &str) -> String {
    let mut out = base.to_string();
    for seg in field.split('.').filter(|s| !s.is_empty()) {
        let mut parts = seg.split('[');
        if let Some(key) = parts.next()
            && !key.is_empty()
        {
            out.push('/');
            out.push_str(&pointer_token(key));
        }
        for idx in parts {
            out.push('/');
            out.push_str(idx.trim_end_matches(']'));
        }
    }
    out
}

fn rebase(base: &str, e: Invalid) -> Vec<FieldError> {
    e.0.into_iter()
        .map(|f| FieldError::new(under(base, &f.field), f.message))
        .collect()
}

/// A refusal from the API's own checks, its fields under `base`.
fn service_errors(base: &str, e: ServiceError) -> Result<Vec<FieldError>, ServiceError> {
    match e {
        ServiceError::Invalid(i) | ServiceError::StoredConflict(i) => Ok(rebase(base, i)),
        ServiceError::Conflict { field, message } => Ok(vec![FieldError::new(
            under(base, field.as_deref().unwrap_or("")),
            message,
        )]),
        other => Err(other),
    }
}

fn reference_needed() -> String {
    format!(
        "must be a reference: {{\"env\": \"{ENV_PREFIX}…\"}} or {{\"file\": \"a file in --secrets-dir\"}}; \
         a secret is never written in the document itself"
    )
}

/// A secret given by reference: an environment variable named
/// `FERRY_SECRET_…`, or a file in `dir` (`--secrets-dir`).
fn secret(v: &Value, dir: Option<&Path>) -> Result<String, String> {
    let refused = reference_needed;
    let Some(o) = v.as_object().filter(|o| o.len() == 1) else {
        return Err(refused());
    };
    if let Some(name) = o.get("env") {
        let name = name.as_str().ok_or_else(refused)?;
        if !name.starts_with(ENV_PREFIX) || name.len() == ENV_PREFIX.len() {
            return Err(format!(
                "names environment variable {name}: only variables named {ENV_PREFIX}… can be read"
            ));
        }
        return std::env::var(name).map_err(|_| {
            format!("names environment variable {name}, which the server does not have")
        });
    }
    if let Some(file) = o.get("file") {
        let file = file.as_str().ok_or_else(refused)?;
        let Some(dir) = dir else {
            return Err(format!(
                "names file {file}, but the server has no --secrets-dir to read it from"
            ));
        };
        let base = dir
            .canonicalize()
            .map_err(|e| format!("--secrets-dir {}: {e}", dir.display()))?;
        let path = base
            .join(file)
            .canonicalize()
            .map_err(|e| format!("names file {file}: {e}"))?;
        if !path.starts_with(&base) || !path.is_file() {
            return Err(format!(
                "names {file}, which is not a file in --secrets-dir"
            ));
        }
        let text = std::fs::read_to_string(&path).map_err(|e| format!("names file {file}: {e}"))?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        return Ok(text.to_string());
    }
    Err(refused())
}

struct Builder<'a> {
    snap: &'a Snapshot,
    secrets: &'a SecretBox,
    dir: Option<&'a Path>,
    /// The server as the document makes it (its FQDN).
    ctx: ServerContext,
    errors: Vec<FieldError>,
    deletes: Vec<Write>,
    writes: Vec<Write>,
}

/// A built object: its spec, and a new sealed secret or hash (None keeps
/// the stored one).
type Built<T> = (T, Option<Vec<u8>>);

impl Builder<'_> {
    fn fail(&mut self, path: String, message: impl Into<String>) {
        self.errors.push(FieldError::new(path, message));
    }

    /// The secret at `key` of `body` (taken out), resolved.
    fn take_secret(&self, body: &mut Value, key: &str) -> Result<Option<String>, Invalid> {
        match body.as_object_mut().and_then(|o| o.remove(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => secret(&v, self.dir)
                .map(Some)
                .map_err(|m| Invalid::field(key, m)),
        }
    }

    fn build(&mut self, doc: &Value) {
        let Some(doc) = doc.as_object() else { return };
        // The server's FQDN first: connectors default to it.
        self.singletons(doc);
        // One domain alone is the default, as the first one created is.
        let alone = doc
            .get("acceptedDomains")
            .and_then(Value::as_object)
            .is_some_and(|o| o.len() == 1);
        self.collection::<AcceptedDomain>(doc, "acceptedDomains", true, |b, body, _, _| {
            Ok((AcceptedDomain::from_create(&body, &b.ctx, alone)?, None))
        });
        self.collection::<CertificateRecord>(doc, "certificates", false, Self::certificate);
        self.collection::<Credential>(doc, "credentials", true, Self::credential);
        self.collection::<ReceiveConnector>(doc, "receiveConnectors", true, |b, body, _, _| {
            Ok((ReceiveConnector::from_document(&body, &b.ctx)?, None))
        });
        self.collection::<SendConnector>(doc, "sendConnectors", true, |b, body, _, _| {
            Ok((SendConnector::from_create(&body, &b.ctx)?, None))
        });
        self.collection::<IpListEntry>(doc, "ipListEntries", false, |_, body, _, _| {
            let list: IpList = from_json(body.get("list").cloned().unwrap_or(Value::Null))
                .map_err(|_| Invalid::field("list", "is required: Block or Allow"))?;
            Ok((IpListEntry::from_create(list, &body)?, None))
        });
        self.collection::<IpListProvider>(doc, "ipListProviders", true, |_, body, _, _| {
            let list: IpList = from_json(body.get("list").cloned().unwrap_or(Value::Null))
                .map_err(|_| Invalid::field("list", "is required: Block or Allow"))?;
            Ok((IpListProvider::from_create(list, &body, 0)?, None))
        });
        self.collection::<DkimSigningKey>(doc, "dkimSigningKeys", false, Self::dkim_key);
        self.collection::<Webhook>(doc, "webhooks", true, Self::webhook);
        // The account key stays (or is registered at the first order).
        self.collection::<AcmeCertificate>(doc, "acmeCertificates", true, |_, body, _, _| {
            Ok((AcmeCertificate::from_create(&body)?, None))
        });
    }

    /// A section of many objects: each is built (`build` gets the body,
    /// the stored object of that name if any, and the id it has or will
    /// have), compared with the stored one, and the ones left out deleted.
    /// `named`: the key is the object's `name` field, which the document
    /// leaves out of the body; otherwise the key is derived from the body
    /// and must match.
    fn collection<T: ConfigObject>(
        &mut self,
        doc: &Map<String, Value>,
        section: &str,
        named: bool,
        build: impl Fn(&Self, Value, Option<&Stored<T>>, Uuid) -> Result<Built<T>, Invalid>,
    ) {
        let Some(items) = doc.get(section) else {
            return;
        };
        let Some(items) = items.as_object() else {
            self.fail(
                format!("/{section}"),
                "must be an object: name → the object",
            );
            return;
        };
        let mut seen = std::collections::HashSet::new();
        for (key, body) in items {
            let path = at(section, key);
            if !seen.insert(key.to_lowercase()) {
                self.fail(path, "is named twice (names are case-insensitive)");
                continue;
            }
            let mut body = body.clone();
            match body.as_object_mut() {
                Some(o) if named => {
                    if o.get("name").is_some_and(|n| n.as_str() != Some(key)) {
                        self.fail(
                            format!("{path}/name"),
                            "must be left out: the object's key is its name",
                        );
                        continue;
                    }
                    o.insert("name".into(), key.clone().into());
                }
                Some(_) => {}
                None => {
                    self.fail(path, format!("must be an object: a {}", T::KIND));
                    continue;
                }
            }
            let existing = T::all(self.snap)
                .iter()
                .filter(|o| !o.spec.managed())
                .find(|o| o.spec.name().eq_ignore_ascii_case(key));
            let id = existing.map_or_else(Uuid::new_v4, |o| o.id);
            let (spec, secret) = match build(self, body, existing, id) {
                Ok(b) => b,
                Err(e) => {
                    self.errors.extend(rebase(&path, e));
                    continue;
                }
            };
            let name = spec.name();
            if !name.eq_ignore_ascii_case(key) {
                self.fail(path, format!("must be keyed by its name: {name}"));
                continue;
            }
            let value = serde_json::to_value(&spec).unwrap_or(Value::Null);
            match existing {
                Some(o)
                    if secret.is_none()
                        && serde_json::to_value(&o.spec).ok().as_ref() == Some(&value) => {}
                Some(o) => self.writes.push(Write::Update {
                    table: T::TABLE,
                    id: o.id,
                    version: o.version,
                    name,
                    spec: value,
                    secret,
                }),
                None => self.writes.push(Write::Insert {
                    table: T::TABLE,
                    id,
                    name,
                    spec: value,
                    secret,
                }),
            }
        }
        for o in T::all(self.snap).iter().filter(|o| !o.spec.managed()) {
            if !seen.contains(&o.spec.name().to_lowercase()) {
                self.deletes.push(Write::Delete {
                    table: T::TABLE,
                    id: o.id,
                    version: o.version,
                });
            }
        }
    }

    fn singletons(&mut self, doc: &Map<String, Value>) {
        let snap = self.snap;
        let a = &snap.anti_spam;
        let role = snap.ctx.role;
        if let Some(v) = doc.get("transportSettings") {
            // Fields left out take their defaults, as on a new server.
            let defaults =
                TransportSettings::defaults(role, snap.transport.spec.server_fqdn.clone());
            match defaults.patched(v) {
                Ok(t) => {
                    self.ctx.fqdn = t.server_fqdn.clone();
                    let spec = serde_json::to_value(&t).unwrap_or(Value::Null);
                    if serde_json::to_value(&snap.transport.spec).ok() != Some(spec.clone()) {
                        self.writes.push(Write::Transport {
                            spec,
                            version: snap.transport.version,
                        });
                    }
                }
                Err(e) => self.errors.extend(rebase("/transportSettings", e)),
            }
        }
        self.setting(
            doc,
            "transportAgents",
            setting::TRANSPORT_AGENTS,
            &a.agents,
            |v| {
                let t: TransportAgents = from_json(v)?;
                let mut seen = std::collections::HashSet::new();
                for (i, x) in t.agents.iter().enumerate() {
                    if !seen.insert(x.identity) {
                        return Err(Invalid::field(
                            format!("agents[{i}].identity"),
                            "is listed twice",
                        ));
                    }
                }
                Ok(t.completed(role))
            },
        );
        self.setting(
            doc,
            "ipBlockListConfig",
            setting::IP_BLOCK_LIST_CONFIG,
            &a.ip_block_list_config,
            |v| {
                let c: IpListConfig = from_json(v)?;
                c.validate(IpList::Block).map(|_| c)
            },
        );
        self.setting(
            doc,
            "ipAllowListConfig",
            setting::IP_ALLOW_LIST_CONFIG,
            &a.ip_allow_list_config,
            |v| {
                let c: IpListConfig = from_json(v)?;
                c.validate(IpList::Allow).map(|_| c)
            },
        );
        self.setting(
            doc,
            "senderFilterConfig",
            setting::SENDER_FILTER_CONFIG,
            &a.sender_filter_config,
            |v| SenderFilterConfig::defaults().patched(&v),
        );
        self.setting(
            doc,
            "recipientFilterConfig",
            setting::RECIPIENT_FILTER_CONFIG,
            &a.recipient_filter_config,
            |v| RecipientFilterConfig::defaults().patched(&v),
        );
        self.setting(
            doc,
            "attachmentFilterConfig",
            setting::ATTACHMENT_FILTER_CONFIG,
            &a.attachment_filter_config,
            |v| AttachmentFilterConfig::defaults().patched(&v),
        );
        self.setting(
            doc,
            "contentFilterConfig",
            setting::CONTENT_FILTER_CONFIG,
            &a.content_filter_config,
            |v| ContentFilterConfig::defaults().patched(&v),
        );
        self.setting(
            doc,
            "senderIdConfig",
            setting::SENDER_ID_CONFIG,
            &a.sender_id_config,
            |v| SenderIdConfig::defaults().patched(&v),
        );
        self.setting(
            doc,
            "addressRewriteEntries",
            setting::ADDRESS_REWRITE_ENTRIES,
            &a.address_rewrite_entries,
            |v| {
                let all: crate::model::address_rewrite::AddressRewriteEntries = from_json(v)?;
                let mut out = crate::model::address_rewrite::AddressRewriteEntries::default();
                for (i, e) in all.entries.into_iter().enumerate() {
                    e.validate()
                        .map_err(|x| prefix(&format!("entries[{i}]"), x))?;
                    out = out
                        .with(e, None)
                        .map_err(|x| prefix(&format!("entries[{i}]"), x))?;
                }
                Ok(out)
            },
        );
        self.setting(
            doc,
            "transportRules",
            setting::TRANSPORT_RULES,
            &a.transport_rules,
            |v| {
                let all: TransportRules = from_json(v)?;
                for (i, r) in all.rules.iter().enumerate() {
                    r.validate()
                        .map_err(|x| prefix(&format!("rules[{i}]"), x))?;
                }
                all.normalized()
            },
        );
    }

    /// A section that is one document of the `settings` table.
    fn setting<T: Serialize>(
        &mut self,
        doc: &Map<String, Value>,
        section: &str,
        kind: &'static str,
        current: &Stored<T>,
        build: impl FnOnce(Value) -> Result<T, Invalid>,
    ) {
        let Some(v) = doc.get(section) else { return };
        match build(v.clone()) {
            Ok(t) => {
                let spec = serde_json::to_value(&t).unwrap_or(Value::Null);
                if serde_json::to_value(&current.spec).ok() != Some(spec.clone()) {
                    self.writes.push(Write::Setting {
                        kind,
                        spec,
                        version: current.version,
                    });
                }
            }
            Err(e) => self.errors.extend(rebase(&format!("/{section}"), e)),
        }
    }

    fn credential(
        &self,
        mut body: Value,
        existing: Option<&Stored<Credential>>,
        id: Uuid,
    ) -> Result<Built<Credential>, Invalid> {
        let password = self.take_secret(&mut body, "password")?;
        let spec = Credential::from_create(&body)?;
        let kept = existing.filter(|e| e.spec.kind == spec.kind);
        let secret = match (&password, kept) {
            (None, Some(_)) => None,
            (None, None) => {
                return Err(Invalid::field(
                    "password",
                    format!(
                        "is required for a new credential (or one whose kind changes): \
                         {{\"env\": \"{ENV_PREFIX}…\"}} or {{\"file\": \"…\"}}"
                    ),
                ));
            }
            (Some(p), Some(e)) if self.same_password(e, p) => None,
            (Some(p), _) => Some(
                super::credentials::login_hash(spec.kind, Some(p))
                    .unwrap_or_else(|| self.secrets.seal(&id.to_string(), p.as_bytes())),
            ),
        };
        if secret.is_some() || kept.is_none_or(|e| e.spec.principal != spec.principal) {
            let was_server =
                kept.is_some_and(|e| e.spec.principal == spec.principal && secret.is_none());
            super::credentials::check_server_password(
                self.snap,
                &spec,
                secret.as_ref().and(password.as_deref()),
                was_server,
            )
            .map_err(|e| match e {
                ServiceError::Invalid(i) => i,
                other => Invalid::field("password", other.to_string()),
            })?;
        }
        Ok((spec, secret))
    }

    fn same_password(&self, e: &Stored<Credential>, p: &str) -> bool {
        let Some(stored) = &e.secret else {
            return false;
        };
        match e.spec.kind {
            CredentialKind::Login => {
                std::str::from_utf8(stored).is_ok_and(|phc| crate::secrets::verify_password(phc, p))
            }
            _ => self
                .secrets
                .open(&e.id.to_string(), stored)
                .is_ok_and(|o| o == p.as_bytes()),
        }
    }

    fn certificate(
        &self,
        mut body: Value,
        existing: Option<&Stored<CertificateRecord>>,
        id: Uuid,
    ) -> Result<Built<CertificateRecord>, Invalid> {
        let key = self.take_secret(&mut body, "privateKey")?;
        let mut rec: CertificateRecord = from_json(body)?;
        if rec.acme.is_some() {
            return Err(Invalid::field(
                "acme",
                "is Ferry's own: a certificate an ACME certificate issued is not part of a \
                 document (the ACME certificate is)",
            ));
        }
        super::certificates::check_friendly_name(&rec.friendly_name)?;
        let chain = crate::tls::certs::parse_chain(&rec.chain_pem)
            .map_err(|e| Invalid::field("chainPem", e))?;
        rec.chain_pem = super::certificates::to_pem(&chain);
        if let Some(e) = existing
            && e.spec.kind != rec.kind
        {
            return Err(Invalid::field(
                "kind",
                "cannot change; delete the certificate and add it again",
            ));
        }
        let secret = match (rec.kind, key) {
            (CertificateKind::TrustAnchor, Some(_)) => {
                return Err(Invalid::field(
                    "privateKey",
                    "a trust anchor has no private key",
                ));
            }
            (CertificateKind::TrustAnchor, None) => None,
            (CertificateKind::Certificate, None) if existing.is_some() => None,
            (CertificateKind::Certificate, None) => {
                return Err(Invalid::field(
                    "privateKey",
                    "is required for a certificate this server does not hold: \
                     {\"file\": \"….key\"} in --secrets-dir",
                ));
            }
            (CertificateKind::Certificate, Some(pem)) => {
                let k = crate::tls::certs::parse_key(&pem)
                    .map_err(|e| Invalid::field("privateKey", e))?;
                crate::tls::certs::check_key_matches(&chain, &k)
                    .map_err(|e| Invalid::field("privateKey", e))?;
                let same = existing
                    .and_then(|e| e.secret.as_ref().map(|s| (e.id, s)))
                    .and_then(|(i, s)| self.secrets.open(&i.to_string(), s).ok())
                    .is_some_and(|o| o == pem.as_bytes());
                (!same).then(|| self.secrets.seal(&id.to_string(), pem.as_bytes()))
            }
        };
        Ok((rec, secret))
    }

    fn dkim_key(
        &self,
        mut body: Value,
        existing: Option<&Stored<DkimSigningKey>>,
        id: Uuid,
    ) -> Result<Built<DkimSigningKey>, Invalid> {
        let pem = self.take_secret(&mut body, "privateKey")?;
        let public = body.as_object_mut().and_then(|o| o.remove("publicKey"));
        let mut key = DkimSigningKey::from_create(&body, "")?;
        let mut secret = None;
        match (existing, pem) {
            (Some(e), None) => key.public_key = e.spec.public_key.clone(),
            (e, Some(pem)) => {
                let pair = crate::agents::dkim::import(&pem, key.algorithm)
                    .map_err(|m| Invalid::field("privateKey", m))?;
                key.public_key = pair.public_b64;
                if e.is_none_or(|e| e.spec.public_key != key.public_key) {
                    secret = Some(self.secrets.seal(&id.to_string(), &pair.private));
                }
            }
            (None, None) => {
                return Err(Invalid::field(
                    "privateKey",
                    "is required for a key this server does not hold: {\"file\": \"….pem\"} \
                     in --secrets-dir (every server signing for a domain needs the same key)",
                ));
            }
        }
        if let Some(p) = public
            && !p.is_null()
            && p.as_str() != Some(key.public_key.as_str())
        {
            return Err(Invalid::field(
                "publicKey",
                "is not the private key's: it is set by Ferry from the key pair",
            ));
        }
        Ok((key, secret))
    }

    fn webhook(
        &self,
        mut body: Value,
        existing: Option<&Stored<Webhook>>,
        id: Uuid,
    ) -> Result<Built<Webhook>, Invalid> {
        let key = self.take_secret(&mut body, "secret")?;
        let w = Webhook::from_create(&body)?;
        let secret = match (key, existing) {
            (None, Some(_)) => None,
            (None, None) => {
                return Err(Invalid::field(
                    "secret",
                    "is required for a new webhook: its signing key, 64 hex digits \
                     (`openssl rand -hex 32`), by reference",
                ));
            }
            (Some(k), e) => {
                let bytes = hex::decode(k.trim())
                    .ok()
                    .filter(|b| b.len() == 32)
                    .ok_or_else(|| {
                        Invalid::field("secret", "must be 64 hex digits (a 32-byte key)")
                    })?;
                let same = e
                    .and_then(|e| e.secret.as_ref().map(|s| (e.id, s)))
                    .and_then(|(i, s)| self.secrets.open(&i.to_string(), s).ok())
                    .is_some_and(|o| o == bytes);
                (!same).then(|| self.secrets.seal(&id.to_string(), &bytes))
            }
        };
        Ok((w, secret))
    }
}

fn prefix(base: &str, e: Invalid) -> Invalid {
    Invalid(
        e.0.into_iter()
            .map(|f| {
                let field = if f.field.is_empty() {
                    base.to_string()
                } else {
                    format!("{base}.{}", f.field)
                };
                FieldError::new(field, f.message)
            })
            .collect(),
    )
}

/// The rules that join objects, on the configuration the document makes.
fn check_whole(before: &Snapshot, after: &Snapshot) -> Result<(), ServiceError> {
    let mut errors = vec![];
    // STARTTLS that had a certificate keeps one (the API refuses to delete
    // a certificate a connector presents).
    for c in &after.receive_connectors {
        let fqdn = after.effective_fqdn(&c.spec.fqdn);
        if c.spec.tls_certificate_name.is_none()
            && c.spec.auth_mechanism.has(crate::model::AuthMechanism::Tls)
            && after.select_certificate(fqdn, None).is_none()
            && before.select_certificate(fqdn, None).is_some()
        {
            errors.push(FieldError::new(
                format!("{}/fqdn", at("receiveConnectors", &c.spec.name)),
                format!(
                    "offers STARTTLS as {fqdn}, and no certificate of the document covers that name \
                     (the one this server presents now would be deleted)"
                ),
            ));
        }
    }
    let mut add = |base: String, r: Result<(), ServiceError>| -> Result<(), ServiceError> {
        if let Err(e) = r {
            errors.extend(service_errors(&base, e)?);
        }
        Ok(())
    };
    for c in &after.receive_connectors {
        add(
            at("receiveConnectors", &c.spec.name),
            super::receive_connectors::check_references(after, &c.spec, Some(c.id)),
        )?;
    }
    for c in &after.send_connectors {
        add(
            at("sendConnectors", &c.spec.name),
            super::send_connectors::check_references(after, &c.spec),
        )?;
    }
    for c in &after.credentials {
        add(
            at("credentials", &c.spec.name),
            super::credentials::unique_login(after, &c.spec, Some(c.id)),
        )?;
    }
    for (i, r) in after
        .anti_spam
        .transport_rules
        .spec
        .rules
        .iter()
        .enumerate()
    {
        add(
            format!("/transportRules/rules/{i}"),
            super::content::check_quarantine(after, r),
        )?;
    }
    let domains = &after.accepted_domains;
    for (i, d) in domains.iter().enumerate() {
        if let Some(o) = domains[..i]
            .iter()
            .find(|o| o.spec.domain_name == d.spec.domain_name)
        {
            errors.push(FieldError::new(
                format!("{}/domainName", at("acceptedDomains", &d.spec.name)),
                format!(
                    "{} is already the accepted domain '{}'",
                    d.spec.domain_name, o.spec.name
                ),
            ));
        }
    }
    let defaults = domains.iter().filter(|d| d.spec.default).count();
    if !domains.is_empty() && defaults != 1 {
        errors.push(FieldError::new(
            "/acceptedDomains",
            format!(
                "exactly one accepted domain must be the default; the document makes {defaults}"
            ),
        ));
    }
    for (i, k) in after.dkim_keys.iter().enumerate() {
        if k.spec.state == DkimKeyState::Active
            && after.dkim_keys[..i]
                .iter()
                .any(|o| o.spec.state == DkimKeyState::Active && o.spec.domain == k.spec.domain)
        {
            errors.push(FieldError::new(
                format!("{}/state", at("dkimSigningKeys", &k.spec.record_name())),
                format!(
                    "another key of {} is Active: one Active key per domain",
                    k.spec.domain
                ),
            ));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Invalid(errors).into())
    }
}

/// The plan: every object of either configuration, compared as the audit
/// log sees them (secrets as markers that change when the secret does).
fn plan(before: &Snapshot, after: &Snapshot) -> Vec<ObjectPlan> {
    let mut seen = std::collections::HashMap::new();
    let a = crate::config::audit::document(before, &mut seen);
    let b = crate::config::audit::document(after, &mut seen);
    let empty = Map::new();
    let mut out = vec![];
    for section in SINGLETONS {
        let (x, y) = (&a[*section], &b[*section]);
        let mut changes = vec![];
        diff(x, y, &mut format!("/{section}"), &mut changes);
        out.push(ObjectPlan {
            section: section.to_string(),
            name: None,
            action: if changes.is_empty() {
                PlanAction::Unchanged
            } else {
                PlanAction::Update
            },
            changes,
        });
    }
    for section in COLLECTIONS {
        let x = a[*section].as_object().unwrap_or(&empty);
        let y = b[*section].as_object().unwrap_or(&empty);
        let mut names: Vec<&String> = x.keys().chain(y.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let path = at(section, name);
            let (action, changes) = match (x.get(name), y.get(name)) {
                (None, Some(v)) => (
                    PlanAction::Create,
                    vec![FieldChange {
                        op: "add".into(),
                        path,
                        old: None,
                        new: Some(v.clone()),
                    }],
                ),
                (Some(v), None) => (
                    PlanAction::Delete,
                    vec![FieldChange {
                        op: "remove".into(),
                        path,
                        old: Some(v.clone()),
                        new: None,
                    }],
                ),
                (Some(v), Some(w)) => {
                    let mut changes = vec![];
                    diff(v, w, &mut path.clone(), &mut changes);
                    let action = if changes.is_empty() {
                        PlanAction::Unchanged
                    } else {
                        PlanAction::Update
                    };
                    (action, changes)
                }
                (None, None) => continue,
            };
            out.push(ObjectPlan {
                section: section.to_string(),
                name: Some(name.clone()),
                action,
                changes,
            });
        }
    }
    out
}

/// The model schemas a document's sections hold, each with the field that
/// carries its secret by reference; the OpenAPI document states each as
/// `Config<Name>` (every field optional).
pub const ITEM_SCHEMAS: &[(&str, Option<&str>)] = &[
    ("AcceptedDomain", None),
    ("CertificateRecord", Some("privateKey")),
    ("Credential", Some("password")),
    ("ReceiveConnector", None),
    ("SendConnector", None),
    ("IpListEntry", None),
    ("IpListProvider", None),
    ("DkimSigningKey", Some("privateKey")),
    ("Webhook", Some("secret")),
    ("AcmeCertificate", None),
    ("TransportSettings", None),
    ("TransportAgents", None),
    ("IpListConfig", None),
    ("SenderFilterConfig", None),
    ("RecipientFilterConfig", None),
    ("AttachmentFilterConfig", None),
    ("ContentFilterConfig", None),
    ("SenderIdConfig", None),
    ("AddressRewriteEntries", None),
    ("TransportRules", None),
];

/// The configuration document, for the OpenAPI description: each section
/// holds objects of one kind by name (or is one document), as the API's
/// create bodies take them, with secrets by reference.
pub struct ConfigDocument;

impl utoipa::PartialSchema for ConfigDocument {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
        use utoipa::openapi::{Ref, RefOr};
        let of = |name: &str| -> RefOr<utoipa::openapi::schema::Schema> {
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(AdditionalProperties::RefOr(RefOr::Ref(
                    Ref::from_schema_name(format!("Config{name}")),
                ))))
                .into()
        };
        let mut o = ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "The whole configuration. A section present is the whole of its kind (objects \
                 left out are deleted); a section left out leaves its kind alone. Passwords \
                 (`credentials.*.password`), private keys (`certificates.*.privateKey`, \
                 `dkimSigningKeys.*.privateKey`) and webhook keys (`webhooks.*.secret`) are \
                 given by reference, never exported.",
            ))
            .property(
                "apiVersion",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([API_VERSION])),
            )
            .required("apiVersion")
            .property(
                "kind",
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some([KIND])),
            )
            .required("kind");
        for (section, schema) in [
            ("acceptedDomains", "AcceptedDomain"),
            ("certificates", "CertificateRecord"),
            ("credentials", "Credential"),
            ("receiveConnectors", "ReceiveConnector"),
            ("sendConnectors", "SendConnector"),
            ("ipListEntries", "IpListEntry"),
            ("ipListProviders", "IpListProvider"),
            ("dkimSigningKeys", "DkimSigningKey"),
            ("webhooks", "Webhook"),
            ("acmeCertificates", "AcmeCertificate"),
        ] {
            o = o.property(section, of(schema));
        }
        for (section, schema) in [
            ("transportSettings", "TransportSettings"),
            ("transportAgents", "TransportAgents"),
            ("ipBlockListConfig", "IpListConfig"),
            ("ipAllowListConfig", "IpListConfig"),
            ("senderFilterConfig", "SenderFilterConfig"),
            ("recipientFilterConfig", "RecipientFilterConfig"),
            ("attachmentFilterConfig", "AttachmentFilterConfig"),
            ("contentFilterConfig", "ContentFilterConfig"),
            ("senderIdConfig", "SenderIdConfig"),
            ("addressRewriteEntries", "AddressRewriteEntries"),
            ("transportRules", "TransportRules"),
        ] {
            o = o.property(section, Ref::from_schema_name(format!("Config{schema}")));
        }
        o = o.additional_properties(Some(
            AdditionalProperties::<utoipa::openapi::schema::Schema>::FreeForm(false),
        ));
        o = o.property(
            "servers",
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .description(Some(
                    "Per-server values (Exchange's answer file): server name → a JSON merge \
                     patch (RFC 7396) of this document, applied on that server only",
                ))
                .additional_properties(Some(AdditionalProperties::FreeForm(true))),
        );
        o.into()
    }
}

impl ToSchema for ConfigDocument {}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn model_fields_become_json_pointers_under_the_object() {
        assert_eq!(
            under("/receiveConnectors/A", "bindings[0]"),
            "/receiveConnectors/A/bindings/0"
        );
        assert_eq!(
            under("/webhooks/x~1y", "filter.sender"),
            "/webhooks/x~1y/filter/sender"
        );
        assert_eq!(
            under("/t", "rules[2].actions.setScl"),
            "/t/rules/2/actions/setScl"
        );
        assert_eq!(under("/t", ""), "/t");
        assert_eq!(
            at("ipListEntries", "Block:1.2.3.0/24"),
            "/ipListEntries/Block:1.2.3.0~124"
        );
    }

    #[test]
    fn secrets_come_only_from_ferry_variables_and_files_inside_the_secrets_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cret\n").unwrap();
        std::fs::write(
            dir.path().parent().unwrap().join("outside-secret-test"),
            "x",
        )
        .unwrap();
        let d = Some(dir.path());
        assert_eq!(secret(&json!({"file": "pw"}), d).unwrap(), "s3cret");
        for (v, why) in [
            (json!({"file": "pw"}), None),
            (json!({"file": "../outside-secret-test"}), d),
            (json!({"file": "/etc/hostname"}), d),
            (json!({"file": "missing"}), d),
            (json!({"env": "FERRY_ADMIN_TOKEN"}), d),
            (json!({"env": "PATH"}), d),
            (json!({"env": "FERRY_SECRET_"}), d),
            (json!({"env": "FERRY_SECRET_SURELY_UNSET_42"}), d),
            (json!("plain text"), d),
            (json!({"env": "FERRY_SECRET_A", "file": "pw"}), d),
        ] {
            assert!(secret(&v, why).is_err(), "{v} must be refused");
        }
        let _ = std::fs::remove_file(dir.path().parent().unwrap().join("outside-secret-test"));
    }

    #[test]
    fn the_frame_is_checked_and_this_servers_entry_folded_in() {
        let doc = json!({"apiVersion": API_VERSION, "kind": KIND,
            "transportSettings": {"messageRetryInterval": "00:01:00"},
            "servers": {"edge02": {"transportSettings": {"serverFqdn": "edge02.test"}},
                        "EDGE03": {"transportSettings": {"serverFqdn": "edge03.test"}}}});
        let (d, found) = for_server(doc.clone(), "EDGE02").unwrap();
        assert!(found);
        assert_eq!(d["transportSettings"]["serverFqdn"], "edge02.test");
        assert_eq!(d["transportSettings"]["messageRetryInterval"], "00:01:00");
        assert!(d.get("servers").is_none());
        let (d, found) = for_server(doc, "EDGE09").unwrap();
        assert!(!found);
        assert!(d["transportSettings"].get("serverFqdn").is_none());
        let bad = json!({"apiVersion": API_VERSION, "kind": KIND, "servers": {"E": {"kind": "x"}}});
        assert!(for_server(bad, "E").is_err());
    }
}
