//! Constrained decoding on tiny random-weight models, which write valid JSON only if decoding is
//! really constrained: schema-valid output for many seeds (checked by Python's jsonschema), EOS
//! only where the grammar ends, rows with and without a grammar in one batch, and greedy output
//! token for token equal to llguidance's own Python matcher on mlx-lm's logits.

mod common;

use common::*;
use mlx_manager_engine::tiny::TinyFamily;
use mlx_manager_engine::{EngineError, FinishReason, GenerateRequest, GenerationParams, Grammar, SamplingParams};
use serde_json::{json, Value};

const PROMPT: &[u32] = &[5, 100, 200, 300, 17, 42, 99];

fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 12},
            "kind": {"enum": ["cat", "dog", "fish"]},
            "age": {"type": "integer", "minimum": 0, "maximum": 30},
            "owner": {"type": "object", "properties": {"city": {"type": "string", "maxLength": 8}}, "required": ["city"], "additionalProperties": false},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 5}, "maxItems": 3}
        },
        "required": ["name", "kind", "age", "owner", "tags"],
        "additionalProperties": false
    })
}

fn constrained(grammar: Grammar, seed: Option<u64>, temperature: f32) -> GenerationParams {
    GenerationParams {
        // Room for a random model's taste for blanks (each gap holds at most 24).
        max_tokens: 1000,
        sampling: SamplingParams { temperature, seed, ..SamplingParams::default() },
        grammar: Some(grammar),
        ..GenerationParams::default()
    }
}

/// One validation error (or None) per text, from Python's jsonschema.
fn validate(schema: &Value, texts: &[String]) -> Vec<Option<String>> {
    let texts = serde_json::to_string(texts).unwrap();
    let out = reference(&["validate", "--schema", &schema.to_string(), "--texts", &texts]);
    serde_json::from_value(out).unwrap()
}

#[tokio::test]
async fn sampled_output_always_follows_the_schema() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let schema = schema();
    // Unconstrained, the same model does not write JSON.
    let free =
        generate(&m.id, tokens(PROMPT), GenerationParams { max_tokens: 40, ..Default::default() }).await.unwrap();
    assert!(serde_json::from_str::<Value>(&free.text).is_err(), "{}", free.text);
    // Eight seeds at once: constrained rows decode together in one batch.
    let runs: Vec<_> = (0..8)
        .map(|seed| {
            let params = constrained(Grammar::JsonSchema(schema.clone()), Some(seed), 1.0);
            engine().generate(GenerateRequest { model: m.id.clone(), prompt: tokens(PROMPT), params }).unwrap()
        })
        .collect();
    let mut texts = Vec::new();
    for run in runs {
        let out = collect(run).await;
        assert_eq!(out.finish, FinishReason::Stop, "EOS once the object is complete: {}", out.text);
        texts.push(out.text);
    }
    let errors = validate(&schema, &texts);
    for (text, error) in texts.iter().zip(&errors) {
        assert!(error.is_none(), "{text}: {error:?}");
    }
    let distinct: std::collections::BTreeSet<&String> = texts.iter().collect();
    assert!(distinct.len() > 1, "sampling still samples among the allowed tokens");
}

#[tokio::test]
async fn a_constrained_row_and_free_rows_share_a_batch() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    let free = generate(&m.id, tokens(PROMPT), greedy(24)).await.unwrap();
    let rows: Vec<_> = [None, Some(Grammar::JsonObject), None, Some(Grammar::Regex("(yes|no), [0-9]{2}".into()))]
        .into_iter()
        .map(|grammar| {
            let params = GenerationParams { max_tokens: 24, grammar, ..GenerationParams::default() };
            engine().generate(GenerateRequest { model: m.id.clone(), prompt: tokens(PROMPT), params }).unwrap()
        })
        .collect();
    let mut outs = Vec::new();
    for r in rows {
        outs.push(collect(r).await);
    }
    assert_eq!(outs[0].ids, free.ids, "a free row is untouched by its constrained neighbours");
    assert_eq!(outs[2].ids, free.ids);
    assert!(outs[1].text.starts_with('{'), "{}", outs[1].text);
    let re = regex_lite(&outs[3].text);
    assert!(re, "{:?}", outs[3].text);
    assert_eq!(outs[3].finish, FinishReason::Stop);
}

/// `(yes|no), [0-9]{2}` without a regex crate.
fn regex_lite(s: &str) -> bool {
    let Some((word, num)) = s.split_once(", ") else { return false };
    (word == "yes" || word == "no") && num.len() == 2 && num.chars().all(|c| c.is_ascii_digit())
}

/// A call whose name and keys leave one way on for many tokens (appended without a forward pass
/// each, on both sides), then a free city.
const FORCED_CALL: &str = r#"start: "{\"name\": \"get_current_weather\", \"arguments\": {\"city\": \"" CITY "\", \"unit\": \"celsius\"}}"
CITY: /[A-Z][a-z]{2,8}/
"#;

#[tokio::test]
async fn greedy_constrained_output_equals_llguidance_in_python() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let prompt = PROMPT.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
    let path = m.path();
    // The same grammars: the schema with the whitespace bound the engine adds.
    let cases = [
        (Grammar::JsonSchema(schema()), "json_schema", mlx_manager_engine::bounded_whitespace(schema()).to_string()),
        (Grammar::Lark(FORCED_CALL.into()), "lark", FORCED_CALL.to_string()),
    ];
    for (grammar, kind, text) in cases {
        let ours = generate(&m.id, tokens(PROMPT), constrained(grammar, None, 0.0)).await.unwrap();
        let theirs = reference(&[
            "constrained",
            "--model",
            path.to_str().unwrap(),
            "--tokens",
            &prompt,
            "--kind",
            kind,
            "--grammar",
            &text,
            "--max-tokens",
            "200",
        ]);
        let theirs: Vec<u32> = serde_json::from_value(theirs["tokens"].clone()).unwrap();
        assert_eq!(ours.ids, theirs, "{kind}: ours: {}", ours.text);
    }
}

#[tokio::test]
async fn a_grammar_llguidance_cannot_compile_is_a_typed_error() {
    let bad = Grammar::JsonSchema(json!({"type": "object", "properties": {"a": {"type": "strng"}}}));
    assert!(matches!(bad.check(), Err(EngineError::Grammar { .. })));
    assert!(Grammar::Lark("start: (".into()).check().is_err());
    assert!(Grammar::JsonSchema(schema()).check().is_ok());
}

/// A call to get_time in Mistral v11's syntax. (The schema's title holds `[ARGS]`, and so does a
/// comment: they stay JSON and a comment.)
const MISTRAL_CALL: &str = r#"start: "[TOOL_CALLS]" "get_time" "[ARGS]" %json {"title": "[ARGS]", "type": "object",
    "properties": {"zone": {"enum": ["UTC", "CET"]}}, "required": ["zone"], "additionalProperties": false}
// "[ARGS]"
"#;

/// A call to get_time in Gemma 4's syntax, its string quote `<|"|>` quoted like any other literal.
const GEMMA_CALL: &str = r#"start: "<|tool_call>" "call:get_time{zone:" quote ("UTC" | "CET") quote "}" "<tool_call|>"
quote: "<|\"|>"
"#;

/// Control tokens quoted in a Lark grammar are the model's own special tokens where its vocabulary
/// has them (Mistral's `[TOOL_CALLS]` and `[ARGS]`, Gemma 4's `<|"|>`, which holds a quote), text
/// where it does not. (Quoted text alone, a control token's text left as the only way on was
/// written in the model's own tokenization, which gives the special token, which the text grammar
/// refused: the generation failed.)
#[tokio::test]
async fn quoted_control_tokens_are_the_model_s_own_special_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model");
    let specials = ["[TOOL_CALLS]", "[ARGS]", "<|tool_call>", "<tool_call|>", "<|\"|>"];
    let template = "{% for m in messages %}{{ m.content }}{% endfor %}";
    mlx_manager_engine::tiny::write_templated_model(&path, template, &specials, &[]).unwrap();
    let id = dir.path().file_name().unwrap().to_string_lossy().into_owned();
    engine().load(&id, &path).await.unwrap();
    let vocab = tokenizers::Tokenizer::from_file(path.join("tokenizer.json")).unwrap();
    let token = |text: &str| vocab.token_to_id(text).unwrap();
    let count = |ids: &[u32], text: &str| ids.iter().filter(|&&t| t == token(text)).count();

    let params = |lark: &str| GenerationParams { grammar: Some(Grammar::Lark(lark.into())), ..greedy(80) };
    // (Ids of the 256 tokens the added ones follow.)
    let prompt = || tokens(&[5, 100, 200, 17, 42, 99]);
    let out = generate(&id, prompt(), params(MISTRAL_CALL)).await.unwrap();
    assert_eq!(out.finish, FinishReason::Stop, "{out:?}");
    assert_eq!(out.ids[0], token("[TOOL_CALLS]"), "{:?}", out.pieces);
    assert_eq!(count(&out.ids, "[ARGS]"), 1, "{:?}", out.pieces);
    assert_zone_call(&out.text);

    let out = generate(&id, prompt(), params(GEMMA_CALL)).await.unwrap();
    assert_eq!(out.finish, FinishReason::Stop, "{out:?}");
    assert_eq!(out.ids[0], token("<|tool_call>"), "{:?}", out.pieces);
    assert_eq!(count(&out.ids, "<|\"|>"), 2, "{:?}", out.pieces);
    assert_eq!(count(&out.ids, "<tool_call|>"), 1, "{:?}", out.pieces);
    assert!(
        ["UTC", "CET"]
            .map(|z| format!("<|tool_call>call:get_time{{zone:<|\"|>{z}<|\"|>}}<tool_call|>"))
            .contains(&out.text),
        "{:?}",
        out.pieces
    );

    // A vocabulary without those tokens writes the same grammars as text.
    let plain = load_tiny(spec(TinyFamily::Qwen2)).await;
    let out = generate(&plain.id, prompt(), params(MISTRAL_CALL)).await.unwrap();
    assert_eq!(out.finish, FinishReason::Stop, "{out:?}");
    assert_zone_call(&out.text);
    let out = generate(&plain.id, prompt(), params(GEMMA_CALL)).await.unwrap();
    assert!(out.text.starts_with("<|tool_call>call:get_time{zone:<|\"|>"), "{:?}", out.pieces);
    // Without a model (the check before anything is loaded) they are text too.
    Grammar::Lark(MISTRAL_CALL.into()).check().unwrap();
    Grammar::Lark(GEMMA_CALL.into()).check().unwrap();
}

/// A control token's text inside a JSON string or a Lark terminal is text: where it is the only way
/// on, it is spelled with ordinary tokens. (Before, llguidance forced it in the model's own
/// tokenization, which gives the special token: taking it failed the request, or, where it was an
/// EOS, ended it with invalid JSON.) A rule's quoted literal stays the special token.
#[tokio::test]
async fn a_control_token_s_text_inside_a_string_is_spelled_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model");
    let specials = ["[TOOL_CALLS]", "</tool_call>", "<|im_end|>"];
    let template = "{% for m in messages %}{{ m.content }}{% endfor %}";
    // `<|im_end|>` is this model's EOS too.
    mlx_manager_engine::tiny::write_templated_model(&path, template, &specials, &["<|im_end|>"]).unwrap();
    let id = dir.path().file_name().unwrap().to_string_lossy().into_owned();
    engine().load(&id, &path).await.unwrap();
    let vocab = tokenizers::Tokenizer::from_file(path.join("tokenizer.json")).unwrap();
    let special: Vec<u32> = specials.iter().map(|t| vocab.token_to_id(t).unwrap()).collect();
    let prompt = || tokens(&[5, 100, 200, 17, 42, 99]);
    let cases = [
        (Grammar::JsonSchema(json!({"type": "string", "const": "<|im_end|>"})), "\"<|im_end|>\""),
        (Grammar::JsonSchema(json!({"enum": ["[TOOL_CALLS]"]})), "\"[TOOL_CALLS]\""),
        (
            Grammar::JsonSchema(
                json!({"type": "object", "properties": {"t": {"const": "</tool_call>"}}, "required": ["t"], "additionalProperties": false}),
            ),
            "",
        ),
        (Grammar::Lark("start: \"a\" TAG\nTAG: \"</tool_call>\"\n".into()), "a</tool_call>"),
    ];
    for (grammar, expected) in cases {
        let name = format!("{grammar:?}");
        let out = generate(&id, prompt(), GenerationParams { grammar: Some(grammar), ..greedy(60) }).await;
        let out = out.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(out.finish, FinishReason::Stop, "{name}: {out:?}");
        if expected.is_empty() {
            let value: Value = serde_json::from_str(&out.text).unwrap_or_else(|e| panic!("{name}: {e}: {}", out.text));
            assert_eq!(value, json!({"t": "</tool_call>"}), "{name}");
        } else {
            assert_eq!(out.text, expected, "{name}");
        }
        assert!(!out.ids.iter().any(|t| special.contains(t)), "{name}: {:?}", out.pieces);
    }
    // A rule's quoted literal is the token.
    let rule = Grammar::Lark("start: \"a\" \"</tool_call>\"\n".into());
    let out = generate(&id, prompt(), GenerationParams { grammar: Some(rule), ..greedy(20) }).await.unwrap();
    assert_eq!(out.ids.last(), Some(&special[1]), "{:?}", out.pieces);
}

/// `[TOOL_CALLS]get_time[ARGS]{"zone": …}` with one of the schema's zones.
fn assert_zone_call(text: &str) {
    let args = text.strip_prefix("[TOOL_CALLS]get_time[ARGS]").unwrap_or_else(|| panic!("{text}"));
    let args: Value = serde_json::from_str(args).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert!(args == json!({"zone": "UTC"}) || args == json!({"zone": "CET"}), "{text}");
}
