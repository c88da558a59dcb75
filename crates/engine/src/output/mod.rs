//! Turning a model's generated text into answer text, reasoning and tool calls, as it streams.
//!
//! Why this exists: a model writes its reasoning and its tool calls as text in its own markup
//! (`<think>`, `<tool_call>`, `[TOOL_CALLS]`, harmony channels, ...), while the OpenAI and
//! Anthropic APIs hand them to clients as separate, structured fields, streamed as they are
//! generated. The server feeds the decoded text (special tokens included, in whatever pieces the
//! detokenizer yields) into an [`OutputParser`] and forwards its [`OutputEvent`]s. The parser
//! holds back only what could still be markup, never lets markup leak into the text, passes a
//! call it cannot read on as text instead of dropping it, and gives the same events whatever the
//! split of the text into pieces. It is pure Rust: no model, no tokenizer.
//!
//! One file per syntax ([`ToolFormat`]); the machinery they share (finding markers, following
//! JSON, call bookkeeping) lives in `scan`, `json` and this file.

mod gemma;
mod harmony;
mod hermes;
mod json;
mod llama3;
mod mistral;
mod qwen3_coder;
mod scan;
mod tagged;

use std::collections::HashMap;

use serde_json::{Map, Value};

use harmony::Harmony;
use scan::{Read, Stop};
use tagged::{Syntax, Tagged};

/// Which tool-call syntax a model writes (chosen from its chat template, overridable per model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToolFormat {
    /// Qwen2.5, Qwen3, Hermes: `<tool_call>\n{"name": .., "arguments": {..}}\n</tool_call>`,
    /// repeatable, text allowed between calls.
    Hermes,
    /// Qwen3-Coder: `<tool_call>\n<function=NAME>\n<parameter=P>\nVALUE\n</parameter>\n
    /// </function>\n</tool_call>`; values are converted by the tool's JSON-schema type as
    /// mlx-lm's `qwen3_coder` parser does.
    Qwen3Coder,
    /// Llama 3.1/3.2/3.3: bare JSON `{"name": .., "parameters": {..}}` (or `"arguments"`), several
    /// separated by `;`, optionally after `<|python_tag|>`.
    Llama3,
    /// Mistral: `[TOOL_CALLS]name[CALL_ID]id[ARGS]{json}` (repeatable; `[CALL_ID]` and `[ARGS]`
    /// optional) or `[TOOL_CALLS][{"name": .., "arguments": .., "id": ..}]`.
    Mistral,
    /// gpt-oss: harmony channels. `analysis` is reasoning, `final` is text, a `commentary` message
    /// to `functions.NAME` is a call whose body is the arguments JSON.
    Harmony,
    /// Gemma 4: `<|tool_call>call:NAME{key:<|"|>str<|"|>,n:1}<tool_call|>`.
    Gemma,
    /// FunctionGemma: `<start_function_call>call:NAME{key:<escape>str<escape>}<end_function_call>`,
    /// Gemma 4's value syntax with other delimiters (one parser reads both; a grammar that writes
    /// calls needs the model's own).
    FunctionGemma,
}

impl ToolFormat {
    /// A format by name: ours (`hermes`, `qwen3_coder`, `llama3`, `mistral`, `harmony`, `gemma`,
    /// `function_gemma`) or the parser module names mlx-lm's `tool_parser_type` uses
    /// (`json_tools`, `gemma4`).
    pub fn from_name(name: &str) -> Option<ToolFormat> {
        Some(match name {
            "hermes" | "json_tools" => ToolFormat::Hermes,
            "qwen3_coder" => ToolFormat::Qwen3Coder,
            "llama3" | "llama3_json" => ToolFormat::Llama3,
            "mistral" => ToolFormat::Mistral,
            "harmony" | "gpt_oss" => ToolFormat::Harmony,
            "gemma" | "gemma4" => ToolFormat::Gemma,
            "function_gemma" => ToolFormat::FunctionGemma,
            _ => return None,
        })
    }
}

/// How a model marks up its output: the tool-call syntax and the reasoning tags.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutputFormat {
    /// The tool-call syntax, or `None` when the model has no tool calling.
    pub tools: Option<ToolFormat>,
    /// The reasoning block's start and end tags, e.g. `("<think>", "</think>")`. Unused for
    /// harmony, whose reasoning is a channel.
    pub reasoning: Option<(String, String)>,
}

impl OutputFormat {
    /// From the chat template source (as mlx-lm's `tokenizer_utils._infer_tool_parser` and
    /// `_infer_thinking` do, plus Llama 3 (`<|python_tag|>`, or `"parameters"` in a Llama 3
    /// header template) and harmony (`<|channel|>`)).
    pub fn from_template(source: &str) -> OutputFormat {
        let has = |s: &str| source.contains(s);
        if has("<|channel|>") {
            return OutputFormat { tools: Some(ToolFormat::Harmony), reasoning: None };
        }
        let tools = if has("<|tool_call>") && has("<tool_call|>") {
            Some(ToolFormat::Gemma)
        } else if has("<start_function_call>") {
            Some(ToolFormat::FunctionGemma)
        } else if has("<tool_call>\\n<function=") || has("<tool_call>\n<function=") {
            Some(ToolFormat::Qwen3Coder)
        } else if has("[TOOL_CALLS]") {
            Some(ToolFormat::Mistral)
        } else if has("<tool_call>") {
            Some(ToolFormat::Hermes)
        } else if has("<|python_tag|>") || (has("<|start_header_id|>") && has("\"parameters\"")) {
            Some(ToolFormat::Llama3)
        } else {
            None
        };
        let reasoning = if has("<think>") && has("</think>") {
            Some(("<think>", "</think>"))
        } else if has("<|channel>") && has("<channel|>") {
            Some(("<|channel>thought", "<channel|>"))
        } else {
            None
        };
        OutputFormat { tools, reasoning: reasoning.map(|(s, e)| (s.to_string(), e.to_string())) }
    }

    /// Whether a rendered prompt leaves the model inside the reasoning block: the prompt ends,
    /// modulo whitespace, with the reasoning start tag (DeepSeek-R1 distills, Qwen3 thinking
    /// 2507, QwQ). Then the output has no start tag and the parser must start in reasoning.
    pub fn opens_reasoning(&self, rendered_prompt: &str) -> bool {
        self.reasoning.as_ref().is_some_and(|(start, _)| rendered_prompt.trim_end().ends_with(start.as_str()))
    }
}

/// What the parser found in the generated text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputEvent {
    /// A piece of the answer text.
    Text(String),
    /// A piece of the model's reasoning.
    Reasoning(String),
    /// A tool call begins; its name is known and was declared by the request.
    ToolCallStart {
        /// 0 for the first call of the response, then 1, 2, ...
        index: usize,
        /// The model's own id for the call (Mistral's `[CALL_ID]` or `"id"`), if it wrote one.
        id: Option<String>,
        /// The tool's name.
        name: String,
    },
    /// A piece of the call's arguments: all pieces of one call, concatenated, are its arguments
    /// JSON text (cut short if generation stopped inside the call).
    ToolCallArguments {
        /// The call the piece belongs to.
        index: usize,
        /// The piece of JSON text.
        delta: String,
    },
    /// The call is complete.
    ToolCallEnd {
        /// The call that ended.
        index: usize,
    },
}

/// Splits one response's generated text into [`OutputEvent`]s as it streams in.
pub struct OutputParser {
    /// Text received and not yet turned into events (it may still be the start of markup).
    buf: String,
    /// The declared tools, the events so far and the call bookkeeping.
    ctx: Ctx,
    /// The format's reader.
    machine: Machine,
}

/// The two ways of reading output: tags inside free text, or harmony's message framing.
enum Machine {
    Tagged(Tagged),
    Harmony(Harmony),
}

impl OutputParser {
    /// `tools`: the request's tool list in OpenAI shape (`[{"type": "function", "function":
    /// {"name", "description", "parameters"}}]`) or `None` (then no tool calls are parsed:
    /// everything is text or reasoning). `in_reasoning`: start inside the reasoning block (see
    /// [`OutputFormat::opens_reasoning`]).
    pub fn new(format: &OutputFormat, tools: Option<&Value>, in_reasoning: bool) -> OutputParser {
        let ctx = Ctx { tools: tools.and_then(declared_tools), out: Vec::new(), calls: 0, open: None };
        let machine = match format.tools {
            Some(ToolFormat::Harmony) => Machine::Harmony(Harmony::new(in_reasoning)),
            tools => {
                let syntax = tools.filter(|_| ctx.tools.is_some()).and_then(syntax);
                Machine::Tagged(Tagged::new(syntax, format.reasoning.clone(), in_reasoning))
            }
        };
        OutputParser { buf: String::new(), ctx, machine }
    }

    /// Feeds the next piece of generated text; returns the events it settles.
    pub fn push(&mut self, text: &str) -> Vec<OutputEvent> {
        self.buf.push_str(text);
        self.run(false)
    }

    /// End of generation: flushes everything held back and closes an unfinished call (with the
    /// arguments it got so far).
    pub fn finish(&mut self) -> Vec<OutputEvent> {
        self.run(true)
    }

    /// The number of tool calls started so far.
    pub fn tool_calls(&self) -> usize {
        self.ctx.calls
    }

    fn run(&mut self, fin: bool) -> Vec<OutputEvent> {
        let mut stalled = 0;
        while !self.buf.is_empty() {
            let step = match &mut self.machine {
                Machine::Tagged(m) => m.step(&self.buf, fin, &mut self.ctx),
                Machine::Harmony(m) => m.step(&self.buf, fin, &mut self.ctx),
            };
            match step {
                None => break,
                Some(0) => {
                    // A state change without input; a long run of them would be a bug.
                    stalled += 1;
                    if stalled > 64 {
                        debug_assert!(false, "output parser stalled on {:?}", self.buf);
                        break;
                    }
                }
                Some(n) => {
                    stalled = 0;
                    self.buf.drain(..n);
                }
            }
        }
        if fin {
            debug_assert!(self.buf.is_empty(), "output parser left {:?}", self.buf);
            let rest = std::mem::take(&mut self.buf);
            self.ctx.text(&rest);
            self.ctx.end_call();
        }
        std::mem::take(&mut self.ctx.out)
    }
}

/// The tag-based syntax of a tool format (harmony has its own machine).
fn syntax(format: ToolFormat) -> Option<Box<dyn Syntax>> {
    Some(match format {
        ToolFormat::Hermes => Box::new(hermes::Hermes),
        ToolFormat::Qwen3Coder => Box::new(qwen3_coder::Qwen3Coder),
        ToolFormat::Llama3 => Box::new(llama3::Llama3),
        ToolFormat::Mistral => Box::new(mistral::Mistral),
        ToolFormat::Gemma | ToolFormat::FunctionGemma => Box::new(gemma::Gemma),
        ToolFormat::Harmony => return None,
    })
}

/// Tool name → its parameters' JSON-schema `properties`, from an OpenAI (or Anthropic) tool list.
/// `None` when the list declares no tool: then nothing is parsed as a call.
fn declared_tools(tools: &Value) -> Option<HashMap<String, Map<String, Value>>> {
    let mut declared = HashMap::new();
    for tool in tools.as_array()? {
        let function = tool.get("function").unwrap_or(tool);
        let Some(name) = function.get("name").and_then(Value::as_str) else { continue };
        let properties = function
            .get("parameters")
            .or_else(|| function.get("input_schema"))
            .and_then(|schema| schema.get("properties"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        declared.insert(name.to_string(), properties);
    }
    (!declared.is_empty()).then_some(declared)
}

/// What every format shares while reading: the declared tools, the events found so far and the
/// call bookkeeping (indices, the open call).
struct Ctx {
    /// Declared tools (name → parameter schemas); `None`: calls are not parsed.
    tools: Option<HashMap<String, Map<String, Value>>>,
    /// Events not yet returned to the caller.
    out: Vec<OutputEvent>,
    /// Calls started so far (the next call's index).
    calls: usize,
    /// The index of the call being streamed, if any.
    open: Option<usize>,
}

impl Ctx {
    fn text(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        match self.out.last_mut() {
            Some(OutputEvent::Text(t)) => t.push_str(s),
            _ => self.out.push(OutputEvent::Text(s.to_string())),
        }
    }

    fn reasoning(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        match self.out.last_mut() {
            Some(OutputEvent::Reasoning(t)) => t.push_str(s),
            _ => self.out.push(OutputEvent::Reasoning(s.to_string())),
        }
    }

    /// Whether calls are parsed at all (the request declared tools).
    fn parsing_calls(&self) -> bool {
        self.tools.is_some()
    }

    /// Whether `name` is a declared tool.
    fn known(&self, name: &str) -> bool {
        self.tools.as_ref().is_some_and(|tools| tools.contains_key(name))
    }

    /// [`Ctx::known`] as a read: a call to an undeclared tool is not read as a call.
    fn check(&self, name: &str) -> Read<()> {
        if self.known(name) {
            Ok(())
        } else {
            Err(Stop::No)
        }
    }

    /// The declared parameter schemas of tool `name`.
    fn properties(&self, name: &str) -> Option<&Map<String, Value>> {
        self.tools.as_ref()?.get(name)
    }

    fn start_call(&mut self, name: String, id: Option<String>) {
        self.end_call();
        let index = self.calls;
        self.calls += 1;
        self.open = Some(index);
        self.out.push(OutputEvent::ToolCallStart { index, id, name });
    }

    fn args(&mut self, s: &str) {
        let Some(index) = self.open else { return };
        if s.is_empty() {
            return;
        }
        match self.out.last_mut() {
            Some(OutputEvent::ToolCallArguments { index: i, delta }) if *i == index => delta.push_str(s),
            _ => self.out.push(OutputEvent::ToolCallArguments { index, delta: s.to_string() }),
        }
    }

    fn end_call(&mut self) {
        if let Some(index) = self.open.take() {
            self.out.push(OutputEvent::ToolCallEnd { index });
        }
    }
}
