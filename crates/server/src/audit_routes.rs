//! `GET /admin/audit-logs`, `/admin/audit-logs/stats` and `/admin/audit-logs/export`.

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Query, State};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};
use mlx_manager_core::{AuditFilter, AuditStatus, BackendType};
use mlx_manager_store::{ExportFormat, Store, StoreError, DEFAULT_LIMIT, MAX_LIMIT};
use tokio::sync::mpsc;

use crate::error::{ApiError, FieldError};
use crate::middleware::RequestContext;
use crate::state::AppState;

const FILTERS: &[&str] =
    &["model", "model_contains", "backend_type", "status", "endpoint", "finish_reason", "start_time", "end_time"];

fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::InvalidFilter { field, message } => ApiError::Validation(vec![FieldError { field, message }]),
        other => {
            tracing::error!(error = %other, "audit store error");
            ApiError::Internal
        }
    }
}

fn store(state: &AppState) -> Result<Store, ApiError> {
    state.audit_log.get().cloned().ok_or(ApiError::NotFound)
}

/// Parses the filter parameters (and rejects anything not in `extra` or the filters).
fn filter(q: &HashMap<String, String>, extra: &[&str]) -> Result<AuditFilter, ApiError> {
    let mut errors = Vec::new();
    let mut err = |field: &str, message: String| errors.push(FieldError { field: field.into(), message });
    for key in q.keys() {
        if !FILTERS.contains(&key.as_str()) && !extra.contains(&key.as_str()) {
            err(key, "unknown parameter".into());
        }
    }
    let text = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let time = |k: &str, err: &mut dyn FnMut(&str, String)| -> Option<DateTime<Utc>> {
        let v = text(k)?;
        match DateTime::parse_from_rfc3339(&v) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                err(k, format!("not an RFC 3339 time ({e})"));
                None
            }
        }
    };
    let f = AuditFilter {
        model: text("model"),
        model_contains: text("model_contains"),
        backend_type: text("backend_type").and_then(|v| {
            BackendType::parse(&v).or_else(|| {
                err("backend_type", format!("unknown backend `{v}`"));
                None
            })
        }),
        status: text("status").and_then(|v| {
            AuditStatus::parse(&v).or_else(|| {
                err("status", format!("unknown status `{v}` (success, error, timeout, cancelled)"));
                None
            })
        }),
        endpoint: text("endpoint"),
        finish_reason: text("finish_reason"),
        start_time: time("start_time", &mut err),
        end_time: time("end_time", &mut err),
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    Store::validate(&f).map_err(store_error)?;
    Ok(f)
}

/// `GET /admin/audit-logs`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<mlx_manager_core::AuditPage>, ApiError> {
    let f = filter(&q, &["limit", "cursor"])?;
    let limit = match q.get("limit") {
        None => DEFAULT_LIMIT,
        Some(v) => v.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
            ApiError::Validation(vec![FieldError {
                field: "limit".into(),
                message: format!("must be 1 to {MAX_LIMIT}"),
            }])
        })?,
    };
    let page = store(&state)?.list(f, q.get("cursor").cloned(), limit).await.map_err(store_error)?;
    ctx.record.succeed();
    Ok(Json(page))
}

/// `GET /admin/audit-logs/stats`.
pub async fn stats(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<mlx_manager_core::AuditStats>, ApiError> {
    let f = filter(&q, &[])?;
    let stats = store(&state)?.stats(f).await.map_err(store_error)?;
    ctx.record.succeed();
    Ok(Json(stats))
}

/// Sends what the store thread writes to the response body in 64 KiB chunks.
struct ChannelWriter {
    tx: mpsc::Sender<Bytes>,
    buf: Vec<u8>,
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 64 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx
                .blocking_send(chunk)
                .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))?;
        }
        Ok(())
    }
}

impl Drop for ChannelWriter {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// `GET /admin/audit-logs/export?format=jsonl|csv`: streamed as an attachment.
pub async fn export(
    State(state): State<Arc<AppState>>,
    Extension(ctx): Extension<RequestContext>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let f = filter(&q, &["format"])?;
    let format = match q.get("format").map(String::as_str) {
        None | Some("jsonl") => ExportFormat::Jsonl,
        Some("csv") => ExportFormat::Csv,
        Some(other) => {
            return Err(ApiError::Validation(vec![FieldError {
                field: "format".into(),
                message: format!("`{other}` is not jsonl or csv"),
            }]))
        }
    };
    let store = store(&state)?;
    let (tx, mut rx) = mpsc::channel::<Bytes>(4);
    let record = ctx.record.clone();
    tokio::spawn(async move {
        let writer = Box::new(ChannelWriter { tx, buf: Vec::with_capacity(64 << 10) });
        match store.export(f, format, writer).await {
            Ok(_) => record.succeed(),
            Err(e) => {
                tracing::warn!(error = %e, "audit export ended early");
                record.fail(&ApiError::Internal);
            }
        }
    });
    let body = Body::from_stream(async_stream::stream! {
        while let Some(chunk) = rx.recv().await {
            yield Ok::<_, std::io::Error>(chunk);
        }
    });
    let (mime, ext) = match format {
        ExportFormat::Csv => ("text/csv; charset=utf-8", "csv"),
        ExportFormat::Jsonl => ("application/x-ndjson", "jsonl"),
    };
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    let name = format!("attachment; filename=\"mlx-manager-audit-{}.{ext}\"", Utc::now().format("%Y%m%dT%H%M%SZ"));
    h.insert(header::CONTENT_DISPOSITION, HeaderValue::from_str(&name).expect("ASCII"));
    Ok(response)
}
