//! Request translation between the OpenAI and Anthropic APIs: what maps, and what is refused
//! (naming the field) instead of being dropped.

use mlx_manager_core::ProviderKind;
use mlx_manager_providers::{chat_to_messages, messages_to_chat, ProviderError};
use serde_json::{json, Map, Value};

fn obj(v: Value) -> Map<String, Value> {
    v.as_object().unwrap().clone()
}

#[test]
fn openai_chat_becomes_an_anthropic_message_request() {
    let body = obj(json!({
        "model": "claude-x", "max_completion_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": "END",
        "stream": true, "stream_options": {"include_usage": true}, "user": "u-1", "n": 1, "logprobs": false,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": [{"type": "text", "text": "No lists."}]},
            {"role": "user", "content": [{"type": "text", "text": "Hi "}, {"type": "text", "text": "there"}]},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Again"}
        ]
    }));
    let out = chat_to_messages(&body, "anth").unwrap();
    assert_eq!(
        out,
        json!({
            "model": "claude-x", "max_tokens": 64, "system": "Be brief.\n\nNo lists.",
            "messages": [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Again"}],
            "temperature": 0.2, "top_p": 0.9, "stop_sequences": ["END"], "metadata": {"user_id": "u-1"}, "stream": true
        })
    );
    // Anthropic requires max_tokens: a default is filled in.
    let out =
        chat_to_messages(&obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]})), "anth").unwrap();
    assert_eq!(out["max_tokens"], 4096);
}

#[test]
fn what_anthropic_cannot_express_is_refused_by_name() {
    for (field, value) in
        [("logprobs", json!(true)), ("n", json!(2)), ("tools", json!([])), ("presence_penalty", json!(0.5))]
    {
        let mut body = obj(json!({"model": "m", "messages": [{"role": "user", "content": "x"}]}));
        body.insert(field.into(), value);
        match chat_to_messages(&body, "anth") {
            Err(ProviderError::Unsupported { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: expected Unsupported, got {other:?}"),
        }
    }
    let tool = obj(json!({"model": "m", "messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]}));
    assert!(
        matches!(chat_to_messages(&tool, "anth"), Err(ProviderError::Unsupported { field, .. }) if field == "messages[0].role")
    );
    let image = obj(
        json!({"model": "m", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]}),
    );
    assert!(
        matches!(chat_to_messages(&image, "anth"), Err(ProviderError::Unsupported { field, .. }) if field == "messages[0].content[0]")
    );
}

#[test]
fn anthropic_messages_become_an_openai_chat_request() {
    let body = obj(json!({
        "model": "gpt-x", "max_tokens": 32, "system": [{"type": "text", "text": "Be brief."}], "temperature": 0.5,
        "top_k": 40, "stop_sequences": ["\n\n"], "stream": true, "metadata": {"user_id": "u-2"},
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}, {"role": "assistant", "content": "Yo"}]
    }));
    let out = messages_to_chat(&body, ProviderKind::OpenaiCompatible, "vllm").unwrap();
    assert_eq!(
        out,
        json!({
            "model": "gpt-x",
            "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
            "max_tokens": 32, "temperature": 0.5, "top_k": 40, "stop": ["\n\n"], "user": "u-2",
            "stream": true, "stream_options": {"include_usage": true}
        })
    );
    // OpenAI's own API has no top_k: refused rather than dropped.
    assert!(
        matches!(messages_to_chat(&body, ProviderKind::Openai, "openai"), Err(ProviderError::Unsupported { field, .. }) if field == "top_k")
    );
    let mut thinking = body.clone();
    thinking.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": 1024}));
    assert!(
        matches!(messages_to_chat(&thinking, ProviderKind::OpenaiCompatible, "vllm"), Err(ProviderError::Unsupported { field, .. }) if field == "thinking")
    );
}
