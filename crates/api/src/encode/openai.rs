//! Events → OpenAI chat completion chunks, and an answer → a chat completion.

use crate::event::{Answer, Event};
use crate::openai::{
    AssistantMessage, ChatChunk, ChatCompletion, Choice, ChoiceLogprobs, ChunkChoice, Delta, FunctionDelta,
    TokenLogprob, ToolCall, ToolCallDelta,
};

/// Encodes one answer as chat completion chunks (streamed) or one chat completion.
#[derive(Debug, Clone)]
pub struct ChatEncoder {
    id: String,
    created: i64,
    model: String,
    include_usage: bool,
    logprobs: Option<Vec<TokenLogprob>>,
}

impl ChatEncoder {
    /// An encoder for answer `id` of `model`; `include_usage` sends the usage chunk at the end.
    pub fn new(id: impl Into<String>, created: i64, model: impl Into<String>, include_usage: bool) -> ChatEncoder {
        ChatEncoder { id: id.into(), created, model: model.into(), include_usage, logprobs: None }
    }

    fn chunk(&self, delta: Delta, logprobs: Option<ChoiceLogprobs>, finish: Option<&Event>) -> ChatChunk {
        let finish_reason = match finish {
            Some(Event::Done { finish, .. }) => Some(finish.openai()),
            _ => None,
        };
        ChatChunk {
            id: self.id.clone(),
            object: "chat.completion.chunk".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![ChunkChoice { index: 0, delta, logprobs, finish_reason }],
            usage: None,
        }
    }

    /// The first chunk: the role.
    pub fn start(&self) -> ChatChunk {
        self.chunk(
            Delta { role: Some("assistant".into()), content: Some(String::new()), ..Delta::default() },
            None,
            None,
        )
    }

    /// The chunks one event makes (possibly none).
    pub fn on(&mut self, event: Event) -> Vec<ChatChunk> {
        let delta = match &event {
            Event::Logprobs(lp) => {
                self.logprobs.get_or_insert_with(Vec::new).extend(lp.iter().cloned());
                return Vec::new();
            }
            Event::Text(t) => Delta { content: Some(t.clone()), ..Delta::default() },
            Event::Reasoning(t) => Delta { reasoning_content: Some(t.clone()), ..Delta::default() },
            Event::ToolCallStart { index, id, name } => Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: *index,
                    id: Some(id.clone()),
                    kind: Some("function".into()),
                    function: Some(FunctionDelta { name: Some(name.clone()), arguments: Some(String::new()) }),
                }]),
                ..Delta::default()
            },
            Event::ToolCallArguments { index, delta } => Delta {
                tool_calls: Some(vec![ToolCallDelta {
                    index: *index,
                    function: Some(FunctionDelta { name: None, arguments: Some(delta.clone()) }),
                    ..ToolCallDelta::default()
                }]),
                ..Delta::default()
            },
            Event::ToolCallEnd { .. } => return Vec::new(),
            Event::Done { usage, .. } => {
                let mut out = Vec::new();
                if let Some(lp) = self.logprobs.take().filter(|lp| !lp.is_empty()) {
                    out.push(self.chunk(Delta::default(), Some(ChoiceLogprobs { content: lp }), None));
                }
                out.push(self.chunk(Delta::default(), None, Some(&event)));
                if self.include_usage {
                    let mut last = self.chunk(Delta::default(), None, None);
                    last.choices.clear();
                    last.usage = Some((*usage).into());
                    out.push(last);
                }
                return out;
            }
        };
        let logprobs = self.logprobs.take().map(|content| ChoiceLogprobs { content });
        vec![self.chunk(delta, logprobs, None)]
    }

    /// A whole answer as one chat completion.
    pub fn completion(&self, answer: Answer) -> ChatCompletion {
        let tool_calls: Vec<ToolCall> =
            answer.calls.into_iter().map(|c| ToolCall::new(c.id, c.name, c.arguments)).collect();
        let content = if answer.text.is_empty() && !tool_calls.is_empty() { None } else { Some(answer.text) };
        ChatCompletion {
            id: self.id.clone(),
            object: "chat.completion".into(),
            created: self.created,
            model: self.model.clone(),
            choices: vec![Choice {
                index: 0,
                message: AssistantMessage {
                    role: "assistant".into(),
                    content,
                    reasoning_content: Some(answer.reasoning).filter(|r| !r.is_empty()),
                    tool_calls: Some(tool_calls).filter(|c| !c.is_empty()),
                },
                logprobs: answer.logprobs.map(|content| ChoiceLogprobs { content }),
                finish_reason: Some(answer.finish.unwrap_or(crate::Finish::Stop).openai()),
            }],
            usage: Some(answer.usage.into()),
        }
    }
}
