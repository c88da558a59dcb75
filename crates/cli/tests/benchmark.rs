//! `mlx-benchmark` against a real `mlx-manager serve` on 127.0.0.1:0 with a tiny model: the JSON
//! report (counts, ordered percentiles, tokens/s), every endpoint, concurrency, the suite, and clear
//! failures when the server is down or answers errors.

mod support;

use std::process::{Command, Output};

use mlx_manager_engine::tiny::TinyFamily;
use serde_json::Value;
use support::*;

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mlx-benchmark")).args(args).output().unwrap()
}

fn json(out: &Output) -> Value {
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn ordered(v: &Value, metric: &str) {
    let s = &v[metric];
    let (min, p50, p95, max, avg) = (
        s["min"].as_f64().unwrap(),
        s["p50"].as_f64().unwrap(),
        s["p95"].as_f64().unwrap(),
        s["max"].as_f64().unwrap(),
        s["avg"].as_f64().unwrap(),
    );
    assert!(min <= p50 && p50 <= p95 && p95 <= max && min <= avg && avg <= max, "{metric}: {s}");
}

#[test]
fn help_shows_run_and_suite() {
    let out = bench(&["--help"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("run") && text.contains("suite"), "{text}");
}

#[test]
fn runs_against_a_real_server_and_reports_json_and_markdown() {
    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "tiny-bench", TinyFamily::Qwen2);
    let server = serve(&dir.path().join("data"), &model, &[]);
    let url = server.url.as_str();

    let v = json(&bench(&["run", "--url", url, "-m", "tiny-bench", "-n", "4", "--max-tokens", "8", "--json"]));
    assert_eq!((v["requests"].as_u64(), v["succeeded"].as_u64(), v["failed"].as_u64()), (Some(4), Some(4), Some(0)));
    assert_eq!(v["stream"], true);
    for metric in ["ttft_ms", "e2e_ms", "decode_tokens_per_second", "inter_token_ms", "completion_tokens"] {
        ordered(&v, metric);
    }
    assert_eq!(v["completion_tokens"]["min"], 8.0, "counts come from the server's usage");
    assert_eq!(v["tokens_counted_from_stream"], false);
    assert!(v["decode_tokens_per_second"]["p50"].as_f64().unwrap() > 0.0);
    assert!(v["requests_per_second"].as_f64().unwrap() > 0.0);
    assert!(v["ttft_ms"]["p50"].as_f64().unwrap() <= v["e2e_ms"]["p50"].as_f64().unwrap());

    // Whole answers, two at a time, on the completions API.
    let v = json(&bench(&[
        "run",
        "--url",
        url,
        "-m",
        "tiny-bench",
        "-n",
        "4",
        "--max-tokens",
        "4",
        "--no-stream",
        "--concurrency",
        "2",
        "--endpoint",
        "completions",
        "--prompt",
        "medium",
        "--json",
    ]));
    assert_eq!(
        (v["succeeded"].as_u64(), v["stream"].as_bool(), v["concurrency"].as_u64()),
        (Some(4), Some(false), Some(2))
    );
    assert!(v["ttft_ms"].is_null(), "no first-token time without a stream");
    assert_eq!(v["completion_tokens"]["max"], 4.0);
    assert!(v["prompt_tokens"]["min"].as_f64().unwrap() > 100.0, "the medium prompt is long");

    // Embeddings; and Markdown for people by default.
    let v = json(&bench(&["run", "--url", url, "-m", "tiny-bench", "-n", "2", "--endpoint", "embeddings", "--json"]));
    assert_eq!(v["succeeded"], 2);
    let out = bench(&["run", "--url", url, "-m", "tiny-bench", "-n", "2", "--max-tokens", "4"]);
    let md = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{md}");
    assert!(md.contains("| time to first token (ms) |") && md.contains("| decode (tokens/s) |"), "{md}");
    assert!(
        out.stderr.is_empty() || !String::from_utf8_lossy(&out.stderr).contains('\r'),
        "no progress bar when piped"
    );

    // The suite: every model × short/medium/long, JSON written to a file.
    let path = dir.path().join("suite.json");
    let out = bench(&["suite", "--url", url, "--runs", "1", "--max-tokens", "4", "-o", path.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let suite: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let prompts: Vec<&str> =
        suite["results"].as_array().unwrap().iter().map(|r| r["prompt"].as_str().unwrap()).collect();
    assert_eq!(prompts, ["short", "medium", "long"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("| tiny-bench | long |"));
}

#[test]
fn a_server_that_is_down_or_answers_errors_fails_clearly() {
    let out = bench(&["run", "--url", closed_port().trim_end_matches("/v1"), "-m", "x", "-n", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach") && err.contains("is the server running?"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let model = tiny(dir.path(), "tiny-bench", TinyFamily::Llama);
    let server = serve(&dir.path().join("data"), &model, &[]);
    let out = bench(&["run", "--url", &server.url, "-m", "no-such-model", "-n", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("404") && err.contains("model_not_found"), "{err}");
    // Errors during the measured requests (no warm-up): the report is printed, the exit is non-zero.
    let out = bench(&["run", "--url", &server.url, "-m", "no-such-model", "-n", "2", "--warmup", "0", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((v["failed"].as_u64(), v["succeeded"].as_u64()), (Some(2), Some(0)));
    assert!(v["errors"][0].as_str().unwrap().contains("model_not_found"));
}
