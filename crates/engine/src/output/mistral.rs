//! Mistral calls, in both of its syntaxes after `[TOOL_CALLS]`:
//! - the v11+ tokenizers' (Mistral Small 3.2, Devstral, Magistral): `name[CALL_ID]id[ARGS]{..}`,
//!   `[CALL_ID]` optional, `[ARGS]` optional too (absent when special tokens are skipped), each
//!   call after its own `[TOOL_CALLS]` or straight after the previous call;
//! - the older (Mistral 7B v0.3, Nemo): a JSON list `[{"name": .., "arguments": .., "id": ..}]`.
//!
//! The model's id is passed on only when it comes before the arguments (`[CALL_ID]`, or an `"id"`
//! key ahead of `"arguments"`): the call starts, and streams, before a trailing id is seen.

use super::json::{open_object, CallObject, Fed, ObjectCalls, ValueEnd};
use super::scan::{Cursor, Read, Stop};
use super::tagged::{Opened, Reader, Step, Syntax};
use super::Ctx;

/// The Mistral syntax.
pub(super) struct Mistral;

impl Syntax for Mistral {
    fn markers(&self) -> &'static [&'static str] {
        &["[TOOL_CALLS]"]
    }

    fn open(&self, _marker: usize, rest: &str, fin: bool, ctx: &Ctx) -> Read<Opened> {
        let mut cur = Cursor::new(rest, fin);
        cur.ws();
        if cur.opt("[")? {
            cur.ws();
            let (obj, n) = open_object(CallObject::new(false), cur.rest(), fin)?;
            ctx.check(obj.name().unwrap_or_default())?;
            return Ok((Box::new(ObjectCalls::new(obj, Some(","), Some("]"))), cur.pos + n));
        }
        let (name, id) = header(&mut cur, false)?;
        ctx.check(&name)?;
        Ok((Box::new(ArgsCall::new(name, id)), cur.pos))
    }
}

/// Reads `name[CALL_ID]id[ARGS]` up to the arguments' `{`. Straight after a previous call
/// (`strict`) a bare name is not enough: `[CALL_ID]` or `[ARGS]` must follow it.
fn header(cur: &mut Cursor, strict: bool) -> Read<(String, Option<String>)> {
    let name = cur.word(|c| c.is_alphanumeric() || c == '_' || c == '-')?.to_string();
    if name.is_empty() {
        return Err(Stop::No);
    }
    let id = if cur.opt("[CALL_ID]")? { Some(cur.word(char::is_alphanumeric)?.to_string()) } else { None };
    let args = cur.opt("[ARGS]")?;
    if strict && !args && id.is_none() {
        return Err(Stop::No);
    }
    cur.ws();
    match cur.peek() {
        Some('{') => Ok((name, id)),
        None => cur.short(),
        Some(_) => Err(Stop::No),
    }
}

/// Streams the arguments object of `name[ARGS]{..}` calls.
struct ArgsCall {
    /// The call to start, until it is started.
    start: Option<(String, Option<String>)>,
    /// Where the arguments object ends; `None` between calls.
    value: Option<ValueEnd>,
}

impl ArgsCall {
    fn new(name: String, id: Option<String>) -> ArgsCall {
        ArgsCall { start: Some((name, id)), value: Some(ValueEnd::default()) }
    }
}

impl Reader for ArgsCall {
    fn read(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Step {
        let mut pos = 0;
        loop {
            if let Some(value) = self.value.as_mut() {
                if let Some((name, id)) = self.start.take() {
                    ctx.start_call(name, id);
                }
                let rest = &buf[pos..];
                let end = rest.char_indices().find_map(|(i, c)| match value.feed(c) {
                    Fed::In => None,
                    Fed::Last => Some(i + c.len_utf8()),
                    Fed::Out => Some(i),
                });
                let Some(end) = end else {
                    ctx.args(rest);
                    return if fin { Step::stopped(Stop::Cut, pos, buf.len(), ctx) } else { Step::Ate(buf.len()) };
                };
                ctx.args(&rest[..end]);
                ctx.end_call();
                pos += end;
                self.value = None;
            }
            // Another `name[ARGS]{` may follow without a new `[TOOL_CALLS]`.
            let mut cur = Cursor::new(&buf[pos..], fin);
            cur.ws();
            match header(&mut cur, true) {
                Ok((name, id)) if ctx.known(&name) => {
                    pos += cur.pos;
                    self.start = Some((name, id));
                    self.value = Some(ValueEnd::default());
                }
                Err(Stop::More) => return Step::wait(pos),
                _ => return Step::Done(pos),
            }
        }
    }
}
