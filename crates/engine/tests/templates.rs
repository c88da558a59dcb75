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
//! Tool definitions and tool-call history are not covered here.

mod common;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use common::{reference, write_tiny, TinyModel};
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

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

/// Plain conversations every template renders.
fn conversations() -> Vec<(&'static str, Vec<ChatMessage>)> {
    vec![
        ("user", vec![msg("user", "Hello!")]),
        ("system+user", vec![msg("system", "You are terse."), msg("user", "  What is 2+2?  ")]),
        (
            "multi-turn",
            vec![
                msg("user", "Write a haiku about the sea."),
                msg("assistant", "Waves fold into foam,\nsalt wind carries gull voices."),
                msg("user", "Now one in French — avec des accents: é, à, ç."),
            ],
        ),
        (
            "system+multi-turn",
            vec![
                msg("system", "Answer in one line.\nBe kind."),
                msg("user", "Hi"),
                msg("assistant", "Hello! How can I help?"),
                msg("user", "Name a colour."),
            ],
        ),
        ("ends-on-assistant", vec![msg("user", "Say yes."), msg("assistant", "Yes.")]),
    ]
}

/// One rendering to compare.
struct Case {
    label: String,
    messages: Vec<ChatMessage>,
    add_generation_prompt: bool,
    kwargs: TemplateKwargs,
}

/// The renderings of one template, compared together: transformers' side of all of them runs in
/// one Python process (tests/reference/mlx_lm_reference.py `chat-batch`), since importing
/// transformers and loading the tokenizer cost far more than a rendering.
struct Batch {
    file: &'static str,
    cases: Vec<Case>,
}

/// The indices of [`Batch::add_all`]'s cases, each with its label (`conversation/add_generation_prompt`).
type Queued = Vec<(String, usize)>;

impl Batch {
    fn new(file: &'static str) -> Self {
        Batch { file, cases: Vec::new() }
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
            messages: messages.to_vec(),
            add_generation_prompt,
            kwargs: kwargs.clone(),
        });
        self.cases.len() - 1
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
        let path = template_path(self.file);
        let source = std::fs::read_to_string(&path).expect("template file");
        let template = ChatTemplate::new(&source);

        let cases: Vec<_> = self
            .cases
            .iter()
            .map(|c| json!({"messages": c.messages, "kwargs": c.kwargs, "add_generation_prompt": c.add_generation_prompt}))
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
            let ours = match &template {
                Ok(t) => t
                    .render_with_kwargs(tok, &case.messages, None, case.add_generation_prompt, &case.kwargs)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            let what = format!(
                "{} [{}, add_generation_prompt={}, kwargs={}]",
                self.file,
                case.label,
                case.add_generation_prompt,
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
    check_all_accepted("mistralai-Mistral-Nemo-Instruct-2407.jinja");
}

#[test]
fn mistral_small_3_2() {
    // Its default system prompt carries today's date (strftime_now).
    check_all_accepted("mistralai-Mistral-Small-3.2-24B-Instruct-2506.jinja");
}

#[test]
fn llama_3_1() {
    let file = "meta-llama-Llama-3.1-8B-Instruct.jinja";
    let mut batch = Batch::new(file);
    let all = batch.add_all(&TemplateKwargs::new());
    let date = kwargs(json!({"date_string": "01 Jan 2025"}));
    let dated = batch.add("system+user", &conversations()[1].1, true, &date);
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    let prompt = prompts[dated].as_deref().expect("rendered");
    assert!(prompt.contains("Today Date: 01 Jan 2025"), "{prompt:?}");
}

#[test]
fn qwen2_5() {
    check_all_accepted("Qwen-Qwen2.5-7B-Instruct.jinja");
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
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
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
    let prompts = batch.run();
    assert_all_accepted(file, &all, &prompts);
    for (effort, index) in efforts {
        let prompt = prompts[index].as_deref().expect("rendered");
        assert!(prompt.contains(&format!("Reasoning: {effort}\n")), "{prompt:?}");
    }
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
