//! What the JSON call formats share: finding where a JSON value ends without parsing it
//! ([`ValueEnd`]), reading a `{"name": .., "arguments": ..}` call object as it streams
//! ([`CallObject`]), and reading a run of such objects ([`ObjectCalls`]: Hermes, Llama 3,
//! Mistral's list form). Arguments are passed on as the model wrote them, char by char.

use super::scan::{Cursor, Read, Stop};
use super::tagged::{Reader, Step};
use super::Ctx;

/// Follows a JSON value char by char, only far enough to know where it ends: nesting depth and
/// strings (with escapes) for objects, arrays and strings; the next delimiter for scalars.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ValueEnd {
    started: bool,
    scalar: bool,
    depth: u32,
    in_str: bool,
    esc: bool,
}

/// Where a character falls relative to the value being followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fed {
    /// Inside the value, which goes on.
    In,
    /// The value's last character.
    Last,
    /// After the value (which was a scalar, or empty): the character belongs to what follows.
    Out,
}

impl ValueEnd {
    /// Follows one more character (the first one must not be whitespace).
    pub(super) fn feed(&mut self, c: char) -> Fed {
        let delimiter = c.is_whitespace() || matches!(c, ',' | '}' | ']');
        if !self.started {
            if delimiter {
                return Fed::Out;
            }
            self.started = true;
            match c {
                '{' | '[' => self.depth = 1,
                '"' => self.in_str = true,
                _ => self.scalar = true,
            }
            return Fed::In;
        }
        if self.in_str {
            if self.esc {
                self.esc = false;
            } else if c == '\\' {
                self.esc = true;
            } else if c == '"' {
                self.in_str = false;
                if self.depth == 0 {
                    return Fed::Last;
                }
            }
            return Fed::In;
        }
        if self.scalar {
            return if delimiter { Fed::Out } else { Fed::In };
        }
        match c {
            '"' => self.in_str = true,
            '{' | '[' => self.depth += 1,
            '}' | ']' => {
                self.depth = self.depth.saturating_sub(1);
                if self.depth == 0 {
                    return Fed::Last;
                }
            }
            _ => {}
        }
        Fed::In
    }
}

/// Where a [`CallObject`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Obj {
    Open,
    Key,
    KeyStr { esc: bool },
    Colon,
    Value,
    Name,
    Id,
    Args,
    ArgsStr,
    Skip,
    Next,
    Done,
    Bad,
}

/// Reads one call object, `{"name": "f", "arguments": {..}}` (also `"parameters"`, an `"id"`,
/// any key order, other keys skipped), char by char. The arguments value's text is collected as
/// it comes, for the caller to pass on; arguments the model wrote as a JSON string holding JSON
/// are unwrapped once complete.
#[derive(Debug, Clone)]
pub(super) struct CallObject {
    state: Obj,
    key: String,
    value: ValueEnd,
    /// The name's, id's or string arguments' JSON text so far.
    raw: String,
    name: Option<String>,
    id: Option<String>,
    /// Arguments text not yet taken by the caller.
    args: String,
    args_seen: bool,
    /// Llama 3's bare JSON: only `"name"` or `"type"` may come before the name, so that ordinary
    /// JSON in the text is told apart quickly.
    name_first: bool,
}

impl CallObject {
    pub(super) fn new(name_first: bool) -> CallObject {
        CallObject {
            state: Obj::Open,
            key: String::new(),
            value: ValueEnd::default(),
            raw: String::new(),
            name: None,
            id: None,
            args: String::new(),
            args_seen: false,
            name_first,
        }
    }

    pub(super) fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub(super) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Whether the object closed (`Done`) or cannot be a call object (`Bad`).
    pub(super) fn finished(&self) -> bool {
        matches!(self.state, Obj::Done | Obj::Bad)
    }

    /// The arguments text read since the last call.
    pub(super) fn take_args(&mut self) -> String {
        std::mem::take(&mut self.args)
    }

    /// Feeds the start of `s`; returns the bytes read (through the closing `}`, or up to a
    /// character that does not fit).
    pub(super) fn feed_str(&mut self, s: &str) -> usize {
        for (i, c) in s.char_indices() {
            self.feed(c);
            match self.state {
                Obj::Done => return i + c.len_utf8(),
                Obj::Bad => return i,
                _ => {}
            }
        }
        s.len()
    }

    pub(super) fn feed(&mut self, c: char) {
        loop {
            let ws = c.is_whitespace();
            match self.state {
                Obj::Open if ws => {}
                Obj::Open => self.state = if c == '{' { Obj::Key } else { Obj::Bad },
                Obj::Key | Obj::Next | Obj::Colon | Obj::Value if ws => {}
                Obj::Key => {
                    self.key.clear();
                    self.state = match c {
                        '"' => Obj::KeyStr { esc: false },
                        '}' => self.close(),
                        _ => Obj::Bad,
                    };
                }
                Obj::KeyStr { esc: true } => {
                    self.key.push(c);
                    self.state = Obj::KeyStr { esc: false };
                }
                Obj::KeyStr { esc: false } => match c {
                    '\\' => self.state = Obj::KeyStr { esc: true },
                    '"' => self.state = Obj::Colon,
                    _ => self.key.push(c),
                },
                Obj::Colon => self.state = if c == ':' { Obj::Value } else { Obj::Bad },
                Obj::Value => {
                    self.value = ValueEnd::default();
                    self.raw.clear();
                    self.state = match self.key.as_str() {
                        "name" if self.name.is_none() => Obj::Name,
                        "arguments" | "parameters" if !self.args_seen => {
                            self.args_seen = true;
                            if c == '"' {
                                Obj::ArgsStr
                            } else {
                                Obj::Args
                            }
                        }
                        "id" => Obj::Id,
                        "type" => Obj::Skip,
                        _ if self.name_first && self.name.is_none() => Obj::Bad,
                        _ => Obj::Skip,
                    };
                    if self.state != Obj::Bad {
                        continue;
                    }
                }
                Obj::Name | Obj::Id | Obj::Args | Obj::ArgsStr | Obj::Skip => {
                    let fed = self.value.feed(c);
                    match (fed, self.state) {
                        (Fed::Out, _) | (_, Obj::Skip) => {}
                        (_, Obj::Args) => self.args.push(c),
                        _ => self.raw.push(c),
                    }
                    if fed == Fed::In {
                        return;
                    }
                    self.end_value();
                    if fed == Fed::Out && self.state == Obj::Next {
                        continue;
                    }
                }
                Obj::Next => {
                    self.state = match c {
                        ',' => Obj::Key,
                        '}' => self.close(),
                        _ => Obj::Bad,
                    }
                }
                Obj::Done | Obj::Bad => {}
            }
            return;
        }
    }

    fn end_value(&mut self) {
        let state = std::mem::replace(&mut self.state, Obj::Next);
        match state {
            Obj::Name => match serde_json::from_str::<String>(&self.raw) {
                Ok(name) => self.name = Some(name),
                Err(_) => self.state = Obj::Bad,
            },
            Obj::Id => self.id = serde_json::from_str(&self.raw).ok(),
            Obj::ArgsStr => {
                // Arguments written as a string: pass on the JSON it holds, if it holds JSON.
                let inner = serde_json::from_str::<String>(&self.raw).ok();
                match inner.filter(|s| serde_json::from_str::<serde_json::Value>(s).is_ok()) {
                    Some(inner) => self.args.push_str(&inner),
                    None => self.args.push_str(&self.raw),
                }
            }
            _ => {}
        }
    }

    fn close(&mut self) -> Obj {
        if !self.args_seen {
            self.args_seen = true;
            self.args.push_str("{}");
        }
        Obj::Done
    }
}

/// Reads a call object's head from `s` until its name is known. Returns the object (to go on
/// feeding) and the bytes read; [`Stop::No`] if `s` is not a call object or closes without name.
pub(super) fn open_object(mut obj: CallObject, s: &str, fin: bool) -> Read<(CallObject, usize)> {
    for (i, c) in s.char_indices() {
        obj.feed(c);
        if obj.name.is_some() {
            return Ok((obj, i + c.len_utf8()));
        }
        if obj.finished() {
            return Err(Stop::No);
        }
    }
    // A call cut off before its name is not a call.
    Err(if fin { Stop::No } else { Stop::More })
}

/// Reads call objects one after the other: one (Llama 3), or until `end` with `sep` between them
/// (Hermes: `</tool_call>` and nothing; Mistral: `]` and `,`).
pub(super) struct ObjectCalls {
    /// The object being streamed, if its name is known.
    obj: Option<CallObject>,
    started: bool,
    sep: Option<&'static str>,
    end: Option<&'static str>,
    name_first: bool,
}

impl ObjectCalls {
    pub(super) fn new(obj: CallObject, sep: Option<&'static str>, end: Option<&'static str>) -> ObjectCalls {
        let name_first = obj.name_first;
        ObjectCalls { obj: Some(obj), started: false, sep, end, name_first }
    }
}

impl Reader for ObjectCalls {
    fn read(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Step {
        let mut pos = 0;
        loop {
            if let Some(obj) = self.obj.as_mut() {
                if !self.started {
                    self.started = true;
                    ctx.start_call(obj.name().unwrap_or_default().to_string(), obj.id().map(str::to_string));
                }
                pos += obj.feed_str(&buf[pos..]);
                ctx.args(&obj.take_args());
                if !obj.finished() {
                    // Everything was read: the object goes on, or generation ended inside it.
                    return if fin { Step::stopped(Stop::Cut, pos, buf.len(), ctx) } else { Step::Ate(pos) };
                }
                ctx.end_call();
                self.obj = None;
            }
            let Some(end) = self.end else { return Step::Done(pos) };
            let mut cur = Cursor::new(&buf[pos..], fin);
            cur.ws();
            match cur.lit(end) {
                Ok(()) => return Step::Done(pos + cur.pos),
                Err(Stop::No) => {}
                Err(stop) => return Step::stopped(stop, pos, buf.len(), ctx),
            }
            if let Some(sep) = self.sep {
                match cur.lit(sep) {
                    Ok(()) => cur.ws(),
                    Err(Stop::No) => return Step::Done(pos),
                    Err(stop) => return Step::stopped(stop, pos, buf.len(), ctx),
                }
            }
            match open_object(CallObject::new(self.name_first), cur.rest(), fin) {
                Ok((obj, n)) if ctx.known(obj.name().unwrap_or_default()) => {
                    pos += cur.pos + n;
                    self.obj = Some(obj);
                    self.started = false;
                }
                Err(Stop::More) => return Step::wait(pos),
                _ => {
                    if !cur.rest().is_empty() {
                        let call: String = cur.rest().chars().take(200).collect();
                        tracing::warn!(call, "tool call not readable or not declared; passing it on as text");
                    }
                    return Step::Done(pos);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(s: &str) -> CallObject {
        let mut obj = CallObject::new(false);
        obj.feed_str(s);
        obj
    }

    #[test]
    fn reads_call_objects_in_any_key_order() {
        let mut obj = read(r#"{"arguments": {"a": [1, "}"]}, "name": "f", "id": "abc123def"}"#);
        assert_eq!((obj.name(), obj.id(), obj.finished()), (Some("f"), Some("abc123def"), true));
        assert_eq!(obj.take_args(), r#"{"a": [1, "}"]}"#);
        let mut obj = read(r#"{"name": "f", "x": 12, "arguments": "{\"k\": 1}"}"#);
        assert_eq!(obj.take_args(), r#"{"k": 1}"#);
        let mut obj = read(r#"{"name": "f"}"#);
        assert_eq!(obj.take_args(), "{}");
        assert!(read(r#"{"name": 5}"#).finished());
        assert!(read("{oops").finished());
    }
}
