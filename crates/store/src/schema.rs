//! Versioned migrations (`PRAGMA user_version`).

use std::path::Path;

use rusqlite::Connection;

use crate::error::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: the audit log, newest-first keyset order on (ts_ms, id), with the filter columns indexed.
    "CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        ts_ms INTEGER NOT NULL,
        request_id TEXT NOT NULL,
        model TEXT NOT NULL,
        backend_type TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        duration_ms INTEGER NOT NULL,
        status TEXT NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        total_tokens INTEGER NOT NULL,
        error_type TEXT,
        error_message TEXT
    );
    CREATE INDEX audit_ts ON audit_log (ts_ms, id);
    CREATE INDEX audit_model_ts ON audit_log (model, ts_ms, id);
    CREATE INDEX audit_status_ts ON audit_log (status, ts_ms, id);
    CREATE INDEX audit_backend_ts ON audit_log (backend_type, ts_ms, id);",
    // 2: settings the user changed (timeouts, server, pool), one JSON document per key.
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    // 3: routed requests: the provider that served them and whether a fallback did.
    "ALTER TABLE audit_log ADD COLUMN backend_name TEXT;
     ALTER TABLE audit_log ADD COLUMN fallback INTEGER NOT NULL DEFAULT 0;",
    // 4: per-minute, per-hour and per-day rollups for stats (filled from the log right after).
    "CREATE TABLE audit_rollup (
        span_ms INTEGER NOT NULL,
        bucket_ms INTEGER NOT NULL,
        model TEXT NOT NULL,
        backend_type TEXT NOT NULL,
        status TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        requests INTEGER NOT NULL,
        prompt_tokens INTEGER NOT NULL,
        completion_tokens INTEGER NOT NULL,
        duration_sum INTEGER NOT NULL,
        min_ts INTEGER NOT NULL,
        max_ts INTEGER NOT NULL,
        histogram BLOB NOT NULL,
        PRIMARY KEY (span_ms, bucket_ms, model, backend_type, status, endpoint)
    ) WITHOUT ROWID;",
    // 5: the same keyset order with smaller index entries: every index already ends with the
    // rowid (`id`), so naming `id` again only stored it twice.
    "DROP INDEX audit_ts;
     DROP INDEX audit_model_ts;
     DROP INDEX audit_status_ts;
     DROP INDEX audit_backend_ts;
     CREATE INDEX audit_ts ON audit_log (ts_ms);
     CREATE INDEX audit_model_ts ON audit_log (model, ts_ms);
     CREATE INDEX audit_status_ts ON audit_log (status, ts_ms);
     CREATE INDEX audit_backend_ts ON audit_log (backend_type, ts_ms);",
    // 6: why generation stopped and how many tool calls the answer made. Rows from before keep
    // NULL (not known) and 0; no index: a filter on the finish reason is rare and scans.
    "ALTER TABLE audit_log ADD COLUMN finish_reason TEXT;
     ALTER TABLE audit_log ADD COLUMN tool_calls INTEGER NOT NULL DEFAULT 0;",
];

/// The migration that introduced the rollups (rebuilt from the log when a database crosses it).
const ROLLUPS: usize = 4;

/// The schema version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// Opens (creating if needed) and migrates the database at `path`.
pub fn open(path: &Path) -> Result<Connection, StoreError> {
    let open_err = |e: rusqlite::Error| StoreError::Open { path: path.to_path_buf(), message: e.to_string() };
    let corrupt = |e: rusqlite::Error| StoreError::Corrupt { path: path.to_path_buf(), message: e.to_string() };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
    }
    // One thread owns the connection (rusqlite's Connection is not Sync), so SQLite's own
    // mutexes are not needed.
    let flags = (rusqlite::OpenFlags::default() - rusqlite::OpenFlags::SQLITE_OPEN_FULL_MUTEX)
        | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags).map_err(open_err)?;
    // Reading the version is the first access to the file: a non-database fails here.
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(corrupt)?;
    if found > VERSION {
        return Err(StoreError::NewerSchema { path: path.to_path_buf(), found, supported: VERSION });
    }
    if found == 0 {
        // A new file: 8 KiB pages split less often under the writer's appends (a page size is
        // fixed once the file exists in WAL mode).
        conn.pragma_update(None, "page_size", 8192).map_err(corrupt)?;
    }
    conn.pragma_update(None, "journal_mode", "WAL").map_err(corrupt)?;
    conn.pragma_update(None, "synchronous", "NORMAL").map_err(corrupt)?;
    let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0)).map_err(corrupt)?;
    if check != "ok" {
        return Err(StoreError::Corrupt { path: path.to_path_buf(), message: check });
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    // After every migration, not right after the rollups' own: the rebuild reads the log with
    // this build's columns, which later migrations may add.
    if found > 0 && (found as usize) < ROLLUPS {
        crate::rollup::rebuild(&mut conn)?;
    }
    Ok(conn)
}
