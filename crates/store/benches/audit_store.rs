//! The audit store at 1,000,000 rows, with Python's sqlite3 doing the same work in the same run
//! as the yardstick: sustained insert rate, cost of `record()` on the request path, filtered
//! page latency at shallow and deep cursors, stats, CSV export rate.
//!
//! `cargo bench -p mlx-manager-store --bench audit_store` (scripts/bench-store). BENCH_ROWS
//! (default 1,000,000).

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{TimeZone, Utc};
use mlx_manager_core::{AuditEntry, AuditFilter, AuditStatus, BackendType};
use mlx_manager_store::{ExportFormat, Store};

const MODELS: [&str; 4] = ["qwen2.5-0.5b", "llama-3.2-1b", "Qwen3-4B", "gpt-4o"];
const STATUSES: [AuditStatus; 6] = [
    AuditStatus::Success,
    AuditStatus::Success,
    AuditStatus::Success,
    AuditStatus::Error,
    AuditStatus::Timeout,
    AuditStatus::Cancelled,
];
const BASE_MS: i64 = 1_790_000_000_000;

fn entry(i: u64) -> AuditEntry {
    spaced(i, 10)
}

/// Entry `i`, `gap_ms` after entry `i - 1`.
fn spaced(i: u64, gap_ms: i64) -> AuditEntry {
    let failed = i % 6 >= 3;
    AuditEntry {
        timestamp: Utc.timestamp_millis_opt(BASE_MS + i as i64 * gap_ms).unwrap(),
        request_id: format!("req_{i:012x}"),
        model: MODELS[(i % 4) as usize].into(),
        backend_type: BackendType::Local,
        endpoint: "/v1/chat/completions".into(),
        duration_ms: (i * 7919) % 5000,
        status: STATUSES[(i % 6) as usize],
        prompt_tokens: (i % 50) as u32,
        completion_tokens: (i % 30) as u32,
        total_tokens: (i % 50 + i % 30) as u32,
        error_type: failed.then(|| "upstream_error".into()),
        error_message: failed.then(|| format!("bad, \"quoted\" message {i}")),
        backend_name: None,
        fallback: false,
        finish_reason: (!failed).then(|| "stop".into()),
        tool_calls: 0,
    }
}

fn p50(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn python() -> PathBuf {
    std::env::var_os("MLX_MANAGER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mlx-manager/venv"))
        .join("bin/python3")
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let n: u64 = std::env::var("BENCH_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let store = Store::open(&dir.path().join("ours.db"), 365).unwrap();
    let entries: Vec<AuditEntry> = (0..n).map(entry).collect();

    // Insert: record() on the caller (the request path), the writer thread commits in batches.
    let start = Instant::now();
    let mut record_ns = Vec::with_capacity(n as usize);
    for e in entries {
        let t = Instant::now();
        store.record(e);
        record_ns.push(t.elapsed().as_nanos() as f64);
    }
    runtime.block_on(store.flush()).unwrap();
    let insert_rate = n as f64 / start.elapsed().as_secs_f64();
    let record_mean_us = record_ns.iter().sum::<f64>() / record_ns.len() as f64 / 1000.0;
    let record_p99_us = {
        record_ns.sort_by(|a, b| a.total_cmp(b));
        record_ns[record_ns.len() * 99 / 100] / 1000.0
    };

    let errors = AuditFilter { status: Some(AuditStatus::Error), ..Default::default() };
    let time_page = |cursor: Option<String>| {
        p50((0..50)
            .map(|_| {
                let t = Instant::now();
                let page = runtime.block_on(store.list(errors.clone(), cursor.clone(), 100)).unwrap();
                assert_eq!(page.entries.len(), 100);
                t.elapsed().as_secs_f64()
            })
            .collect())
    };
    let shallow = time_page(None);
    // A cursor ~90% of the way down.
    let deep_cursor = format!("{}_{}", BASE_MS + (n as i64 / 10) * 10, i64::MAX);
    let deep = time_page(Some(deep_cursor));
    let time_stats = |store: &Store, filter: &AuditFilter| {
        p50((0..5)
            .map(|_| {
                let t = Instant::now();
                runtime.block_on(store.stats(filter.clone())).unwrap();
                t.elapsed().as_secs_f64()
            })
            .collect())
    };
    let stats = time_stats(&store, &errors);
    let stats_all = time_stats(&store, &AuditFilter::default());
    let t = Instant::now();
    let rows =
        runtime.block_on(store.export(AuditFilter::default(), ExportFormat::Csv, Box::new(std::io::sink()))).unwrap();
    let csv_rate = rows as f64 / t.elapsed().as_secs_f64();
    drop(store);

    // The same number of rows spread over 30 days (a busy month): stats over all of it.
    let month = Store::open(&dir.path().join("month.db"), 365).unwrap();
    let gap = 30 * 86_400_000 / n as i64;
    (0..n).for_each(|i| month.record(spaced(i, gap)));
    runtime.block_on(month.flush()).unwrap();
    let stats_month = time_stats(&month, &AuditFilter::default());
    let stats_month_errors = time_stats(&month, &errors);
    drop(month);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/sqlite_yardstick.py");
    let out = std::process::Command::new(python())
        .arg(script)
        .arg(dir.path().join("python.db"))
        .arg(n.to_string())
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let py: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let f = |k: &str| py[k].as_f64().unwrap();

    println!("{n} rows; filter status=error (1 row in 6); pages of 100; medians");
    println!("| | mlx-manager store | Python sqlite3 | target |");
    println!("|---|---:|---:|---:|");
    println!("| sustained insert, rows/s | {:.0} | {:.0} | ≥ 200,000 |", insert_rate, f("insert_rows_per_s"));
    println!("| record() on the request path, µs (mean / p99) | {record_mean_us:.2} / {record_p99_us:.2} | — | ≤ 20 |");
    println!("| filtered page, shallow, ms | {:.3} | {:.3} | ≤ 1 |", shallow * 1e3, f("page_shallow_s") * 1e3);
    println!("| filtered page, deep cursor, ms | {:.3} | {:.3} | ≤ 1 |", deep * 1e3, f("page_deep_s") * 1e3);
    println!("| stats (filtered), ms | {:.1} | {:.1} | ≤ 10 |", stats * 1e3, f("stats_s") * 1e3);
    println!("| stats (no filter), ms | {:.1} | — | ≤ 10 |", stats_all * 1e3);
    println!(
        "| stats, the rows spread over 30 days (no filter / filtered), ms | {:.1} / {:.1} | — | ≤ 10 |",
        stats_month * 1e3,
        stats_month_errors * 1e3
    );
    println!("| CSV export, rows/s | {:.0} | {:.0} | ≥ 500,000 |", csv_rate, f("csv_rows_per_s"));
}
