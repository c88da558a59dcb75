//! Speculative decoding: a draft model proposes, the model verifies. Greedy output is the output
//! without a draft, whatever the draft proposes; a draft that is the model itself has every
//! proposal accepted (which checks that both caches go back exactly after a miss and stay in step
//! after a hit); a draft that cannot serve is a typed error naming `draft_model`.

mod common;

use common::*;
use mlx_manager_engine::tiny::{TinyFamily, TinySpec};
use mlx_manager_engine::{Draft, EngineError, GenerateRequest, GenerationParams};

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
