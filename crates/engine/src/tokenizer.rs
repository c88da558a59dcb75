//! Tokenizer (the `tokenizers` crate, reading tokenizer.json) plus what transformers reads from
//! tokenizer_config.json and generation_config.json: special tokens, BOS/EOS and the chat template.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::error::{EngineError, Result};

/// A model's tokenizer and its special-token facts.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub(crate) path: PathBuf,
    /// The Jinja chat template, when the model has one.
    pub chat_template: Option<String>,
    /// tokenizer_config.json's `tool_parser_type` (mlx-lm's key): the model's tool-call format
    /// when its template does not make it plain.
    pub tool_parser_type: Option<String>,
    /// `bos_token` as text (chat templates use it).
    pub bos_token: Option<String>,
    /// `eos_token` as text.
    pub eos_token: Option<String>,
    /// Every token id that ends generation (config.json, generation_config.json, tokenizer).
    pub eos_token_ids: BTreeSet<u32>,
    /// Other special tokens by name (`pad_token`, `unk_token`), for templates.
    pub special_tokens: Vec<(String, String)>,
    /// The chat template, parsed once (or why it does not parse).
    compiled: Option<std::result::Result<crate::chat::ChatTemplate, String>>,
    /// See [`Tokenizer::max_token_bytes`].
    max_token_bytes: usize,
}

fn token_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(str::to_string),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<Option<serde_json::Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path).map_err(|source| EngineError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| EngineError::InvalidConfig { path: path.to_path_buf(), message: e.to_string() })
}

fn ids(value: Option<&serde_json::Value>) -> Vec<u32> {
    match value {
        Some(serde_json::Value::Number(n)) => n.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_u64()).map(|v| v as u32).collect(),
        _ => Vec::new(),
    }
}

impl Tokenizer {
    /// Loads tokenizer.json, tokenizer_config.json and generation_config.json from `dir`;
    /// `config_eos` are the EOS ids from config.json.
    pub fn load(dir: &Path, config_eos: &[u32]) -> Result<Tokenizer> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(EngineError::Tokenizer { path, message: "tokenizer.json not found".into() });
        }
        let inner = tokenizers::Tokenizer::from_file(&path)
            .map_err(|e| EngineError::Tokenizer { path: path.clone(), message: e.to_string() })?;
        let tc = read_json(&dir.join("tokenizer_config.json"))?.unwrap_or(serde_json::Value::Null);
        let gc = read_json(&dir.join("generation_config.json"))?.unwrap_or(serde_json::Value::Null);
        let mut chat_template = match tc.get("chat_template") {
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            // A list of named templates: use "default".
            Some(serde_json::Value::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .and_then(|t| t.get("template").and_then(|t| t.as_str()).map(str::to_string)),
            _ => None,
        };
        let jinja = dir.join("chat_template.jinja");
        if chat_template.is_none() && jinja.is_file() {
            chat_template =
                Some(std::fs::read_to_string(&jinja).map_err(|source| EngineError::Io { path: jinja, source })?);
        }
        let tool_parser_type = tc.get("tool_parser_type").and_then(|v| v.as_str()).map(str::to_string);
        let bos_token = token_text(tc.get("bos_token"));
        let eos_token = token_text(tc.get("eos_token"));
        let mut eos_token_ids: BTreeSet<u32> = config_eos.iter().copied().collect();
        eos_token_ids.extend(ids(gc.get("eos_token_id")));
        if let Some(id) = eos_token.as_deref().and_then(|t| inner.token_to_id(t)) {
            eos_token_ids.insert(id);
        }
        let special_tokens = ["pad_token", "unk_token", "sep_token", "cls_token", "mask_token"]
            .iter()
            .filter_map(|name| token_text(tc.get(*name)).map(|t| (name.to_string(), t)))
            .collect();
        let compiled = chat_template.as_deref().map(|t| {
            crate::chat::ChatTemplate::new(t).map_err(|e| match e {
                EngineError::ChatTemplate { message } => message,
                other => other.to_string(),
            })
        });
        // Vocabulary entries are spelled at least as long as the text they stand for (byte-level
        // BPE spells one byte as up to two, SentencePiece a space as three); doubled for
        // normalizers that shorten the input (NFKC's ligatures).
        let max_token_bytes = 2 * inner.get_vocab(true).keys().map(String::len).max().unwrap_or(1);
        Ok(Tokenizer {
            max_token_bytes,
            inner,
            path,
            chat_template,
            tool_parser_type,
            bos_token,
            eos_token,
            eos_token_ids,
            special_tokens,
            compiled,
        })
    }

    /// The parsed chat template, if the model has one.
    pub fn template(&self) -> Option<&std::result::Result<crate::chat::ChatTemplate, String>> {
        self.compiled.as_ref()
    }

    /// Token ids of `text`; `add_special_tokens` applies the tokenizer's post-processor (BOS).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| EngineError::Tokenizer { path: self.path.clone(), message: e.to_string() })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, special tokens skipped.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| EngineError::Tokenizer { path: self.path.clone(), message: e.to_string() })
    }

    /// Text of `ids` with special tokens kept, as mlx-lm's detokenizers print them: tool-call and
    /// channel markers (`[TOOL_CALLS]`, `<|python_tag|>`, `<|channel|>`) are special tokens in
    /// some vocabularies, and the output parsers need them. (The tokens that end a generation
    /// are never decoded.)
    pub fn decode_with_special(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, false)
            .map_err(|e| EngineError::Tokenizer { path: self.path.clone(), message: e.to_string() })
    }

    /// An upper bound on the bytes of input text one token stands for: a text of `n` bytes is at
    /// least `n / max_token_bytes` tokens, which refuses a prompt far over a model's context
    /// without tokenizing it.
    pub fn max_token_bytes(&self) -> usize {
        self.max_token_bytes
    }

    /// Number of entries in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }
}

/// Turns a stream of token ids into text pieces (special tokens kept) that are always valid UTF-8, decoding only a
/// short window per token (never the whole sequence): the window is re-decoded from a token that
/// is already complete, and text is emitted once it no longer ends in a partial character.
#[derive(Debug, Default)]
pub struct StreamDecoder {
    ids: Vec<u32>,
    /// Start of the window (a few tokens back, for context-dependent decoders).
    prefix: usize,
    /// End of what has been emitted.
    read: usize,
}

impl StreamDecoder {
    /// A decoder with nothing decoded yet.
    pub fn new() -> StreamDecoder {
        StreamDecoder::default()
    }

    /// Adds one token; returns the newly completed text (possibly empty).
    pub fn push(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<String> {
        self.ids.push(id);
        let before = tokenizer.decode_with_special(&self.ids[self.prefix..self.read])?;
        let now = tokenizer.decode_with_special(&self.ids[self.prefix..])?;
        if now.len() > before.len() && !now.ends_with('\u{FFFD}') && now.is_char_boundary(before.len()) {
            let piece = now[before.len()..].to_string();
            self.prefix = self.read;
            self.read = self.ids.len();
            Ok(piece)
        } else {
            Ok(String::new())
        }
    }

    /// Whatever is still held back at the end of the stream (lossy).
    pub fn finish(&mut self, tokenizer: &Tokenizer) -> Result<String> {
        if self.read == self.ids.len() {
            return Ok(String::new());
        }
        let before = tokenizer.decode_with_special(&self.ids[self.prefix..self.read])?;
        let now = tokenizer.decode_with_special(&self.ids[self.prefix..])?;
        self.read = self.ids.len();
        Ok(now.get(before.len()..).unwrap_or_default().to_string())
    }
}
