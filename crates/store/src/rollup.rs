//! Per-minute, per-hour and per-day rollups of the audit log: request and token counts, latency sum and
//! histogram, first and last timestamp for each (bucket, model, backend, status, endpoint).
//! The writer updates them in the same transaction as the rows they count, so they never
//! disagree with the log; stats over a million rows then read a few thousand rollup rows.

use std::collections::HashMap;

use mlx_manager_core::AuditEntry;
use rusqlite::{params, Connection, OptionalExtension};

use crate::error::StoreError;
use crate::histogram::add_to_blob;

/// Rollup spans, in milliseconds.
pub(crate) const MINUTE: i64 = 60_000;
/// One hour in milliseconds.
pub(crate) const HOUR: i64 = 3_600_000;
/// One (UTC) day in milliseconds.
pub(crate) const DAY: i64 = 86_400_000;
/// Every rollup span, finest first.
pub(crate) const SPANS: [i64; 3] = [MINUTE, HOUR, DAY];

#[derive(Hash, PartialEq, Eq)]
struct Key<'a> {
    span: i64,
    bucket: i64,
    model: &'a str,
    backend: &'static str,
    status: &'static str,
    endpoint: &'a str,
}

struct Acc {
    requests: i64,
    prompt: i64,
    completion: i64,
    duration_sum: i64,
    min_ts: i64,
    max_ts: i64,
    durations: Vec<u64>,
}

/// Adds `entries` to the rollups (call inside the transaction that inserts them).
pub(crate) fn apply(conn: &Connection, entries: &[AuditEntry]) -> Result<(), StoreError> {
    let mut acc: HashMap<Key<'_>, Acc> = HashMap::new();
    for e in entries {
        let ts = e.timestamp.timestamp_millis();
        for span in SPANS {
            let key = Key {
                span,
                bucket: ts.div_euclid(span) * span,
                model: &e.model,
                backend: e.backend_type.as_str(),
                status: e.status.as_str(),
                endpoint: &e.endpoint,
            };
            let a = acc.entry(key).or_insert_with(|| Acc {
                requests: 0,
                prompt: 0,
                completion: 0,
                duration_sum: 0,
                min_ts: i64::MAX,
                max_ts: i64::MIN,
                durations: Vec::new(),
            });
            a.requests += 1;
            a.prompt += i64::from(e.prompt_tokens);
            a.completion += i64::from(e.completion_tokens);
            a.duration_sum = a.duration_sum.saturating_add(e.duration_ms as i64);
            a.min_ts = a.min_ts.min(ts);
            a.max_ts = a.max_ts.max(ts);
            a.durations.push(e.duration_ms);
        }
    }
    let mut select = conn.prepare_cached(
        "SELECT requests, prompt_tokens, completion_tokens, duration_sum, min_ts, max_ts, histogram FROM audit_rollup \
         WHERE span_ms = ?1 AND bucket_ms = ?2 AND model = ?3 AND backend_type = ?4 AND status = ?5 AND endpoint = ?6",
    )?;
    let mut write = conn.prepare_cached(
        "INSERT OR REPLACE INTO audit_rollup (span_ms, bucket_ms, model, backend_type, status, endpoint, requests, \
         prompt_tokens, completion_tokens, duration_sum, min_ts, max_ts, histogram) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?;
    for (k, mut a) in acc {
        let mut hist = Vec::new();
        let old = select
            .query_row(params![k.span, k.bucket, k.model, k.backend, k.status, k.endpoint], |r| {
                hist = add_to_blob(r.get_ref(6)?.as_blob()?, &a.durations);
                Ok([r.get::<_, i64>(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?])
            })
            .optional()?;
        if let Some([requests, prompt, completion, duration_sum, min_ts, max_ts]) = old {
            a.requests += requests;
            a.prompt += prompt;
            a.completion += completion;
            a.duration_sum = a.duration_sum.saturating_add(duration_sum);
            a.min_ts = a.min_ts.min(min_ts);
            a.max_ts = a.max_ts.max(max_ts);
        }
        if old.is_none() {
            hist = add_to_blob(&[], &a.durations);
        }
        write.execute(params![
            k.span,
            k.bucket,
            k.model,
            k.backend,
            k.status,
            k.endpoint,
            a.requests,
            a.prompt,
            a.completion,
            a.duration_sum,
            a.min_ts,
            a.max_ts,
            hist,
        ])?;
    }
    Ok(())
}

/// Recomputes every rollup from the log (after the migration that introduced them).
pub(crate) fn rebuild(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM audit_rollup", [])?;
    {
        let sql = format!("SELECT {} FROM audit_log ORDER BY ts_ms", crate::query::COLUMNS);
        let mut stmt = tx.prepare(&sql)?;
        let mut rows = stmt.query([])?;
        let mut chunk = Vec::with_capacity(4096);
        while let Some(row) = rows.next()? {
            chunk.push(crate::query::row_to_entry(row)?);
            if chunk.len() == 4096 {
                apply(&tx, &chunk)?;
                chunk.clear();
            }
        }
        apply(&tx, &chunk)?;
    }
    tx.commit()?;
    Ok(())
}

/// Drops the rollups of the days before `cutoff_ms` (a day boundary), once their rows are gone.
pub(crate) fn delete_before(conn: &Connection, cutoff_ms: i64) -> Result<(), StoreError> {
    for span in SPANS {
        conn.execute("DELETE FROM audit_rollup WHERE span_ms = ?1 AND bucket_ms < ?2", params![span, cutoff_ms])?;
    }
    Ok(())
}
