//! Prometheus metrics (`GET /metrics`, off unless enabled; behind the API key when one is set).
//! Every label set is bounded: endpoints are our route paths (anything else is `other`), statuses
//! and backends are enums, models are registered ids only.

use std::sync::atomic::Ordering;
use std::sync::Mutex;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use mlx_manager_core::AuditEntry;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::error::ApiError;
use crate::state::AppState;

/// Paths reported as themselves; anything else is `other`.
const ENDPOINTS: &[&str] = &[
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/messages",
    "/v1/models",
    "/admin/models",
    "/admin/providers",
    "/admin/routing-rules",
    "/admin/settings/timeouts",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: String,
    status: String,
    backend: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    model: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: String,
}

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Histogram>,
    active: Gauge,
    tokens: Family<DirectionLabels, Counter>,
    load_seconds: Histogram,
    model_memory: Family<ModelLabels, Gauge>,
    pool: Family<ResultLabels, Counter>,
    audit_queue: Gauge,
    audit_spilled: Gauge,
    audit_dropped: Gauge,
    /// Prompts prefilled / tokens decoded in a pass shared with other requests.
    batched: Family<KindLabels, Counter>,
    /// The engine's totals at the last scrape (the counters move by the difference).
    batched_seen: Mutex<(u64, u64)>,
    /// Serialises scrapes (gauges are refreshed then encoded).
    scrape: Mutex<()>,
}

fn endpoint_label(path: &str) -> String {
    ENDPOINTS
        .iter()
        .find(|e| path == **e || path.strip_prefix(**e).is_some_and(|rest| rest.starts_with('/')))
        .map_or("other", |e| e)
        .to_string()
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("mlx_manager");
        // 5 ms … ~82 s: 15 buckets doubling from 5 ms.
        let requests = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 15))
        });
        registry.register("request_duration_seconds", "Request latency, arrival to last byte", requests.clone());
        let active = Gauge::default();
        registry.register("active_requests", "Requests (and streams) in flight", active.clone());
        let tokens = Family::<DirectionLabels, Counter>::default();
        registry.register("tokens", "Tokens processed: in = prompt, out = generated", tokens.clone());
        let load_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 12));
        registry.register("model_load_duration_seconds", "Time to load a model into memory", load_seconds.clone());
        let model_memory = Family::<ModelLabels, Gauge>::default();
        registry.register(
            "model_memory_bytes",
            "Memory of each loaded model (weights + KV cache)",
            model_memory.clone(),
        );
        let pool = Family::<ResultLabels, Counter>::default();
        registry.register("pool_requests", "Model requests by whether the model was already loaded", pool.clone());
        let audit_queue = Gauge::default();
        registry.register("audit_queue_depth", "Audit entries waiting to be written", audit_queue.clone());
        let audit_spilled = Gauge::default();
        registry.register(
            "audit_spilled",
            "Audit entries that found the queue full (kept, not lost)",
            audit_spilled.clone(),
        );
        let audit_dropped = Gauge::default();
        registry.register("audit_dropped", "Audit entries the database refused", audit_dropped.clone());
        let batched = Family::<KindLabels, Counter>::default();
        registry.register(
            "engine_batched",
            "Prompts prefilled (kind=prompts) and tokens decoded (kind=tokens) in one pass with other requests'",
            batched.clone(),
        );
        Metrics {
            registry,
            requests,
            active,
            tokens,
            load_seconds,
            model_memory,
            pool,
            audit_queue,
            audit_spilled,
            audit_dropped,
            batched,
            batched_seen: Mutex::new((0, 0)),
            scrape: Mutex::new(()),
        }
    }
}

impl Metrics {
    /// Counts one finished request.
    pub(crate) fn observe(&self, entry: &AuditEntry) {
        let labels = RequestLabels {
            endpoint: endpoint_label(&entry.endpoint),
            status: entry.status.as_str().to_string(),
            backend: entry.backend_type.as_str().to_string(),
        };
        self.requests.get_or_create(&labels).observe(entry.duration_ms as f64 / 1e3);
        if entry.prompt_tokens > 0 {
            self.tokens
                .get_or_create(&DirectionLabels { direction: "in".into() })
                .inc_by(u64::from(entry.prompt_tokens));
        }
        if entry.completion_tokens > 0 {
            self.tokens
                .get_or_create(&DirectionLabels { direction: "out".into() })
                .inc_by(u64::from(entry.completion_tokens));
        }
    }

    /// A model request found its model loaded (hit) or had to wait for a load (miss).
    pub(crate) fn pool_lookup(&self, hit: bool) {
        self.pool.get_or_create(&ResultLabels { result: if hit { "hit" } else { "miss" }.into() }).inc();
    }

    /// A model finished loading.
    pub(crate) fn model_loaded(&self, seconds: f64) {
        self.load_seconds.observe(seconds);
    }
}

/// `GET /metrics` (404 unless enabled).
pub async fn scrape(State(state): State<std::sync::Arc<AppState>>) -> Result<Response, ApiError> {
    if !state.settings().metrics {
        return Err(ApiError::NotFound);
    }
    let m = &state.metrics;
    let status = state.engine.status().await.ok();
    let _one = m.scrape.lock().unwrap_or_else(|p| p.into_inner());
    // Not counting this scrape itself.
    m.active.set(state.in_flight.load(Ordering::SeqCst).saturating_sub(1) as i64);
    m.model_memory.clear();
    for model in status.iter().flat_map(|s| &s.loaded) {
        if state.registry.get(&model.id).is_some() {
            m.model_memory
                .get_or_create(&ModelLabels { model: model.id.clone() })
                .set((model.weight_bytes + model.kv_cache_bytes) as i64);
        }
    }
    if let Some(s) = &status {
        let mut seen = m.batched_seen.lock().unwrap_or_else(|p| p.into_inner());
        let label = |kind: &str| KindLabels { kind: kind.to_string() };
        m.batched.get_or_create(&label("prompts")).inc_by(s.batched_prompts.saturating_sub(seen.0));
        m.batched.get_or_create(&label("tokens")).inc_by(s.batched_tokens.saturating_sub(seen.1));
        *seen = (s.batched_prompts.max(seen.0), s.batched_tokens.max(seen.1));
    }
    if let Some(store) = state.audit_log.get() {
        m.audit_queue.set(store.queue_depth() as i64);
        m.audit_spilled.set(store.spilled() as i64);
        m.audit_dropped.set(store.dropped() as i64);
    }
    let mut body = String::new();
    prometheus_client::encoding::text::encode(&mut body, &m.registry).map_err(|_| ApiError::Internal)?;
    Ok(([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], body).into_response())
}
