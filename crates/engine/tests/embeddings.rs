//! Embeddings from a loaded decoder model: unit vectors, deterministic, order kept, context checked.

mod common;

use common::*;
use mlx_manager_engine::tiny::TinyFamily;
use mlx_manager_engine::{EmbedInput, EmbedRequest, EngineError};

fn texts(items: &[&str]) -> Vec<EmbedInput> {
    items.iter().map(|t| EmbedInput::Text(t.to_string())).collect()
}

#[tokio::test]
async fn embeddings_are_unit_vectors_in_input_order() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let request = |inputs| EmbedRequest { model: m.id.clone(), inputs, truncate: false };
    let batch =
        engine().embed(request(texts(&["the sea is calm", "a tiny function", "the sea is calm"]))).await.unwrap();
    assert_eq!(batch.vectors.len(), 3);
    for v in &batch.vectors {
        assert_eq!(v.len(), 64);
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
    // The same input twice in one batch: the same vector up to float rounding (OpenBLAS may sum
    // the rows of one product in different orders, e.g. on Intel's AVX-512 kernels).
    let max_diff = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(max_diff(&batch.vectors[0], &batch.vectors[2]) < 1e-6);
    assert!(max_diff(&batch.vectors[0], &batch.vectors[1]) > 1e-3);
    let single = engine().embed(request(texts(&["a tiny function"]))).await.unwrap();
    let diff = max_diff(&single.vectors[0], &batch.vectors[1]);
    assert!(diff < 1e-5, "batching (with padding) changed a vector by {diff}");
    assert!(batch.prompt_tokens > single.prompt_tokens);

    // Inputs of different lengths run as one padded batch: each equal to one-by-one up to float rounding.
    let ids: Vec<Vec<u32>> = (0..8u32).map(|j| (0..4 + 3 * j).map(|i| 5 + (i * 7 + j * 3) % 90).collect()).collect();
    let many = engine().embed(request(ids.iter().cloned().map(EmbedInput::Tokens).collect())).await.unwrap();
    for (j, tokens) in ids.into_iter().enumerate() {
        let one = engine().embed(request(vec![EmbedInput::Tokens(tokens)])).await.unwrap();
        let diff = max_diff(&one.vectors[0], &many.vectors[j]);
        assert!(diff < 1e-5, "input {j}: batched differs from one-by-one by {diff}");
    }
}

#[tokio::test]
async fn over_long_inputs_fail_unless_truncation_is_asked() {
    let mut s = spec(TinyFamily::Llama);
    s.max_position_embeddings = 8;
    let m = load_tiny(s).await;
    let long = vec![EmbedInput::Tokens((1..30).collect())];
    let err =
        engine().embed(EmbedRequest { model: m.id.clone(), inputs: long.clone(), truncate: false }).await.unwrap_err();
    assert!(matches!(err, EngineError::ContextLength { prompt_tokens: 29, context_length: 8 }), "{err:?}");
    let ok = engine().embed(EmbedRequest { model: m.id.clone(), inputs: long, truncate: true }).await.unwrap();
    assert_eq!(ok.prompt_tokens, 8);
    let empty = engine().embed(EmbedRequest { model: m.id, inputs: vec![], truncate: false }).await.unwrap_err();
    assert!(matches!(empty, EngineError::InvalidRequest { .. }));
}

#[tokio::test]
async fn embeddings_agree_with_the_same_computation_in_python_mlx() {
    for family in [TinyFamily::Llama, TinyFamily::Qwen2] {
        let m = load_tiny(spec(family)).await;
        let ids: Vec<Vec<u32>> = vec![(5..20).collect(), (30..34).collect(), (7..60).step_by(3).collect()];
        let ours = engine()
            .embed(EmbedRequest {
                model: m.id.clone(),
                inputs: ids.iter().cloned().map(EmbedInput::Tokens).collect(),
                truncate: false,
            })
            .await
            .unwrap();
        let arg: Vec<String> = ids.iter().map(|s| s.iter().map(u32::to_string).collect::<Vec<_>>().join(",")).collect();
        let theirs = reference(&["embed", "--model", m.path().to_str().unwrap(), "--inputs", &arg.join(";")]);
        for (i, (a, b)) in ours.vectors.iter().zip(theirs["vectors"].as_array().unwrap()).enumerate() {
            let b: Vec<f32> = serde_json::from_value(b.clone()).unwrap();
            let cosine: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!(cosine >= 0.9999, "{family:?} input {i}: cosine {cosine}");
        }
    }
}
