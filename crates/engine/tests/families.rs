//! Every model family against mlx-lm 0.32.2 itself: a tiny random model is built with
//! **mlx-lm's own class** for the family (tests/reference `make-model`, saved the way
//! `mlx_lm.convert` saves it, quantized variants included), then our engine's greedy tokens must
//! equal mlx-lm's for several prompts and lengths (past the sliding window and past the KV
//! cache's 256-position growth step), and the cases run together (with a repeat of the first)
//! must get what each gets alone.

mod common;

use common::*;
use mlx_manager_engine::tiny::{TinyFamily, TinySpec};
use serde_json::{json, Value};

/// A short prompt, a prompt longer than the sliding windows used here (8), and a long answer.
const CASES: &[(&[u32], usize)] = &[
    (&[5, 100, 200, 300, 17, 42, 99, 3, 8], 40),
    (&[7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97, 101, 103], 24),
    (&[9, 8, 7], 270),
];

/// The shape every family shares here; `family` adds its own fields.
fn config(model_type: &str, family: Value) -> Value {
    let mut c = json!({
        "model_type": model_type, "hidden_size": 64, "num_hidden_layers": 4, "intermediate_size": 128,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
    });
    c.as_object_mut().unwrap().extend(family.as_object().unwrap().clone());
    c
}

/// A folder with our tokenizer and mlx-lm's model for `config`, loaded into the engine.
async fn reference_model(config: &Value, extra: &[&str]) -> TinyModel {
    let m = write_tiny(TinySpec::new(TinyFamily::Qwen2));
    let path = m.path();
    let mut args = vec!["make-model", "--out", path.to_str().unwrap(), "--config"];
    let config = config.to_string();
    args.push(&config);
    args.extend_from_slice(extra);
    assert_eq!(reference(&args)["ok"], true);
    engine().load(&m.id, &path).await.expect("the mlx-lm model loads");
    m
}

async fn assert_family(name: &str, config: Value, extra: &[&str]) {
    assert_family_cases(name, config, extra, CASES).await;
}

/// [`assert_family`] on these cases.
async fn assert_family_cases(name: &str, config: Value, extra: &[&str], cases: &[(&[u32], usize)]) {
    let m = reference_model(&config, extra).await;
    let path = m.path();
    let mut alone = Vec::new();
    for (prompt, max_tokens) in cases {
        let ours = generate(&m.id, tokens(prompt), greedy(*max_tokens)).await.unwrap().ids;
        let ids: Vec<String> = prompt.iter().map(u32::to_string).collect();
        let theirs = reference(&[
            "greedy",
            "--model",
            path.to_str().unwrap(),
            "--tokens",
            &ids.join(","),
            "--max-tokens",
            &max_tokens.to_string(),
        ]);
        let theirs: Vec<u32> = serde_json::from_value(theirs["tokens"].clone()).unwrap();
        assert!(theirs.len() * 4 >= max_tokens * 3, "{name}: mlx-lm produced only {} tokens", theirs.len());
        assert_eq!(ours, theirs, "{name}: greedy tokens differ from mlx-lm for prompt {prompt:?}");
        alone.push(ours);
    }
    // Together: all cases plus a repeat of the first, at once.
    let streams: Vec<_> = cases
        .iter()
        .chain(&cases[..1])
        .map(|(prompt, n)| {
            engine()
                .generate(mlx_manager_engine::GenerateRequest {
                    model: m.id.clone(),
                    prompt: tokens(prompt),
                    params: greedy(*n),
                })
                .unwrap()
        })
        .collect();
    for (i, stream) in streams.into_iter().enumerate() {
        let together = collect(stream).await.ids;
        assert_eq!(together, alone[i % cases.len()], "{name}: case {i} run with the others differs from alone");
    }
}

#[tokio::test]
async fn phi3_longrope_partial_rotary() {
    let long_factor = [1.5, 2.0, 3.0, 4.0];
    let phi3 = json!({
        "partial_rotary_factor": 0.5, "max_position_embeddings": 131072, "original_max_position_embeddings": 4096,
        "rope_scaling": {"type": "longrope", "short_factor": [1.0, 1.1, 1.2, 1.3], "long_factor": long_factor},
    });
    assert_family("phi3 longrope fp32", config("phi3", phi3), &[]).await;
}

#[tokio::test]
async fn phi3_4bit() {
    assert_family("phi3 4-bit", config("phi3", json!({})), &["--quantize", "4,64"]).await;
}

#[tokio::test]
async fn gemma2_fp32() {
    let gemma2 = json!({"head_dim": 16, "query_pre_attn_scalar": 16});
    assert_family("gemma2 fp32", config("gemma2", gemma2), &[]).await;
}

#[tokio::test]
async fn gemma2_bf16_4bit() {
    let gemma2 = json!({"head_dim": 16, "query_pre_attn_scalar": 16, "attn_logit_softcapping": 20.0});
    assert_family("gemma2 bf16 4-bit", config("gemma2", gemma2), &["--dtype", "bfloat16", "--quantize", "4,64"]).await;
}

fn gemma3() -> Value {
    json!({
        "head_dim": 16, "query_pre_attn_scalar": 16, "sliding_window": 8, "sliding_window_pattern": 2,
        "rope_theta": 1000000.0, "rope_local_base_freq": 10000.0,
    })
}

#[tokio::test]
async fn gemma3_text_sliding_window_fp32() {
    assert_family("gemma3_text fp32", config("gemma3_text", gemma3()), &[]).await;
}

/// 16-bit sliding windows decoding far past the window. mlx-lm's rotating cache hands a single
/// query its window in ring (slot) order, and a softmax and a product summed in another order
/// round differently: with keys in temporal order instead, these seeds' greedy tokens left
/// mlx-lm's at step 70 (float16) and 180 (bfloat16) of the 270-token case.
#[tokio::test]
async fn gemma3_text_fp16_far_past_the_window() {
    let c = config("gemma3_text", gemma3());
    assert_family("gemma3_text fp16", c, &["--dtype", "float16", "--seed", "4"]).await;
}

#[tokio::test]
async fn gemma3_text_bf16_far_past_the_window() {
    let c = config("gemma3_text", gemma3());
    assert_family("gemma3_text bf16", c, &["--dtype", "bfloat16", "--seed", "3"]).await;
}

/// A bfloat16 window model's long prompt prefilled while another stream decodes answers as
/// mlx-lm does: pacing slices it (16 positions first, then slices of a measured size), each cut
/// by generate/prefill.rs's rule. Which slices pacing picks depends on timing, so the one-token
/// piece that once shifted the ring is made deterministically in that file's tests instead.
#[tokio::test]
async fn gemma3_text_bf16_prompt_sliced_while_another_stream_decodes() {
    let m = reference_model(&config("gemma3_text", gemma3()), &["--dtype", "bfloat16", "--seed", "3"]).await;
    let request = mlx_manager_engine::GenerateRequest {
        model: m.id.clone(),
        prompt: tokens(&[9, 8, 7]),
        params: greedy(1_000_000),
    };
    let mut running = engine().generate(request).unwrap();
    running.next().await.unwrap().unwrap();
    running.next().await.unwrap().unwrap();
    let reader = tokio::spawn(async move { while running.next().await.is_some() {} });
    let prompt: Vec<u32> = (0..600u32).map(|i| (i * 37 + 3) % 400 + 5).collect();
    let ours = generate(&m.id, tokens(&prompt), greedy(100)).await.unwrap().ids;
    assert!(!reader.is_finished(), "the other stream stopped decoding: nothing sliced the prompt");
    reader.abort();
    let ids: Vec<String> = prompt.iter().map(u32::to_string).collect();
    let path = m.path();
    let theirs =
        reference(&["greedy", "--model", path.to_str().unwrap(), "--tokens", &ids.join(","), "--max-tokens", "100"]);
    let theirs: Vec<u32> = serde_json::from_value(theirs["tokens"].clone()).unwrap();
    assert_eq!(ours, theirs, "a prompt prefilled in slices answers as mlx-lm does");
}

#[tokio::test]
async fn gemma3_text_untied_8bit() {
    let mut c = config("gemma3_text", gemma3());
    c["tie_word_embeddings"] = json!(false);
    assert_family("gemma3_text 8-bit", c, &["--quantize", "8,64"]).await;
}

fn qwen3_moe(moe_width: i32) -> Value {
    json!({
        "head_dim": 16, "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": moe_width,
        "decoder_sparse_step": 1, "mlp_only_layers": [1], "norm_topk_prob": true, "rope_theta": 1000000.0,
        "tie_word_embeddings": false, "max_position_embeddings": 32768,
    })
}

#[tokio::test]
async fn qwen3_moe_fp32() {
    assert_family("qwen3_moe fp32", config("qwen3_moe", qwen3_moe(32)), &[]).await;
}

/// 4-bit experts through `gather_qmm`, and the 8-bit router mlx-lm's own rule writes.
#[tokio::test]
async fn qwen3_moe_4bit_experts() {
    assert_family("qwen3_moe 4-bit", config("qwen3_moe", qwen3_moe(64)), &["--quantize", "4,64"]).await;
}

#[tokio::test]
async fn mixtral_fp32_and_4bit() {
    let mixtral = json!({"num_local_experts": 4, "num_experts_per_tok": 2, "rope_theta": 1000000.0});
    assert_family("mixtral fp32", config("mixtral", mixtral.clone()), &[]).await;
    assert_family("mixtral 4-bit", config("mixtral", mixtral), &["--quantize", "4,64"]).await;
}

fn gpt_oss() -> Value {
    json!({
        "head_dim": 16, "num_local_experts": 4, "num_experts_per_tok": 2, "sliding_window": 8,
        "rope_theta": 150000, "rms_norm_eps": 1e-5,
        "rope_scaling": {"rope_type": "yarn", "factor": 32.0, "beta_fast": 32.0, "beta_slow": 1.0,
            "truncate": false, "original_max_position_embeddings": 4096},
    })
}

/// Sinks, alternating sliding windows, YaRN, biased experts with the clamped SwiGLU.
#[tokio::test]
async fn gpt_oss_fp32() {
    assert_family("gpt_oss fp32", config("gpt_oss", gpt_oss()), &[]).await;
}

#[tokio::test]
async fn gpt_oss_4bit_experts_8bit_router() {
    assert_family("gpt_oss 4-bit", config("gpt_oss", gpt_oss()), &["--quantize", "4,64"]).await;
}

/// Gemma 4 as the small (E2B/E4B) checkpoints are: sliding and global layers with their own
/// head widths and proportional RoPE, the last two layers attending over the keys and values of
/// the first two (double-width MLPs there), per-layer inputs, logit soft-capping.
fn gemma4(extra: Value) -> Value {
    let mut c = json!({
        "head_dim": 16, "global_head_dim": 32, "sliding_window": 8, "sliding_window_pattern": 2,
        "num_kv_shared_layers": 2, "hidden_size_per_layer_input": 16, "vocab_size_per_layer_input": 1024,
        "final_logit_softcapping": 30.0, "max_position_embeddings": 4096,
        "rope_parameters": {
            "full_attention": {"partial_rotary_factor": 0.25, "rope_theta": 1000000.0, "rope_type": "proportional"},
            "sliding_attention": {"rope_theta": 10000.0, "rope_type": "default"},
        },
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

#[tokio::test]
async fn gemma4_text_kv_sharing_per_layer_inputs_fp32() {
    assert_family("gemma4_text fp32", config("gemma4_text", gemma4(json!({}))), &[]).await;
}

/// A prompt longer than the window, float16, far past it: the prompt's last position already
/// attends over the ring (mlx-lm runs it alone after the rest), in the sliding layers and in the
/// KV-shared layers reading theirs. With keys in temporal order this seed's greedy tokens left
/// mlx-lm's at step 51.
#[tokio::test]
async fn gemma4_text_kv_sharing_fp16_prompt_past_the_window() {
    let c = config("gemma4_text", gemma4(json!({"tie_word_embeddings": false})));
    let cases: &[(&[u32], usize)] = &[(&[9, 8, 7, 100, 200, 300, 17, 42, 99, 3, 8, 11, 13], 300), (&[9, 8, 7], 40)];
    assert_family_cases("gemma4_text fp16", c, &["--dtype", "float16", "--seed", "3"], cases).await;
}

/// The multimodal `gemma4` wrapper (weights under `language_model.`), 4-bit.
#[tokio::test]
async fn gemma4_nested_text_config_4bit() {
    let text = config("gemma4_text", gemma4(json!({})));
    let wrapper = json!({"model_type": "gemma4", "text_config": text});
    assert_family("gemma4 nested 4-bit", wrapper, &["--quantize", "4,64"]).await;
}

/// The large dense layout (31B): global layers whose values are their keys' projection, with
/// their own key/value heads; no per-layer inputs or KV sharing; bfloat16.
#[tokio::test]
async fn gemma4_text_k_eq_v_bf16() {
    let c = gemma4(json!({
        "attention_k_eq_v": true, "num_global_key_value_heads": 1, "hidden_size_per_layer_input": 0,
        "num_kv_shared_layers": 0,
    }));
    assert_family("gemma4_text k_eq_v bf16", config("gemma4_text", c), &["--dtype", "bfloat16"]).await;
}

/// The MoE layout (26B-A4B): a dense MLP and routed experts side by side, 4-bit experts and
/// mlx-lm's 8-bit router, an untied head.
#[tokio::test]
async fn gemma4_text_moe_untied_4bit() {
    let c = gemma4(json!({
        "enable_moe_block": true, "num_experts": 4, "top_k_experts": 2, "moe_intermediate_size": 64,
        "attention_k_eq_v": true, "num_global_key_value_heads": 1, "hidden_size_per_layer_input": 0,
        "num_kv_shared_layers": 0, "tie_word_embeddings": false,
    }));
    assert_family("gemma4_text moe 4-bit", config("gemma4_text", c), &["--quantize", "4,64"]).await;
}

/// Key/value bytes the engine counts for `id` now.
async fn kv_bytes(id: &str) -> usize {
    engine().list().await.unwrap().into_iter().find(|i| i.id == id).map(|i| i.kv_cache_bytes).unwrap()
}

/// Key/value bytes of a running generation after 300 and after 1000 tokens.
async fn kv_while_generating(id: &str) -> (usize, usize) {
    let request =
        mlx_manager_engine::GenerateRequest { model: id.to_string(), prompt: tokens(&[9, 8, 7]), params: greedy(2000) };
    let mut stream = engine().generate(request).unwrap();
    let mut at = Vec::new();
    for i in 1..=1000 {
        stream.next().await.unwrap().unwrap();
        if i == 300 || i == 1000 {
            at.push(kv_bytes(id).await);
        }
    }
    (at[0], at[1])
}

/// Sliding-window layers keep only their window: a model whose every layer slides holds the
/// same key/value memory at 1000 tokens as at 300, a full-attention twin's keeps growing.
#[tokio::test]
async fn sliding_window_layers_keep_bounded_key_value_memory() {
    // Gemma 3 layers are global every `sliding_window_pattern`-th: 100 makes all four slide, 1
    // none (mlx-lm builds both; only our engine runs them here).
    let mut sliding = config("gemma3_text", gemma3());
    sliding["sliding_window_pattern"] = json!(100);
    let mut full = sliding.clone();
    full["sliding_window_pattern"] = json!(1);
    let (s, f) = (reference_model(&sliding, &[]).await, reference_model(&full, &[]).await);
    let (s300, s1000) = kv_while_generating(&s.id).await;
    let (f300, f1000) = kv_while_generating(&f.id).await;
    assert_eq!(s300, s1000, "sliding-window memory grew from 300 to 1000 tokens");
    assert!(f1000 > f300 && f1000 >= 3 * s1000, "full attention: {f300} → {f1000} bytes, sliding {s1000}");
    // 4 layers · keys and values · [1, 2 kv heads, window − 1 + 256 positions, 16] · 4 bytes.
    assert!(s1000 <= 4 * 2 * 2 * (8 - 1 + 256) * 16 * 4, "{s1000} bytes for a window of 8");
}

/// The next turn of a conversation reuses the model's cache (and answers as mlx-lm does from
/// scratch); repeating a prompt the cache can no longer go back to (a sliding window moved past
/// it, a recurrent state cannot rewind) recomputes it, with the same answer.
async fn assert_prompt_cache_next_turn_and_recompute(name: &str, config: Value) {
    let m = reference_model(&config, &[]).await;
    let prompt: Vec<u32> = (0..300u32).map(|i| (i * 37 + 3) % 400 + 5).collect();
    let first = generate(&m.id, tokens(&prompt), greedy(12)).await.unwrap();
    let mut turn = prompt.clone();
    turn.extend(&first.ids);
    turn.extend([11, 12, 13, 14]);
    let next = generate(&m.id, tokens(&turn), greedy(12)).await.unwrap();
    assert!(next.usage.cached_tokens >= prompt.len(), "{name}: {} reused", next.usage.cached_tokens);
    let ids: Vec<String> = turn.iter().map(u32::to_string).collect();
    let path = m.path();
    let theirs =
        reference(&["greedy", "--model", path.to_str().unwrap(), "--tokens", &ids.join(","), "--max-tokens", "12"]);
    let theirs: Vec<u32> = serde_json::from_value(theirs["tokens"].clone()).unwrap();
    assert_eq!(next.ids, theirs, "{name}: the reused cache answers as mlx-lm does from scratch");
    // A long answer moves past the turn's end; the same turn again is recomputed.
    generate(&m.id, tokens(&turn), greedy(600)).await.unwrap();
    let again = generate(&m.id, tokens(&turn), greedy(12)).await.unwrap();
    assert_eq!(again.usage.cached_tokens, 0, "{name}: the cache cannot go back: recomputed");
    assert_eq!(again.ids, next.ids, "{name}");
}

#[tokio::test]
async fn sliding_window_prompt_cache_reuses_the_next_turn_and_recomputes_the_past() {
    assert_prompt_cache_next_turn_and_recompute("gpt_oss", config("gpt_oss", gpt_oss())).await;
}

fn qwen3_next() -> Value {
    json!({
        "head_dim": 16, "linear_num_value_heads": 4, "linear_num_key_heads": 2, "linear_key_head_dim": 16,
        "linear_value_head_dim": 16, "linear_conv_kernel_dim": 4, "num_experts": 4, "num_experts_per_tok": 2,
        "decoder_sparse_step": 1, "shared_expert_intermediate_size": 32, "mlp_only_layers": [],
        "moe_intermediate_size": 32, "rope_theta": 1000000.0, "partial_rotary_factor": 0.5,
        "max_position_embeddings": 4096, "full_attention_interval": 2, "norm_topk_prob": true,
    })
}

/// Hybrid: gated delta linear attention (recurrent state, causal convolution) alternating with
/// gated full attention, routed experts with a gated shared expert.
#[tokio::test]
async fn qwen3_next_hybrid_fp32() {
    assert_family("qwen3_next fp32", config("qwen3_next", qwen3_next()), &[]).await;
}

#[tokio::test]
async fn qwen3_next_4bit() {
    assert_family("qwen3_next 4-bit", config("qwen3_next", qwen3_next()), &["--quantize", "4,64"]).await;
}

#[tokio::test]
async fn recurrent_prompt_cache_reuses_the_next_turn_and_recomputes_the_past() {
    assert_prompt_cache_next_turn_and_recompute("qwen3_next", config("qwen3_next", qwen3_next())).await;
}

fn qwen3_5(moe: bool) -> Value {
    let mut c = json!({
        "head_dim": 16, "linear_num_value_heads": 4, "linear_num_key_heads": 2, "linear_key_head_dim": 16,
        "linear_value_head_dim": 16, "linear_conv_kernel_dim": 4, "full_attention_interval": 2,
        "max_position_embeddings": 4096,
        "rope_parameters": {"type": "default", "mrope_section": [2, 1, 1], "rope_theta": 1000000.0, "partial_rotary_factor": 0.5},
    });
    if moe {
        let experts = json!({"num_experts": 4, "num_experts_per_tok": 2, "shared_expert_intermediate_size": 32, "moe_intermediate_size": 32});
        c.as_object_mut().unwrap().extend(experts.as_object().unwrap().clone());
    }
    c
}

/// Qwen3.5: separate gated delta projections, weights under `language_model.`, dense and MoE.
#[tokio::test]
async fn qwen3_5_dense_and_moe() {
    assert_family("qwen3_5 dense fp32", config("qwen3_5", qwen3_5(false)), &[]).await;
    assert_family("qwen3_5_moe 4-bit", config("qwen3_5_moe", qwen3_5(true)), &["--quantize", "4,64"]).await;
}

/// Llama with `layer_types`: the sliding layers see only their window, as in mlx-lm.
/// 16-bit logits: greedy picks the maximum of the normalised log-probabilities, as mlx-lm does
/// (normalising can round two logits to a tie that the raw maximum would break differently).
#[tokio::test]
async fn llama_bf16_greedy_breaks_ties_as_mlx_lm() {
    assert_family("llama bf16", config("llama", json!({"tie_word_embeddings": false})), &["--dtype", "bfloat16"]).await;
}

#[tokio::test]
async fn llama_with_sliding_layer_types() {
    let llama = json!({
        "head_dim": 16, "rope_theta": 10000.0, "sliding_window": 8,
        "layer_types": ["sliding_attention", "full_attention", "sliding_attention", "full_attention"],
    });
    assert_family("llama layer_types", config("llama", llama), &[]).await;
}

/// KV-shared layers keep no cache of their own: the prompt cache still reuses the next turn and
/// recomputes what the sliding window dropped.
#[tokio::test]
async fn gemma4_kv_shared_prompt_cache_reuses_the_next_turn_and_recomputes_the_past() {
    assert_prompt_cache_next_turn_and_recompute("gemma4_text", config("gemma4_text", gemma4(json!({})))).await;
}

fn deepseek_v3(extra: Value) -> Value {
    let mut c = json!({
        "q_lora_rank": 32, "kv_lora_rank": 64, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32,
        "n_routed_experts": 4, "num_experts_per_tok": 2, "n_shared_experts": 1, "moe_intermediate_size": 32,
        "first_k_dense_replace": 1, "n_group": 2, "topk_group": 1, "routed_scaling_factor": 2.5,
        "norm_topk_prob": true, "rope_theta": 10000.0, "max_position_embeddings": 4096,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024,
            "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 1.0},
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

/// Multi-head latent attention (low-rank queries, the latent as the cache, interleaved YaRN
/// RoPE), grouped sigmoid routing with a correction bias, a shared expert, a dense first layer.
#[tokio::test]
async fn deepseek_v3_latent_attention_fp32() {
    assert_family("deepseek_v3 fp32", config("deepseek_v3", deepseek_v3(json!({}))), &[]).await;
}

/// Full-rank queries, 4-bit (latent projections, experts), one expert group.
#[tokio::test]
async fn deepseek_v3_4bit() {
    let c =
        deepseek_v3(json!({"q_lora_rank": null, "moe_intermediate_size": 64, "n_group": 1, "qk_nope_head_dim": 64}));
    assert_family("deepseek_v3 4-bit", config("deepseek_v3", c), &["--quantize", "4,64"]).await;
}

/// Kimi K2.5: DeepSeek-V3's text model nested under `text_config` (mlx-lm's `kimi_k25` class,
/// weights under `language_model.`), fp32 and 4-bit.
#[tokio::test]
async fn kimi_k25_nested_deepseek_v3_fp32_and_4bit() {
    let text = config("kimi_k2", deepseek_v3(json!({})));
    let wrapper = json!({"model_type": "kimi_k25", "text_config": text});
    assert_family("kimi_k25 fp32", wrapper.clone(), &[]).await;
    let text = config("kimi_k2", deepseek_v3(json!({"moe_intermediate_size": 64})));
    let wrapper = json!({"model_type": "kimi_k25", "text_config": text});
    assert_family("kimi_k25 4-bit", wrapper, &["--quantize", "4,64"]).await;
}

fn deepseek_v2(extra: Value) -> Value {
    let mut c = json!({
        "q_lora_rank": 32, "kv_lora_rank": 64, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 16,
        "n_routed_experts": 8, "num_experts_per_tok": 3, "n_shared_experts": 1, "moe_intermediate_size": 32,
        "first_k_dense_replace": 1, "topk_method": "group_limited_greedy", "n_group": 4, "topk_group": 2,
        "routed_scaling_factor": 2.5, "rope_theta": 10000.0, "max_position_embeddings": 4096,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 1024,
            "beta_fast": 32, "beta_slow": 1, "mscale": 1.0, "mscale_all_dim": 0.8},
    });
    c.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    c
}

/// DeepSeek-V2: latent attention taken out to per-head keys and values by one `kv_b_proj`
/// (values narrower than keys; YaRN with an input scale), softmax routing within the best expert
/// groups times the scaling factor, a shared expert, a dense first layer.
#[tokio::test]
async fn deepseek_v2_group_limited_greedy_fp32() {
    assert_family("deepseek_v2 fp32", config("deepseek_v2", deepseek_v2(json!({}))), &[]).await;
}

/// Full-rank queries, greedy routing over all experts, 4-bit (projections and experts).
#[tokio::test]
async fn deepseek_v2_greedy_4bit() {
    let c = deepseek_v2(json!({
        "q_lora_rank": null, "topk_method": "greedy", "moe_intermediate_size": 64, "routed_scaling_factor": 1.0,
    }));
    assert_family("deepseek_v2 4-bit", config("deepseek_v2", c), &["--quantize", "4,64"]).await;
}
