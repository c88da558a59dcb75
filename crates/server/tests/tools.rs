//! Tool calls and reasoning through the real engine and the real server, on both APIs, whole
//! and streamed: a scripted tiny model (it always answers with the same pieces, see
//! `tiny::write_scripted_model`) writes real markup under real chat templates, and clients see
//! calls, text and reasoning — never the markup.

mod common;

use std::path::Path;

use common::TestServer;
use mlx_manager_engine::tiny::{write_scripted_model, AGENT_SCRIPT, THINKER_SCRIPT};
use serde_json::{json, Value};

const AGENT: &str = "agent";
const CODER: &str = "coder";

/// A Qwen3-Coder XML call.
const CODER_SCRIPT: &[&str] = &[
    "<tool_call>",
    "\n<function=get_weather>\n<parameter=city>\n",
    "Paris",
    "\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n",
    "</tool_call>",
];
const THINKER: &str = "thinker";

fn template(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/templates").join(file);
    std::fs::read_to_string(path).unwrap()
}

async fn server() -> (TestServer, tempfile::TempDir) {
    let s = TestServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    for (name, script, file) in [
        (AGENT, AGENT_SCRIPT, "Qwen-Qwen2.5-7B-Instruct.jinja"),
        (THINKER, THINKER_SCRIPT, "Qwen-Qwen3-0.6B.jinja"),
        ("idle", AGENT_SCRIPT, "Qwen-Qwen2.5-7B-Instruct.jinja"),
        (CODER, CODER_SCRIPT, "Qwen-Qwen2.5-7B-Instruct.jinja"),
    ] {
        write_scripted_model(&dir.path().join(name), script, &template(file)).unwrap();
        s.state.registry.insert(name, dir.path().join(name));
    }
    // The coder's template says Hermes; its tokenizer_config.json says otherwise (mlx-lm's key).
    let tc = dir.path().join(CODER).join("tokenizer_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&tc).unwrap()).unwrap();
    config["tool_parser_type"] = json!("qwen3_coder");
    std::fs::write(&tc, config.to_string()).unwrap();
    (s, dir)
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}])
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": tools(),
        "temperature": 0, "max_tokens": 40, "stream": stream})
}

/// `(event name, data)` of each server-sent event.
async fn events(response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    let mut out = Vec::new();
    for block in text.split("\n\n") {
        let (mut name, mut data) = (String::new(), String::new());
        for line in block.lines() {
            if let Some(v) = line.strip_prefix("event: ") {
                name = v.to_string();
            } else if let Some(v) = line.strip_prefix("data: ") {
                data.push_str(v);
            }
        }
        if data.is_empty() || data == "[DONE]" {
            continue;
        }
        out.push((name, serde_json::from_str(&data).unwrap()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn openai_tool_calls_whole_and_streamed() {
    let (s, _dir) = server().await;
    let r = s.post("/v1/chat/completions", chat(AGENT, false)).send().await.unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: Value = r.json().await.unwrap();
    let choice = &body["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{body}");
    // The model's own spacing before the call is kept (vLLM strips it; we do not rewrite text).
    assert_eq!(choice["message"]["content"].as_str().unwrap().trim_end(), "Let me check.");
    let call = &choice["message"]["tool_calls"][0];
    assert!(call["id"].as_str().unwrap().starts_with("call_"));
    assert_eq!(call["type"], "function");
    assert_eq!(call["function"]["name"], "get_weather");
    let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "days": 3}));
    let entry = s.audit_entry(&id).await;
    assert_eq!((entry.finish_reason.as_deref(), entry.tool_calls), (Some("tool_calls"), 1));

    let chunks = events(s.post("/v1/chat/completions", chat(AGENT, true)).send().await.unwrap()).await;
    let (mut text, mut arguments, mut names, mut finish) = (String::new(), String::new(), Vec::new(), None);
    for (_, c) in &chunks {
        let delta = &c["choices"][0]["delta"];
        text.push_str(delta["content"].as_str().unwrap_or_default());
        for piece in delta["tool_calls"].as_array().into_iter().flatten() {
            assert_eq!(piece["index"], 0);
            if let Some(name) = piece["function"]["name"].as_str() {
                assert!(piece["id"].as_str().unwrap().starts_with("call_"));
                names.push(name.to_string());
            }
            arguments.push_str(piece["function"]["arguments"].as_str().unwrap_or_default());
        }
        if let Some(f) = c["choices"][0]["finish_reason"].as_str() {
            finish = Some(f.to_string());
        }
    }
    assert_eq!(text.trim_end(), "Let me check.", "no markup leaks into content");
    assert_eq!(names, ["get_weather"], "the name comes once, first");
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"city": "Paris", "days": 3}));
    assert!(
        chunks.iter().filter(|(_, c)| c["choices"][0]["delta"]["tool_calls"].is_array()).count() >= 3,
        "arguments arrive in pieces"
    );
    assert_eq!(finish.as_deref(), Some("tool_calls"));
}

#[tokio::test(flavor = "multi_thread")]
async fn anthropic_tool_use_whole_and_streamed() {
    let (s, _dir) = server().await;
    let body = |stream: bool| {
        json!({"model": AGENT, "max_tokens": 40, "temperature": 0, "stream": stream,
            "tools": [{"name": "get_weather", "input_schema": tools()[0]["function"]["parameters"]}],
            "messages": [{"role": "user", "content": "Weather in Paris?"}]})
    };
    let r: Value = s.post("/v1/messages", body(false)).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["stop_reason"], "tool_use", "{r}");
    assert_eq!(r["content"][0]["type"], "text");
    assert_eq!(r["content"][0]["text"].as_str().unwrap().trim_end(), "Let me check.");
    assert_eq!(r["content"][1]["type"], "tool_use");
    assert!(r["content"][1]["id"].as_str().unwrap().starts_with("toolu_"));
    assert_eq!(r["content"][1]["name"], "get_weather");
    assert_eq!(r["content"][1]["input"], json!({"city": "Paris", "days": 3}));

    let evs = events(s.post("/v1/messages", body(true)).send().await.unwrap()).await;
    let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    let json: String =
        evs.iter().filter_map(|(_, e)| e.pointer("/delta/partial_json").and_then(Value::as_str)).collect();
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), json!({"city": "Paris", "days": 3}));
    let starts: Vec<&Value> =
        evs.iter().filter(|(n, _)| n == "content_block_start").map(|(_, e)| &e["content_block"]).collect();
    assert_eq!(starts[0]["type"], "text");
    assert_eq!(starts[1]["type"], "tool_use");
    assert_eq!(starts[1]["name"], "get_weather");
    let stop = evs.iter().find(|(n, _)| n == "message_delta").unwrap();
    assert_eq!(stop.1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test(flavor = "multi_thread")]
async fn reasoning_is_its_own_field_on_both_apis() {
    let (s, _dir) = server().await;
    let req = json!({"model": THINKER, "messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 40, "temperature": 0});
    let r: Value = s.post("/v1/chat/completions", req.clone()).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    assert_eq!(message["reasoning_content"].as_str().unwrap().trim(), "The user asks about the weather.", "{r}");
    assert_eq!(message["content"].as_str().unwrap().trim(), "It is sunny.");
    assert_eq!(r["choices"][0]["finish_reason"], "stop");

    let mut streamed = req;
    streamed["stream"] = json!(true);
    let chunks = events(s.post("/v1/chat/completions", streamed).send().await.unwrap()).await;
    let reasoning: String =
        chunks.iter().filter_map(|(_, c)| c["choices"][0]["delta"]["reasoning_content"].as_str()).collect();
    let content: String = chunks.iter().filter_map(|(_, c)| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(reasoning.trim(), "The user asks about the weather.");
    assert_eq!(content.trim(), "It is sunny.");

    let r: Value = s
        .post(
            "/v1/messages",
            json!({"model": THINKER, "max_tokens": 2000, "thinking": {"type": "enabled", "budget_tokens": 1024},
            "messages": [{"role": "user", "content": "Weather?"}]}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["content"][0]["type"], "thinking", "{r}");
    assert_eq!(r["content"][0]["thinking"].as_str().unwrap().trim(), "The user asks about the weather.");
    assert_eq!(r["content"][1]["text"].as_str().unwrap().trim(), "It is sunny.");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_model_s_tool_parser_type_overrides_its_template() {
    let (s, _dir) = server().await;
    let r: Value = s.post("/v1/chat/completions", chat(CODER, false)).send().await.unwrap().json().await.unwrap();
    let call = &r["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{r}");
    // Typed by the tool's schema: `days` is an integer.
    assert_eq!(
        serde_json::from_str::<Value>(call["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris", "days": 3})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_constraint_starts_after_the_reasoning() {
    let (s, _dir) = server().await;
    let req = json!({"model": THINKER, "messages": [{"role": "user", "content": "Weather?"}], "max_tokens": 60,
        "temperature": 0, "guided_regex": "(sunny|rainy)"});
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    // The model reasons as it likes; its answer is held to the grammar.
    assert_eq!(message["reasoning_content"].as_str().unwrap().trim(), "The user asks about the weather.", "{r}");
    assert!(["sunny", "rainy"].contains(&message["content"].as_str().unwrap().trim()), "{r}");
    assert_eq!(r["choices"][0]["finish_reason"], "stop");
}

#[tokio::test(flavor = "multi_thread")]
async fn under_auto_a_started_call_follows_the_tool_s_schema() {
    let (s, dir) = server().await;
    // A model that would write `"days": "three"` for an integer parameter.
    let sloppy = [
        "I will call it.",
        "\n<tool_call>",
        "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"",
        "Paris",
        "\", \"days\": \"three\"}}\n",
        "</tool_call>",
    ];
    let path = dir.path().join("sloppy");
    write_scripted_model(&path, &sloppy, &template("Qwen-Qwen2.5-7B-Instruct.jinja")).unwrap();
    s.state.registry.insert("sloppy", &path);
    let mut req = chat("sloppy", false);
    req["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"]}}}]);
    req["max_tokens"] = json!(120);
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    // The text before the call is free; the call is held to the schema once it starts.
    assert!(message["content"].as_str().unwrap().starts_with("I will call it."), "{r}");
    let call = &message["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{r}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].as_str().unwrap().starts_with("Paris"), "{args}");
    assert!(args["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)), "{args}");
}

/// gpt-oss's harmony tokens.
const HARMONY: &[&str] =
    &["<|start|>", "<|end|>", "<|message|>", "<|channel|>", "<|constrain|>", "<|return|>", "<|call|>", "<|final|>"];

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_call_is_written_in_harmony_by_a_random_gpt_oss_style_model() {
    let (s, dir) = server().await;
    let path = dir.path().join("random-oss");
    let template = template("openai-gpt-oss-120b.jinja");
    mlx_manager_engine::tiny::write_templated_model(&path, &template, HARMONY, &["<|call|>", "<|return|>"]).unwrap();
    s.state.registry.insert("random-oss", &path);
    let mut req = chat("random-oss", false);
    // Bounded strings: a random model would otherwise write one city name forever.
    req["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"]}}}]);
    req["tool_choice"] = json!("required");
    req["max_tokens"] = json!(400);
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let call = &r["choices"][0]["message"]["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{r}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].as_str().is_some_and(|c| c.chars().count() <= 8), "{args}");
    assert!(args["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)), "{args}");
    assert_eq!(r["choices"][0]["finish_reason"], "tool_calls");
}

/// A forced call in Qwen3-Coder's XML-ish syntax from a random-weight model: one parameter tag per
/// argument, strings as plain text, integers as JSON, read back as a call valid for the schema.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_call_is_written_in_qwen3_coder_syntax_by_a_random_model() {
    let (s, dir) = server().await;
    let path = dir.path().join("random-coder");
    let specials = ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>"];
    let template = template("Qwen-Qwen2.5-7B-Instruct.jinja");
    mlx_manager_engine::tiny::write_templated_model(&path, &template, &specials, &["<|im_end|>"]).unwrap();
    let tc = path.join("tokenizer_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&tc).unwrap()).unwrap();
    config["tool_parser_type"] = json!("qwen3_coder");
    std::fs::write(&tc, config.to_string()).unwrap();
    s.state.registry.insert("random-coder", &path);
    let mut req = chat("random-coder", false);
    req["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "days"]}}}]);
    req["tool_choice"] = json!({"type": "function", "function": {"name": "get_weather"}});
    req["parallel_tool_calls"] = json!(false);
    req["max_tokens"] = json!(200);
    for seed in 0..3 {
        req["seed"] = json!(seed);
        req["temperature"] = json!(1.0);
        let r: Value = s.post("/v1/chat/completions", req.clone()).send().await.unwrap().json().await.unwrap();
        let call = &r["choices"][0]["message"]["tool_calls"][0]["function"];
        assert_eq!(call["name"], "get_weather", "{r}");
        let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].as_str().is_some_and(|c| !c.is_empty() && c.chars().count() <= 8), "{args}");
        assert!(args["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)), "{args}");
        assert!(args.get("unit").is_none_or(|u| u == "celsius" || u == "fahrenheit"), "{args}");
        assert_eq!(r["choices"][0]["finish_reason"], "tool_calls", "{r}");
    }
}

/// A random-weight model with `template` (and its tool-call tokens as special tokens) under `name`.
fn random_model(s: &TestServer, dir: &Path, name: &str, template: &str, specials: &[&str], eos: &[&str]) {
    let path = dir.join(name);
    mlx_manager_engine::tiny::write_templated_model(&path, template, specials, eos).unwrap();
    s.state.registry.insert(name, &path);
}

/// get_weather with bounded strings (a random model would otherwise write one city forever), an
/// integer range, an enum and a required nested object with an array (a random model leaves
/// optional ones out).
fn weather_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "options": {"type": "object", "properties": {"metric": {"type": "boolean"},
                "hours": {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 23}, "maxItems": 3}},
                "required": ["metric", "hours"]}},
        "required": ["city", "days", "options"]}}})
}

fn time_tool() -> Value {
    json!({"type": "function", "function": {"name": "get_time", "description": "Time", "parameters": {"type": "object",
        "properties": {"zone": {"type": "string", "enum": ["UTC", "CET"]}}, "required": ["zone"]}}})
}

/// The one call of a forced answer, checked against its tool's schema (by hand: the keys, types
/// and bounds `weather_tool` and `time_tool` declare, nothing else).
fn assert_valid_call(r: &Value) {
    let calls = r["choices"][0]["message"]["tool_calls"].as_array().unwrap_or_else(|| panic!("no call: {r}"));
    assert_eq!(calls.len(), 1, "{r}");
    let call = &calls[0]["function"];
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
    assert_eq!(r["choices"][0]["finish_reason"], "tool_calls", "{r}");
    // No text: the grammar starts with the call.
    assert!(r["choices"][0]["message"]["content"].as_str().unwrap_or_default().is_empty(), "{r}");
}

/// The model's control tokens in a forced answer are its own special tokens, never their text
/// spelled out: each of `controls` the answer holds is one token of its own (by the logprobs,
/// one entry a token; the tiny models' other tokens are single bytes) as often as the answer's
/// text holds it; the first one is there.
fn assert_control_tokens(r: &Value, controls: &[&str]) {
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
async fn assert_forced_calls(s: &TestServer, model: &str, controls: &[&str]) {
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

/// Mistral's two syntaxes, each model under its own template: the older JSON list (Nemo) and
/// v11's `NAME[ARGS]{…}` (Small 3.2); the grammar allows both, the parser reads either back.
/// `[TOOL_CALLS]` and `[ARGS]` are the model's special tokens, written as those tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_call_is_written_in_mistral_syntax_by_a_random_model() {
    let (s, dir) = server().await;
    let specials =
        ["[INST]", "[/INST]", "[TOOL_CALLS]", "[ARGS]", "[CALL_ID]", "[AVAILABLE_TOOLS]", "[/AVAILABLE_TOOLS]"];
    for (name, file) in [
        ("random-nemo", "mistralai-Mistral-Nemo-Instruct-2407.jinja"),
        ("random-small", "mistralai-Mistral-Small-3.2-24B-Instruct-2506.jinja"),
    ] {
        random_model(&s, dir.path(), name, &template(file), &specials, &[]);
        assert_forced_calls(&s, name, &["[TOOL_CALLS]", "[ARGS]"]).await;
    }
}

/// Marks the added tokens `tokens` of a model special in its tokenizer.json, as Mistral's own
/// tokenizers have their control tokens (a scripted model's pieces are plain added tokens).
fn mark_special(model: &Path, tokens: &[&str]) {
    let path = model.join("tokenizer.json");
    let mut tokenizer: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    for added in tokenizer["added_tokens"].as_array_mut().unwrap() {
        if tokens.contains(&added["content"].as_str().unwrap()) {
            added["special"] = json!(true);
        }
    }
    std::fs::write(&path, tokenizer.to_string()).unwrap();
}

/// Mistral v11's `[TOOL_CALLS]NAME[ARGS]{…}` (a random model above mostly takes the JSON list):
/// a scripted model that writes it with a sloppy argument is held to the schema, whether its
/// control tokens are plain added tokens or special ones (as in Mistral's tokenizers: then the
/// grammar's `[TOOL_CALLS]` and `[ARGS]` are those tokens).
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_mistral_v11_call_follows_the_tool_s_schema() {
    let (s, dir) = server().await;
    let sloppy = ["[TOOL_CALLS]", "get_weather", "[ARGS]", "{\"city\": \"", "Paris", "\", \"days\": \"three\"}"];
    for (name, special) in [("sloppy-mistral", false), ("sloppy-mistral-special", true)] {
        let path = dir.path().join(name);
        write_scripted_model(&path, &sloppy, &template("mistralai-Mistral-Small-3.2-24B-Instruct-2506.jinja")).unwrap();
        if special {
            mark_special(&path, &["[TOOL_CALLS]", "[ARGS]"]);
        }
        s.state.registry.insert(name, &path);
        let mut req = chat(name, false);
        req["messages"] =
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]);
        req["tools"] = json!([weather_tool(), time_tool()]);
        req["tool_choice"] = json!("required");
        req["parallel_tool_calls"] = json!(false);
        req["max_tokens"] = json!(200);
        req["logprobs"] = json!(true);
        let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
        assert_valid_call(&r);
        assert_control_tokens(&r, &["[TOOL_CALLS]", "[ARGS]"]);
        let pieces = r["choices"][0]["logprobs"]["content"].as_array().unwrap();
        assert!(pieces.iter().any(|t| t["token"] == "[ARGS]"), "{r}");
        let call = &r["choices"][0]["message"]["tool_calls"][0];
        assert_eq!(call["function"]["name"], "get_weather", "{r}");
        let args: Value = serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert!(args["city"].as_str().unwrap().starts_with("Paris"), "{args}");
        // Mistral's templates take nine alphanumerics as a call's id.
        assert!(call["id"].as_str().is_some_and(|id| id.len() == 9), "{r}");
    }
}

/// Under `auto`, a Mistral call is held to the tool's schema once `[TOOL_CALLS]` is written (its
/// control tokens special, as in Mistral's tokenizers).
#[tokio::test(flavor = "multi_thread")]
async fn under_auto_a_started_mistral_call_follows_the_tool_s_schema() {
    let (s, dir) = server().await;
    let sloppy =
        ["Checking.", "[TOOL_CALLS]", "get_weather", "[ARGS]", "{\"city\": \"", "Paris", "\", \"days\": \"three\"}"];
    let path = dir.path().join("auto-mistral");
    write_scripted_model(&path, &sloppy, &template("mistralai-Mistral-Small-3.2-24B-Instruct-2506.jinja")).unwrap();
    mark_special(&path, &["[TOOL_CALLS]", "[ARGS]"]);
    s.state.registry.insert("auto-mistral", &path);
    let mut req = chat("auto-mistral", false);
    req["messages"] =
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Paris?"}]);
    req["tools"] = json!([weather_tool(), time_tool()]);
    req["max_tokens"] = json!(200);
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    // (After the call the script starts over, until max_tokens: only the first call is checked.)
    assert!(message["content"].as_str().is_some_and(|t| t.starts_with("Checking.")), "{r}");
    let call = &message["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{r}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].as_str().unwrap().starts_with("Paris"), "{args}");
    assert!(args["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)), "{args}");
}

/// Gemma's syntax (`<|tool_call>call:NAME{key:<|"|>text<|"|>,…}<tool_call|>`, or FunctionGemma's
/// `<start_function_call>…<escape>…`): nested objects, arrays, enums and numbers in Gemma's own
/// value syntax, read back as JSON arguments valid for the schema.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_call_is_written_in_gemma_syntax_by_a_random_model() {
    let (s, dir) = server().await;
    let specials = ["<|turn>", "<turn|>", "<|tool_call>", "<tool_call|>", "<|\"|>", "<|channel>", "<channel|>"];
    random_model(&s, dir.path(), "random-gemma", &template("google-gemma-4-31B-it.jinja"), &specials, &["<turn|>"]);
    assert_forced_calls(&s, "random-gemma", &["<|tool_call>", "<|\"|>", "<tool_call|>"]).await;
    // Anthropic's `tool_choice: any` takes the same path.
    let req = json!({"model": "random-gemma", "max_tokens": 300, "temperature": 1.0,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"name": "get_time", "description": "Time", "input_schema": time_tool()["function"]["parameters"]}],
        "tool_choice": {"type": "any"}});
    let r: Value = s.post("/v1/messages", req).send().await.unwrap().json().await.unwrap();
    let block = r["content"].as_array().unwrap().iter().find(|b| b["type"] == "tool_use").cloned();
    let block = block.unwrap_or_else(|| panic!("no tool_use: {r}"));
    assert_eq!(block["name"], "get_time", "{r}");
    assert!(block["input"] == json!({"zone": "UTC"}) || block["input"] == json!({"zone": "CET"}), "{r}");
}

/// FunctionGemma's calls (`<start_function_call>…<escape>…`) share Gemma's parser but not Gemma
/// 4's quote token, which the grammar names: a forced call there is refused, not left free.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_call_on_function_gemma_is_refused_not_ignored() {
    let (s, dir) = server().await;
    let template = "{%- for m in messages %}<start_of_turn>{{ m.role }}\n{{ m.content }}<end_of_turn>\n{%- endfor %}\
        {#- calls: <start_function_call>call:NAME{k:<escape>v<escape>}<end_function_call> #}<start_of_turn>model\n";
    let specials = ["<start_function_call>", "<end_function_call>", "<escape>"];
    random_model(&s, dir.path(), "random-fg", template, &specials, &[]);
    let mut req = chat("random-fg", false);
    req["tools"] = json!([time_tool()]);
    req["tool_choice"] = json!("required");
    let r = s.post("/v1/chat/completions", req).send().await.unwrap();
    let problem = common::assert_problem(r, 422, "validation_error").await;
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("cannot be enforced"), "{problem}");
}

/// Under `auto`, gpt-oss's call (a message to `functions.NAME`) is held to the tool's schema
/// once its recipient is written: a model that would write `"days": "three"` writes an integer.
#[tokio::test(flavor = "multi_thread")]
async fn under_auto_a_started_harmony_call_follows_the_tool_s_schema() {
    let (s, dir) = server().await;
    let sloppy = [
        "<|channel|>analysis<|message|>Need the weather.<|end|>",
        "<|start|>assistant<|channel|>commentary to=functions",
        ".get_weather <|constrain|>json<|message|>",
        "{\"city\": \"",
        "Paris",
        "\", \"days\": \"three\"}",
        "<|call|>",
    ];
    let path = dir.path().join("sloppy-oss");
    write_scripted_model(&path, &sloppy, &template("openai-gpt-oss-120b.jinja")).unwrap();
    s.state.registry.insert("sloppy-oss", &path);
    let mut req = chat("sloppy-oss", false);
    req["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"]}}},
        // A second tool, so that only the `.` after the recipient's `functions` is forced: a
        // longer forced text is written in the tokenizer's own tokens, not the script's.
        {"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object"}}}]);
    req["max_tokens"] = json!(120);
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    // The analysis before the call is free; the call is held to the schema once it starts.
    assert!(message["reasoning_content"].as_str().is_some_and(|t| t.starts_with("Need the weather.")), "{r}");
    let call = &message["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{r}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].as_str().unwrap().starts_with("Paris"), "{args}");
    assert!(args["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)), "{args}");
}

/// Under `auto`, Llama 3's bare JSON call is held to the tool's schema once `{"name":` names a
/// declared tool; JSON naming anything else stays free text.
#[tokio::test(flavor = "multi_thread")]
async fn under_auto_a_started_llama3_call_follows_the_tool_s_schema() {
    let (s, dir) = server().await;
    let scripts: [(&str, &[&str]); 2] = [
        (
            "sloppy-llama",
            &[
                "Let me check. ",
                "{\"name\":",
                " \"get_weather\", \"parameters\": {\"city\": \"",
                "Paris",
                "\", \"days\": \"three\"}}",
            ],
        ),
        ("chatty-llama", &["Here: ", "{\"name\":", " \"Ada\"", ", \"age\": 36}"]),
    ];
    for (name, script) in scripts {
        let path = dir.path().join(name);
        write_scripted_model(&path, script, &template("meta-llama-Llama-3.1-8B-Instruct.jinja")).unwrap();
        s.state.registry.insert(name, &path);
    }
    let mut req = chat("sloppy-llama", false);
    req["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object",
        "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
        "required": ["city", "days"]}}}]);
    req["max_tokens"] = json!(120);
    let r: Value = s.post("/v1/chat/completions", req.clone()).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    assert!(message["content"].as_str().unwrap_or_default().starts_with("Let me check."), "{r}");
    let call = &message["tool_calls"][0]["function"];
    assert_eq!(call["name"], "get_weather", "{r}");
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert!(args["city"].as_str().unwrap().starts_with("Paris"), "{args}");
    assert!(args["days"].as_i64().is_some_and(|d| (1..=7).contains(&d)), "{args}");
    // Not a declared tool: the object is the answer's text, as the model wrote it.
    req["model"] = json!("chatty-llama");
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    assert_eq!(message["content"], "Here: {\"name\": \"Ada\", \"age\": 36}", "{r}");
    assert!(message.get("tool_calls").is_none(), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_choice_none_shows_no_tools_and_parses_no_calls() {
    let (s, _dir) = server().await;
    let mut req = chat(AGENT, false);
    req["tool_choice"] = json!("none");
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    assert_eq!(r["choices"][0]["finish_reason"], "stop", "{r}");
    assert!(r["choices"][0]["message"].get("tool_calls").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_that_fail_validation_load_nothing() {
    let (s, _dir) = server().await;
    let loaded = |s: &TestServer| {
        let engine = s.state.engine.clone();
        async move { engine.status().await.unwrap().loaded.into_iter().map(|m| m.id).collect::<Vec<_>>() }
    };
    let bad = [
        json!({"model": "idle", "messages": [{"role": "user", "content": "x"}], "temperature": 9}),
        json!({"model": "idle", "messages": [{"role": "user", "content": "x"}], "logit_bias": {"1": 2}}),
        json!({"model": "idle", "messages": [{"role": "user", "content": "x"}], "tools": tools(), "tool_choice": {"type": "function", "function": {"name": "nope"}}}),
        json!({"model": "idle", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
        // More than the model's context (2048, per its config.json).
        json!({"model": "idle", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5000}),
        json!({"model": "idle", "messages": [{"role": "user", "content": "x"}], "response_format": {"type": "json_schema",
            "json_schema": {"name": "bad", "schema": {"type": "object", "properties": {"a": {"type": "string", "pattern": "(?<=x)y"}}}}}}),
    ];
    for body in bad {
        let r = s.post("/v1/chat/completions", body.clone()).send().await.unwrap();
        assert_eq!(r.status(), 422, "{body}");
    }
    let r = s
        .post("/v1/messages", json!({"model": "idle", "max_tokens": 5, "temperature": 1.5, "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    assert!(!loaded(&s).await.contains(&"idle".to_string()), "a rejected request must not load its model");
    // (Models are only evicted to make room for a load, so nothing else was evicted either.)
}

/// A prompt longer than the model's context (2048) is a 422 naming `messages`, whether its size
/// alone proves it (refused untokenized) or it has to be tokenized first (off the engine thread);
/// the model keeps serving.
#[tokio::test(flavor = "multi_thread")]
async fn prompts_over_the_context_are_422_naming_messages() {
    let (s, _dir) = server().await;
    for words in [1_000_000, 3_000] {
        let body =
            json!({"model": AGENT, "messages": [{"role": "user", "content": "ab ".repeat(words)}], "max_tokens": 5});
        let r = s.post("/v1/chat/completions", body).send().await.unwrap();
        let problem = common::assert_problem(r, 422, "validation_error").await;
        assert_eq!(problem["errors"][0]["field"], "messages", "{words} words: {problem}");
        let message = problem["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("context is 2048"), "{words} words: {message}");
    }
    let r = s.post("/v1/chat/completions", chat(AGENT, false)).send().await.unwrap();
    assert_eq!(r.status(), 200);
}
