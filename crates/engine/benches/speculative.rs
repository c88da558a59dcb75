//! What speculative decoding buys on this machine: decode tok/s of a target model alone and with
//! a draft proposing N tokens per step, alternating in one run, and the share of proposals the
//! target accepted. Greedy: both runs must produce the same tokens (checked).
//!
//! The models are random-weight, so the draft is made to agree with its target the way a
//! distilled draft does: the draft is a 2-layer model (tied embeddings), and the target is those
//! same two layers followed by six more (copies of them) whose output projections (attention's
//! `o_proj`, the MLP's `down_proj`) are scaled by BENCH_REFINE (0.5): the extra layers refine the
//! draft's prediction and sometimes change it, as a larger model sharing a small one's early
//! layers would. The acceptance rate printed says how often.
//!
//! `cargo bench -p mlx-manager-engine --bench speculative` (scripts/bench-engine runs it too).
//! Environment: BENCH_ROUNDS (3) × BENCH_RUNS (2), BENCH_GEN (128), BENCH_HIDDEN (512),
//! BENCH_DRAFT_TOKENS (3), BENCH_REFINE (0.5).

mod common;

use std::path::Path;

use common::{env_usize, median, python};
use mlx_manager_engine::tiny::{write_tiny_model, TinySpec};
use mlx_manager_engine::{Draft, Engine, EngineHandle, GenerateRequest, GenerationEvent, GenerationParams, Prompt};

/// Copies the model at `src` to `dst` with `layers` layers: the extra ones repeat the first ones,
/// their output projections scaled by `refine`.
const DEEPEN: &str = r#"
import json, shutil, sys
import mlx.core as mx
src, dst, layers, refine = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
shutil.copytree(src, dst)
weights = mx.load(f"{src}/model.safetensors")
config = json.load(open(f"{src}/config.json"))
n = config["num_hidden_layers"]
for i in range(n, layers):
    for key, value in list(weights.items()):
        prefix = f"model.layers.{i % n}."
        if key.startswith(prefix):
            scaled = "o_proj" in key or "down_proj" in key
            weights[key.replace(prefix, f"model.layers.{i}.")] = value * refine if scaled else value
mx.save_safetensors(f"{dst}/model.safetensors", weights)
config["num_hidden_layers"] = layers
json.dump(config, open(f"{dst}/config.json", "w"))
"#;

fn deepen(src: &Path, dst: &Path, layers: usize, refine: f64) {
    let status = std::process::Command::new(python())
        .args(["-c", DEEPEN])
        .arg(src)
        .arg(dst)
        .args([layers.to_string(), refine.to_string()])
        .status()
        .expect("python");
    assert!(status.success(), "deepening the draft into a target failed");
}

/// Decode tok/s of each run (after a warm-up), the tokens, and the draft's (proposed, accepted).
fn runs(
    handle: &EngineHandle,
    gen: usize,
    draft: Option<&Draft>,
    runs: usize,
) -> (Vec<f64>, Vec<Vec<u32>>, (usize, usize)) {
    let (mut tps, mut outputs, mut counts) = (Vec::new(), Vec::new(), (0, 0));
    for run in 0..runs + 1 {
        let params = GenerationParams { max_tokens: gen, draft: draft.cloned(), ..GenerationParams::default() };
        let prompt: Vec<u32> = (0..32u32).map(|i| 10 + (i * 37 + run as u32 * 11) % 400).collect();
        let mut stream = handle
            .generate(GenerateRequest { model: "target".into(), prompt: Prompt::Tokens(prompt), params })
            .expect("generate");
        let mut ids = Vec::new();
        while let Some(event) = stream.blocking_next() {
            match event.expect("event") {
                GenerationEvent::Token { id, .. } => ids.push(id),
                GenerationEvent::Done { usage, .. } => {
                    if run > 0 {
                        tps.push(usage.generation_tps());
                        let (p, a) = usage.draft_tokens.unwrap_or_default();
                        counts = (counts.0 + p, counts.1 + a);
                    }
                }
                GenerationEvent::Started { .. } => {}
            }
        }
        outputs.push(ids);
    }
    (tps, outputs, counts)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let (rounds, n) = (env_usize("BENCH_ROUNDS", 3), env_usize("BENCH_RUNS", 2));
    let (gen, hidden, k) =
        (env_usize("BENCH_GEN", 128), env_usize("BENCH_HIDDEN", 512), env_usize("BENCH_DRAFT_TOKENS", 3));
    let refine: f64 = std::env::var("BENCH_REFINE").ok().and_then(|v| v.parse().ok()).unwrap_or(0.5);
    let dir = tempfile::tempdir().expect("tempdir");
    let (draft_path, target_path) = (dir.path().join("draft"), dir.path().join("target"));
    write_tiny_model(&draft_path, &TinySpec { tied: true, ..TinySpec::bench(hidden, 2) }).expect("draft");
    deepen(&draft_path, &target_path, 8, refine);
    let engine = Engine::start().expect("engine");
    let handle = engine.handle();
    handle.load_blocking("target", &target_path).expect("target");
    handle.load_blocking("draft", &draft_path).expect("draft");
    let draft = Draft { model: "draft".into(), tokens: k };
    let (mut alone, mut with) = (Vec::new(), Vec::new());
    let mut counts = (0, 0);
    for _ in 0..rounds {
        let (tps, plain, _) = runs(&handle, gen, None, n);
        alone.extend(tps);
        let (tps, drafted, c) = runs(&handle, gen, Some(&draft), n);
        assert_eq!(plain, drafted, "greedy output with a draft differs from decoding alone");
        with.extend(tps);
        counts = (counts.0 + c.0, counts.1 + c.1);
    }
    let (a, w) = (median(alone), median(with));
    println!(
        "target: fp32 Llama {hidden} wide, 8 layers; draft: its first 2 layers (refine {refine}); {gen} tokens, greedy"
    );
    println!("| draft tokens | alone decode tok/s | with draft tok/s | speed-up | proposals accepted |");
    println!("|---:|---:|---:|---:|---:|");
    println!("| {k} | {a:.1} | {w:.1} | {:.2}× | {:.0} % |", w / a, 100.0 * counts.1 as f64 / counts.0.max(1) as f64);
}
