//! Gemma calls: Gemma 4's `<|tool_call>call:NAME{key:<|"|>text<|"|>,n:1}<tool_call|>` and
//! FunctionGemma's `<start_function_call>call:NAME{key:<escape>text<escape>}<end_function_call>`
//! (mlx-lm's `tool_parsers/gemma4.py` and `function_gemma.py`). Keys are bare words, strings sit
//! between the quote token, other values are bare (numbers, `true`, `null`) or nested `{..}` and
//! `[..]`; several `call:` may share one block. The arguments are built as canonical JSON, one
//! parameter as it completes.

use serde_json::{Map, Value};

use super::scan::{Cursor, Read, Stop};
use super::tagged::{Opened, Reader, Step, Syntax};
use super::Ctx;

/// The Gemma syntax, for both `ToolFormat::Gemma` and `ToolFormat::FunctionGemma`: each block is
/// read by its own marker's end tag and quote, whichever format the model was given.
pub(super) struct Gemma;

/// Per marker: the block's end tag and the string quote.
const STYLES: [(&str, &str); 2] = [("<tool_call|>", "<|\"|>"), ("<end_function_call>", "<escape>")];

impl Syntax for Gemma {
    fn markers(&self) -> &'static [&'static str] {
        &["<|tool_call>", "<start_function_call>"]
    }

    fn open(&self, marker: usize, rest: &str, fin: bool, ctx: &Ctx) -> Read<Opened> {
        let mut cur = Cursor::new(rest, fin);
        let name = call_head(&mut cur)?;
        ctx.check(name)?;
        let (end, quote) = STYLES[marker];
        let call = Call { start: Some(name.to_string()), end, quote, params: 0, state: State::Key };
        Ok((Box::new(call), cur.pos))
    }
}

/// `call:NAME{`.
fn call_head<'a>(cur: &mut Cursor<'a>) -> Read<&'a str> {
    cur.ws();
    cur.lit("call:")?;
    let name = cur.word(|c| c.is_alphanumeric() || "_-.".contains(c))?;
    if name.is_empty() {
        return Err(Stop::No);
    }
    cur.lit("{")?;
    Ok(name)
}

enum State {
    /// Before a key (or the closing `}`).
    Key,
    /// Before the value of key `.0`.
    Value(String),
    /// After a value: `,` or `}`.
    Next,
    /// After a call's `}`: another `call:` or the end tag.
    After,
    Done,
}

/// Reads the calls of one block.
struct Call {
    /// The call to start, until it is started.
    start: Option<String>,
    end: &'static str,
    quote: &'static str,
    /// Parameters of the current call passed on so far.
    params: usize,
    state: State,
}

impl Reader for Call {
    fn read(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Step {
        let mut pos = 0;
        while !matches!(self.state, State::Done) {
            if let Some(name) = self.start.take() {
                ctx.start_call(name, None);
                self.params = 0;
            }
            match self.part(&buf[pos..], fin, ctx) {
                Ok(n) => pos += n,
                Err(stop) => return Step::stopped(stop, pos, buf.len(), ctx),
            }
        }
        Step::Done(pos)
    }
}

impl Call {
    /// Reads one part (a key, a value, a separator, a call head, the end tag) from `s`.
    fn part(&mut self, s: &str, fin: bool, ctx: &mut Ctx) -> Read<usize> {
        let mut cur = Cursor::new(s, fin);
        cur.ws();
        match &self.state {
            State::Key => {
                if cur.opt("}")? {
                    self.close(ctx);
                } else {
                    let key = key(&mut cur, self.quote)?;
                    self.state = State::Value(key);
                }
            }
            State::Value(key) => {
                let value = value(&mut cur, self.quote, 0)?;
                let key = Value::String(key.clone());
                ctx.args(&format!("{}{key}: {value}", if self.params == 0 { "{" } else { ", " }));
                self.params += 1;
                self.state = State::Next;
            }
            State::Next => match cur.peek() {
                Some(',') => {
                    cur.pos += 1;
                    self.state = State::Key;
                }
                Some('}') => {
                    cur.pos += 1;
                    self.close(ctx);
                }
                // FunctionGemma sometimes leaves the comma out after a string.
                Some(c) if c.is_alphanumeric() || c == '_' => self.state = State::Key,
                Some(_) => return Err(Stop::No),
                None => return cur.short(),
            },
            State::After => {
                if cur.opt(self.end)? {
                    self.state = State::Done;
                } else if cur.rest().starts_with("call:") || "call:".starts_with(cur.rest()) {
                    let name = call_head(&mut cur)?;
                    if !ctx.known(name) {
                        tracing::warn!(tool = name, "call to an undeclared tool; passing it on as text");
                        return Err(Stop::No);
                    }
                    self.start = Some(name.to_string());
                    self.state = State::Key;
                } else {
                    cur.pos = 0;
                    self.state = State::Done;
                }
            }
            State::Done => {}
        }
        Ok(cur.pos)
    }

    fn close(&mut self, ctx: &mut Ctx) {
        ctx.args(if self.params == 0 { "{}" } else { "}" });
        ctx.end_call();
        self.state = State::After;
    }
}

/// A key: a bare word or a quoted string, then `:`.
fn key(cur: &mut Cursor, quote: &str) -> Read<String> {
    cur.ws();
    let key = if cur.opt(quote)? {
        string(cur, quote)?
    } else {
        cur.word(|c| !matches!(c, ':' | '{' | '}' | '[' | ']' | ',' | '<'))?.trim().to_string()
    };
    if key.is_empty() {
        return Err(Stop::No);
    }
    cur.ws();
    cur.lit(":")?;
    Ok(key)
}

/// The text up to the closing quote (the opening one is read).
fn string(cur: &mut Cursor, quote: &str) -> Read<String> {
    let rest = cur.rest();
    let Some(i) = rest.find(quote) else { return cur.short() };
    cur.pos += i + quote.len();
    Ok(rest[..i].to_string())
}

/// One value: a quoted string, `{..}`, `[..]` or a bare token (a JSON scalar, or else a string).
fn value(cur: &mut Cursor, quote: &str, depth: usize) -> Read<Value> {
    cur.ws();
    if depth > 64 {
        return Err(Stop::No);
    }
    if cur.opt(quote)? {
        return string(cur, quote).map(Value::String);
    }
    let open = cur.peek();
    if let Some(open @ ('{' | '[')) = open {
        cur.pos += 1;
        let close = if open == '{' { "}" } else { "]" };
        let (mut map, mut items) = (Map::new(), Vec::new());
        let mut first = true;
        loop {
            cur.ws();
            let mut closed = cur.opt(close)?;
            if !closed && !first && cur.opt(",")? {
                cur.ws();
                closed = cur.opt(close)?;
            }
            if closed {
                return Ok(if open == '{' { Value::Object(map) } else { Value::Array(items) });
            }
            first = false;
            if open == '{' {
                let key = key(cur, quote)?;
                map.insert(key, value(cur, quote, depth + 1)?);
            } else {
                items.push(value(cur, quote, depth + 1)?);
            }
        }
    }
    let rest = cur.rest();
    match rest.find([',', '}', ']']) {
        None => cur.short(),
        Some(n) if rest[..n].trim().is_empty() => Err(Stop::No),
        Some(n) => {
            cur.pos += n;
            let token = rest[..n].trim();
            Ok(match serde_json::from_str::<Value>(token) {
                Ok(v @ (Value::Null | Value::Bool(_) | Value::Number(_) | Value::String(_))) => v,
                _ => Value::String(token.to_string()),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Read<Value> {
        value(&mut Cursor::new(s, false), "<|\"|>", 0)
    }

    #[test]
    fn reads_gemma_values() {
        assert_eq!(parse("{enabled:true,name:<|\"|>a, {b}<|\"|>}"), Ok(json!({"enabled": true, "name": "a, {b}"})));
        assert_eq!(parse("[<|\"|>a<|\"|>,2.5,null]"), Ok(json!(["a", 2.5, null])));
        assert_eq!(parse("{<|\"|>3<|\"|>:x y}"), Ok(json!({"3": "x y"})));
        assert_eq!(parse("42,"), Ok(json!(42)));
        assert_eq!(parse("42"), Err(Stop::More));
        assert_eq!(parse("<|\"|>Par"), Err(Stop::More));
        assert_eq!(parse("{a}"), Err(Stop::No));
    }
}
