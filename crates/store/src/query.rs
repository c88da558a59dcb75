//! SQL for the audit log: inserts, filtered keyset pages, stats, retention.

use chrono::{DateTime, TimeZone, Utc};
use mlx_manager_core::{AuditEntry, AuditFilter, AuditPage, AuditStatus, BackendType};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection, Row};

use crate::error::StoreError;

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: usize = 100;
/// Largest page size.
pub const MAX_LIMIT: usize = 1000;

pub(crate) const COLUMNS: &str =
    "id, ts_ms, request_id, model, backend_type, endpoint, duration_ms, status, prompt_tokens, \
                       completion_tokens, total_tokens, error_type, error_message, backend_name, fallback, finish_reason, tool_calls";

pub(crate) fn insert_batch(conn: &mut Connection, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        let mut stmt = tx.prepare_cached(
            "INSERT INTO audit_log (ts_ms, request_id, model, backend_type, endpoint, duration_ms, status, \
             prompt_tokens, completion_tokens, total_tokens, error_type, error_message, backend_name, fallback, \
             finish_reason, tool_calls) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
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
                e.backend_name,
                e.fallback,
                e.finish_reason,
                e.tool_calls,
            ])?;
        }
    }
    crate::rollup::apply(&tx, entries)?;
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
        backend_name: row.get(13)?,
        fallback: row.get(14)?,
        finish_reason: row.get(15)?,
        tool_calls: row.get(16)?,
    })
}

/// A WHERE clause and its parameters.
pub(crate) struct Where {
    pub(crate) sql: String,
    pub(crate) params: Vec<Value>,
}

/// The conditions on the filter's columns other than time (shared with the rollups, which have
/// the same column names, except `finish_reason`: stats read raw rows when it is set).
pub(crate) fn filter_conditions(filter: &AuditFilter) -> (Vec<&'static str>, Vec<Value>) {
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
    if let Some(r) = &filter.finish_reason {
        parts.push("finish_reason = ?");
        params.push(Value::Text(r.clone()));
    }
    (parts, params)
}

pub(crate) fn where_clause(filter: &AuditFilter, cursor: Option<(i64, i64)>) -> Where {
    let (mut parts, mut params) = filter_conditions(filter);
    if let Some(t) = filter.start_time {
        parts.push("ts_ms >= ?");
        params.push(Value::Integer(t.timestamp_millis()));
    }
    if let Some(t) = filter.end_time {
        parts.push("ts_ms < ?");
        params.push(Value::Integer(t.timestamp_millis()));
    }
    if let Some((ts, id)) = cursor {
        // A row-value comparison lets SQLite seek the (…, ts_ms) index (whose entries end with the
        // rowid, `id`) directly.
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

/// Deletes up to one batch of entries older than the (UTC) day that holds `cutoff` (small
/// transactions, so writes interleave); returns how many went. Retention works in whole days so
/// the rollups stay exact: once a day's rows are gone, its rollups go too.
pub(crate) fn delete_batch_before(conn: &Connection, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
    let day = crate::rollup::DAY;
    let cutoff = cutoff.timestamp_millis().div_euclid(day) * day;
    let n = conn.execute(
        "DELETE FROM audit_log WHERE id IN (SELECT id FROM audit_log WHERE ts_ms < ?1 LIMIT ?2)",
        rusqlite::params![cutoff, RETENTION_BATCH as i64],
    )? as u64;
    if n < RETENTION_BATCH {
        crate::rollup::delete_before(conn, cutoff)?;
    }
    Ok(n)
}

/// Entries per retention batch.
pub(crate) const RETENTION_BATCH: u64 = 5000;
