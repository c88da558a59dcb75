"""Python's sqlite3 doing the audit store's work on the same database file, as the yardstick for
crates/store/benches/audit_store.rs. Prints JSON timings (seconds)."""

import csv
import io
import json
import sqlite3
import sys
import time

path, n = sys.argv[1], int(sys.argv[2])
conn = sqlite3.connect(path)
conn.execute("PRAGMA journal_mode=WAL")
conn.execute("PRAGMA synchronous=NORMAL")
conn.execute(
    "CREATE TABLE IF NOT EXISTS audit_log (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, request_id TEXT NOT NULL,"
    " model TEXT NOT NULL, backend_type TEXT NOT NULL, endpoint TEXT NOT NULL, duration_ms INTEGER NOT NULL,"
    " status TEXT NOT NULL, prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,"
    " total_tokens INTEGER NOT NULL, error_type TEXT, error_message TEXT)"
)
for sql in [
    "CREATE INDEX IF NOT EXISTS audit_ts ON audit_log (ts_ms, id)",
    "CREATE INDEX IF NOT EXISTS audit_model_ts ON audit_log (model, ts_ms, id)",
    "CREATE INDEX IF NOT EXISTS audit_status_ts ON audit_log (status, ts_ms, id)",
    "CREATE INDEX IF NOT EXISTS audit_backend_ts ON audit_log (backend_type, ts_ms, id)",
]:
    conn.execute(sql)
models = ["qwen2.5-0.5b", "llama-3.2-1b", "Qwen3-4B", "gpt-4o"]
statuses = ["success", "success", "success", "error", "timeout", "cancelled"]
base = 1_790_000_000_000
rows = [
    (base + i * 10, f"req_{i:012x}", models[i % 4], "local", "/v1/chat/completions", (i * 7919) % 5000,
     statuses[i % 6], i % 50, i % 30, i % 50 + i % 30, None if i % 6 < 3 else "upstream_error",
     None if i % 6 < 3 else f"bad, \"quoted\" message {i}")
    for i in range(n)
]
out = {}
t = time.perf_counter()
for start in range(0, n, 4096):
    with conn:
        conn.executemany(
            "INSERT INTO audit_log (ts_ms, request_id, model, backend_type, endpoint, duration_ms, status,"
            " prompt_tokens, completion_tokens, total_tokens, error_type, error_message)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows[start:start + 4096],
        )
out["insert_rows_per_s"] = n / (time.perf_counter() - t)

def page(cursor):
    q = ("SELECT * FROM audit_log WHERE status = ? AND (ts_ms, id) < (?, ?)"
         " ORDER BY ts_ms DESC, id DESC LIMIT 101")
    return conn.execute(q, ("error", cursor, 1 << 62)).fetchall()

def p50(f, reps=50):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    ts.sort()
    return ts[len(ts) // 2]

out["page_shallow_s"] = p50(lambda: page(base + n * 10 + 1))
out["page_deep_s"] = p50(lambda: page(base + n))

def stats():
    conn.execute("SELECT COUNT(*), COUNT(DISTINCT model), SUM(prompt_tokens), SUM(completion_tokens) FROM audit_log WHERE status = 'error'").fetchall()
    for col in ["status", "backend_type", "model"]:
        conn.execute(f"SELECT {col}, COUNT(*) FROM audit_log WHERE status = 'error' GROUP BY {col}").fetchall()
    k = conn.execute("SELECT COUNT(*) FROM audit_log WHERE status = 'error'").fetchone()[0]
    for p in (0.5, 0.95):
        conn.execute(f"SELECT duration_ms FROM audit_log WHERE status = 'error' ORDER BY duration_ms LIMIT 1 OFFSET {round((k - 1) * p)}").fetchall()
    conn.execute("SELECT (ts_ms / 3600000) * 3600000, COUNT(*), SUM(status != 'success') FROM audit_log WHERE status = 'error' GROUP BY 1").fetchall()

out["stats_s"] = p50(stats, reps=5)
t = time.perf_counter()
buf = io.StringIO()
w = csv.writer(buf)
count = 0
for row in conn.execute("SELECT * FROM audit_log ORDER BY ts_ms DESC, id DESC"):
    w.writerow(row[1:])
    count += 1
    if buf.tell() > 1 << 20:
        buf.seek(0)
        buf.truncate()
out["csv_rows_per_s"] = count / (time.perf_counter() - t)
print(json.dumps(out))
