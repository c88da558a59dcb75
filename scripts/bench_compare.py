"""Turns two mlx-benchmark outputs (ours and mlx_lm.server's) into one Markdown table with ratios.
Usage: bench_compare.py WORK_DIR DESCRIPTION (reads {ours,theirs}-suite.json and -rps.json)."""

import json
import os
import sys

work, description = sys.argv[1], sys.argv[2]


def load(name):
    with open(os.path.join(work, name)) as f:
        return json.load(f)


ours, theirs = load("ours-suite.json")["results"], load("theirs-suite.json")["results"]
rps_ours, rps_theirs = load("ours-rps.json"), load("theirs-rps.json")
cached_ours, cached_theirs = load("ours-cached.json"), load("theirs-cached.json")


def p50(run, metric):
    m = run.get(metric)
    return None if m is None else m["p50"]


def cell(v, digits=1):
    return "—" if v is None else f"{v:.{digits}f}"


def ratio(a, b, lower_is_better):
    if a is None or b is None or a == 0 or b == 0:
        return "—"
    return f"{(b / a) if lower_is_better else (a / b):.2f}×"


lines = [
    f"Measured by `scripts/bench-compare` in one run: {description}.",
    "Speed ratio > 1 means MLX Manager is faster (for latencies: theirs / ours; for rates: ours / theirs).",
    "Every request's prompt is unique (it starts with its own number) except in the last rows, where the long prompt is repeated verbatim.",
    "",
    "| prompt | metric | mlx-manager serve | mlx_lm.server | speed ratio |",
    "|---|---|---:|---:|---:|",
]
for a, b in zip(ours, theirs):
    lines.append(f"| {a['prompt']} | prompt tokens | {cell(p50(a, 'prompt_tokens'), 0)} | {cell(p50(b, 'prompt_tokens'), 0)} | |")
    for metric, label, lower in [
        ("ttft_ms", "TTFT p50 (ms)", True),
        ("decode_tokens_per_second", "decode p50 (tok/s)", False),
        ("inter_token_ms", "inter-token p50 (ms)", True),
        ("e2e_ms", "end-to-end p50 (ms)", True),
    ]:
        x, y = p50(a, metric), p50(b, metric)
        lines.append(f"| {a['prompt']} | {label} | {cell(x)} | {cell(y)} | {ratio(x, y, lower)} |")
x, y = rps_ours["requests_per_second"], rps_theirs["requests_per_second"]
lines.append(f"| short | max_tokens=1, 8 in flight (req/s) | {cell(x, 2)} | {cell(y, 2)} | {ratio(x, y, False)} |")
for metric, label, lower in [("ttft_ms", "TTFT p50 (ms)", True), ("e2e_ms", "end-to-end p50 (ms)", True)]:
    x, y = p50(cached_ours, metric), p50(cached_theirs, metric)
    lines.append(f"| long, same prompt every time | {label} | {cell(x)} | {cell(y)} | {ratio(x, y, lower)} |")
everything = [*ours, *theirs, rps_ours, rps_theirs, cached_ours, cached_theirs]
notes = [r for r in everything if r.get("tokens_counted_from_stream")]
if notes:
    lines.append("")
    lines.append("mlx_lm.server sent no usage in some streams: its completion tokens were counted from stream events.")
failed = sum(r["failed"] for r in everything)
if failed:
    lines.append(f"\n{failed} request(s) failed during the run; see the JSON output.")
print("\n".join(lines))
