//! The OpenAPI 3.1 document, generated from the handlers and model types.
//! `ferry openapi` prints it; `openapi/ferry.json` is the committed copy that
//! a test keeps in step with the code.

use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{RefOr, SecurityRequirement};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::views::*;
use super::*;
use crate::model;

/// Declares a request-body schema derived from a model type: the same
/// properties, with only `required` fields required (creation) or none
/// (merge patch), plus any write-only extras such as a password.
macro_rules! body_schema {
    ($name:ident, $base:ty, [$($req:literal),*], $desc:literal $(, extra: $extra:literal => $extra_desc:literal)? $(, without: [$($gone:literal),*])? $(, not_null: [$($nn:literal),*])?) => {
        #[doc = $desc]
        pub struct $name;
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let mut s = <$base as PartialSchema>::schema();
                if let RefOr::T(Schema::Object(o)) = &mut s {
                    o.required = vec![$($req.to_string()),*];
                    o.description = Some($desc.to_string());
                    $(o.properties.insert($extra.to_string(), password_schema($extra_desc));)?
                    $($(o.properties.shift_remove($gone);)*)?
                    $($(if let Some(p) = o.properties.get_mut($nn) {
                        *p = not_null(p);
                    })*)?
                }
                s
            }
        }
        impl ToSchema for $name {}
    };
}

/// A property without its `null` alternative: in a merge patch, a field
/// that cannot be removed (a login's principal) may be changed, not nulled.
fn not_null(p: &RefOr<Schema>) -> RefOr<Schema> {
    let mut v = serde_json::to_value(p).expect("serializes");
    if let Some(items) = v.get_mut("oneOf").and_then(|o| o.as_array_mut()) {
        items.retain(|i| i.get("type") != Some(&serde_json::json!("null")));
        if items.len() == 1 {
            v = items.remove(0);
        }
    }
    serde_json::from_value(v).expect("a schema")
}

fn password_schema(desc: &str) -> RefOr<Schema> {
    let o: Object = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(1024))
        .pattern(Some("^[^\\u0000]*$"))
        .write_only(Some(true))
        .description(Some(desc))
        .build();
    RefOr::T(Schema::Object(o))
}

body_schema!(
    ReceiveConnectorCreate,
    model::ReceiveConnector,
    ["name"],
    "A new receive connector. Omitted fields take the usage preset's values (spec §1.4); Internet requires bindings and forbids remoteIpRanges; Partner and Custom require both; Internal and Client require remoteIpRanges."
);
body_schema!(
    ReceiveConnectorPatch,
    model::ReceiveConnector,
    [],
    "A JSON merge patch (RFC 7396) of a receive connector. `usage` cannot change.",
    without: ["usage"]
);
body_schema!(
    SendConnectorCreate,
    model::SendConnector,
    ["name", "addressSpaces"],
    "A new send connector. Giving smartHosts implies dnsRoutingEnabled=false."
);
body_schema!(
    SendConnectorPatch,
    model::SendConnector,
    [],
    "A JSON merge patch (RFC 7396) of a send connector. `usage` cannot change.",
    without: ["usage"]
);
body_schema!(
    AcceptedDomainCreate,
    model::AcceptedDomain,
    ["domainName"],
    "A new accepted domain. `name` defaults to the domain name; the first domain is the default."
);
body_schema!(
    AcceptedDomainPatch,
    model::AcceptedDomain,
    [],
    "A JSON merge patch of an accepted domain. Setting default=true moves the default here."
);
body_schema!(CredentialCreate, model::Credential, ["kind", "userName", "password"],
    "A new login or smart-host credential.", extra: "password" => "Write-only. Logins keep an argon2 hash; smart-host credentials an encrypted copy.");
body_schema!(CredentialPatch, model::Credential, [],
    "A JSON merge patch of a credential; give `password` to rotate it; `kind` is set at creation only.", extra: "password" => "Write-only new password.",
    without: ["kind"], not_null: ["principal"]);
body_schema!(
    TransportSettingsPatch,
    model::TransportSettings,
    [],
    "A JSON merge patch of the transport settings."
);

body_schema!(
    IpListConfigPatch,
    model::anti_spam::IpListConfig,
    [],
    "A JSON merge patch of an IP list's configuration."
);
body_schema!(
    IpAllowListConfigPatch,
    model::anti_spam::IpListConfig,
    [],
    "A JSON merge patch of the IP Allow list's configuration.",
    without: ["staticEntryRejectionResponse", "machineEntryRejectionResponse"]
);
body_schema!(
    IpAllowListProviderCreate,
    model::anti_spam::IpListProvider,
    ["name", "lookupDomain"],
    "A new IP Allow list provider; priority defaults to the end of the list.",
    without: ["rejectionResponse", "list"]
);
body_schema!(
    IpAllowListProviderPatch,
    model::anti_spam::IpListProvider,
    [],
    "A JSON merge patch of an IP Allow list provider.",
    without: ["rejectionResponse", "list"]
);
body_schema!(
    AcmeCertificateCreate,
    model::acme::AcmeCertificate,
    ["name", "directoryUrl", "subjectNames"],
    "A new ACME certificate: the CA's directory and the names; the first order starts at once."
);
body_schema!(
    AcmeCertificatePatch,
    model::acme::AcmeCertificate,
    [],
    "A JSON merge patch of an ACME certificate."
);
body_schema!(
    WebhookCreate,
    model::webhook::Webhook,
    ["name", "url"],
    "A new event webhook: its URL, the event kinds (none: every kind) and an optional filter."
);
body_schema!(
    WebhookPatch,
    model::webhook::Webhook,
    [],
    "A JSON merge patch of an event webhook."
);
body_schema!(
    IpListEntryCreate,
    model::anti_spam::IpListEntry,
    ["ipRange"],
    "A new IP list entry (the list is the path's).",
    without: ["list"]
);
body_schema!(
    IpListProviderCreate,
    model::anti_spam::IpListProvider,
    ["name", "lookupDomain"],
    "A new IP list provider (the list is the path's); priority defaults to the end of the list.",
    without: ["list"]
);
body_schema!(
    IpListProviderPatch,
    model::anti_spam::IpListProvider,
    [],
    "A JSON merge patch of an IP list provider.",
    without: ["list"]
);

body_schema!(
    SenderFilterConfigPatch,
    model::anti_spam::SenderFilterConfig,
    [],
    "A JSON merge patch of the Sender Filter agent's configuration."
);
body_schema!(
    RecipientFilterConfigPatch,
    model::anti_spam::RecipientFilterConfig,
    [],
    "A JSON merge patch of the Recipient Filter agent's configuration."
);

body_schema!(
    AttachmentFilterConfigPatch,
    model::attachment_filter::AttachmentFilterConfig,
    [],
    "A JSON merge patch of the Attachment Filter agent's configuration (entries replace the list)."
);

body_schema!(
    ContentFilterConfigPatch,
    model::content_filter::ContentFilterConfig,
    [],
    "A JSON merge patch of the Content Filter agent's configuration (Set-ContentFilterConfig)."
);
body_schema!(
    AddressRewriteEntryCreate,
    model::address_rewrite::AddressRewriteEntry,
    ["name", "internalAddress", "externalAddress"],
    "A new address rewrite entry (New-AddressRewriteEntry)."
);
body_schema!(
    AddressRewriteEntryPatch,
    model::address_rewrite::AddressRewriteEntry,
    [],
    "A JSON merge patch of an address rewrite entry."
);
body_schema!(
    TransportRuleCreate,
    model::edge_rule::TransportRule,
    ["name", "actions"],
    "A new Edge transport rule (New-TransportRule); priority defaults to after the last rule, enabled to true, mode to Enforce."
);
body_schema!(
    TransportRulePatch,
    model::edge_rule::TransportRule,
    [],
    "A JSON merge patch of a transport rule; a new priority moves it there."
);

/// A new DKIM signing key: generated by Ferry, or imported with
/// `privateKeyPem` (PKCS#1 or PKCS#8, of the `algorithm` given).
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct DkimSigningKeyCreate {
    /// The signing domain (`d=`).
    domain: String,
    /// Default `ferry-<yyyymmdd>-<rsa|ed>`.
    selector: Option<String>,
    /// `RSA-2048` (default), `RSA-3072` or `Ed25519`.
    algorithm: Option<model::dkim::DkimAlgorithm>,
    /// `Published` (default): shown for DNS, not signing; `Active` signs at
    /// once (and retires the domain's active key).
    state: Option<model::dkim::DkimKeyState>,
    /// Import this key instead of generating one; never returned.
    private_key_pem: Option<String>,
}

/// A change of a DKIM key's state (rotation: activate the new key; the old
/// active key is retired with it).
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct DkimSigningKeyPatch {
    state: model::dkim::DkimKeyState,
}

body_schema!(
    SenderIdConfigPatch,
    model::sender_id::SenderIdConfig,
    [],
    "A JSON merge patch of the Sender Id agent's configuration (Set-SenderIdConfig)."
);

/// Many IP list entries at once.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct IpListEntriesBulk {
    items: Vec<IpListEntryCreate>,
}

/// Enable-/Disable-TransportAgent and Set-TransportAgent -Priority.
#[derive(ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct TransportAgentPatch {
    enabled: Option<bool>,
    /// 1 runs first; the others move to make room.
    priority: Option<u32>,
}

/// Only the friendly name of a certificate can change.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[allow(dead_code)]
pub struct CertificatePatch {
    #[schema(schema_with = crate::model::schema::friendly_name)]
    friendly_name: Option<String>,
}

struct Security;

impl Modify for Security {
    /// The bearer scheme, and on every operation that is not public the
    /// role it needs as the requirement's scope (OpenAPI 3.1 lets non-OAuth
    /// schemes list roles there), taken from [`super::access::required_role`]
    /// so the document and the enforcement cannot differ.
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use axum::http::Method;
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                utoipa::openapi::security::HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API token. The scope of each operation's requirement is the role \
                         it needs: View-Only, Operator or Administrator (each includes the ones before).",
                    ))
                    .build(),
            ),
        );
        for (path, item) in openapi.paths.paths.iter_mut() {
            let ops = [
                (Method::GET, &mut item.get),
                (Method::PUT, &mut item.put),
                (Method::POST, &mut item.post),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
                (Method::HEAD, &mut item.head),
            ];
            for (method, op) in ops {
                let Some(op) = op else { continue };
                if op.security.is_some() {
                    continue; // declared public (`security()`)
                }
                let role = super::access::required_role(&method, path);
                op.security = Some(vec![SecurityRequirement::new(
                    "bearer",
                    [role.as_str().to_string()],
                )]);
            }
        }
    }
}

/// Unique, meaningful operation ids (`listReceiveConnectors`,
/// `getReceiveConnector`, `retryQueue`…), made from each operation's method
/// and path so that code generators get one method per operation.
struct OperationIds;

/// Resources with one document, not a collection.
fn singleton(resource: &str) -> bool {
    resource.ends_with("-config")
        || [
            "transport-settings",
            "server",
            "healthz",
            "metrics",
            "tracking",
            "protocol-logs",
            "spf-check",
            "dmarc-reports",
            "tls-reports",
            "audit-log",
            "config",
        ]
        .contains(&resource)
}

fn pascal(segment: &str) -> String {
    segment
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

fn singular(resource: &str) -> String {
    let r = if let Some(stem) = resource.strip_suffix("ies") {
        format!("{stem}y")
    } else if resource.ends_with("settings") || !resource.ends_with('s') {
        resource.to_string()
    } else {
        resource[..resource.len() - 1].to_string()
    };
    pascal(&r)
}

/// `GET /api/v1/receive-connectors/{id}` → `getReceiveConnector`.
pub fn operation_id(method: &str, path: &str) -> String {
    let segs: Vec<&str> = path
        .trim_start_matches("/api/v1")
        .trim_start_matches('/')
        .split('/')
        .collect();
    let param = |s: &str| s.starts_with('{');
    fn verb(m: &str) -> &str {
        match m {
            "post" => "create",
            "put" => "replace",
            "patch" => "update",
            other => other,
        }
    }
    match segs.as_slice() {
        [res] if method == "get" && !singleton(res) => format!("list{}", pascal(res)),
        [res] if singleton(res) || method == "put" => format!("{}{}", verb(method), pascal(res)),
        [res] => format!("{}{}", verb(method), singular(res)),
        [res, id] if param(id) => format!("{}{}", verb(method), singular(res)),
        [res, action] if *action == "bulk" => format!("create{}Bulk", pascal(res)),
        [res, action] => format!("{}{}", action, pascal(res)),
        [res, id, action] if param(id) && method == "get" => {
            format!("get{}{}", singular(res), pascal(action))
        }
        [res, id, action] if param(id) => format!("{}{}", action, singular(res)),
        _ => format!("{method}{}", pascal(&path.replace(['/', '{', '}'], "-"))),
    }
}

impl Modify for OperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            for (method, op) in [
                ("get", &mut item.get),
                ("put", &mut item.put),
                ("post", &mut item.post),
                ("delete", &mut item.delete),
                ("patch", &mut item.patch),
                ("head", &mut item.head),
            ] {
                if let Some(op) = op {
                    op.operation_id = Some(operation_id(method, path));
                }
            }
        }
    }
}

/// Views that `#[serde(flatten)]` a model type come out of utoipa as
/// `allOf` of that type (closed: `additionalProperties: false`) and the
/// view's own fields — which JSON Schema then rejects, since each closed
/// part forbids the other's fields. Each such view becomes the one closed
/// object it is on the wire: every part's properties and required fields.
struct FlattenViews;

fn merged(
    schemas: &std::collections::BTreeMap<String, RefOr<Schema>>,
    s: &RefOr<Schema>,
    depth: usize,
) -> Option<Object> {
    let schema = match s {
        RefOr::Ref(r) => schemas.get(r.ref_location.rsplit('/').next()?)?,
        t => t,
    };
    match schema {
        RefOr::T(Schema::Object(o)) => Some(o.clone()),
        RefOr::T(Schema::AllOf(all)) if depth < 4 => {
            let mut out = ObjectBuilder::new().schema_type(Type::Object).build();
            for part in &all.items {
                let o = merged(schemas, part, depth + 1)?;
                for (k, v) in o.properties {
                    out.properties.insert(k, v);
                }
                for r in o.required {
                    if !out.required.contains(&r) {
                        out.required.push(r);
                    }
                }
            }
            out.description = all.description.clone();
            out.additional_properties = Some(Box::new(
                utoipa::openapi::schema::AdditionalProperties::FreeForm(false),
            ));
            Some(out)
        }
        _ => None,
    }
}

impl Modify for FlattenViews {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(components) = openapi.components.as_mut() else {
            return;
        };
        let snapshot: std::collections::BTreeMap<String, RefOr<Schema>> = components
            .schemas
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for schema in components.schemas.values_mut() {
            flatten_in(&snapshot, schema, 0);
        }
    }
}

/// Flattens `schema` if it is such an `allOf`, and the ones it contains
/// (a `List<View>`'s items).
fn flatten_in(
    snapshot: &std::collections::BTreeMap<String, RefOr<Schema>>,
    schema: &mut RefOr<Schema>,
    depth: usize,
) {
    if depth > 6 {
        return;
    }
    if matches!(schema, RefOr::T(Schema::AllOf(_)))
        && let Some(o) = merged(snapshot, schema, 0)
    {
        *schema = RefOr::T(Schema::Object(o));
    }
    match schema {
        RefOr::T(Schema::Object(o)) => {
            for p in o.properties.values_mut() {
                flatten_in(snapshot, p, depth + 1);
            }
        }
        RefOr::T(Schema::Array(a)) => {
            if let utoipa::openapi::schema::ArrayItems::RefOrSchema(items) = &mut a.items {
                flatten_in(snapshot, items, depth + 1);
            }
        }
        _ => {}
    }
}

/// The answers every operation of a kind can give, whatever its handler:
/// authentication and authorization (`401`, `403`, `429` with
/// `Retry-After`) on every operation that needs a token, the body's
/// problems (`400`, `413`, `415`, `422`) on every operation that takes one,
/// `404` where a path names an object, `412` where `If-Match` is honoured;
/// all as RFC 7807 problems, declared once under `components/responses`.
struct StandardResponses;

impl Modify for StandardResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        let problem = |desc: &str, retry: bool| {
            let mut b = ResponseBuilder::new().description(desc).content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            );
            if retry {
                b = b.header(
                    "Retry-After",
                    HeaderBuilder::new()
                        .schema(
                            ObjectBuilder::new()
                                .schema_type(Type::Integer)
                                .minimum(Some(1)),
                        )
                        .description(Some("Seconds until the address may try again"))
                        .build(),
                );
            }
            b.build()
        };
        let standard = [
            (
                "400",
                "BadRequest",
                "The request is malformed: JSON syntax, a duplicated key, a query parameter",
                false,
            ),
            (
                "401",
                "Unauthorized",
                "No API token, or one that is unknown, revoked or expired",
                false,
            ),
            (
                "403",
                "Forbidden",
                "The token's role does not allow this operation (the problem names the role needed)",
                false,
            ),
            ("404", "NotFound", "No such object", false),
            (
                "412",
                "PreconditionFailed",
                "If-Match names a version that is no longer current",
                false,
            ),
            (
                "413",
                "PayloadTooLarge",
                "The body is larger than this operation accepts",
                false,
            ),
            ("415", "UnsupportedMediaType", "The body is not JSON", false),
            (
                "422",
                "Unprocessable",
                "The body breaks a rule of the configuration; `errors` names each field at fault",
                false,
            ),
            (
                "429",
                "TooManyRequests",
                "Too many wrong tokens from this address: wait for Retry-After",
                true,
            ),
        ];
        let components = openapi.components.get_or_insert_with(Default::default);
        for (_, name, desc, retry) in &standard {
            components
                .responses
                .insert(name.to_string(), RefOr::T(problem(desc, *retry)));
        }
        for item in openapi.paths.paths.values_mut() {
            let has_path_params = item
                .parameters
                .iter()
                .flatten()
                .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path);
            for op in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
            ]
            .into_iter()
            .flatten()
            {
                let secured = op
                    .security
                    .as_ref()
                    .is_some_and(|s| s.iter().any(|r| r != &SecurityRequirement::default()));
                let path_params = has_path_params
                    || op
                        .parameters
                        .iter()
                        .flatten()
                        .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Path);
                let if_match = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.name.eq_ignore_ascii_case("If-Match"));
                let query = op
                    .parameters
                    .iter()
                    .flatten()
                    .any(|p| p.parameter_in == utoipa::openapi::path::ParameterIn::Query);
                let body = op.request_body.is_some();
                // If-Match takes the strong ETag this server sends,
                // "<version>", or `*` (any current version, RFC 9110).
                for p in op.parameters.iter_mut().flatten() {
                    if p.name.eq_ignore_ascii_case("If-Match") {
                        p.schema = Some(RefOr::T(Schema::Object(
                            ObjectBuilder::new()
                                .schema_type(Type::String)
                                .pattern(Some(r#"^(?:\*|"[0-9]{1,18}")$"#))
                                .build(),
                        )));
                    }
                }
                for (code, name, _, _) in &standard {
                    let applies = match *code {
                        "401" | "403" | "429" => secured,
                        "400" => body || query || path_params,
                        "413" | "415" | "422" => body,
                        "404" => path_params,
                        "412" => if_match,
                        _ => false,
                    };
                    if applies && !op.responses.responses.contains_key(*code) {
                        op.responses.responses.insert(
                            code.to_string(),
                            RefOr::Ref(Ref::new(format!("#/components/responses/{name}"))),
                        );
                    }
                }
            }
        }
    }
}

/// utoipa writes every unsigned 32-bit field as `int32` from 0 with no
/// maximum, so a generated 2^32 would be schema-valid and refused, and
/// 2^31 schema-invalid and accepted: such fields become `int64` with the
/// maximum stated. (The narrower u8/u16/i8 fields state their own
/// ranges on the model.)
/// The schemas of a configuration document's objects (`ConfigReceiveConnector`…):
/// each model type as the document states it — every field may be left
/// out (it takes its default, as on creation) — with its secret, if it has
/// one, as a [`SecretReference`](super::config_doc).
struct ConfigSchemas;

impl Modify for ConfigSchemas {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let Some(c) = openapi.components.as_mut() else {
            return;
        };
        for (component, secret) in super::config_doc::ITEM_SCHEMAS {
            let Some(schema) = c.schemas.get(*component) else {
                continue;
            };
            let mut v = serde_json::to_value(schema).expect("schemas serialize");
            if let Some(o) = v.as_object_mut() {
                o.remove("required");
                let about = o
                    .get("description")
                    .and_then(serde_json::Value::as_str)
                    .map(|d| format!("{d}\n\n"))
                    .unwrap_or_default();
                o.insert(
                    "description".into(),
                    format!(
                        "{about}As a configuration document states it: a field left out takes its \
                         default, as on creation; a named object's `name` is its key."
                    )
                    .into(),
                );
                if let Some(field) = secret
                    && let Some(props) = o.get_mut("properties").and_then(|p| p.as_object_mut())
                {
                    props.insert(
                        field.to_string(),
                        serde_json::json!({"$ref": "#/components/schemas/SecretReference"}),
                    );
                }
            }
            c.schemas.insert(
                format!("Config{component}"),
                serde_json::from_value(v).expect("a schema reads back"),
            );
        }
        let secret = serde_json::json!({
            "description": format!(
                "A secret by reference, resolved by the server: an environment variable named \
                 {}… or a file in --secrets-dir. Never the secret itself.",
                super::config_doc::ENV_PREFIX
            ),
            "oneOf": [
                {"type": "object", "required": ["env"], "additionalProperties": false,
                 "properties": {"env": {"type": "string",
                    "pattern": format!("^{}.+$", super::config_doc::ENV_PREFIX)}}},
                {"type": "object", "required": ["file"], "additionalProperties": false,
                 "properties": {"file": {"type": "string", "minLength": 1, "maxLength": 255}}}
            ]
        });
        c.schemas.insert(
            "SecretReference".into(),
            serde_json::from_value(secret).expect("a schema reads back"),
        );
    }
}

struct UnsignedBounds;

impl Modify for UnsignedBounds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::Number;
        use utoipa::openapi::schema::{ArrayItems, KnownFormat, SchemaFormat};
        fn walk(s: &mut RefOr<Schema>) {
            let RefOr::T(s) = s else { return };
            match s {
                Schema::Object(o) => {
                    let non_negative = match o.minimum {
                        Some(Number::Int(n)) => n >= 0,
                        Some(Number::UInt(_)) => true,
                        Some(Number::Float(f)) => f >= 0.0,
                        None => false,
                    };
                    if o.format == Some(SchemaFormat::KnownFormat(KnownFormat::Int32))
                        && non_negative
                        && o.maximum.is_none()
                    {
                        // `int32` tops out at 2^31 - 1: an unsigned 32-bit
                        // field is an int64 with its own maximum.
                        o.format = Some(SchemaFormat::KnownFormat(KnownFormat::Int64));
                        o.maximum = Some(Number::UInt(u32::MAX as usize));
                    }
                    // And a u64 field is capped where int64 ends, which
                    // the validator enforces and the document promises.
                    if o.format == Some(SchemaFormat::KnownFormat(KnownFormat::Int64))
                        && non_negative
                        && o.maximum.is_none()
                    {
                        o.maximum = Some(Number::UInt(i64::MAX as usize));
                    }
                    o.properties.values_mut().for_each(walk);
                }
                Schema::Array(a) => {
                    if let ArrayItems::RefOrSchema(i) = &mut a.items {
                        walk(i);
                    }
                }
                Schema::OneOf(x) => x.items.iter_mut().for_each(walk),
                Schema::AllOf(x) => x.items.iter_mut().for_each(walk),
                Schema::AnyOf(x) => x.items.iter_mut().for_each(walk),
                _ => {}
            }
        }
        if let Some(c) = openapi.components.as_mut() {
            c.schemas.values_mut().for_each(walk);
        }
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.put,
                &mut item.delete,
            ]
            .into_iter()
            .flatten()
            {
                for p in op.parameters.iter_mut().flatten() {
                    if let Some(s) = p.schema.as_mut() {
                        walk(s);
                    }
                }
            }
        }
    }
}

/// Rules that join fields, which a property-by-property schema cannot
/// state, written as JSON Schema `if`/`then` on the request bodies so a
/// client (and the request check) knows them: a header name with its
/// words, a login's own addresses or its directory entry, a directory or
/// mailboxes only on an Authoritative domain. A creation states the whole
/// object, so a rule's other field is required; a merge patch states only
/// what changes, so it may leave the other field as stored and may only
/// not remove it (a break that involves a stored field is answered 409).
struct JointRules;

/// `if` `field` is given as a `ty` (not null), `then` `other` must be one:
/// required in a creation, not null in a patch.
fn needs(field: &str, ty: &str, other: &str, other_ty: &str, create: bool) -> serde_json::Value {
    let mut then = serde_json::json!({
        "properties": {other: {"type": other_ty, "description": format!("is required with {field}")}},
    });
    if create {
        then["required"] = serde_json::json!([other]);
        then["description"] = serde_json::json!(format!("is required with {field}"));
    }
    serde_json::json!({
        "if": {"required": [field], "properties": {field: {"type": ty}}},
        "then": then,
    })
}

/// `if` the condition holds, `then` each of `fields` is absent or null.
fn left_out(condition: serde_json::Value, fields: &[(&str, &str)]) -> serde_json::Value {
    let props: serde_json::Map<String, serde_json::Value> = fields
        .iter()
        .map(|(f, why)| {
            let schema = if *f == "aliases" {
                serde_json::json!({"type": ["null", "array"], "maxItems": 0, "description": why})
            } else {
                serde_json::json!({"type": "null", "description": why})
            };
            (f.to_string(), schema)
        })
        .collect();
    serde_json::json!({"if": condition, "then": {"properties": props}})
}

/// The joined rules of a transport rule's conditions (or exceptions) and
/// actions: each header name with its words or patterns, and back.
fn rule_joins(create: bool) -> serde_json::Value {
    let both = |a: &str, a_ty: &str, b: &str, b_ty: &str| {
        [
            needs(a, a_ty, b, b_ty, create),
            needs(b, b_ty, a, a_ty, create),
        ]
    };
    let predicates: Vec<serde_json::Value> = both(
        "headerContainsWords",
        "array",
        "headerContainsMessageHeader",
        "string",
    )
    .into_iter()
    .chain(both(
        "headerMatchesPatterns",
        "array",
        "headerMatchesMessageHeader",
        "string",
    ))
    .collect();
    let mut actions: Vec<serde_json::Value> =
        both("setHeaderName", "string", "setHeaderValue", "string").into();
    // Rejecting, deleting, quarantining and redirecting exclude one another.
    let alone = "reject, deleteMessage, quarantine and redirectMessageTo exclude one another";
    let reject = [
        ("rejectMessageEnhancedStatusCode", alone),
        ("rejectMessageReasonText", alone),
    ];
    let chosen =
        |f: &str, v: serde_json::Value| serde_json::json!({"required": [f], "properties": {f: v}});
    actions.push(left_out(
        chosen("deleteMessage", serde_json::json!({"const": true})),
        &[("redirectMessageTo", alone)]
            .into_iter()
            .chain(reject)
            .collect::<Vec<_>>(),
    ));
    actions.push(left_out(
        chosen("quarantine", serde_json::json!({"const": true})),
        &[("redirectMessageTo", alone)]
            .into_iter()
            .chain(reject)
            .collect::<Vec<_>>(),
    ));
    actions.push(serde_json::json!({
        "if": chosen("deleteMessage", serde_json::json!({"const": true})),
        "then": {"properties": {"quarantine": {"const": false, "description": alone}}},
    }));
    actions.push(left_out(
        chosen("redirectMessageTo", serde_json::json!({"type": "array"})),
        &reject,
    ));
    if create {
        // A rule needs an action: some action given, a switch turned on.
        let given: Vec<serde_json::Value> = [
            ("prependSubject", "string"),
            ("setHeaderName", "string"),
            ("setHeaderValue", "string"),
            ("removeHeader", "string"),
            ("setScl", "integer"),
            ("rejectMessageEnhancedStatusCode", "string"),
            ("rejectMessageReasonText", "string"),
            ("redirectMessageTo", "array"),
            ("addToRecipients", "array"),
            ("logEventText", "string"),
        ]
        .into_iter()
        .map(|(f, ty)| chosen(f, serde_json::json!({"type": ty})))
        .chain(
            ["deleteMessage", "quarantine", "stopRuleProcessing"]
                .map(|f| chosen(f, serde_json::json!({"const": true}))),
        )
        .collect();
        actions.push(serde_json::json!({"anyOf": given, "x-rule": "a rule needs an action"}));
    }
    serde_json::json!({"properties": {
        "conditions": {"allOf": predicates},
        "exceptions": {"allOf": predicates},
        "actions": {"allOf": actions},
    }})
}

impl Modify for JointRules {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use serde_json::json;
        let not_authoritative = json!({
            "required": ["domainType"],
            "properties": {"domainType": {"enum": ["InternalRelay", "ExternalRelay"]}},
        });
        let domain = left_out(
            not_authoritative,
            &[
                (
                    "recipientDirectory",
                    "only an Authoritative domain has all its recipients here",
                ),
                (
                    "mailboxDelivery",
                    "only an Authoritative domain has its mailboxes here",
                ),
            ],
        );
        // Named on directoryRecipient, as the model names it.
        let from_directory =
            "takes the addresses from the directory: leave primaryAddress and aliases out";
        let own_address = left_out(
            json!({"required": ["primaryAddress"], "properties": {"primaryAddress": {"type": "string"}}}),
            &[("directoryRecipient", from_directory)],
        );
        let own_aliases = left_out(
            json!({"required": ["aliases"], "properties": {"aliases": {"type": "array", "minItems": 1}}}),
            &[("directoryRecipient", from_directory)],
        );
        let logins_only = "applies to logins only";
        let smart_host = left_out(
            json!({"required": ["kind"], "properties": {"kind": {"const": "SmartHost"}}}),
            &[
                ("principal", logins_only),
                ("primaryAddress", logins_only),
                ("aliases", logins_only),
                ("directoryRecipient", logins_only),
            ],
        );
        let rules: [(&str, Vec<serde_json::Value>); 6] = [
            ("AcceptedDomainCreate", vec![domain.clone()]),
            ("AcceptedDomainPatch", vec![domain]),
            (
                "CredentialCreate",
                vec![own_address.clone(), own_aliases.clone(), smart_host],
            ),
            ("CredentialPatch", vec![own_address, own_aliases]),
            ("TransportRuleCreate", vec![rule_joins(true)]),
            ("TransportRulePatch", vec![rule_joins(false)]),
        ];
        let Some(c) = openapi.components.as_mut() else {
            return;
        };
        for (name, all_of) in rules {
            let Some(RefOr::T(Schema::Object(o))) = c.schemas.get_mut(name) else {
                panic!("{name} is an object schema of the document");
            };
            o.extensions
                .get_or_insert_with(Default::default)
                .insert("allOf".into(), serde_json::Value::Array(all_of));
        }
    }
}

/// Links from each creation to the operations on what it created
/// (OpenAPI 3.1 Link Objects): the new object's `id` (or `name`, or a
/// recipient's `primaryAddress`) fills the item path's parameter, so a
/// client, and a stateful tester, can walk from a POST to the GET, PATCH
/// and DELETE of its object.
struct Links;

impl Modify for Links {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let schemas = openapi
            .components
            .as_ref()
            .map(|c| c.schemas.clone())
            .unwrap_or_default();
        let has_field = |r: &utoipa::openapi::Response, field: &str| {
            let Some(RefOr::Ref(r)) = r
                .content
                .get("application/json")
                .and_then(|c| c.schema.as_ref())
            else {
                return false;
            };
            let name = r.ref_location.rsplit('/').next().unwrap_or_default();
            matches!(schemas.get(name), Some(RefOr::T(Schema::Object(o))) if o.properties.contains_key(field))
        };
        // (collection path, item path parameter, [(method, operation id)])
        type Item = (String, String, Vec<(&'static str, String)>);
        let items: Vec<Item> = openapi
            .paths
            .paths
            .iter()
            .filter_map(|(path, item)| {
                let (parent, last) = path.rsplit_once('/')?;
                let param = last.strip_prefix('{')?.strip_suffix('}')?;
                let ops = [
                    ("get", &item.get),
                    ("patch", &item.patch),
                    ("delete", &item.delete),
                ]
                .into_iter()
                .filter_map(|(m, op)| Some((m, op.as_ref()?.operation_id.clone()?)))
                .collect();
                Some((parent.to_string(), param.to_string(), ops))
            })
            .collect();
        for (parent, param, ops) in items {
            let Some(created) = openapi
                .paths
                .paths
                .get_mut(&parent)
                .and_then(|i| i.post.as_mut())
                .and_then(|op| op.responses.responses.get_mut("201"))
            else {
                continue;
            };
            let RefOr::T(created) = created else { continue };
            let field = if param == "address" {
                "primaryAddress"
            } else {
                param.as_str()
            };
            if !has_field(created, field) {
                continue;
            }
            // Written as JSON: utoipa 5.5 serializes its Link's operation
            // id as `operation_id`, which no OpenAPI tool reads.
            let links: serde_json::Map<String, serde_json::Value> = ops
                .into_iter()
                .map(|(method, operation_id)| {
                    let link = serde_json::json!({
                        "operationId": operation_id,
                        "parameters": {param.as_str(): format!("$response.body#/{field}")},
                        "description": format!("{} the object this created.", method.to_uppercase()),
                    });
                    (method.to_string(), link)
                })
                .collect();
            created
                .extensions
                .get_or_insert_with(Default::default)
                .insert("links".into(), serde_json::Value::Object(links));
        }
    }
}

/// The tracking search's `event` parameter takes a comma-separated list of
/// the event kinds there are, so its pattern is written from
/// `EventKind::ALL` rather than by hand.
struct TrackingEvents;

impl Modify for TrackingEvents {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let names: Vec<&str> = crate::observe::vocabulary::EventKind::ALL
            .iter()
            .map(|k| k.as_str())
            .collect();
        let one = format!("({})", names.join("|"));
        let pattern = format!("^{one}(,{one})*$");
        let op = openapi
            .paths
            .paths
            .get_mut("/api/v1/tracking")
            .and_then(|i| i.get.as_mut());
        for p in op
            .into_iter()
            .flat_map(|o| o.parameters.iter_mut().flatten())
        {
            if p.name == "event" {
                p.schema = Some(RefOr::T(Schema::Object(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .pattern(Some(pattern.clone()))
                        .build(),
                )));
            }
        }
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Ferry",
        description = "An SMTP transport appliance in the mould of Exchange Edge and Hub Transport, managed over REST. \
Every request under /api/v1 needs `Authorization: Bearer <API token>`; each operation's security requirement names the role it needs (`403` otherwise). Errors are RFC 7807 problem JSON naming the field at fault. \
Objects carry a version, sent as ETag; PATCH and DELETE honour If-Match and answer 412 when it is stale."
    ),
    modifiers(&Security, &OperationIds, &StandardResponses, &FlattenViews, &TrackingEvents, &UnsignedBounds, &JointRules, &ConfigSchemas, &Links),
    paths(
        healthz, server_info, fleet::list, drain::drain, drain::resume,
        receive_connectors::list, receive_connectors::get, receive_connectors::create, receive_connectors::patch, receive_connectors::delete, receive_connectors::explain, routing::explain,
        webhooks::list, webhooks::get, webhooks::create, webhooks::patch, webhooks::delete, webhooks::deliveries,
        config_doc::export, config_doc::apply,
        send_connectors::list, send_connectors::get, send_connectors::create, send_connectors::patch, send_connectors::delete,
        accepted_domains::list, accepted_domains::get, accepted_domains::create, accepted_domains::patch, accepted_domains::delete,
        credentials::list, credentials::get, credentials::create, credentials::patch, credentials::delete,
        certificates::list, certificates::get, certificates::create, certificates::patch, certificates::delete,
        acme::list, acme::get, acme::create, acme::patch, acme::delete, acme::renew,
        transport_settings::get, transport_settings::patch,
        queues::list, queues::get, queues::retry, queues::suspend, queues::resume,
        queues::messages, queues::message, queues::raw, queues::suspend_message, queues::resume_message,
        queues::resubmit, queues::remove, queues::bulk,
        observe::tracking, observe::protocol_logs, observe::metrics,
        recipients::list, recipients::get, recipients::create, recipients::bulk_add, recipients::replace, recipients::delete,
        anti_spam::agents, anti_spam::patch_agent,
        anti_spam::get_sender_filter, anti_spam::patch_sender_filter,
        anti_spam::get_recipient_filter, anti_spam::patch_recipient_filter,
        anti_spam::get_attachment_filter, anti_spam::patch_attachment_filter,
        anti_spam::add_attachment_entry, anti_spam::remove_attachment_entry,
        content::get_content_filter, content::patch_content_filter,
        content::list_rewrites, content::get_rewrite, content::create_rewrite, content::patch_rewrite, content::delete_rewrite,
        content::list_rules, content::get_rule, content::create_rule, content::patch_rule, content::delete_rule,
        message_auth::list, message_auth::get, message_auth::create, message_auth::patch, message_auth::delete, message_auth::dns_check,
        message_auth::get_sender_id, message_auth::patch_sender_id, message_auth::spf_check,
        message_auth::dmarc_reports, message_auth::send_dmarc_reports,
        message_auth::tls_reports, message_auth::send_tls_reports,
        anti_spam::block::get_config, anti_spam::block::patch_config,
        anti_spam::block::list_entries, anti_spam::block::create_entry, anti_spam::block::create_entries, anti_spam::block::get_entry, anti_spam::block::delete_entry,
        anti_spam::block::list_providers, anti_spam::block::create_provider, anti_spam::block::get_provider,
        anti_spam::block::patch_provider, anti_spam::block::delete_provider,
        anti_spam::allow::get_config, anti_spam::allow::patch_config,
        anti_spam::allow::list_entries, anti_spam::allow::create_entry, anti_spam::allow::create_entries, anti_spam::allow::get_entry, anti_spam::allow::delete_entry,
        anti_spam::allow::list_providers, anti_spam::allow::create_provider, anti_spam::allow::get_provider,
        anti_spam::allow::patch_provider, anti_spam::allow::delete_provider,
        api_tokens::list, api_tokens::get, api_tokens::create, api_tokens::revoke, api_tokens::rotate,
        audit::search,
    ),
    components(schemas(
        Problem, model::FieldError, Meta, ServerInfo, Health,
        model::Domain, model::DomainPattern, model::Host, model::IpRange, model::Binding, model::AddressSpace,
        model::Timespan, model::Limit, model::transport_settings::DnsServer,
        ReceiveConnectorCreate, ReceiveConnectorPatch, SendConnectorCreate, SendConnectorPatch,
        AcceptedDomainCreate, AcceptedDomainPatch, CredentialCreate, CredentialPatch, TransportSettingsPatch, CertificatePatch,
        certificates::ImportCertificate, certificates::SelfSignedCertificate, certificates::TrustAnchor,
        IpListConfigPatch, IpListEntryCreate, IpListProviderCreate, IpListProviderPatch, TransportAgentPatch,
        IpAllowListConfigPatch, IpAllowListProviderCreate, IpAllowListProviderPatch,
        SenderFilterConfigPatch, RecipientFilterConfigPatch, IpListEntriesBulk, AttachmentFilterConfigPatch,
        ContentFilterConfigPatch, AddressRewriteEntryCreate, AddressRewriteEntryPatch, TransportRuleCreate, TransportRulePatch,
        DkimSigningKeyCreate, DkimSigningKeyPatch, SenderIdConfigPatch, WebhookCreate, WebhookPatch,
        AcmeCertificateCreate, AcmeCertificatePatch,
        model::api_token::ApiToken, model::api_token::ApiRole,
        api_tokens::ApiTokenCreate, api_tokens::ApiTokenRotate, api_tokens::ApiTokenSecret,
        audit::AuditPage, crate::store::audit::AuditEntry, crate::config::audit::FieldChange,
        model::CertificateRecord, model::anti_spam::TransportAgents, model::address_rewrite::AddressRewriteEntries, model::edge_rule::TransportRules,
        drain::DrainRequest, drain::DrainStatus, crate::model::drain::DrainState,
        config_doc::ConfigDocument, config_doc::ConfigPlan, config_doc::ObjectPlan, config_doc::PlanAction, config_doc::PlanSummary,
    )),
    tags(
        (name = "receive-connectors", description = "Where and from whom mail is accepted (New-ReceiveConnector)"),
        (name = "send-connectors", description = "How mail leaves (New-SendConnector)"),
        (name = "routing", description = "Where a recipient's mail goes, and why"),
        (name = "webhooks", description = "Tracking events sent as signed JSON to your URLs"),
        (name = "config", description = "The whole configuration as one document: export, plan, apply (configuration as code)"),
        (name = "accepted-domains", description = "Domains this organisation receives mail for"),
        (name = "credentials", description = "AUTH logins and smart-host credentials; passwords are write-only"),
        (name = "certificates", description = "TLS certificates and trust anchors; private keys are never returned"),
        (name = "transport-settings", description = "Server-wide retry, expiry and DNS settings"),
        (name = "recipients", description = "The recipient directory Ferry holds: recipient validation's List source and a Hub's mailbox directory"),
        (name = "anti-spam", description = "The transport agents and Connection Filtering: IP Block and Allow lists, their entries and providers"),
        (name = "content-agents", description = "The agents that read the message: the Content Filter (rspamd, SCL), address rewriting and Edge transport rules"),
        (name = "message-authentication", description = "DKIM signing keys and their DNS records; SPF, DKIM and DMARC verification"),
        (name = "queues", description = "The queue viewer: queues, messages, and their actions"),
        (name = "tracking", description = "Message tracking, protocol logs and metrics"),
        (name = "server", description = "Health and identity"),
        (name = "audit-log", description = "The admin audit log: every change through the API, who made it, and the fields it changed"),
        (name = "api-tokens", description = "Named API tokens with a role (View-Only, Operator, Administrator) and an optional expiry; Administrator only"),
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON with a trailing newline, as committed.
pub fn json() -> String {
    let mut s = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operation_ids_are_unique_and_read_as_actions() {
        let doc: serde_json::Value = serde_json::from_str(&json()).unwrap();
        let mut seen = std::collections::HashMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_string();
                if let Some(other) = seen.insert(id.clone(), format!("{method} {path}")) {
                    panic!("{id} names both {other} and {method} {path}");
                }
            }
        }
        for (m, p, id) in [
            ("get", "/api/v1/receive-connectors", "listReceiveConnectors"),
            (
                "get",
                "/api/v1/receive-connectors/{id}",
                "getReceiveConnector",
            ),
            (
                "post",
                "/api/v1/address-rewrite-entries",
                "createAddressRewriteEntry",
            ),
            (
                "patch",
                "/api/v1/transport-settings",
                "updateTransportSettings",
            ),
            ("post", "/api/v1/queues/{id}/retry", "retryQueue"),
            ("get", "/api/v1/messages/{id}/raw", "getMessageRaw"),
            (
                "post",
                "/api/v1/ip-block-list-entries/bulk",
                "createIpBlockListEntriesBulk",
            ),
            ("post", "/api/v1/tls-reports/send", "sendTlsReports"),
            ("get", "/healthz", "getHealthz"),
        ] {
            assert_eq!(operation_id(m, p), id);
        }
    }
}
