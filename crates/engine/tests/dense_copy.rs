//! Quantized models on the CPU run from a dequantized copy of their weights when it fits
//! (`PoolConfig::dense_on_cpu`): the copy holds exactly the numbers mlx-lm's `dequantize_model`
//! makes, so greedy output equals mlx-lm's on the dequantized model, for every kind of layer
//! (linear, tied embedding, MoE experts) and scale dtype; and a model whose copy would not fit
//! the budget keeps its packed weights (and mlx-lm's quantized numbers).

mod common;

use common::{reference, tokens, write_tiny, TinyModel};
use mlx_manager_engine::tiny::{TinyDtype, TinyFamily, TinySpec};
use mlx_manager_engine::{
    Engine, EngineHandle, GenerateRequest, GenerationEvent, GenerationParams, LoadState, PoolConfig,
};
use serde_json::json;

const PROMPT: &[u32] = &[5, 100, 200, 300, 17, 42, 99, 3, 8];
const MAX_TOKENS: usize = 40;

fn start(memory_budget_bytes: Option<u64>) -> Engine {
    start_dense(memory_budget_bytes, true)
}

fn start_dense(memory_budget_bytes: Option<u64>, dense_on_cpu: bool) -> Engine {
    Engine::start_with(PoolConfig { max_loaded_models: 8, memory_budget_bytes, idle_ttl: None, dense_on_cpu })
        .expect("engine starts")
}

async fn greedy_ids(h: &EngineHandle, model: &str) -> Vec<u32> {
    let params = GenerationParams { max_tokens: MAX_TOKENS, ..GenerationParams::default() };
    let mut stream = h.generate(GenerateRequest { model: model.into(), prompt: tokens(PROMPT), params }).unwrap();
    let mut ids = Vec::new();
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            GenerationEvent::Token { id, .. } => ids.push(id),
            GenerationEvent::Done { .. } => return ids,
            GenerationEvent::Started { .. } => {}
        }
    }
    panic!("stream ended without Done")
}

fn mlx_lm_greedy(m: &TinyModel, dequantize: bool) -> Vec<u32> {
    let prompt = PROMPT.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let path = m.path();
    let mut args = vec!["greedy", "--model", path.to_str().unwrap(), "--tokens", &prompt];
    let max = MAX_TOKENS.to_string();
    args.extend(["--max-tokens", &max]);
    if dequantize {
        args.push("--dequantize");
    }
    let theirs: Vec<u32> = serde_json::from_value(reference(&args)["tokens"].clone()).unwrap();
    assert!(theirs.len() >= 32, "mlx-lm produced only {} tokens", theirs.len());
    theirs
}

fn weight_file_bytes(m: &TinyModel) -> usize {
    std::fs::metadata(m.path().join("model.safetensors")).unwrap().len() as usize
}

fn quantized(family: TinyFamily, bits: u32, dtype: TinyDtype, tied: bool) -> TinyModel {
    let mut spec = TinySpec::new(family);
    spec.quantize = Some((bits, 64));
    spec.dtype = dtype;
    spec.tied = tied;
    write_tiny(spec)
}

#[tokio::test(flavor = "multi_thread")]
async fn quantized_models_run_dense_with_mlx_lm_dequantized_numbers() {
    let engine = start(None);
    let h = engine.handle();
    // A tied 4-bit model with fp32 scales (embedding and output head dense too), an 8-bit one
    // with bf16 scales, and mlx-lm's own Qwen3-MoE with 4-bit experts.
    let moe = write_tiny(TinySpec::new(TinyFamily::Qwen2));
    let config = json!({
        "model_type": "qwen3_moe", "hidden_size": 64, "num_hidden_layers": 4, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "head_dim": 16,
        "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64, "decoder_sparse_step": 1,
        "mlp_only_layers": [1], "norm_topk_prob": true, "rope_theta": 1000000.0, "tie_word_embeddings": false,
        "max_position_embeddings": 32768,
    })
    .to_string();
    let out = moe.path();
    assert_eq!(
        reference(&["make-model", "--out", out.to_str().unwrap(), "--config", &config, "--quantize", "4,64"])["ok"],
        true
    );
    let cases = [
        ("llama 4-bit, fp32 scales, tied", quantized(TinyFamily::Llama, 4, TinyDtype::F32, true)),
        ("qwen3 8-bit, bf16 scales", quantized(TinyFamily::Qwen3, 8, TinyDtype::Bf16, false)),
        ("qwen3_moe 4-bit experts", moe),
    ];
    for (name, m) in &cases {
        let info = h.load(&m.id, m.path()).await.expect("loads");
        // Dense: larger than the packed file (a 4-bit value with fp32 scales grows 6.4×, an
        // 8-bit one with bf16 scales 1.9×).
        assert!(
            2 * info.weight_bytes > 3 * weight_file_bytes(m),
            "{name}: {} weight bytes from a {}-byte file: not dequantized",
            info.weight_bytes,
            weight_file_bytes(m)
        );
        assert!(info.dequantized, "{name}: loaded dense but not reported as dequantized");
        let ours = greedy_ids(&h, &m.id).await;
        assert_eq!(ours, mlx_lm_greedy(m, true), "{name}: greedy tokens differ from mlx-lm's on the dequantized model");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_that_does_not_fit_keeps_the_packed_weights() {
    let m = quantized(TinyFamily::Llama, 4, TinyDtype::F32, false);
    // Room for the packed weights, not for a dense copy of them.
    let engine = start(Some(2 * weight_file_bytes(&m) as u64));
    let h = engine.handle();
    let info = h.load(&m.id, m.path()).await.expect("loads");
    assert!(info.weight_bytes <= weight_file_bytes(&m), "{} bytes: dequantized past the budget", info.weight_bytes);
    assert!(!info.dequantized, "packed weights reported as dequantized");
    assert_eq!(greedy_ids(&h, &m.id).await, mlx_lm_greedy(&m, false), "packed: mlx-lm's quantized numbers");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_pool_says_which_models_run_dequantized() {
    let m = quantized(TinyFamily::Llama, 4, TinyDtype::F32, false);
    let plain = write_tiny(TinySpec::new(TinyFamily::Qwen2));
    // The dense copy: the status (what `/admin/models` and the app's pool list show) says so,
    // beside the file's quantization.
    let engine = start(None);
    let h = engine.handle();
    assert!(h.load(&m.id, m.path()).await.expect("loads").dequantized);
    assert!(!h.load(&plain.id, plain.path()).await.expect("loads").dequantized, "an unquantized model has no copy");
    let status = h.status().await.unwrap();
    let of = |id: &str| status.loaded.iter().find(|l| l.id == id).map(|l| (l.quantization, l.dequantized));
    assert_eq!((of(&m.id), of(&plain.id)), (Some((Some((4, 64)), true)), Some((None, false))));
    // And the load's `Ready` (the loading-progress stream, the app's `model-loading` event).
    let ready = |h: &EngineHandle, id: &str| match h.load_state(id).borrow().clone() {
        LoadState::Ready { quantization, dequantized, .. } => (quantization, dequantized),
        other => panic!("{id}: {other:?}"),
    };
    assert_eq!((ready(&h, &m.id), ready(&h, &plain.id)), ((Some((4, 64)), true), (None, false)));

    drop(engine);

    // `serve --keep-quantized`: the packed weights, and it says so.
    let engine = start_dense(None, false);
    let h = engine.handle();
    let info = h.load(&m.id, m.path()).await.expect("loads");
    assert!(!info.dequantized);
    assert_eq!(ready(&h, &m.id), (Some((4, 64)), false));
    assert!(
        info.weight_bytes <= weight_file_bytes(&m),
        "{} bytes: dequantized with dense_on_cpu off",
        info.weight_bytes
    );
}
