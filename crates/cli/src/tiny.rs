//! `mlx-manager make-tiny-model`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use mlx_manager_engine::tiny::{write_family_model, write_tiny_model, TinyDtype, TinyFamily, TinySpec};
use mlx_manager_engine::EngineError;

#[derive(Clone, Copy, ValueEnum)]
enum Dtype {
    F32,
    F16,
    Bf16,
}

#[derive(Args)]
pub struct TinyArgs {
    /// Folder to write (created if needed).
    out: PathBuf,
    /// Any family the engine runs (its model_type). llama, qwen2 and qwen3 use a generator
    /// tuned so random weights wander rather than repeat; the others write exactly the tensors
    /// the family's loader reads.
    #[arg(long, default_value = "llama", value_parser = clap::builder::PossibleValuesParser::new(mlx_manager_engine::family_names()))]
    family: String,
    #[arg(long, value_enum, default_value = "f32")]
    dtype: Dtype,
    /// Quantize linear and embedding weights to this many bits (4 or 8).
    #[arg(long, value_parser = clap::value_parser!(u8).range(2..=8))]
    bits: Option<u8>,
    /// Quantization group size.
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(32..=128))]
    group_size: u16,
    /// Tie the output projection to the embedding.
    #[arg(long)]
    tied: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[arg(long, default_value_t = 2)]
    layers: usize,
    #[arg(long, default_value_t = 64)]
    hidden_size: usize,
    #[arg(long, default_value_t = 4)]
    heads: usize,
    #[arg(long, default_value_t = 2)]
    kv_heads: usize,
    #[arg(long, default_value_t = 128)]
    intermediate_size: usize,
    /// BPE vocabulary size (special tokens come on top; the bundled corpus trains well under a
    /// thousand tokens whatever is asked).
    #[arg(long, default_value_t = 512)]
    vocab_size: usize,
    /// Pad the embedding and output projection to this many rows (config.json's vocab_size), as
    /// real checkpoints do: the padding ids never win a step. Gives a benchmark a realistic
    /// output projection (e.g. 16384 rows) whatever the tokenizer's size.
    #[arg(long)]
    vocab_rows: Option<usize>,
    /// Split the weights over this many safetensors shards.
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// Context length (max_position_embeddings).
    #[arg(long, default_value_t = 4096)]
    context: usize,
}

pub fn run(a: TinyArgs) -> Result<(), EngineError> {
    let spec = TinySpec {
        family: match a.family.as_str() {
            "qwen2" => TinyFamily::Qwen2,
            "qwen3" => TinyFamily::Qwen3,
            _ => TinyFamily::Llama,
        },
        hidden_size: a.hidden_size,
        layers: a.layers,
        heads: a.heads,
        kv_heads: a.kv_heads,
        intermediate_size: a.intermediate_size,
        vocab_size: a.vocab_size,
        vocab_rows: a.vocab_rows,
        tied: a.tied,
        dtype: match a.dtype {
            Dtype::F32 => TinyDtype::F32,
            Dtype::F16 => TinyDtype::F16,
            Dtype::Bf16 => TinyDtype::Bf16,
        },
        quantize: a.bits.map(|b| (u32::from(b), usize::from(a.group_size))),
        seed: a.seed,
        max_position_embeddings: a.context,
        shards: a.shards,
    };
    if spec.hidden_size % spec.heads != 0 || spec.heads % spec.kv_heads != 0 {
        return Err(EngineError::InvalidRequest {
            field: "hidden-size",
            message: "hidden-size must divide by heads, heads by kv-heads".into(),
        });
    }
    match a.family.as_str() {
        "llama" | "qwen2" | "qwen3" => write_tiny_model(&a.out, &spec)?,
        other => write_family_model(&a.out, other, &spec)?,
    }
    println!("{}", a.out.display());
    Ok(())
}
