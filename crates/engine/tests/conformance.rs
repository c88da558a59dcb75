//! Conformance with the reference implementation: greedy generation token-identical to Python
//! mlx-lm 0.32 (mlx 0.32.2, the same libmlx) on the same generated folders, and chat prompts
//! byte-identical to transformers' `apply_chat_template`. The reference venv comes from
//! scripts/setup.

mod common;

use common::*;
use mlx_manager_engine::chat::render;
use mlx_manager_engine::tiny::{TinyDtype, TinyFamily, TinySpec};
use mlx_manager_engine::tokenizer::Tokenizer;
use mlx_manager_engine::ChatMessage;

const PROMPT: &[u32] = &[5, 100, 200, 300, 17, 42, 99, 3, 8];
const MAX_TOKENS: usize = 40;

async fn assert_token_identical(name: &str, spec: TinySpec) {
    let m = load_tiny(spec).await;
    let ours = generate(&m.id, tokens(PROMPT), greedy(MAX_TOKENS)).await.unwrap().ids;
    let prompt: Vec<String> = PROMPT.iter().map(u32::to_string).collect();
    let path = m.path();
    let theirs = reference(&[
        "greedy",
        "--model",
        path.to_str().unwrap(),
        "--tokens",
        &prompt.join(","),
        "--max-tokens",
        &MAX_TOKENS.to_string(),
    ]);
    let theirs: Vec<u32> = serde_json::from_value(theirs["tokens"].clone()).unwrap();
    assert!(theirs.len() >= 32, "{name}: mlx-lm produced only {} tokens", theirs.len());
    assert_eq!(ours, theirs, "{name}: greedy tokens differ from mlx-lm");
}

fn variant(family: TinyFamily, f: impl FnOnce(&mut TinySpec)) -> TinySpec {
    let mut s = TinySpec::new(family);
    f(&mut s);
    s
}

#[tokio::test]
async fn llama_untied_gqa_fp32() {
    assert_token_identical("llama untied gqa fp32", variant(TinyFamily::Llama, |_| {})).await;
}

#[tokio::test]
async fn llama_tied_mha_fp32() {
    assert_token_identical(
        "llama tied mha fp32",
        variant(TinyFamily::Llama, |s| {
            s.tied = true;
            s.kv_heads = s.heads;
        }),
    )
    .await;
}

#[tokio::test]
async fn llama_4bit() {
    assert_token_identical("llama 4-bit g64", variant(TinyFamily::Llama, |s| s.quantize = Some((4, 64)))).await;
}

#[tokio::test]
async fn qwen2_untied_fp32() {
    assert_token_identical("qwen2 untied fp32", variant(TinyFamily::Qwen2, |_| {})).await;
}

#[tokio::test]
async fn qwen2_tied_4bit_group32() {
    assert_token_identical(
        "qwen2 tied 4-bit g32",
        variant(TinyFamily::Qwen2, |s| {
            s.tied = true;
            s.quantize = Some((4, 32));
        }),
    )
    .await;
}

#[tokio::test]
async fn qwen3_8bit_bf16() {
    assert_token_identical(
        "qwen3 8-bit bf16",
        variant(TinyFamily::Qwen3, |s| {
            s.quantize = Some((8, 64));
            s.dtype = TinyDtype::Bf16;
        }),
    )
    .await;
}

#[tokio::test]
async fn qwen2_fp16_long_prompt() {
    // A prompt that ends near 256 positions, so the KV cache grows while decoding.
    let m = load_tiny(variant(TinyFamily::Qwen2, |s| s.dtype = TinyDtype::F16)).await;
    let prompt: Vec<u32> = (0..230u32).map(|i| 10 + (i * 37) % 400).collect();
    let ours = generate(&m.id, tokens(&prompt), greedy(MAX_TOKENS)).await.unwrap().ids;
    let joined: Vec<String> = prompt.iter().map(u32::to_string).collect();
    let path = m.path();
    let theirs =
        reference(&["greedy", "--model", path.to_str().unwrap(), "--tokens", &joined.join(","), "--max-tokens", "40"]);
    let theirs: Vec<u32> = serde_json::from_value(theirs["tokens"].clone()).unwrap();
    assert!(theirs.len() >= 32);
    assert_eq!(ours, theirs);
}

fn conversations() -> Vec<(Vec<ChatMessage>, Option<serde_json::Value>)> {
    let tool = |id: &str| ChatMessage { tool_call_id: Some(id.into()), ..ChatMessage::new("tool", "{\"temp\": 21}") };
    vec![
        (vec![ChatMessage::new("user", "Hello!")], None),
        (vec![ChatMessage::new("system", "You are terse."), ChatMessage::new("user", "  What is 2+2?  ")], None),
        (
            vec![
                ChatMessage::new("user", "Write a haiku about the sea."),
                ChatMessage::new("assistant", "Waves fold into foam,\nsalt wind carries gull voices."),
                ChatMessage::new("user", "Now one in French — avec des accents: é, à, ç."),
            ],
            None,
        ),
        (
            vec![ChatMessage::new("user", "Weather in Paris?"), tool("call_1")],
            Some(
                serde_json::json!([{"type": "function", "function": {"name": "get_weather", "description": "Current weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]),
            ),
        ),
    ]
}

#[test]
fn chat_templates_render_byte_identical_to_transformers() {
    for family in [TinyFamily::Llama, TinyFamily::Qwen2] {
        let m = write_tiny(TinySpec::new(family));
        let path = m.path();
        let tok = Tokenizer::load(&path, &[]).unwrap();
        for (messages, tools) in conversations() {
            let ours = render(&tok, &messages, tools.as_ref(), true).unwrap();
            let messages_json = serde_json::to_string(&messages).unwrap();
            let tools_json = tools.as_ref().map(|t| t.to_string());
            let mut args = vec!["chat", "--model", path.to_str().unwrap(), "--messages", &messages_json];
            if let Some(t) = &tools_json {
                args.extend(["--tools", t.as_str()]);
            }
            let theirs = reference(&args);
            assert_eq!(ours, theirs["text"].as_str().unwrap(), "{family:?} {messages_json}");
        }
    }
}

#[test]
fn tokenizer_encodes_like_transformers() {
    let m = write_tiny(TinySpec::new(TinyFamily::Llama));
    let path = m.path();
    let tok = Tokenizer::load(&path, &[]).unwrap();
    let text = "Hello world — Café 🙂 <|eot_id|> numbers 2048";
    let theirs = reference(&["encode", "--model", path.to_str().unwrap(), "--text", text]);
    let theirs: Vec<u32> = serde_json::from_value(theirs["ids"].clone()).unwrap();
    assert_eq!(tok.encode(text, true).unwrap(), theirs);
    assert_eq!(theirs[0], tok.encode("<|begin_of_text|>", false).unwrap()[0], "BOS is added");
}
