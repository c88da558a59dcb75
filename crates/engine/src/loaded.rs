//! A model in the engine thread's pool: its weights, tokenizer and usage, and loading one from a
//! folder.

use std::collections::BTreeSet;
use std::time::Instant;

use crate::actor::ModelInfo;
use crate::config::ModelConfig;
use crate::error::Result;
use crate::model::Model;
use crate::pool::KeepAlive;
use crate::tokenizer::Tokenizer;

pub(crate) struct Loaded {
    pub(crate) info: ModelInfo,
    pub(crate) model: Model,
    /// Shared with the threads that prepare requests (see `actor::prepare`).
    pub(crate) tokenizer: std::sync::Arc<Tokenizer>,
    pub(crate) eos: BTreeSet<u32>,
    pub(crate) last_used: Instant,
    pub(crate) keep_alive: Option<KeepAlive>,
    /// The last finished sequence's keys and values, for a request that starts the same way.
    pub(crate) prompt_cache: Option<crate::generate::PromptCache>,
    /// Its grammar compiler, built at its first constrained request.
    pub(crate) guide: std::sync::Arc<crate::constraint::GuideCell>,
}

impl Loaded {
    pub(crate) fn info(&self) -> ModelInfo {
        ModelInfo { idle_seconds: self.last_used.elapsed().as_secs(), ..self.info.clone() }
    }

    /// What compiling `grammar` for a request on this model needs (run off the engine thread,
    /// which fills in `reasoning_open` once the prompt is rendered).
    pub(crate) fn compile(
        &self,
        params: &crate::generate::GenerationParams,
        grammar: &crate::constraint::Grammar,
    ) -> Result<crate::constraint::Compile> {
        let reasoning = match &self.info.output.reasoning {
            Some((start, end)) => {
                let start = match self.tokenizer.encode(start, false)?.as_slice() {
                    [id] => Some(*id),
                    _ => None,
                };
                Some((start, end.clone()))
            }
            None => None,
        };
        Ok(crate::constraint::Compile {
            cell: self.guide.clone(),
            tokenizer_json: self.tokenizer.path.clone(),
            eos: self.eos.iter().copied().collect(),
            vocab: (self.model.config.vocab_size as usize).max(self.tokenizer.vocab_size()),
            grammar: grammar.clone(),
            reasoning,
            reasoning_open: false,
            trigger: params.grammar_trigger.clone(),
        })
    }

    pub(crate) fn touch(&mut self) {
        self.last_used = Instant::now();
        self.info.requests_served += 1;
    }
}

/// The model's output format: from its chat template, with tokenizer_config.json's
/// `tool_parser_type` (mlx-lm's override) taking precedence for the tool-call syntax.
fn output_format(tokenizer: &Tokenizer) -> crate::output::OutputFormat {
    let mut format = crate::output::OutputFormat::from_template(tokenizer.chat_template.as_deref().unwrap_or_default());
    if let Some(name) = &tokenizer.tool_parser_type {
        match crate::output::ToolFormat::from_name(name) {
            Some(tools) => format.tools = Some(tools),
            None => tracing::warn!(tool_parser_type = %name, "unknown tool_parser_type; using the template's format"),
        }
    }
    format
}

/// Loads the model in `path`; `dense` decides, given its quantization, whether quantized weights
/// run dequantized (see `PoolConfig::dense_on_cpu`).
pub(crate) fn load_model(
    id: &str,
    path: &std::path::Path,
    dense: &dyn Fn(crate::config::Quantization) -> bool,
    progress: &mut dyn FnMut(f32),
) -> Result<Loaded> {
    let started = Instant::now();
    let config = ModelConfig::load(path)?;
    let dense = config.quantization.is_some_and(dense);
    let tokenizer = Tokenizer::load(path, &config.eos_token_ids)?;
    progress(0.02);
    let model = Model::load_with_progress(path, config, dense, progress)?;
    let c = &model.config;
    let info = ModelInfo {
        id: id.to_string(),
        path: path.to_path_buf(),
        model_type: c.model_type.clone(),
        dtype: format!("{:?}", model.dtype()).to_lowercase(),
        quantization: c.quantization.map(|q| (q.bits, q.group_size)),
        dequantized: dense,
        weight_bytes: model.weight_bytes(),
        kv_cache_bytes: 0,
        context_length: c.max_position_embeddings,
        pinned: false,
        requests_served: 0,
        idle_seconds: 0,
        output: output_format(&tokenizer),
    };
    tracing::info!(
        model = id,
        bytes = info.weight_bytes,
        dense,
        ms = started.elapsed().as_millis() as u64,
        "model loaded"
    );
    let eos = tokenizer.eos_token_ids.clone();
    Ok(Loaded {
        info,
        model,
        tokenizer: std::sync::Arc::new(tokenizer),
        eos,
        last_used: Instant::now(),
        keep_alive: None,
        prompt_cache: None,
        guide: Default::default(),
    })
}
