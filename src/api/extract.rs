//! Request extractors that answer in problem JSON: a JSON body (syntax
//! checked here, meaning checked by the model), the `If-Match` precondition,
//! and responses that carry an `ETag`.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::problem::ApiError;

/// A JSON request body, parsed but not yet interpreted.
pub struct JsonBody(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let ct = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mime = ct.split(';').next().unwrap_or("").trim().to_string();
        if mime != "application/json" && !mime.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "send the body as application/json (or application/merge-patch+json for PATCH)",
            ));
        }
        let method = req.method().clone();
        let route = req
            .extensions()
            .get::<axum::extract::MatchedPath>()
            .map(|m| m.as_str().to_string())
            .unwrap_or_default();
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            let status = e.status();
            let kind = if status == StatusCode::PAYLOAD_TOO_LARGE {
                "payload-too-large"
            } else {
                "malformed-request"
            };
            ApiError::new(status, kind, "The body cannot be read", e.body_text())
        })?;
        // A large document (100,000 ranges) is parsed and checked on a
        // blocking thread, not on the async worker that SMTP sessions share.
        let large = bytes.len() > 256 * 1024;
        let read = move || -> Result<serde_json::Value, ApiError> {
            let mut value = parse_strict(&bytes).map_err(|e| {
                ApiError::bad_request(format!(
                    "the body is not valid JSON: {e} (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?;
            if !value.is_object() {
                return Err(ApiError::bad_request("the body must be a JSON object"));
            }
            // What the OpenAPI document refuses, the server refuses.
            super::contract::check_body(&method, &route, &value)?;
            // In a new object (POST, PUT) a null member is a member not
            // given, which takes its default; only a merge patch (PATCH)
            // gives null a meaning of its own (RFC 7396: remove).
            if method != axum::http::Method::PATCH {
                drop_nulls(&mut value);
            }
            Ok(value)
        };
        let value = if large {
            tokio::task::spawn_blocking(read)
                .await
                .map_err(|e| ApiError::bad_request(format!("the body cannot be parsed: {e}")))??
        } else {
            read()?
        };
        Ok(JsonBody(value))
    }
}

/// Removes every null member of every object, at any depth.
fn drop_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

/// JSON with every object's keys unique: `{"enabled": false, "enabled":
/// true}` means different things to different parsers (RFC 8259 §4), so it
/// is refused instead of silently keeping the last one.
pub fn parse_strict(bytes: &[u8]) -> Result<serde_json::Value, serde_json::Error> {
    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, SeqAccess, Visitor};
    use serde_json::{Map, Value};
    struct Strict;
    impl<'de> DeserializeSeed<'de> for Strict {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Strict {
        type Value = Value;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
            Ok(Value::Bool(v))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
            Ok(v.into())
        }
        fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
            // `5.0` is the integer 5 (JSON has one number type, and JSON
            // Schema calls it an integer), so it fits a whole-number field.
            if v.fract() == 0.0 && v.abs() < 9.0e15 {
                return Ok(Value::from(v as i64));
            }
            Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, v: &str) -> Result<Value, E> {
            Ok(Value::String(v.to_string()))
        }
        fn visit_string<E>(self, v: String) -> Result<Value, E> {
            Ok(Value::String(v))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut v = vec![];
            while let Some(x) = seq.next_element_seed(Strict)? {
                v.push(x);
            }
            Ok(Value::Array(v))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut m = Map::new();
            while let Some(k) = map.next_key::<String>()? {
                let v = map.next_value_seed(Strict)?;
                if m.insert(k.clone(), v).is_some() {
                    return Err(A::Error::custom(format!("duplicate key '{k}'")));
                }
            }
            Ok(Value::Object(m))
        }
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Strict.deserialize(&mut de)?;
    de.end()?;
    Ok(v)
}

/// The version named by `If-Match`, if the client sent one (`*` matches any).
/// Without it a PATCH is applied to the current version inside the
/// writer's transaction, so no concurrent change is overwritten by a stale
/// copy; a client that reads, modifies and writes back a whole field (an
/// array, say) must send the ETag it read, or it may undo another's change.
pub struct IfMatch(pub Option<i64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(v) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        let s = v.to_str().unwrap_or("").trim();
        if s == "*" {
            return Ok(IfMatch(None));
        }
        // If-Match compares strongly (RFC 9110 §13.1.1): a weak tag never matches.
        if s.starts_with("W/") {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition-failed",
                "The object was changed by someone else",
                format!(
                    "If-Match '{s}' is a weak ETag; send the strong ETag from a GET, e.g. \"3\""
                ),
            ));
        }
        // Anything else names no version this server issued, so the
        // condition is false (RFC 9110 §13.1.1: the method must not be
        // performed, 412), whether it is another server's tag or no tag.
        s.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|t| t.parse::<i64>().ok())
            .map(|v| IfMatch(Some(v)))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::PRECONDITION_FAILED,
                    "precondition-failed",
                    "The object was changed by someone else",
                    format!(
                        "If-Match '{s}' names no version of this object; send the ETag from a GET, e.g. \"3\""
                    ),
                )
            })
    }
}

/// A single object with its version as a strong ETag.
pub struct Tagged<T> {
    pub status: StatusCode,
    pub version: i64,
    pub body: T,
}

impl<T: Serialize> IntoResponse for Tagged<T> {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body)).into_response();
        r.headers_mut().insert(
            header::ETAG,
            HeaderValue::from_str(&format!("\"{}\"", self.version)).expect("digits are valid"),
        );
        r
    }
}

pub fn ok<T>(version: i64, body: T) -> Tagged<T> {
    Tagged {
        status: StatusCode::OK,
        version,
        body,
    }
}

pub fn created<T>(version: i64, body: T) -> Tagged<T> {
    Tagged {
        status: StatusCode::CREATED,
        version,
        body,
    }
}
