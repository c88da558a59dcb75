//! The gate every request passes: request id, Host/Origin checks (DNS rebinding, CORS), API key,
//! draining, the request's record (in-flight count + audit), and finally the error envelope for
//! whatever the handler or the router answered.
//!
//! The audit log is the log of model requests (see [`keep`]): what was asked of which model,
//! by whom it was served and how it ended. Reads (model lists, health, metrics, the audit log
//! itself, settings) and CORS preflights would only bury those rows, so they are not recorded.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rand::Rng;
use tracing::Instrument;

use crate::error::{render, ApiError, Flavor};
use crate::record::{Keep, RequestRecord};
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

fn api_key_ok(headers: &HeaderMap, key: &crate::state::ApiKey) -> bool {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")));
    let given = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()));
    given.is_some_and(|g| key.matches(g))
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

/// What a request leaves behind. The audit log gets the model requests themselves (`POST` on
/// `/v1/chat/completions`, `/v1/completions`, `/v1/embeddings`, `/v1/messages`), whatever their
/// outcome (a 401, 422, 429 or 503 on one is a model request that was refused, and the user wants
/// to see it), and the admin calls that change what a model does (`POST
/// /admin/models/{id}/preload`, `DELETE /admin/models/{id}`: loading and unloading take memory
/// and can end running requests). Nothing else: reads (`GET /v1/models`, `/admin/models`,
/// loading progress, `/health`, `/metrics`, `/admin/audit-logs*`, settings), CORS preflights,
/// provider and routing-rule edits (they concern no model), unknown routes and wrong methods
/// (they reach no model). Those still count in the request metrics, except health checks,
/// metric scrapes and reads of the audit log (they would only flood them), and all of them are
/// in the trace log (at debug level).
fn keep(method: &Method, path: &str) -> Keep {
    let model_action = path.strip_prefix("/admin/models/").filter(|rest| !rest.is_empty());
    let audited = match *method {
        Method::POST => {
            matches!(path, "/v1/chat/completions" | "/v1/completions" | "/v1/embeddings" | "/v1/messages")
                || model_action.is_some_and(|rest| rest.ends_with("/preload"))
        }
        Method::DELETE => model_action.is_some(),
        _ => false,
    };
    if audited {
        Keep::Audit
    } else if path == "/health" || path == "/metrics" || path.starts_with("/admin/audit-logs") {
        Keep::Nothing
    } else {
        Keep::Metrics
    }
}

/// The middleware (see the module docs).
pub async fn gate(State(state): State<Arc<AppState>>, mut request: Request, next: Next) -> Response {
    let id = request_id(request.headers());
    let path = request.uri().path().to_string();
    let flavor = Flavor::of_path(&path);
    let keep = keep(request.method(), &path);
    // One span per request; model, backend and outcome are recorded into it as they become known.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %request.method(),
        endpoint = %path,
        model = tracing::field::Empty,
        backend = tracing::field::Empty,
        finish_reason = tracing::field::Empty,
        tool_calls = tracing::field::Empty,
        status = tracing::field::Empty,
        duration_ms = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    let record = RequestRecord::start(state.clone(), &id, &path, keep, span.clone());
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
            if needs_key && settings.api_key.as_ref().is_some_and(|k| !api_key_ok(request.headers(), k)) {
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
    } else if keep != Keep::Audit {
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

#[cfg(test)]
mod tests {
    use axum::http::Method;

    use super::keep;
    use crate::record::Keep;

    #[test]
    fn only_model_requests_and_model_state_changes_are_audited() {
        for (method, path, want) in [
            (Method::POST, "/v1/chat/completions", Keep::Audit),
            (Method::POST, "/v1/completions", Keep::Audit),
            (Method::POST, "/v1/embeddings", Keep::Audit),
            (Method::POST, "/v1/messages", Keep::Audit),
            (Method::POST, "/admin/models/mlx-community/Qwen3-4B-4bit/preload", Keep::Audit),
            (Method::DELETE, "/admin/models/mlx-community/Qwen3-4B-4bit", Keep::Audit),
            (Method::GET, "/admin/models", Keep::Metrics),
            (Method::GET, "/admin/models/tiny/loading-progress", Keep::Metrics),
            (Method::GET, "/v1/models", Keep::Metrics),
            (Method::GET, "/v1/chat/completions", Keep::Metrics),
            (Method::OPTIONS, "/v1/chat/completions", Keep::Metrics),
            (Method::POST, "/admin/models/tiny/unload", Keep::Metrics),
            (Method::DELETE, "/admin/models/", Keep::Metrics),
            (Method::PUT, "/admin/settings/timeouts", Keep::Metrics),
            (Method::POST, "/admin/providers", Keep::Metrics),
            (Method::GET, "/health", Keep::Nothing),
            (Method::GET, "/metrics", Keep::Nothing),
            (Method::GET, "/admin/audit-logs/export", Keep::Nothing),
        ] {
            assert_eq!(keep(&method, path), want, "{method} {path}");
        }
    }
}
