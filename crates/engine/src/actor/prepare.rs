//! Everything a request needs before its first forward pass that is not MLX work: rendering the
//! chat template, tokenizing, and compiling its grammar. It runs on a small pool of its own
//! threads, never on the engine thread, so that a request carrying a huge prompt (or a slow
//! grammar) cannot stall the streams that are running; the request joins the engine thread's
//! queue when it is ready (`Command::Prepared`).

use std::sync::Arc;

use super::EmbedInput;
use crate::constraint::{Compile, Constraint};
use crate::error::{EngineError, Result};
use crate::generate::Prompt;
use crate::output::OutputFormat;
use crate::tokenizer::Tokenizer;

/// Threads that prepare requests (at most; fewer on a smaller machine).
const THREADS: usize = 2;

/// A request's tokens and what they imply.
pub(crate) struct Prepared {
    pub(crate) tokens: Vec<u32>,
    /// The prompt leaves the model inside its reasoning section (the template opened it).
    pub(crate) reasoning_open: bool,
    /// Its grammar, compiled, the first mask computed.
    pub(crate) constraint: Option<Constraint>,
}

/// What preparing one generation request needs, taken from its model on the engine thread.
pub(crate) struct Job {
    pub(crate) tokenizer: Arc<Tokenizer>,
    pub(crate) output: OutputFormat,
    pub(crate) prompt: Prompt,
    /// The model's context window, when known.
    pub(crate) context: Option<usize>,
    /// Its grammar's compilation, when the request has one (the reasoning state is filled in
    /// once the prompt is rendered).
    pub(crate) compile: Option<Compile>,
}

impl Job {
    pub(crate) fn run(self) -> Result<Prepared> {
        let (tokens, reasoning_open) = prompt_tokens(&self.tokenizer, &self.prompt, &self.output, self.context)?;
        let constraint = match self.compile {
            Some(mut compile) => {
                compile.reasoning_open = reasoning_open;
                Some(compile.run()?)
            }
            None => None,
        };
        Ok(Prepared { tokens, reasoning_open, constraint })
    }
}

/// The pool that runs [`Job`]s (and embedding inputs' tokenization).
pub(crate) fn pool() -> Result<rayon::ThreadPool> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS.min(cores))
        .thread_name(|i| format!("mlx-prepare-{i}"))
        .build()
        .map_err(|e| EngineError::Mlx { message: format!("cannot start the request preparation threads: {e}") })
}

/// The prompt's tokens for a model, and whether the rendered prompt leaves the model inside its
/// reasoning section. A text longer than `context` tokens could ever cover (see
/// [`Tokenizer::max_token_bytes`]) is refused before it is tokenized.
pub(crate) fn prompt_tokens(
    tokenizer: &Tokenizer,
    prompt: &Prompt,
    output: &OutputFormat,
    context: Option<usize>,
) -> Result<(Vec<u32>, bool)> {
    let (tokens, reasoning_open) = match prompt {
        Prompt::Text(text) => (encode_within(tokenizer, text, true, context)?, false),
        Prompt::Tokens(ids) => (ids.clone(), false),
        Prompt::Chat { messages, tools, template_kwargs } => {
            let text = crate::chat::render_with_kwargs(tokenizer, messages, tools.as_ref(), true, template_kwargs)?;
            (encode_within(tokenizer, &text, false, context)?, output.opens_reasoning(&text))
        }
    };
    if tokens.is_empty() {
        return Err(EngineError::InvalidRequest { field: "prompt", message: "the prompt is empty".into() });
    }
    Ok((tokens, reasoning_open))
}

/// Tokenizes `text` unless its size alone proves it cannot fit `context`.
fn encode_within(tokenizer: &Tokenizer, text: &str, special: bool, context: Option<usize>) -> Result<Vec<u32>> {
    if let Some(context) = context {
        let min_tokens = min_tokens(text.len(), tokenizer.max_token_bytes());
        if min_tokens > context {
            return Err(EngineError::PromptTooLarge { bytes: text.len(), min_tokens, context_length: context });
        }
    }
    tokenizer.encode(text, special)
}

/// The tokens of each input to embed (texts without special tokens), checked against the
/// vocabulary and the context (cut to it when `truncate`).
pub(crate) fn embedding_tokens(
    tokenizer: &Tokenizer,
    inputs: Vec<EmbedInput>,
    vocab: u32,
    context: Option<usize>,
    truncate: bool,
) -> Result<Vec<Vec<u32>>> {
    if inputs.is_empty() {
        return Err(EngineError::InvalidRequest { field: "input", message: "input must not be empty".into() });
    }
    inputs
        .into_iter()
        .map(|input| {
            let mut tokens = match input {
                // Cut to the context anyway: the size bound does not apply.
                EmbedInput::Text(text) if truncate => tokenizer.encode(&text, false)?,
                EmbedInput::Text(text) => encode_within(tokenizer, &text, false, context)?,
                EmbedInput::Tokens(ids) => ids,
            };
            if tokens.is_empty() {
                return Err(EngineError::InvalidRequest { field: "input", message: "an input is empty".into() });
            }
            if let Some(bad) = tokens.iter().find(|&&t| t >= vocab) {
                return Err(EngineError::InvalidRequest {
                    field: "input",
                    message: format!("token id {bad} is outside the vocabulary ({vocab})"),
                });
            }
            if let Some(ctx) = context {
                if tokens.len() > ctx {
                    if !truncate {
                        return Err(EngineError::ContextLength { prompt_tokens: tokens.len(), context_length: ctx });
                    }
                    tokens.truncate(ctx);
                }
            }
            Ok(tokens)
        })
        .collect()
}

/// The fewest tokens `bytes` of text can be, when no token stands for more than `per_token`.
fn min_tokens(bytes: usize, per_token: usize) -> usize {
    bytes.div_ceil(per_token.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_size_bound_counts_whole_tokens() {
        assert_eq!(min_tokens(0, 16), 0);
        assert_eq!(min_tokens(1, 16), 1);
        assert_eq!(min_tokens(32, 16), 2);
        assert_eq!(min_tokens(33, 16), 3);
        assert_eq!(min_tokens(5, 0), 5);
    }
}
