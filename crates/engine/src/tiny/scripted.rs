//! A tiny model that says one given thing: every prompt is answered with the same sequence of
//! text pieces, then EOS. Tests of what clients see when a model calls tools or reasons (the
//! output parsers, the API encoders, the SDKs' accumulators) need a model that really writes
//! `<tool_call>…</tool_call>` through the real engine; a random-weight model never would.
//!
//! How: each piece is an added token of its own, and the weights make the next token a function
//! of the current one only. Every layer's output projection is zero, so the residual stream is
//! the current token's embedding; ordinary tokens embed to one basis vector, piece `i` to the
//! next, and the output projection maps each basis vector to the following piece (the last one to
//! EOS). Greedy or sampled, the answer is the script.

use std::path::Path;

use tokenizers::AddedToken;

use super::{io_err, tok_err, write_json, write_tiny_model, write_weights, TinyFamily, TinySpec};
use crate::error::{EngineError, Result};

/// The tool-calling tests' agent: a short text, then a Hermes call get_weather(city="Paris",
/// days=3) (meant for Qwen2.5's template).
pub const AGENT_SCRIPT: &[&str] = &[
    "Let me check.",
    "\n<tool_call>",
    "\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"",
    "Paris",
    "\", \"days\": 3}}\n",
    "</tool_call>",
];

/// The reasoning tests' model: a `<think>` block, then "It is sunny." (meant for Qwen3's template).
pub const THINKER_SCRIPT: &[&str] =
    &["<think>", "\nThe user asks about the weather.\n", "</think>", "\n\nIt is sunny."];

/// How much the scripted token outscores every other one (before the final norm's √d gain).
const MARGIN: f32 = 10.0;

fn invalid(dir: &Path, message: String) -> EngineError {
    EngineError::InvalidConfig { path: dir.to_path_buf(), message }
}

fn small_spec() -> TinySpec {
    TinySpec {
        hidden_size: 128,
        layers: 1,
        heads: 4,
        kv_heads: 2,
        intermediate_size: 64,
        vocab_size: 256,
        ..TinySpec::new(TinyFamily::Qwen2)
    }
}

/// Adds `tokens` to the model's tokenizer (as special tokens or not); their ids and the new
/// vocabulary size.
fn add_tokens(dir: &Path, tokens: &[&str], special: bool) -> Result<(Vec<usize>, usize)> {
    let path = dir.join("tokenizer.json");
    let mut tokenizer = tokenizers::Tokenizer::from_file(&path).map_err(tok_err(&path))?;
    let added: Vec<AddedToken> = tokens.iter().map(|t| AddedToken::from(t.to_string(), special)).collect();
    if special {
        tokenizer.add_special_tokens(&added);
    } else {
        tokenizer.add_tokens(&added);
    }
    tokenizer.save(&path, true).map_err(tok_err(&path))?;
    let ids = tokens
        .iter()
        .map(|t| tokenizer.token_to_id(t).map(|id| id as usize).ok_or_else(|| invalid(dir, format!("{t:?} has no id"))))
        .collect::<Result<_>>()?;
    Ok((ids, tokenizer.get_vocab_size(true)))
}

fn read_json(dir: &Path, file: &str) -> Result<serde_json::Value> {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).map_err(io_err(&path))?;
    serde_json::from_str(&text).map_err(|e| invalid(dir, format!("{file}: {e}")))
}

/// Sets the vocabulary size and the chat template; returns the EOS id config.json names.
fn configure(dir: &Path, vocab: usize, chat_template: &str) -> Result<usize> {
    let mut config = read_json(dir, "config.json")?;
    config["vocab_size"] = vocab.into();
    let eos = config["eos_token_id"].as_u64().ok_or_else(|| invalid(dir, "config.json has no eos_token_id".into()))?;
    write_json(&dir.join("config.json"), &config)?;
    let mut tc = read_json(dir, "tokenizer_config.json")?;
    tc["chat_template"] = chat_template.into();
    write_json(&dir.join("tokenizer_config.json"), &tc)?;
    Ok(eos as usize)
}

/// Rewrites the weights: `embed` and `head` (`[vocab, d]`) replace the embedding and output
/// projection; `other` gives every other tensor from its name and current values.
fn rewrite_weights(
    dir: &Path,
    spec: &TinySpec,
    embed: Vec<f32>,
    head: Vec<f32>,
    vocab: usize,
    other: impl Fn(&str, Vec<f32>) -> Vec<f32>,
) -> Result<()> {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).map_err(io_err(&path))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| invalid(dir, format!("weights: {e}")))?;
    let (mut embed, mut head) = (Some(embed), Some(head));
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let values: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let (shape, data) = match name.as_str() {
            "model.embed_tokens.weight" => (vec![vocab, spec.hidden_size], embed.take().unwrap_or_default()),
            "lm_head.weight" => (vec![vocab, spec.hidden_size], head.take().unwrap_or_default()),
            other_name => (view.shape().to_vec(), other(other_name, values)),
        };
        tensors.push((name, shape, data, false));
    }
    write_weights(dir, spec, tensors)
}

/// Writes a Qwen2-architecture model under `dir` whose answer to any prompt is `pieces` in
/// order (each at least one character, all distinct), with `chat_template` as its template.
pub fn write_scripted_model(dir: &Path, pieces: &[&str], chat_template: &str) -> Result<()> {
    let spec = small_spec();
    let d = spec.hidden_size;
    if pieces.len() + 1 >= d {
        return Err(invalid(dir, format!("a script has at most {} pieces", d - 2)));
    }
    let mut seen = std::collections::BTreeSet::new();
    if let Some(p) = pieces.iter().find(|p| p.is_empty() || !seen.insert(**p)) {
        return Err(invalid(dir, format!("script pieces must be distinct and non-empty: {p:?}")));
    }
    write_tiny_model(dir, &spec)?;
    // The pieces become tokens of their own.
    let (chain, vocab) = add_tokens(dir, pieces, false)?;
    let eos = configure(dir, vocab, chat_template)?;
    // Ordinary tokens embed to e0, piece i to e(i+1); e(i) predicts piece i, the last one EOS.
    let mut embed = vec![0f32; vocab * d];
    for row in embed.chunks_mut(d) {
        row[0] = 1.0;
    }
    let mut head = vec![0f32; vocab * d];
    for (i, &id) in chain.iter().enumerate() {
        embed[id * d..(id + 1) * d].fill(0.0);
        embed[id * d + i + 1] = 1.0;
        head[id * d + i] = MARGIN;
    }
    head[eos * d + chain.len()] = MARGIN;
    // Every block adds nothing to the residual stream; norms pass it through.
    rewrite_weights(dir, &spec, embed, head, vocab, |name, values| {
        if name.ends_with("norm.weight") {
            vec![1.0; values.len()]
        } else {
            vec![0.0; values.len()]
        }
    })
}

/// Writes a random-weight Qwen2-architecture model under `dir` with `chat_template` and the
/// special tokens that template uses (e.g. gpt-oss's harmony tokens); `eos` of them also end a
/// generation. Such a model writes another family's markup only when decoding is constrained to
/// it — what the forced-tool-call tests need.
pub fn write_templated_model(dir: &Path, chat_template: &str, specials: &[&str], eos: &[&str]) -> Result<()> {
    let spec = small_spec();
    write_tiny_model(dir, &spec)?;
    let (ids, vocab) = add_tokens(dir, specials, true)?;
    configure(dir, vocab, chat_template)?;
    let mut gc = read_json(dir, "generation_config.json")?;
    let mut stop: Vec<u64> =
        gc["eos_token_id"].as_array().map(|a| a.iter().filter_map(|v| v.as_u64()).collect()).unwrap_or_default();
    stop.extend(specials.iter().zip(&ids).filter(|(t, _)| eos.contains(t)).map(|(_, &id)| id as u64));
    gc["eos_token_id"] = stop.into();
    write_json(&dir.join("generation_config.json"), &gc)?;
    // The new tokens' rows are zero: they are never likely, only allowed.
    let file = std::fs::read(dir.join("model.safetensors")).map_err(io_err(&dir.join("model.safetensors")))?;
    let weights = safetensors::SafeTensors::deserialize(&file).map_err(|e| invalid(dir, format!("weights: {e}")))?;
    let grown = |name: &str| -> Result<Vec<f32>> {
        let view = weights.tensor(name).map_err(|e| invalid(dir, format!("{name}: {e}")))?;
        let mut values: Vec<f32> =
            view.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        values.resize(vocab * spec.hidden_size, 0.0);
        Ok(values)
    };
    let (embed, head) = (grown("model.embed_tokens.weight")?, grown("lm_head.weight")?);
    rewrite_weights(dir, &spec, embed, head, vocab, |_, values| values)
}
