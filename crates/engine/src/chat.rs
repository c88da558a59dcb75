//! Chat templates: HF's Jinja dialect rendered with minijinja, configured the way transformers'
//! `apply_chat_template` configures jinja2 (trim/lstrip blocks, loop controls, `raise_exception`,
//! `strftime_now`, a `tojson` that prints like Python's `json.dumps`, Python string methods), so
//! the rendered prompt is byte-identical.

use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::tokenizer::Tokenizer;

/// One message of a conversation, in the shape chat templates expect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (content parts are joined by the caller).
    pub content: String,
    /// Optional author name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Tool calls an assistant message made (OpenAI shape).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<serde_json::Value>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

impl ChatMessage {
    /// A message with just a role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage { role: role.into(), content: content.into(), name: None, tool_calls: None, tool_call_id: None }
    }
}

/// Python's `json.dumps` spacing: `", "` between items and `": "` after keys, or `indent`.
struct PyJsonFormatter {
    first: bool,
}

impl serde_json::ser::Formatter for PyJsonFormatter {
    fn begin_array_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        self.first = first;
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_key<W: ?Sized + std::io::Write>(&mut self, w: &mut W, first: bool) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            w.write_all(b", ")
        }
    }
    fn begin_object_value<W: ?Sized + std::io::Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

fn py_json(value: &serde_json::Value, indent: Option<usize>) -> std::result::Result<String, serde_json::Error> {
    let mut out = Vec::new();
    match indent {
        Some(n) => {
            let pad = vec![b' '; n];
            let mut ser =
                serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(&pad));
            value.serialize(&mut ser)?;
        }
        None => {
            let mut ser = serde_json::Serializer::with_formatter(&mut out, PyJsonFormatter { first: true });
            value.serialize(&mut ser)?;
        }
    }
    Ok(String::from_utf8(out).expect("serde_json writes UTF-8"))
}

fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<String, Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let _: Option<bool> = kwargs.get("ensure_ascii")?;
    let _: Option<bool> = kwargs.get("sort_keys")?;
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))?;
    py_json(&json, indent).map_err(|e| Error::new(ErrorKind::InvalidOperation, e.to_string()))
}

fn raise_exception(message: String) -> std::result::Result<Value, Error> {
    Err(Error::new(ErrorKind::InvalidOperation, message))
}

fn strftime_now(format: String) -> String {
    // Templates use it for "today's date"; transformers renders `datetime.now()`, local time.
    chrono::Local::now().format(&format).to_string()
}

/// Extra template variables: what transformers' `apply_chat_template(**kwargs)` passes to the
/// template, i.e. a request's `chat_template_kwargs` (`enable_thinking`, `reasoning_effort`, ...).
pub type TemplateKwargs = serde_json::Map<String, serde_json::Value>;

/// Variables `apply_chat_template` sets itself; passing one again is a `TypeError` there.
pub const RESERVED: [&str; 4] = ["messages", "tools", "documents", "add_generation_prompt"];

/// A parsed chat template with HF's Jinja environment, built once per model.
pub struct ChatTemplate {
    env: Environment<'static>,
}

impl ChatTemplate {
    /// Parses `source`.
    pub fn new(source: &str) -> Result<ChatTemplate> {
        let err = |e: Error| EngineError::ChatTemplate { message: e.to_string() };
        let mut env = Environment::new();
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder().trim_blocks(true).lstrip_blocks(true).build().map_err(err)?,
        );
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_filter("tojson", tojson);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_template_owned("chat", source.to_string()).map_err(err)?;
        Ok(ChatTemplate { env })
    }

    /// Renders `messages` (and `tools`) with the tokenizer's special tokens in the context.
    pub fn render(
        &self,
        tokenizer: &Tokenizer,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.render_with_kwargs(tokenizer, messages, tools, add_generation_prompt, &TemplateKwargs::new())
    }

    /// [`ChatTemplate::render`] with extra template variables, which override the special
    /// tokens of the same name as in transformers (`{**special_tokens_map, **kwargs}`).
    pub fn render_with_kwargs(
        &self,
        tokenizer: &Tokenizer,
        messages: &[ChatMessage],
        tools: Option<&serde_json::Value>,
        add_generation_prompt: bool,
        kwargs: &TemplateKwargs,
    ) -> Result<String> {
        if let Some(name) = kwargs.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(EngineError::ChatTemplate {
                message: format!("chat_template_kwargs may not set `{name}`; it is a parameter of the request"),
            });
        }
        let mut ctx = serde_json::Map::new();
        ctx.insert("messages".into(), serde_json::to_value(messages).expect("messages serialise"));
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        if let Some(tools) = tools {
            ctx.insert("tools".into(), tools.clone());
        }
        if let Some(bos) = &tokenizer.bos_token {
            ctx.insert("bos_token".into(), bos.clone().into());
        }
        if let Some(eos) = &tokenizer.eos_token {
            ctx.insert("eos_token".into(), eos.clone().into());
        }
        for (name, text) in &tokenizer.special_tokens {
            ctx.insert(name.clone(), text.clone().into());
        }
        for (name, value) in kwargs {
            ctx.insert(name.clone(), value.clone());
        }
        self.env
            .get_template("chat")
            .and_then(|t| t.render(Value::from(minijinja::value::Serde(&ctx))))
            .map_err(|e| EngineError::ChatTemplate { message: e.to_string() })
    }
}

/// Renders `messages` with the tokenizer's chat template (parsed once, at load).
pub fn render(
    tokenizer: &Tokenizer,
    messages: &[ChatMessage],
    tools: Option<&serde_json::Value>,
    add_generation_prompt: bool,
) -> Result<String> {
    render_with_kwargs(tokenizer, messages, tools, add_generation_prompt, &TemplateKwargs::new())
}

/// [`render`] with extra template variables (a request's `chat_template_kwargs`).
pub fn render_with_kwargs(
    tokenizer: &Tokenizer,
    messages: &[ChatMessage],
    tools: Option<&serde_json::Value>,
    add_generation_prompt: bool,
    kwargs: &TemplateKwargs,
) -> Result<String> {
    match tokenizer.template() {
        Some(Ok(template)) => template.render_with_kwargs(tokenizer, messages, tools, add_generation_prompt, kwargs),
        Some(Err(message)) => Err(EngineError::ChatTemplate { message: message.clone() }),
        None => Err(EngineError::ChatTemplate {
            message: "this model has no chat template; send a plain prompt to /v1/completions".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tojson_spacing_matches_python() {
        let v: serde_json::Value = serde_json::from_str(r#"{"b":[1,2,{"c":"é<"}],"a":1.5}"#).unwrap();
        assert_eq!(py_json(&v, None).unwrap(), r#"{"b": [1, 2, {"c": "é<"}], "a": 1.5}"#);
        assert_eq!(
            py_json(&v, Some(2)).unwrap(),
            "{\n  \"b\": [\n    1,\n    2,\n    {\n      \"c\": \"é<\"\n    }\n  ],\n  \"a\": 1.5\n}"
        );
    }
}
