//! Unloading a model gives its memory back to the OS: the process's resident set grows by about
//! the weights' size on load and shrinks again on unload (measured on this process, with a
//! tolerance for allocator slack). Its own test binary: one engine, nothing else loaded.

use std::time::Duration;

use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_engine::{Engine, GenerateRequest, GenerationParams, Prompt};

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread")]
async fn unloading_returns_the_weights_memory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wide");
    let spec = TinySpec { hidden_size: 512, intermediate_size: 2048, layers: 6, ..TinySpec::new(TinyFamily::Llama) };
    write_tiny_model(&path, &spec).unwrap();
    let engine = Engine::start().unwrap();
    let h = engine.handle();

    let before = rss_bytes();
    let info = h.load("wide", &path).await.unwrap();
    let weights = info.weight_bytes as u64;
    assert!(weights > 50_000_000, "test sizing: {weights} bytes of weights");
    // Use it once so every buffer (weights, KV cache, temporaries) is live.
    let mut stream = h
        .generate(GenerateRequest {
            model: "wide".into(),
            prompt: Prompt::Tokens(vec![1, 2, 3, 4]),
            params: GenerationParams { max_tokens: 8, ..GenerationParams::default() },
        })
        .unwrap();
    while let Some(event) = stream.next().await {
        event.unwrap();
    }
    let loaded = rss_bytes();
    assert!(
        loaded > before + weights * 8 / 10,
        "loading grew RSS by {} for {weights} bytes of weights",
        loaded - before
    );

    assert!(h.unload("wide").await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = rss_bytes();
    assert!(
        after + weights * 8 / 10 < loaded,
        "unloading freed only {} of {weights} bytes (RSS {before} → {loaded} → {after})",
        loaded.saturating_sub(after)
    );
}
