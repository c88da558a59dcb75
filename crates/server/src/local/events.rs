//! The one loop from the engine's token stream to API-neutral events: token text goes through
//! the model's output parser (tool calls, reasoning), logprobs ride along, and the end becomes
//! `Done` with the finish reason the parsed output implies.

use futures_util::stream::BoxStream;
use mlx_manager_api::openai::TokenLogprob;
use mlx_manager_api::{Event, Finish, Usage};
use mlx_manager_engine::output::{OutputEvent, OutputParser};
use mlx_manager_engine::{FinishReason, GenerationEvent};
use rand::distr::{Alphanumeric, SampleString};

use crate::error::ApiError;
use crate::run::{Next, Run};

/// A backend's answer as it comes: events, or the error that ended it.
pub(crate) type Events = BoxStream<'static, Result<Event, ApiError>>;

/// How tool call ids look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallIds {
    /// `call_…` (OpenAI).
    OpenAi,
    /// `toolu_…` (Anthropic).
    Anthropic,
    /// Nine letters and digits: Mistral's templates refuse any other id in the history.
    Mistral,
}

impl CallIds {
    fn make(self) -> String {
        let mut rng = rand::rng();
        match self {
            CallIds::OpenAi => format!("call_{}", Alphanumeric.sample_string(&mut rng, 24)),
            CallIds::Anthropic => format!("toolu_{}", Alphanumeric.sample_string(&mut rng, 24)),
            CallIds::Mistral => Alphanumeric.sample_string(&mut rng, 9),
        }
    }
}

/// Turns parser output into events: ids for new calls; with `single_call`, calls after the
/// first are not delivered (the client asked for at most one, `parallel_tool_calls: false`).
struct Mapper {
    ids: CallIds,
    single_call: bool,
    calls: u32,
}

impl Mapper {
    fn map(&mut self, out: Vec<OutputEvent>, events: &mut Vec<Event>) {
        for e in out {
            match e {
                OutputEvent::Text(t) if !t.is_empty() => events.push(Event::Text(t)),
                OutputEvent::Reasoning(t) if !t.is_empty() => events.push(Event::Reasoning(t)),
                OutputEvent::Text(_) | OutputEvent::Reasoning(_) => {}
                OutputEvent::ToolCallStart { index, id, name } => {
                    self.calls = self.calls.max(index as u32 + 1);
                    if self.single_call && index > 0 {
                        tracing::warn!(tool = %name, "a second tool call was not delivered: parallel_tool_calls is false");
                        continue;
                    }
                    let id = id.filter(|id| !id.is_empty()).unwrap_or_else(|| self.ids.make());
                    events.push(Event::ToolCallStart { index: index as u32, id, name });
                }
                OutputEvent::ToolCallArguments { index, delta } => {
                    if !(self.single_call && index > 0) {
                        events.push(Event::ToolCallArguments { index: index as u32, delta });
                    }
                }
                OutputEvent::ToolCallEnd { index } => {
                    if !(self.single_call && index > 0) {
                        events.push(Event::ToolCallEnd { index: index as u32 });
                    }
                }
            }
        }
    }
}

/// The events of a running generation. Without a parser, the text is the answer as it is.
pub(crate) fn events(mut run: Run, mut parser: Option<OutputParser>, ids: CallIds, single_call: bool) -> Events {
    let logprobs = run.logprobs;
    Box::pin(async_stream::stream! {
        let mut mapper = Mapper { ids, single_call, calls: 0 };
        loop {
            let mut out = Vec::new();
            match run.next().await {
                Next::Event(GenerationEvent::Started { .. }) => {}
                Next::Event(GenerationEvent::Token { text, logprob, .. }) => {
                    if let (true, Some(lp)) = (logprobs, logprob) {
                        let bytes = Some(text.as_bytes().to_vec());
                        out.push(Event::Logprobs(vec![TokenLogprob { token: text.clone(), logprob: lp, bytes, top_logprobs: Vec::new() }]));
                    }
                    match parser.as_mut() {
                        Some(p) => mapper.map(p.push(&text), &mut out),
                        None if !text.is_empty() => out.push(Event::Text(text)),
                        None => {}
                    }
                }
                Next::Event(GenerationEvent::Done { text, finish_reason, stop_sequence, usage }) => {
                    match parser.as_mut() {
                        Some(p) => {
                            let mut rest = p.push(&text);
                            rest.extend(p.finish());
                            mapper.map(rest, &mut out);
                        }
                        None if !text.is_empty() => out.push(Event::Text(text)),
                        None => {}
                    }
                    let finish = match (finish_reason, stop_sequence) {
                        (FinishReason::Length, _) => Finish::Length,
                        (FinishReason::Stop, _) if mapper.calls > 0 => Finish::ToolCalls,
                        (FinishReason::Stop, Some(s)) => Finish::StopSequence(s),
                        (FinishReason::Stop, None) => Finish::Stop,
                    };
                    let usage = Usage {
                        prompt_tokens: usage.prompt_tokens as u32,
                        completion_tokens: usage.completion_tokens as u32,
                        cached_tokens: usage.cached_tokens as u32,
                    };
                    out.push(Event::Done { finish, usage });
                    for e in out {
                        yield Ok(e);
                    }
                    return;
                }
                Next::Error(e) => {
                    yield Err(e);
                    return;
                }
            }
            for e in out {
                yield Ok(e);
            }
        }
    })
}
