//! Model pool and embeddings against Python mlx-lm on the same fp32 model, side by side in one
//! run: load time, time to the first token cold (load included) and warm, and embeddings per
//! second for batches of 1, 8 and 32 inputs (mean-pooled, L2-normalised final hidden states).
//!
//! `cargo bench -p mlx-manager-engine --bench pool_vs_mlx_lm` (scripts/bench-pool runs it with the
//! reference venv). Environment: BENCH_RUNS (default 5), BENCH_HIDDEN (512), BENCH_LAYERS (4).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

mod common;

use common::{bench_model, env_usize, median, python};
use mlx_manager_engine::{
    EmbedInput, EmbedRequest, Engine, EngineHandle, GenerateRequest, GenerationEvent, GenerationParams, Prompt,
};

const BATCHES: [usize; 3] = [1, 8, 32];
const EMBED_LEN: usize = 32;

#[derive(Default)]
struct Results {
    load_ms: Vec<f64>,
    cold_ms: Vec<f64>,
    warm_ms: Vec<f64>,
    embed: Vec<Vec<f64>>,
}

fn first_token(handle: &EngineHandle, prompt: &[u32]) {
    let params = GenerationParams { max_tokens: 1, stop_token_ids: Vec::new(), ..GenerationParams::default() };
    let mut stream = handle
        .generate(GenerateRequest { model: "bench".into(), prompt: Prompt::Tokens(prompt.to_vec()), params })
        .expect("generate");
    while let Some(event) = stream.blocking_next() {
        if let GenerationEvent::Token { .. } = event.expect("event") {
            return;
        }
    }
    panic!("no token");
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1000.0
}

fn ours(handle: &EngineHandle, path: &Path, prompt: &[u32], runs: usize) -> Results {
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut r = Results::default();
    for _ in 0..runs {
        let start = Instant::now();
        handle.load_blocking("bench", path).expect("load");
        r.load_ms.push(ms(start));
        first_token(handle, prompt);
        r.cold_ms.push(ms(start));
        let start = Instant::now();
        first_token(handle, prompt);
        r.warm_ms.push(ms(start));
        rt.block_on(handle.unload("bench")).expect("unload");
    }
    handle.load_blocking("bench", path).expect("load");
    for batch in BATCHES {
        let inputs: Vec<EmbedInput> = (0..batch)
            .map(|j| EmbedInput::Tokens((0..EMBED_LEN).map(|i| (10 + (i * 37 + j * 11) % 400) as u32).collect()))
            .collect();
        let mut rates = Vec::new();
        for run in 0..runs + 1 {
            let request = EmbedRequest { model: "bench".into(), inputs: inputs.clone(), truncate: false };
            let start = Instant::now();
            let out = rt.block_on(handle.embed(request)).expect("embed");
            assert_eq!(out.vectors.len(), batch);
            if run > 0 {
                rates.push(batch as f64 / start.elapsed().as_secs_f64());
            }
        }
        r.embed.push(rates);
    }
    rt.block_on(handle.unload("bench")).expect("unload");
    r
}

fn reference(path: &Path, prompt: &[u32], runs: usize) -> Results {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/mlx_lm_reference.py");
    let tokens: Vec<String> = prompt.iter().map(u32::to_string).collect();
    let out = Command::new(python())
        .arg(script)
        .args(["pool-bench", "--model", path.to_str().expect("utf-8 path"), "--tokens", &tokens.join(",")])
        .args(["--runs", &runs.to_string(), "--embed-len", &EMBED_LEN.to_string()])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let list = |v: &serde_json::Value| v.as_array().expect("array").iter().map(|x| x.as_f64().expect("f64")).collect();
    Results {
        load_ms: list(&json["load_ms"]),
        cold_ms: list(&json["cold_first_token_ms"]),
        warm_ms: list(&json["warm_first_token_ms"]),
        embed: BATCHES.iter().map(|b| list(&json["embed_per_s"][b.to_string()])).collect(),
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runs = env_usize("BENCH_RUNS", 5);
    let hidden = env_usize("BENCH_HIDDEN", 512);
    let layers = env_usize("BENCH_LAYERS", 4);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = bench_model(dir.path(), hidden, layers);
    let prompt: Vec<u32> = (0..128u32).map(|i| 10 + (i * 37) % 400).collect();
    let engine = Engine::start().expect("engine");
    let handle = engine.handle();
    // Reference first, then ours, then the reference again: drift hits both alike.
    let mut theirs = reference(&path, &prompt, runs);
    let mine = ours(&handle, &path, &prompt, runs);
    let again = reference(&path, &prompt, runs);
    theirs.load_ms.extend(again.load_ms);
    theirs.cold_ms.extend(again.cold_ms);
    theirs.warm_ms.extend(again.warm_ms);
    for (t, a) in theirs.embed.iter_mut().zip(again.embed) {
        t.extend(a);
    }
    println!(
        "model: llama fp32, hidden {hidden}, {layers} layers, 8/4 heads; 128-token prompt; embeddings of {EMBED_LEN}-token inputs; medians ({runs} runs ours, {} reference)",
        2 * runs
    );
    println!("| | mlx-manager engine | mlx-lm | speed, ours ÷ mlx-lm (> 1: we are faster) |");
    println!("|---|---:|---:|---:|");
    let time_row = |name: &str, o: Vec<f64>, t: Vec<f64>| {
        let (o, t) = (median(o), median(t));
        println!("| {name} | {o:.1} ms | {t:.1} ms | {:.2}× |", t / o);
    };
    time_row("load (weights read and evaluated)", mine.load_ms, theirs.load_ms);
    time_row("first token, cold (load included)", mine.cold_ms, theirs.cold_ms);
    time_row("first token, warm", mine.warm_ms, theirs.warm_ms);
    for ((batch, o), t) in BATCHES.iter().zip(mine.embed).zip(theirs.embed) {
        let (o, t) = (median(o), median(t));
        println!("| embeddings, batch {batch} | {o:.0} /s | {t:.0} /s | {:.2}× |", o / t);
    }
}
