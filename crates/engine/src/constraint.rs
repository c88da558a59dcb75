//! Constrained decoding with llguidance: a generation may carry a [`Grammar`] (a JSON Schema,
//! any JSON object, a regular expression or a Lark grammar), and then every token it samples is
//! one the grammar allows. At each step the matcher's allowed-token mask is added to the logits
//! (−∞ for the rest) before the sampler runs, so every sampler setting keeps working on the
//! allowed tokens; EOS is allowed only where the grammar can end.
//!
//! The masks are computed off the engine thread: the step's forward pass is started first
//! (`async_eval`), then each constrained row's matcher reads the token it just produced and
//! computes its next mask on rayon's pool while MLX runs the model, and only the masked sampling
//! waits for both. Rows without a grammar in the same batch are not touched.
//!
//! Forced tokens: where the grammar allows only one way on for several tokens (a tool call's
//! `{"name": "get_weather", "arguments": {` once the call has started), llguidance's fast-forward
//! tokens are appended without a forward pass each: the matcher takes them with the token just
//! read, and the sequence runs them through the model as one pass (see `generate`).
//!
//! Reasoning models: when the model's output format has reasoning tags, the grammar starts after
//! the reasoning block (the first token may also open it).

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{ApproximateTokEnv, SimpleVob, TokEnv, TokTrie, TokenId, TokenizerEnv};
use llguidance::{Matcher, ParserFactory};
use mlx_rs::Array;
use serde::{Deserialize, Serialize};

use crate::error::{EngineError, Result};
use crate::tokenizer::Tokenizer;

/// What a generation's output must match.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grammar {
    /// A JSON value valid for this JSON Schema.
    JsonSchema(serde_json::Value),
    /// Any JSON object.
    JsonObject,
    /// Text matching this regular expression.
    Regex(String),
    /// Text of this Lark grammar (llguidance's dialect; `%json { … }` embeds a schema).
    Lark(String),
}

fn grammar_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Grammar { message: e.to_string() }
}

/// Whitespace between JSON tokens: what pretty-printing needs (a newline and indentation), but
/// bounded, so a model cannot spend its whole budget on blanks inside an object.
pub const JSON_WHITESPACE: &str = r"[\x20\x0A\x0D\x09]{1,24}";

/// A JSON Schema with the whitespace bound, unless it sets llguidance's options itself.
pub fn bounded_whitespace(mut schema: serde_json::Value) -> serde_json::Value {
    if let Some(obj) = schema.as_object_mut() {
        obj.entry("x-guidance").or_insert_with(|| serde_json::json!({"whitespace_pattern": JSON_WHITESPACE}));
    }
    schema
}

impl Grammar {
    fn top_level(&self) -> TopLevelGrammar {
        match self {
            Grammar::JsonSchema(schema) => TopLevelGrammar::from_json_schema(bounded_whitespace(schema.clone())),
            Grammar::JsonObject => {
                TopLevelGrammar::from_json_schema(bounded_whitespace(serde_json::json!({"type": "object"})))
            }
            Grammar::Regex(rx) => TopLevelGrammar::from_regex(rx),
            Grammar::Lark(lark) => TopLevelGrammar::from_lark(lark.clone()),
        }
    }

    /// Whether llguidance can compile it, checked without a model (so a request can be refused
    /// before anything is loaded): [`EngineError::Grammar`] with llguidance's reason if not.
    pub fn check(&self) -> Result<()> {
        static FACTORY: std::sync::OnceLock<ParserFactory> = std::sync::OnceLock::new();
        let factory = FACTORY.get_or_init(|| {
            let mut f = ParserFactory::new_simple(&ApproximateTokEnv::single_byte_env()).expect("byte tokenizer");
            f.quiet();
            f
        });
        factory.create_parser(self.top_level()).map(|_| ()).map_err(grammar_error)
    }
}

/// A model's grammar compiler: its vocabulary as llguidance sees it (built once per model, at
/// its first constrained request).
pub(crate) struct Guide {
    factory: ParserFactory,
}

impl Guide {
    /// From the model's tokenizer.json, with `eos` as the tokens that end a generation and
    /// `vocab` the width of the model's logits.
    fn new(tokenizer_json: &std::path::Path, eos: &[u32], vocab: usize) -> Result<Guide> {
        let mut bytes = toktrie_hf_tokenizers::ByteTokenizer::from_file(tokenizer_json).map_err(grammar_error)?;
        bytes.set_eos_tokens(eos);
        let env: TokEnv = Arc::new(TextTokens(bytes.into_tok_env(Some(vocab)).map_err(grammar_error)?));
        let mut factory = ParserFactory::new_simple(&env).map_err(grammar_error)?;
        factory.quiet();
        Ok(Guide { factory })
    }

    /// A Lark grammar with each quoted literal that is one of this vocabulary's special tokens
    /// written as that token (see [`special_literals`]).
    fn specialize(&self, lark: &str) -> String {
        let trie = self.factory.tok_env().tok_trie();
        special_literals(lark, |text| trie.get_special_token(text))
    }
}

/// The model's tokenizer as llguidance sees it, except that text never becomes a special token.
/// llguidance writes the bytes a grammar forces as tokens with `tokenize_bytes` (its fast-forward
/// tokens, and the one-token mask it gives while bytes are forced), and the HF tokenizer finds its
/// added tokens in any text: forced text such as the JSON string `"<|im_end|>"` or the terminal
/// `TAG: "</tool_call>"` came back as the special token, which is never that text (its bytes in the
/// trie carry the 0xFF marker), so the mask allowed only it and taking it failed, or ended the
/// generation where it is an EOS. Here such a token is spelled with ordinary tokens instead (the
/// longest-match tokenization of its text). Special tokens a grammar names (`<[id]>`, `<|…|>`)
/// reach llguidance marked and are tokenized apart from this, so they stay special.
struct TextTokens(TokEnv);

impl TokenizerEnv for TextTokens {
    fn tok_trie(&self) -> &TokTrie {
        self.0.tok_trie()
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        let trie = self.0.tok_trie();
        let tokens = self.0.tokenize_bytes(s);
        if !tokens.iter().any(|&t| trie.is_special_token(t)) {
            return tokens;
        }
        let spell =
            |t: TokenId| if trie.is_special_token(t) { trie.greedy_tokenize(&trie.token(t)[1..]) } else { vec![t] };
        tokens.into_iter().flat_map(spell).collect()
    }

    fn tokenize_bytes_special(&self, s: &[u8]) -> Vec<TokenId> {
        self.0.tokenize_bytes_special(s)
    }
}

/// `lark` with each quoted literal of a rule whose text is exactly one special token of the
/// vocabulary (`special`: its id) written as a reference to that token, `<[id]>`: `"</tool_call>"`,
/// Mistral's `"[TOOL_CALLS]"`, Gemma 4's `"<|\"|>"`. Special here is llguidance's reading of
/// tokenizer.json: an added token marked `special`, or any added `<…>` one. Such a token is never
/// the text it shows, so as text the literal would be spelled out with ordinary tokens (see
/// [`TextTokens`]), not written as the token the model's format has there. Where the vocabulary
/// has no such special token the literal stays text. Terminals and directives (which take no tokens),
/// case-insensitive literals and ranges stay as written, as does everything inside regexes,
/// comments, `<…>` token references and `%json` / `%regex` / `%llguidance` values.
fn special_literals(lark: &str, special: impl Fn(&str) -> Option<u32>) -> String {
    let bytes = lark.as_bytes();
    let mut out = String::with_capacity(lark.len());
    // The text before `copied` is in `out`; `terminal`: the statement being read defines a
    // terminal (or is a directive).
    let (mut i, mut copied, mut terminal) = (0, 0, false);
    while i < bytes.len() {
        let rest = &lark[i..];
        if i == 0 || bytes[i - 1] == b'\n' {
            terminal = defines_terminal(rest).unwrap_or(terminal);
        }
        let len = match bytes[i] {
            b'"' => {
                let len = delimited_len(rest, b'"');
                let after = &rest[len..];
                let plain = !terminal
                    && !after.starts_with(['i', '.'])
                    && !after.trim_start().starts_with("..")
                    && !lark[..i].trim_end().ends_with("..");
                let token = if plain { lark_string(&rest[..len]).and_then(|text| special(&text)) } else { None };
                if let Some(id) = token {
                    out.push_str(&lark[copied..i]);
                    out.push_str(&format!("<[{id}]>"));
                    copied = i + len;
                }
                len
            }
            b'#' => rest.find('\n').unwrap_or(rest.len()),
            b'/' if rest.starts_with("//") => rest.find('\n').unwrap_or(rest.len()),
            b'/' => delimited_len(rest, b'/'),
            b'<' => match rest[1..].find(|c: char| c == '<' || c == '>' || c.is_whitespace()) {
                Some(n) if n > 0 && rest.as_bytes()[1 + n] == b'>' => n + 2,
                _ => 1,
            },
            b'%' if ["%json", "%regex", "%llguidance"].iter().any(|k| rest.starts_with(k)) => {
                let keyword = rest.find(|c: char| !c.is_ascii_alphanumeric() && c != '%').unwrap_or(rest.len());
                let mut value =
                    serde_json::Deserializer::from_str(&rest[keyword..]).into_iter::<serde::de::IgnoredAny>();
                match value.next() {
                    Some(Ok(_)) => keyword + value.byte_offset(),
                    _ => keyword,
                }
            }
            _ => rest.chars().next().map_or(1, char::len_utf8),
        };
        i += len.max(1);
    }
    out.push_str(&lark[copied..]);
    out
}

/// For a line that starts a statement, whether it defines a terminal or is a directive (None: it
/// continues the statement before, or is blank or a comment).
fn defines_terminal(line: &str) -> Option<bool> {
    let line = line.trim_start_matches([' ', '\t']);
    if line.starts_with('%') {
        return Some(true);
    }
    let name = line.trim_start_matches(['!', '?', '_']);
    let end = name.find(|c: char| !c.is_ascii_alphanumeric() && c != '_' && c != '-').unwrap_or(name.len());
    let first = name.chars().next().filter(char::is_ascii_alphabetic)?;
    // After the name: a priority (`.2`) or template parameters (`{x}`), then the colon.
    let after = name[end..].trim_start_matches(|c: char| c.is_ascii_digit() || c == '.' || c == ' ');
    let after = match after.strip_prefix('{') {
        Some(params) => params.split_once('}').map_or("", |(_, a)| a).trim_start(),
        None => after,
    };
    (after.starts_with(':') && !after.starts_with("::")).then_some(first.is_ascii_uppercase())
}

/// The length of the text between two `delim`s (`\` escaping the next byte) that starts `s`,
/// delimiters included (all of `s` if it is not closed).
fn delimited_len(s: &str, delim: u8) -> usize {
    let bytes = s.as_bytes();
    let mut j = 1;
    while j < bytes.len() {
        match bytes[j] {
            b'\\' => j += 2,
            b if b == delim => return j + 1,
            _ => j += 1,
        }
    }
    s.len()
}

/// The text of a quoted Lark literal (JSON's string syntax, plus `\xHH`), if it reads.
fn lark_string(quoted: &str) -> Option<String> {
    let mut json = String::with_capacity(quoted.len());
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        json.push(c);
        if c == '\\' {
            match chars.next() {
                Some('x') => json.push_str("u00"),
                Some(other) => json.push(other),
                None => {}
            }
        }
    }
    serde_json::from_str(&json).ok()
}

/// A model's [`Guide`], built by the first constrained request that needs it (off the engine
/// thread: reading a 150k-token vocabulary into llguidance's trie takes a while).
#[derive(Default)]
pub(crate) struct GuideCell(std::sync::Mutex<Option<Arc<Guide>>>);

/// Everything needed to compile one request's constraint away from the engine thread.
pub(crate) struct Compile {
    pub(crate) cell: Arc<GuideCell>,
    pub(crate) tokenizer_json: std::path::PathBuf,
    pub(crate) eos: Vec<u32>,
    pub(crate) vocab: usize,
    pub(crate) grammar: Grammar,
    /// The reasoning tags: the start tag's token when it is one token, and the end tag.
    pub(crate) reasoning: Option<(Option<u32>, String)>,
    pub(crate) reasoning_open: bool,
    pub(crate) trigger: Option<String>,
}

impl Compile {
    /// The constraint, its first mask computed.
    pub(crate) fn run(self) -> Result<Constraint> {
        let guide = {
            let mut slot = self.cell.0.lock().unwrap_or_else(|p| p.into_inner());
            match &*slot {
                Some(g) => g.clone(),
                None => {
                    let g = Arc::new(Guide::new(&self.tokenizer_json, &self.eos, self.vocab)?);
                    *slot = Some(g.clone());
                    g
                }
            }
        };
        let mut c = Constraint::new(&guide, &self.grammar, self.reasoning, self.reasoning_open, self.trigger)?;
        // No fast-forward before the first token: that one comes from the prompt's own pass.
        c.compute(0)?;
        Ok(c)
    }
}

/// Where a reasoning model is relative to its reasoning block.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Gate {
    /// The grammar applies.
    Open,
    /// First token: the grammar's tokens, or `start`, which opens reasoning (ended by `end`).
    MayReason { start: u32, end: String },
    /// Inside reasoning: free until the end tag has been written.
    Reasoning { end: String, tail: String },
    /// Free until the trigger text has been written (then the grammar applies, and after it
    /// completes the output is free again until the next trigger).
    Waiting { tail: String },
}

/// One sequence's constraint.
pub(crate) struct Constraint {
    matcher: Matcher,
    gate: Gate,
    /// The text that starts the grammar, when it does not apply from the start.
    trigger: Option<String>,
    /// The next step's mask, once computed.
    mask: Option<SimpleVob>,
    /// Tokens the grammar forced after the last token read, already taken by the matcher (the
    /// next mask is the one after them).
    forced: Vec<u32>,
}

/// At most this many forced tokens are taken at once (the rest come in later steps): every one
/// is an event the reader's buffer must have room for.
pub(crate) const MAX_FORCED: usize = 16;

/// Fewer forced tokens than this are left to the mask. One saves no pass (the forced pass
/// replaces the next step's), and in a batch its pass would run apart from the other rows', an
/// extra pass for all of them.
pub(crate) const MIN_FORCED: usize = 2;

impl Constraint {
    /// A constraint for `grammar` on the model of `guide`. `reasoning`: the model's reasoning
    /// tags (the start tag's token when it is one token, the end tag) and whether the prompt
    /// already opened the block.
    fn new(
        guide: &Arc<Guide>,
        grammar: &Grammar,
        reasoning: Option<(Option<u32>, String)>,
        reasoning_open: bool,
        trigger: Option<String>,
    ) -> Result<Constraint> {
        let top = match grammar {
            Grammar::Lark(lark) => TopLevelGrammar::from_lark(guide.specialize(lark)),
            other => other.top_level(),
        };
        let parser = guide.factory.create_parser(top).map_err(grammar_error)?;
        let gate = match reasoning {
            Some((_, end)) if reasoning_open => Gate::Reasoning { end, tail: String::new() },
            Some((Some(start), end)) => Gate::MayReason { start, end },
            Some((None, _)) | None => Gate::Open,
        };
        let gate = match (&trigger, gate) {
            (Some(_), Gate::Open | Gate::MayReason { .. }) => Gate::Waiting { tail: String::new() },
            (_, gate) => gate,
        };
        Ok(Constraint { matcher: Matcher::new(Ok(parser)), gate, trigger, mask: None, forced: Vec::new() })
    }

    /// Reads the token the sequence just produced (before the next mask).
    pub(crate) fn advance(&mut self, token: u32, tokenizer: &Tokenizer) -> Result<()> {
        match &mut self.gate {
            Gate::Open => {
                self.matcher.consume_token(token).map_err(grammar_error)?;
                if self.trigger.is_some() && self.matcher.is_stopped() {
                    // The triggered part is complete: free again until the next trigger.
                    self.matcher.reset().map_err(grammar_error)?;
                    self.gate = Gate::Waiting { tail: String::new() };
                }
            }
            Gate::Waiting { tail } => {
                let trigger = self.trigger.as_deref().unwrap_or_default();
                tail.push_str(&tokenizer.decode_with_special(&[token])?);
                if tail.ends_with(trigger) {
                    self.gate = Gate::Open;
                } else {
                    keep_tail(tail, trigger.len());
                }
            }
            Gate::MayReason { start, end } if token == *start => {
                self.gate = Gate::Reasoning { end: std::mem::take(end), tail: String::new() };
            }
            Gate::MayReason { .. } => {
                self.gate = Gate::Open;
                self.matcher.consume_token(token).map_err(grammar_error)?;
            }
            Gate::Reasoning { end, tail } => {
                tail.push_str(&tokenizer.decode_with_special(&[token])?);
                if tail.contains(end.as_str()) {
                    self.gate = match self.trigger {
                        Some(_) => Gate::Waiting { tail: String::new() },
                        None => Gate::Open,
                    };
                } else {
                    keep_tail(tail, end.len());
                }
            }
        }
        Ok(())
    }

    /// Takes the tokens the grammar forces next, at most `limit` of them and none unless
    /// [`MIN_FORCED`] (llguidance's fast-forward tokens: the canonical tokenization of bytes only
    /// one way on allows, checked against the grammar before they are taken), then computes the mask after them (None while
    /// reasoning or waiting for the trigger: no constraint).
    pub(crate) fn compute(&mut self, limit: usize) -> Result<()> {
        self.forced.clear();
        if self.gate == Gate::Open && limit >= MIN_FORCED {
            let mut forced = self.matcher.compute_ff_tokens();
            forced.truncate(limit);
            let valid = self.matcher.validate_tokens(&forced).map_err(grammar_error)?;
            forced.truncate(valid);
            if forced.len() >= MIN_FORCED {
                self.matcher.consume_tokens(&forced).map_err(grammar_error)?;
                self.forced = forced;
                if self.trigger.is_some() && self.matcher.is_stopped() {
                    self.matcher.reset().map_err(grammar_error)?;
                    self.gate = Gate::Waiting { tail: String::new() };
                }
            }
        }
        self.mask = match &self.gate {
            Gate::Reasoning { .. } | Gate::Waiting { .. } => None,
            Gate::Open => Some(self.matcher.compute_mask_or_eos().map_err(grammar_error)?),
            Gate::MayReason { start, .. } => {
                let mut mask = self.matcher.compute_mask_or_eos().map_err(grammar_error)?;
                mask.allow_token(*start);
                Some(mask)
            }
        };
        Ok(())
    }

    /// The tokens forced after the last one read (see [`Constraint::compute`]), taken out.
    pub(crate) fn take_forced(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.forced)
    }

    /// The computed mask as additive logits `[1, vocab]` (0 allowed, −∞ not), if any.
    pub(crate) fn take_mask(&mut self, width: usize) -> Option<Array> {
        let mask = self.mask.take()?;
        let mut add = vec![f32::NEG_INFINITY; width];
        mask.iter_set_entries(|i| {
            if i < width {
                add[i] = 0.0;
            }
        });
        Some(Array::from_slice(&add, &[1, width as i32]))
    }
}

/// Keeps only the end of `tail` that could still be the start of a `len`-byte marker.
fn keep_tail(tail: &mut String, len: usize) {
    if tail.len() > 4 * len.max(1) {
        let cut = tail.len() - len;
        let cut = (cut..tail.len()).find(|&i| tail.is_char_boundary(i)).unwrap_or(tail.len());
        tail.drain(..cut);
    }
}

/// For each row: reads the token it just produced (waiting for it if it is still being computed),
/// then advances its matcher, takes up to its limit of forced tokens and computes its next mask,
/// all rows at once on rayon's pool (off the engine thread, while MLX runs the step's forward
/// pass). A row whose token ends the generation needs no further mask.
pub(crate) fn prepare(
    rows: Vec<(&mut Constraint, &Array, usize)>,
    tokenizer: &Tokenizer,
    eos: &std::collections::BTreeSet<u32>,
) -> Result<()> {
    use rayon::prelude::*;
    let mut going = Vec::with_capacity(rows.len());
    for (c, token, limit) in rows {
        let id = token.try_item_cast::<u32>().map_err(|e| EngineError::Mlx { message: e.to_string() })?;
        if !eos.contains(&id) {
            going.push((c, id, limit));
        }
    }
    going.par_iter_mut().try_for_each(|(c, id, limit)| {
        c.advance(*id, tokenizer)?;
        c.compute(*limit)
    })
}

#[cfg(test)]
mod tests {
    use super::special_literals;

    #[test]
    fn quoted_literals_of_rules_that_are_special_tokens_become_those_tokens() {
        let specials = ["[TOOL_CALLS]", "[ARGS]", "<|\"|>", "</tool_call>"];
        let special = |text: &str| specials.iter().position(|t| *t == text).map(|i| 100 + i as u32);
        let lark = r#"start: "[TOOL_CALLS]" name "[ARGS]" args q "[ARGS]"i <|"|> "</tool_call>" "x"
  | "[ARGS] " /"[ARGS]"/ // "[ARGS]"
q: "<|\"|>" # "[ARGS]"
args: %json {"title": "[ARGS]", "const": "[ARGS]"}
NAME: "[ARGS]" | "get"
  | "[TOOL_CALLS]"
%ignore "[ARGS]"
name: "\x5bARGS]" "a".."z"
"#;
        let expected = r#"start: <[100]> name <[101]> args q "[ARGS]"i <|"|> <[103]> "x"
  | "[ARGS] " /"[ARGS]"/ // "[ARGS]"
q: <[102]> # "[ARGS]"
args: %json {"title": "[ARGS]", "const": "[ARGS]"}
NAME: "[ARGS]" | "get"
  | "[TOOL_CALLS]"
%ignore "[ARGS]"
name: <[101]> "a".."z"
"#;
        assert_eq!(special_literals(lark, special), expected);
    }
}
