//! The grammar a local generation follows: the request's structured output (`response_format`,
//! vLLM's `guided_json` / `guided_regex` / `guided_grammar` / `guided_choice`), or — for
//! `tool_choice: required` or a named tool — a call in the model's own tool-call syntax whose
//! arguments follow the tool's parameter schema, so the output parser reads it back as a call;
//! under `tool_choice: auto`, the rest of one such call once the model has written its start.
//! Grammars are compiled once before anything is loaded (a schema llguidance cannot compile is a
//! 422 naming the field).

use std::sync::Mutex;

use mlx_manager_api::openai::{Guided, NamedToolChoice, ResponseFormat, Tool, ToolChoice, ToolChoiceMode};
use mlx_manager_engine::output::ToolFormat;
use mlx_manager_engine::{EngineError, Grammar};
use serde_json::{json, Value};

use crate::error::{ApiError, FieldError};

mod gemma;

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
        let mut schema = json_schema.schema.clone().unwrap_or(Value::Bool(true));
        // OpenAI's strict mode takes only objects closed to other properties; here one that does
        // not say is closed rather than refused (a small model would otherwise add keys to it
        // for as long as it is let).
        if json_schema.strict == Some(true) {
            strict(&mut schema);
        }
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
        check_schema(&parameters(tool), &format!("tools[{i}].function.parameters"))?;
    }
    Ok(())
}

/// Before anything is loaded: a schema given as `field` compiles (Anthropic's structured outputs,
/// checked in the client's own shape so that the error names its field).
pub(crate) fn check_schema(schema: &Value, field: &str) -> Result<(), ApiError> {
    compiles(schema).map_err(|e| refused(field, e))
}

/// Whether llguidance compiles `schema` ([`Grammar::check`]), remembering the schemas that did:
/// an agent sends the same tools with every request, and each check costs up to a millisecond on
/// the request's thread. (Failures are not kept: they are rare, and each needs its reason.)
fn compiles(schema: &Value) -> Result<(), EngineError> {
    use std::collections::HashSet;
    use std::hash::{BuildHasher, RandomState};
    static COMPILED: std::sync::LazyLock<(RandomState, Mutex<HashSet<u64>>)> =
        std::sync::LazyLock::new(Default::default);
    let (state, compiled) = &*COMPILED;
    let key = state.hash_one(schema.to_string());
    if compiled.lock().unwrap_or_else(|p| p.into_inner()).contains(&key) {
        return Ok(());
    }
    Grammar::JsonSchema(schema.clone()).check()?;
    let mut compiled = compiled.lock().unwrap_or_else(|p| p.into_inner());
    if compiled.len() >= 4096 {
        compiled.clear();
    }
    compiled.insert(key);
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

/// Hermes and Qwen3-Coder calls: `<tool_call>`, then `rest` (the rest of one call, with the
/// rules it uses), each further call (when `parallel`) on a new line.
fn tool_calls(rest: &str, parallel: bool) -> String {
    let more = if parallel { " (\"\\n\" call)*" } else { "" };
    format!("start: call{more}\ncall: \"<tool_call>\" rest\n{rest}")
}

/// Under `auto`, a Hermes or Qwen3-Coder call once `<tool_call>` is written (its text, as
/// decoded): `rest`, the rest of one call.
fn after_tool_call(rest: &str) -> (Grammar, String) {
    (Grammar::Lark(format!("start: rest\n{rest}")), "<tool_call>".into())
}

/// The rest of a Hermes call of any allowed tool after `<tool_call>`: the JSON object on a line.
fn hermes_rest(tools: &[&Tool]) -> String {
    format!("rest: \"\\n\" body \"\\n\" \"</tool_call>\"\nbody: %json {}\n", call_schema(tools, "arguments"))
}

/// The rest of a Qwen3-Coder call of any allowed tool after `<tool_call>`, as its template writes
/// calls: one `<parameter=KEY>\nVALUE\n</parameter>` per argument, the required ones in declared
/// order, then the others, each optional. A string value is plain text on one line, without `<`
/// (at most its `maxLength`, else 256 characters); any other value is JSON following its schema
/// (the parser converts by the declared type).
fn qwen3_coder_rest(tools: &[&Tool]) -> String {
    let mut lark = format!("rest: \"\\n\" ({}) \"</tool_call>\"\n", alternatives("fn", tools.len()));
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

/// The grammar of a forced call in `format` (None: the choice forces nothing).
pub(crate) fn forced_call(
    format: Option<ToolFormat>,
    tools: &[Tool],
    choice: Option<&ToolChoice>,
    parallel: bool,
) -> Option<Grammar> {
    let allowed = forced(tools, choice)?;
    let lark = match format? {
        ToolFormat::Hermes => tool_calls(&hermes_rest(&allowed), parallel),
        ToolFormat::Qwen3Coder => tool_calls(&qwen3_coder_rest(&allowed), parallel),
        ToolFormat::Llama3 => format!("start: body\nbody: %json {}", call_schema(&allowed, "parameters")),
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
        ToolFormat::Gemma => gemma::GEMMA4.calls(&allowed, parallel),
        ToolFormat::FunctionGemma => gemma::FUNCTION_GEMMA.calls(&allowed, parallel),
    };
    Some(Grammar::Lark(lark))
}

/// Under `tool_choice: auto` the model may answer in text or start a call; once it writes the
/// start of a call, the call follows the tools' schemas. The grammar of one call after its start,
/// and that start (the trigger). None also where llguidance cannot compile a tool's parameters
/// (valid JSON Schema it does not implement: `if`/`then`, look-around in a `pattern`): `auto`
/// asks for no constraint, so such a request is not refused, its calls are left free (logged),
/// as a forced choice's are refused with a 422 (see [`check`]).
pub(crate) fn started_call(
    format: Option<ToolFormat>,
    tools: &[Tool],
    choice: Option<&ToolChoice>,
) -> Option<(Grammar, String)> {
    if tools.is_empty() || !matches!(choice, None | Some(ToolChoice::Mode(ToolChoiceMode::Auto))) {
        return None;
    }
    format?;
    for tool in tools {
        if let Err(e) = compiles(&parameters(tool)) {
            let name = &tool.function().name;
            tracing::warn!(tool = %name, error = %e, "tool parameters cannot be enforced; calls under auto stay free");
            return None;
        }
    }
    let all: Vec<&Tool> = tools.iter().collect();
    match format? {
        ToolFormat::Hermes => Some(after_tool_call(&hermes_rest(&all))),
        ToolFormat::Qwen3Coder => Some(after_tool_call(&qwen3_coder_rest(&all))),
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
        ToolFormat::Gemma => Some(gemma::GEMMA4.started(&all)),
        ToolFormat::FunctionGemma => Some(gemma::FUNCTION_GEMMA.started(&all)),
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
    use mlx_manager_api::openai::JsonSchemaFormat;

    #[test]
    fn a_strict_response_format_closes_objects_that_do_not_say_and_a_plain_one_does_not() {
        let schema = json!({"type": "object", "properties": {"owner": {"type": "object",
            "properties": {"city": {"type": "string"}}}, "extra": {"type": "object", "additionalProperties": true}}});
        let format = |strict| ResponseFormat::JsonSchema {
            json_schema: JsonSchemaFormat {
                name: "pet".into(),
                description: None,
                schema: Some(schema.clone()),
                strict,
            },
        };
        let Some((Grammar::JsonSchema(closed), field)) = requested(Some(&format(Some(true))), &Guided::default())
        else {
            panic!("a schema")
        };
        assert_eq!(field, "response_format.json_schema.schema");
        assert_eq!(closed["additionalProperties"], false);
        assert_eq!(closed["properties"]["owner"]["additionalProperties"], false);
        assert_eq!(closed["properties"]["extra"]["additionalProperties"], true);
        for strict in [None, Some(false)] {
            let Some((Grammar::JsonSchema(open), _)) = requested(Some(&format(strict)), &Guided::default()) else {
                panic!("a schema")
            };
            assert_eq!(open, schema);
        }
    }

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
        // (Gemma's grammars name their quote token, which the byte tokenizer of `check` lacks.)
        for format in [ToolFormat::Hermes, ToolFormat::Qwen3Coder, ToolFormat::Llama3, ToolFormat::Mistral] {
            for parallel in [false, true] {
                let grammar = forced_call(Some(format), &tools, Some(&required), parallel).unwrap();
                if let Err(e) = grammar.check() {
                    panic!("{format:?}: {e}\n{grammar:?}");
                }
            }
        }
        // Gemma's, with the quote token as text.
        let quoted = |format: ToolFormat, lark: String| {
            let quote = if format == ToolFormat::Gemma { "<|\"|>" } else { "<escape>" };
            assert!(lark.contains(quote), "{lark}");
            let text = Grammar::Lark(lark.replace(quote, "\"'\""));
            text.check().unwrap_or_else(|e| panic!("{format:?}: {e}\n{lark}"));
        };
        for format in [ToolFormat::Gemma, ToolFormat::FunctionGemma] {
            let Some(Grammar::Lark(lark)) = forced_call(Some(format), &tools, Some(&required), true) else {
                panic!("no {format:?} grammar")
            };
            quoted(format, lark);
            let Some((Grammar::Lark(lark), _)) = started_call(Some(format), &tools, None) else {
                panic!("no started {format:?} grammar")
            };
            quoted(format, lark);
        }
        let triggers = [
            (ToolFormat::Hermes, "<tool_call>"),
            (ToolFormat::Qwen3Coder, "<tool_call>"),
            (ToolFormat::Harmony, "to=functions"),
            (ToolFormat::Mistral, "[TOOL_CALLS]"),
            (ToolFormat::Llama3, "{\"name\":"),
        ];
        for (format, expected) in triggers {
            let (grammar, trigger) = started_call(Some(format), &tools, None).unwrap();
            assert_eq!(trigger, expected);
            grammar.check().unwrap_or_else(|e| panic!("{format:?}: {e}\n{grammar:?}"));
        }
        assert_eq!(started_call(Some(ToolFormat::Gemma), &tools, None).unwrap().1, "<|tool_call>");
        assert_eq!(started_call(Some(ToolFormat::FunctionGemma), &tools, None).unwrap().1, "<start_function_call>");
    }
}
