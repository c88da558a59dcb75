//! The conversations tests/templates.rs renders: plain chats, and agent conversations with
//! tools, tool calls and tool results.

use mlx_manager_engine::ChatMessage;
use serde_json::json;

pub fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

/// Plain conversations every template renders.
pub fn conversations() -> Vec<(&'static str, Vec<ChatMessage>)> {
    vec![
        ("user", vec![msg("user", "Hello!")]),
        ("system+user", vec![msg("system", "You are terse."), msg("user", "  What is 2+2?  ")]),
        (
            "multi-turn",
            vec![
                msg("user", "Write a haiku about the sea."),
                msg("assistant", "Waves fold into foam,\nsalt wind carries gull voices."),
                msg("user", "Now one in French — avec des accents: é, à, ç."),
            ],
        ),
        (
            "system+multi-turn",
            vec![
                msg("system", "Answer in one line.\nBe kind."),
                msg("user", "Hi"),
                msg("assistant", "Hello! How can I help?"),
                msg("user", "Name a colour."),
            ],
        ),
        ("ends-on-assistant", vec![msg("user", "Say yes."), msg("assistant", "Yes.")]),
    ]
}

/// Tool call ids: Mistral's templates require 9 alphanumeric characters.
const WEATHER_CALL: &str = "W3ath3r01";
const SEARCH_CALL: &str = "s3arch0X2";

/// Two function tools, with nested JSON-schema parameters and non-ASCII descriptions.
pub fn tools() -> serde_json::Value {
    json!([
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Météo actuelle d'une ville — température en °C",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "city": {"type": "string", "description": "Nom de la ville, p. ex. « Zürich »"},
                        "unit": {"type": "string", "description": "Unité", "enum": ["celsius", "fahrenheit"]},
                        "at": {
                            "type": "object",
                            "description": "Position (optionnelle)",
                            "properties": {
                                "lat": {"type": "number", "description": "Latitude"},
                                "lon": {"type": "number", "description": "Longitude"}
                            },
                            "required": ["lat", "lon"]
                        }
                    },
                    "required": ["city"]
                }
            }
        },
        {
            "type": "function",
            "function": {
                "name": "search_docs",
                "description": "文書を検索する (search the docs)",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "description": "Suchbegriff"},
                        "filters": {
                            "type": "array",
                            "description": "Field filters",
                            "items": {
                                "type": "object",
                                "properties": {
                                    "field": {"type": "string", "description": "Field name"},
                                    "values": {"type": "array", "description": "Accepted values", "items": {"type": "string"}}
                                },
                                "required": ["field"]
                            }
                        },
                        "limit": {"type": "integer", "description": "Max results"}
                    },
                    "required": ["query"]
                }
            }
        }
    ])
}

fn weather_call() -> (&'static str, &'static str, &'static str) {
    (WEATHER_CALL, "get_weather", r#"{"city": "Zürich", "unit": "celsius"}"#)
}

fn search_call() -> (&'static str, &'static str, &'static str) {
    (
        SEARCH_CALL,
        "search_docs",
        r#"{"query": "Föhn", "filters": [{"field": "lang", "values": ["de", "fr"]}], "limit": 3, "exact": false, "score": 0.5}"#,
    )
}

/// Agent conversations, rendered with [`tools`] and the generation prompt.
///
/// transformers drops a message's keys whose value is None, so an assistant turn with
/// `content: null` has no `content` at all, which some templates (Qwen3) refuse; mlx-lm's server
/// sends `""` instead, so both shapes are here.
pub fn tool_conversations() -> Vec<(&'static str, Vec<ChatMessage>)> {
    let ask = msg("user", "Quel temps fait-il à Zürich ?");
    let weather_result = r#"{"temperature": 21.5, "sky": "clear"}"#;
    let reasoning = "The user wants the weather: call get_weather.";
    // One call, content null, with the reasoning that led to it; the result by tool_call_id.
    let one_call = vec![
        ask.clone(),
        ChatMessage::assistant_tool_calls(None, &[weather_call()]).with_reasoning(reasoning),
        ChatMessage::tool_result(WEATHER_CALL, weather_result),
    ];
    // The same with content "" (what mlx-lm's server makes of null).
    let one_call_empty = vec![
        ask.clone(),
        ChatMessage::assistant_tool_calls(Some(""), &[weather_call()]).with_reasoning(reasoning),
        ChatMessage::tool_result(WEATHER_CALL, weather_result),
    ];
    let mut answered = one_call_empty.clone();
    answered.push(msg("assistant", "Il fait 21,5 °C et le ciel est dégagé à Zürich."));
    answered.push(msg("user", "Merci ! Et demain ?"));
    // Two calls with text; the results by id and by name; an answer; a follow-up question.
    let two_calls = vec![
        msg("system", "You are a helpful assistant with tools."),
        msg("user", "Weather in Zürich, and the docs about Föhn?"),
        ChatMessage::assistant_tool_calls(Some("Let me check both."), &[weather_call(), search_call()]),
        ChatMessage::tool_result(WEATHER_CALL, weather_result).with_name("get_weather"),
        ChatMessage::tool_result(SEARCH_CALL, "[\"Föhn: a warm, dry wind\"]").with_name("search_docs"),
        msg("assistant", "21.5 °C, clear. The docs say the Föhn is a warm, dry wind."),
        msg("user", "Thanks!"),
    ];
    // Arguments that are not a JSON object stay the client's string.
    let raw_arguments = vec![
        ask.clone(),
        ChatMessage::assistant_tool_calls(Some(""), &[(WEATHER_CALL, "get_weather", "city=Zürich")]),
        ChatMessage::tool_result(WEATHER_CALL, weather_result),
    ];
    vec![
        ("tools/user", vec![msg("system", "Be brief."), ask]),
        ("tools/one-call", one_call),
        ("tools/one-call+empty-content", one_call_empty),
        ("tools/answered+follow-up", answered),
        ("tools/two-calls", two_calls),
        ("tools/raw-arguments", raw_arguments),
    ]
}
