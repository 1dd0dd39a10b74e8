//! The OpenAPI document as the first check of every request body: the body
//! of each operation is validated against the JSON Schema the document
//! declares for it (`jsonschema`, draft 2020-12, formats checked) before the
//! model reads it. Whatever the document refuses, the server refuses, so
//! the two cannot drift apart; the model's own rules (a range that overlaps
//! another, a certificate that does not match its key) come after.
//!
//! The validators are compiled once, from the same `ApiDoc` that
//! `/api/v1/openapi.json` serves, keyed by method and route template.

use std::collections::HashMap;
use std::sync::LazyLock;

use axum::http::Method;
use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;
use jsonschema::{Draft, Validator};
use serde_json::{Value, json};
use utoipa::OpenApi;

use crate::model::{FieldError, Invalid};

/// Each operation's validator, with the schema document it was compiled
/// from (where an error's schema path is looked up for its description).
static BODIES: LazyLock<HashMap<(Method, String), (Validator, Value)>> = LazyLock::new(compile);

/// The document both tables are compiled from, serialized once.
static DOCUMENT: LazyLock<Value> =
    LazyLock::new(|| serde_json::to_value(super::openapi::ApiDoc::openapi()).expect("serializes"));

fn compile() -> HashMap<(Method, String), (Validator, Value)> {
    let doc = &*DOCUMENT;
    let components = doc["components"].clone();
    let mut out = HashMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            let Some(content) = op["requestBody"]["content"].as_object() else {
                continue;
            };
            let Some(schema) = content.values().find_map(|c| c.get("schema")) else {
                continue;
            };
            // The operation's schema inside a document that carries the
            // components it refers to (and theirs), so its
            // `#/components/schemas/...` refs resolve. Only those: a copy of
            // every component for each of some fifty operations held a
            // quarter of a gigabyte.
            let root = json!({"components": referenced(schema, &components), "allOf": [schema]});
            let validator = jsonschema::options()
                .with_draft(Draft::Draft202012)
                .should_validate_formats(true)
                .build(&root)
                .unwrap_or_else(|e| panic!("the schema of {method} {path} compiles: {e}"));
            out.insert((method, path.clone()), (validator, root));
        }
    }
    out
}

/// A query parameter as the document declares it.
struct QueryParam {
    name: String,
    required: bool,
    /// The JSON type the text is read as before it is checked.
    kind: &'static str,
    validator: Validator,
}

static QUERIES: LazyLock<HashMap<(Method, String), Vec<QueryParam>>> = LazyLock::new(|| {
    let doc = &*DOCUMENT;
    let mut out = HashMap::new();
    for (path, item) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in item.as_object().into_iter().flatten() {
            let Ok(method) = method.to_ascii_uppercase().parse::<Method>() else {
                continue;
            };
            let params: Vec<QueryParam> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .map(|p| {
                    let schema = &p["schema"];
                    // `["integer", "null"]` (an Option) is read as its non-null type.
                    let ty = match &schema["type"] {
                        Value::Array(types) => types
                            .iter()
                            .find_map(|t| t.as_str().filter(|t| *t != "null")),
                        t => t.as_str(),
                    };
                    let kind = match ty {
                        Some("integer") => "integer",
                        Some("number") => "number",
                        Some("boolean") => "boolean",
                        _ => "string",
                    };
                    let validator = jsonschema::options()
                        .with_draft(Draft::Draft202012)
                        .should_validate_formats(true)
                        .build(schema)
                        .unwrap_or_else(|e| {
                            panic!("the query schema of {method} {path} compiles: {e}")
                        });
                    QueryParam {
                        name: p["name"].as_str().unwrap_or_default().to_string(),
                        required: p["required"] == true,
                        kind,
                        validator,
                    }
                })
                .collect();
            if !params.is_empty() {
                out.insert((method, path.clone()), params);
            }
        }
    }
    out
});

/// Checks the query string of `method route` against the parameters the
/// document declares: each present one read as its type and validated,
/// each required one present. Parameters it does not declare are ignored.
pub fn check_query(method: &Method, route: &str, query: &str) -> Result<(), Invalid> {
    let Some(params) = QUERIES.get(&(method.clone(), route.to_string())) else {
        return Ok(());
    };
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut errors = vec![];
    for p in params {
        let mut present = false;
        for (_, text) in pairs.iter().filter(|(k, _)| *k == p.name) {
            present = true;
            let value = match p.kind {
                "integer" => text.parse::<i64>().ok().map(Value::from),
                "number" => text.parse::<f64>().ok().map(Value::from),
                "boolean" => match text.as_str() {
                    "true" => Some(Value::Bool(true)),
                    "false" => Some(Value::Bool(false)),
                    _ => None,
                },
                _ => Some(Value::String(text.clone())),
            };
            let message = match value {
                None => Some(format!("must be {} {}", article(p.kind), p.kind)),
                Some(v) => p
                    .validator
                    .iter_errors(&v)
                    .next()
                    .map(|e| describe(&e, None)),
            };
            if let Some(message) = message {
                errors.push(FieldError::new(p.name.clone(), message));
                break;
            }
        }
        if p.required && !present {
            errors.push(FieldError::new(p.name.clone(), "is required"));
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Invalid(errors))
    }
}

fn article(kind: &str) -> &'static str {
    if kind.starts_with('i') { "an" } else { "a" }
}

/// Middleware: a query string the document refuses is answered 400 with
/// the parameter at fault, before the handler runs.
pub async fn query_layer(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_default();
    if let Err(e) = check_query(req.method(), &route, req.uri().query().unwrap_or("")) {
        let detail = e.to_string();
        let mut err = super::problem::ApiError::bad_request(detail);
        for f in e.0 {
            err = err.with_field(f.field, f.message);
        }
        return err.into_response();
    }
    next.run(req).await
}

/// Compiles every body schema now (at start), so a schema the validator
/// cannot read stops Ferry at once instead of failing its first request.
pub fn prepare() {
    LazyLock::force(&BODIES);
    LazyLock::force(&QUERIES);
}

/// The components `schema` refers to, directly or through one another.
fn referenced(schema: &Value, components: &Value) -> Value {
    const PREFIX: &str = "#/components/schemas/";
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref")
                    && let Some(name) = r.strip_prefix(PREFIX)
                {
                    out.push(name.to_string());
                }
                m.values().for_each(|x| refs(x, out));
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            _ => {}
        }
    }
    let all = &components["schemas"];
    let mut todo = vec![];
    refs(schema, &mut todo);
    let mut schemas = serde_json::Map::new();
    while let Some(name) = todo.pop() {
        if schemas.contains_key(&name) {
            continue;
        }
        if let Some(s) = all.get(&name) {
            refs(s, &mut todo);
            schemas.insert(name, s.clone());
        }
    }
    json!({"schemas": schemas})
}

/// Checks `body` against the schema of `method route`, naming each field
/// at fault the way the model does (`entries[3].name`).
pub fn check_body(method: &Method, route: &str, body: &Value) -> Result<(), Invalid> {
    let Some((v, root)) = BODIES.get(&(method.clone(), route.to_string())) else {
        return Ok(());
    };
    let mut errors: Vec<FieldError> = vec![];
    for e in v.iter_errors(body) {
        collect(&e, root, &mut errors);
        if errors.len() >= 20 {
            break;
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(Invalid(errors))
    }
}

/// Adds one validator error as model-style field errors. A value that
/// matches none of a `oneOf`/`anyOf` (the certificate bodies, chosen by
/// `source`) is reported by the branch it came closest to.
fn collect(e: &jsonschema::ValidationError, root: &Value, errors: &mut Vec<FieldError>) {
    // A rule over several fields (`x-rule` beside its `anyOf`) is reported
    // in its own words on the object, not by the branch it came nearest.
    let schema_path = e.schema_path().as_str();
    let rule = root
        .pointer(schema_path.rsplit_once('/').map_or("", |(p, _)| p))
        .and_then(|s| s.get("x-rule"))
        .and_then(Value::as_str);
    if let (ValidationErrorKind::AnyOf { .. }, Some(rule)) = (e.kind(), rule) {
        errors.push(FieldError::new(path_of(e), rule));
        return;
    }
    if let ValidationErrorKind::OneOfNotValid { context } | ValidationErrorKind::AnyOf { context } =
        e.kind()
        && let Some(best) = context.iter().filter(|b| !b.is_empty()).min_by_key(|b| {
            // A branch whose fixed value (the discriminator) differs is
            // further than any branch with the right one.
            let wrong_kind = b
                .iter()
                .filter(|x| matches!(x.kind(), ValidationErrorKind::Enum { .. }))
                .count();
            // A branch of another type altogether (null, for an object)
            // is further still.
            let wrong_type = b.iter().any(|x| {
                matches!(x.kind(), ValidationErrorKind::Type { .. })
                    && x.instance_path().as_str() == e.instance_path().as_str()
            });
            (wrong_type, wrong_kind, b.len())
        })
    {
        for inner in best {
            collect(inner, root, errors);
        }
        return;
    }
    let field = path_of(e);
    // A rule that joins fields (`if`/`then` in the document) says in its
    // own words what it wants of the field at fault.
    let joint = schema_path
        .contains("/then/")
        .then(|| schema_path.rsplit_once('/').map_or("", |(p, _)| p))
        .and_then(|p| root.pointer(p))
        .and_then(|s| s.get("description"))
        .and_then(Value::as_str);
    let (field, message) = match e.kind() {
        ValidationErrorKind::Required { property } if joint.is_some() => {
            let p = property.as_str().unwrap_or_default();
            (join(&field, p), joint.unwrap_or_default().to_string())
        }
        _ if joint.is_some() => (field, joint.unwrap_or_default().to_string()),
        ValidationErrorKind::Required { property } => {
            let p = property.as_str().unwrap_or_default();
            (join(&field, p), "is required".to_string())
        }
        ValidationErrorKind::AdditionalProperties { unexpected } => (
            join(&field, unexpected.first().map(String::as_str).unwrap_or("")),
            "is not a field of this object".to_string(),
        ),
        _ => (field, describe(e, Some(root))),
    };
    if !errors.iter().any(|x| x.field == field) {
        errors.push(FieldError::new(field, message));
    }
}

/// The field an error is about, as the model names it (`entries[3].name`).
fn path_of(e: &jsonschema::ValidationError) -> String {
    let mut field = String::new();
    for seg in e.instance_path().segments() {
        match seg {
            LocationSegment::Property(p) => {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(&p);
            }
            LocationSegment::Index(i) => field.push_str(&format!("[{i}]")),
        }
    }
    field
}

fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// What is wrong, in words: for a value not of its form, the value and the
/// description of the schema it broke (`'10.0.0.300' is not valid: A
/// remote IP range: ...`) rather than a regular expression.
fn describe(e: &jsonschema::ValidationError, root: Option<&Value>) -> String {
    let value = match e.instance().as_ref() {
        Value::String(s) if s.chars().count() > 100 => {
            format!("'{}…'", s.chars().take(100).collect::<String>())
        }
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    };
    // The schema the keyword belongs to, for its description.
    let schema_path = e.schema_path().as_str();
    let description = root
        .and_then(|r| r.pointer(schema_path.rsplit_once('/').map_or("", |(p, _)| p)))
        .and_then(|s| s.get("description"))
        .and_then(Value::as_str);
    match e.kind() {
        ValidationErrorKind::Pattern { .. } | ValidationErrorKind::Format { .. } => {
            match description {
                Some(d) => format!("{value} is not valid: {d}"),
                None => format!("{value} is not in the form this field takes"),
            }
        }
        _ => {
            let text = e.to_string();
            if text.chars().count() > 300 {
                format!("{}…", text.chars().take(300).collect::<String>())
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_body_schema_compiles_and_names_fields_like_the_model() {
        prepare();
        assert!(BODIES.len() > 30, "{} body schemas", BODIES.len());
        let e = check_body(
            &Method::POST,
            "/api/v1/accepted-domains",
            &json!({"domainName": "contoso.com", "bogus": 1}),
        )
        .unwrap_err();
        assert!(
            e.0.iter().any(|f| f.field == "bogus" || f.field == "name"),
            "{e}"
        );
    }
}
