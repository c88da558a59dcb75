//! Our engine against Python mlx-lm on the same fp32 model, side by side in one run: prompt
//! (prefill) and decode tokens per second, medians of several runs, and their ratios.
//!
//! `cargo bench -p mlx-manager-engine --bench engine_vs_mlx_lm` (scripts/bench-engine runs it with
//! the reference venv). Environment: BENCH_ROUNDS (default 3) × BENCH_RUNS (3) runs of each,
//! BENCH_PROMPT (128 tokens), BENCH_GEN (128 tokens), BENCH_HIDDEN (512), BENCH_LAYERS (4).

use std::path::Path;
use std::process::Command;

mod common;

use common::{bench_model, env_usize, median, python};
use mlx_manager_engine::{Engine, EngineHandle, GenerateRequest, GenerationEvent, GenerationParams, Prompt};

#[derive(Default)]
struct Speeds {
    prompt_tps: Vec<f64>,
    generation_tps: Vec<f64>,
}

fn ours(handle: &EngineHandle, prompt: &[u32], gen: usize, runs: usize, into: &mut Speeds) {
    let (p, g) = (&mut into.prompt_tps, &mut into.generation_tps);
    static RUN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    for run in 0..runs + 1 {
        let params = GenerationParams { max_tokens: gen, stop_token_ids: Vec::new(), ..GenerationParams::default() };
        // A different first token each run: the same work as mlx-lm's fresh runs, and nothing for
        // the engine's prompt cache to reuse.
        let mut prompt = prompt.to_vec();
        prompt[0] = 10 + RUN.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 400;
        let mut stream = handle
            .generate(GenerateRequest { model: "bench".into(), prompt: Prompt::Tokens(prompt), params })
            .expect("generate");
        while let Some(event) = stream.blocking_next() {
            if let GenerationEvent::Done { usage, .. } = event.expect("event") {
                assert_eq!(usage.completion_tokens, gen, "generation stopped early");
                if run > 0 {
                    p.push(usage.prompt_tps());
                    g.push(usage.generation_tps());
                }
            }
        }
    }
}

fn reference(path: &Path, prompt: &[u32], gen: usize, runs: usize, into: &mut Speeds) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/reference/mlx_lm_reference.py");
    let tokens: Vec<String> = prompt.iter().map(u32::to_string).collect();
    let out = Command::new(python())
        .arg(script)
        .args(["bench", "--model", path.to_str().expect("utf-8 path"), "--tokens", &tokens.join(",")])
        .args(["--max-tokens", &gen.to_string(), "--runs", &runs.to_string(), "--warmup", "1"])
        .output()
        .expect("python runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let runs = json["runs"].as_array().expect("runs");
    let get = |k: &str| runs.iter().map(|r| r[k].as_f64().expect("number")).collect::<Vec<_>>();
    into.prompt_tps.extend(get("prompt_tps"));
    into.generation_tps.extend(get("generation_tps"));
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let rounds = env_usize("BENCH_ROUNDS", 3);
    let runs = env_usize("BENCH_RUNS", 3);
    let prompt_len = env_usize("BENCH_PROMPT", 128);
    let gen = env_usize("BENCH_GEN", 128);
    let dir = tempfile::tempdir().expect("tempdir");
    let hidden = env_usize("BENCH_HIDDEN", 512);
    let layers = env_usize("BENCH_LAYERS", 4);
    let path = bench_model(dir.path(), hidden, layers);
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| 10 + (i * 37) % 400).collect();
    let engine = Engine::start().expect("engine");
    let handle = engine.handle();
    handle.load_blocking("bench", &path).expect("load");
    // Alternate the two so drift in machine speed hits both alike; each round warms up first.
    let (mut theirs, mut mine) = (Speeds::default(), Speeds::default());
    for _ in 0..rounds {
        reference(&path, &prompt, gen, runs, &mut theirs);
        ours(&handle, &prompt, gen, runs, &mut mine);
    }
    let ours = (median(mine.prompt_tps), median(mine.generation_tps));
    let reference = (median(theirs.prompt_tps), median(theirs.generation_tps));
    println!(
        "model: llama fp32, hidden {hidden}, {layers} layers, 8/4 heads; {prompt_len}-token prompt, {gen} generated; median of {} runs each, alternating",
        rounds * runs
    );
    println!("| | prompt tok/s | decode tok/s |");
    println!("|---|---:|---:|");
    println!("| mlx-manager engine | {:.0} | {:.1} |", ours.0, ours.1);
    println!("| mlx-lm 0.32.2 | {:.0} | {:.1} |", reference.0, reference.1);
    println!("| ratio (ours / mlx-lm) | {:.2}× | {:.2}× |", ours.0 / reference.0, ours.1 / reference.1);
}
