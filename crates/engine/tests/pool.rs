//! The model pool: a cap on loaded models and a memory budget, least recently used idle models
//! evicted first, pinned and busy models never, loads waiting for busy models, a typed error when
//! nothing can ever make room, and the idle TTL.

use std::path::Path;
use std::time::Duration;

use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_engine::{Engine, EngineError, GenerateRequest, GenerationParams, PoolConfig, Prompt};

fn write(dir: &Path, name: &str, layers: usize) -> std::path::PathBuf {
    let path = dir.join(name);
    write_tiny_model(&path, &TinySpec { layers, ..TinySpec::new(TinyFamily::Llama) }).unwrap();
    path
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path.join("model.safetensors")).unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn eviction_pinning_busy_models_and_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let small: Vec<_> = ["a", "b", "c", "d"].iter().map(|n| write(dir.path(), n, 2)).collect();
    let big = write(dir.path(), "big", 8);
    let s = size(&small[0]);
    assert!(size(&big) > 2 * s && size(&big) < 3 * s, "test sizing");
    // The idle TTL is long enough not to fire during the steps before its own check at the end.
    let config = PoolConfig {
        max_loaded_models: 3,
        memory_budget_bytes: Some(s * 7 / 2),
        idle_ttl: Some(Duration::from_secs(2)),
        dense_on_cpu: false,
    };
    let engine = Engine::start_with(config).unwrap();
    let h = engine.handle();
    let ids = |infos: Vec<mlx_manager_engine::ModelInfo>| infos.into_iter().map(|i| i.id).collect::<Vec<_>>();
    let generate = |model: &str, max_tokens: usize| {
        h.generate(GenerateRequest {
            model: model.into(),
            prompt: Prompt::Tokens(vec![1, 2, 3]),
            params: GenerationParams { max_tokens, ..GenerationParams::default() },
        })
        .unwrap()
    };

    // The cap: the least recently used idle model goes.
    for (id, path) in ["a", "b", "c"].iter().zip(&small) {
        h.load(*id, path).await.unwrap();
    }
    let mut stream = generate("a", 2);
    while stream.next().await.is_some() {}
    h.load("d", &small[3]).await.unwrap();
    assert_eq!(ids(h.list().await.unwrap()), ["a", "c", "d"], "b was least recently used");
    let a = h.list().await.unwrap().into_iter().find(|m| m.id == "a").unwrap();
    assert_eq!(a.requests_served, 1);
    // Loading a loaded model twice is one load.
    h.load("a", &small[0]).await.unwrap();
    assert_eq!(h.list().await.unwrap().len(), 3);
    for id in ["a", "c", "d"] {
        assert!(h.unload(id).await.unwrap());
    }

    // The budget, with a pinned model that must stay.
    let pinned = h.preload("p", &small[0]).await.unwrap();
    assert!(pinned.pinned);
    match h.load("big", &big).await {
        Err(EngineError::InsufficientMemory { model, needed_bytes, available_bytes }) => {
            assert_eq!(model, "big");
            assert!(needed_bytes > available_bytes);
        }
        other => panic!("expected insufficient memory, got {other:?}"),
    }
    assert_eq!(ids(h.list().await.unwrap()), ["p"]);
    h.unload("p").await.unwrap();
    h.load("big", &big).await.unwrap();

    // A busy model is not evicted: loads that need its room wait (in order) until its generation
    // ends, then succeed; a model that can never fit still fails at once.
    let mut busy = generate("big", 1_000_000);
    busy.next().await.unwrap().unwrap();
    let (h1, h2) = (h.clone(), h.clone());
    let (q_path, r_path) = (small[1].clone(), small[2].clone());
    let q = tokio::spawn(async move { h1.load("q", q_path).await });
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = tokio::spawn(async move { h2.load("r", r_path).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!q.is_finished() && !r.is_finished(), "the loads did not wait for the busy model");
    let too_big = write(dir.path(), "too-big", 24);
    assert!(matches!(h.load("too-big", &too_big).await, Err(EngineError::InsufficientMemory { .. })));
    assert!(busy.next().await.unwrap().is_ok(), "the busy model kept generating meanwhile");
    drop(busy);
    q.await.unwrap().unwrap();
    r.await.unwrap().unwrap();
    assert_eq!(ids(h.list().await.unwrap()), ["q", "r"], "the idle big model made room for both");
    for id in ["q", "r"] {
        h.unload(id).await.unwrap();
    }
    h.load("q", &small[1]).await.unwrap();

    // Idle TTL: unpinned models go after 2 s without requests, pinned ones stay.
    h.preload("kept", &small[2]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    assert_eq!(ids(h.list().await.unwrap()), ["kept"]);
}
