//! The checks every request gets before it is routed, whatever backend serves it: the ranges
//! and shapes the API itself defines. What only the local engine cannot do is the server's
//! business. Every error names the field as the client wrote it.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::anthropic::{self as an, MessagesRequest};
use crate::error::FieldError;
use crate::openai::{
    ChatRequest, CompletionRequest, EmbeddingsRequest, Guided, Message, NamedToolChoice, ResponseFormat, Speculative,
    TextOrTokens, Tool, ToolChoice, ToolChoiceMode, MAX_DRAFT_TOKENS,
};

/// `reasoning_effort` values.
pub const REASONING_EFFORTS: [&str; 4] = ["minimal", "low", "medium", "high"];

/// Longest tool name (OpenAI's and Anthropic's limit).
pub const TOOL_NAME_MAX: usize = 64;

/// Most stop sequences OpenAI takes.
const MAX_STOP: usize = 4;

/// Most embedding inputs (as OpenAI).
const MAX_INPUTS: usize = 2048;

struct Checks(Vec<FieldError>);

impl Checks {
    fn check(&mut self, ok: bool, field: impl Into<String>, message: impl Into<String>) {
        if !ok {
            self.0.push(FieldError::new(field, message));
        }
    }

    fn range(&mut self, value: Option<f64>, field: &str, ok: impl Fn(f64) -> bool, message: &str) {
        self.check(value.is_none_or(|v| v.is_finite() && ok(v)), field, message);
    }

    fn tool_name(&mut self, name: &str, field: String) {
        let valid = !name.is_empty()
            && name.len() <= TOOL_NAME_MAX
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.');
        self.check(valid, field, format!("tool names are 1 to {TOOL_NAME_MAX} letters, digits, `_`, `-` or `.`"));
    }

    fn stops(&mut self, stops: &[String], field: &str, max: Option<usize>) {
        if let Some(max) = max {
            self.check(stops.len() <= max, field, format!("at most {max} stop sequences"));
        }
        self.check(stops.iter().all(|s| !s.is_empty()), field, "stop sequences must not be empty");
    }

    fn sampling(&mut self, temperature: Option<f64>, top_p: Option<f64>, temperature_max: f64) {
        self.range(
            temperature,
            "temperature",
            |t| (0.0..=temperature_max).contains(&t),
            &format!("must be between 0 and {temperature_max}"),
        );
        self.range(top_p, "top_p", |p| p > 0.0 && p <= 1.0, "must be in (0, 1]");
    }
}

fn openai_penalties(
    c: &mut Checks,
    presence: Option<f64>,
    frequency: Option<f64>,
    repetition: Option<f64>,
    min_p: Option<f64>,
) {
    c.range(presence, "presence_penalty", |v| (-2.0..=2.0).contains(&v), "must be between -2 and 2");
    c.range(frequency, "frequency_penalty", |v| (-2.0..=2.0).contains(&v), "must be between -2 and 2");
    c.range(repetition, "repetition_penalty", |v| v > 0.0 && v <= 10.0, "must be in (0, 10]");
    c.range(min_p, "min_p", |v| (0.0..=1.0).contains(&v), "must be in [0, 1]");
}

/// At most one structured-output request, each well formed.
fn structured(c: &mut Checks, format: Option<&ResponseFormat>, guided: &Guided) {
    let mut set = Vec::new();
    match format {
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            let name_ok = !json_schema.name.is_empty()
                && json_schema.name.len() <= 64
                && json_schema.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '-');
            c.check(name_ok, "response_format.json_schema.name", "1 to 64 letters, digits, `_` or `-`");
            c.check(
                json_schema.schema.as_ref().is_some_and(|s| s.is_object() || s.is_boolean()),
                "response_format.json_schema.schema",
                "must be a JSON Schema object",
            );
            set.push("response_format");
        }
        Some(ResponseFormat::JsonObject) => set.push("response_format"),
        Some(ResponseFormat::Text) | None => {}
    }
    for (field, on) in [
        ("guided_json", guided.guided_json.is_some()),
        ("guided_regex", guided.guided_regex.is_some()),
        ("guided_grammar", guided.guided_grammar.is_some()),
        ("guided_choice", guided.guided_choice.is_some()),
    ] {
        if on {
            set.push(field);
        }
    }
    if let Some(choices) = &guided.guided_choice {
        c.check(!choices.is_empty(), "guided_choice", "must list at least one choice");
    }
    if let [_, second, ..] = set[..] {
        c.check(false, second, format!("only one of {} may be set", set.join(", ")));
    }
}

/// A draft model's fields: a name, and a proposal count in range.
fn speculative(c: &mut Checks, s: &Speculative) {
    c.check(s.draft_model.as_ref().is_none_or(|m| !m.is_empty()), "draft_model", "must name a model");
    c.check(
        s.num_draft_tokens.is_none_or(|n| (1..=MAX_DRAFT_TOKENS).contains(&n)),
        "num_draft_tokens",
        format!("must be between 1 and {MAX_DRAFT_TOKENS}"),
    );
}

impl ChatRequest {
    /// The API's own checks.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checks(Vec::new());
        c.check(!self.model.is_empty(), "model", "must name a model");
        c.check(!self.messages.is_empty(), "messages", "must contain at least one message");
        c.sampling(self.temperature, self.top_p, 2.0);
        openai_penalties(&mut c, self.presence_penalty, self.frequency_penalty, self.repetition_penalty, self.min_p);
        c.check(self.n.is_none_or(|n| (1..=128).contains(&n)), "n", "must be between 1 and 128");
        for (field, v) in [("max_tokens", self.max_tokens), ("max_completion_tokens", self.max_completion_tokens)] {
            c.check(v.is_none_or(|v| v >= 1), field, "must be at least 1");
        }
        c.stops(&self.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(), "stop", Some(MAX_STOP));
        c.check(self.top_logprobs.is_none_or(|n| n <= 20), "top_logprobs", "must be between 0 and 20");
        c.check(
            self.top_logprobs.is_none_or(|n| n == 0) || self.logprobs == Some(true),
            "top_logprobs",
            "needs logprobs: true",
        );
        c.check(self.stream_options.is_none() || self.streams(), "stream_options", "only allowed when stream is true");
        if let Some(effort) = &self.reasoning_effort {
            c.check(
                REASONING_EFFORTS.contains(&effort.as_str()),
                "reasoning_effort",
                format!("must be one of {}", REASONING_EFFORTS.join(", ")),
            );
        }
        structured(&mut c, self.response_format.as_ref(), &self.guided);
        speculative(&mut c, &self.speculative);
        let tools = self.tools.as_deref().unwrap_or_default();
        let mut names = BTreeSet::new();
        for (i, t) in tools.iter().enumerate() {
            let f = t.function();
            c.tool_name(&f.name, format!("tools[{i}].function.name"));
            c.check(names.insert(f.name.as_str()), format!("tools[{i}].function.name"), "tool names must be unique");
            c.check(
                f.parameters.as_ref().is_none_or(|p| p.is_object()),
                format!("tools[{i}].function.parameters"),
                "must be a JSON Schema object",
            );
        }
        match &self.tool_choice {
            Some(ToolChoice::Mode(ToolChoiceMode::Required)) => {
                c.check(!tools.is_empty(), "tool_choice", "`required` needs at least one tool in `tools`")
            }
            Some(ToolChoice::Named(NamedToolChoice::Function { function })) => c.check(
                tools.iter().any(|t: &Tool| t.function().name == function.name),
                "tool_choice.function.name",
                format!("`{}` is not one of the request's tools", function.name),
            ),
            _ => {}
        }
        for (i, m) in self.messages.iter().enumerate() {
            if let Message::Assistant { tool_calls: Some(calls), .. } = m {
                for (j, call) in calls.iter().enumerate() {
                    c.check(!call.id.is_empty(), format!("messages[{i}].tool_calls[{j}].id"), "must not be empty");
                    c.check(
                        !call.function.name.is_empty(),
                        format!("messages[{i}].tool_calls[{j}].function.name"),
                        "must not be empty",
                    );
                }
            }
        }
        c.0
    }
}

impl CompletionRequest {
    /// The API's own checks.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checks(Vec::new());
        c.check(!self.model.is_empty(), "model", "must name a model");
        let empty = match &self.prompt {
            TextOrTokens::Texts(v) => v.is_empty(),
            TextOrTokens::TokenLists(v) => v.is_empty(),
            _ => false,
        };
        c.check(!empty, "prompt", "must not be empty");
        c.sampling(self.temperature, self.top_p, 2.0);
        openai_penalties(&mut c, self.presence_penalty, self.frequency_penalty, self.repetition_penalty, self.min_p);
        c.check(self.n.is_none_or(|n| (1..=128).contains(&n)), "n", "must be between 1 and 128");
        c.check(self.max_tokens.is_none_or(|v| v >= 1), "max_tokens", "must be at least 1");
        c.stops(&self.stop.as_ref().map(|s| s.to_vec()).unwrap_or_default(), "stop", Some(MAX_STOP));
        c.check(self.logprobs.is_none_or(|n| n <= 5), "logprobs", "must be between 0 and 5");
        structured(&mut c, self.response_format.as_ref(), &self.guided);
        speculative(&mut c, &self.speculative);
        c.check(
            self.stream_options.is_none() || self.stream == Some(true),
            "stream_options",
            "only allowed when stream is true",
        );
        c.0
    }
}

impl EmbeddingsRequest {
    /// The API's own checks.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checks(Vec::new());
        c.check(!self.model.is_empty(), "model", "must name a model");
        let (count, any_empty) = match &self.input {
            TextOrTokens::Text(t) => (1, t.is_empty()),
            TextOrTokens::Texts(v) => (v.len(), v.iter().any(String::is_empty)),
            TextOrTokens::Tokens(t) => (1, t.is_empty()),
            TextOrTokens::TokenLists(v) => (v.len(), v.iter().any(Vec::is_empty)),
        };
        c.check((1..=MAX_INPUTS).contains(&count), "input", format!("must hold 1 to {MAX_INPUTS} inputs"));
        c.check(!any_empty, "input", "inputs must not be empty");
        c.check(self.dimensions.is_none_or(|d| d >= 1), "dimensions", "must be at least 1");
        c.0
    }
}

impl MessagesRequest {
    /// The API's own checks.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut c = Checks(Vec::new());
        c.check(!self.model.is_empty(), "model", "must name a model");
        c.check(!self.messages.is_empty(), "messages", "must contain at least one message");
        c.check(self.max_tokens >= 1, "max_tokens", "must be at least 1");
        c.sampling(self.temperature, self.top_p, 1.0);
        c.stops(self.stop_sequences.as_deref().unwrap_or_default(), "stop_sequences", None);
        let tools = self.tools.as_deref().unwrap_or_default();
        let mut names = BTreeSet::new();
        for (i, t) in tools.iter().enumerate() {
            c.tool_name(&t.name, format!("tools[{i}].name"));
            c.check(names.insert(t.name.as_str()), format!("tools[{i}].name"), "tool names must be unique");
            let client = t.kind.as_deref().is_none_or(|k| k == "custom");
            c.check(
                !client || t.input_schema.as_ref().is_some_and(Value::is_object),
                format!("tools[{i}].input_schema"),
                "must be a JSON Schema object",
            );
        }
        match &self.tool_choice {
            Some(an::ToolChoice::Any { .. }) => {
                c.check(!tools.is_empty(), "tool_choice", "`any` needs at least one tool in `tools`")
            }
            Some(an::ToolChoice::Tool { name, .. }) => c.check(
                tools.iter().any(|t| &t.name == name),
                "tool_choice.name",
                format!("`{name}` is not one of the request's tools"),
            ),
            _ => {}
        }
        if let Some((an::OutputFormat::JsonSchema { schema }, field)) = self.output_format() {
            c.check(schema.is_object(), format!("{field}.schema"), "must be a JSON Schema object");
        }
        if let Some(effort) = self.output_config.as_ref().and_then(|o| o.effort.as_deref()) {
            c.check(
                ["low", "medium", "high", "xhigh", "max"].contains(&effort),
                "output_config.effort",
                "must be low, medium, high, xhigh or max",
            );
        }
        if let Some(an::Thinking::Enabled { budget_tokens }) = &self.thinking {
            c.check(*budget_tokens >= 1024, "thinking.budget_tokens", "must be at least 1024");
            c.check(*budget_tokens < self.max_tokens, "thinking.budget_tokens", "must be less than max_tokens");
        }
        for (i, m) in self.messages.iter().enumerate() {
            if let an::Content::Blocks(blocks) = &m.content {
                for (j, b) in blocks.iter().enumerate() {
                    let misplaced = match (m.role, b) {
                        (an::Role::User, an::Block::ToolUse { .. }) => {
                            Some("tool_use blocks belong in assistant messages")
                        }
                        (an::Role::Assistant, an::Block::ToolResult { .. }) => {
                            Some("tool_result blocks belong in user messages")
                        }
                        _ => None,
                    };
                    if let Some(why) = misplaced {
                        c.check(false, format!("messages[{i}].content[{j}]"), why);
                    }
                }
            }
        }
        c.0
    }
}
