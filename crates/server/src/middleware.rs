//! The gate every request passes: request id, Host/Origin checks (DNS rebinding, CORS), API key,
//! draining, the request's record (in-flight count + audit), and finally the error envelope for
//! whatever the handler or the router answered.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use subtle::ConstantTimeEq;
use tracing::Instrument;

use crate::error::{render, ApiError, Flavor};
use crate::record::RequestRecord;
use crate::state::{AppState, ServerSettings};

/// Per-request facts handlers can read from the request extensions.
#[derive(Clone)]
pub struct RequestContext {
    /// `req_…` (or the client's own `X-Request-ID`).
    pub request_id: String,
    /// The request's audit/in-flight record.
    pub record: RequestRecord,
}

const REQUEST_ID: &str = "x-request-id";

fn request_id(headers: &HeaderMap) -> String {
    let given = headers.get(REQUEST_ID).and_then(|v| v.to_str().ok());
    match given {
        Some(id) if !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic()) => id.to_string(),
        _ => format!("req_{:012x}", rand::rng().random::<u64>() & 0xffff_ffff_ffff),
    }
}

/// Is `host` (a Host header value, maybe with a port) this machine's loopback or the bound address?
fn host_allowed(host: &str, state: &AppState) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        host.rsplit_once(':').map_or(host, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { host })
    };
    let name = name.to_ascii_lowercase();
    if matches!(name.as_str(), "localhost" | "127.0.0.1" | "::1") || name.ends_with(".localhost") {
        return true;
    }
    let bound = *state.bound.read().expect("bound lock");
    bound.is_some_and(|addr| !addr.ip().is_unspecified() && addr.ip().to_string() == name)
}

fn api_key_ok(headers: &HeaderMap, key: &str) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let given = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(key.as_bytes())))
}

fn cors_headers(response: &mut Response, origin: &HeaderValue) {
    let h = response.headers_mut();
    h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    h.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("x-request-id, retry-after, x-mlx-backend, x-mlx-fallback"),
    );
}

fn origin_allowed(origin: &HeaderValue, settings: &ServerSettings) -> bool {
    origin.to_str().is_ok_and(|o| settings.allowed_origins.iter().any(|a| a == o || a == "*"))
}

/// Host (DNS rebinding) and Origin (browsers) checks.
fn check_request(headers: &HeaderMap, state: &AppState, settings: &ServerSettings) -> Result<(), ApiError> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !host_allowed(host, state) {
        return Err(ApiError::Forbidden(format!("Host `{host}` is not allowed")));
    }
    match headers.get(header::ORIGIN) {
        Some(origin) if !origin_allowed(origin, settings) => {
            Err(ApiError::Forbidden("this Origin is not allowed to call the API".into()))
        }
        _ => Ok(()),
    }
}

/// The middleware (see the module docs).
pub async fn gate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let path = request.uri().path().to_string();
    let flavor = Flavor::of_path(&path);
    // Health checks, metric scrapes and reads of the audit log itself would only flood it.
    let audited = path != "/health" && path != "/metrics" && !path.starts_with("/admin/audit-logs");
    // One span per request; model, backend and outcome are recorded into it as they become known.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        endpoint = %path,
        model = tracing::field::Empty,
        backend = tracing::field::Empty,
        status = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    let record = RequestRecord::start(state.clone(), &id, &path, audited, span.clone());
    let settings = state.settings();
    let origin = request.headers().get(header::ORIGIN).cloned();

    let checked = check_request(request.headers(), &state, &settings);
    let mut response = match checked {
        Err(e) => e.into_response(),
        // A CORS preflight from an allowed origin.
        Ok(()) if request.method() == Method::OPTIONS && origin.is_some() => {
            let mut r = StatusCode::NO_CONTENT.into_response();
            let h = r.headers_mut();
            h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, POST, PUT, DELETE, OPTIONS"));
            h.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static("authorization, content-type, x-api-key, x-request-id, anthropic-version"),
            );
            h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
            record.succeed();
            r
        }
        Ok(()) => {
            let needs_key = path != "/health";
            if needs_key && settings.api_key.as_deref().is_some_and(|k| !api_key_ok(request.headers(), k)) {
                ApiError::Unauthorized.into_response()
            } else if state.draining.load(Ordering::SeqCst) {
                ApiError::Draining.into_response()
            } else {
                request.extensions_mut().insert(RequestContext { request_id: id.clone(), record: record.clone() });
                next.run(request).instrument(span).await
            }
        }
    };
    if let Some(error) = response.extensions_mut().remove::<ApiError>() {
        record.fail(&error);
        let routed: Vec<_> = [crate::routing::BACKEND_HEADER, crate::routing::FALLBACK_HEADER]
            .into_iter()
            .filter_map(|h| response.headers().get(h).map(|v| (h, v.clone())))
            .collect();
        response = render(&error, flavor, &path, &id);
        for (h, v) in routed {
            response.headers_mut().insert(h, v);
        }
    } else if !response.status().is_success() {
        // Errors produced outside our handlers (axum's own) still get the envelope.
        let error = match response.status() {
            StatusCode::NOT_FOUND => ApiError::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge { limit: settings.max_body_bytes },
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ApiError::UnsupportedMediaType,
            _ => ApiError::Internal,
        };
        record.fail(&error);
        response = render(&error, flavor, &path, &id);
    } else if !audited {
        record.succeed();
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    if let Some(origin) =
        origin.filter(|o| o.to_str().is_ok_and(|o| settings.allowed_origins.iter().any(|a| a == o || a == "*")))
    {
        cors_headers(&mut response, &origin);
    }
    response
}
