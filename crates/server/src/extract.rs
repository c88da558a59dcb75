//! Request bodies: our own JSON extractor (so malformed bodies get the same envelope as
//! everything else), and typed parsing that names the offending field and rejects parameters we
//! do not implement instead of ignoring them.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use serde::de::DeserializeOwned;

use crate::error::{ApiError, FieldError};

/// A JSON object body, not yet typed.
pub struct JsonBody(pub serde_json::Map<String, serde_json::Value>);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim().to_ascii_lowercase();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = req.extensions().get::<BodyLimit>().map_or(usize::MAX, |l| l.0);
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit }
            } else {
                ApiError::BadJson(rejection.body_text())
            }
        })?;
        let text = std::str::from_utf8(&bytes).map_err(|e| ApiError::BadJson(format!("body is not UTF-8: {e}")))?;
        match serde_json::from_str::<serde_json::Value>(text) {
            Ok(serde_json::Value::Object(map)) => Ok(JsonBody(map)),
            Ok(_) => Err(ApiError::BadJson("the body must be a JSON object".into())),
            Err(e) => Err(ApiError::BadJson(e.to_string())),
        }
    }
}

/// The configured body limit, put in the request extensions by the router for the extractor's
/// error message.
#[derive(Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Types `body` as `T`, first rejecting any field not in `supported` (with `unsupported`
/// naming the ones we know but do not implement yet, for a better message).
pub fn parse<T: DeserializeOwned>(
    body: serde_json::Map<String, serde_json::Value>,
    supported: &[&str],
    unsupported: &[(&str, &str)],
) -> Result<T, ApiError> {
    let errors = refused(body.keys().filter(|k| !supported.contains(&k.as_str())), unsupported);
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    typed(body)
}

/// One error per field in `keys`: "not supported: …" for those `unsupported` explains (known
/// parameters not implemented), "unknown parameter" for the rest.
pub fn refused<'a>(keys: impl Iterator<Item = &'a String>, unsupported: &[(&str, &str)]) -> Vec<FieldError> {
    keys.map(|key| {
        let message = match unsupported.iter().find(|(k, _)| k == key) {
            Some((_, why)) => format!("not supported: {why}"),
            None => "unknown parameter".to_string(),
        };
        FieldError { field: key.clone(), message }
    })
    .collect()
}

/// Types `body` as `T`, naming the field that does not fit (the path as the client wrote it).
pub fn typed<T: DeserializeOwned>(body: serde_json::Map<String, serde_json::Value>) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(serde_json::Value::Object(body)).map_err(|e| {
        let message = e.inner().to_string();
        let field = match message.strip_prefix("missing field `").and_then(|m| m.split('`').next()) {
            Some(missing) => missing.to_string(),
            None => e.path().to_string(),
        };
        ApiError::Validation(vec![FieldError { field: if field == "." { String::new() } else { field }, message }])
    })
}

/// A validation error on one field.
pub fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::Validation(vec![FieldError { field: field.to_string(), message: message.into() }])
}
