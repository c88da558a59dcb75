//! Llama 3.1/3.2/3.3 JSON calls: a bare call object, `{"name": "f", "parameters": {..}}` (also
//! `"arguments"`, and a leading `"type": "function"`), optionally after `<|python_tag|>`, several
//! separated by `;`. Any `{` in the text may start one, so the object is only taken for a call
//! when its first key is `"name"` (or `"type"`) and the name is a declared tool.

use super::json::{open_object, CallObject, ObjectCalls};
use super::scan::Read;
use super::tagged::{Opened, Syntax};
use super::Ctx;

/// The Llama 3 JSON syntax.
pub(super) struct Llama3;

/// Marker 0 is the python tag, marker 1 a bare object's brace.
const BRACE: usize = 1;

impl Syntax for Llama3 {
    fn markers(&self) -> &'static [&'static str] {
        &["<|python_tag|>", "{"]
    }

    fn open(&self, marker: usize, rest: &str, fin: bool, ctx: &Ctx) -> Read<Opened> {
        let mut obj = CallObject::new(true);
        if marker == BRACE {
            obj.feed('{');
        }
        let (obj, n) = open_object(obj, rest, fin)?;
        let name = obj.name().unwrap_or_default();
        if marker == BRACE && !ctx.known(name) {
            tracing::warn!(tool = name, "JSON naming an undeclared tool; passing it on as text");
        }
        ctx.check(name)?;
        Ok((Box::new(ObjectCalls::new(obj, None, None)), n))
    }

    fn separators(&self) -> &'static str {
        ";"
    }

    fn quiet(&self, marker: usize) -> bool {
        marker == BRACE
    }
}
