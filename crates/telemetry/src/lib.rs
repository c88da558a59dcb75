//! Where MLX Manager's logs and traces go: human-readable lines on the terminal (level from
//! `MLX_MANAGER_LOG`), JSON lines in a daily-rotated file in the data dir (`MLX_MANAGER_FILE_LOG`,
//! `info` by default; seven files kept), and — only when an endpoint is configured — request spans
//! to an OpenTelemetry collector over OTLP/HTTP. With no endpoint nothing is sent anywhere.
//!
//! Why a crate of its own: the headless `serve` and the desktop app set up the same subscriber, and
//! neither the server nor the engine should depend on exporters; they only create spans.
#![deny(missing_docs)]

use std::path::Path;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_appender::non_blocking::WorkerGuard;
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Keeps the file writer and the span exporter alive; dropping it flushes both.
pub struct Logging {
    _file: WorkerGuard,
    tracer: Option<SdkTracerProvider>,
}

impl Drop for Logging {
    fn drop(&mut self) {
        if let Some(provider) = self.tracer.take() {
            if let Err(e) = provider.shutdown() {
                eprintln!("warning: OTLP export did not flush: {e}");
            }
        }
    }
}

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log directory could not be created or written.
    #[error("log directory {path}: {message}")]
    File {
        /// The directory.
        path: String,
        /// Why.
        message: String,
    },
    /// The OTLP exporter could not be built.
    #[error("OTLP exporter for {endpoint}: {message}")]
    Otlp {
        /// The traces URL.
        endpoint: String,
        /// Why.
        message: String,
    },
}

fn filter(var: &str, default: &str) -> EnvFilter {
    EnvFilter::try_from_env(var).unwrap_or_else(|_| EnvFilter::new(default))
}

/// Terminal only (the commands other than `serve`).
pub fn terminal() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter("MLX_MANAGER_LOG", "warn"))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Log lines queued for the file writer thread.
const LOG_QUEUE: usize = 8192;

/// Terminal (at `MLX_MANAGER_LOG`, else `terminal_default`), the JSON file in `data_dir/logs`, and
/// OTLP to `otlp_endpoint` (the collector's base URL, e.g. `http://127.0.0.1:4318`) when given.
pub fn init(data_dir: &Path, terminal_default: &str, otlp_endpoint: Option<&str>) -> Result<Logging, TelemetryError> {
    let dir = data_dir.join("logs");
    std::fs::create_dir_all(&dir)
        .map_err(|e| TelemetryError::File { path: dir.display().to_string(), message: e.to_string() })?;
    let appender = RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("mlx-manager")
        .filename_suffix("log")
        .max_log_files(7)
        .build(&dir)
        .map_err(|e| TelemetryError::File { path: dir.display().to_string(), message: e.to_string() })?;
    // The writer thread's queue is allocated (and touched) up front: the default 128,000 lines
    // cost 4 MB of resident memory for good; 8,192 lines is 256 KB and ample for one line per
    // request (a burst beyond it drops lines, never blocks a request).
    let (writer, guard) =
        tracing_appender::non_blocking::NonBlockingBuilder::default().buffered_lines_limit(LOG_QUEUE).finish(appender);
    let terminal = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter("MLX_MANAGER_LOG", terminal_default));
    let file = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(writer)
        .with_filter(filter("MLX_MANAGER_FILE_LOG", "info"));
    let (otel, tracer) = match otlp_endpoint.filter(|e| !e.is_empty()) {
        None => (None, None),
        Some(endpoint) => {
            let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpJson)
                .with_endpoint(&url)
                .build()
                .map_err(|e| TelemetryError::Otlp { endpoint: url.clone(), message: e.to_string() })?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(Resource::builder().with_service_name("mlx-manager").build())
                .build();
            let layer = tracing_opentelemetry::layer()
                .with_tracer(provider.tracer("mlx-manager"))
                .with_filter(EnvFilter::new("mlx_manager_server=info,mlx_manager_engine=info"));
            tracing::info!(endpoint = %url, "exporting request spans over OTLP");
            (Some(layer), Some(provider))
        }
    };
    let _ = tracing_subscriber::registry().with(terminal).with(file).with(otel).try_init();
    Ok(Logging { _file: guard, tracer })
}
