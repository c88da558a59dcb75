//! The audit store as its users rely on it: filters and pagination equal a brute-force scan,
//! stats equal a recount, exports round-trip, retention, the live feed, typed open errors, and
//! durability across a SIGKILL.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use chrono::{Duration, TimeZone, Utc};
use mlx_manager_core::{AuditEntry, AuditFilter, AuditStatus, BackendType};
use mlx_manager_store::{ExportFormat, Store, StoreError, CSV_COLUMNS};

const MODELS: [&str; 4] = ["qwen2.5-0.5b", "llama-3.2-1b", "Qwen3-4B", "gpt-4o"];
const STATUSES: [AuditStatus; 4] =
    [AuditStatus::Success, AuditStatus::Error, AuditStatus::Timeout, AuditStatus::Cancelled];
const BACKENDS: [BackendType; 3] = [BackendType::Local, BackendType::Openai, BackendType::Anthropic];
const ENDPOINTS: [&str; 3] = ["/v1/chat/completions", "/v1/messages", "/v1/embeddings"];
const FINISH_REASONS: [&str; 3] = ["stop", "tool_calls", "length"];

fn entry(i: u64) -> AuditEntry {
    let base = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::days(3);
    let status = STATUSES[(i * 7 % 4) as usize];
    let failed = status != AuditStatus::Success;
    AuditEntry {
        // Some share a millisecond, so the keyset's tie-break on id matters.
        timestamp: base + Duration::seconds((i / 2) as i64 * 37),
        request_id: format!("req_{i:012x}"),
        model: MODELS[(i % 4) as usize].into(),
        backend_type: BACKENDS[(i * 5 % 3) as usize],
        endpoint: ENDPOINTS[(i * 3 % 3) as usize].into(),
        duration_ms: (i * 7919) % 5000,
        status,
        prompt_tokens: (i % 50) as u32,
        completion_tokens: (i % 30) as u32,
        total_tokens: (i % 50 + i % 30) as u32,
        error_type: failed.then(|| "upstream_error".into()),
        error_message: failed.then(|| format!("bad, \"quoted\"\nmulti-line message #{i}")),
        backend_name: None,
        fallback: false,
        finish_reason: (!failed).then(|| FINISH_REASONS[(i % 3) as usize].into()),
        tool_calls: if !failed && i % 3 == 1 { (i % 4 + 1) as u32 } else { 0 },
    }
}

fn matches(f: &AuditFilter, e: &AuditEntry) -> bool {
    f.model.as_ref().is_none_or(|m| &e.model == m)
        && f.model_contains.as_ref().is_none_or(|m| e.model.to_lowercase().contains(&m.to_lowercase()))
        && f.backend_type.is_none_or(|b| e.backend_type == b)
        && f.status.is_none_or(|s| e.status == s)
        && f.endpoint.as_ref().is_none_or(|p| &e.endpoint == p)
        && f.finish_reason.as_ref().is_none_or(|r| e.finish_reason.as_ref() == Some(r))
        && f.start_time.is_none_or(|t| e.timestamp >= t)
        && f.end_time.is_none_or(|t| e.timestamp < t)
}

/// Newest first, ties by insertion order reversed (as the store's keyset).
fn expected(all: &[AuditEntry], f: &AuditFilter) -> Vec<String> {
    let mut v: Vec<(usize, &AuditEntry)> = all.iter().enumerate().filter(|(_, e)| matches(f, e)).collect();
    v.sort_by(|a, b| b.1.timestamp.cmp(&a.1.timestamp).then(b.0.cmp(&a.0)));
    v.into_iter().map(|(_, e)| e.request_id.clone()).collect()
}

async fn all_pages(store: &Store, f: &AuditFilter, limit: usize) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = None;
    loop {
        let page = store.list(f.clone(), cursor, limit).await.unwrap();
        assert!(page.entries.len() <= limit);
        ids.extend(page.entries.into_iter().map(|e| e.request_id));
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return ids,
        }
    }
}

async fn seeded(n: u64) -> (tempfile::TempDir, Store, Vec<AuditEntry>) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("audit.db"), 365).unwrap();
    let all: Vec<AuditEntry> = (0..n).map(entry).collect();
    for e in &all {
        store.record(e.clone());
    }
    store.flush().await.unwrap();
    (dir, store, all)
}

fn filters() -> Vec<AuditFilter> {
    let t = |d: i64, h: u32| Some(Utc.with_ymd_and_hms(2026, 11, 4, h, 0, 0).unwrap() + Duration::days(d));
    let mut out = vec![AuditFilter::default()];
    for m in MODELS {
        out.push(AuditFilter { model: Some(m.into()), ..Default::default() });
    }
    out.push(AuditFilter { model_contains: Some("qwen".into()), ..Default::default() });
    for b in BACKENDS {
        out.push(AuditFilter { backend_type: Some(b), ..Default::default() });
    }
    for s in STATUSES {
        out.push(AuditFilter { status: Some(s), ..Default::default() });
    }
    for e in ENDPOINTS {
        out.push(AuditFilter { endpoint: Some(e.into()), ..Default::default() });
    }
    for r in FINISH_REASONS.into_iter().chain(["end_turn"]) {
        out.push(AuditFilter { finish_reason: Some(r.into()), ..Default::default() });
    }
    out.push(AuditFilter { start_time: t(0, 1), ..Default::default() });
    out.push(AuditFilter { end_time: t(0, 2), ..Default::default() });
    out.push(AuditFilter { start_time: t(0, 1), end_time: t(0, 3), ..Default::default() });
    out.push(AuditFilter {
        model_contains: Some("QWEN".into()),
        status: Some(AuditStatus::Error),
        backend_type: Some(BackendType::Local),
        start_time: t(0, 0),
        end_time: t(0, 5),
        ..Default::default()
    });
    out.push(AuditFilter { model: Some("gpt-4o".into()), endpoint: Some("/v1/messages".into()), ..Default::default() });
    out.push(AuditFilter {
        finish_reason: Some("tool_calls".into()),
        model_contains: Some("qwen".into()),
        start_time: t(0, 1),
        end_time: t(0, 4),
        ..Default::default()
    });
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn every_filter_and_combination_equals_a_brute_force_scan() {
    let (_dir, store, all) = seeded(600).await;
    for f in filters() {
        let want = expected(&all, &f);
        assert_eq!(all_pages(&store, &f, 37).await, want, "{f:?}");
        assert_eq!(all_pages(&store, &f, 1000).await, want, "{f:?}");
    }
}

/// Stats for `f` against a recount of `all`: counts, sums and per-bucket means exactly, latency
/// percentiles exactly below 128 ms and within 1/128 above (they come from histograms).
async fn assert_stats(store: &Store, all: &[AuditEntry], f: &AuditFilter) {
    let s = store.stats(f.clone()).await.unwrap();
    let rows: Vec<&AuditEntry> = all.iter().filter(|e| matches(f, e)).collect();
    assert_eq!(s.total, rows.len() as u64, "{f:?}");
    assert_eq!(s.total_requests, s.total, "the original product's name for the same count");
    let count = |key: &dyn Fn(&AuditEntry) -> String| {
        let mut m = BTreeMap::new();
        for e in &rows {
            *m.entry(key(e)).or_insert(0u64) += 1;
        }
        m
    };
    assert_eq!(s.by_status, count(&|e| e.status.as_str().into()), "{f:?}");
    assert_eq!(s.by_backend, count(&|e| e.backend_type.as_str().into()), "{f:?}");
    assert_eq!(s.by_model, count(&|e| e.model.clone()), "{f:?}");
    assert_eq!(s.unique_models, s.by_model.len() as u64);
    assert_eq!(s.prompt_tokens, rows.iter().map(|e| u64::from(e.prompt_tokens)).sum::<u64>(), "{f:?}");
    assert_eq!(s.completion_tokens, rows.iter().map(|e| u64::from(e.completion_tokens)).sum::<u64>(), "{f:?}");
    let mut d: Vec<u64> = rows.iter().map(|e| e.duration_ms).collect();
    d.sort();
    let rank = |p: f64| d.get(((d.len().max(1) - 1) as f64 * p).round() as usize).copied();
    for (got, want) in [(s.latency_p50_ms, rank(0.5)), (s.latency_p95_ms, rank(0.95))] {
        match (got, want) {
            (Some(got), Some(want)) if want < 128 => assert_eq!(got, want, "{f:?}"),
            (Some(got), Some(want)) => assert!(got.abs_diff(want) * 128 <= want, "{f:?}: {got} vs {want}"),
            (got, want) => assert_eq!(got, want, "{f:?}"),
        }
    }
    assert_eq!(s.series.iter().map(|b| b.requests).sum::<u64>(), s.total, "{f:?}");
    let errors = rows.iter().filter(|e| e.status != AuditStatus::Success).count() as u64;
    assert_eq!(s.series.iter().map(|b| b.errors).sum::<u64>(), errors, "{f:?}");
    assert!(s.series.len() <= 200);
    // The bucket size follows the span of the matching rows.
    let span = match (rows.iter().map(|e| e.timestamp).min(), rows.iter().map(|e| e.timestamp).max()) {
        (Some(lo), Some(hi)) => (hi - lo).num_seconds() as u64,
        _ => 0,
    };
    assert!(span / s.bucket_seconds < 200, "{f:?}");
    // Each bucket's start is aligned and its mean latency recounted from the rows inside it.
    for b in &s.series {
        let start = b.start.timestamp_millis();
        assert_eq!(start % (s.bucket_seconds * 1000) as i64, 0);
        let inside: Vec<u64> = rows
            .iter()
            .filter(|e| (start..start + (s.bucket_seconds * 1000) as i64).contains(&e.timestamp.timestamp_millis()))
            .map(|e| e.duration_ms)
            .collect();
        assert_eq!(b.requests, inside.len() as u64, "{f:?}");
        assert_eq!(b.avg_duration_ms, inside.iter().sum::<u64>() / inside.len() as u64, "{f:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_equal_a_recount() {
    let (_dir, store, all) = seeded(600).await;
    let mut filters = filters();
    // Edges that fall inside minutes and hours, so raw rows, minute and hour rollups all count.
    let at = |h: u32, m: u32, s: u32, ms: i64| {
        Some(Utc.with_ymd_and_hms(2026, 11, 4, h, m, s).unwrap() + Duration::milliseconds(ms))
    };
    filters.push(AuditFilter { start_time: at(0, 17, 23, 500), end_time: at(2, 41, 5, 250), ..Default::default() });
    filters.push(AuditFilter { start_time: at(1, 2, 3, 0), end_time: at(1, 4, 59, 999), ..Default::default() });
    filters.push(AuditFilter { start_time: at(1, 2, 3, 0), end_time: at(1, 2, 40, 0), ..Default::default() });
    filters.push(AuditFilter {
        status: Some(AuditStatus::Success),
        start_time: at(0, 59, 59, 1),
        end_time: at(2, 0, 0, 1),
        ..Default::default()
    });
    for f in filters {
        assert_stats(&store, &all, &f).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stats_over_weeks_use_hourly_buckets_and_follow_retention_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    // 900 entries ~45 minutes apart: 28 days, hourly rollups and day-sized buckets.
    let now = Utc::now();
    let all: Vec<AuditEntry> = (0..900u64)
        .map(|i| {
            let mut e = entry(i);
            e.timestamp = now - Duration::seconds(i as i64 * 2_687);
            e
        })
        .collect();
    {
        let store = Store::open(&path, 365).unwrap();
        for e in &all {
            store.record(e.clone());
        }
        store.flush().await.unwrap();
        let days = |d: i64| Some(now - Duration::days(d) + Duration::milliseconds(123));
        for f in [
            AuditFilter::default(),
            AuditFilter { status: Some(AuditStatus::Error), ..Default::default() },
            AuditFilter { start_time: days(20), end_time: days(3), ..Default::default() },
            AuditFilter { model_contains: Some("LLAMA".into()), start_time: days(9), ..Default::default() },
        ] {
            assert_stats(&store, &all, &f).await;
        }
        let s = store.stats(AuditFilter::default()).await.unwrap();
        assert!(s.bucket_seconds >= 3600, "{}", s.bucket_seconds);
    }
    // A database from before the rollups (schema 3) gets them built from its rows on opening.
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "DROP TABLE audit_rollup;
             ALTER TABLE audit_log DROP COLUMN finish_reason;
             ALTER TABLE audit_log DROP COLUMN tool_calls;
             PRAGMA user_version = 3;",
        )
        .unwrap();
    }
    let store = Store::open(&path, 365).unwrap();
    assert_stats(&store, &all, &AuditFilter::default()).await;
    assert_stats(&store, &all, &AuditFilter { model: Some("gpt-4o".into()), ..Default::default() }).await;
    drop(store);
    // Retention (10 days) removes whole UTC days: rows and their rollups both.
    let store = Store::open(&path, 10).unwrap();
    let cutoff = now - Duration::days(10);
    let day = cutoff.timestamp_millis().div_euclid(86_400_000) * 86_400_000;
    let kept: Vec<AuditEntry> = all.iter().filter(|e| e.timestamp.timestamp_millis() >= day).cloned().collect();
    for _ in 0..200 {
        if all_pages(&store, &AuditFilter::default(), 1000).await.len() == kept.len() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    store.flush().await.unwrap();
    assert_stats(&store, &kept, &AuditFilter::default()).await;
    assert_stats(&store, &kept, &AuditFilter { status: Some(AuditStatus::Timeout), ..Default::default() }).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_from_before_finish_reasons_upgrades_in_place_and_keeps_its_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let all: Vec<AuditEntry> = (0..300).map(entry).collect();
    {
        let store = Store::open(&path, 365).unwrap();
        for e in &all {
            store.record(e.clone());
        }
        store.flush().await.unwrap();
    }
    // Schema 5 exactly: the log without the two columns (as an older build left it).
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "ALTER TABLE audit_log DROP COLUMN finish_reason;
             ALTER TABLE audit_log DROP COLUMN tool_calls;
             PRAGMA user_version = 5;",
        )
        .unwrap();
    }
    let old: Vec<AuditEntry> =
        all.iter().map(|e| AuditEntry { finish_reason: None, tool_calls: 0, ..e.clone() }).collect();
    let store = Store::open(&path, 365).unwrap();
    let page = store.list(AuditFilter::default(), None, 1000).await.unwrap();
    assert_eq!(page.entries.len(), old.len(), "every row survives the upgrade");
    let by_id: BTreeMap<_, _> = old.iter().map(|e| (e.request_id.clone(), e)).collect();
    for e in &page.entries {
        assert_eq!(e, by_id[&e.request_id], "old rows read back unchanged, finish reason unknown");
    }
    assert_stats(&store, &old, &AuditFilter::default()).await;
    // New rows keep what they record, side by side with the old ones.
    let mut fresh = entry(10_000);
    fresh.status = AuditStatus::Success;
    fresh.finish_reason = Some("tool_use".into());
    fresh.tool_calls = 2;
    store.record(fresh.clone());
    store.flush().await.unwrap();
    let f = AuditFilter { finish_reason: Some("tool_use".into()), ..Default::default() };
    assert_eq!(store.list(f.clone(), None, 10).await.unwrap().entries, vec![fresh.clone()]);
    assert_eq!(store.stats(f).await.unwrap().total_requests, 1);
    drop(store);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
    assert_eq!(version, 6);
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_entries_reach_the_database_file_while_the_store_is_open() {
    // The writer only appends to the WAL; the checkpoint thread copies pages into the database
    // file soon after (well below the writer's own 256 MiB backstop).
    let (dir, store, _) = seeded(10_000).await;
    let db = dir.path().join("audit.db");
    let mut size = 0;
    for _ in 0..100 {
        size = std::fs::metadata(&db).unwrap().len();
        if size > 1 << 20 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(size > 1 << 20, "database file still {size} bytes");
    drop(store);
}

#[tokio::test(flavor = "multi_thread")]
async fn paging_while_entries_arrive_has_no_duplicates_or_gaps() {
    let (_dir, store, all) = seeded(200).await;
    let want = expected(&all, &AuditFilter::default());
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut next = 10_000;
    loop {
        let page = store.list(AuditFilter::default(), cursor, 9).await.unwrap();
        seen.extend(page.entries.into_iter().map(|e| e.request_id));
        // New requests land while the user scrolls.
        for _ in 0..5 {
            let mut e = entry(next);
            e.timestamp = Utc::now();
            store.record(e);
            next += 1;
        }
        store.flush().await.unwrap();
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn exports_round_trip_with_rfc4180_quoting() {
    let (dir, store, all) = seeded(120).await;
    let f = AuditFilter { status: Some(AuditStatus::Error), ..Default::default() };
    let want = expected(&all, &f);
    let csv_path = dir.path().join("out.csv");
    let n =
        store.export(f.clone(), ExportFormat::Csv, Box::new(std::fs::File::create(&csv_path).unwrap())).await.unwrap();
    assert_eq!(n as usize, want.len());
    let mut reader = csv::Reader::from_path(&csv_path).unwrap();
    assert_eq!(reader.headers().unwrap().iter().collect::<Vec<_>>(), CSV_COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.iter().map(|r| r[1].to_string()).collect::<Vec<_>>(), want);
    let by_id: BTreeMap<_, _> = all.iter().map(|e| (e.request_id.clone(), e)).collect();
    for r in &records {
        let e = by_id[&r[1]];
        assert_eq!(&r[11], e.error_message.as_deref().unwrap(), "quotes, commas and newlines survive");
        assert!(r[0].ends_with('Z') && chrono::DateTime::parse_from_rfc3339(&r[0]).unwrap() == e.timestamp);
        assert_eq!(r[5].parse::<u64>().unwrap(), e.duration_ms);
    }
    let raw = std::fs::read_to_string(&csv_path).unwrap();
    assert!(raw.contains("\"bad, \"\"quoted\"\"\nmulti-line"), "RFC 4180 quoting");

    // The finish reason and tool-call count are columns too (and a filter).
    let tools = AuditFilter { finish_reason: Some("tool_calls".into()), ..Default::default() };
    let tools_path = dir.path().join("tools.csv");
    let file = Box::new(std::fs::File::create(&tools_path).unwrap());
    let n = store.export(tools.clone(), ExportFormat::Csv, file).await.unwrap();
    assert!(n > 0 && n as usize == expected(&all, &tools).len());
    let mut reader = csv::Reader::from_path(&tools_path).unwrap();
    let column = |name: &str| CSV_COLUMNS.iter().position(|c| *c == name).unwrap();
    for r in reader.records().map(|r| r.unwrap()) {
        let e = by_id[&r[1]];
        assert_eq!(&r[column("finish_reason")], "tool_calls");
        assert_eq!(r[column("tool_calls")].parse::<u32>().unwrap(), e.tool_calls);
        assert!(e.tool_calls > 0);
    }

    let jsonl = dir.path().join("out.jsonl");
    store.export(f, ExportFormat::Jsonl, Box::new(std::fs::File::create(&jsonl).unwrap())).await.unwrap();
    let parsed: Vec<AuditEntry> =
        std::fs::read_to_string(&jsonl).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(parsed.iter().map(|e| e.request_id.clone()).collect::<Vec<_>>(), want);
    for e in &parsed {
        assert_eq!(e, by_id[&e.request_id]);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retention_deletes_old_entries_on_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    {
        let store = Store::open(&path, 365).unwrap();
        for (i, days) in [(0, 40), (1, 31), (2, 29), (3, 1)] {
            let mut e = entry(i);
            e.timestamp = Utc::now() - Duration::days(days);
            store.record(e);
        }
        store.flush().await.unwrap();
    }
    let store = Store::open(&path, 30).unwrap();
    // Retention runs right after start-up, between writes.
    let mut left = Vec::new();
    for _ in 0..100 {
        left = all_pages(&store, &AuditFilter::default(), 100).await;
        if left.len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(left, vec![entry(3).request_id, entry(2).request_id]);
    assert!(store.set_retention_days(0).is_err() && store.set_retention_days(366).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn live_feed_is_ordered_and_reports_lag() {
    let (_dir, store, _) = seeded(0).await;
    let mut rx = store.subscribe();
    for i in 0..50 {
        store.record(entry(i));
    }
    for i in 0..50 {
        assert_eq!(rx.recv().await.unwrap().request_id, entry(i).request_id);
    }
    let mut slow = store.subscribe();
    for i in 0..3000 {
        store.record(entry(i));
    }
    store.flush().await.unwrap();
    match slow.recv().await {
        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => assert!(n > 0),
        other => panic!("expected a lag notice, got {other:?}"),
    }
    assert_eq!(store.stats(AuditFilter::default()).await.unwrap().total, 3050, "the database has everything");
}

#[tokio::test(flavor = "multi_thread")]
async fn invalid_filters_are_typed() {
    let (_dir, store, _) = seeded(10).await;
    let now = Utc::now();
    let bad = AuditFilter { start_time: Some(now), end_time: Some(now - Duration::hours(1)), ..Default::default() };
    assert!(
        matches!(store.list(bad, None, 10).await, Err(StoreError::InvalidFilter { field, .. }) if field == "end_time")
    );
    for limit in [0, 5000] {
        assert!(
            matches!(store.list(AuditFilter::default(), None, limit).await, Err(StoreError::InvalidFilter { field, .. }) if field == "limit")
        );
    }
    assert!(
        matches!(store.list(AuditFilter::default(), Some("nonsense".into()), 10).await, Err(StoreError::InvalidFilter { field, .. }) if field == "cursor")
    );
}

#[test]
fn newer_or_corrupt_databases_are_typed_errors_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let newer = dir.path().join("newer.db");
    {
        let conn = rusqlite::Connection::open(&newer).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
    }
    let before = std::fs::read(&newer).unwrap();
    assert!(matches!(Store::open(&newer, 30), Err(StoreError::NewerSchema { found: 99, .. })));
    assert_eq!(std::fs::read(&newer).unwrap(), before);
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is definitely not an SQLite database, just text padding it out......").unwrap();
    let before = std::fs::read(&junk).unwrap();
    assert!(matches!(Store::open(&junk, 30), Err(StoreError::Corrupt { .. })));
    assert_eq!(std::fs::read(&junk).unwrap(), before);
}

/// Child half of the crash test: writes under load, printing how many entries each flush covered.
#[tokio::test(flavor = "multi_thread")]
async fn crash_writer_child() {
    let Ok(path) = std::env::var("AUDIT_CRASH_DB") else { return };
    let store = Store::open(Path::new(&path), 365).unwrap();
    let mut i = 0u64;
    loop {
        for _ in 0..500 {
            let mut e = entry(i);
            e.timestamp = Utc::now();
            store.record(e);
            i += 1;
        }
        store.flush().await.unwrap();
        println!("flushed {i}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn entries_flushed_before_a_sigkill_survive() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("crash.db");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads", "1"])
        .env("AUDIT_CRASH_DB", &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let flushed = Arc::new(Mutex::new(0u64));
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut count = 0;
    while let Some(Ok(line)) = lines.next() {
        if let Some(n) = line.strip_prefix("flushed ") {
            *flushed.lock().unwrap() = n.parse().unwrap();
            count += 1;
            if count == 20 {
                break;
            }
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let acknowledged = *flushed.lock().unwrap();
    assert!(acknowledged >= 10_000);
    let store = Store::open(&path, 365).unwrap();
    let stats = store.stats(AuditFilter::default()).await.unwrap();
    assert!(stats.total >= acknowledged, "{} rows, {acknowledged} acknowledged", stats.total);
    for i in [0, acknowledged / 2, acknowledged - 1] {
        let f = AuditFilter { model: Some(entry(i).model), ..Default::default() };
        let ids = all_pages(&store, &f, 1000).await;
        assert!(ids.contains(&entry(i).request_id), "entry {i} lost");
    }
}
