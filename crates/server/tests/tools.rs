//! Tool calls and reasoning through the real engine and the real server, on both APIs, whole
//! and streamed: a scripted tiny model (it always answers with the same pieces, see
//! `tiny::write_scripted_model`) writes real markup under real chat templates, and clients see
//! calls, text and reasoning — never the markup.

mod common;

use common::tool_models::*;
use serde_json::{json, Value};

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
