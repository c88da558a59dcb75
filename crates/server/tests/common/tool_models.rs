//! The scripted tool-calling models and requests that tests/tools.rs and tests/tool_grammars.rs
//! share: a server with an agent (Hermes calls), a thinker (Qwen3 reasoning), an idle model and a
//! coder (Qwen3-Coder XML calls), each a scripted tiny model under a real chat template.

use std::path::Path;

use mlx_manager_engine::tiny::{write_scripted_model, AGENT_SCRIPT, THINKER_SCRIPT};
use serde_json::{json, Value};

use super::TestServer;

pub const AGENT: &str = "agent";
pub const CODER: &str = "coder";

/// A Qwen3-Coder XML call.
pub const CODER_SCRIPT: &[&str] = &[
    "<tool_call>",
    "\n<function=get_weather>\n<parameter=city>\n",
    "Paris",
    "\n</parameter>\n<parameter=days>\n3\n</parameter>\n</function>\n",
    "</tool_call>",
];
pub const THINKER: &str = "thinker";

pub fn template(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/templates").join(file);
    std::fs::read_to_string(path).unwrap()
}

pub async fn server() -> (TestServer, tempfile::TempDir) {
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
    set_tool_parser(&dir.path().join(CODER), "qwen3_coder");
    (s, dir)
}

/// Sets the model's `tool_parser_type` (mlx-lm's key in tokenizer_config.json, which overrides
/// the format its template implies).
pub fn set_tool_parser(model: &Path, name: &str) {
    let tc = model.join("tokenizer_config.json");
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string(&tc).unwrap()).unwrap();
    config["tool_parser_type"] = json!(name);
    std::fs::write(&tc, config.to_string()).unwrap();
}

pub fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]}}}])
}

pub fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": tools(),
        "temperature": 0, "max_tokens": 40, "stream": stream})
}

/// `(event name, data)` of each server-sent event.
pub async fn events(response: reqwest::Response) -> Vec<(String, Value)> {
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
