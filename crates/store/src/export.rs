//! Streaming exports of a filtered set: CSV (RFC 4180, header row) and JSON Lines, newest first,
//! written row by row (constant memory).

use std::io::Write;

use mlx_manager_core::{AuditEntry, AuditFilter};
use rusqlite::{params_from_iter, Connection};
use serde::{Deserialize, Serialize};

use crate::error::StoreError;
use crate::query::{row_to_entry, validate, where_clause};

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// Comma-separated values with a header row.
    Csv,
    /// One JSON object per line.
    Jsonl,
}

/// The CSV columns, in order (columns added later go at the end, so a reader that picks columns by
/// position keeps working).
pub const CSV_COLUMNS: [&str; 16] = [
    "timestamp",
    "request_id",
    "model",
    "backend_type",
    "endpoint",
    "duration_ms",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "error_type",
    "error_message",
    "backend_name",
    "fallback",
    "finish_reason",
    "tool_calls",
];

fn csv_record(e: &AuditEntry) -> [String; 16] {
    [
        e.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        e.request_id.clone(),
        e.model.clone(),
        e.backend_type.as_str().to_string(),
        e.endpoint.clone(),
        e.duration_ms.to_string(),
        e.status.as_str().to_string(),
        e.prompt_tokens.to_string(),
        e.completion_tokens.to_string(),
        e.total_tokens.to_string(),
        e.error_type.clone().unwrap_or_default(),
        e.error_message.clone().unwrap_or_default(),
        e.backend_name.clone().unwrap_or_default(),
        e.fallback.to_string(),
        e.finish_reason.clone().unwrap_or_default(),
        e.tool_calls.to_string(),
    ]
}

pub(crate) fn export(
    conn: &Connection,
    filter: &AuditFilter,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    validate(filter)?;
    let w = where_clause(filter, None);
    let sql = format!("SELECT {} FROM audit_log {} ORDER BY ts_ms DESC, id DESC", crate::query::COLUMNS, w.sql);
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(w.params.iter()))?;
    let err = |e: &dyn std::fmt::Display| StoreError::Export(e.to_string());
    let mut n = 0;
    match format {
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(CSV_COLUMNS).map_err(|e| err(&e))?;
            while let Some(row) = rows.next()? {
                writer.write_record(csv_record(&row_to_entry(row)?)).map_err(|e| err(&e))?;
                n += 1;
            }
            writer.flush().map_err(|e| err(&e))?;
        }
        ExportFormat::Jsonl => {
            let mut out = std::io::BufWriter::new(out);
            while let Some(row) = rows.next()? {
                serde_json::to_writer(&mut out, &row_to_entry(row)?).map_err(|e| err(&e))?;
                out.write_all(b"\n").map_err(|e| err(&e))?;
                n += 1;
            }
            out.flush().map_err(|e| err(&e))?;
        }
    }
    Ok(n)
}
