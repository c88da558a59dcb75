//! Our engine against Python mlx-lm on the same models (dense, 4-bit MoE, hybrid), side by side
//! in one run: prompt
//! (prefill) and decode tokens per second, medians of several runs, and their ratios.
//!
//! `cargo bench -p mlx-manager-engine --bench engine_vs_mlx_lm` (scripts/bench-engine runs it with
//! the reference venv). Environment: BENCH_ROUNDS (default 3) × BENCH_RUNS (3) runs of each,
//! BENCH_PROMPT (128 tokens), BENCH_GEN (128 tokens), BENCH_HIDDEN (512), BENCH_LAYERS (4),
//! BENCH_MODELS (dense,moe,hybrid).

use std::path::Path;
use std::process::Command;

mod common;

use common::{bench_model, env_usize, family_model, median, python};
use mlx_manager_engine::{Engine, EngineHandle, GenerateRequest, GenerationEvent, GenerationParams, Prompt};
use serde_json::json;

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

/// One model's medians: ours and mlx-lm's (prompt, decode).
struct Row {
    name: String,
    ours: (f64, f64),
    reference: (f64, f64),
}

fn compare(name: &str, path: &Path, prompt: &[u32], gen: usize, rounds: usize, runs: usize) -> Row {
    let engine = Engine::start().expect("engine");
    let handle = engine.handle();
    handle.load_blocking("bench", path).expect("load");
    // Alternate the two so drift in machine speed hits both alike; each round warms up first.
    let (mut theirs, mut mine) = (Speeds::default(), Speeds::default());
    for _ in 0..rounds {
        reference(path, prompt, gen, runs, &mut theirs);
        ours(&handle, prompt, gen, runs, &mut mine);
    }
    Row {
        name: name.to_string(),
        ours: (median(mine.prompt_tps), median(mine.generation_tps)),
        reference: (median(theirs.prompt_tps), median(theirs.generation_tps)),
    }
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
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| 10 + (i * 37) % 400).collect();
    // Which models (BENCH_MODELS, comma-separated): the dense Llama, a 4-bit Mixture-of-Experts
    // (Qwen3-MoE: 8 experts, top 2, experts half the MLP width) and a hybrid (Qwen3-Next: gated
    // delta linear attention in every other layer, 8 experts with a shared one), all at the
    // bench widths.
    let wanted = std::env::var("BENCH_MODELS").unwrap_or_else(|_| "dense,moe,hybrid".into());
    let mut rows = Vec::new();
    for which in wanted.split(',') {
        let (name, path) = match which {
            "dense" => ("llama fp32", bench_model(dir.path(), hidden, layers)),
            "moe" => {
                let experts =
                    json!({"num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": hidden * 11 / 8});
                (
                    "qwen3_moe 4-bit, 8 experts top 2",
                    family_model(dir.path(), "qwen3_moe", hidden, layers, Some(4), experts),
                )
            }
            "hybrid" => {
                let hybrid = json!({
                    "linear_num_value_heads": 8, "linear_num_key_heads": 4, "linear_key_head_dim": 64,
                    "linear_value_head_dim": 64, "num_experts": 8, "num_experts_per_tok": 2,
                    "moe_intermediate_size": hidden * 11 / 8, "shared_expert_intermediate_size": hidden * 11 / 8,
                });
                ("qwen3_next fp32 (hybrid + MoE)", family_model(dir.path(), "qwen3_next", hidden, layers, None, hybrid))
            }
            other => panic!("unknown BENCH_MODELS entry `{other}` (dense, moe, hybrid)"),
        };
        rows.push(compare(name, &path, &prompt, gen, rounds, runs));
    }
    println!(
        "hidden {hidden}, {layers} layers, 8/4 heads, vocabulary 2048; {prompt_len}-token prompt, {gen} generated; median of {} runs each, alternating",
        rounds * runs
    );
    println!(
        "| model | ours prompt tok/s | mlx-lm prompt tok/s | ratio | ours decode tok/s | mlx-lm decode tok/s | ratio |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {:.0} | {:.0} | {:.2}× | {:.1} | {:.1} | {:.2}× |",
            r.name,
            r.ours.0,
            r.reference.0,
            r.ours.0 / r.reference.0,
            r.ours.1,
            r.reference.1,
            r.ours.1 / r.reference.1
        );
    }
}
