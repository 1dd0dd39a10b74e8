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
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::bad_request(format!("the body cannot be read: {e}")))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request(format!(
                "the body is not valid JSON: {e} (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        if !value.is_object() {
            return Err(ApiError::bad_request("the body must be a JSON object"));
        }
        Ok(JsonBody(value))
    }
}

/// The version named by `If-Match`, if the client sent one (`*` matches any).
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
        let tag = s.strip_prefix("W/").unwrap_or(s);
        tag.strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .and_then(|t| t.parse::<i64>().ok())
            .map(|v| IfMatch(Some(v)))
            .ok_or_else(|| {
                ApiError::bad_request(format!("If-Match '{s}' is not an ETag this server issued"))
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
