//! Hermes-style calls (Qwen2.5, Qwen3, Hermes 2/3): a JSON call object between tags,
//! `<tool_call>\n{"name": "f", "arguments": {..}}\n</tool_call>`, repeatable, with text allowed
//! between calls. The arguments stream as the model writes them.

use super::json::{open_object, CallObject, ObjectCalls};
use super::scan::Read;
use super::tagged::{Opened, Syntax};
use super::Ctx;

/// The Hermes syntax.
pub(super) struct Hermes;

impl Syntax for Hermes {
    fn markers(&self) -> &'static [&'static str] {
        &["<tool_call>"]
    }

    fn open(&self, _marker: usize, rest: &str, fin: bool, ctx: &Ctx) -> Read<Opened> {
        let (obj, n) = open_object(CallObject::new(false), rest, fin)?;
        ctx.check(obj.name().unwrap_or_default())?;
        Ok((Box::new(ObjectCalls::new(obj, None, Some("</tool_call>"))), n))
    }
}
