//! SQL for the audit log: inserts, filtered keyset pages, stats, retention.

use chrono::{DateTime, TimeZone, Utc};
use mlx_manager_core::{AuditBucket, AuditEntry, AuditFilter, AuditPage, AuditStats, AuditStatus, BackendType};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Row};

use crate::error::StoreError;

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

const COLUMNS: &str = "id, ts_ms, request_id, model, backend_type, endpoint, duration_ms, status, prompt_tokens, \
                       completion_tokens, total_tokens, error_type, error_message";

pub(crate) fn insert_batch(conn: &mut Connection, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO audit_log (ts_ms, request_id, model, backend_type, endpoint, duration_ms, status, \
             prompt_tokens, completion_tokens, total_tokens, error_type, error_message) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?;
        for e in entries {
            stmt.execute(rusqlite::params![
                e.timestamp.timestamp_millis(),
                e.request_id,
                e.model,
                e.backend_type.as_str(),
                e.endpoint,
                e.duration_ms as i64,
                e.status.as_str(),
                e.prompt_tokens,
                e.completion_tokens,
                e.total_tokens,
                e.error_type,
                e.error_message,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(crate) fn row_to_entry(row: &Row<'_>) -> rusqlite::Result<AuditEntry> {
    let ts: i64 = row.get(1)?;
    let backend: String = row.get(4)?;
    let status: String = row.get(7)?;
    Ok(AuditEntry {
        timestamp: Utc.timestamp_millis_opt(ts).single().unwrap_or_default(),
        request_id: row.get(2)?,
        model: row.get(3)?,
        backend_type: BackendType::parse(&backend).unwrap_or(BackendType::Local),
        endpoint: row.get(5)?,
        duration_ms: row.get::<_, i64>(6)? as u64,
        status: AuditStatus::parse(&status).unwrap_or(AuditStatus::Error),
        prompt_tokens: row.get(8)?,
        completion_tokens: row.get(9)?,
        total_tokens: row.get(10)?,
        error_type: row.get(11)?,
        error_message: row.get(12)?,
    })
}

/// A WHERE clause and its parameters.
pub(crate) struct Where {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
}

pub(crate) fn where_clause(filter: &AuditFilter, cursor: Option<(i64, i64)>) -> Where {
    let mut parts: Vec<&str> = Vec::new();
    let mut params: Vec<Value> = Vec::new();
    if let Some(m) = &filter.model {
        parts.push("model = ?");
        params.push(Value::Text(m.clone()));
    }
    if let Some(m) = &filter.model_contains {
        parts.push("instr(lower(model), lower(?)) > 0");
        params.push(Value::Text(m.clone()));
    }
    if let Some(b) = filter.backend_type {
        parts.push("backend_type = ?");
        params.push(Value::Text(b.as_str().into()));
    }
    if let Some(s) = filter.status {
        parts.push("status = ?");
        params.push(Value::Text(s.as_str().into()));
    }
    if let Some(e) = &filter.endpoint {
        parts.push("endpoint = ?");
        params.push(Value::Text(e.clone()));
    }
    if let Some(t) = filter.start_time {
        parts.push("ts_ms >= ?");
        params.push(Value::Integer(t.timestamp_millis()));
    }
    if let Some(t) = filter.end_time {
        parts.push("ts_ms < ?");
        params.push(Value::Integer(t.timestamp_millis()));
    }
    if let Some((ts, id)) = cursor {
        // A row-value comparison lets SQLite seek the (…, ts_ms, id) index directly.
        parts.push("(ts_ms, id) < (?, ?)");
        params.extend([Value::Integer(ts), Value::Integer(id)]);
    }
    let sql = if parts.is_empty() { String::new() } else { format!("WHERE {}", parts.join(" AND ")) };
    Where { sql, params }
}

/// Checks a filter's own consistency.
pub fn validate(filter: &AuditFilter) -> Result<(), StoreError> {
    if let (Some(a), Some(b)) = (filter.start_time, filter.end_time) {
        if b <= a {
            return Err(StoreError::InvalidFilter {
                field: "end_time".into(),
                message: "must be after start_time".into(),
            });
        }
    }
    Ok(())
}

fn parse_cursor(cursor: &str) -> Result<(i64, i64), StoreError> {
    let bad =
        || StoreError::InvalidFilter { field: "cursor".into(), message: "not a cursor returned by this API".into() };
    let (ts, id) = cursor.split_once('_').ok_or_else(bad)?;
    Ok((ts.parse().map_err(|_| bad())?, id.parse().map_err(|_| bad())?))
}

pub(crate) fn list(
    conn: &Connection,
    filter: &AuditFilter,
    cursor: Option<&str>,
    limit: usize,
) -> Result<AuditPage, StoreError> {
    validate(filter)?;
    if limit == 0 || limit > MAX_LIMIT {
        return Err(StoreError::InvalidFilter {
            field: "limit".into(),
            message: format!("must be between 1 and {MAX_LIMIT}"),
        });
    }
    let cursor = cursor.map(parse_cursor).transpose()?;
    let w = where_clause(filter, cursor);
    let sql = format!("SELECT {COLUMNS} FROM audit_log {} ORDER BY ts_ms DESC, id DESC LIMIT {}", w.sql, limit + 1);
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(w.params.iter()))?;
    let mut entries = Vec::with_capacity(limit);
    let mut last = None;
    let mut more = false;
    while let Some(row) = rows.next()? {
        if entries.len() == limit {
            more = true;
            break;
        }
        last = Some((row.get::<_, i64>(1)?, row.get::<_, i64>(0)?));
        entries.push(row_to_entry(row)?);
    }
    let next_cursor = if more { last.map(|(ts, id)| format!("{ts}_{id}")) } else { None };
    Ok(AuditPage { entries, next_cursor })
}

fn grouped(conn: &Connection, column: &str, w: &Where) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
    let sql = format!("SELECT {column}, COUNT(*) FROM audit_log {} GROUP BY {column}", w.sql);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt
        .query_map(params_from_iter(w.params.iter()), |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Nearest-rank percentile of `duration_ms` (`p` in 0..=1) over `n` matched rows.
fn percentile(conn: &Connection, w: &Where, n: u64, p: f64) -> Result<Option<u64>, StoreError> {
    if n == 0 {
        return Ok(None);
    }
    let offset = ((n - 1) as f64 * p).round() as i64;
    let sql = format!("SELECT duration_ms FROM audit_log {} ORDER BY duration_ms LIMIT 1 OFFSET {offset}", w.sql);
    Ok(Some(conn.query_row(&sql, params_from_iter(w.params.iter()), |r| r.get::<_, i64>(0))? as u64))
}

const BUCKETS: &[u64] = &[60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400];

pub(crate) fn stats(conn: &Connection, filter: &AuditFilter) -> Result<AuditStats, StoreError> {
    validate(filter)?;
    let w = where_clause(filter, None);
    let sql = format!(
        "SELECT COUNT(*), COUNT(DISTINCT model), COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), \
         MIN(ts_ms), MAX(ts_ms) FROM audit_log {}",
        w.sql
    );
    let (total, unique, prompt, completion, min_ts, max_ts) =
        conn.query_row(&sql, params_from_iter(w.params.iter()), |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
                r.get::<_, i64>(3)? as u64,
                r.get::<_, Option<i64>>(4)?,
                r.get::<_, Option<i64>>(5)?,
            ))
        })?;
    let span_s = match (min_ts, max_ts) {
        (Some(a), Some(b)) => ((b - a) / 1000) as u64,
        _ => 0,
    };
    let bucket = *BUCKETS.iter().find(|b| span_s / **b < 200).unwrap_or(BUCKETS.last().expect("non-empty"));
    let sql = format!(
        "SELECT (ts_ms / {ms}) * {ms}, COUNT(*), SUM(status != 'success') FROM audit_log {} GROUP BY 1 ORDER BY 1",
        w.sql,
        ms = bucket * 1000
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let series = stmt
        .query_map(params_from_iter(w.params.iter()), |r| {
            Ok(AuditBucket {
                start: Utc.timestamp_millis_opt(r.get(0)?).single().unwrap_or_default(),
                requests: r.get::<_, i64>(1)? as u64,
                errors: r.get::<_, i64>(2)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(AuditStats {
        total,
        by_status: grouped(conn, "status", &w)?,
        by_backend: grouped(conn, "backend_type", &w)?,
        by_model: grouped(conn, "model", &w)?,
        unique_models: unique,
        prompt_tokens: prompt,
        completion_tokens: completion,
        latency_p50_ms: percentile(conn, &w, total, 0.5)?,
        latency_p95_ms: percentile(conn, &w, total, 0.95)?,
        bucket_seconds: bucket,
        series,
    })
}

/// Deletes up to one batch of entries older than `cutoff` (small transactions, so writes
/// interleave); returns how many went.
pub(crate) fn delete_batch_before(conn: &Connection, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let n = conn.execute(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE ts_ms < ?1 LIMIT 5000)",
        [cutoff.timestamp_millis()],
    )?;
    Ok(n as u64)
}

/// Entries per retention batch.
pub(crate) const RETENTION_BATCH: u64 = 5000;
