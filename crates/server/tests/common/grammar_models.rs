//! The random-weight and scripted models, tools and checks of tests/tool_grammars.rs: models that
//! write a family's tool-call markup only when decoding is constrained to it, and the assertions
//! that a call is valid for its tool's schema.

use std::path::Path;

use serde_json::{json, Value};

use super::tool_models::{chat, set_tool_parser, template};
use super::TestServer;

/// get_weather(city, days) with `days` in 1..=7 and a bounded `city` (a random model would
/// otherwise write one city name forever): the scripted models' tool.
pub fn days_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"]}}})
}

/// The first call of `r` is get_weather for Paris with `days` held to its 1..=7 (the scripted
/// models write a sloppy `"days": "three"`).
pub fn assert_held_paris_call(r: &Value) {
    let call = &r["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{r}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].as_str().unwrap().starts_with("Paris"), "{args}");
    assert!(args["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)), "{args}");
}

/// gpt-oss's harmony tokens.
pub const HARMONY: &[&str] =
    &["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>", "<|final|>"];

/// A random-weight model with `template` (and its tool-call tokens as special tokens) under `name`.
pub fn random_model(s: &TestServer, dir: &Path, name: &str, template: &str, specials: &[&str], eos: &[&str]) {
    let path = dir.join(name);
    mlx_manager_engine::tiny::write_templated_model(&path, template, specials, eos).unwrap();
    s.state.registry.insert(name, &path);
}

/// A random-weight Qwen3-Coder-style model: Qwen's template and tokens, `tool_parser_type`
/// qwen3_coder.
pub fn random_coder(s: &TestServer, dir: &Path, name: &str) {
    let specials = ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"];
    random_model(s, dir, name, &template("Qwen-Qwen2.5-7B-Instruct.jinja"), &specials, &["<|im_end|>"]);
    set_tool_parser(&dir.join(name), "qwen3_coder");
}

/// Gemma 4's special tokens.
pub const GEMMA4: &[&str] =
    &["<|turn>", "<turn|>", "<|tool_call>", "<tool_call|>", "<|\"|>", "<|channel>", "<channel|>"];

/// FunctionGemma's special tokens (added special tokens in google/functiongemma-270m-it).
pub const FUNCTION_GEMMA: &[&str] = &[
    "<start_of_turn>",
    "<end_of_turn>",
    "<start_function_declaration>",
    "<end_function_declaration>",
    "<start_function_call>",
    "<end_function_call>",
    "<start_function_response>",
    "<end_function_response>",
    "<escape>",
];

/// FunctionGemma's turns (its template also declares the tools; calls are told apart by
/// `<start_function_call>`).
pub const FUNCTION_GEMMA_TEMPLATE: &str = "{%- for m in messages %}<start_of_turn>{{ m.role }}\n\
    {{ m.content }}<end_of_turn>\n{%- endfor %}{#- calls: <start_function_call>call:NAME{k:<escape>v<escape>}\
    <end_function_call> #}<start_of_turn>model\n";

/// A random-weight FunctionGemma-style model (its template and tokens; it stops at the end of
/// its turn or where a function's response would start).
pub fn random_function_gemma(s: &TestServer, dir: &Path, name: &str) {
    let eos = ["<end_of_turn>", "<start_function_response>"];
    random_model(s, dir, name, FUNCTION_GEMMA_TEMPLATE, FUNCTION_GEMMA, &eos);
}

/// get_weather with bounded strings (a random model would otherwise write one city forever), an
/// integer range, an enum and a required nested object with an array (a random model leaves
/// optional ones out).
pub fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "options": {"type": "object", "properties": {"metric": {"type": "boolean"},
                "hours": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 23}, "maxItems": 3}},
                "required": ["metric", "hours"]}},
        "required": ["city", "days", "options"]}}})
}

pub fn time_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_time", "description": "Time", "parameters": {"type": "object",
        "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["zone"]}}})
}

/// The one call of a forced answer, valid for its tool's schema, and nothing else.
pub fn assert_valid_call(r: &Value) {
    let calls = r["choices"][0]["message"]["tool_calls"].as_array().unwrap_or_else(|| panic!("no call: {r}"));
    assert_eq!(calls.len(), 1, "{r}");
    assert_valid_arguments(r);
    assert_eq!(r["choices"][0]["finish_reason"], "tool_calls", "{r}");
    // No text: the grammar starts with the call.
    assert!(r["choices"][0]["message"]["content"].as_str().unwrap_or_default().is_empty(), "{r}");
}

/// The first call of `r` is one of `weather_tool` or `time_tool` with arguments valid for its
/// schema (checked by hand: the keys, types and bounds they declare, nothing else).
pub fn assert_valid_arguments(r: &Value) {
    let call = &r["choices"][0]["message"]["tool_calls"][0]["function"];
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap_or_else(|e| panic!("{e}: {r}"));
    let obj = args.as_object().unwrap_or_else(|| panic!("{args}"));
    match call["name"].as_str() {
        Some("get_weather") => {
            assert!(obj.keys().all(|k| ["city", "days", "unit", "options"].contains(&k.as_str())), "{args}");
            assert!(args["city"].as_str().is_some_and(|c| c.chars().count() <= 8), "{args}");
            assert!(args["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)), "{args}");
            assert!(args.get("unit").is_none_or(|u| u == "celsius" || u == "fahrenheit"), "{args}");
            let options = args["options"].as_object().unwrap_or_else(|| panic!("{args}"));
            assert!(options.keys().all(|k| k == "metric" || k == "hours"), "{args}");
            assert!(options["metric"].is_boolean(), "{args}");
            let hours = options["hours"].as_array().unwrap_or_else(|| panic!("{args}"));
            assert!(hours.len() <= 3, "{args}");
            assert!(hours.iter().all(|h| h.as_i64().is_some_and(|h| (0..=23).contains(&h))), "{args}");
        }
        Some("get_time") => assert!(args == json!({"zone": "UTC"}) || args == json!({"zone": "CET"}), "{args}"),
        _ => panic!("a call to an undeclared tool: {r}"),
    }
}

/// The model's control tokens in a forced answer are its own special tokens, never their text
/// spelled out: each of `controls` the answer holds is one token of its own (by the logprobs,
/// one entry a token; the tiny models' other tokens are single bytes) as often as the answer's
/// text holds it; the first one is there.
pub fn assert_control_tokens(r: &Value, controls: &[&str]) {
    let content = r["choices"][0]["logprobs"]["content"].as_array().unwrap_or_else(|| panic!("no logprobs: {r}"));
    let tokens: Vec<&str> = content.iter().map(|t| t["token"].as_str().unwrap()).collect();
    let text = tokens.concat();
    assert!(text.starts_with(controls[0]), "{tokens:?}");
    for control in controls {
        let whole = tokens.iter().filter(|t| *t == control).count();
        assert_eq!(whole, text.matches(control).count(), "{control} spelled out: {tokens:?}");
    }
}

/// Forced calls by random-weight models, over several seeds: named, then `required` with two tools;
/// `controls`: the format's control tokens, the first one the call's start.
pub async fn assert_forced_calls(s: &TestServer, model: &str, controls: &[&str]) {
    let mut req = chat(model, false);
    req["logprobs"] = json!(true);
    // A short system prompt instead of Mistral Small's long default one.
    req["messages"] =
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]);
    req["tools"] = json!([weather_tool(), time_tool()]);
    req["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    req["parallel_tool_calls"] = json!(false);
    // Room for the blanks a random model writes between JSON tokens (up to 24 a gap).
    req["max_tokens"] = json!(1000);
    req["temperature"] = json!(1.0);
    for seed in 0..4 {
        req["seed"] = json!(seed);
        let r: Value = s.post("/v1/chat/completions", req.clone()).send().await.unwrap().json().await.unwrap();
        assert_valid_call(&r);
        assert_control_tokens(&r, controls);
        assert_eq!(r["choices"][0]["message"]["tool_calls"][0]["function"]["name"], "get_weather", "{r}");
    }
    req["tool_choice"] = json!("required");
    for seed in 0..4 {
        req["seed"] = json!(seed);
        let r: Value = s.post("/v1/chat/completions", req.clone()).send().await.unwrap().json().await.unwrap();
        assert_valid_call(&r);
        assert_control_tokens(&r, controls);
    }
}

/// Marks the added tokens `tokens` of a model special in its tokenizer.json, as Mistral's own
/// tokenizers have their control tokens (a scripted model's pieces are plain added tokens).
pub fn mark_special(model: &Path, tokens: &[&str]) {
    let path = model.join("tokenizer.json");
    let mut tokenizer: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for added in tokenizer["added_tokens"].as_array_mut().unwrap() {
        if tokens.contains(&added["content"].as_str().unwrap()) {
            added["special"] = json!(true);
        }
    }
    std::fs::write(&path, tokenizer.to_string()).unwrap();
}
