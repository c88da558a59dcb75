//! `mlx-manager generate`: one generation, streamed to stdout.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use mlx_manager_engine::{
    ChatMessage, Engine, EngineError, GenerateRequest, GenerationEvent, GenerationParams, PoolConfig, Prompt,
    SamplingParams,
};

#[derive(Args)]
pub struct GenerateArgs {
    /// Model folder (Hugging Face / mlx-community layout).
    #[arg(long, short)]
    model: PathBuf,
    /// Prompt sent as a user message through the chat template.
    #[arg(long, short, conflicts_with_all = ["raw", "tokens"])]
    prompt: Option<String>,
    /// Prompt used as raw text (no chat template).
    #[arg(long)]
    raw: Option<String>,
    /// Prompt as comma-separated token ids.
    #[arg(long, value_delimiter = ',')]
    tokens: Option<Vec<u32>>,
    #[arg(long, default_value_t = 64)]
    max_tokens: usize,
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 1.0)]
    top_p: f32,
    #[arg(long, default_value_t = 0)]
    top_k: u32,
    #[arg(long, default_value_t = 0.0)]
    min_p: f32,
    #[arg(long)]
    seed: Option<u64>,
    #[arg(long)]
    repetition_penalty: Option<f32>,
    /// Stop string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// Print one JSON object (token ids, text, usage) instead of streaming text.
    #[arg(long)]
    json: bool,
    /// On the CPU, keep a quantized model's packed weights (mlx-lm's exact numbers) instead of
    /// running a dequantized copy (as `serve --keep-quantized`).
    #[arg(long)]
    keep_quantized: bool,
}

pub fn run(a: GenerateArgs) -> Result<(), EngineError> {
    let prompt = match (a.prompt, a.raw, a.tokens) {
        (Some(p), _, _) => Prompt::Chat {
            messages: vec![ChatMessage::new("user", p)],
            tools: None,
            template_kwargs: Default::default(),
        },
        (None, Some(raw), _) => Prompt::Text(raw),
        (None, None, Some(tokens)) => Prompt::Tokens(tokens),
        (None, None, None) => Prompt::Chat {
            messages: vec![ChatMessage::new("user", "Hello!")],
            tools: None,
            template_kwargs: Default::default(),
        },
    };
    let engine = Engine::start_with(PoolConfig { dense_on_cpu: !a.keep_quantized, ..PoolConfig::default() })?;
    let handle = engine.handle();
    let id = a.model.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "model".into());
    handle.load_blocking(&id, &a.model)?;
    let params = GenerationParams {
        max_tokens: a.max_tokens,
        sampling: SamplingParams {
            temperature: a.temperature,
            top_p: a.top_p,
            top_k: a.top_k,
            min_p: a.min_p,
            seed: a.seed,
            repetition_penalty: a.repetition_penalty,
            ..SamplingParams::default()
        },
        stop: a.stop,
        ..GenerationParams::default()
    };
    let mut stream = handle.generate(GenerateRequest { model: id, prompt, params })?;
    let mut out = std::io::stdout().lock();
    let (mut ids, mut text) = (Vec::new(), String::new());
    while let Some(event) = stream.blocking_next() {
        match event? {
            GenerationEvent::Started { .. } => {}
            GenerationEvent::Token { id, text: piece, .. } => {
                ids.push(id);
                text.push_str(&piece);
                if !a.json {
                    let _ = out.write_all(piece.as_bytes());
                    let _ = out.flush();
                }
            }
            GenerationEvent::Done { text: piece, finish_reason, usage, .. } => {
                text.push_str(&piece);
                if a.json {
                    let json = serde_json::json!({
                        "tokens": ids, "text": text, "finish_reason": finish_reason,
                        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                        "prompt_tps": usage.prompt_tps(), "generation_tps": usage.generation_tps(),
                    });
                    let _ = writeln!(out, "{json}");
                } else {
                    let _ = writeln!(out, "{piece}");
                    eprintln!(
                        "[{} prompt tokens, {:.1} tok/s; {} generated, {:.1} tok/s; finish: {:?}]",
                        usage.prompt_tokens,
                        usage.prompt_tps(),
                        usage.completion_tokens,
                        usage.generation_tps(),
                        finish_reason
                    );
                }
            }
        }
    }
    Ok(())
}
