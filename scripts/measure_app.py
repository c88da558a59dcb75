"""Cold start and idle memory of MLX Manager (see scripts/measure-app, which builds and calls this).

Cold start: from spawning the process to the first 200 from GET /health on its port.
Idle memory: resident set size (VmRSS, and its private anonymous part RssAnon; the rest is
shared-library pages) 3 s after serving, no model loaded; for the app with its
window open, the WebKit web and network processes it spawned are added (they are part of what the
user pays for). Medians over the runs.
"""

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def children(pid):
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                kids.append(int(entry))
        except OSError:
            pass
    return kids


def descendants(pid):
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def status_kib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def comm(pid):
    with open(f"/proc/{pid}/comm") as f:
        return f.read().strip()


def wait_healthy(port, proc, limit=60.0):
    start = time.monotonic()
    while time.monotonic() - start < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.005)
    raise RuntimeError("no /health within 60 s")


def run_once(kind, args, env):
    port = free_port()
    data = tempfile.mkdtemp(prefix="mlx-manager-measure-")
    common = ["--data-dir", data, "--port", str(port), "--no-hf-cache", "--model", args.model]
    if kind == "serve":
        cmd = [args.cli, "serve", *common]
    else:
        cmd = [args.app, *common] + (["--hidden"] if kind == "app-hidden" else [])
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(port, proc)
        start_s = time.monotonic() - t0
        time.sleep(3)
        own = status_kib(proc.pid)
        anon = status_kib(proc.pid, "RssAnon")
        total = sum(status_kib(p) for p in descendants(proc.pid) if os.path.exists(f"/proc/{p}"))
        helpers = sorted({comm(p) for p in descendants(proc.pid) if p != proc.pid and os.path.exists(f"/proc/{p}")})
        return start_s, own / 1024, anon / 1024, total / 1024, helpers
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(data, ignore_errors=True)


def floor_kib(binary, env):
    """VmRSS and RssAnon (KiB) of scripts/webkit_floor.c's program: Tauri's Linux libraries, the
    display opened, a tray icon, no web view."""
    out = subprocess.run([binary], env=env, capture_output=True, text=True, check=True, timeout=60).stdout
    fields = dict(line.split(":", 1) for line in out.splitlines())
    return int(fields["VmRSS"].split()[0]), int(fields["RssAnon"].split()[0])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--model", required=True)
    ap.add_argument("--app", required=True)
    ap.add_argument("--cli", required=True)
    ap.add_argument("--floor", help="scripts/webkit_floor.c, compiled")
    args = ap.parse_args()

    display = ":%d" % (100 + os.getpid() % 100)
    xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1280x900x24"], stderr=subprocess.DEVNULL)
    dbus = subprocess.run(["dbus-daemon", "--session", "--fork", "--print-address=1", "--print-pid=1"],
                          capture_output=True, text=True, check=True).stdout.split()
    env = dict(os.environ, DISPLAY=display, DBUS_SESSION_BUS_ADDRESS=dbus[0], RUST_LOG="warn")
    time.sleep(1)
    rows = []
    try:
        for kind, label in [("serve", "`mlx-manager serve` (headless)"),
                            ("app-hidden", "app, tray only (`--hidden`, as on macOS)"),
                            ("app-window", "app, settings window open")]:
            results = [run_once(kind, args, env) for _ in range(args.runs)]
            rows.append((label,
                         statistics.median(r[0] for r in results),
                         statistics.median(r[1] for r in results),
                         statistics.median(r[2] for r in results),
                         statistics.median(r[3] for r in results),
                         ", ".join(results[-1][4]) or "—"))
        floors = []
        if args.floor:
            for label, extra in [("as the app runs", {}), ("with `GDK_GL=disable`", {"GDK_GL": "disable"})]:
                results = [floor_kib(args.floor, dict(env, **extra)) for _ in range(args.runs)]
                floors.append((label, statistics.median(r[0] for r in results) / 1024,
                               statistics.median(r[1] for r in results) / 1024))
    finally:
        xvfb.terminate()
        subprocess.run(["kill", dbus[1]], check=False)

    print(f"runs: {args.runs} per row (medians); model registered, none loaded\n")
    print("| process | cold start → /health 200 | idle RSS | of which private (RssAnon) | RSS incl. helper processes | helpers |")
    print("|---|---|---|---|---|---|")
    for label, start_s, own, anon, total, helpers in rows:
        print(f"| {label} | {start_s * 1000:.0f} ms | {own:.1f} MB | {anon:.1f} MB | {total:.1f} MB | {helpers} |")

    if floors:
        print("\nThe floor: a C program that only links Tauri's Linux libraries (WebKitGTK, GTK 3, AppIndicator),")
        print("opens the display and shows a tray icon (scripts/webkit_floor.c)\n")
        print("| floor program | idle RSS | of which private (RssAnon) |")
        print("|---|---|---|")
        for label, rss, anon in floors:
            print(f"| {label} | {rss:.1f} MB | {anon:.1f} MB |")


if __name__ == "__main__":
    main()
