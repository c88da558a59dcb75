//! What a backend produces, independent of the API that asked: the local engine's parsed output
//! and a provider's decoded answer are both a sequence of [`Event`]s, and each API has one
//! encoder from events to its stream or its whole answer ([`crate::encode`]).

use crate::anthropic::StopReason;
use crate::openai::{FinishReason, TokenLogprob};
use crate::usage::Usage;

/// Why an answer ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finish {
    /// The model ended its turn.
    Stop,
    /// A stop string ended it.
    StopSequence(String),
    /// The token limit.
    Length,
    /// The model called tools.
    ToolCalls,
    /// Refused or filtered.
    Refusal,
}

impl Finish {
    /// OpenAI's `finish_reason`.
    pub fn openai(&self) -> FinishReason {
        match self {
            Finish::Stop | Finish::StopSequence(_) => FinishReason::Stop,
            Finish::Length => FinishReason::Length,
            Finish::ToolCalls => FinishReason::ToolCalls,
            Finish::Refusal => FinishReason::ContentFilter,
        }
    }

    /// Anthropic's `stop_reason` and `stop_sequence`.
    pub fn anthropic(&self) -> (StopReason, Option<String>) {
        match self {
            Finish::Stop => (StopReason::EndTurn, None),
            Finish::StopSequence(s) => (StopReason::StopSequence, Some(s.clone())),
            Finish::Length => (StopReason::MaxTokens, None),
            Finish::ToolCalls => (StopReason::ToolUse, None),
            Finish::Refusal => (StopReason::Refusal, None),
        }
    }

    /// From OpenAI's `finish_reason`.
    pub fn from_openai(reason: Option<FinishReason>) -> Finish {
        match reason {
            Some(FinishReason::Length) => Finish::Length,
            Some(FinishReason::ToolCalls) | Some(FinishReason::FunctionCall) => Finish::ToolCalls,
            Some(FinishReason::ContentFilter) => Finish::Refusal,
            Some(FinishReason::Stop) | None => Finish::Stop,
        }
    }

    /// From Anthropic's `stop_reason` and `stop_sequence`.
    pub fn from_anthropic(reason: Option<StopReason>, sequence: Option<String>) -> Finish {
        match (reason, sequence) {
            (Some(StopReason::MaxTokens), _) => Finish::Length,
            (Some(StopReason::ToolUse), _) => Finish::ToolCalls,
            (Some(StopReason::Refusal), _) => Finish::Refusal,
            (Some(StopReason::StopSequence), Some(s)) => Finish::StopSequence(s),
            _ => Finish::Stop,
        }
    }
}

/// One step of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Answer text.
    Text(String),
    /// Reasoning text.
    Reasoning(String),
    /// Logprobs of the tokens whose text comes next.
    Logprobs(Vec<TokenLogprob>),
    /// A tool call begins (calls are numbered from 0 in order).
    ToolCallStart {
        /// Which call.
        index: u32,
        /// Its id.
        id: String,
        /// The tool.
        name: String,
    },
    /// A piece of a call's arguments JSON.
    ToolCallArguments {
        /// Which call.
        index: u32,
        /// The piece.
        delta: String,
    },
    /// A call is complete.
    ToolCallEnd {
        /// Which call.
        index: u32,
    },
    /// The end (always last).
    Done {
        /// Why.
        finish: Finish,
        /// Counts.
        usage: Usage,
    },
}

/// A tool call of a whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// Its id.
    pub id: String,
    /// The tool.
    pub name: String,
    /// The arguments JSON text.
    pub arguments: String,
}

/// A whole answer, gathered from events or decoded from an API's whole answer.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Answer {
    /// The text.
    pub text: String,
    /// The reasoning.
    pub reasoning: String,
    /// Tool calls.
    pub calls: Vec<Call>,
    /// Logprobs, when asked for.
    pub logprobs: Option<Vec<TokenLogprob>>,
    /// Why it ended (None until `Done`).
    pub finish: Option<Finish>,
    /// Counts.
    pub usage: Usage,
}

impl Answer {
    /// Adds one event.
    pub fn push(&mut self, event: Event) {
        match event {
            Event::Text(t) => self.text.push_str(&t),
            Event::Reasoning(t) => self.reasoning.push_str(&t),
            Event::Logprobs(lp) => self.logprobs.get_or_insert_with(Vec::new).extend(lp),
            Event::ToolCallStart { id, name, .. } => self.calls.push(Call { id, name, arguments: String::new() }),
            Event::ToolCallArguments { index, delta } => {
                if let Some(c) = self.calls.get_mut(index as usize) {
                    c.arguments.push_str(&delta);
                }
            }
            Event::ToolCallEnd { .. } => {}
            Event::Done { finish, usage } => {
                self.finish = Some(finish);
                self.usage = usage;
            }
        }
    }

    /// The events that make this answer (what a stream of it would have said).
    pub fn events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        if !self.reasoning.is_empty() {
            out.push(Event::Reasoning(self.reasoning.clone()));
        }
        if let Some(lp) = &self.logprobs {
            out.push(Event::Logprobs(lp.clone()));
        }
        if !self.text.is_empty() {
            out.push(Event::Text(self.text.clone()));
        }
        for (i, c) in self.calls.iter().enumerate() {
            let index = i as u32;
            out.push(Event::ToolCallStart { index, id: c.id.clone(), name: c.name.clone() });
            out.push(Event::ToolCallArguments { index, delta: c.arguments.clone() });
            out.push(Event::ToolCallEnd { index });
        }
        out.push(Event::Done { finish: self.finish.clone().unwrap_or(Finish::Stop), usage: self.usage });
        out
    }
}
