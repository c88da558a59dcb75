//! Real chat templates render byte-identical to transformers' `apply_chat_template`.
//!
//! Each model family's own template, kept as a file in tests/templates/ (see the README there
//! for where each comes from), renders a set of plain conversations (user only, system + user,
//! multi-turn, ending on an assistant turn) with and without `add_generation_prompt`, plus the
//! template keyword arguments that family reads (`enable_thinking` for Qwen3, `reasoning_effort`
//! and `model_identity` for gpt-oss, `date_string` for Llama 3.1), through our minijinja renderer
//! and through transformers (tests/reference/mlx_lm_reference.py `chat-batch`: one Python process
//! per test renders all of its cases). The two must agree byte for byte, or both must refuse (a
//! template's `raise_exception`). The tokenizer is a tiny generated Llama folder: it supplies the
//! special tokens both sides put in the context.
//!
//! Agent conversations go through the same comparison: two function tools with nested JSON-schema
//! parameters, assistant turns with one and with two tool calls (`content` null and text), tool
//! results by `tool_call_id` and by `name`, reasoning in the history, a follow-up user turn, for
//! the families that take tools (Qwen2.5, Qwen3, Llama 3.1, Mistral, gpt-oss, Gemma 4); see
//! [`conversations::tool_conversations`]. A template refuses some of them (Llama 3.1 takes one
//! call per turn); each test names those, and both sides must refuse them.
//!
//! Real templates only exercise the Jinja their authors wrote for these inputs, so
//! [`probes::PROBES`] also compares one small template per Jinja feature they lean on.

mod common;
#[path = "templates/conversations.rs"]
mod conversations;
#[path = "templates/probes.rs"]
mod probes;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{reference, write_tiny, TinyModel};
use conversations::{conversations, msg, tool_conversations, tools};
use mlx_manager_engine::chat::{ChatTemplate, TemplateKwargs};
use mlx_manager_engine::tiny::{TinyFamily, TinySpec};
use mlx_manager_engine::tokenizer::Tokenizer;
use mlx_manager_engine::ChatMessage;
use serde_json::json;

/// One tokenizer folder for the whole binary.
fn model() -> &'static (TinyModel, Tokenizer) {
    static MODEL: OnceLock<(TinyModel, Tokenizer)> = OnceLock::new();
    MODEL.get_or_init(|| {
        let m = write_tiny(TinySpec::new(TinyFamily::Llama));
        let tok = Tokenizer::load(&m.path(), &[]).expect("tokenizer loads");
        (m, tok)
    })
}

fn template_path(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates").join(file)
}

/// One rendering to compare.
struct Case {
    label: String,
    /// A template file of its own instead of the batch's.
    template: Option<PathBuf>,
    messages: Vec<ChatMessage>,
    tools: Option<serde_json::Value>,
    add_generation_prompt: bool,
    kwargs: TemplateKwargs,
}

/// The renderings of one template, compared together: transformers' side of all of them runs in
/// one Python process (tests/reference/mlx_lm_reference.py `chat-batch`), since importing
/// transformers and loading the tokenizer cost far more than a rendering.
struct Batch {
    /// What the failures name: the template file, or the probes.
    name: String,
    /// The template of the cases that name none.
    path: PathBuf,
    cases: Vec<Case>,
}

/// The indices of [`Batch::add_all`]'s cases, each with its label (`conversation/add_generation_prompt`).
type Queued = Vec<(String, usize)>;

impl Batch {
    fn new(file: &str) -> Self {
        Batch { name: file.to_string(), path: template_path(file), cases: Vec::new() }
    }

    /// Queues `messages` under `kwargs`; returns its index in [`Batch::run`]'s result.
    fn add(
        &mut self,
        label: &str,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        kwargs: &TemplateKwargs,
    ) -> usize {
        self.cases.push(Case {
            label: label.to_string(),
            template: None,
            messages: messages.to_vec(),
            tools: None,
            add_generation_prompt,
            kwargs: kwargs.clone(),
        });
        self.cases.len() - 1
    }

    /// Queues every [`tool_conversations`] entry with [`tools`] and the generation prompt, under
    /// `kwargs`.
    fn add_tool_conversations(&mut self, kwargs: &TemplateKwargs) -> Queued {
        let mut queued = Vec::new();
        for (label, messages) in tool_conversations() {
            let index = self.add(label, &messages, true, kwargs);
            self.cases[index].tools = Some(tools());
            queued.push((label.to_string(), index));
        }
        queued
    }

    /// Queues every conversation, with and without the generation prompt, under `kwargs`.
    fn add_all(&mut self, kwargs: &TemplateKwargs) -> Queued {
        let mut queued = Vec::new();
        for (label, messages) in conversations() {
            for add_generation_prompt in [true, false] {
                let index = self.add(label, &messages, add_generation_prompt, kwargs);
                queued.push((format!("{label}/{add_generation_prompt}"), index));
            }
        }
        queued
    }

    /// Renders every case both ways and fails, naming each case and its first differing bytes,
    /// unless every pair agrees byte for byte or both sides refused. Returns each case's prompt
    /// in order, `None` where both sides refused it.
    fn run(&self) -> Vec<Option<String>> {
        let (m, tok) = model();
        let path = &self.path;
        let parse = |path: &Path| ChatTemplate::new(&std::fs::read_to_string(path).expect("template file"));
        let template = parse(path);

        let cases: Vec<_> = self
            .cases
            .iter()
            .map(|c| {
                json!({
                    "template": c.template.as_ref().unwrap_or(path),
                    "messages": c.messages,
                    "tools": c.tools,
                    "kwargs": c.kwargs,
                    "add_generation_prompt": c.add_generation_prompt,
                })
            })
            .collect();
        let cases_json = serde_json::to_string(&cases).unwrap();
        let model_dir = m.path();
        let args = [
            "chat-batch",
            "--model",
            model_dir.to_str().unwrap(),
            "--template",
            path.to_str().unwrap(),
            "--cases",
            &cases_json,
        ];
        let theirs = reference(&args);
        let theirs = theirs.as_array().expect("chat-batch prints a list");
        assert_eq!(theirs.len(), self.cases.len(), "chat-batch answers every case");

        let mut prompts = Vec::new();
        let mut failures = Vec::new();
        for (case, theirs) in self.cases.iter().zip(theirs) {
            let own = case.template.as_deref().map(parse);
            let ours = match own.as_ref().unwrap_or(&template) {
                Ok(t) => t
                    .render_with_kwargs(
                        tok,
                        &case.messages,
                        case.tools.as_ref(),
                        case.add_generation_prompt,
                        &case.kwargs,
                    )
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let what = format!(
                "{} [{}, add_generation_prompt={}, tools={}, kwargs={}]",
                self.name,
                case.label,
                case.add_generation_prompt,
                case.tools.is_some(),
                serde_json::to_string(&case.kwargs).unwrap()
            );
            prompts.push(match (ours, theirs["text"].as_str()) {
                (Ok(ours), Some(theirs)) => {
                    if ours != theirs {
                        failures.push(format!("{what}: {}", first_difference(&ours, theirs)));
                    }
                    Some(ours)
                }
                (Err(_), None) => None, // both refuse (e.g. Gemma 2 has no system role)
                (ours, _) => {
                    failures.push(format!("{what}: ours {ours:?}, transformers {theirs}"));
                    None
                }
            });
        }
        assert!(
            failures.is_empty(),
            "{} of {} renderings differ:\n{}",
            failures.len(),
            self.cases.len(),
            failures.join("\n")
        );
        prompts
    }
}

/// Where two renders part, with some bytes of context from each.
fn first_difference(ours: &str, theirs: &str) -> String {
    let at = ours.bytes().zip(theirs.bytes()).take_while(|(a, b)| a == b).count();
    let from = at.saturating_sub(40);
    let show = |s: &str| String::from_utf8_lossy(&s.as_bytes()[from.min(s.len())..(at + 40).min(s.len())]).into_owned();
    format!(
        "first difference at byte {at} (ours {} bytes, transformers {} bytes)\n  ours:   {:?}\n  theirs: {:?}",
        ours.len(),
        theirs.len(),
        show(ours),
        show(theirs)
    )
}

/// The labels of `queued` that both sides refused, so a test can tell that the rest were
/// really compared.
fn refused(queued: &Queued, prompts: &[Option<String>]) -> Vec<String> {
    queued.iter().filter(|(_, i)| prompts[*i].is_none()).map(|(label, _)| label.clone()).collect()
}

/// Asserts that both sides rendered every case of `queued`.
fn assert_all_accepted(file: &str, queued: &Queued, prompts: &[Option<String>]) {
    let refused = refused(queued, prompts);
    assert!(refused.is_empty(), "{file}: both sides refused {refused:?}");
}

/// Asserts that both sides refused exactly the `expected` agent conversations of `queued` and that
/// every other one declared both tools, i.e. the tools reached the template.
fn assert_agent_prompts(file: &str, queued: &Queued, prompts: &[Option<String>], expected: &[&str]) {
    let mut refused = Vec::new();
    for (label, index) in queued {
        match &prompts[*index] {
            Some(prompt) => {
                assert!(
                    prompt.contains("get_weather") && prompt.contains("search_docs"),
                    "{file} [{label}]: the tools are missing from {prompt:?}"
                );
                assert!(!expected.contains(&label.as_str()), "{file}: [{label}] was expected to be refused");
            }
            None => refused.push(label),
        }
    }
    for label in refused {
        assert!(expected.contains(&label.as_str()), "{file}: both sides refused [{label}]");
    }
}

/// The prompts rendered for the conversation `label` of `queued`.
fn prompts_for<'a>(label: &'a str, queued: &'a Queued, prompts: &'a [Option<String>]) -> impl Iterator<Item = &'a str> {
    queued.iter().filter(move |(l, _)| l == label).filter_map(|(_, index)| prompts[*index].as_deref())
}

/// Every conversation, with and without the generation prompt and no kwargs, for a template that
/// accepts every conversation.
fn check_all_accepted(file: &'static str) {
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    assert_all_accepted(file, &all, &batch.run());
}

fn kwargs(value: serde_json::Value) -> TemplateKwargs {
    value.as_object().expect("a JSON object").clone()
}

/// A Qwen3-style history: the assistant's earlier turn carries its reasoning inline.
fn with_thinking_history() -> Vec<ChatMessage> {
    vec![
        msg("user", "What is 3*4?"),
        msg("assistant", "<think>\n3 times 4 is 12.\n</think>\n\n12"),
        msg("user", "And 5*6?"),
    ]
}

#[test]
fn gemma_2() {
    // Gemma 2's template raises on a system message; both sides must refuse exactly those.
    let mut batch = Batch::new("google-gemma-2-2b-it.jinja");
    let all = batch.add_all(&TemplateKwargs::new());
    let expected = ["system+user/true", "system+user/false", "system+multi-turn/true", "system+multi-turn/false"];
    assert_eq!(refused(&all, &batch.run()), expected);
}

#[test]
fn gemma_3() {
    check_all_accepted("google-gemma-3-it.jinja");
}

#[test]
fn phi_3_5() {
    check_all_accepted("microsoft-Phi-3.5-mini-instruct.jinja");
}

#[test]
fn phi_4() {
    check_all_accepted("microsoft-phi-4.jinja");
}

#[test]
fn phi_4_mini() {
    check_all_accepted("microsoft-Phi-4-mini-instruct.jinja");
}

#[test]
fn mistral_nemo() {
    let file = "mistralai-Mistral-Nemo-Instruct-2407.jinja";
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    let agent = batch.add_tool_conversations(&TemplateKwargs::new());
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    assert_agent_prompts(file, &agent, &prompts, &[]);
}

#[test]
fn mistral_small_3_2() {
    // Its default system prompt carries today's date (strftime_now).
    let file = "mistralai-Mistral-Small-3.2-24B-Instruct-2506.jinja";
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    let agent = batch.add_tool_conversations(&TemplateKwargs::new());
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    assert_agent_prompts(file, &agent, &prompts, &[]);
}

#[test]
fn llama_3_1() {
    let file = "meta-llama-Llama-3.1-8B-Instruct.jinja";
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    let date = kwargs(json!({"date_string": "01 Jan 2025"}));
    let dated = batch.add("system+user", &conversations()[1].1, true, &date);
    // Tools go into the first user message by default, or into the system message.
    let agent = batch.add_tool_conversations(&TemplateKwargs::new());
    let in_system = batch.add_tool_conversations(&kwargs(json!({"tools_in_user_message": false})));
    let builtin = kwargs(json!({"builtin_tools": ["brave_search", "wolfram_alpha"]}));
    let with_builtin = batch.add_tool_conversations(&builtin);
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    for queued in [&agent, &in_system, &with_builtin] {
        // "This model only supports single tool-calls at once!"
        assert_agent_prompts(file, queued, &prompts, &["tools/two-calls"]);
    }
    for prompt in with_builtin.iter().filter_map(|(_, index)| prompts[*index].as_deref()) {
        assert!(prompt.contains("Tools: brave_search, wolfram_alpha"), "{prompt:?}");
    }
    let prompt = prompts[dated].as_deref().expect("rendered");
    assert!(prompt.contains("Today Date: 01 Jan 2025"), "{prompt:?}");
}

#[test]
fn qwen2_5() {
    let file = "Qwen-Qwen2.5-7B-Instruct.jinja";
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    let agent = batch.add_tool_conversations(&TemplateKwargs::new());
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    assert_agent_prompts(file, &agent, &prompts, &[]);
}

#[test]
fn qwen3_enable_thinking() {
    let file = "Qwen-Qwen3-0.6B.jinja";
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    let history = with_thinking_history();
    batch.add("thinking history", &history, true, &TemplateKwargs::new());
    let mut with_prompt = Vec::new();
    for enable in [true, false] {
        let kw = kwargs(json!({ "enable_thinking": enable }));
        for (label, messages) in [("user", &conversations()[0].1), ("thinking history", &history)] {
            with_prompt.push((enable, batch.add(label, messages, true, &kw)));
            batch.add(label, messages, false, &kw);
        }
    }
    let mut agent = Vec::new();
    for kw in
        [TemplateKwargs::new(), kwargs(json!({"enable_thinking": true})), kwargs(json!({"enable_thinking": false}))]
    {
        agent.extend(batch.add_tool_conversations(&kw));
    }
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    // With `content` dropped, the template's `content.lstrip(...)` fails on an undefined value.
    assert_agent_prompts(file, &agent, &prompts, &["tools/one-call"]);
    // The reasoning of the tool-call turn after the last user message is replayed.
    for prompt in prompts_for("tools/one-call+empty-content", &agent, &prompts) {
        assert!(prompt.contains("<think>\nThe user wants the weather"), "{prompt:?}");
    }
    for (enable, index) in with_prompt {
        let prompt = prompts[index].as_deref().expect("rendered");
        // The kwarg reached the template: thinking off pre-fills an empty think block.
        assert_eq!(prompt.ends_with("<think>\n\n</think>\n\n"), !enable, "{prompt:?}");
    }
}

#[test]
fn gpt_oss_harmony() {
    let file = "openai-gpt-oss-120b.jinja";
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    let high = kwargs(json!({"reasoning_effort": "high"}));
    let identity = kwargs(json!({"reasoning_effort": "low", "model_identity": "You are a test model."}));
    let mut efforts = Vec::new();
    for (kw, effort) in [(&high, "high"), (&identity, "low")] {
        efforts.push((effort, batch.add("system+multi-turn", &conversations()[3].1, true, kw)));
        batch.add("ends-on-assistant", &conversations()[4].1, false, kw);
    }
    let mut agent = batch.add_tool_conversations(&high);
    agent.extend(batch.add_tool_conversations(&kwargs(json!({"builtin_tools": ["browser", "python"]}))));
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    assert_agent_prompts(file, &agent, &prompts, &[]);
    // gpt-oss reads `thinking`, which transformers fills from `reasoning_content`.
    for prompt in prompts_for("tools/one-call", &agent, &prompts) {
        assert!(prompt.contains("<|channel|>analysis<|message|>The user wants the weather"), "{prompt:?}");
    }
    for (effort, index) in efforts {
        let prompt = prompts[index].as_deref().expect("rendered");
        assert!(prompt.contains(&format!("Reasoning: {effort}\n")), "{prompt:?}");
    }
}

#[test]
fn gemma_4() {
    let file = "google-gemma-4-31B-it.jinja";
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    let mut agent = Vec::new();
    for kw in [TemplateKwargs::new(), kwargs(json!({"enable_thinking": true}))] {
        agent.extend(batch.add_tool_conversations(&kw));
    }
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    // Its template raises on arguments that are a string rather than an object.
    assert_agent_prompts(file, &agent, &prompts, &["tools/raw-arguments"]);
}

/// Jinja features one at a time ([`probes::PROBES`]), each its own template.
#[test]
fn jinja_probes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut batch = Batch { name: "jinja probes".into(), path: PathBuf::new(), cases: Vec::new() };
    for (name, source) in probes::PROBES {
        let path = dir.path().join(format!("{name}.jinja"));
        std::fs::write(&path, source).expect("probe written");
        let index = batch.add(name, &[msg("user", "Hi")], true, &TemplateKwargs::new());
        batch.cases[index].tools = Some(tools());
        batch.cases[index].template = Some(path.clone());
        batch.path = path; // every case names its own; the batch's default must merely exist
    }
    let prompts = batch.run();
    let refused: Vec<_> =
        probes::PROBES.iter().zip(&prompts).filter(|(_, p)| p.is_none()).map(|((n, _), _)| *n).collect();
    assert_eq!(refused, ["raise", "undefined-attr", "add-none", "in-none", "int-plus-str"]);
}

/// Template kwargs may not replace what the request itself sets (transformers: TypeError).
#[test]
fn kwargs_cannot_replace_messages() {
    let (_, tok) = model();
    let t = ChatTemplate::new("{{ messages | length }}").unwrap();
    let bad = kwargs(json!({"messages": []}));
    assert!(t.render_with_kwargs(tok, &[msg("user", "hi")], None, true, &bad).is_err());
    let ok = kwargs(json!({"bos_token": "<B>"}));
    let t = ChatTemplate::new("{{ bos_token }}{{ messages | length }}").unwrap();
    assert_eq!(t.render_with_kwargs(tok, &[msg("user", "hi")], None, true, &ok).unwrap(), "<B>1");
}
