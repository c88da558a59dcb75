//! The grammar a local generation follows: the request's structured output (`response_format`,
//! vLLM's `guided_json` / `guided_regex` / `guided_grammar` / `guided_choice`), or — for
//! `tool_choice: required` or a named tool — a call in the model's own tool-call syntax whose
//! arguments follow the tool's parameter schema, so the output parser reads it back as a call.
//! Grammars are compiled once before anything is loaded (a schema llguidance cannot compile is a
//! 422 naming the field).

use mlx_manager_api::openai::{Guided, NamedToolChoice, ResponseFormat, Tool, ToolChoice, ToolChoiceMode};
use mlx_manager_engine::output::ToolFormat;
use mlx_manager_engine::{EngineError, Grammar};
use serde_json::{json, Value};

use crate::error::{ApiError, FieldError};

fn refused(field: &str, e: EngineError) -> ApiError {
    let message = match e {
        EngineError::Grammar { message } => format!("cannot be enforced: {message}"),
        other => other.to_string(),
    };
    ApiError::Validation(vec![FieldError::new(field, message)])
}

/// The structured output a request asks for, and the field that asked.
pub(crate) fn requested(format: Option<&ResponseFormat>, guided: &Guided) -> Option<(Grammar, &'static str)> {
    if let Some(ResponseFormat::JsonSchema { json_schema }) = format {
        let schema = json_schema.schema.clone().unwrap_or(Value::Bool(true));
        return Some((Grammar::JsonSchema(schema), "response_format.json_schema.schema"));
    }
    if let Some(ResponseFormat::JsonObject) = format {
        return Some((Grammar::JsonObject, "response_format"));
    }
    if let Some(schema) = &guided.guided_json {
        return Some((Grammar::JsonSchema(schema.clone()), "guided_json"));
    }
    if let Some(rx) = &guided.guided_regex {
        return Some((Grammar::Regex(rx.clone()), "guided_regex"));
    }
    if let Some(lark) = &guided.guided_grammar {
        return Some((Grammar::Lark(lark.clone()), "guided_grammar"));
    }
    if let Some(choices) = &guided.guided_choice {
        let alternatives: Vec<String> = choices.iter().map(|c| Value::String(c.clone()).to_string()).collect();
        return Some((Grammar::Lark(format!("start: {}", alternatives.join(" | "))), "guided_choice"));
    }
    None
}

/// The tools a forced choice allows (None: the choice does not force a call).
fn forced<'a>(tools: &'a [Tool], choice: Option<&ToolChoice>) -> Option<Vec<&'a Tool>> {
    match choice? {
        ToolChoice::Mode(ToolChoiceMode::Required) => Some(tools.iter().collect()),
        ToolChoice::Named(NamedToolChoice::Function { function }) => {
            Some(tools.iter().filter(|t| t.function().name == function.name).collect())
        }
        ToolChoice::Mode(_) => None,
    }
}

/// A tool's parameter schema as its calls are held to: every object, nested ones included, has
/// the declared properties only (as OpenAI's strict mode has it) unless the schema itself allows
/// others — a small model would otherwise invent keys, of any length, for as long as it is let.
fn parameters(tool: &Tool) -> Value {
    let mut schema = tool.function().parameters.clone().unwrap_or_else(|| json!({"type": "object"}));
    strict(&mut schema);
    schema
}

/// A tool's parameters as a `%json` argument schema: closed as [`parameters`], its whitespace
/// bounded.
fn json_arguments(tool: &Tool) -> Value {
    mlx_manager_engine::bounded_whitespace(parameters(tool))
}

/// `prefix_0 | prefix_1 | …`: a Lark choice between `n` numbered rules.
fn alternatives(prefix: &str, n: usize) -> String {
    (0..n).map(|i| format!("{prefix}_{i}")).collect::<Vec<_>>().join(" | ")
}

/// Closes every object schema in `schema` that does not say whether it takes other properties.
fn strict(schema: &mut Value) {
    let Some(obj) = schema.as_object_mut() else { return };
    if obj.get("type").and_then(Value::as_str) == Some("object") {
        obj.entry("additionalProperties").or_insert(Value::Bool(false));
    }
    for (key, value) in obj.iter_mut() {
        match (key.as_str(), value) {
            ("properties" | "$defs" | "definitions" | "patternProperties", Value::Object(children)) => {
                children.values_mut().for_each(strict)
            }
            ("items" | "additionalProperties" | "not", child @ Value::Object(_)) => strict(child),
            ("anyOf" | "oneOf" | "allOf" | "prefixItems", Value::Array(children)) => {
                children.iter_mut().for_each(strict)
            }
            _ => {}
        }
    }
}

/// Before anything is loaded: the request's grammar and, for a forced tool choice, each allowed
/// tool's parameter schema compile.
pub(crate) fn check(
    format: Option<&ResponseFormat>,
    guided: &Guided,
    tools: &[Tool],
    choice: Option<&ToolChoice>,
) -> Result<(), ApiError> {
    if let Some((grammar, field)) = requested(format, guided) {
        grammar.check().map_err(|e| refused(field, e))?;
    }
    for tool in forced(tools, choice).unwrap_or_default() {
        let i = tools.iter().position(|t| std::ptr::eq(t, tool)).unwrap_or_default();
        Grammar::JsonSchema(parameters(tool))
            .check()
            .map_err(|e| refused(&format!("tools[{i}].function.parameters"), e))?;
    }
    Ok(())
}

/// One call of any allowed tool as a JSON object `{"name": …, <arguments key>: …}`.
fn call_schema(tools: &[&Tool], arguments: &str) -> Value {
    let each: Vec<Value> = tools
        .iter()
        .map(|t| {
            json!({"type": "object", "properties": {"name": {"const": t.function().name}, arguments: parameters(t)},
                "required": ["name", arguments], "additionalProperties": false})
        })
        .collect();
    mlx_manager_engine::bounded_whitespace(json!({"anyOf": each}))
}

/// A Qwen3-Coder call of any allowed tool, as its template writes calls: one
/// `<parameter=KEY>\nVALUE\n</parameter>` per argument, the required ones in declared order, then
/// the others, each optional. A string value is plain text on one line, without `<` (at most its
/// `maxLength`, else 256 characters); any other value is JSON following its schema (the parser
/// converts by the declared type).
fn qwen3_coder_call(tools: &[&Tool]) -> String {
    let fns: Vec<String> = (0..tools.len()).map(|i| format!("fn_{i}")).collect();
    let mut lark = format!("call: \"<tool_call>\" \"\\n\" ({}) \"</tool_call>\"\n", fns.join(" | "));
    for (i, tool) in tools.iter().enumerate() {
        let schema = parameters(tool);
        let props = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut order: Vec<(&String, bool)> =
            props.keys().filter(|k| required.contains(&k.as_str())).map(|k| (k, true)).collect();
        order.extend(props.keys().filter(|k| !required.contains(&k.as_str())).map(|k| (k, false)));
        let mut body = Vec::new();
        for (k, (key, needed)) in order.into_iter().enumerate() {
            let sub = &props[key];
            let text = sub.get("type").and_then(Value::as_str).is_none_or(|t| t == "string");
            let value = match sub.get("enum").and_then(Value::as_array) {
                // Plain text: the choices as written, not as JSON strings.
                Some(choices) if text => {
                    let alternatives: Vec<String> =
                        choices.iter().filter_map(Value::as_str).map(|c| Value::String(c.into()).to_string()).collect();
                    format!("({})", alternatives.join(" | "))
                }
                None if text => {
                    let most = sub.get("maxLength").and_then(Value::as_u64).unwrap_or(256).max(1);
                    format!("/[^<\\n]{{1,{most}}}/")
                }
                _ => format!("%json {}", mlx_manager_engine::bounded_whitespace(sub.clone())),
            };
            let tag = Value::String(format!("<parameter={key}>"));
            lark.push_str(&format!("p_{i}_{k}: {tag} \"\\n\" {value} \"\\n\" \"</parameter>\" \"\\n\"\n"));
            body.push(if needed { format!("p_{i}_{k}") } else { format!("p_{i}_{k}?") });
        }
        let open = Value::String(format!("<function={}>", tool.function().name));
        lark.push_str(&format!("fn_{i}: {open} \"\\n\" {} \"</function>\" \"\\n\"\n", body.join(" ")));
    }
    lark
}

/// One Mistral call of any allowed tool after `[TOOL_CALLS]`, in either syntax the parser reads:
/// the older tokenizers' JSON list `[{"name": …, "arguments": {…}}, …]` (Mistral 7B v0.3, Nemo)
/// or the v11+ `NAME[ARGS]{…}` (Mistral Small 3.2, Devstral, Magistral), each further call after
/// its own `[TOOL_CALLS]` as that template writes them. The model takes the one it knows.
/// `"[TOOL_CALLS]"` and `"[ARGS]"` are the model's own control tokens where its vocabulary has
/// them as special tokens (the engine writes such literals as the tokens), text where not.
fn mistral_calls(tools: &[&Tool], parallel: bool) -> String {
    let more = if parallel { " (\"[TOOL_CALLS]\" named)*" } else { "" };
    format!("start: \"[TOOL_CALLS]\" (list | v11)\nv11: named{more}\n{}", mistral_after_tag(tools, parallel))
}

/// What follows `[TOOL_CALLS]`: `list` (the JSON list, several calls when `parallel`) or one
/// `named` call (v11).
fn mistral_after_tag(tools: &[&Tool], parallel: bool) -> String {
    let more = if parallel { " (\", \" item)*" } else { "" };
    let mut lark = format!("list: \"[\" item{more} \"]\"\nitem: %json {}\n", call_schema(tools, "arguments"));
    lark.push_str(&format!("named: {}\n", alternatives("named", tools.len())));
    for (i, tool) in tools.iter().enumerate() {
        let name = Value::String(tool.function().name.clone());
        let schema = json_arguments(tool);
        lark.push_str(&format!("named_{i}: {name} \"[ARGS]\" %json {schema}\n"));
    }
    lark
}

/// Gemma's value syntax, one grammar rule per schema node: strings between the quote, numbers,
/// booleans and null bare (as JSON writes them), objects `{key:value,…}` with bare keys in sorted
/// order (the template's `dictsort`), arrays `[…]`; no whitespace (the template writes none).
struct GemmaValues {
    /// The Lark expression of the string quote.
    quote: &'static str,
    /// The rules written so far (`v_N`, and `v_any` for a value of any type).
    rules: Vec<String>,
}

impl GemmaValues {
    /// A new rule with `body`; its name.
    fn rule(&mut self, body: String) -> String {
        let name = format!("v_{}", self.rules.len());
        self.rules.push(format!("{name}: {body}"));
        name
    }

    /// Lark for the fixed value `v`.
    fn literal(&self, v: &Value) -> String {
        let lit = |s: &str| Value::String(s.to_string()).to_string();
        match v {
            Value::String(s) if s.is_empty() => format!("{q} {q}", q = self.quote),
            Value::String(s) => format!("{q} {} {q}", lit(s), q = self.quote),
            Value::Array(items) => {
                let inner: Vec<String> = items.iter().map(|i| self.literal(i)).collect();
                format!("\"[\" {} \"]\"", inner.join(" \",\" "))
            }
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                let inner: Vec<String> =
                    keys.iter().map(|k| format!("{} {}", self.key(k), self.literal(&map[*k]))).collect();
                format!("\"{{\" {} \"}}\"", inner.join(" \",\" "))
            }
            other => lit(&other.to_string()),
        }
    }

    /// A key and its `:`: a bare word where the parser reads one back, else quoted.
    fn key(&self, key: &str) -> String {
        let bare = !key.is_empty()
            && key.chars().all(|c| c.is_alphanumeric() || c == '_' || c == '-')
            && !key.starts_with(|c: char| c.is_ascii_digit() || c == '-');
        if bare {
            Value::String(format!("{key}:")).to_string()
        } else {
            format!("{q} {} {q} \":\"", Value::String(key.to_string()), q = self.quote)
        }
    }

    /// Any value (for a schema without a type, or one this writer does not follow).
    fn any(&mut self) -> String {
        let name = "v_any".to_string();
        if !self.rules.iter().any(|r| r.starts_with(&format!("{name}:"))) {
            let q = self.quote;
            self.rules.push(format!(
                "{name}: {q} /[^<]{{0,256}}/ {q} | /-?(0|[1-9][0-9]{{0,15}})(\\.[0-9]{{1,16}})?/ | \"true\" | \"false\" \
                 | \"null\" | \"{{\" ({name}_kv (\",\" {name}_kv)*)? \"}}\" | \"[\" ({name} (\",\" {name})*)? \"]\"\n\
                 {name}_kv: /[A-Za-z_][A-Za-z0-9_]{{0,63}}/ \":\" {name}"
            ));
        }
        name
    }

    /// The rule of a value valid for `schema`.
    fn value(&mut self, schema: &Value) -> String {
        let Some(obj) = schema.as_object() else {
            return self.any();
        };
        if let Some(c) = obj.get("const") {
            let body = self.literal(c);
            return self.rule(body);
        }
        if let Some(choices) = obj.get("enum").and_then(Value::as_array) {
            let body: Vec<String> = choices.iter().map(|c| self.literal(c)).collect();
            return self.rule(body.join(" | "));
        }
        if let Some(alternatives) = obj.get("anyOf").or_else(|| obj.get("oneOf")).and_then(Value::as_array) {
            let body: Vec<String> = alternatives.iter().map(|a| self.value(a)).collect();
            return self.rule(body.join(" | "));
        }
        let types: Vec<&str> = match obj.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ if obj.contains_key("properties") => vec!["object"],
            _ if obj.contains_key("items") => vec!["array"],
            _ => return self.any(),
        };
        let body: Vec<String> = types.into_iter().map(|t| self.typed(obj, t)).collect();
        self.rule(body.join(" | "))
    }

    /// The Lark of a value of type `t` under the keywords of `schema`.
    fn typed(&mut self, schema: &serde_json::Map<String, Value>, t: &str) -> String {
        let q = self.quote;
        match t {
            // With a pattern or a format: a JSON string, which the parser reads back as a bare
            // token (valid as long as the text has no `,`, `}` or `]`).
            "string" if schema.contains_key("pattern") || schema.contains_key("format") => {
                let mut sub = Value::Object(schema.clone());
                sub["type"] = json!("string");
                format!("%json {sub}")
            }
            // Plain text without `<` (no quote inside), `maxLength` or else 256 characters.
            "string" => {
                let least = schema.get("minLength").and_then(Value::as_u64).unwrap_or(0);
                let most = schema.get("maxLength").and_then(Value::as_u64).unwrap_or(256).max(least);
                if most == 0 {
                    format!("{q} {q}")
                } else {
                    format!("{q} /[^<]{{{least},{most}}}/ {q}")
                }
            }
            "integer" | "number" | "boolean" | "null" => {
                let mut sub = Value::Object(schema.clone());
                sub["type"] = json!(t);
                format!("%json {}", mlx_manager_engine::bounded_whitespace(sub))
            }
            "object" => self.object(schema),
            "array" => {
                let item = match schema.get("items") {
                    Some(items) => self.value(items),
                    None => self.any(),
                };
                let least = schema.get("minItems").and_then(Value::as_u64).unwrap_or(0);
                let most = schema.get("maxItems").and_then(Value::as_u64);
                // (A Lark range cannot end at 0.)
                let rest = match most {
                    Some(0 | 1) => String::new(),
                    Some(most) => format!(" (\",\" {item}){{{},{}}}", least.saturating_sub(1), most - 1),
                    None if least > 1 => format!(" (\",\" {item}){{{},}}", least - 1),
                    None => format!(" (\",\" {item})*"),
                };
                match (least, most) {
                    (_, Some(0)) => "\"[\" \"]\"".into(),
                    (0, _) => format!("\"[\" ({item}{rest})? \"]\""),
                    _ => format!("\"[\" {item}{rest} \"]\""),
                }
            }
            _ => self.any(),
        }
    }

    /// `{key:value,…}`: the declared properties in sorted order, the required ones always, the
    /// others optional, commas only between those written.
    fn object(&mut self, schema: &serde_json::Map<String, Value>) -> String {
        let props = schema.get("properties").and_then(Value::as_object).cloned().unwrap_or_default();
        let required: Vec<&str> =
            schema.get("required").and_then(Value::as_array).into_iter().flatten().filter_map(Value::as_str).collect();
        let mut keys: Vec<&String> = props.keys().collect();
        keys.sort();
        let pairs: Vec<(String, bool)> = keys
            .iter()
            .map(|k| {
                let value = self.value(&props[*k]);
                (format!("{} {value}", self.key(k)), required.contains(&k.as_str()))
            })
            .collect();
        // From the last property back: `after` writes properties k.. once one was written (each
        // after a comma), `first` writes them when none was yet.
        let (mut after, mut first) = (None::<String>, None::<String>);
        for (pair, needed) in pairs.into_iter().rev() {
            let tail = |rule: &Option<String>| rule.as_ref().map(|r| format!(" {r}")).unwrap_or_default();
            let with_comma = if needed {
                format!("\",\" {pair}{}", tail(&after))
            } else {
                format!("(\",\" {pair})?{}", tail(&after))
            };
            let leading = if needed {
                format!("{pair}{}", tail(&after))
            } else {
                match &first {
                    Some(f) => format!("{pair}{} | {f}", tail(&after)),
                    None => format!("({pair})?"),
                }
            };
            after = Some(self.rule(with_comma));
            first = Some(self.rule(leading));
        }
        match first {
            Some(f) => format!("\"{{\" {f} \"}}\""),
            None => "\"{\" \"}\"".into(),
        }
    }
}

/// A Gemma 4 call of any allowed tool as its template writes calls, one block per call:
/// `<|tool_call>call:NAME{key:<|"|>text<|"|>,n:1}<tool_call|>` (the quoted tags are the model's
/// special tokens, as the engine writes such literals). The string quote is named as a token
/// (`<|"|>`), not quoted: a quoted one would stay text on a vocabulary without that token, while
/// named it makes the grammar fail to compile there, so a forced call on FunctionGemma (same
/// parser, calls in `<start_function_call>…<escape>…`) is refused (422) instead of being held to
/// Gemma 4's syntax spelled out as text.
fn gemma_calls(tools: &[&Tool], parallel: bool) -> String {
    let mut values = GemmaValues { quote: "<|\"|>", rules: Vec::new() };
    let mut calls = Vec::new();
    for tool in tools {
        let args = values.object(parameters(tool).as_object().unwrap_or(&serde_json::Map::new()));
        let head = Value::String(format!("call:{}", tool.function().name));
        calls.push(format!("{head} {args}"));
    }
    let more = if parallel { " block*" } else { "" };
    let mut lark = format!("start: block{more}\nblock: \"<|tool_call>\" ({}) \"<tool_call|>\"\n", calls.join(" | "));
    for rule in values.rules {
        lark.push_str(&rule);
        lark.push('\n');
    }
    lark
}

/// The grammar of a forced call in `format` (None: the choice forces nothing).
pub(crate) fn forced_call(
    format: Option<ToolFormat>,
    tools: &[Tool],
    choice: Option<&ToolChoice>,
    parallel: bool,
) -> Option<Grammar> {
    let allowed = forced(tools, choice)?;
    let lark = match format? {
        ToolFormat::Hermes => {
            let more = if parallel { " (\"\\n\" call)*" } else { "" };
            format!(
                "start: call{more}\ncall: \"<tool_call>\" \"\\n\" body \"\\n\" \"</tool_call>\"\nbody: %json {}",
                call_schema(&allowed, "arguments")
            )
        }
        ToolFormat::Llama3 => format!("start: body\nbody: %json {}", call_schema(&allowed, "parameters")),
        ToolFormat::Qwen3Coder => {
            let more = if parallel { " (\"\\n\" call)*" } else { "" };
            format!("start: call{more}\n{}", qwen3_coder_call(&allowed))
        }
        // gpt-oss: the prompt ends with `<|start|>assistant`; a call is the recipient, the
        // commentary channel and the arguments (as its template writes calls), then `<|call|>`.
        ToolFormat::Harmony => {
            let mut lark = format!("start: {}\n", alternatives("call", allowed.len()));
            for (i, tool) in allowed.iter().enumerate() {
                let recipient = Value::String(format!(" to=functions.{}", tool.function().name));
                let schema = json_arguments(tool);
                lark.push_str(&format!(
                    "call_{i}: {recipient} <|channel|> \"commentary json\" <|message|> args_{i}\nargs_{i}: %json {schema}\n"
                ));
            }
            lark
        }
        ToolFormat::Mistral => mistral_calls(&allowed, parallel),
        ToolFormat::Gemma => gemma_calls(&allowed, parallel),
    };
    Some(Grammar::Lark(lark))
}

/// Under `tool_choice: auto` the model may answer in text or start a call; once it writes the
/// start of a call, the call follows the tools' schemas. The grammar of one call after its start,
/// and that start (the trigger). None where no grammar is written for the format yet.
pub(crate) fn started_call(
    format: Option<ToolFormat>,
    tools: &[Tool],
    choice: Option<&ToolChoice>,
) -> Option<(Grammar, String)> {
    if tools.is_empty() || !matches!(choice, None | Some(ToolChoice::Mode(ToolChoiceMode::Auto))) {
        return None;
    }
    let all: Vec<&Tool> = tools.iter().collect();
    match format? {
        ToolFormat::Hermes => {
            let lark =
                format!("start: \"\\n\" body \"\\n\" \"</tool_call>\"\nbody: %json {}", call_schema(&all, "arguments"));
            Some((Grammar::Lark(lark), "<tool_call>".into()))
        }
        // gpt-oss: a message to `functions.NAME`; the trigger stops short of the `.` because
        // o200k's pre-tokenizer joins it to the name (`.get`), so the text never ends with it.
        // After the name, the rest of the header in any of the forms the parser reads (the
        // channel may come before the recipient or after it), then the arguments.
        ToolFormat::Harmony => Some((Grammar::Lark(harmony_started(&all)), "to=functions".into())),
        ToolFormat::Llama3 => Some((Grammar::Lark(llama3_started(&all)), "{\"name\":".into())),
        // Mistral: the calls after `[TOOL_CALLS]` (the control token's text, as decoded), in
        // either syntax; a further v11 call has its own `[TOOL_CALLS]`, which triggers again.
        ToolFormat::Mistral => {
            let lark = format!("start: list | named\n{}", mistral_after_tag(&all, true));
            Some((Grammar::Lark(lark), "[TOOL_CALLS]".into()))
        }
        _ => None,
    }
}

/// The rest of a Llama 3 call after `{"name":`. Llama 3 has no start tag: the parser takes any
/// JSON object whose first key is `"name"` naming a declared tool for a call, wherever it is. So
/// once `{"name":` is written, a declared tool's name holds the rest to that tool's schema, and
/// any other value (`{"name": "Ada", …}` in an answer) ends the grammar at once and the text
/// goes on freely. (Spellings the trigger misses, `{ "name"` or a leading `"type"` key, stay
/// free, as before.)
fn llama3_started(tools: &[&Tool]) -> String {
    let names: Vec<String> =
        tools.iter().map(|t| Value::String(Value::String(t.function().name.clone()).to_string()).to_string()).collect();
    let mut lark = format!(
        "start: \" \"? ({} | other)\nother: OTHER | /[^\" ]/\nOTHER: /\"(\\\\.|[^\"\\\\\\x00-\\x1f])*\"/ & ~({})\n",
        alternatives("call", tools.len()),
        names.join(" | ")
    );
    for (i, (tool, name)) in tools.iter().zip(&names).enumerate() {
        let schema = json_arguments(tool);
        lark.push_str(&format!(
            "call_{i}: {name} \",\" \" \"? (\"\\\"parameters\\\"\" | \"\\\"arguments\\\"\") \":\" \" \"? %json {schema} \"}}\"\n"
        ));
    }
    lark
}

/// The rest of a harmony call after `to=functions` (tags quoted: the model's special tokens
/// where they are ones).
fn harmony_started(tools: &[&Tool]) -> String {
    let mut lark = format!("start: {}\n", alternatives("call", tools.len()));
    lark.push_str(
        "head: \" \"? (\"<|channel|>\" \"commentary\" \" \"?)? (\"<|constrain|>\"? \"json\")? \"<|message|>\"\n",
    );
    for (i, tool) in tools.iter().enumerate() {
        let name = Value::String(format!(".{}", tool.function().name));
        let schema = json_arguments(tool);
        lark.push_str(&format!("call_{i}: {name} head %json {schema}\n"));
    }
    lark
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_parameters_are_closed_at_every_depth_unless_they_say_otherwise() {
        let mut schema = json!({"type": "object", "properties": {
            "owner": {"type": "object", "properties": {"city": {"type": "string"}}},
            "tags": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string"}}}},
            "either": {"anyOf": [{"type": "object"}, {"type": "string"}]},
            "open": {"type": "object", "additionalProperties": true},
        }});
        strict(&mut schema);
        assert_eq!(schema["additionalProperties"], false);
        assert_eq!(schema["properties"]["owner"]["additionalProperties"], false);
        assert_eq!(schema["properties"]["tags"]["items"]["additionalProperties"], false);
        assert_eq!(schema["properties"]["either"]["anyOf"][0]["additionalProperties"], false);
        assert_eq!(schema["properties"]["open"]["additionalProperties"], true, "a schema's own choice stands");
        assert!(schema["properties"]["either"]["anyOf"][1].get("additionalProperties").is_none());
    }

    fn weather() -> Vec<Tool> {
        serde_json::from_value(
            json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
            "properties": {"city": {"type": "string", "maxLength": 8}, "days": {"type": "integer", "minimum": 1},
                "when": {"type": "string", "format": "date"}, "unit": {"enum": ["c", "f"]}, "any": {},
                "opts": {"type": "object", "properties": {"m": {"type": ["boolean", "null"]},
                    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 2},
                    "one": {"type": "array", "maxItems": 1}, "many": {"type": "array", "minItems": 3}}}},
            "required": ["city", "days"]}}},
            {"type": "function", "function": {"name": "noop"}}]),
        )
        .unwrap()
    }

    #[test]
    fn forced_calls_compile_for_every_format() {
        let tools = weather();
        let required = ToolChoice::Mode(ToolChoiceMode::Required);
        // (Gemma's grammar names its quote token, which the byte tokenizer of `check` lacks.)
        for format in [ToolFormat::Hermes, ToolFormat::Qwen3Coder, ToolFormat::Llama3, ToolFormat::Mistral] {
            for parallel in [false, true] {
                let grammar = forced_call(Some(format), &tools, Some(&required), parallel).unwrap();
                if let Err(e) = grammar.check() {
                    panic!("{format:?}: {e}\n{grammar:?}");
                }
            }
        }
        // Gemma's, with its quote token as text.
        let Some(Grammar::Lark(gemma)) = forced_call(Some(ToolFormat::Gemma), &tools, Some(&required), true) else {
            panic!("no Gemma grammar")
        };
        let text = Grammar::Lark(gemma.replace("<|\"|>", "\"'\""));
        text.check().unwrap_or_else(|e| panic!("{e}\n{gemma}"));
        let (grammar, trigger) = started_call(Some(ToolFormat::Harmony), &tools, None).unwrap();
        assert_eq!(trigger, "to=functions");
        grammar.check().unwrap();
        let (grammar, trigger) = started_call(Some(ToolFormat::Mistral), &tools, None).unwrap();
        assert_eq!(trigger, "[TOOL_CALLS]");
        grammar.check().unwrap_or_else(|e| panic!("{e}\n{grammar:?}"));
        let (grammar, trigger) = started_call(Some(ToolFormat::Llama3), &tools, None).unwrap();
        assert_eq!(trigger, "{\"name\":");
        grammar.check().unwrap_or_else(|e| panic!("{e}\n{grammar:?}"));
    }
}
