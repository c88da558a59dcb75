//! Stats for a filtered set, read from the rollups: whole days from the daily rollups, the
//! partial days at the edges of a time range from the hourly ones, partial hours from the
//! per-minute ones, and raw rows only for the partial minutes at the very edges. Counts, token
//! sums, per-bucket means and the time span are exact; latency percentiles come from the merged
//! histograms (exact below 128 ms, within 1/128 above). A filter on the finish reason, which the
//! rollups do not keep, is counted from raw rows over the whole range.

use std::collections::BTreeMap;

use chrono::{TimeZone, Utc};
use mlx_manager_core::{AuditBucket, AuditFilter, AuditStats};
use rusqlite::types::Value;
use rusqlite::{params_from_iter, Connection};

use crate::error::StoreError;
use crate::histogram::Histogram;
use crate::query::{filter_conditions, validate};
use crate::rollup::SPANS;

/// Series bucket sizes (seconds); the smallest giving at most 200 buckets over the data's span.
const BUCKETS: &[u64] = &[60, 300, 900, 3600, 6 * 3600, 86_400, 7 * 86_400];

/// The granularity of raw rows (a rollup's is its span in ms).
const RAW: i64 = 1;

/// One contribution to the time series at `span`'s granularity.
struct Point {
    span: i64,
    start: i64,
    requests: u64,
    errors: u64,
    duration_sum: u64,
}

struct Agg {
    stats: AuditStats,
    hist: Histogram,
    min_ts: i64,
    max_ts: i64,
    points: Vec<Point>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match map.get_mut(key) {
        Some(v) => *v += n,
        None => {
            map.insert(key.to_string(), n);
        }
    }
}

/// The columns raw rows and rollups share, in the same order in both queries:
/// model, backend_type, status, then prompt and completion token counts at `tokens`.
fn tally(s: &mut AuditStats, row: &rusqlite::Row<'_>, requests: u64, tokens: usize) -> Result<(), StoreError> {
    let text = |i: usize| row.get_ref(i).and_then(|v| v.as_str().map_err(Into::into));
    bump(&mut s.by_status, text(2)?, requests);
    bump(&mut s.by_backend, text(1)?, requests);
    bump(&mut s.by_model, text(0)?, requests);
    s.prompt_tokens += row.get::<_, i64>(tokens)? as u64;
    s.completion_tokens += row.get::<_, i64>(tokens + 1)? as u64;
    Ok(())
}

/// Splits [start, end) into (span, lo, hi) segments, each aligned to its span: the largest
/// rollup span for the middle, finer ones toward the edges, raw rows (`RAW`) for what is left.
/// An open end counts as aligned to every span.
fn segments(start: Option<i64>, end: Option<i64>) -> Vec<(i64, i64, i64)> {
    fn split(lo: i64, hi: i64, open: (bool, bool), spans: &[i64], out: &mut Vec<(i64, i64, i64)>) {
        if lo >= hi {
            return;
        }
        let Some((&span, finer)) = spans.split_last() else {
            out.push((RAW, lo, hi));
            return;
        };
        let up = if open.0 { lo } else { lo.div_euclid(span) * span + if lo.rem_euclid(span) > 0 { span } else { 0 } };
        let down = if open.1 { hi } else { hi.div_euclid(span) * span };
        if up < down {
            split(lo, up, (open.0, false), finer, out);
            out.push((span, up, down));
            split(down, hi, (false, open.1), finer, out);
        } else {
            split(lo, hi, open, finer, out);
        }
    }
    let mut out = Vec::new();
    let (lo, hi) = (start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX));
    split(lo, hi, (start.is_none(), end.is_none()), &SPANS, &mut out);
    out.retain(|(_, lo, hi)| lo < hi);
    out
}

fn conditions(filter: &AuditFilter, column: &str, lo: i64, hi: i64) -> (String, Vec<Value>) {
    let (parts, mut params) = filter_conditions(filter);
    let mut sql: String = parts.iter().map(|p| format!("{p} AND ")).collect();
    sql.push_str(&format!("{column} >= ? AND {column} < ?"));
    params.extend([Value::Integer(lo), Value::Integer(hi)]);
    (sql, params)
}

fn raw(conn: &Connection, filter: &AuditFilter, lo: i64, hi: i64, agg: &mut Agg) -> Result<(), StoreError> {
    let (cond, params) = conditions(filter, "ts_ms", lo, hi);
    let sql = format!(
        "SELECT model, backend_type, status, ts_ms, duration_ms, prompt_tokens, completion_tokens \
         FROM audit_log WHERE {cond}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    while let Some(row) = rows.next()? {
        let status = row.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
        let (ts, duration) = (row.get::<_, i64>(3)?, row.get::<_, i64>(4)? as u64);
        tally(&mut agg.stats, row, 1, 5)?;
        agg.hist.add(duration);
        agg.min_ts = agg.min_ts.min(ts);
        agg.max_ts = agg.max_ts.max(ts);
        let errors = u64::from(status != "success");
        agg.points.push(Point { span: RAW, start: ts, requests: 1, errors, duration_sum: duration });
    }
    Ok(())
}

/// Reads the rollups of `span` in [lo, hi); `totals` false adds only series points.
fn rollups(
    conn: &Connection,
    filter: &AuditFilter,
    span: i64,
    (lo, hi): (i64, i64),
    totals: bool,
    agg: &mut Agg,
) -> Result<(), StoreError> {
    let (cond, params) = conditions(filter, "bucket_ms", lo, hi);
    let sql = format!(
        "SELECT model, backend_type, status, bucket_ms, requests, prompt_tokens, completion_tokens, duration_sum, \
         min_ts, max_ts, histogram FROM audit_rollup WHERE span_ms = {span} AND {cond}"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params_from_iter(params.iter()))?;
    while let Some(row) = rows.next()? {
        let status = row.get_ref(2)?.as_str().map_err(rusqlite::Error::from)?;
        let requests = row.get::<_, i64>(4)? as u64;
        let duration_sum = row.get::<_, i64>(7)? as u64;
        if totals {
            tally(&mut agg.stats, row, requests, 5)?;
            agg.hist.merge_blob(row.get_ref(10)?.as_blob().map_err(rusqlite::Error::from)?);
            agg.min_ts = agg.min_ts.min(row.get(8)?);
            agg.max_ts = agg.max_ts.max(row.get(9)?);
        }
        let errors = if status == "success" { 0 } else { requests };
        agg.points.push(Point { span, start: row.get(3)?, requests, errors, duration_sum });
    }
    Ok(())
}

pub(crate) fn stats(conn: &Connection, filter: &AuditFilter) -> Result<AuditStats, StoreError> {
    validate(filter)?;
    let mut agg = Agg {
        stats: AuditStats::default(),
        hist: Histogram::default(),
        min_ts: i64::MAX,
        max_ts: i64::MIN,
        points: Vec::new(),
    };
    let (start, end) = (filter.start_time.map(|t| t.timestamp_millis()), filter.end_time.map(|t| t.timestamp_millis()));
    // The rollups do not keep finish reasons: a filter on one is counted from the rows.
    let segments = if filter.finish_reason.is_some() {
        vec![(RAW, start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX))]
    } else {
        segments(start, end)
    };
    for &(span, lo, hi) in &segments {
        match span {
            RAW => raw(conn, filter, lo, hi, &mut agg)?,
            _ => rollups(conn, filter, span, (lo, hi), true, &mut agg)?,
        }
    }
    let mut s = std::mem::take(&mut agg.stats);
    s.total = s.by_status.values().sum();
    s.total_requests = s.total;
    s.unique_models = s.by_model.len() as u64;
    s.latency_p50_ms = agg.hist.percentile(0.5);
    s.latency_p95_ms = agg.hist.percentile(0.95);
    let span_s = if s.total == 0 { 0 } else { ((agg.max_ts - agg.min_ts) / 1000) as u64 };
    let bucket = *BUCKETS.iter().find(|b| span_s / **b < 200).unwrap_or(BUCKETS.last().expect("non-empty"));
    let ms = (bucket * 1000) as i64;
    // Rollups coarser than the chart's buckets: the same time again from the finest span that
    // divides the bucket (every bucket size is a multiple of a minute).
    let fine = *SPANS.iter().rev().find(|s| ms % **s == 0).expect("buckets are whole minutes");
    agg.points.retain(|p| p.span <= ms);
    for &(span, lo, hi) in &segments {
        if span > ms {
            rollups(conn, filter, fine, (lo, hi), false, &mut agg)?;
        }
    }
    let mut series: BTreeMap<i64, (u64, u64, u64)> = BTreeMap::new();
    for p in agg.points {
        let b = series.entry(p.start.div_euclid(ms) * ms).or_default();
        b.0 += p.requests;
        b.1 += p.errors;
        b.2 += p.duration_sum;
    }
    s.bucket_seconds = bucket;
    s.series = series
        .into_iter()
        .map(|(start, (requests, errors, duration_sum))| AuditBucket {
            start: Utc.timestamp_millis_opt(start).single().unwrap_or_default(),
            requests,
            errors,
            avg_duration_ms: duration_sum / requests.max(1),
        })
        .collect();
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_tile_the_range() {
        let (m, h, d) = (60_000, 3_600_000, 86_400_000);
        let check = |s: Option<i64>, e: Option<i64>| {
            let segs = segments(s, e);
            let mut at = s.unwrap_or(i64::MIN);
            for (span, lo, hi) in &segs {
                assert_eq!(*lo, at, "{segs:?}");
                if *lo != i64::MIN && *hi != i64::MAX {
                    assert!(lo % span == 0 && hi % span == 0, "{segs:?}");
                }
                at = *hi;
            }
            assert_eq!(at, e.unwrap_or(i64::MAX), "{segs:?}");
            segs
        };
        for (s, e) in [
            (Some(h + 5), None),
            (None, Some(3 * h + m + 7)),
            (Some(h + 5), Some(3 * h + m + 7)),
            (Some(h + 5), Some(h + 9)),
            (Some(h + 5), Some(h + 3 * m)),
            (Some(2 * h), Some(3 * h)),
            (Some(-h - 5), Some(h)),
            (Some(d - m - 1), Some(3 * d + h + m + 1)),
        ] {
            check(s, e);
        }
        assert_eq!(check(None, None), vec![(d, i64::MIN, i64::MAX)]);
        assert_eq!(
            check(Some(d - m - 1), Some(3 * d + h + m + 1)),
            vec![
                (RAW, d - m - 1, d - m),
                (m, d - m, d),
                (d, d, 3 * d),
                (h, 3 * d, 3 * d + h),
                (m, 3 * d + h, 3 * d + h + m),
                (RAW, 3 * d + h + m, 3 * d + h + m + 1),
            ]
        );
    }
}
