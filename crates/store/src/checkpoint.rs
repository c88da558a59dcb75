//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs inside the commit
//! that crosses the threshold, so the writer would stop to copy pages and fsync the database;
//! instead the writer only appends to the WAL and nudges this thread, which checkpoints
//! (PASSIVE: it never blocks the writer or readers) on a connection of its own that touches no
//! rows. It closes last, so SQLite's final checkpoint on close empties the WAL. (The writer keeps
//! a 256 MiB automatic checkpoint as a backstop for bursts these checkpoints cannot keep up with.)

use std::path::Path;
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::StoreError;

/// Commits arriving within this window share one checkpoint.
const COALESCE: Duration = Duration::from_millis(50);

/// Starts the checkpointer for the database at `path`; the writer calls `try_send(())` after each
/// commit, and the thread ends when that sender is dropped.
pub(crate) fn spawn(path: &Path) -> Result<(SyncSender<()>, JoinHandle<()>), StoreError> {
    let open_err = |message: String| StoreError::Open { path: path.to_path_buf(), message };
    let conn = Connection::open(path).map_err(|e| open_err(e.to_string()))?;
    let (wake, rx) = mpsc::sync_channel(1);
    let thread = std::thread::Builder::new()
        .name("audit-checkpoint".into())
        .spawn(move || run(conn, rx))
        .map_err(|e| open_err(e.to_string()))?;
    Ok((wake, thread))
}

fn run(conn: Connection, rx: Receiver<()>) {
    while rx.recv().is_ok() {
        std::thread::sleep(COALESCE);
        while rx.try_recv().is_ok() {}
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "checkpoint skipped");
        }
    }
}
