//! What the local engine cannot do, refused by name before anything is loaded or evicted (a
//! provider leg may support it; the API's own checks ran already, in `request`).

use mlx_manager_api::anthropic::{self as an, MessagesRequest};
use mlx_manager_api::openai::{ChatRequest, CompletionRequest, Content, EmbeddingsRequest, Message, TextOrTokens};
use mlx_manager_engine::chat::RESERVED;
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};
use crate::state::AppState;

/// Parameters we know but the local engine does not implement (yet), with the reason.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("logit_bias", "logit_bias is not implemented"),
    ("functions", "legacy function calling is not supported; send `tools`"),
    ("function_call", "legacy function calling is not supported; send `tool_choice`"),
    ("audio", "audio output is not supported"),
    ("modalities", "only text is supported"),
    ("prediction", "predicted outputs are not supported"),
    ("web_search_options", "web search is not available on the local engine"),
    ("suffix", "suffix is not supported"),
    ("best_of", "best_of is not supported"),
];

struct Errors(Vec<FieldError>);

impl Errors {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError::new(field, message));
    }

    fn extra(&mut self, extra: &Map<String, Value>) {
        self.0.extend(crate::extract::refused(extra.keys(), UNSUPPORTED));
    }

    fn done(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.0))
        }
    }
}

fn text_only(e: &mut Errors, content: &Content, field: String) {
    if let Err(j) = content.text() {
        e.add(format!("{field}[{j}]"), "only text content parts are supported");
    }
}

/// Most tokens one request may ask for when the model's context is unknown.
const MAX_TOKENS_CAP: u32 = 1_000_000;

/// A token limit the model's context (per its config.json) cannot hold, refused before the model
/// is loaded; `field` is the client's name for the limit.
pub(crate) fn fits(state: &AppState, model: &str, max_tokens: Option<u32>, field: &str) -> Result<(), ApiError> {
    let Some(n) = max_tokens else { return Ok(()) };
    let cap = state.registry.get(model).and_then(|e| e.context_length).map_or(MAX_TOKENS_CAP, |c| c as u32);
    if n > cap {
        return Err(ApiError::Validation(vec![FieldError::new(
            field,
            format!("must be at most {cap} (the model's context)"),
        )]));
    }
    Ok(())
}

/// A chat request the local engine can serve.
pub(crate) fn chat(req: &ChatRequest) -> Result<(), ApiError> {
    let mut e = Errors(Vec::new());
    e.extra(&req.extra);
    if req.n.is_some_and(|n| n != 1) {
        e.add("n", "only n=1 is supported");
    }
    if req.top_logprobs.is_some_and(|n| n > 0) {
        e.add("top_logprobs", "only the chosen token's logprob is supported (top_logprobs must be 0)");
    }
    for key in req.chat_template_kwargs.iter().flat_map(Map::keys) {
        if RESERVED.contains(&key.as_str()) {
            e.add(
                format!("chat_template_kwargs.{key}"),
                format!("`{key}` is set by the request itself, not by a template variable"),
            );
        }
    }
    if let Err(ApiError::Validation(errors)) = super::grammar::check(
        req.response_format.as_ref(),
        &req.guided,
        req.tools.as_deref().unwrap_or_default(),
        req.tool_choice.as_ref(),
    ) {
        e.0.extend(errors);
    }
    for (i, m) in req.messages.iter().enumerate() {
        let field = format!("messages[{i}].content");
        match m {
            Message::System { content, .. }
            | Message::Developer { content, .. }
            | Message::User { content, .. }
            | Message::Tool { content, .. } => text_only(&mut e, content, field),
            Message::Assistant { content: Some(content), .. } => text_only(&mut e, content, field),
            Message::Assistant { content: None, .. } => {}
        }
    }
    e.done()
}

/// A messages request the local engine can serve (checked in Anthropic's shape, so errors name
/// the client's fields; it is then converted to a chat request).
pub(crate) fn messages(req: &MessagesRequest) -> Result<(), ApiError> {
    let mut e = Errors(Vec::new());
    e.extra(&req.extra);
    if let Some((an::OutputFormat::JsonSchema { schema }, field)) = req.output_format() {
        if let Err(ApiError::Validation(errors)) = super::grammar::check_schema(schema, &format!("{field}.schema")) {
            e.0.extend(errors);
        }
    }
    for (i, m) in req.messages.iter().enumerate() {
        let an::Content::Blocks(blocks) = &m.content else { continue };
        for (j, block) in blocks.iter().enumerate() {
            if matches!(block, an::Block::Image { .. } | an::Block::Document { .. }) {
                e.add(format!("messages[{i}].content[{j}]"), "only text, tool and thinking blocks are supported");
            }
        }
    }
    e.done()
}

/// A completions request the local engine can serve.
pub(crate) fn completions(req: &CompletionRequest) -> Result<(), ApiError> {
    let mut e = Errors(Vec::new());
    e.extra(&req.extra);
    if req.n.is_some_and(|n| n != 1) {
        e.add("n", "only n=1 is supported");
    }
    if req.logprobs.is_some_and(|n| n > 0) {
        e.add("logprobs", "only the chosen token's logprob is supported (logprobs must be 0)");
    }
    if let Err(ApiError::Validation(errors)) =
        super::grammar::check(req.response_format.as_ref(), &req.guided, &[], None)
    {
        e.0.extend(errors);
    }
    let tokens = matches!(req.prompt, TextOrTokens::Tokens(_) | TextOrTokens::TokenLists(_));
    if req.echo == Some(true) && tokens {
        e.add("echo", "echo is only supported for text prompts");
    }
    e.done()
}

/// An embeddings request the local engine can serve.
pub(crate) fn embeddings(req: &EmbeddingsRequest) -> Result<(), ApiError> {
    let mut e = Errors(Vec::new());
    e.extra(&req.extra);
    e.done()
}
