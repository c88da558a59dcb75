//! What a grammar costs: decode tok/s of the same model generating freely and under a JSON
//! Schema constraint (llguidance masks), alternating in one run, on the tiny test model and the
//! 512-wide bench model; the difference per token is the constraint's overhead (mask
//! computation not hidden behind the forward pass, plus applying it).
//!
//! `cargo bench -p mlx-manager-engine --bench constrained_vs_free` (scripts/bench-engine runs it
//! too). Environment: BENCH_ROUNDS (default 3) × BENCH_RUNS (3), BENCH_PROMPT (64), BENCH_GEN
//! (128), BENCH_LAYERS (4).

mod common;

use common::{bench_model, env_usize, median};
use mlx_manager_engine::{Engine, EngineHandle, GenerateRequest, GenerationEvent, GenerationParams, Grammar, Prompt};
use serde_json::json;

/// A schema the output cannot finish before `gen` tokens: one long string.
fn schema() -> serde_json::Value {
    json!({"type": "object", "properties": {"text": {"type": "string", "minLength": 100000}}, "required": ["text"]})
}

fn decode_tps(handle: &EngineHandle, prompt: &[u32], gen: usize, grammar: Option<Grammar>, runs: usize) -> Vec<f64> {
    let mut out = Vec::new();
    for run in 0..runs + 1 {
        let params = GenerationParams { max_tokens: gen, grammar: grammar.clone(), ..GenerationParams::default() };
        let mut prompt = prompt.to_vec();
        prompt[0] = 10 + run as u32;
        let mut stream = handle
            .generate(GenerateRequest { model: "bench".into(), prompt: Prompt::Tokens(prompt), params })
            .expect("generate");
        while let Some(event) = stream.blocking_next() {
            if let GenerationEvent::Done { usage, .. } = event.expect("event") {
                assert_eq!(usage.completion_tokens, gen, "generation stopped early");
                if run > 0 {
                    out.push(usage.generation_tps());
                }
            }
        }
    }
    out
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (rounds, runs) = (env_usize("BENCH_ROUNDS", 3), env_usize("BENCH_RUNS", 3));
    let (prompt_len, gen, layers) =
        (env_usize("BENCH_PROMPT", 64), env_usize("BENCH_GEN", 128), env_usize("BENCH_LAYERS", 4));
    let prompt: Vec<u32> = (0..prompt_len as u32).map(|i| 10 + (i * 37) % 400).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    println!("{prompt_len}-token prompt, {gen} tokens generated; median of {} runs each, alternating", rounds * runs);
    println!("| model | free decode tok/s | JSON Schema decode tok/s | ratio | overhead per token |");
    println!("|---|---:|---:|---:|---:|");
    for hidden in [64, 512] {
        let path = bench_model(dir.path(), hidden, layers);
        let engine = Engine::start().expect("engine");
        let handle = engine.handle();
        handle.load_blocking("bench", &path).expect("load");
        let (mut free, mut constrained) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            free.extend(decode_tps(&handle, &prompt, gen, None, runs));
            constrained.extend(decode_tps(&handle, &prompt, gen, Some(Grammar::JsonSchema(schema())), runs));
        }
        let (f, c) = (median(free), median(constrained));
        let overhead_us = (1.0 / c - 1.0 / f) * 1e6;
        println!(
            "| llama fp32, hidden {hidden}, {layers} layers | {f:.1} | {c:.1} | {:.2}× | {overhead_us:.0} µs |",
            c / f
        );
    }
}
