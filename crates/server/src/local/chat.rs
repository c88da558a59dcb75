//! A chat request on the local engine: the conversation (tool calls and results included) as
//! the chat template's messages, the tools the template shows the model, and the output parser
//! the model's template implies.

use std::sync::Arc;

use mlx_manager_api::openai::{ChatRequest, Content, Message, Tool, ToolChoice, ToolChoiceMode};
use mlx_manager_engine::chat::{ChatMessage, TemplateKwargs, ToolCall};
use mlx_manager_engine::output::{OutputParser, ToolFormat};
use mlx_manager_engine::Prompt;
use serde_json::Value;

use super::events::{events, CallIds, Events};
use super::params::Sampling;
use crate::error::ApiError;
use crate::run::{ensure_loaded, Deadline, Run};
use crate::state::AppState;

fn text(content: &Content) -> String {
    content.text().unwrap_or_default()
}

/// The template's messages: roles as templates know them (`developer` is `system`), tool call
/// arguments as objects (what templates expect), reasoning of earlier turns kept.
fn messages(input: &[Message]) -> Vec<ChatMessage> {
    input
        .iter()
        .map(|m| match m {
            Message::System { content, name } | Message::Developer { content, name } => {
                with_name(ChatMessage::new("system", text(content)), name)
            }
            Message::User { content, name } => with_name(ChatMessage::new("user", text(content)), name),
            Message::Assistant { content, reasoning_content, tool_calls, name } => {
                // A turn that only called tools sends `content: null`; like mlx_lm.server we
                // render it as "" (transformers drops a None key, and Qwen3's template then fails
                // on `content.lstrip`, refusing every agent's history).
                let mut msg = ChatMessage::new("assistant", content.as_ref().map(text).unwrap_or_default());
                msg.reasoning_content = reasoning_content.clone();
                msg.tool_calls = tool_calls.as_ref().map(|calls| {
                    calls.iter().map(|c| ToolCall::function(&c.id, &c.function.name, &c.function.arguments)).collect()
                });
                with_name(msg, name)
            }
            Message::Tool { content, tool_call_id } => ChatMessage::tool_result(tool_call_id, text(content)),
        })
        .collect()
}

fn with_name(msg: ChatMessage, name: &Option<String>) -> ChatMessage {
    match name {
        Some(n) => msg.with_name(n),
        None => msg,
    }
}

/// The tools the model is shown: none for `tool_choice: none`, only the named one for a named
/// choice, else all.
fn shown_tools(req: &ChatRequest) -> Option<Vec<Tool>> {
    let tools = req.tools.as_ref().filter(|t| !t.is_empty())?;
    match &req.tool_choice {
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => None,
        Some(ToolChoice::Named(named)) => {
            let mlx_manager_api::openai::NamedToolChoice::Function { function } = named;
            Some(tools.iter().filter(|t| t.function().name == function.name).cloned().collect())
        }
        _ => Some(tools.clone()),
    }
}

/// The template's extra variables: `chat_template_kwargs`, plus `reasoning_effort` unless the
/// kwargs set it.
fn template_kwargs(req: &ChatRequest) -> TemplateKwargs {
    let mut kwargs = req.chat_template_kwargs.clone().unwrap_or_default();
    if let Some(effort) = &req.reasoning_effort {
        kwargs.entry("reasoning_effort").or_insert(Value::String(effort.clone()));
    }
    kwargs
}

/// A started local chat generation: its prompt size and its events.
pub(crate) struct Started {
    pub prompt_tokens: u32,
    pub events: Events,
}

/// Serves `req` (checked by `check::chat`) on the local engine.
pub(crate) async fn serve(
    state: &Arc<AppState>,
    req: ChatRequest,
    ids: CallIds,
    deadline: Deadline,
) -> Result<Started, ApiError> {
    let keep_alive = crate::keep_alive::parse(req.keep_alive.as_ref())?;
    let tools = shown_tools(&req);
    let tools_json = tools.as_ref().map(|t| serde_json::to_value(t).expect("tools serialise"));
    let prompt = Prompt::Chat {
        messages: messages(&req.messages),
        tools: tools_json.clone(),
        template_kwargs: template_kwargs(&req),
    };
    let info = ensure_loaded(state, &req.model, deadline, keep_alive).await?;
    let max_tokens = req.max_output().unwrap_or(2048.min(info.context_length.unwrap_or(2048) as u32));
    let mut params = Sampling::from(&req).params(max_tokens, req.logprobs == Some(true));
    let parallel = req.parallel_tool_calls != Some(false);
    let declared = req.tools.as_deref().unwrap_or_default();
    // The grammar, and the field it comes from (named by an error compiling it for this model).
    let forced = super::grammar::forced_call(info.output.tools, declared, req.tool_choice.as_ref(), parallel);
    let (grammar, source) = match forced {
        Some(grammar) => (Some(grammar), "tool_choice"),
        None => super::grammar::requested(req.response_format.as_ref(), &req.guided)
            .map_or((None, "tools"), |(grammar, field)| (Some(grammar), field)),
    };
    params.grammar = grammar;
    if params.grammar.is_none() {
        if let Some((grammar, trigger)) =
            super::grammar::started_call(info.output.tools, declared, req.tool_choice.as_ref())
        {
            params.grammar = Some(grammar);
            params.grammar_trigger = Some(trigger);
        }
    }
    params.draft = super::draft::draft(state, &req.model, &req.speculative, params.grammar.is_some(), deadline).await?;
    let run = Run::start(state, &req.model, prompt, params, deadline).await.map_err(|e| e.on_field(source))?;
    let ids = if info.output.tools == Some(ToolFormat::Mistral) { CallIds::Mistral } else { ids };
    let parser = OutputParser::new(&info.output, tools_json.as_ref(), run.reasoning_open);
    let single = req.parallel_tool_calls == Some(false);
    Ok(Started { prompt_tokens: run.prompt_tokens as u32, events: events(run, Some(parser), ids, single) })
}
