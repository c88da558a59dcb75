//! The life of one request: counted as in flight, and recorded as exactly one audit entry when
//! its last part (the handler, or the stream it returned) is gone. A request nobody marked
//! finished was abandoned by its client: `cancelled`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use mlx_manager_core::{AuditEntry, AuditStatus, BackendType};

use crate::error::ApiError;
use crate::state::AppState;

struct Draft {
    entry: AuditEntry,
    outcome: Option<AuditStatus>,
}

/// What a finished request leaves behind besides its trace line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    /// An audit entry, and it counts in the request metrics (model requests, loads, unloads).
    Audit,
    /// It counts in the request metrics only (other API and admin calls).
    Metrics,
    /// Nothing (health checks, metric scrapes, reads of the audit log).
    Nothing,
}

struct Inner {
    state: Arc<AppState>,
    /// The request's tracing span (closed when the last part of the request is gone).
    span: tracing::Span,
    started: Instant,
    keep: Keep,
    draft: Mutex<Draft>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.state.in_flight.fetch_sub(1, Ordering::SeqCst);
        let draft = self.draft.get_mut().unwrap_or_else(|p| p.into_inner());
        let mut entry = draft.entry.clone();
        entry.status = draft.outcome.unwrap_or(AuditStatus::Cancelled);
        entry.duration_ms = self.started.elapsed().as_millis() as u64;
        self.span.record("status", entry.status.as_str());
        self.span.record("duration_ms", entry.duration_ms);
        if let Some(code) = &entry.error_type {
            self.span.record("error", code.as_str());
        }
        entry.total_tokens = entry.prompt_tokens + entry.completion_tokens;
        match self.keep {
            Keep::Audit => {
                tracing::info!(parent: &self.span, "request finished");
                self.state.metrics.observe(&entry);
                self.state.audit.record(entry);
            }
            Keep::Metrics => {
                tracing::debug!(parent: &self.span, "request finished");
                self.state.metrics.observe(&entry);
            }
            Keep::Nothing => tracing::debug!(parent: &self.span, "request finished"),
        }
    }
}

/// A cloneable handle on the request's record.
#[derive(Clone)]
pub struct RequestRecord(Arc<Inner>);

impl RequestRecord {
    pub(crate) fn start(
        state: Arc<AppState>,
        request_id: &str,
        endpoint: &str,
        keep: Keep,
        span: tracing::Span,
    ) -> RequestRecord {
        state.in_flight.fetch_add(1, Ordering::SeqCst);
        let entry = AuditEntry {
            timestamp: Utc::now(),
            request_id: request_id.to_string(),
            model: String::new(),
            backend_type: BackendType::Local,
            endpoint: endpoint.to_string(),
            duration_ms: 0,
            status: AuditStatus::Cancelled,
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
            error_type: None,
            error_message: None,
            backend_name: None,
            fallback: false,
            finish_reason: None,
            tool_calls: 0,
        };
        RequestRecord(Arc::new(Inner {
            state,
            span,
            started: Instant::now(),
            keep,
            draft: Mutex::new(Draft { entry, outcome: None }),
        }))
    }

    fn with<R>(&self, f: impl FnOnce(&mut Draft) -> R) -> R {
        f(&mut self.0.draft.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The model the request named (the first call wins: a routed request keeps the name the
    /// client asked for, not the backend's).
    pub fn set_model(&self, model: &str) {
        let first = self.with(|d| {
            let first = d.entry.model.is_empty();
            if first {
                d.entry.model = model.to_string();
            }
            first
        });
        if first {
            self.0.span.record("model", model);
        }
    }

    /// The backend serving the request (None: the local engine); `fallback` when the routing
    /// rule's first backend failed.
    pub fn set_backend(&self, backend_type: BackendType, name: Option<&str>, fallback: bool) {
        self.0.span.record("backend", name.unwrap_or(backend_type.as_str()));
        self.with(|d| {
            d.entry.backend_type = backend_type;
            d.entry.backend_name = name.map(str::to_string);
            d.entry.fallback = fallback;
        });
    }

    /// Token counts so far.
    pub fn set_tokens(&self, prompt: usize, completion: usize) {
        self.with(|d| {
            d.entry.prompt_tokens = prompt as u32;
            d.entry.completion_tokens = completion as u32;
        });
    }

    /// Why generation stopped, in the API's own spelling (`stop`, `length`, `tool_calls`;
    /// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`), and how many tool calls the answer
    /// made. The encoder that wrote the answer's end calls it; the last call wins.
    pub(crate) fn set_finish(&self, finish_reason: &str, tool_calls: u32) {
        self.0.span.record("finish_reason", finish_reason);
        self.0.span.record("tool_calls", tool_calls);
        self.with(|d| {
            d.entry.finish_reason = Some(finish_reason.to_string());
            d.entry.tool_calls = tool_calls;
        });
    }

    /// The request was answered in full.
    pub fn succeed(&self) {
        self.with(|d| {
            d.outcome.get_or_insert(AuditStatus::Success);
        });
    }

    /// The request failed with `error` (first outcome wins).
    pub fn fail(&self, error: &ApiError) {
        self.with(|d| {
            if d.outcome.is_none() {
                d.outcome = Some(if matches!(error, ApiError::Timeout { .. }) {
                    AuditStatus::Timeout
                } else {
                    AuditStatus::Error
                });
                d.entry.error_type = Some(error.code().to_string());
                d.entry.error_message = Some(error.to_string());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use mlx_manager_core::{AuditEntry, AuditSink, AuditStatus};

    use super::{Keep, RequestRecord};
    use crate::state::{AppState, ServerSettings};

    #[derive(Default)]
    struct Kept(Mutex<Vec<AuditEntry>>);

    impl AuditSink for Kept {
        fn record(&self, entry: AuditEntry) {
            self.0.lock().unwrap().push(entry);
        }
    }

    #[test]
    fn the_finish_reason_and_tool_calls_reach_the_audit_entry() {
        let engine = mlx_manager_engine::Engine::start().expect("engine");
        let kept = Arc::new(Kept::default());
        let state = AppState::new(engine.handle(), ServerSettings::default(), kept.clone(), 1);
        let finished = |calls: &[(&str, u32)]| {
            let record =
                RequestRecord::start(state.clone(), "req_1", "/v1/messages", Keep::Audit, tracing::Span::none());
            record.set_model("tiny");
            for (reason, tools) in calls {
                record.set_finish(reason, *tools);
            }
            record.succeed();
            drop(record);
            kept.0.lock().unwrap().pop().expect("one entry per request")
        };
        let e = finished(&[("tool_use", 2)]);
        assert_eq!((e.status, e.finish_reason.as_deref(), e.tool_calls), (AuditStatus::Success, Some("tool_use"), 2));
        // The last call wins.
        let e = finished(&[("max_tokens", 0), ("end_turn", 0)]);
        assert_eq!((e.finish_reason.as_deref(), e.tool_calls), (Some("end_turn"), 0));
        // No completion (an error, an embedding): nothing recorded.
        let e = finished(&[]);
        assert_eq!((e.finish_reason, e.tool_calls), (None, 0));
    }
}
