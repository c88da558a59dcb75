//! MLX Manager's SQLite storage, starting with the audit log.
//!
//! Why a crate of its own: requests must never wait on disk, and SQLite wants one owner. A single
//! thread owns the connection; the request path only hands entries to a bounded channel
//! ([`Store::record`] never blocks: when the channel is full the entry goes to a spill queue and a
//! counter says so, nothing is dropped). The thread commits entries in batches (one transaction,
//! prepared statement) as soon as they arrive, broadcasts each to live subscribers, answers
//! queries in order (so a query sees every entry recorded before it) and applies retention in
//! small batches between writes.
#![deny(missing_docs)]

mod checkpoint;
mod error;
mod export;
mod histogram;
mod query;
mod rollup;
mod routing;
mod schema;
mod stats;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mlx_manager_core::{AuditEntry, AuditFilter, AuditPage, AuditSink, AuditStats};
use rusqlite::Connection;
use tokio::sync::{broadcast, oneshot};

pub use error::StoreError;
pub use export::{ExportFormat, CSV_COLUMNS};
pub use query::{DEFAULT_LIMIT, MAX_LIMIT};

/// Entries waiting in the channel before they spill.
const CHANNEL: usize = 8192;
/// Most entries in one transaction.
const BATCH: usize = 4096;
/// Live-feed buffer per subscriber.
const LIVE: usize = 1024;

type Call = Box<dyn FnOnce(&mut Connection) + Send>;

enum Msg {
    Entry(Box<AuditEntry>),
    Call(Call),
    Shutdown,
}

struct Inner {
    tx: SyncSender<Msg>,
    spill: Arc<Mutex<VecDeque<AuditEntry>>>,
    counts: Arc<Counts>,
    live: broadcast::Sender<AuditEntry>,
    retention_days: Arc<AtomicU64>,
    thread: Mutex<Option<JoinHandle<()>>>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
    path: PathBuf,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let _ = self.tx.send(Msg::Shutdown);
        // The writer first (it drops the checkpointer's wake-up sender), then the checkpointer.
        for thread in [&self.thread, &self.checkpointer] {
            if let Some(thread) = thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
                let _ = thread.join();
            }
        }
    }
}

/// Entries recorded but not yet committed, that found the channel full, and that the database refused.
#[derive(Default)]
struct Counts {
    pending: AtomicU64,
    spilled: AtomicU64,
    dropped: AtomicU64,
}

/// A handle on the database; clones share the one store thread, which stops (after writing
/// everything queued) when the last clone is dropped.
#[derive(Clone)]
pub struct Store(Arc<Inner>);

/// Default audit retention in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

impl Store {
    /// Opens (creating and migrating) the database at `path` and starts its thread. A file from a
    /// newer version, or one that is not a healthy database, is a typed error and is not touched.
    pub fn open(path: &Path, retention_days: u32) -> Result<Store, StoreError> {
        let conn = schema::open(path)?;
        // Checkpoints happen on their own thread (see `checkpoint`). Under a sustained burst its
        // passive checkpoints never catch up with the writer, so the writer still checkpoints
        // itself once the WAL reaches 32768 pages (256 MiB); the file is cut back to 64 MiB after
        // each reset.
        conn.pragma_update(None, "wal_autocheckpoint", 32768)?;
        conn.pragma_update(None, "journal_size_limit", 64 * 1024 * 1024)?;
        let (checkpoint, checkpointer) = checkpoint::spawn(path)?;
        let (tx, rx) = mpsc::sync_channel(CHANNEL);
        let spill = Arc::new(Mutex::new(VecDeque::new()));
        let (live, _) = broadcast::channel(LIVE);
        let retention = Arc::new(AtomicU64::new(u64::from(retention_days.clamp(1, 365))));
        let counts = Arc::new(Counts::default());
        let worker = Worker {
            conn,
            rx,
            spill: spill.clone(),
            live: live.clone(),
            retention_days: retention.clone(),
            counts: counts.clone(),
            checkpoint,
        };
        let thread = std::thread::Builder::new()
            .name("audit-store".into())
            .spawn(move || worker.run())
            .map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
        Ok(Store(Arc::new(Inner {
            tx,
            spill,
            counts,
            live,
            retention_days: retention,
            thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(Some(checkpointer)),
            path: path.to_path_buf(),
        })))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// Hands an entry to the writer without waiting.
    pub fn record(&self, entry: AuditEntry) {
        self.0.counts.pending.fetch_add(1, Ordering::Relaxed);
        match self.0.tx.try_send(Msg::Entry(Box::new(entry))) {
            Ok(()) => {}
            Err(TrySendError::Full(Msg::Entry(entry))) => {
                self.0.spill.lock().unwrap_or_else(|p| p.into_inner()).push_back(*entry);
                self.0.counts.spilled.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => tracing::error!("audit store stopped; entry not recorded"),
        }
    }

    /// Entries that found the channel full and went through the spill queue (none were lost).
    pub fn spilled(&self) -> u64 {
        self.0.counts.spilled.load(Ordering::Relaxed)
    }

    /// Entries recorded and not yet committed.
    pub fn queue_depth(&self) -> u64 {
        self.0.counts.pending.load(Ordering::Relaxed)
    }

    /// Entries the database refused to write (a failed transaction); normally zero.
    pub fn dropped(&self) -> u64 {
        self.0.counts.dropped.load(Ordering::Relaxed)
    }

    /// Every entry written from now on, in order. A subscriber that falls more than 1024 entries
    /// behind gets `RecvError::Lagged` (and should re-query); the database has everything.
    pub fn subscribe(&self) -> broadcast::Receiver<AuditEntry> {
        self.0.live.subscribe()
    }

    /// Changes the retention (1–365 days); applied at the next pass (now).
    pub fn set_retention_days(&self, days: u32) -> Result<(), StoreError> {
        if !(1..=365).contains(&days) {
            return Err(StoreError::InvalidFilter {
                field: "retention_days".into(),
                message: "must be 1 to 365".into(),
            });
        }
        self.0.retention_days.store(u64::from(days), Ordering::Relaxed);
        Ok(())
    }

    async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        let call: Call = Box::new(move |conn| {
            let _ = reply.send(f(conn));
        });
        self.0.tx.send(Msg::Call(call)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Waits until everything recorded before this call is committed.
    pub async fn flush(&self) -> Result<(), StoreError> {
        self.call(|_| Ok(())).await
    }

    /// One page of entries, newest first; `cursor` is a previous page's `next_cursor`.
    pub async fn list(
        &self,
        filter: AuditFilter,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<AuditPage, StoreError> {
        self.call(move |conn| query::list(conn, &filter, cursor.as_deref(), limit)).await
    }

    /// Aggregates over the filtered set.
    pub async fn stats(&self, filter: AuditFilter) -> Result<AuditStats, StoreError> {
        self.call(move |conn| stats::stats(conn, &filter)).await
    }

    /// Streams the filtered set to `out`; returns the rows written.
    pub async fn export(
        &self,
        filter: AuditFilter,
        format: ExportFormat,
        mut out: Box<dyn std::io::Write + Send>,
    ) -> Result<u64, StoreError> {
        self.call(move |conn| export::export(conn, &filter, format, &mut out)).await
    }

    /// The setting stored under `key`, if any. A stored value that no longer parses as `T` is a
    /// typed error (the caller decides whether to fall back to defaults).
    pub async fn setting<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StoreError> {
        let key = key.to_string();
        self.call(move |conn| {
            let raw: Option<String> = conn
                .query_row("SELECT value FROM settings WHERE key = ?1", [&key], |r| r.get(0))
                .map(Some)
                .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })?;
            raw.map(|raw| {
                serde_json::from_str(&raw).map_err(|e| StoreError::Setting { key: key.clone(), message: e.to_string() })
            })
            .transpose()
        })
        .await
    }

    /// Stores `value` under `key` (replacing it), durably: this returns after the commit.
    pub async fn put_setting<T: serde::Serialize>(&self, key: &str, value: &T) -> Result<(), StoreError> {
        let key = key.to_string();
        let raw = serde_json::to_string(value)
            .map_err(|e| StoreError::Setting { key: key.clone(), message: e.to_string() })?;
        self.call(move |conn| {
            conn.execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                [&key, &raw],
            )?;
            Ok(())
        })
        .await
    }

    /// Checks a filter without querying (for early 422s).
    pub fn validate(filter: &AuditFilter) -> Result<(), StoreError> {
        query::validate(filter)
    }
}

impl AuditSink for Store {
    fn record(&self, entry: AuditEntry) {
        Store::record(self, entry);
    }
}

struct Worker {
    conn: Connection,
    checkpoint: SyncSender<()>,
    rx: mpsc::Receiver<Msg>,
    spill: Arc<Mutex<VecDeque<AuditEntry>>>,
    live: broadcast::Sender<AuditEntry>,
    retention_days: Arc<AtomicU64>,
    counts: Arc<Counts>,
}

impl Worker {
    fn commit(&mut self, batch: &mut Vec<AuditEntry>) {
        batch.extend(self.spill.lock().unwrap_or_else(|p| p.into_inner()).drain(..));
        if batch.is_empty() {
            return;
        }
        let n = batch.len() as u64;
        let written = query::insert_batch(&mut self.conn, batch);
        self.counts.pending.fetch_sub(n, Ordering::Relaxed);
        if let Err(e) = written {
            self.counts.dropped.fetch_add(n, Ordering::Relaxed);
            tracing::error!(error = %e, entries = batch.len(), "audit batch not written");
        } else {
            let _ = self.checkpoint.try_send(());
            if self.live.receiver_count() > 0 {
                for entry in batch.iter() {
                    let _ = self.live.send(entry.clone());
                }
            }
        }
        batch.clear();
    }

    fn retention(&mut self) -> bool {
        let days = self.retention_days.load(Ordering::Relaxed) as i64;
        let cutoff = chrono::Utc::now() - chrono::Duration::days(days);
        match query::delete_batch_before(&self.conn, cutoff) {
            Ok(n) => n == query::RETENTION_BATCH,
            Err(e) => {
                tracing::warn!(error = %e, "retention pass failed");
                false
            }
        }
    }

    fn run(mut self) {
        let mut batch = Vec::with_capacity(BATCH);
        // Retention runs at start-up and then daily, one small batch between writes.
        let mut retention_due = true;
        let mut next_retention = Instant::now() + Duration::from_secs(86_400);
        loop {
            let wait = if retention_due { Duration::ZERO } else { Duration::from_secs(1) };
            let first = match self.rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    self.commit(&mut batch);
                    return;
                }
            };
            let mut pending = None;
            match first {
                Some(Msg::Entry(e)) => {
                    batch.push(*e);
                    while batch.len() < BATCH {
                        match self.rx.try_recv() {
                            Ok(Msg::Entry(e)) => batch.push(*e),
                            Ok(other) => {
                                pending = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                }
                other => pending = other,
            }
            self.commit(&mut batch);
            match pending {
                Some(Msg::Call(call)) => call(&mut self.conn),
                Some(Msg::Shutdown) => {
                    self.commit(&mut batch);
                    return;
                }
                Some(Msg::Entry(_)) | None => {}
            }
            if Instant::now() >= next_retention {
                retention_due = true;
                next_retention = Instant::now() + Duration::from_secs(86_400);
            }
            if retention_due {
                retention_due = self.retention();
            }
        }
    }
}
