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

/// Writes a Qwen2-architecture model under `dir` whose answer to any prompt is `pieces` in
/// order (each at least one character, all distinct), with `chat_template` as its template.
pub fn write_scripted_model(dir: &Path, pieces: &[&str], chat_template: &str) -> Result<()> {
    let spec = TinySpec {
        hidden_size: 128,
        layers: 1,
        heads: 4,
        kv_heads: 2,
        intermediate_size: 64,
        vocab_size: 256,
        ..TinySpec::new(TinyFamily::Qwen2)
    };
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
    let path = dir.join("tokenizer.json");
    let mut tokenizer = tokenizers::Tokenizer::from_file(&path).map_err(tok_err(&path))?;
    let added: Vec<AddedToken> = pieces.iter().map(|p| AddedToken::from(p.to_string(), false)).collect();
    tokenizer.add_tokens(&added);
    tokenizer.save(&path, true).map_err(tok_err(&path))?;
    let chain: Vec<usize> = pieces
        .iter()
        .map(|p| tokenizer.token_to_id(p).map(|id| id as usize).ok_or_else(|| invalid(dir, format!("{p:?} has no id"))))
        .collect::<Result<_>>()?;
    let vocab = tokenizer.get_vocab_size(true);

    let config_path = dir.join("config.json");
    let text = std::fs::read_to_string(&config_path).map_err(io_err(&config_path))?;
    let mut config: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| invalid(dir, format!("config.json: {e}")))?;
    config["vocab_size"] = vocab.into();
    let eos =
        config["eos_token_id"].as_u64().ok_or_else(|| invalid(dir, "config.json has no eos_token_id".into()))? as usize;
    write_json(&config_path, &config)?;
    let tc_path = dir.join("tokenizer_config.json");
    let text = std::fs::read_to_string(&tc_path).map_err(io_err(&tc_path))?;
    let mut tc: serde_json::Value = serde_json::from_str(&text).map_err(|e| invalid(dir, format!("{e}")))?;
    tc["chat_template"] = chat_template.into();
    write_json(&tc_path, &tc)?;

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
    let weights_path = dir.join("model.safetensors");
    let bytes = std::fs::read(&weights_path).map_err(io_err(&weights_path))?;
    let file = safetensors::SafeTensors::deserialize(&bytes).map_err(|e| invalid(dir, format!("weights: {e}")))?;
    let mut tensors = Vec::new();
    for (name, view) in file.tensors() {
        let shape = view.shape().to_vec();
        let n: usize = shape.iter().product();
        let data = match name.as_str() {
            "model.embed_tokens.weight" => std::mem::take(&mut embed),
            "lm_head.weight" => std::mem::take(&mut head),
            n_ if n_.ends_with("norm.weight") => vec![1.0; n],
            _ => vec![0.0; n],
        };
        let shape =
            if name == "model.embed_tokens.weight" || name == "lm_head.weight" { vec![vocab, d] } else { shape };
        tensors.push((name, shape, data, false));
    }
    write_weights(dir, &spec, tensors)
}
