//! Chat templates: HF's Jinja dialect rendered with minijinja, configured the way transformers'
//! `apply_chat_template` configures jinja2 (trim/lstrip blocks, loop controls, `raise_exception`,
//! `strftime_now`, a `tojson` that prints like Python's `json.dumps`, Python string methods,
//! values printed as Python's `str()` prints them) and given the context it builds (`tools` and
//! `documents` always set, messages without their None-valued keys, reasoning aliased as
//! `thinking`), so the rendered prompt is byte-identical.

use minijinja::value::Kwargs;
use minijinja::{Environment, Error, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::tokenizer::Tokenizer;

/// One message of a conversation, in the shape chat templates expect: the dict an OpenAI client
/// would hand to transformers' `apply_chat_template`. It serialises `content` always (`null` for
/// an assistant turn that only calls tools) and the optional fields only when set; the template
/// sees it as transformers passes it on (None-valued keys dropped), so `'name' in
/// message` or `message.tool_calls is defined` answer as they do there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text (content parts are joined by the caller). `None` (OpenAI's `"content": null`)
    /// serialises as `null`, and templates see no `content` key, as with transformers; mlx-lm's
    /// server sends `""` instead, which some templates (Qwen3's) need for a tool-call turn.
    #[serde(default)]
    pub content: Option<String>,
    /// The reasoning of an earlier assistant turn, which thinking models' templates replay
    /// (Qwen3 reads `reasoning_content`; gpt-oss reads `thinking`, filled from this as
    /// transformers does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_content: Option<String>,
    /// Tool calls an assistant message made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_calls: Option<Vec<ToolCall>>,
    /// The call a tool message answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// The author of a message; for a tool result, the function that produced it (FunctionGemma
    /// and Gemma 4 label results by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One tool call of an assistant message: OpenAI's shape, except that `function.arguments` is a
/// JSON object, which is what templates expect (transformers' tool-use docs), not the API's string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, which a tool result's `tool_call_id` refers to.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type")]
    pub kind: String,
    /// What is called, with which arguments.
    pub function: ToolCallFunction,
}

/// The function half of a [`ToolCall`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCallFunction {
    /// The function's name, as declared in the request's tools.
    pub name: String,
    /// The arguments: a JSON object, or the client's string as sent where it is not one.
    pub arguments: serde_json::Value,
}

impl ToolCall {
    /// A function call from the API's form, whose arguments are a JSON string: an object string
    /// becomes that object, an empty string an empty object; anything else (not JSON, or JSON
    /// that is not an object) stays the string it was, for the template to print or refuse.
    pub fn function(id: impl Into<String>, name: impl Into<String>, arguments_json: &str) -> ToolCall {
        let arguments = if arguments_json.trim().is_empty() {
            serde_json::Value::Object(serde_json::Map::new())
        } else {
            match serde_json::from_str::<serde_json::Value>(arguments_json) {
                Ok(object @ serde_json::Value::Object(_)) => object,
                _ => serde_json::Value::String(arguments_json.to_string()),
            }
        };
        ToolCall { id: id.into(), kind: "function".into(), function: ToolCallFunction { name: name.into(), arguments } }
    }
}

impl ChatMessage {
    /// A message with just a role and text.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage {
            role: role.into(),
            content: Some(content.into()),
            reasoning_content: None,
            tool_calls: None,
            tool_call_id: None,
            name: None,
        }
    }

    /// An assistant turn that calls tools, from the API's `(id, name, arguments JSON string)`
    /// triples (see [`ToolCall::function`]); `content` is `None` when the turn has no text.
    pub fn assistant_tool_calls(content: Option<&str>, calls: &[(&str, &str, &str)]) -> ChatMessage {
        ChatMessage {
            content: content.map(str::to_string),
            tool_calls: Some(calls.iter().map(|(id, name, args)| ToolCall::function(*id, *name, args)).collect()),
            ..ChatMessage::new("assistant", "")
        }
    }

    /// A tool result answering the call `tool_call_id`.
    pub fn tool_result(tool_call_id: impl Into<String>, content: impl Into<String>) -> ChatMessage {
        ChatMessage { tool_call_id: Some(tool_call_id.into()), ..ChatMessage::new("tool", content) }
    }

    /// The same message with a `name` (for a tool result: the function's name).
    pub fn with_name(self, name: impl Into<String>) -> ChatMessage {
        ChatMessage { name: Some(name.into()), ..self }
    }

    /// The same message with the reasoning that preceded it.
    pub fn with_reasoning(self, reasoning: impl Into<String>) -> ChatMessage {
        ChatMessage { reasoning_content: Some(reasoning.into()), ..self }
    }

    /// The message as `apply_chat_template` hands it to the template: keys whose value is None
    /// dropped (transformers does so, so that `content: null` reads as a missing key), and the
    /// reasoning also offered as `thinking`, first, which gpt-oss's template reads
    /// (`_alias_reasoning_fields`).
    fn template_value(&self) -> serde_json::Value {
        let mut fields = serde_json::Map::new();
        if let Some(reasoning) = &self.reasoning_content {
            fields.insert("thinking".into(), reasoning.clone().into());
        }
        if let serde_json::Value::Object(own) = serde_json::to_value(self).expect("messages serialise") {
            fields.extend(own.into_iter().filter(|(_, value)| !value.is_null()));
        }
        serde_json::Value::Object(fields)
    }
}

/// `json.dumps` as transformers' `tojson` calls it: `ensure_ascii`, `indent`, `separators` and
/// `sort_keys` as in Python, floats as Python's `repr`.
struct PyJson {
    indent: Option<String>,
    item_separator: String,
    key_separator: String,
    sort_keys: bool,
    ensure_ascii: bool,
}

impl PyJson {
    fn dumps(&self, value: &serde_json::Value) -> String {
        let mut out = String::new();
        self.write(&mut out, value, 0);
        out
    }

    fn newline(&self, out: &mut String, depth: usize) {
        if let Some(indent) = &self.indent {
            out.push('\n');
            for _ in 0..depth {
                out.push_str(indent);
            }
        }
    }

    fn write(&self, out: &mut String, value: &serde_json::Value, depth: usize) {
        use serde_json::Value as J;
        match value {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() => out.push_str(&py_float(f)),
                _ => out.push_str(&n.to_string()),
            },
            J::String(s) => self.write_str(out, s),
            J::Array(items) if items.is_empty() => out.push_str("[]"),
            J::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_separator);
                    }
                    self.newline(out, depth + 1);
                    self.write(out, item, depth + 1);
                }
                self.newline(out, depth);
                out.push(']');
            }
            J::Object(fields) if fields.is_empty() => out.push_str("{}"),
            J::Object(fields) => {
                let mut entries: Vec<_> = fields.iter().collect();
                if self.sort_keys {
                    entries.sort_by(|a, b| a.0.cmp(b.0));
                }
                out.push('{');
                for (i, (key, item)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        out.push_str(&self.item_separator);
                    }
                    self.newline(out, depth + 1);
                    self.write_str(out, key);
                    out.push_str(&self.key_separator);
                    self.write(out, item, depth + 1);
                }
                self.newline(out, depth);
                out.push('}');
            }
        }
    }

    fn write_str(&self, out: &mut String, s: &str) {
        out.push('"');
        for c in s.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                c if (c as u32) < 0x20 || (self.ensure_ascii && !c.is_ascii()) => {
                    let mut units = [0u16; 2];
                    for unit in c.encode_utf16(&mut units) {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

/// Python's `repr(float)`: the shortest digits that round-trip, positional for exponents from
/// -4 to 15 (always with a fraction, `1.0`), scientific otherwise (`1e+16`, `1.5e-05`).
fn py_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "Infinity".into() } else { "-Infinity".into() };
    }
    let sci = format!("{f:e}"); // shortest round-trip digits, e.g. "-1.5e-7"
    let (mantissa, exponent) = sci.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("{:e} exponent is an integer");
    if (-4..16).contains(&exponent) {
        let plain = format!("{f}");
        if plain.contains('.') {
            plain
        } else {
            format!("{plain}.0")
        }
    } else {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    }
}

/// Python's `repr(str)`: single quotes unless the text has one and no double quote.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str()` of a template value, which is what jinja2 prints for `{{ value }}` and
/// `|string`: `None`, `True`, `1.0`, `['a', 1]`, `{'k': None}`.
fn py_str(value: &Value, out: &mut String, nested: bool) {
    use minijinja::value::ValueKind;
    match value.kind() {
        ValueKind::Undefined if !nested => {}
        ValueKind::None | ValueKind::Undefined => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::Number => match f64::try_from(value.clone()) {
            Ok(f) if !value.is_integer() => out.push_str(&py_float(f)),
            _ => out.push_str(&value.to_string()),
        },
        ValueKind::String if nested => out.push_str(&py_str_repr(value.as_str().unwrap_or_default())),
        ValueKind::Seq | ValueKind::Iterable => {
            let (open, close) = if value.is_tuple() { ('(', ')') } else { ('[', ']') };
            out.push(open);
            let mut len = 0;
            for (i, item) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str(&item, out, true);
                len += 1;
            }
            if value.is_tuple() && len == 1 {
                out.push(',');
            }
            out.push(close);
        }
        ValueKind::Map => {
            out.push('{');
            for (i, key) in value.try_iter().into_iter().flatten().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_str(&key, out, true);
                out.push_str(": ");
                py_str(&value.get_item(&key).unwrap_or_default(), out, true);
            }
            out.push('}');
        }
        _ => out.push_str(&value.to_string()),
    }
}

fn python_string(value: &Value) -> String {
    let mut out = String::new();
    py_str(value, &mut out, false);
    out
}

fn tojson(value: Value, kwargs: Kwargs) -> std::result::Result<String, Error> {
    let invalid = |message: String| Error::new(ErrorKind::InvalidOperation, message);
    let indent = match kwargs.get::<Option<Value>>("indent")? {
        None => None,
        Some(v) if v.is_none() => None,
        Some(v) => match v.as_str() {
            Some(s) => Some(s.to_string()),
            None => Some(" ".repeat(usize::try_from(v).map_err(|e| invalid(format!("tojson indent: {e}")))?)),
        },
    };
    let (item_separator, key_separator) = match kwargs.get::<Option<Vec<String>>>("separators")? {
        Some(pair) => match <[String; 2]>::try_from(pair) {
            Ok([item, key]) => (item, key),
            Err(_) => return Err(invalid("tojson separators must be an (item, key) pair".into())),
        },
        None if indent.is_some() => (",".into(), ": ".into()),
        None => (", ".into(), ": ".into()),
    };
    let dumper = PyJson {
        indent,
        item_separator,
        key_separator,
        sort_keys: kwargs.get::<Option<bool>>("sort_keys")?.unwrap_or(false),
        ensure_ascii: kwargs.get::<Option<bool>>("ensure_ascii")?.unwrap_or(false),
    };
    kwargs.assert_all_used()?;
    let json = serde_json::to_value(&value).map_err(|e| invalid(e.to_string()))?;
    Ok(dumper.dumps(&json))
}

/// jinja2's `sequence` test: whatever has a length and an index, so strings, mappings and (as
/// jinja2's `Undefined` has both) undefined values too, but no iterator such as `dict.items()`
/// (nor, unlike jinja2, `range(n)`, which minijinja cannot tell from one).
fn is_sequence(value: Value) -> bool {
    use minijinja::value::ValueKind;
    matches!(value.kind(), ValueKind::String | ValueKind::Seq | ValueKind::Map | ValueKind::Undefined)
}

/// jinja2's `string` filter: Python's `str()`.
fn string(value: Value) -> String {
    python_string(&value)
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
        // jinja2 prints what Python's str() gives: None, True, 1.0, ['a'], {'k': 1}.
        env.set_formatter(|out, _state, value| {
            if let Some(s) = value.as_str() { out.write_str(s) } else { out.write_str(&python_string(value)) }
                .map_err(|e| Error::new(ErrorKind::WriteFailure, e.to_string()))
        });
        env.add_filter("tojson", tojson);
        env.add_filter("string", string);
        env.add_test("sequence", is_sequence);
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
        // As `apply_chat_template` calls the template: `tools` and `documents` are always set
        // (`None` when absent), and each message is the dict transformers builds from it.
        ctx.insert("messages".into(), messages.iter().map(ChatMessage::template_value).collect());
        ctx.insert("tools".into(), tools.cloned().unwrap_or(serde_json::Value::Null));
        ctx.insert("documents".into(), serde_json::Value::Null);
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
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

    fn dumps(json: &str, indent: Option<&str>, sort_keys: bool, ensure_ascii: bool) -> String {
        let (item, key) = if indent.is_some() { (",", ": ") } else { (", ", ": ") };
        let dumper = PyJson {
            indent: indent.map(str::to_string),
            item_separator: item.into(),
            key_separator: key.into(),
            sort_keys,
            ensure_ascii,
        };
        dumper.dumps(&serde_json::from_str(json).unwrap())
    }

    #[test]
    fn tojson_matches_python_json_dumps() {
        let v = r#"{"b":[1,2,{"c":"é<\u0001\n"}],"a":1.5,"e":[],"f":{}}"#;
        assert_eq!(dumps(v, None, false, false), r#"{"b": [1, 2, {"c": "é<\u0001\n"}], "a": 1.5, "e": [], "f": {}}"#);
        assert_eq!(
            dumps(v, Some("  "), false, false),
            "{\n  \"b\": [\n    1,\n    2,\n    {\n      \"c\": \"é<\\u0001\\n\"\n    }\n  ],\n  \"a\": 1.5,\n  \"e\": [],\n  \"f\": {}\n}"
        );
        assert_eq!(dumps(r#"{"b":"😀","a":1e20}"#, None, true, true), r#"{"a": 1e+20, "b": "\ud83d\ude00"}"#);
    }

    #[test]
    fn floats_print_as_python_repr() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (-2.5, "-2.5"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (12345.678, "12345.678"),
        ];
        for (f, repr) in cases {
            assert_eq!(py_float(f), repr);
        }
    }

    #[test]
    fn values_print_as_python_str() {
        let v = Value::from(minijinja::value::Serde(serde_json::json!({"a": [1, 2.0, "it's", null, true], "b": "x"})));
        assert_eq!(python_string(&v), r#"{'a': [1, 2.0, "it's", None, True], 'b': 'x'}"#);
        assert_eq!(python_string(&Value::from(false)), "False");
        assert_eq!(python_string(&Value::from(())), "None");
        assert_eq!(python_string(&Value::UNDEFINED), "");
    }

    #[test]
    fn tool_call_arguments_become_objects() {
        let m = ChatMessage::assistant_tool_calls(
            None,
            &[("a", "f", r#"{"x": 1}"#), ("b", "g", ""), ("c", "h", "not json")],
        );
        let calls = m.tool_calls.as_ref().unwrap();
        assert_eq!(calls[0].function.arguments, serde_json::json!({"x": 1}));
        assert_eq!(calls[1].function.arguments, serde_json::json!({}));
        assert_eq!(calls[2].function.arguments, serde_json::json!("not json"));
        assert_eq!(serde_json::to_value(&m).unwrap()["content"], serde_json::Value::Null);
        assert_eq!(
            serde_json::to_string(&m.template_value()).unwrap(),
            r#"{"role":"assistant","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":{"x":1}}},{"id":"b","type":"function","function":{"name":"g","arguments":{}}},{"id":"c","type":"function","function":{"name":"h","arguments":"not json"}}]}"#
        );
        let r = ChatMessage::new("assistant", "4").with_reasoning("2+2");
        assert_eq!(
            serde_json::to_string(&r.template_value()).unwrap(),
            r#"{"thinking":"2+2","role":"assistant","content":"4","reasoning_content":"2+2"}"#
        );
    }
}
