//! Speculative decoding: a draft model proposes, the model verifies. Greedy output is the output
//! without a draft, whatever the draft proposes; a draft that is the model itself has every
//! proposal accepted (which checks that both caches go back exactly after a miss and stay in step
//! after a hit); a draft with sliding-window layers decoding far past its window gives the same
//! tokens; a draft that cannot serve is a typed error naming `draft_model`.

mod common;

use common::*;
use mlx_manager_engine::tiny::{write_family_model_with, TinyDtype, TinyFamily, TinySpec};
use mlx_manager_engine::{Draft, EngineError, GenerateRequest, GenerationParams};
use serde_json::json;

fn with_draft(max_tokens: usize, draft: &str, tokens: usize) -> GenerationParams {
    GenerationParams { draft: Some(Draft { model: draft.to_string(), tokens }), ..greedy(max_tokens) }
}

const PROMPTS: [&[u32]; 3] = [&[5, 100, 200], &[7; 40], &[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]];

#[tokio::test]
async fn greedy_output_is_the_output_without_a_draft() {
    let spec = TinySpec { layers: 3, ..TinySpec::new(TinyFamily::Llama) };
    let model = load_tiny(spec.clone()).await;
    let other = load_tiny(TinySpec { seed: 7, layers: 1, ..spec.clone() }).await;
    let itself = load_tiny(spec).await;
    for prompt in PROMPTS {
        let plain = generate(&model.id, tokens(prompt), greedy(40)).await.unwrap();
        for (draft, k) in [(&other.id, 3), (&itself.id, 4), (&other.id, 1)] {
            let out = generate(&model.id, tokens(prompt), with_draft(40, draft, k)).await.unwrap();
            assert_eq!(out.ids, plain.ids, "draft {draft} proposing {k}: tokens differ from decoding alone");
            assert_eq!(out.text, plain.text);
            assert_eq!(out.finish, plain.finish);
            assert_eq!(out.usage.completion_tokens, plain.usage.completion_tokens);
            let (proposed, accepted) = out.usage.draft_tokens.expect("draft counts reported");
            assert!(proposed > 0 && accepted <= proposed, "{proposed} proposed, {accepted} accepted");
            if draft == &itself.id {
                assert_eq!(accepted, proposed, "the model itself as draft: every proposal is accepted");
            }
        }
    }
    // max_tokens is exact even when a round could emit more.
    let out = generate(&model.id, tokens(PROMPTS[0]), with_draft(6, &itself.id, 4)).await.unwrap();
    assert_eq!(out.ids.len(), 6);
}

/// Writes and loads a tiny model of `family` (a registry name) with a window of 8 where it has
/// windows; every family's tiny model has the same tokenizer, so any can draft for any.
async fn load_family(family: &str, dtype: TinyDtype, fields: serde_json::Value) -> TinyModel {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = TinySpec { layers: 4, dtype, ..TinySpec::new(TinyFamily::Llama) };
    write_family_model_with(&dir.path().join("model"), family, &spec, &fields).expect("tiny model is written");
    let id = dir.path().file_name().expect("name").to_string_lossy().into_owned();
    let model = TinyModel { dir, id };
    engine().load(&model.id, model.path()).await.expect("tiny model loads");
    model
}

/// Drafts whose sliding windows wrap many times over (a window of 8, 150 tokens): their caches
/// go back over rejected proposals (cache/sliding.rs; the generate::speculative unit test counts
/// that they are never cleared), and the tokens are the model's own.
#[tokio::test]
async fn sliding_window_drafts_far_past_their_window() {
    let gemma3 = json!({"sliding_window": 8, "sliding_window_pattern": 2});
    let model = load_family("gemma3_text", TinyDtype::F32, gemma3.clone()).await;
    // The model in bfloat16 (agrees mostly), and another family with windows (rarely agrees).
    let rounded = load_family("gemma3_text", TinyDtype::Bf16, gemma3).await;
    let gpt_oss = load_family("gpt_oss", TinyDtype::F32, json!({"sliding_window": 8})).await;
    let prompt: Vec<u32> = (0..20u32).map(|i| (i * 37 + 3) % 400 + 5).collect();
    let plain = generate(&model.id, tokens(&prompt), greedy(150)).await.unwrap();
    assert!(plain.ids.len() >= 100, "only {} tokens: not far past the window", plain.ids.len());
    for (draft, k) in [(&rounded.id, 3), (&gpt_oss.id, 4), (&rounded.id, 1)] {
        let out = generate(&model.id, tokens(&prompt), with_draft(150, draft, k)).await.unwrap();
        assert_eq!(out.ids, plain.ids, "draft {draft} proposing {k}: tokens differ from decoding alone");
        let (proposed, accepted) = out.usage.draft_tokens.expect("draft counts reported");
        assert!(accepted < proposed, "draft {draft}: {accepted} of {proposed} accepted, no miss to go back over");
    }
}

#[tokio::test]
async fn a_draft_that_cannot_serve_is_a_typed_error() {
    let model = load_tiny(TinySpec::new(TinyFamily::Llama)).await;
    // A vocabulary with two more tokens.
    let wider_vocab = tempfile::tempdir().unwrap();
    mlx_manager_engine::tiny::write_templated_model(wider_vocab.path(), "{{ messages }}", &["<a>", "<b>"], &["<b>"])
        .unwrap();
    engine().load("wider-vocab", wider_vocab.path()).await.unwrap();
    let refused = |e: EngineError| match e {
        EngineError::InvalidRequest { field: "draft_model", message } => message,
        other => panic!("not a draft_model error: {other:?}"),
    };
    let e = generate(&model.id, tokens(PROMPTS[0]), with_draft(8, "wider-vocab", 3)).await.unwrap_err();
    assert!(refused(e).contains("vocabulary"));
    let e = generate(&model.id, tokens(PROMPTS[0]), with_draft(8, &model.id, 0)).await.unwrap_err();
    assert!(refused(e).contains("num_draft_tokens"));
    let request =
        GenerateRequest { model: model.id.clone(), prompt: tokens(PROMPTS[0]), params: with_draft(8, "nope", 3) };
    match generate(&request.model, request.prompt, request.params).await.unwrap_err() {
        EngineError::ModelNotFound { model } => assert_eq!(model, "nope"),
        other => panic!("{other:?}"),
    }
}
