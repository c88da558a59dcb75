//! Events → OpenAI legacy completion chunks, and answers → a completion. One answer per prompt,
//! in order: each answer's `Done` ends its choice.

use crate::event::{Answer, Event, Finish};
use crate::openai::{Completion, CompletionChoice, CompletionLogprobs, TokenLogprob};
use crate::usage::{OpenAiUsage, Usage};

/// Encodes the answers to `choices` prompts as `text_completion` chunks or one completion.
#[derive(Debug, Clone)]
pub struct CompletionEncoder {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
    choices: usize,
    index: u32,
    logprobs: Option<Vec<TokenLogprob>>,
    usage: Usage,
}

fn logprobs_of(lp: Vec<TokenLogprob>) -> CompletionLogprobs {
    CompletionLogprobs {
        tokens: lp.iter().map(|t| t.token.clone()).collect(),
        token_logprobs: lp.iter().map(|t| t.logprob).collect(),
        top_logprobs: None,
        text_offset: None,
    }
}

fn counts(u: Usage) -> OpenAiUsage {
    OpenAiUsage { prompt_tokens_details: None, ..u.into() }
}

impl CompletionEncoder {
    /// An encoder for answer `id` of `model` to `choices` prompts.
    pub fn new(
        id: impl Into<String>,
        created: i64,
        model: impl Into<String>,
        include_usage: bool,
        choices: usize,
    ) -> Self {
        CompletionEncoder {
            id: id.into(),
            created,
            model: model.into(),
            include_usage,
            choices,
            index: 0,
            logprobs: None,
            usage: Usage::default(),
        }
    }

    /// How many answers make the whole.
    pub fn choices(&self) -> usize {
        self.choices
    }

    fn body(&self, choices: Vec<CompletionChoice>, usage: Option<Usage>) -> Completion {
        Completion {
            id: self.id.clone(),
            object: "text_completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices,
            usage: usage.map(counts),
        }
    }

    fn chunk(&mut self, text: String, finish: Option<&Finish>) -> Completion {
        let choice = CompletionChoice {
            text,
            index: self.index,
            logprobs: self.logprobs.take().map(logprobs_of),
            finish_reason: finish.map(Finish::openai),
        };
        self.body(vec![choice], None)
    }

    /// The chunks one event makes.
    pub fn on(&mut self, event: Event) -> Vec<Completion> {
        match event {
            Event::Logprobs(lp) => {
                self.logprobs.get_or_insert_with(Vec::new).extend(lp);
                Vec::new()
            }
            Event::Text(t) => vec![self.chunk(t, None)],
            Event::Done { finish, usage } => {
                self.usage.prompt_tokens += usage.prompt_tokens;
                self.usage.completion_tokens += usage.completion_tokens;
                let mut out = vec![self.chunk(String::new(), Some(&finish))];
                self.index += 1;
                if self.index as usize == self.choices && self.include_usage {
                    out.push(self.body(Vec::new(), Some(self.usage)));
                }
                out
            }
            Event::Reasoning(_)
            | Event::ToolCallStart { .. }
            | Event::ToolCallArguments { .. }
            | Event::ToolCallEnd { .. } => Vec::new(),
        }
    }

    /// The answers (one per prompt) as one completion.
    pub fn completion(&self, answers: Vec<Answer>) -> Completion {
        let mut usage = Usage::default();
        let choices = answers
            .into_iter()
            .enumerate()
            .map(|(index, a)| {
                usage.prompt_tokens += a.usage.prompt_tokens;
                usage.completion_tokens += a.usage.completion_tokens;
                CompletionChoice {
                    text: a.text,
                    index: index as u32,
                    logprobs: a.logprobs.map(logprobs_of),
                    finish_reason: Some(a.finish.unwrap_or(Finish::Stop).openai()),
                }
            })
            .collect();
        self.body(choices, Some(usage))
    }
}
