//! Events → Anthropic stream events, and an answer → a message.

use serde_json::{Map, Value};

use crate::anthropic::{Block, BlockDelta, MessageDelta, MessageResponse, Role, StreamEvent};
use crate::event::{Answer, Event};
use crate::usage::{AnthropicUsage, Usage};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    /// A tool_use block, for this call.
    Tool(u32),
}

/// A call that began while another call's block was open: Anthropic's blocks come one after
/// another, so it waits (with its argument pieces) until that one ends.
#[derive(Debug, Clone)]
struct Held {
    index: u32,
    id: String,
    name: String,
    arguments: String,
    ended: bool,
}

/// Encodes one answer as Anthropic stream events (blocks opened and closed as the kind of
/// output changes: thinking, text, tool_use) or one message. Calls whose pieces arrive
/// interleaved (an upstream streaming parallel calls) still come out one block each.
#[derive(Debug, Clone)]
pub struct MessagesEncoder {
    id: String,
    model: String,
    open: Option<Open>,
    blocks: u32,
    held: Vec<Held>,
}

impl MessagesEncoder {
    /// An encoder for message `id` of `model`.
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> MessagesEncoder {
        MessagesEncoder { id: id.into(), model: model.into(), open: None, blocks: 0, held: Vec::new() }
    }

    fn message(&self, content: Vec<Block>, usage: AnthropicUsage) -> MessageResponse {
        MessageResponse {
            id: self.id.clone(),
            kind: "message".into(),
            role: Role::Assistant,
            model: self.model.clone(),
            content,
            stop_reason: None,
            stop_sequence: None,
            usage,
        }
    }

    /// The first events: `message_start` (with the prompt's token count) and a ping.
    pub fn start(&self, prompt_tokens: u32) -> Vec<StreamEvent> {
        let usage = AnthropicUsage { input_tokens: prompt_tokens, ..AnthropicUsage::default() };
        vec![StreamEvent::MessageStart { message: self.message(Vec::new(), usage) }, StreamEvent::Ping]
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if self.open.take().is_some() {
            out.push(StreamEvent::ContentBlockStop { index: self.blocks - 1 });
        }
    }

    fn open(&mut self, kind: Open, block: Block, out: &mut Vec<StreamEvent>) {
        self.close(out);
        out.push(StreamEvent::ContentBlockStart { index: self.blocks, content_block: block });
        self.blocks += 1;
        self.open = Some(kind);
    }

    fn delta(&self, delta: BlockDelta) -> StreamEvent {
        StreamEvent::ContentBlockDelta { index: self.blocks - 1, delta }
    }

    /// Opens the held calls' blocks in order; a call still being written stays open.
    fn release(&mut self, out: &mut Vec<StreamEvent>) {
        while !self.held.is_empty() && !matches!(self.open, Some(Open::Tool(_))) {
            let call = self.held.remove(0);
            self.open(Open::Tool(call.index), Block::tool_use(call.id, call.name, Value::Object(Map::new())), out);
            if !call.arguments.is_empty() {
                out.push(self.delta(BlockDelta::InputJsonDelta { partial_json: call.arguments }));
            }
            if call.ended {
                self.close(out);
            }
        }
    }

    /// The events one event makes (possibly none).
    pub fn on(&mut self, event: Event) -> Vec<StreamEvent> {
        let mut out = Vec::new();
        match event {
            Event::Text(text) => {
                if self.open != Some(Open::Text) {
                    self.open(Open::Text, Block::text(String::new()), &mut out);
                }
                out.push(self.delta(BlockDelta::TextDelta { text }));
            }
            Event::Reasoning(thinking) => {
                if self.open != Some(Open::Thinking) {
                    let block = Block::Thinking { thinking: String::new(), signature: String::new() };
                    self.open(Open::Thinking, block, &mut out);
                }
                out.push(self.delta(BlockDelta::ThinkingDelta { thinking }));
            }
            Event::ToolCallStart { index, id, name } => {
                if matches!(self.open, Some(Open::Tool(_))) {
                    self.held.push(Held { index, id, name, arguments: String::new(), ended: false });
                } else {
                    self.open(Open::Tool(index), Block::tool_use(id, name, Value::Object(Map::new())), &mut out);
                }
            }
            Event::ToolCallArguments { index, delta } => {
                if self.open == Some(Open::Tool(index)) {
                    out.push(self.delta(BlockDelta::InputJsonDelta { partial_json: delta }));
                } else if let Some(call) = self.held.iter_mut().find(|c| c.index == index) {
                    call.arguments.push_str(&delta);
                }
            }
            Event::ToolCallEnd { index } => {
                if self.open == Some(Open::Tool(index)) {
                    self.close(&mut out);
                    self.release(&mut out);
                } else if let Some(call) = self.held.iter_mut().find(|c| c.index == index) {
                    call.ended = true;
                }
            }
            Event::Logprobs(_) => {}
            Event::Done { finish, usage } => {
                self.close(&mut out);
                for call in &mut self.held {
                    call.ended = true;
                }
                self.release(&mut out);
                if self.blocks == 0 {
                    self.open(Open::Text, Block::text(String::new()), &mut out);
                }
                self.close(&mut out);
                let (stop_reason, stop_sequence) = finish.anthropic();
                out.push(StreamEvent::MessageDelta {
                    delta: MessageDelta { stop_reason: Some(stop_reason), stop_sequence },
                    usage: usage.into(),
                });
                out.push(StreamEvent::MessageStop);
            }
        }
        out
    }

    /// A whole answer as one message. A call whose arguments are not a JSON object keeps its
    /// text under `input` as a string-valued `_raw` member rather than being dropped.
    pub fn message_of(&self, answer: Answer) -> MessageResponse {
        let mut content = Vec::new();
        if !answer.reasoning.is_empty() {
            content.push(Block::Thinking { thinking: answer.reasoning, signature: String::new() });
        }
        if !answer.text.is_empty() || answer.calls.is_empty() {
            content.push(Block::text(answer.text));
        }
        for call in answer.calls {
            content.push(Block::tool_use(call.id, call.name, arguments_object(&call.arguments)));
        }
        let usage: Usage = answer.usage;
        let mut message = self.message(content, usage.into());
        let (stop_reason, stop_sequence) = answer.finish.unwrap_or(crate::Finish::Stop).anthropic();
        message.stop_reason = Some(stop_reason);
        message.stop_sequence = stop_sequence;
        message
    }
}

/// A call's arguments text as the JSON object Anthropic's `input` is (empty text: `{}`).
pub fn arguments_object(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            let mut m = Map::new();
            m.insert("_raw".into(), Value::String(arguments.to_string()));
            Value::Object(m)
        }
    }
}
