//! The per-model prompt cache: a request that starts like the model's last finished sequence (a
//! repeated prompt, the next turn of a conversation) reuses those keys and values — reported as
//! `cached_tokens` — and produces the same tokens as without the cache.

mod common;

use common::*;
use mlx_manager_engine::tiny::TinyFamily;

/// A prompt of `n` tokens (ids stay inside the tiny vocabulary).
fn long_prompt(n: usize, salt: u32) -> Vec<u32> {
    (0..n as u32).map(|i| (i * 37 + salt) % 400 + 5).collect()
}

#[tokio::test]
async fn repeated_and_extended_prompts_reuse_the_cache_with_identical_output() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let prompt = long_prompt(600, 3);

    let first = generate(&m.id, tokens(&prompt), greedy(16)).await.unwrap();
    assert_eq!(first.usage.cached_tokens, 0, "nothing cached yet");
    let again = generate(&m.id, tokens(&prompt), greedy(16)).await.unwrap();
    assert_eq!(again.usage.cached_tokens, prompt.len() - 1, "all but the last prompt token reused");
    assert_eq!(again.ids, first.ids, "same tokens as the uncached run");

    // The next turn: the previous prompt, the answer, and a new message.
    let mut turn = prompt.clone();
    turn.extend(&first.ids);
    turn.extend(long_prompt(40, 11));
    let cached = generate(&m.id, tokens(&turn), greedy(16)).await.unwrap();
    assert!(cached.usage.cached_tokens >= prompt.len(), "{} reused", cached.usage.cached_tokens);

    // The same turn computed from scratch: another model instance with the same weights.
    let fresh_model = load_tiny(spec(TinyFamily::Qwen2)).await;
    let fresh = generate(&fresh_model.id, tokens(&turn), greedy(16)).await.unwrap();
    assert_eq!(fresh.usage.cached_tokens, 0);
    assert_eq!(cached.ids, fresh.ids, "reusing the cache does not change the answer");

    // A different beginning does not reuse anything; short shared beginnings are recomputed.
    let other = generate(&m.id, tokens(&long_prompt(600, 5)), greedy(4)).await.unwrap();
    assert_eq!(other.usage.cached_tokens, 0);
    let short = generate(&m.id, tokens(&prompt[..100]), greedy(4)).await.unwrap();
    assert_eq!(short.usage.cached_tokens, 0, "below the reuse threshold");
}

#[tokio::test]
async fn the_kept_cache_counts_in_the_model_s_memory_and_goes_with_it() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    generate(&m.id, tokens(&long_prompt(300, 1)), greedy(4)).await.unwrap();
    let info = engine().list().await.unwrap().into_iter().find(|i| i.id == m.id).unwrap();
    assert!(info.kv_cache_bytes > 0, "the last sequence's keys and values are kept and counted");
    engine().unload(&m.id).await.unwrap();
    engine().load(&m.id, m.path()).await.unwrap();
    let again = generate(&m.id, tokens(&long_prompt(300, 1)), greedy(4)).await.unwrap();
    assert_eq!(again.usage.cached_tokens, 0, "unloading dropped it");
}

#[tokio::test(flavor = "multi_thread")]
async fn kept_caches_make_room_before_any_model_is_evicted() {
    use mlx_manager_engine::tiny::write_tiny_model;
    use mlx_manager_engine::{Engine, GenerateRequest, PoolConfig};
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    write_tiny_model(&a, &spec(TinyFamily::Llama)).unwrap();
    write_tiny_model(&b, &spec(TinyFamily::Llama)).unwrap();
    let s = std::fs::metadata(a.join("model.safetensors")).unwrap().len();
    // Room for both models' weights, not for both and a's kept cache (≈ 256 KB for 300 tokens).
    let config = PoolConfig {
        max_loaded_models: 8,
        memory_budget_bytes: Some(2 * s + 64 * 1024),
        idle_ttl: None,
        dense_on_cpu: false,
    };
    let engine = Engine::start_with(config).unwrap();
    let h = engine.handle();
    let run = |prompt: Vec<u32>| {
        let h = h.clone();
        async move {
            let request = GenerateRequest { model: "a".into(), prompt: tokens(&prompt), params: greedy(4) };
            let mut stream = h.generate(request).unwrap();
            let mut cached = None;
            while let Some(event) = stream.next().await {
                if let mlx_manager_engine::GenerationEvent::Done { usage, .. } = event.unwrap() {
                    cached = Some(usage.cached_tokens);
                }
            }
            cached.unwrap()
        }
    };
    h.load("a", &a).await.unwrap();
    run(long_prompt(300, 2)).await;
    let kept = h.list().await.unwrap().into_iter().find(|m| m.id == "a").unwrap().kv_cache_bytes;
    assert!(kept > 64 * 1024, "a keeps its cache ({kept} bytes)");
    h.load("b", &b).await.unwrap();
    let loaded: Vec<String> = h.list().await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(loaded, ["a", "b"], "the cache went, not model a");
    assert_eq!(run(long_prompt(300, 2)).await, 0, "a's cache was dropped to make room");
}
