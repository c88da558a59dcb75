//! Embedding requests on the engine thread: their inputs are tokenized on the `prepare` pool
//! (see [`super::prepare`]) and come back as `Command::Embed` with the tokens; the batches of
//! similar length run here.

use tokio::sync::oneshot;
use tracing::Span;

use super::{prepare, Actor, Command, EmbedRequest, Embeddings, EMBED_BATCH};
use crate::error::{EngineError, Result};

impl Actor {
    /// Starts tokenizing an embedding request's inputs on the `prepare` pool; it comes back as
    /// `Command::Embed` with the tokens.
    pub(super) fn embed_job(&mut self, request: EmbedRequest, reply: oneshot::Sender<Result<Embeddings>>, span: Span) {
        let loaded = match self.use_model(&request.model) {
            Ok(loaded) => loaded,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let tokenizer = loaded.tokenizer.clone();
        let vocab = loaded.model.config.vocab_size as u32;
        let context = loaded.model.config.max_position_embeddings;
        let own = self.own.clone();
        self.prepare.spawn(move || {
            let tokens = prepare::embedding_tokens(&tokenizer, request.inputs, vocab, context, request.truncate);
            let request = EmbedRequest { model: request.model, inputs: Vec::new(), truncate: request.truncate };
            let _ = own.send(Command::Embed { request, tokens: Some(tokens), reply, span });
        });
    }

    pub(super) fn embed(&mut self, model: &str, all: Vec<Vec<u32>>) -> Result<Embeddings> {
        let loaded = self.models.get(model).ok_or_else(|| EngineError::Unloaded { model: model.to_string() })?;
        // Batches of up to EMBED_BATCH inputs of similar length (sorted, so padding stays small);
        // results go back in input order.
        let mut order: Vec<usize> = (0..all.len()).collect();
        order.sort_by_key(|&i| all[i].len());
        let mut vectors = vec![Vec::new(); all.len()];
        for chunk in order.chunks(EMBED_BATCH) {
            let seqs: Vec<&[u32]> = chunk.iter().map(|&i| all[i].as_slice()).collect();
            for (&i, v) in chunk.iter().zip(loaded.model.embed_batch(&seqs)?) {
                vectors[i] = v;
            }
        }
        let prompt_tokens = all.iter().map(Vec::len).sum();
        Ok(Embeddings { vectors, prompt_tokens })
    }
}
