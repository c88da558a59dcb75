//! Requests as the SDKs send them parse into the typed layer, the API's own checks name the
//! field at fault, and an agent conversation (tools, calls, results, reasoning) survives the trip
//! OpenAI → Anthropic → OpenAI.

use mlx_manager_api::anthropic::MessagesRequest;
use mlx_manager_api::openai::ChatRequest;
use mlx_manager_api::{chat_to_messages, messages_to_chat, ApiTypeError, ChatDialect};
use serde_json::json;

fn agent_chat() -> serde_json::Value {
    json!({
        "model": "m", "max_tokens": 2000, "temperature": 0.2, "stream": true,
        "tools": [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
        "parallel_tool_calls": false,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
            {"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "18 C"},
            {"role": "user", "content": "Thanks"}
        ]
    })
}

#[test]
fn an_agent_conversation_becomes_anthropic_blocks() {
    let req: ChatRequest = serde_json::from_value(agent_chat()).unwrap();
    assert!(req.validate().is_empty(), "{:?}", req.validate());
    let out = serde_json::to_value(chat_to_messages(&req).unwrap()).unwrap();
    assert_eq!(
        out,
        json!({
            "model": "m", "max_tokens": 2000, "system": "Be brief.", "temperature": 0.2, "stream": true,
            "messages": [
                {"role": "user", "content": [{"type": "text", "text": "Weather in Paris?"}]},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "18 C"}, {"type": "text", "text": "Thanks"}]}
            ],
            "tools": [{"name": "get_weather", "description": "Weather",
                "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}],
            "tool_choice": {"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}
        })
    );
}

#[test]
fn the_conversation_survives_the_round_trip() {
    let req: ChatRequest = serde_json::from_value(agent_chat()).unwrap();
    let back = messages_to_chat(&chat_to_messages(&req).unwrap(), ChatDialect::Compatible).unwrap();
    let normal = |m: mlx_manager_api::openai::Message| match m {
        // Arguments are compared as JSON, not as text.
        mlx_manager_api::openai::Message::Assistant { content, reasoning_content, tool_calls, name } => {
            let tool_calls = tool_calls.map(|calls| {
                calls
                    .into_iter()
                    .map(|mut c| {
                        c.function.arguments =
                            serde_json::from_str::<serde_json::Value>(&c.function.arguments).unwrap().to_string();
                        c
                    })
                    .collect()
            });
            mlx_manager_api::openai::Message::Assistant { content, reasoning_content, tool_calls, name }
        }
        other => other,
    };
    assert_eq!(
        back.messages.into_iter().map(normal).collect::<Vec<_>>(),
        req.messages
            .iter()
            .cloned()
            .map(normal)
            .map(|m| {
                // The user's content parts come back as one text.
                match m {
                    mlx_manager_api::openai::Message::User { content, name } => {
                        mlx_manager_api::openai::Message::User {
                            content: mlx_manager_api::openai::Content::Text(content.text().unwrap()),
                            name,
                        }
                    }
                    other => other,
                }
            })
            .collect::<Vec<_>>()
    );
    assert_eq!(back.tools, req.tools);
    assert_eq!(back.tool_choice, req.tool_choice);
    assert_eq!(back.parallel_tool_calls, Some(false));
}

#[test]
fn anthropic_thinking_and_tool_results_reach_the_local_engine() {
    let req: MessagesRequest = serde_json::from_value(json!({
        "model": "m", "max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 2048},
        "tools": [{"name": "add", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "any"},
        "messages": [
            {"role": "user", "content": "1+2?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "use the tool", "signature": ""},
                {"type": "tool_use", "id": "toolu_1", "name": "add", "input": {"a": 1, "b": 2}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "3"}], "is_error": false}]}
        ]
    }))
    .unwrap();
    assert!(req.validate().is_empty());
    let chat = serde_json::to_value(messages_to_chat(&req, ChatDialect::Local).unwrap()).unwrap();
    assert_eq!(chat["messages"][1]["reasoning_content"], "use the tool");
    assert_eq!(
        chat["messages"][1]["tool_calls"][0]["function"],
        json!({"name": "add", "arguments": "{\"a\":1,\"b\":2}"})
    );
    assert_eq!(chat["messages"][2], json!({"role": "tool", "content": "3", "tool_call_id": "toolu_1"}));
    assert_eq!(chat["messages"].as_array().unwrap().len(), 3, "no empty user turn after the tool result");
    assert_eq!(chat["tool_choice"], "required");
    assert_eq!(chat["chat_template_kwargs"], json!({"enable_thinking": true}));
    assert_eq!(chat["reasoning_effort"], "low");
    // OpenAI itself takes neither reasoning history nor template variables.
    let openai = serde_json::to_value(messages_to_chat(&req, ChatDialect::OpenAi).unwrap()).unwrap();
    assert!(openai["messages"][1].get("reasoning_content").is_none());
    assert!(openai.get("chat_template_kwargs").is_none());
}

#[test]
fn what_the_other_api_cannot_say_is_refused_by_name() {
    let mut body = agent_chat();
    body["logprobs"] = json!(true);
    let req: ChatRequest = serde_json::from_value(body).unwrap();
    assert_eq!(
        chat_to_messages(&req).unwrap_err(),
        ApiTypeError::Untranslatable {
            field: "logprobs".into(),
            message: "the Anthropic Messages API has no equivalent".into()
        }
    );
    let mut body = agent_chat();
    body["response_format"] = json!({"type": "json_object"});
    let req: ChatRequest = serde_json::from_value(body).unwrap();
    assert!(
        matches!(chat_to_messages(&req), Err(ApiTypeError::Untranslatable { field, .. }) if field == "response_format")
    );
    let req: MessagesRequest = serde_json::from_value(json!({"model": "m", "max_tokens": 10, "top_k": 5,
        "messages": [{"role": "user", "content": "x"}]}))
    .unwrap();
    assert!(
        matches!(messages_to_chat(&req, ChatDialect::OpenAi), Err(ApiTypeError::Untranslatable { field, .. }) if field == "top_k")
    );
    assert!(messages_to_chat(&req, ChatDialect::Compatible).is_ok());
}

#[test]
fn checks_name_the_field() {
    let fields = |body: serde_json::Value| -> Vec<String> {
        let req: ChatRequest = serde_json::from_value(body).unwrap();
        req.validate().into_iter().map(|e| e.field).collect()
    };
    let user = json!([{"role": "user", "content": "x"}]);
    assert_eq!(fields(json!({"model": "m", "messages": user, "temperature": 2.5})), ["temperature"]);
    assert_eq!(fields(json!({"model": "m", "messages": []})), ["messages"]);
    assert_eq!(
        fields(
            json!({"model": "m", "messages": user, "tool_choice": {"type": "function", "function": {"name": "nope"}},
            "tools": [{"type": "function", "function": {"name": "ok"}}]})
        ),
        ["tool_choice.function.name"]
    );
    assert_eq!(fields(json!({"model": "m", "messages": user, "tool_choice": "required"})), ["tool_choice"]);
    assert_eq!(
        fields(
            json!({"model": "m", "messages": user, "tools": [{"type": "function", "function": {"name": "has space"}}]})
        ),
        ["tools[0].function.name"]
    );
    assert_eq!(fields(json!({"model": "m", "messages": user, "reasoning_effort": "max"})), ["reasoning_effort"]);
    assert_eq!(
        fields(json!({"model": "m", "messages": user, "stream_options": {"include_usage": true}})),
        ["stream_options"]
    );
    let anthropic: MessagesRequest =
        serde_json::from_value(json!({"model": "m", "max_tokens": 1000, "temperature": 1.5,
        "thinking": {"type": "enabled", "budget_tokens": 2000}, "messages": [{"role": "user", "content": "x"}]}))
        .unwrap();
    let fields: Vec<String> = anthropic.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["temperature", "thinking.budget_tokens"]);
}

/// Structured outputs cross between the APIs: OpenAI's `response_format` json_schema is
/// Anthropic's `output_config.format` (strict, as Anthropic's are), either way, and so is the
/// beta's `output_format`; a tool's `strict` goes along; Anthropic's effort is OpenAI's
/// reasoning effort. Any JSON object has no Anthropic equivalent (refused above).
#[test]
fn structured_outputs_cross_between_the_apis() {
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
        "additionalProperties": false});
    let mut body = agent_chat();
    body["response_format"] =
        json!({"type": "json_schema", "json_schema": {"name": "place", "schema": schema, "strict": true}});
    body["tools"][0]["function"]["strict"] = json!(true);
    let req: ChatRequest = serde_json::from_value(body).unwrap();
    let anthropic = serde_json::to_value(chat_to_messages(&req).unwrap()).unwrap();
    assert_eq!(anthropic["output_config"], json!({"format": {"type": "json_schema", "schema": schema}}));
    assert_eq!(anthropic["tools"][0]["strict"], true);

    for (field, value) in [
        ("output_config", json!({"format": {"type": "json_schema", "schema": schema}, "effort": "max"})),
        ("output_format", json!({"type": "json_schema", "schema": schema})),
    ] {
        let mut body = json!({"model": "m", "max_tokens": 100, "messages": [{"role": "user", "content": "x"}],
            "tools": [{"name": "get_weather", "input_schema": {"type": "object"}, "strict": true}]});
        body[field] = value;
        let req: MessagesRequest = serde_json::from_value(body).unwrap();
        assert!(req.validate().is_empty(), "{:?}", req.validate());
        for dialect in [ChatDialect::Local, ChatDialect::OpenAi] {
            let chat = serde_json::to_value(messages_to_chat(&req, dialect).unwrap()).unwrap();
            assert_eq!(
                chat["response_format"],
                json!({"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": true}}),
                "{field}"
            );
            assert_eq!(chat["tools"][0]["function"]["strict"], true);
            let effort = if field == "output_config" { json!("high") } else { serde_json::Value::Null };
            assert_eq!(chat["reasoning_effort"], effort, "{field}");
        }
    }

    // The checks name the field.
    let req: MessagesRequest = serde_json::from_value(json!({"model": "m", "max_tokens": 100,
        "messages": [{"role": "user", "content": "x"}],
        "output_config": {"format": {"type": "json_schema", "schema": "not a schema"}, "effort": "extreme"}}))
    .unwrap();
    let fields: Vec<String> = req.validate().into_iter().map(|e| e.field).collect();
    assert_eq!(fields, ["output_config.format.schema", "output_config.effort"]);
}
