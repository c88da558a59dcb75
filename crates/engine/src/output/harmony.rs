//! gpt-oss's harmony format: the output is a run of messages,
//! `<|start|>assistant<|channel|>CHANNEL[ to=RECIPIENT][ <|constrain|>json]<|message|>BODY<|end|>`
//! (the first one's `<|start|>assistant` is in the prompt; the recipient may also sit before
//! `<|channel|>`). `analysis` is reasoning, `final` and plain `commentary` are text, and a message
//! to `functions.NAME` is a call whose body is the arguments JSON, streamed as it comes.
//! Generation stops at `<|call|>` or `<|return|>`, which therefore rarely reach the text.

use super::scan::{self, Hit};
use super::Ctx;

/// What may open a message header.
const OPENERS: [&str; 5] = ["<|start|>", "<|channel|>", "<|message|>", "<|constrain|>", "to="];

/// What ends a message body; the first three are consumed, the others open the next header.
const ENDS: [&str; 5] = ["<|end|>", "<|call|>", "<|return|>", "<|start|>", "<|channel|>"];
const CONSUMED_ENDS: usize = 3;

/// How long a header can be before the text is taken for something else.
const MAX_HEADER: usize = 512;

/// Where a message's body goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Body {
    Text,
    Reasoning,
    Call,
}

enum State {
    Header,
    Body(Body),
}

/// Reads harmony messages.
pub(super) struct Harmony {
    state: State,
}

impl Harmony {
    /// `in_reasoning`: the prompt already opened an analysis message.
    pub(super) fn new(in_reasoning: bool) -> Harmony {
        Harmony { state: if in_reasoning { State::Body(Body::Reasoning) } else { State::Header } }
    }

    /// Reads from the start of `buf`: `Some(bytes read)`, or `None` to wait for more text.
    pub(super) fn step(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Option<usize> {
        match self.state {
            State::Header => self.header(buf, fin, ctx),
            State::Body(body) => self.body(body, buf, fin, ctx),
        }
    }

    fn header(&mut self, buf: &str, fin: bool, ctx: &mut Ctx) -> Option<usize> {
        let t = buf.trim_start();
        if t.is_empty() {
            // Whitespace between messages.
            return fin.then_some(buf.len());
        }
        let header_like = OPENERS.iter().any(|o| t.starts_with(o) || (!fin && o.starts_with(t)));
        let mut window = buf.len().min(MAX_HEADER);
        while !buf.is_char_boundary(window) {
            window -= 1;
        }
        match buf[..window].find("<|message|>") {
            Some(at) if header_like => {
                self.state = State::Body(open(&buf[..at], ctx));
                Some(at + "<|message|>".len())
            }
            // A header cut off by the end of generation: markup, dropped.
            None if header_like && fin => Some(buf.len()),
            None if header_like && buf.len() < MAX_HEADER => None,
            // Not a header: plain text (a prompt that already opened the final message, say).
            _ => {
                self.state = State::Body(Body::Text);
                Some(0)
            }
        }
    }

    fn body(&mut self, body: Body, buf: &str, fin: bool, ctx: &mut Ctx) -> Option<usize> {
        let mut emit = |s: &str| match body {
            Body::Text => ctx.text(s),
            Body::Reasoning => ctx.reasoning(s),
            Body::Call => ctx.args(s),
        };
        match scan::find(buf, &ENDS, fin) {
            Hit::Whole { at, which } => {
                emit(&buf[..at]);
                if body == Body::Call {
                    ctx.end_call();
                }
                self.state = State::Header;
                Some(if which < CONSUMED_ENDS { at + ENDS[which].len() } else { at })
            }
            Hit::Partial { at: 0 } => None,
            Hit::Partial { at } => {
                emit(&buf[..at]);
                Some(at)
            }
            Hit::Nothing => {
                emit(buf);
                Some(buf.len())
            }
        }
    }
}

/// Where the body of a message with this header goes; starts the call for a function call.
fn open(header: &str, ctx: &mut Ctx) -> Body {
    let channel = field(header, "<|channel|>");
    match field(header, "to=") {
        Some(recipient) if ctx.parsing_calls() => match recipient.strip_prefix("functions.") {
            Some(name) if ctx.known(name) => {
                ctx.start_call(name.to_string(), None);
                Body::Call
            }
            _ => {
                tracing::warn!(recipient, "harmony message to an undeclared tool; passing it on as text");
                Body::Text
            }
        },
        Some(_) => Body::Text,
        None if channel == Some("analysis") => Body::Reasoning,
        None => Body::Text,
    }
}

/// The word after `key` in a header.
fn field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let rest = &header[header.find(key)? + key.len()..];
    let end = rest.find(|c: char| c.is_whitespace() || c == '<').unwrap_or(rest.len());
    Some(&rest[..end])
}
