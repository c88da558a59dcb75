//! Exporting the filtered audit log to a file the user picked, with progress.

use std::io::Write;
use std::time::{Duration, Instant};

use mlx_manager_core::AuditFilter;
use mlx_manager_store::Store;
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::controller::Change;
use crate::error::CommandError;

/// File formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, specta::Type)]
#[serde(rename_all = "snake_case")]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header row.
    Csv,
}

/// A finished export.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, specta::Type)]
pub struct ExportResult {
    /// The file written.
    pub path: String,
    /// Entries written.
    #[specta(type = u32)]
    pub rows: u64,
}

/// Counts lines as they are written and reports them at most every 200 ms.
struct Progress<W> {
    out: W,
    rows: u64,
    last: Instant,
    path: String,
    changes: broadcast::Sender<Change>,
}

impl<W: Write> Write for Progress<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.rows += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
        if self.last.elapsed() >= Duration::from_millis(200) {
            self.last = Instant::now();
            let _ = self.changes.send(Change::ExportProgress { path: self.path.clone(), rows: self.rows });
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

pub(crate) async fn export(
    store: &Store,
    changes: broadcast::Sender<Change>,
    filter: AuditFilter,
    format: ExportFormat,
    path: String,
) -> Result<ExportResult, CommandError> {
    let failed = |message: String| CommandError::Export { path: path.clone(), message };
    if path.trim().is_empty() {
        return Err(CommandError::invalid("path", "choose a file to export to"));
    }
    let file = std::fs::File::create(&path).map_err(|e| failed(e.to_string()))?;
    let out = Progress {
        out: std::io::BufWriter::new(file),
        rows: 0,
        last: Instant::now(),
        path: path.clone(),
        changes: changes.clone(),
    };
    let format = match format {
        ExportFormat::Jsonl => mlx_manager_store::ExportFormat::Jsonl,
        ExportFormat::Csv => mlx_manager_store::ExportFormat::Csv,
    };
    let rows = store.export(filter, format, Box::new(out)).await.map_err(|e| failed(e.to_string()))?;
    let _ = changes.send(Change::ExportProgress { path: path.clone(), rows });
    Ok(ExportResult { path, rows })
}
