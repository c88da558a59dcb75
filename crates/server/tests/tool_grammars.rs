//! Tool calls held to their tools' schemas by constrained decoding, through the real engine and
//! server: forced calls (`tool_choice` required / named, Anthropic `any` / `tool`) written by
//! random-weight models in every tool-call format, which only come out valid if decoding is really
//! constrained; and, under `auto`, scripted models whose sloppy calls are held to the schema once
//! they start.

mod common;

use std::path::Path;

use common::grammar_models::*;
use common::tool_models::*;
use common::TestServer;
use mlx_manager_engine::tiny::write_scripted_model;
use serde_json::{json, Value};

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
    req["tools"] = json!([days_tool()]);
    req["max_tokens"] = json!(120);
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    // The text before the call is free; the call is held to the schema once it starts.
    assert!(message["content"].as_str().unwrap().starts_with("I will call it."), "{r}");
    assert_held_paris_call(&r);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_forced_call_is_written_in_harmony_by_a_random_gpt_oss_style_model() {
    let (s, dir) = server().await;
    let path = dir.path().join("random-oss");
    let template = template("openai-gpt-oss-120b.jinja");
    mlx_manager_engine::tiny::write_templated_model(&path, &template, HARMONY, &["<|call|>", "<|return|>"]).unwrap();
    s.state.registry.insert("random-oss", &path);
    let mut req = chat("random-oss", false);
    req["tools"] = json!([days_tool()]);
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
    random_coder(&s, dir.path(), "random-coder");
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
    assert_held_paris_call(&r);
}

/// Gemma's syntax (`<|tool_call>call:NAME{key:<|"|>text<|"|>,…}<tool_call|>`, or FunctionGemma's
/// `<start_function_call>…<escape>…`): nested objects, arrays, enums and numbers in Gemma's own
/// value syntax, read back as JSON arguments valid for the schema.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_call_is_written_in_gemma_syntax_by_a_random_model() {
    let (s, dir) = server().await;
    random_model(&s, dir.path(), "random-gemma", &template("google-gemma-4-31B-it.jinja"), GEMMA4, &["<turn|>"]);
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

/// FunctionGemma's syntax (`<start_function_call>call:NAME{key:<escape>text<escape>}
/// <end_function_call>`, Gemma 4's values with other delimiters): forced calls by a random-weight
/// model, named and `required`, read back as arguments valid for the schema; its tags and quote
/// are its own special tokens.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_call_is_written_in_function_gemma_syntax_by_a_random_model() {
    let (s, dir) = server().await;
    random_function_gemma(&s, dir.path(), "random-fg");
    assert_forced_calls(&s, "random-fg", &["<start_function_call>", "<escape>", "<end_function_call>"]).await;
}

/// Gemma 4's grammar names its quote token: on a vocabulary without it (FunctionGemma's, told
/// to parse Gemma 4's syntax) a forced call is refused, not left free or spelled out as text.
#[tokio::test(flavor = "multi_thread")]
async fn a_forced_gemma4_call_without_its_quote_token_is_refused_not_ignored() {
    let (s, dir) = server().await;
    random_function_gemma(&s, dir.path(), "fg-as-gemma4");
    set_tool_parser(&dir.path().join("fg-as-gemma4"), "gemma4");
    let mut req = chat("fg-as-gemma4", false);
    req["tools"] = json!([time_tool()]);
    req["tool_choice"] = json!("required");
    let r = s.post("/v1/chat/completions", req).send().await.unwrap();
    let problem = common::assert_problem(r, 422, "validation_error").await;
    let error = &problem["errors"][0];
    assert_eq!(error["field"], "tool_choice", "{problem}");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("cannot be enforced"), "{problem}");
    // llguidance's first line, not the grammar and token lists after it.
    assert!(message.chars().count() < 300 && !message.contains('\n'), "{problem}");
}

/// Under `auto`, a tool whose parameters llguidance cannot compile (valid JSON Schema it does not
/// implement, `if`/`then` here) leaves the calls free as before, rather than refusing every
/// request that declares it: `auto` asked for no constraint. (Before, the request failed with a
/// 422 once the grammar met the model.)
#[tokio::test(flavor = "multi_thread")]
async fn under_auto_a_tool_schema_llguidance_cannot_compile_leaves_calls_free() {
    let (s, dir) = server().await;
    let sloppy = [
        "\n<tool_call>",
        "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", \"days\": \"three\"}}\n",
        "</tool_call>",
    ];
    let path = dir.path().join("sloppy-free");
    write_scripted_model(&path, &sloppy, &template("Qwen-Qwen2.5-7B-Instruct.jinja")).unwrap();
    s.state.registry.insert("sloppy-free", &path);
    let mut tool = days_tool();
    tool["function"]["parameters"]["if"] = json!({"properties": {"city": {"const": "Paris"}}});
    tool["function"]["parameters"]["then"] = json!({"required": ["days"]});
    let mut req = chat("sloppy-free", false);
    req["tools"] = json!([tool]);
    req["max_tokens"] = json!(120);
    let r = s.post("/v1/chat/completions", req.clone()).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r: Value = r.json().await.unwrap();
    let call = &r["choices"][0]["message"]["tool_calls"][0]["function"];
    let args: Value = serde_json::from_str(call["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"city": "Paris", "days": "three"}), "{r}");
    // Forced, the same tool is refused by name before anything runs.
    req["tool_choice"] = json!("required");
    let r = s.post("/v1/chat/completions", req).send().await.unwrap();
    let problem = common::assert_problem(r, 422, "validation_error").await;
    assert_eq!(problem["errors"][0]["field"], "tools[0].function.parameters", "{problem}");
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
    req["tools"] = json!([days_tool(),
        // A second tool, so that only the `.` after the recipient's `functions` is forced: a
        // longer forced text is written in the tokenizer's own tokens, not the script's.
        {"type": "function", "function": {"name": "lookup", "description": "Look up", "parameters": {"type": "object"}}}]);
    req["max_tokens"] = json!(120);
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    // The analysis before the call is free; the call is held to the schema once it starts.
    assert!(message["reasoning_content"].as_str().is_some_and(|t| t.starts_with("Need the weather.")), "{r}");
    assert_held_paris_call(&r);
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
    req["tools"] = json!([days_tool()]);
    req["max_tokens"] = json!(120);
    let r: Value = s.post("/v1/chat/completions", req.clone()).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    assert!(message["content"].as_str().unwrap_or_default().starts_with("Let me check."), "{r}");
    assert_held_paris_call(&r);
    // Not a declared tool: the object is the answer's text, as the model wrote it.
    req["model"] = json!("chatty-llama");
    let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
    let message = &r["choices"][0]["message"];
    assert_eq!(message["content"], "Here: {\"name\": \"Ada\", \"age\": 36}", "{r}");
    assert!(message.get("tool_calls").is_none(), "{r}");
}

/// A Qwen3-Coder call with a sloppy `days` (`three` for an integer), after a short text.
const SLOPPY_CODER: &[&str] = &[
    "I will call it.",
    "\n<tool_call>",
    "\n<function=get_weather>\n<parameter=city>\n",
    "Paris",
    "\n</parameter>\n<parameter=days>\nthree\n</parameter>\n</function>\n",
    "</tool_call>",
];

/// A Gemma 4 call with a sloppy `days` (`three`, read back as a string), after a short text.
const SLOPPY_GEMMA4: &[&str] =
    &["Checking.", "<|tool_call>", "call:get_weather{city:", "<|\"|>", "Paris", "<|\"|>,days:three}", "<tool_call|>"];

/// The same in FunctionGemma's syntax.
const SLOPPY_FUNCTION_GEMMA: &[&str] = &[
    "Checking.",
    "<start_function_call>",
    "call:get_weather{city:",
    "<escape>",
    "Paris",
    "<escape>,days:three}",
    "<end_function_call>",
];

/// The scripted models with sloppy calls in Qwen3-Coder's, Gemma 4's and FunctionGemma's syntax:
/// (name, call start, call end). Gemma's tags and quote are special tokens, as in those models'
/// tokenizers (Qwen's `<tool_call>` is an ordinary added token in its own).
fn sloppy_models(s: &TestServer, dir: &Path) -> [(&'static str, &'static str, &'static str); 3] {
    let models: [(&str, &[&str], String, &[&str]); 3] = [
        ("sloppy-coder", SLOPPY_CODER, template("Qwen-Qwen2.5-7B-Instruct.jinja"), &[]),
        (
            "sloppy-gemma",
            SLOPPY_GEMMA4,
            template("google-gemma-4-31B-it.jinja"),
            &["<|tool_call>", "<|\"|>", "<tool_call|>"],
        ),
        (
            "sloppy-fg",
            SLOPPY_FUNCTION_GEMMA,
            FUNCTION_GEMMA_TEMPLATE.into(),
            &["<start_function_call>", "<escape>", "<end_function_call>"],
        ),
    ];
    for (name, script, template, special) in models {
        let path = dir.join(name);
        write_scripted_model(&path, script, &template).unwrap();
        mark_special(&path, special);
        s.state.registry.insert(name, &path);
    }
    set_tool_parser(&dir.join("sloppy-coder"), "qwen3_coder");
    [
        ("sloppy-coder", "<tool_call>", "</tool_call>"),
        ("sloppy-gemma", "<|tool_call>", "<tool_call|>"),
        ("sloppy-fg", "<start_function_call>", "<end_function_call>"),
    ]
}

/// Under `auto`, a Qwen3-Coder, Gemma 4 or FunctionGemma call is held to the tool's schema once
/// its start is written: a model that would write `three` for an integer writes an integer; the
/// text before the call is free.
#[tokio::test(flavor = "multi_thread")]
async fn under_auto_a_started_qwen3_coder_or_gemma_call_follows_the_tool_s_schema() {
    let (s, dir) = server().await;
    for ((name, _, _), text) in
        sloppy_models(&s, dir.path()).into_iter().zip(["I will call it.", "Checking.", "Checking."])
    {
        let mut req = chat(name, false);
        req["tools"] = json!([days_tool()]);
        req["max_tokens"] = json!(120);
        let r: Value = s.post("/v1/chat/completions", req).send().await.unwrap().json().await.unwrap();
        let message = &r["choices"][0]["message"];
        assert!(message["content"].as_str().is_some_and(|t| t.starts_with(text)), "{name}: {r}");
        assert_held_paris_call(&r);
    }
}

/// Under `auto`, sampled at temperature over several seeds: once a model has started a call
/// (the scripted ones start theirs, then sample among what the grammar allows where their
/// script is refused), the call it completes is valid for its tool's schema — get_weather's
/// nested object and array included, or get_time.
#[tokio::test(flavor = "multi_thread")]
async fn under_auto_sampled_qwen3_coder_and_gemma_calls_follow_the_tools_schemas() {
    let (s, dir) = server().await;
    for (name, start, end) in sloppy_models(&s, dir.path()) {
        let mut req = chat(name, false);
        req["logprobs"] = json!(true);
        req["tools"] = json!([weather_tool(), time_tool()]);
        req["parallel_tool_calls"] = json!(false);
        // Room for the blanks a model writes between JSON tokens (up to 24 a gap).
        req["max_tokens"] = json!(600);
        req["temperature"] = json!(1.0);
        let mut calls = 0;
        for seed in 0..6 {
            req["seed"] = json!(seed);
            let r: Value = s.post("/v1/chat/completions", req.clone()).send().await.unwrap().json().await.unwrap();
            let content = r["choices"][0]["logprobs"]["content"].as_array().unwrap_or_else(|| panic!("{r}"));
            let text: String = content.iter().map(|t| t["token"].as_str().unwrap()).collect();
            let Some(at) = text.find(start) else { continue };
            // (A call cut short by max_tokens is no call.)
            if text[at..].contains(end) {
                assert_valid_arguments(&r);
                calls += 1;
            }
        }
        assert!(calls >= 4, "{name}: {calls} calls in 6");
    }
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
