//! Speculative decoding over HTTP: `draft_model` / `num_draft_tokens` on a request (mlx_lm.server's
//! fields) or a draft set per model in the settings (`serve --draft-model MODEL=DRAFT`); greedy
//! answers are the answers without a draft; bad fields are 422s naming them.

mod common;

use common::*;
use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_server::ServerSettings;
use serde_json::{json, Value};

/// A one-layer model with the test model's vocabulary, registered as `draft`.
fn register_draft(s: &TestServer) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let spec = TinySpec { layers: 1, seed: 3, max_position_embeddings: 1_000_000, ..TinySpec::new(TinyFamily::Qwen2) };
    write_tiny_model(&dir.path().join("draft"), &spec).unwrap();
    s.state.registry.insert("draft", dir.path().join("draft"));
    dir
}

async fn content(s: &TestServer, body: Value) -> String {
    let r: Value = s.post("/v1/chat/completions", body).send().await.unwrap().json().await.unwrap();
    r["choices"][0]["message"]["content"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_draft_on_the_request_or_in_the_settings_changes_nothing_greedy() {
    let s = TestServer::start().await;
    let _draft = register_draft(&s);
    let plain = content(&s, chat(30)).await;
    let mut asked = chat(30);
    asked["draft_model"] = json!("draft");
    asked["num_draft_tokens"] = json!(2);
    assert_eq!(content(&s, asked).await, plain);
    let loaded = s.state.engine.list().await.unwrap();
    assert!(loaded.iter().any(|m| m.id == "draft"), "the draft was loaded for the request");

    let mut settings = ServerSettings::default();
    settings.draft_models.insert(MODEL.into(), "draft".into());
    let configured = TestServer::with(settings, 8).await;
    let _draft = register_draft(&configured);
    assert_eq!(content(&configured, chat(30)).await, plain);
    // Structured output and a configured draft: the draft is left out, the constraint holds.
    let mut constrained = chat(30);
    constrained["guided_regex"] = json!("(yes|no)");
    let answer = content(&configured, constrained).await;
    assert!(answer == "yes" || answer == "no", "{answer}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_draft_fields_are_422_or_404_naming_them() {
    let s = TestServer::start().await;
    let _draft = register_draft(&s);
    for (extra, field) in [
        (json!({"draft_model": "draft", "num_draft_tokens": 0}), "num_draft_tokens"),
        (json!({"draft_model": "draft", "num_draft_tokens": 17}), "num_draft_tokens"),
        (json!({"draft_model": "draft", "guided_regex": "a+"}), "draft_model"),
    ] {
        let mut body = chat(5);
        body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        let problem =
            assert_problem(s.post("/v1/chat/completions", body).send().await.unwrap(), 422, "validation_error").await;
        assert_eq!(problem["errors"][0]["field"], field, "{problem}");
    }
    let mut body = chat(5);
    body["draft_model"] = json!("nope");
    assert_problem(s.post("/v1/chat/completions", body).send().await.unwrap(), 404, "model_not_found").await;
}
