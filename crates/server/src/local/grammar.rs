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

/// The grammar of a forced call in `format` (None: the choice forces nothing, or this format's
/// calls cannot be written as a grammar yet — Mistral, Gemma — then the model is only shown the
/// allowed tools).
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
            let mut lark =
                format!("start: {}\n", (0..allowed.len()).map(|i| format!("call_{i}")).collect::<Vec<_>>().join(" | "));
            for (i, tool) in allowed.iter().enumerate() {
                let recipient = Value::String(format!(" to=functions.{}", tool.function().name));
                let schema = mlx_manager_engine::bounded_whitespace(parameters(tool));
                lark.push_str(&format!(
                    "call_{i}: {recipient} <|channel|> \"commentary json\" <|message|> args_{i}\nargs_{i}: %json {schema}\n"
                ));
            }
            lark
        }
        other => {
            tracing::warn!(format = ?other, "forced tool calls are not constrained for this tool-call format");
            return None;
        }
    };
    Some(Grammar::Lark(lark))
}

/// Under `tool_choice: auto` the model may answer in text or start a call; once it writes the
/// start of a call, the call follows the tools' schemas. The grammar of one call after its start
/// tag, and that tag (None where the format has no start tag to wait for: Llama 3's bare JSON;
/// or no grammar is written for it yet).
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
        _ => None,
    }
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
}
