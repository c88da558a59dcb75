//! Gemma's calls: Gemma 4's `<|tool_call>call:NAME{key:<|"|>text<|"|>,n:1}<tool_call|>` and
//! FunctionGemma's `<start_function_call>call:NAME{key:<escape>text<escape>}<end_function_call>`.
//! One value syntax with two sets of delimiters, so one builder takes the delimiters as data.

use mlx_manager_api::openai::Tool;
use mlx_manager_engine::Grammar;
use serde_json::{json, Value};

use super::{alternatives, parameters};

/// The delimiters of one Gemma call syntax. The block tags are quoted (the model's special
/// tokens, as the engine writes such literals); the string quote is named as a token, not
/// quoted: a quoted one would stay text on a vocabulary without that token, while named it makes
/// the grammar fail to compile there, so a call on a model with the other syntax's vocabulary is
/// refused (422) instead of being held to a syntax the model does not write.
pub(super) struct GemmaSyntax {
    /// The tag that opens a block of calls (and, under `auto`, triggers the grammar).
    start: &'static str,
    /// The tag that closes it.
    end: &'static str,
    /// The string quote token.
    quote: &'static str,
}

/// Gemma 4.
pub(super) const GEMMA4: GemmaSyntax = GemmaSyntax { start: "<|tool_call>", end: "<tool_call|>", quote: "<|\"|>" };

/// FunctionGemma (google/functiongemma-270m-it), whose three tags are special tokens.
pub(super) const FUNCTION_GEMMA: GemmaSyntax =
    GemmaSyntax { start: "<start_function_call>", end: "<end_function_call>", quote: "<escape>" };

impl GemmaSyntax {
    /// Calls of any allowed tool as the template writes them, one block per call (several when
    /// `parallel`).
    pub(super) fn calls(&self, tools: &[&Tool], parallel: bool) -> String {
        let more = if parallel { " block*" } else { "" };
        let start = Value::String(self.start.into());
        format!("start: block{more}\nblock: {start} rest\n{}", self.rest(tools))
    }

    /// Under `auto`, a call once the start tag is written (its text, as decoded, is the trigger):
    /// the rest of one call, up to the end tag.
    pub(super) fn started(&self, tools: &[&Tool]) -> (Grammar, String) {
        (Grammar::Lark(format!("start: rest\n{}", self.rest(tools))), self.start.into())
    }

    /// `rest`: `call:NAME{…}` of any allowed tool and the end tag, and the rules it uses.
    fn rest(&self, tools: &[&Tool]) -> String {
        let mut values = GemmaValues { quote: self.quote, rules: Vec::new() };
        let end = Value::String(self.end.into());
        let mut lark = format!("rest: ({}) {end}\n", alternatives("call", tools.len()));
        for (i, tool) in tools.iter().enumerate() {
            let args = values.object(parameters(tool).as_object().unwrap_or(&serde_json::Map::new()));
            let head = Value::String(format!("call:{}", tool.function().name));
            lark.push_str(&format!("call_{i}: {head} {args}\n"));
        }
        for rule in values.rules {
            lark.push_str(&rule);
            lark.push('\n');
        }
        lark
    }
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
