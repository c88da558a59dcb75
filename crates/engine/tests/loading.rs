//! Loading model folders: every family, dtype and quantization, sharded checkpoints, and a typed
//! error naming the file and tensor for every kind of broken folder.

mod common;

use std::fs;

use common::*;
use mlx_manager_engine::tiny::{TinyDtype, TinyFamily};
use mlx_manager_engine::{EngineError, FinishReason};

#[tokio::test]
async fn every_family_dtype_and_quantization_loads_and_generates() {
    let cases = [
        (TinyFamily::Llama, TinyDtype::F32, None, false, "float32"),
        (TinyFamily::Llama, TinyDtype::Bf16, None, true, "bfloat16"),
        (TinyFamily::Qwen2, TinyDtype::F16, None, false, "float16"),
        (TinyFamily::Qwen3, TinyDtype::F32, Some((4, 64)), false, "float32"),
        (TinyFamily::Qwen2, TinyDtype::Bf16, Some((8, 32)), true, "bfloat16"),
        (TinyFamily::Llama, TinyDtype::F16, Some((4, 32)), true, "float16"),
    ];
    for (family, dtype, quantize, tied, dtype_name) in cases {
        let mut s = spec(family);
        s.dtype = dtype;
        s.quantize = quantize;
        s.tied = tied;
        let m = write_tiny(s);
        let info =
            engine().load(&m.id, m.path()).await.unwrap_or_else(|e| panic!("{family:?} {dtype:?} {quantize:?}: {e}"));
        assert_eq!(info.dtype, dtype_name);
        assert_eq!(info.quantization, quantize.map(|(b, g)| (b as i32, g as i32)));
        assert!(info.weight_bytes > 10_000, "{info:?}");
        let out = generate(&m.id, tokens(&[10, 20, 30]), greedy(12)).await.unwrap();
        assert_eq!(out.ids.len(), 12, "{family:?} {dtype:?} {quantize:?} stopped early");
        assert_eq!(out.finish, FinishReason::Length);
        assert_eq!(out.usage.prompt_tokens, 3);
        assert_eq!(out.usage.completion_tokens, 12);
        assert!(engine().unload(&m.id).await.unwrap());
    }
}

#[tokio::test]
async fn quantized_weights_are_smaller_than_float_ones() {
    let f32_model = load_tiny(spec(TinyFamily::Llama)).await;
    let mut s = spec(TinyFamily::Llama);
    s.quantize = Some((4, 64));
    let q4 = load_tiny(s).await;
    let loaded = engine().list().await.unwrap();
    let bytes = |id: &str| loaded.iter().find(|m| m.id == id).unwrap().weight_bytes;
    assert!(bytes(&q4.id) * 4 < bytes(&f32_model.id), "{} vs {}", bytes(&q4.id), bytes(&f32_model.id));
}

#[tokio::test]
async fn sharded_checkpoint_equals_single_file() {
    let single = load_tiny(spec(TinyFamily::Qwen2)).await;
    let mut s = spec(TinyFamily::Qwen2);
    s.shards = 3;
    let sharded = load_tiny(s).await;
    assert!(sharded.path().join("model.safetensors.index.json").is_file());
    let a = generate(&single.id, tokens(&[1, 2, 3, 4]), greedy(16)).await.unwrap();
    let b = generate(&sharded.id, tokens(&[1, 2, 3, 4]), greedy(16)).await.unwrap();
    assert_eq!(a.ids, b.ids);
}

#[test]
fn generator_is_deterministic_from_its_seed() {
    let a = write_tiny(spec(TinyFamily::Llama));
    let b = write_tiny(spec(TinyFamily::Llama));
    let mut other = spec(TinyFamily::Llama);
    other.seed = 1;
    let c = write_tiny(other);
    for file in ["model.safetensors", "tokenizer.json", "config.json", "tokenizer_config.json"] {
        assert_eq!(fs::read(a.path().join(file)).unwrap(), fs::read(b.path().join(file)).unwrap(), "{file} differs");
    }
    assert_ne!(
        fs::read(a.path().join("model.safetensors")).unwrap(),
        fs::read(c.path().join("model.safetensors")).unwrap()
    );
}

async fn load_err(m: &TinyModel) -> EngineError {
    engine().load(&m.id, m.path()).await.expect_err("loading must fail")
}

fn edit_config(m: &TinyModel, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let path = m.path().join("config.json");
    let mut cfg: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    edit(cfg.as_object_mut().unwrap());
    fs::write(&path, serde_json::to_vec(&cfg).unwrap()).unwrap();
}

#[tokio::test]
async fn truncated_safetensors_is_a_corrupt_weights_error_naming_the_file() {
    let m = write_tiny(spec(TinyFamily::Llama));
    let file = m.path().join("model.safetensors");
    let bytes = fs::read(&file).unwrap();
    fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    match load_err(&m).await {
        EngineError::CorruptWeights { path, .. } => assert_eq!(path, file),
        other => panic!("unexpected {other:?}"),
    }
}

/// The weights are read into memory at load: a weight file replaced with other bytes or cut short
/// while the model is loaded (a re-download, a disk clean-up) neither crashes the process nor
/// changes its answers; loading the damaged folder again is a typed error.
#[tokio::test]
async fn weights_overwritten_or_truncated_after_load_change_nothing_and_crash_nothing() {
    let m = load_tiny(spec(TinyFamily::Qwen3)).await;
    let before = generate(&m.id, tokens(&[5, 100, 200, 300]), greedy(12)).await.unwrap().ids;
    let file = m.path().join("model.safetensors");
    let len = fs::metadata(&file).unwrap().len();
    // Overwrite the data in place (same length), then cut the file in half.
    let mut bytes = fs::read(&file).unwrap();
    let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    bytes[header..].iter_mut().for_each(|b| *b = 0x7f);
    fs::write(&file, &bytes).unwrap();
    assert_eq!(generate(&m.id, tokens(&[5, 100, 200, 300]), greedy(12)).await.unwrap().ids, before);
    fs::OpenOptions::new().write(true).open(&file).unwrap().set_len(len / 2).unwrap();
    assert_eq!(generate(&m.id, tokens(&[5, 100, 200, 300]), greedy(12)).await.unwrap().ids, before);
    match engine().load(format!("{}-again", m.id), m.path()).await.expect_err("a truncated folder fails to load") {
        EngineError::CorruptWeights { path, .. } => assert_eq!(path, file),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn garbage_safetensors_header_is_a_corrupt_weights_error() {
    let m = write_tiny(spec(TinyFamily::Qwen2));
    fs::write(m.path().join("model.safetensors"), b"this is not a safetensors file at all").unwrap();
    assert!(matches!(load_err(&m).await, EngineError::CorruptWeights { .. }));
}

#[tokio::test]
async fn missing_tokenizer_is_a_tokenizer_error() {
    let m = write_tiny(spec(TinyFamily::Llama));
    fs::remove_file(m.path().join("tokenizer.json")).unwrap();
    match load_err(&m).await {
        EngineError::Tokenizer { path, message } => {
            assert!(path.ends_with("tokenizer.json"));
            assert!(message.contains("not found"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn unknown_architecture_is_typed() {
    let m = write_tiny(spec(TinyFamily::Llama));
    edit_config(&m, |c| {
        c.insert("model_type".into(), "mamba".into());
    });
    match load_err(&m).await {
        EngineError::UnsupportedArchitecture { model_type, .. } => assert_eq!(model_type, "mamba"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn wrong_shapes_name_the_tensor() {
    let m = write_tiny(spec(TinyFamily::Qwen3));
    edit_config(&m, |c| {
        c.insert("intermediate_size".into(), 96.into());
    });
    match load_err(&m).await {
        EngineError::TensorShape { tensor, expected, actual, path } => {
            assert_eq!(tensor, "model.layers.0.mlp.gate_proj.weight");
            assert_eq!(expected, vec![96, 64]);
            assert_eq!(actual, vec![128, 64]);
            assert!(path.ends_with("model.safetensors"));
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn missing_and_unexpected_tensors_are_named() {
    let m = write_tiny(spec(TinyFamily::Llama));
    edit_config(&m, |c| {
        c.insert("num_hidden_layers".into(), 3.into());
    });
    match load_err(&m).await {
        EngineError::MissingTensor { tensor, .. } => assert!(tensor.starts_with("model.layers.2."), "{tensor}"),
        other => panic!("unexpected {other:?}"),
    }
    let m = write_tiny(spec(TinyFamily::Llama));
    edit_config(&m, |c| {
        c.insert("num_hidden_layers".into(), 1.into());
    });
    match load_err(&m).await {
        EngineError::UnexpectedTensor { tensor, .. } => assert!(tensor.starts_with("model.layers.1."), "{tensor}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn quantized_tensors_without_quantization_config_are_rejected() {
    let mut s = spec(TinyFamily::Qwen2);
    s.quantize = Some((4, 64));
    let m = write_tiny(s);
    edit_config(&m, |c| {
        c.remove("quantization");
    });
    assert!(matches!(load_err(&m).await, EngineError::InvalidConfig { .. }));
}

#[tokio::test]
async fn generating_with_an_unknown_model_is_model_not_found() {
    let err = generate("no-such-model", tokens(&[1]), greedy(1)).await.unwrap_err();
    assert!(matches!(err, EngineError::ModelNotFound { ref model } if model == "no-such-model"));
}

#[tokio::test]
async fn mistral_configs_run_the_llama_graph() {
    let llama = load_tiny(spec(TinyFamily::Llama)).await;
    let mistral = write_tiny(spec(TinyFamily::Llama));
    edit_config(&mistral, |c| {
        c.insert("model_type".into(), "mistral".into());
    });
    let info = engine().load(&mistral.id, mistral.path()).await.unwrap();
    assert_eq!(info.model_type, "mistral");
    let a = generate(&llama.id, tokens(&[3, 4, 5]), greedy(16)).await.unwrap();
    let b = generate(&mistral.id, tokens(&[3, 4, 5]), greedy(16)).await.unwrap();
    assert_eq!(a.ids, b.ids);
}

#[tokio::test(flavor = "multi_thread")]
async fn twenty_concurrent_first_requests_share_one_load() {
    let m = write_tiny(spec(TinyFamily::Llama));
    let mut events = engine().load_events();
    let loads: Vec<_> = (0..20)
        .map(|_| {
            let (id, path) = (m.id.clone(), m.path());
            tokio::spawn(async move { engine().load(id, path).await })
        })
        .collect();
    for load in loads {
        assert_eq!(load.await.unwrap().unwrap().id, m.id);
    }
    let (mut started, mut ready) = (0, 0);
    loop {
        let event = match events.try_recv() {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(n)) => panic!("missed {n} load events"),
            Err(_) => break,
        };
        if event.model != m.id {
            continue;
        }
        match event.state {
            mlx_manager_engine::LoadState::Loading { fraction: 0.0 } => started += 1,
            mlx_manager_engine::LoadState::Ready { .. } => ready += 1,
            _ => {}
        }
    }
    assert_eq!((started, ready), (1, 1), "the model was loaded more than once");
}
