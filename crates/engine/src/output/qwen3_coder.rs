//! Qwen3-Coder calls: XML-ish, one parameter at a time,
//! `<tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n</function>\n</tool_call>`
//! (the `<tool_call>` wrapper is sometimes left out). A value is plain text; it becomes JSON by
//! the declared type of its parameter, as mlx-lm's `tool_parsers/qwen3_coder.py` converts it.
//! The arguments are built as canonical JSON, one parameter as it completes: `{"city": "Paris"`,
//! then `, "days": 3`, then `}`.

use serde_json::{Map, Value};

use super::scan::{Cursor, Read, Stop};
use super::tagged::{Opened, Reader, Step, Syntax};
use super::Ctx;

/// The Qwen3-Coder syntax.
pub(super) struct Qwen3Coder;

impl Syntax for Qwen3Coder {
    fn markers(&self) -> &'static [&'static str] {
        &["<tool_call>", "<function="]
    }

    fn open(&self, marker: usize, rest: &str, fin: bool, ctx: &Ctx) -> Read<Opened> {
        let mut cur = Cursor::new(rest, fin);
        if marker == 0 {
            cur.ws();
            cur.lit("<function=")?;
        }
        let name = tag_name(&mut cur)?;
        ctx.check(name)?;
        let call = Call {
            name: Some(name.to_string()),
            props: ctx.properties(name).cloned().unwrap_or_default(),
            params: 0,
            state: State::Params,
        };
        Ok((Box::new(call), cur.pos))
    }
}

/// The `NAME>` after `<function=` or `<parameter=`.
fn tag_name<'a>(cur: &mut Cursor<'a>) -> Read<&'a str> {
    cur.ws();
    let name = cur.word(|c| c != '>' && c != '<' && !c.is_whitespace())?;
    cur.ws();
    cur.lit(">")?;
    if name.is_empty() {
        return Err(Stop::No);
    }
    Ok(name)
}

enum State {
    /// Between parameters.
    Params,
    /// Inside a parameter's value; `searched`: how far the value was searched for its end.
    Value {
        param: String,
        searched: usize,
    },
    /// After `</function>`: the `</tool_call>` that may follow.
    Close,
    Done,
}

/// Reads one function's parameters.
struct Call {
    /// The call to start, until it is started.
    name: Option<String>,
    /// The tool's parameter schemas, for the value types.
    props: Map<String, Value>,
    /// Parameters passed on so far.
    params: usize,
    state: State,
}

impl Reader for Call {
    fn read(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Step {
        if let Some(name) = self.name.take() {
            ctx.start_call(name, None);
        }
        let mut pos = 0;
        while !matches!(self.state, State::Done) {
            match self.part(&buf[pos..], fin, ctx) {
                Ok(n) => pos += n,
                Err(stop) => return Step::stopped(stop, pos, buf.len(), ctx),
            }
        }
        Step::Done(pos)
    }
}

impl Call {
    /// Reads one part (a parameter, a closing tag) from the start of `s`.
    fn part(&mut self, s: &str, fin: bool, ctx: &mut Ctx) -> Read<usize> {
        let mut cur = Cursor::new(s, fin);
        match &mut self.state {
            State::Params => {
                cur.ws();
                if cur.opt("<parameter=")? {
                    let param = tag_name(&mut cur)?;
                    self.state = State::Value { param: param.to_string(), searched: 0 };
                } else if cur.opt("</function>")? {
                    ctx.args(if self.params == 0 { "{}" } else { "}" });
                    ctx.end_call();
                    self.state = State::Close;
                } else {
                    return Err(Stop::No);
                }
            }
            State::Value { param, searched } => {
                const END: &str = "</parameter>";
                // Long values (whole files) arrive in many pieces: search only the new text.
                let rest = cur.rest();
                let mut from = searched.saturating_sub(END.len());
                while !rest.is_char_boundary(from) {
                    from -= 1;
                }
                let Some(i) = rest[from..].find(END).map(|i| from + i) else {
                    *searched = rest.len();
                    return cur.short();
                };
                let text = &rest[..i];
                let text = text.strip_prefix('\n').unwrap_or(text);
                let text = text.strip_suffix('\n').unwrap_or(text);
                let value = convert(text, self.props.get(param));
                let key = Value::String(param.clone());
                ctx.args(&format!("{}{key}: {value}", if self.params == 0 { "{" } else { ", " }));
                self.params += 1;
                cur.pos += i + END.len();
                self.state = State::Params;
            }
            State::Close => {
                cur.ws();
                if !cur.opt("</tool_call>")? {
                    cur.pos = 0;
                }
                self.state = State::Done;
            }
            State::Done => {}
        }
        Ok(cur.pos)
    }
}

/// A parameter's text as the JSON value its declared type asks for, the way mlx-lm's
/// `_convert_param_value` does it. Where mlx-lm would fail the whole call (an integer parameter
/// holding `3.5`, say), the text is kept as a string.
fn convert(text: &str, schema: Option<&Value>) -> Value {
    let as_text = || Value::String(text.to_string());
    if text.eq_ignore_ascii_case("null") {
        return Value::Null;
    }
    let Some(schema) = schema.filter(|s| s.as_object().is_some_and(|o| !o.is_empty())) else { return as_text() };
    let Some(ty) = schema.get("type") else {
        return match serde_json::from_str(text) {
            Ok(v @ (Value::Object(_) | Value::Array(_))) => v,
            _ => as_text(),
        };
    };
    let ty = match ty {
        Value::String(s) => s.trim().to_lowercase(),
        other => other.to_string().to_lowercase(),
    };
    let number = || text.trim().parse::<f64>().ok().filter(|f| f.is_finite());
    let integer = |f: f64| (f.fract() == 0.0 && f.abs() < 9.2e18).then(|| Value::from(f as i64));
    if ["string", "str", "text", "varchar", "char", "enum"].contains(&ty.as_str()) {
        as_text()
    } else if ["int", "uint", "long", "short", "unsigned"].iter().any(|p| ty.starts_with(p)) {
        number().and_then(integer).unwrap_or_else(as_text)
    } else if ty.starts_with("num") || ty.starts_with("float") {
        number()
            .and_then(|f| integer(f).or_else(|| serde_json::Number::from_f64(f).map(Value::Number)))
            .unwrap_or_else(as_text)
    } else if ["boolean", "bool", "binary"].contains(&ty.as_str()) {
        Value::Bool(text.eq_ignore_ascii_case("true"))
    } else {
        let structured =
            ["object", "array", "arr"].contains(&ty.as_str()) || ty.starts_with("dict") || ty.starts_with("list");
        structured
            .then(|| serde_json::from_str(text).ok())
            .flatten()
            .or_else(|| python_literal(text))
            .unwrap_or_else(as_text)
    }
}

/// A Python literal (`ast.literal_eval`'s strings, numbers, `True`/`False`/`None`, lists, tuples,
/// dicts) as JSON: models write `{'a': True}` for object parameters.
fn python_literal(text: &str) -> Option<Value> {
    let mut py = Py { s: text.trim(), pos: 0 };
    let value = py.value(0)?;
    py.ws();
    (py.pos == py.s.len()).then_some(value)
}

struct Py<'a> {
    s: &'a str,
    pos: usize,
}

impl<'a> Py<'a> {
    fn rest(&self) -> &'a str {
        &self.s[self.pos..]
    }

    fn ws(&mut self) {
        self.pos += self.rest().len() - self.rest().trim_start().len();
    }

    fn eat(&mut self, c: char) -> bool {
        self.ws();
        let found = self.rest().starts_with(c);
        if found {
            self.pos += c.len_utf8();
        }
        found
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        self.ws();
        let open = self.rest().chars().next()?;
        if depth > 64 {
            return None;
        }
        match open {
            '\'' | '"' => self.string(open).map(Value::String),
            '[' | '(' | '{' => {
                self.pos += 1;
                let close = match open {
                    '[' => ']',
                    '(' => ')',
                    _ => '}',
                };
                let (mut items, mut map) = (Vec::new(), Map::new());
                let mut first = true;
                loop {
                    // Items are separated by commas; a trailing comma is allowed.
                    let mut closed = self.eat(close);
                    if !closed && !first {
                        if !self.eat(',') {
                            return None;
                        }
                        closed = self.eat(close);
                    }
                    if closed {
                        return Some(if open == '{' { Value::Object(map) } else { Value::Array(items) });
                    }
                    first = false;
                    let item = self.value(depth + 1)?;
                    if open == '{' {
                        let key = match item {
                            Value::String(s) => s,
                            other => other.to_string(),
                        };
                        if !self.eat(':') {
                            return None;
                        }
                        map.insert(key, self.value(depth + 1)?);
                    } else {
                        items.push(item);
                    }
                }
            }
            _ => self.atom(),
        }
    }

    fn string(&mut self, quote: char) -> Option<String> {
        let mut out = String::new();
        let mut chars = self.rest().char_indices().skip(1);
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => out.push('\n'),
                    't' => out.push('\t'),
                    'r' => out.push('\r'),
                    '0' => out.push('\0'),
                    '\n' => {}
                    e @ ('\\' | '\'' | '"') => out.push(e),
                    e => out.extend(['\\', e]),
                },
                c if c == quote => {
                    self.pos += i + 1;
                    return Some(out);
                }
                c => out.push(c),
            }
        }
        None
    }

    fn atom(&mut self) -> Option<Value> {
        let rest = self.rest();
        let n = rest.find(|c: char| !(c.is_ascii_alphanumeric() || "+-._".contains(c))).unwrap_or(rest.len());
        let token = &rest[..n];
        self.pos += n;
        match token {
            "" => None,
            "True" => Some(Value::Bool(true)),
            "False" => Some(Value::Bool(false)),
            "None" => Some(Value::Null),
            _ => match token.parse::<i64>() {
                Ok(i) => Some(Value::from(i)),
                Err(_) => token.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn converts_values_by_schema_type() {
        let ty = |t: &str| json!({ "type": t });
        assert_eq!(convert("42", Some(&ty("integer"))), json!(42));
        assert_eq!(convert("3.5", Some(&ty("integer"))), json!("3.5"));
        assert_eq!(convert("2.5", Some(&ty("number"))), json!(2.5));
        assert_eq!(convert("2.0", Some(&ty("number"))), json!(2));
        assert_eq!(convert("True", Some(&ty("boolean"))), json!(true));
        assert_eq!(convert("null", Some(&ty("string"))), json!(null));
        assert_eq!(convert("12", Some(&ty("string"))), json!("12"));
        assert_eq!(convert("{\"a\": 1}", Some(&ty("object"))), json!({"a": 1}));
        assert_eq!(
            convert("{'a': True, 'b': [1, 2.5, None]}", Some(&ty("object"))),
            json!({"a": true, "b": [1, 2.5, null]})
        );
        assert_eq!(convert("['x', 'y',]", Some(&ty("array"))), json!(["x", "y"]));
        assert_eq!(convert("[1, 2", Some(&ty("array"))), json!("[1, 2"));
        assert_eq!(convert("12", None), json!("12"));
        assert_eq!(convert("[1]", Some(&json!({"description": "no type"}))), json!([1]));
    }
}
