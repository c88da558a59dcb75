//! Real chat templates render byte-identical to transformers' `apply_chat_template`.
//!
//! Each model family's own template, kept as a file in tests/templates/ (see the README there
//! for where each comes from), renders a set of plain conversations (user only, system + user,
//! multi-turn, ending on an assistant turn) with and without `add_generation_prompt`, plus the
//! template keyword arguments that family reads (`enable_thinking` for Qwen3, `reasoning_effort`
//! and `model_identity` for gpt-oss, `date_string` for Llama 3.1), through our minijinja renderer
//! and through transformers (tests/reference/mlx_lm_reference.py `chat`). The two must agree
//! byte for byte, or both must refuse (a template's `raise_exception`). The tokenizer is a tiny
//! generated Llama folder: it supplies the special tokens both sides put in the context.
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

/// Renders `messages` both ways and fails with the first differing bytes if they disagree.
/// Returns the prompt, or `None` where both sides refused it.
fn check(
    file: &str,
    label: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    kwargs: &TemplateKwargs,
) -> Option<String> {
    let (m, tok) = model();
    let path = template_path(file);
    let source = std::fs::read_to_string(&path).expect("template file");
    let ours = ChatTemplate::new(&source)
        .and_then(|t| t.render_with_kwargs(tok, messages, None, add_generation_prompt, kwargs))
        .map_err(|e| e.to_string());

    let model_dir = m.path();
    let messages_json = serde_json::to_string(messages).unwrap();
    let kwargs_json = serde_json::to_string(kwargs).unwrap();
    let mut args = vec![
        "chat",
        "--model",
        model_dir.to_str().unwrap(),
        "--messages",
        &messages_json,
        "--template",
        path.to_str().unwrap(),
        "--kwargs",
        &kwargs_json,
    ];
    if !add_generation_prompt {
        args.push("--no-generation-prompt");
    }
    let theirs = reference(&args);
    let what = format!("{file} [{label}, add_generation_prompt={add_generation_prompt}, kwargs={kwargs_json}]");
    match (ours, theirs["text"].as_str()) {
        (Ok(ours), Some(theirs)) => {
            assert!(ours == theirs, "{what}: {}", first_difference(&ours, theirs));
            Some(ours)
        }
        (Err(_), None) => None, // both refuse (e.g. Gemma 2 has no system role)
        (ours, _) => panic!("{what}: ours {ours:?}, transformers {theirs}"),
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

/// Every conversation, with and without the generation prompt, under `kwargs`; returns the
/// labels both sides refused, so a test can tell that the rest were really compared.
fn check_all(file: &str, kwargs: &TemplateKwargs) -> Vec<String> {
    let mut refused = Vec::new();
    for (label, messages) in conversations() {
        for add_generation_prompt in [true, false] {
            if check(file, label, &messages, add_generation_prompt, kwargs).is_none() {
                refused.push(format!("{label}/{add_generation_prompt}"));
            }
        }
    }
    refused
}

/// [`check_all`] for a template that accepts every conversation.
fn check_all_accepted(file: &str, kwargs: &TemplateKwargs) {
    let refused = check_all(file, kwargs);
    assert!(refused.is_empty(), "{file}: both sides refused {refused:?}");
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
    let refused = check_all("google-gemma-2-2b-it.jinja", &TemplateKwargs::new());
    let expected = ["system+user/true", "system+user/false", "system+multi-turn/true", "system+multi-turn/false"];
    assert_eq!(refused, expected);
}

#[test]
fn gemma_3() {
    check_all_accepted("google-gemma-3-it.jinja", &TemplateKwargs::new());
}

#[test]
fn phi_3_5() {
    check_all_accepted("microsoft-Phi-3.5-mini-instruct.jinja", &TemplateKwargs::new());
}

#[test]
fn phi_4() {
    check_all_accepted("microsoft-phi-4.jinja", &TemplateKwargs::new());
}

#[test]
fn phi_4_mini() {
    check_all_accepted("microsoft-Phi-4-mini-instruct.jinja", &TemplateKwargs::new());
}

#[test]
fn mistral_nemo() {
    check_all_accepted("mistralai-Mistral-Nemo-Instruct-2407.jinja", &TemplateKwargs::new());
}

#[test]
fn mistral_small_3_2() {
    // Its default system prompt carries today's date (strftime_now).
    check_all_accepted("mistralai-Mistral-Small-3.2-24B-Instruct-2506.jinja", &TemplateKwargs::new());
}

#[test]
fn llama_3_1() {
    let file = "meta-llama-Llama-3.1-8B-Instruct.jinja";
    check_all_accepted(file, &TemplateKwargs::new());
    let date = kwargs(json!({"date_string": "01 Jan 2025"}));
    let prompt = check(file, "system+user", &conversations()[1].1, true, &date).expect("rendered");
    assert!(prompt.contains("Today Date: 01 Jan 2025"), "{prompt:?}");
}

#[test]
fn qwen2_5() {
    check_all_accepted("Qwen-Qwen2.5-7B-Instruct.jinja", &TemplateKwargs::new());
}

#[test]
fn qwen3_enable_thinking() {
    let file = "Qwen-Qwen3-0.6B.jinja";
    check_all_accepted(file, &TemplateKwargs::new());
    let history = with_thinking_history();
    check(file, "thinking history", &history, true, &TemplateKwargs::new());
    for enable in [true, false] {
        let kw = kwargs(json!({ "enable_thinking": enable }));
        for (label, messages) in [("user", &conversations()[0].1), ("thinking history", &history)] {
            let prompt = check(file, label, messages, true, &kw).expect("rendered");
            // The kwarg reached the template: thinking off pre-fills an empty think block.
            assert_eq!(prompt.ends_with("<think>\n\n</think>\n\n"), !enable, "{prompt:?}");
            check(file, label, messages, false, &kw);
        }
    }
}

#[test]
fn gpt_oss_harmony() {
    let file = "openai-gpt-oss-120b.jinja";
    check_all_accepted(file, &TemplateKwargs::new());
    let high = kwargs(json!({"reasoning_effort": "high"}));
    let identity = kwargs(json!({"reasoning_effort": "low", "model_identity": "You are a test model."}));
    for (kw, effort) in [(&high, "high"), (&identity, "low")] {
        let prompt = check(file, "system+multi-turn", &conversations()[3].1, true, kw).expect("rendered");
        assert!(prompt.contains(&format!("Reasoning: {effort}\n")), "{prompt:?}");
        check(file, "ends-on-assistant", &conversations()[4].1, false, kw);
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
