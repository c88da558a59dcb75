//! Requests across APIs: an OpenAI chat request as an Anthropic Messages request and back, with
//! tools, tool choice, tool calls and results, and reasoning. What the target cannot express is
//! an [`ApiTypeError::Untranslatable`] naming the client's field, never silently dropped.

use serde_json::{Map, Value};

use crate::anthropic::{self as an, Block, MessagesRequest, Role};
use crate::encode::arguments_object;
use crate::error::ApiTypeError;
use crate::openai::{
    ChatRequest, Content, FunctionDef, FunctionName, JsonSchemaFormat, Message, NamedToolChoice, ResponseFormat, Stop,
    StreamOptions, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};

type Result<T> = std::result::Result<T, ApiTypeError>;

/// Reasoning budgets for `reasoning_effort` (Anthropic needs at least 1024).
const BUDGETS: [(&str, u32); 3] = [("low", 1024), ("medium", 4096), ("high", 16384)];

fn effort_of(budget: u32) -> &'static str {
    BUDGETS.iter().rev().find(|(_, b)| budget >= *b).map_or("low", |(e, _)| e)
}

/// A value that asks for nothing (sending it is the same as leaving it out).
fn is_neutral(key: &str, v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(if key == "n" { 1.0 } else { 0.0 }),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

fn refuse_extra(extra: &Map<String, Value>, api: &str) -> Result<()> {
    match extra.iter().find(|(k, v)| !is_neutral(k, v)) {
        Some((k, _)) => Err(ApiTypeError::untranslatable(k.clone(), format!("the {api} has no equivalent"))),
        None => Ok(()),
    }
}

fn text_of(content: &Content, field: &str) -> Result<String> {
    content.text().map_err(|i| ApiTypeError::untranslatable(format!("{field}[{i}]"), "only text content is translated"))
}

/// OpenAI → Anthropic: the message list, merged so roles alternate as Anthropic requires.
fn push_block(messages: &mut Vec<an::Message>, role: Role, block: Block) {
    if let Some(last) = messages.last_mut().filter(|m| m.role == role) {
        let mut blocks = last.content.blocks();
        blocks.push(block);
        last.content = an::Content::Blocks(blocks);
        return;
    }
    messages.push(an::Message { role, content: an::Content::Blocks(vec![block]) });
}

/// An OpenAI chat request as an Anthropic Messages request.
pub fn chat_to_messages(req: &ChatRequest) -> Result<MessagesRequest> {
    refuse_extra(&req.extra, "Anthropic Messages API")?;
    let neutral: [(&str, bool); 16] = [
        ("seed", req.seed.is_none()),
        // A schema is Anthropic's structured outputs (`output_config.format`); any JSON object has
        // no equivalent there.
        ("response_format", !matches!(req.response_format, Some(ResponseFormat::JsonObject))),
        ("guided_json", req.guided.guided_json.is_none()),
        ("guided_regex", req.guided.guided_regex.is_none()),
        ("guided_grammar", req.guided.guided_grammar.is_none()),
        ("guided_choice", req.guided.guided_choice.is_none()),
        ("draft_model", req.speculative.draft_model.is_none()),
        ("num_draft_tokens", req.speculative.num_draft_tokens.is_none()),
        ("n", req.n.is_none_or(|n| n == 1)),
        ("logprobs", req.logprobs != Some(true)),
        ("top_logprobs", req.top_logprobs.is_none_or(|n| n == 0)),
        ("presence_penalty", req.presence_penalty.is_none_or(|v| v == 0.0)),
        ("frequency_penalty", req.frequency_penalty.is_none_or(|v| v == 0.0)),
        ("repetition_penalty", req.repetition_penalty.is_none_or(|v| v == 1.0)),
        ("min_p", req.min_p.is_none_or(|v| v == 0.0)),
        ("chat_template_kwargs", req.chat_template_kwargs.as_ref().is_none_or(Map::is_empty)),
    ];
    if let Some((field, _)) = neutral.iter().find(|(_, ok)| !ok) {
        return Err(ApiTypeError::untranslatable(*field, "the Anthropic Messages API has no equivalent"));
    }
    if req.temperature.is_some_and(|t| t > 1.0) {
        return Err(ApiTypeError::untranslatable("temperature", "Anthropic's temperature is between 0 and 1"));
    }
    let mut system = Vec::new();
    let mut messages = Vec::new();
    for (i, m) in req.messages.iter().enumerate() {
        let field = format!("messages[{i}].content");
        match m {
            Message::System { content, .. } | Message::Developer { content, .. } => {
                system.push(text_of(content, &field)?)
            }
            Message::User { content, .. } => {
                push_block(&mut messages, Role::User, Block::text(text_of(content, &field)?))
            }
            Message::Assistant { content, tool_calls, .. } => {
                let text = content.as_ref().map(|c| text_of(c, &field)).transpose()?.unwrap_or_default();
                if !text.is_empty() {
                    push_block(&mut messages, Role::Assistant, Block::text(text));
                }
                for call in tool_calls.iter().flatten() {
                    let block = Block::tool_use(
                        call.id.clone(),
                        call.function.name.clone(),
                        arguments_object(&call.function.arguments),
                    );
                    push_block(&mut messages, Role::Assistant, block);
                }
            }
            Message::Tool { content, tool_call_id } => {
                let block = Block::ToolResult {
                    tool_use_id: tool_call_id.clone(),
                    content: Some(an::ToolResultContent::Text(text_of(content, &field)?)),
                    is_error: None,
                    cache_control: None,
                };
                push_block(&mut messages, Role::User, block);
            }
        }
    }
    let max_tokens = req.max_output().unwrap_or(4096);
    let disable_parallel = (req.parallel_tool_calls == Some(false)).then_some(true);
    let tool_choice = match &req.tool_choice {
        None if disable_parallel.is_some() => {
            Some(an::ToolChoice::Auto { disable_parallel_tool_use: disable_parallel })
        }
        None => None,
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => Some(an::ToolChoice::None),
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => {
            Some(an::ToolChoice::Auto { disable_parallel_tool_use: disable_parallel })
        }
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => {
            Some(an::ToolChoice::Any { disable_parallel_tool_use: disable_parallel })
        }
        Some(ToolChoice::Named(NamedToolChoice::Function { function })) => {
            Some(an::ToolChoice::Tool { name: function.name.clone(), disable_parallel_tool_use: disable_parallel })
        }
    };
    let thinking = match req.reasoning_effort.as_deref() {
        None => None,
        Some(effort) => {
            let budget = BUDGETS.iter().find(|(e, _)| *e == effort).map_or(1024, |(_, b)| *b);
            if max_tokens <= 1024 {
                return Err(ApiTypeError::untranslatable(
                    "reasoning_effort",
                    "Anthropic's extended thinking needs max_tokens above 1024",
                ));
            }
            let changed = [("temperature", req.temperature.is_some_and(|t| t != 1.0)), ("top_k", req.top_k.is_some())];
            for (field, set) in changed {
                if set {
                    return Err(ApiTypeError::untranslatable(field, "Anthropic's extended thinking does not take it"));
                }
            }
            Some(an::Thinking::Enabled { budget_tokens: budget.min(max_tokens - 1) })
        }
    };
    Ok(MessagesRequest {
        model: req.model.clone(),
        max_tokens,
        messages,
        system: Some(system.join("\n\n")).filter(|s| !s.is_empty()).map(an::System::Text),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k,
        stop_sequences: req.stop.as_ref().map(Stop::to_vec),
        stream: req.stream.filter(|s| *s),
        tools: req.tools.as_ref().map(|tools| {
            tools
                .iter()
                .map(|t| {
                    let f = t.function();
                    let mut rest = Map::new();
                    if let Some(strict) = f.strict {
                        rest.insert("strict".into(), Value::Bool(strict));
                    }
                    an::Tool {
                        name: f.name.clone(),
                        description: f.description.clone(),
                        input_schema: Some(f.parameters.clone().unwrap_or_else(empty_object_schema)),
                        kind: None,
                        rest,
                    }
                })
                .collect()
        }),
        tool_choice,
        thinking,
        metadata: req.user.as_ref().map(|u| an::Metadata { user_id: Some(u.clone()) }),
        output_config: match &req.response_format {
            Some(ResponseFormat::JsonSchema { json_schema }) => Some(an::OutputConfig {
                effort: None,
                format: Some(an::OutputFormat::JsonSchema {
                    schema: json_schema.schema.clone().unwrap_or_else(|| Value::Object(Map::new())),
                }),
            }),
            _ => None,
        },
        output_format: None,
        keep_alive: None,
        extra: Map::new(),
    })
}

/// Where an Anthropic request converted to OpenAI's shape goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatDialect {
    /// The local engine: `top_k`, chat template variables, reasoning history and `keep_alive`.
    Local,
    /// An OpenAI-compatible server (takes `top_k` and `chat_template_kwargs`, as vLLM does).
    Compatible,
    /// OpenAI itself (no `top_k`, no template variables).
    OpenAi,
}

/// Text blocks as one text (blocks apart by a blank line, as separate paragraphs); `field[j]`
/// names a block that is not text.
fn blocks_text(blocks: &[Block], field: &str, what: &str) -> Result<String> {
    let mut parts = Vec::with_capacity(blocks.len());
    for (j, b) in blocks.iter().enumerate() {
        match b {
            Block::Text { text, .. } => parts.push(text.as_str()),
            _ => return Err(ApiTypeError::untranslatable(format!("{field}[{j}]"), what)),
        }
    }
    Ok(parts.join("\n\n"))
}

fn tool_result_text(content: &Option<an::ToolResultContent>, field: &str) -> Result<String> {
    match content {
        None => Ok(String::new()),
        Some(an::ToolResultContent::Text(t)) => Ok(t.clone()),
        Some(an::ToolResultContent::Blocks(blocks)) => {
            blocks_text(blocks, &format!("{field}.content"), "only text tool results are supported")
        }
    }
}

/// An Anthropic Messages request as an OpenAI chat request for `dialect`.
pub fn messages_to_chat(req: &MessagesRequest, dialect: ChatDialect) -> Result<ChatRequest> {
    refuse_extra(&req.extra, "OpenAI Chat Completions API")?;
    let mut messages = Vec::new();
    match &req.system {
        None => {}
        Some(an::System::Text(t)) => messages.push(Message::System { content: Content::Text(t.clone()), name: None }),
        Some(an::System::Blocks(blocks)) => {
            let text = blocks_text(blocks, "system", "only text blocks")?;
            messages.push(Message::System { content: Content::Text(text), name: None });
        }
    }
    for (i, m) in req.messages.iter().enumerate() {
        let (mut texts, mut reasoning, mut calls) = (Vec::new(), String::new(), Vec::new());
        for (j, block) in m.content.blocks().into_iter().enumerate() {
            let field = format!("messages[{i}].content[{j}]");
            match (m.role, block) {
                (_, Block::Text { text: t, .. }) => texts.push(t),
                (Role::Assistant, Block::ToolUse { id, name, input, .. }) => {
                    calls.push(ToolCall::new(id, name, input.to_string()))
                }
                (Role::Assistant, Block::Thinking { thinking, .. }) => reasoning.push_str(&thinking),
                (Role::Assistant, Block::RedactedThinking { .. }) => {}
                (Role::User, Block::ToolResult { tool_use_id, content, is_error, .. }) => {
                    let mut result = tool_result_text(&content, &field)?;
                    if is_error == Some(true) && !result.starts_with("Error") {
                        result = format!("Error: {result}");
                    }
                    messages.push(Message::Tool { content: Content::Text(result), tool_call_id: tool_use_id });
                }
                (_, other) => {
                    let kind = serde_json::to_value(&other)
                        .ok()
                        .and_then(|v| v.get("type").and_then(Value::as_str).map(str::to_string))
                        .unwrap_or_default();
                    return Err(ApiTypeError::untranslatable(
                        field,
                        format!("`{kind}` blocks are not supported in a {} message", role_name(m.role)),
                    ));
                }
            }
        }
        let text = texts.join("\n\n");
        match m.role {
            Role::User => {
                if !text.is_empty() || !matches!(messages.last(), Some(Message::Tool { .. })) {
                    messages.push(Message::User { content: Content::Text(text), name: None });
                }
            }
            Role::Assistant => messages.push(Message::Assistant {
                content: if text.is_empty() && !calls.is_empty() { None } else { Some(Content::Text(text)) },
                reasoning_content: Some(reasoning).filter(|r| !r.is_empty() && dialect == ChatDialect::Local),
                tool_calls: Some(calls).filter(|c| !c.is_empty()),
                name: None,
            }),
        }
    }
    let mut tools = Vec::new();
    for (i, t) in req.tools.iter().flatten().enumerate() {
        if let Some(kind) = t.kind.as_deref().filter(|k| *k != "custom") {
            return Err(ApiTypeError::untranslatable(
                format!("tools[{i}].type"),
                format!("server tool `{kind}` runs only on Anthropic's servers"),
            ));
        }
        tools.push(Tool::Function {
            function: FunctionDef {
                name: t.name.clone(),
                description: t.description.clone(),
                parameters: t.input_schema.clone(),
                strict: t.rest.get("strict").and_then(Value::as_bool),
            },
        });
    }
    let tool_choice = req.tool_choice.as_ref().map(|c| match c {
        an::ToolChoice::Auto { .. } => ToolChoice::Mode(ToolChoiceMode::Auto),
        an::ToolChoice::Any { .. } => ToolChoice::Mode(ToolChoiceMode::Required),
        an::ToolChoice::None => ToolChoice::Mode(ToolChoiceMode::None),
        an::ToolChoice::Tool { name, .. } => {
            ToolChoice::Named(NamedToolChoice::Function { function: FunctionName { name: name.clone() } })
        }
    });
    let parallel = req.tool_choice.as_ref().filter(|c| c.disables_parallel()).map(|_| false);
    let (reasoning_effort, kwargs) = match &req.thinking {
        // Anthropic reasons only when asked: a local template that thinks by default is told not to.
        None if dialect == ChatDialect::Local => {
            let mut k = Map::new();
            k.insert("enable_thinking".into(), Value::Bool(false));
            (None, k)
        }
        None => (None, Map::new()),
        Some(an::Thinking::Enabled { budget_tokens }) => {
            let mut k = Map::new();
            k.insert("enable_thinking".into(), Value::Bool(true));
            (Some(effort_of(*budget_tokens).to_string()), k)
        }
        Some(an::Thinking::Disabled) => {
            let mut k = Map::new();
            k.insert("enable_thinking".into(), Value::Bool(false));
            (None, k)
        }
    };
    // Anthropic's effort, where thinking does not set one: its three lower levels are OpenAI's;
    // `xhigh` and `max` go as `high`, the most both APIs share.
    let effort = req.output_config.as_ref().and_then(|c| c.effort.as_deref()).map(|e| match e {
        "xhigh" | "max" => "high".to_string(),
        other => other.to_string(),
    });
    let reasoning_effort = reasoning_effort.or(effort);
    // Structured outputs: the answer is JSON valid for the schema (Anthropic's are strict).
    let response_format =
        req.output_format().map(|(an::OutputFormat::JsonSchema { schema }, _)| ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: "output".into(),
                description: None,
                schema: Some(schema.clone()),
                strict: Some(true),
            },
        });
    let streams = req.streams();
    let mut chat = ChatRequest {
        model: req.model.clone(),
        messages,
        // OpenAI's reasoning models refuse the older name.
        max_tokens: (dialect != ChatDialect::OpenAi).then_some(req.max_tokens),
        max_completion_tokens: (dialect == ChatDialect::OpenAi).then_some(req.max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        top_k: req.top_k.filter(|k| *k > 0),
        stop: req.stop_sequences.clone().filter(|s| !s.is_empty()).map(Stop::Many),
        stream: streams.then_some(true),
        stream_options: streams.then_some(StreamOptions { include_usage: true }),
        tools: Some(tools).filter(|t| !t.is_empty()),
        tool_choice,
        parallel_tool_calls: parallel,
        reasoning_effort,
        response_format,
        chat_template_kwargs: Some(kwargs).filter(|k| !k.is_empty()),
        keep_alive: req.keep_alive.clone().filter(|_| dialect == ChatDialect::Local),
        user: req.metadata.as_ref().and_then(|m| m.user_id.clone()),
        ..ChatRequest::default()
    };
    if dialect == ChatDialect::OpenAi {
        for_openai(&mut chat)?;
    }
    Ok(chat)
}

/// Fits a chat request to OpenAI's own API: template variables and `keep_alive` go (they only
/// mean something to a local engine); extensions OpenAI would refuse are refused here by name.
pub fn for_openai(req: &mut ChatRequest) -> Result<()> {
    req.chat_template_kwargs = None;
    req.keep_alive = None;
    let refused = [
        ("top_k", req.top_k.is_some_and(|k| k > 0)),
        ("min_p", req.min_p.is_some_and(|p| p > 0.0)),
        ("repetition_penalty", req.repetition_penalty.is_some_and(|p| p != 1.0)),
        ("guided_json", req.guided.guided_json.is_some()),
        ("guided_regex", req.guided.guided_regex.is_some()),
        ("guided_grammar", req.guided.guided_grammar.is_some()),
        ("guided_choice", req.guided.guided_choice.is_some()),
        ("draft_model", req.speculative.draft_model.is_some()),
        ("num_draft_tokens", req.speculative.num_draft_tokens.is_some()),
    ];
    match refused.iter().find(|(_, set)| *set) {
        Some((field, _)) => Err(ApiTypeError::untranslatable(*field, "OpenAI's API has no such parameter")),
        None => Ok(()),
    }
}

/// `{"type": "object", "properties": {}}`: a tool without parameters.
fn empty_object_schema() -> Value {
    let mut schema = Map::new();
    schema.insert("type".into(), Value::String("object".into()));
    schema.insert("properties".into(), Value::Object(Map::new()));
    Value::Object(schema)
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::User => "user",
        Role::Assistant => "assistant",
    }
}
