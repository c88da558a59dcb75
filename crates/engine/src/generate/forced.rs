//! Forced tokens: where a sequence's grammar allows only one way on for several tokens, they are
//! run through the model as one pass after the token that led to them, not one pass each (see
//! `constraint`'s fast-forward), and sent right after that token.

use mlx_rs::Array;

use super::Sequence;
use crate::constraint::{Constraint, MAX_FORCED};
use crate::error::Result;
use crate::model::Model;

impl Sequence {
    /// How many forced tokens its grammar may take after the token being read: what
    /// `max_tokens` leaves after that token and the one sampled after them, at most
    /// [`MAX_FORCED`].
    pub(super) fn forced_limit(&self) -> usize {
        self.params.max_tokens.saturating_sub(self.generated + 2).min(MAX_FORCED)
    }

    /// After its grammar read the token being read (already in the model's cache): the tokens it
    /// forced, run through the model as one pass instead of one pass each, and the logits after
    /// them (the token's own logits are not used then). None when nothing was forced.
    pub(super) fn run_forced(&mut self, model: &Model) -> Result<Option<Array>> {
        let forced = self.constraint.as_mut().map(Constraint::take_forced).unwrap_or_default();
        if forced.is_empty() {
            return Ok(None);
        }
        let input = Array::from_slice(&forced, &[forced.len() as i32]);
        self.sampler.observe(&input)?;
        let logits = model.logits(&input, &mut self.cache)?;
        self.forced = forced;
        Ok(Some(logits))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;
    use std::sync::Arc;

    use super::*;
    use crate::config::ModelConfig;
    use crate::constraint::{Compile, Grammar, GuideCell};
    use crate::generate::{GenerationEvent, GenerationParams, Step, PREFILL_CHUNK};
    use crate::tiny::{write_tiny_model, TinyFamily, TinySpec};
    use crate::tokenizer::Tokenizer;

    /// A tool call whose name and keys only one way on allows, then a free choice.
    const CALL: &str = r#"start: "{\"name\": \"get_current_weather\", \"arguments\": {\"city\": \"" CITY "\"}}"
CITY: /[A-Z][a-z]{2,8}/
"#;

    struct Run {
        ids: Vec<u32>,
        text: String,
        /// Steps that produced tokens: one forward pass each.
        steps: usize,
        finish: Option<crate::generate::FinishReason>,
    }

    fn load(dir: &Path) -> (Model, Tokenizer, BTreeSet<u32>) {
        write_tiny_model(dir, &TinySpec::new(TinyFamily::Qwen2)).unwrap();
        let config = ModelConfig::load(dir).unwrap();
        let tokenizer = Tokenizer::load(dir, &config.eos_token_ids).unwrap();
        let eos = config.eos_token_ids.iter().copied().collect();
        (Model::load(dir, config).unwrap(), tokenizer, eos)
    }

    fn sequence(dir: &Path, model: &Model, tok: &Tokenizer, grammar: Option<&str>, max_tokens: usize) -> Sequence {
        let params = GenerationParams { max_tokens, ..GenerationParams::default() };
        let prompt: Vec<u32> = (0..12u32).map(|i| (i * 31 + 7) % 400 + 5).collect();
        let mut seq = Sequence::new(model, tok, prompt, params, None).unwrap();
        if let Some(lark) = grammar {
            let compile = Compile {
                cell: Arc::new(GuideCell::default()),
                tokenizer_json: dir.join("tokenizer.json"),
                eos: model.config.eos_token_ids.clone(),
                vocab: model.config.vocab_size as usize,
                grammar: Grammar::Lark(lark.into()),
                reasoning: None,
                reasoning_open: false,
                trigger: None,
            };
            seq.attach(compile.run().unwrap());
        }
        while !seq.decoding() {
            seq.prefill_step(model, PREFILL_CHUNK).unwrap();
        }
        seq
    }

    /// Greedy decoding of `seqs` together until all have finished.
    fn decode(model: &Model, tok: &Tokenizer, eos: &BTreeSet<u32>, mut seqs: Vec<Sequence>) -> Vec<Run> {
        let mut runs: Vec<Run> =
            seqs.iter().map(|_| Run { ids: vec![], text: String::new(), steps: 0, finish: None }).collect();
        while runs.iter().any(|r| r.finish.is_none()) {
            let open: Vec<usize> = (0..seqs.len()).filter(|&i| runs[i].finish.is_none()).collect();
            let mut batch: Vec<&mut Sequence> =
                seqs.iter_mut().enumerate().filter(|(i, _)| open.contains(i)).map(|(_, s)| s).collect();
            let steps = Sequence::decode_together(model, tok, eos, &mut batch).unwrap();
            for (&i, step) in open.iter().zip(steps) {
                let run = &mut runs[i];
                run.steps += 1;
                let events = match step.unwrap() {
                    Step::Continue => vec![],
                    Step::Token(e) => vec![e],
                    Step::Tokens(events) | Step::Finished(events) => events,
                };
                for event in events {
                    match event {
                        GenerationEvent::Token { id, text, .. } => {
                            run.ids.push(id);
                            run.text.push_str(&text);
                        }
                        GenerationEvent::Done { text, finish_reason, .. } => {
                            run.text.push_str(&text);
                            run.finish = Some(finish_reason);
                        }
                        _ => {}
                    }
                }
            }
        }
        runs
    }

    /// The forced part of a call (its name and keys) comes in a few passes, not one per token,
    /// and the call is whole; a free row decoding in the same batch gets the tokens it gets alone.
    #[test]
    fn forced_tokens_are_appended_without_a_pass_each() {
        let dir = tempfile::tempdir().unwrap();
        let (model, tok, eos) = load(dir.path());
        let free_alone = decode(&model, &tok, &eos, vec![sequence(dir.path(), &model, &tok, None, 30)]).pop().unwrap();
        let seqs =
            vec![sequence(dir.path(), &model, &tok, Some(CALL), 200), sequence(dir.path(), &model, &tok, None, 30)];
        let [call, free]: [Run; 2] = decode(&model, &tok, &eos, seqs).try_into().ok().unwrap();
        assert_eq!(free.ids, free_alone.ids);
        let city = call
            .text
            .strip_prefix(r#"{"name": "get_current_weather", "arguments": {"city": ""#)
            .and_then(|rest| rest.strip_suffix(r#""}}"#))
            .unwrap_or_else(|| panic!("not the call: {}", call.text));
        assert!(city.len() >= 3 && city.chars().all(|c| c.is_ascii_alphabetic()), "{city}");
        assert_eq!(call.finish, Some(crate::generate::FinishReason::Stop));
        // The name and keys alone are well over ten tokens of this vocabulary.
        assert!(call.ids.len() >= call.steps + 10, "{} tokens in {} passes", call.ids.len(), call.steps);
    }

    /// Forced tokens count against max_tokens like any other: the generation stops at it.
    #[test]
    fn forced_tokens_stop_at_max_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let (model, tok, eos) = load(dir.path());
        for max_tokens in [1, 2, 3, 7] {
            let run = decode(&model, &tok, &eos, vec![sequence(dir.path(), &model, &tok, Some(CALL), max_tokens)]);
            let run = &run[0];
            assert_eq!(run.ids.len(), max_tokens);
            assert_eq!(run.finish, Some(crate::generate::FinishReason::Length));
            assert!(
                r#"{"name": "get_current_weather""#.starts_with(&run.text) || run.text.starts_with("{\"name"),
                "{}",
                run.text
            );
        }
    }
}
