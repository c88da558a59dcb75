//! A provider's answer back into [`Event`]s: OpenAI chunks, Anthropic stream events, and whole
//! answers of either API as an [`Answer`].

use std::collections::BTreeMap;

use crate::anthropic::{Block, BlockDelta, ErrorBody, MessageResponse, StopReason, StreamEvent};
use crate::event::{Answer, Call, Event, Finish};
use crate::openai::{ChatChunk, ChatCompletion, FinishReason};
use crate::usage::Usage;

/// OpenAI chat chunks → events. Tool call pieces are keyed by their `index`; `Done` comes from
/// [`OpenAiDecoder::finish`] (at `[DONE]`), after the usage chunk.
#[derive(Debug, Default)]
pub struct OpenAiDecoder {
    /// Upstream call index → (our index, open).
    calls: BTreeMap<u32, (u32, bool)>,
    finish: Option<FinishReason>,
    usage: Usage,
}

impl OpenAiDecoder {
    /// A decoder for one answer.
    pub fn new() -> OpenAiDecoder {
        OpenAiDecoder::default()
    }

    fn end_calls(&mut self, out: &mut Vec<Event>) {
        for (index, open) in self.calls.values_mut() {
            if *open {
                *open = false;
                out.push(Event::ToolCallEnd { index: *index });
            }
        }
    }

    /// The events one chunk makes.
    pub fn on(&mut self, chunk: ChatChunk) -> Vec<Event> {
        let mut out = Vec::new();
        if let Some(u) = chunk.usage {
            self.usage = u.into();
        }
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else { return out };
        if let Some(lp) = choice.logprobs.filter(|lp| !lp.content.is_empty()) {
            out.push(Event::Logprobs(lp.content));
        }
        let delta = choice.delta;
        if let Some(t) = delta.reasoning_content.filter(|t| !t.is_empty()) {
            out.push(Event::Reasoning(t));
        }
        if let Some(t) = delta.content.filter(|t| !t.is_empty()) {
            out.push(Event::Text(t));
        }
        for piece in delta.tool_calls.unwrap_or_default() {
            let function = piece.function.unwrap_or_default();
            if !self.calls.contains_key(&piece.index) {
                self.end_calls(&mut out);
                let index = self.calls.len() as u32;
                self.calls.insert(piece.index, (index, true));
                let id = piece.id.unwrap_or_else(|| format!("call_{index}"));
                out.push(Event::ToolCallStart { index, id, name: function.name.unwrap_or_default() });
            }
            let (index, _) = self.calls[&piece.index];
            if let Some(a) = function.arguments.filter(|a| !a.is_empty()) {
                out.push(Event::ToolCallArguments { index, delta: a });
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish = Some(f);
            self.end_calls(&mut out);
        }
        out
    }

    /// The last event, at the end of the stream.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        self.end_calls(&mut out);
        let finish = called(Finish::from_openai(self.finish), !self.calls.is_empty());
        out.push(Event::Done { finish, usage: self.usage });
        out
    }
}

/// A turn that called tools ended to call them, whatever an upstream says (some servers answer
/// `stop`): an Anthropic client runs tools only on `tool_use`.
fn called(finish: Finish, calls: bool) -> Finish {
    match finish {
        Finish::Stop if calls => Finish::ToolCalls,
        other => other,
    }
}

/// Anthropic stream events → events; an upstream `error` event is an `Err` with its body.
#[derive(Debug, Default)]
pub struct AnthropicDecoder {
    /// Upstream block index → our call index, for tool_use blocks.
    tools: BTreeMap<u32, u32>,
    stop: Option<(Option<StopReason>, Option<String>)>,
    usage: Usage,
}

impl AnthropicDecoder {
    /// A decoder for one answer.
    pub fn new() -> AnthropicDecoder {
        AnthropicDecoder::default()
    }

    /// The events one upstream event makes (`message_stop` makes `Done`).
    pub fn on(&mut self, event: StreamEvent) -> Result<Vec<Event>, ErrorBody> {
        let mut out = Vec::new();
        match event {
            StreamEvent::MessageStart { message } => {
                self.usage.prompt_tokens = message.usage.input_tokens;
                self.usage.cached_tokens = message.usage.cache_read_input_tokens.unwrap_or(0);
            }
            StreamEvent::ContentBlockStart { index, content_block } => match content_block {
                Block::ToolUse { id, name, .. } => {
                    let ours = self.tools.len() as u32;
                    self.tools.insert(index, ours);
                    out.push(Event::ToolCallStart { index: ours, id, name });
                }
                Block::Text { text, .. } if !text.is_empty() => out.push(Event::Text(text)),
                Block::Thinking { thinking, .. } if !thinking.is_empty() => out.push(Event::Reasoning(thinking)),
                _ => {}
            },
            StreamEvent::ContentBlockDelta { index, delta } => match delta {
                BlockDelta::TextDelta { text } => out.push(Event::Text(text)),
                BlockDelta::ThinkingDelta { thinking } => out.push(Event::Reasoning(thinking)),
                BlockDelta::InputJsonDelta { partial_json } => {
                    if let Some(&i) = self.tools.get(&index) {
                        out.push(Event::ToolCallArguments { index: i, delta: partial_json });
                    }
                }
                BlockDelta::SignatureDelta { .. } => {}
            },
            StreamEvent::ContentBlockStop { index } => {
                if let Some(&i) = self.tools.get(&index) {
                    out.push(Event::ToolCallEnd { index: i });
                }
            }
            StreamEvent::MessageDelta { delta, usage } => {
                self.stop = Some((delta.stop_reason, delta.stop_sequence));
                self.usage.completion_tokens = usage.output_tokens;
                if usage.input_tokens > 0 {
                    self.usage.prompt_tokens = usage.input_tokens;
                }
            }
            StreamEvent::MessageStop => {
                let (reason, sequence) = self.stop.take().unwrap_or((None, None));
                let finish = called(Finish::from_anthropic(reason, sequence), !self.tools.is_empty());
                out.push(Event::Done { finish, usage: self.usage });
            }
            StreamEvent::Ping => {}
            StreamEvent::Error { error } => return Err(error),
        }
        Ok(out)
    }
}

impl From<ChatCompletion> for Answer {
    fn from(c: ChatCompletion) -> Answer {
        let mut answer = Answer { usage: c.usage.map(Usage::from).unwrap_or_default(), ..Answer::default() };
        if let Some(choice) = c.choices.into_iter().find(|ch| ch.index == 0) {
            answer.text = choice.message.content.unwrap_or_default();
            answer.reasoning = choice.message.reasoning_content.unwrap_or_default();
            answer.calls = choice
                .message
                .tool_calls
                .unwrap_or_default()
                .into_iter()
                .map(|t| Call { id: t.id, name: t.function.name, arguments: t.function.arguments })
                .collect();
            answer.logprobs = choice.logprobs.map(|l| l.content);
            answer.finish = Some(called(Finish::from_openai(choice.finish_reason), !answer.calls.is_empty()));
        }
        answer
    }
}

impl From<MessageResponse> for Answer {
    fn from(m: MessageResponse) -> Answer {
        let mut answer = Answer { usage: m.usage.into(), ..Answer::default() };
        for block in m.content {
            match block {
                Block::Text { text, .. } => answer.text.push_str(&text),
                Block::Thinking { thinking, .. } => answer.reasoning.push_str(&thinking),
                Block::ToolUse { id, name, input, .. } => {
                    answer.calls.push(Call { id, name, arguments: input.to_string() })
                }
                _ => {}
            }
        }
        answer.finish = Some(called(Finish::from_anthropic(m.stop_reason, m.stop_sequence), !answer.calls.is_empty()));
        answer
    }
}
