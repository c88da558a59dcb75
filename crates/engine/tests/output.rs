//! The output parser (`mlx_manager_engine::output`) on real model output.
//!
//! Each fixture in tests/output/ is a model's raw output (`NAME.txt`, special tokens included,
//! the stop token excluded; tests/output/README.md says where each comes from) and what it must
//! come to (`NAME.expected.json`: the format, the declared tools, the text, the reasoning and the
//! calls with their arguments as JSON values). Fed whole and fed in any split, the merged events
//! must be the expected ones. Then the rules users notice: unreadable calls stay text, calls
//! inside reasoning are not calls, a call cut by the end of generation is closed, the format is
//! recognised from the real chat templates in tests/templates/, and no input makes it panic.

use std::path::{Path, PathBuf};

use mlx_manager_engine::output::{OutputEvent, OutputFormat, OutputParser, ToolFormat};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

/// A response's events, merged: what a client ends up with.
#[derive(Debug, Clone, Default, PartialEq)]
struct Merged {
    text: String,
    reasoning: String,
    calls: Vec<Call>,
}

#[derive(Debug, Clone, PartialEq)]
struct Call {
    id: Option<String>,
    name: String,
    /// The argument pieces, concatenated.
    arguments: String,
}

/// Merges events, checking that each call is started, streamed and ended in order.
fn merge(events: &[OutputEvent]) -> Merged {
    let mut merged = Merged::default();
    let mut open = None;
    for event in events {
        match event {
            OutputEvent::Text(t) => merged.text.push_str(t),
            OutputEvent::Reasoning(t) => merged.reasoning.push_str(t),
            OutputEvent::ToolCallStart { index, id, name } => {
                assert_eq!(open, None, "call {index} starts inside another: {events:?}");
                assert_eq!(*index, merged.calls.len(), "calls are numbered in order: {events:?}");
                merged.calls.push(Call { id: id.clone(), name: name.clone(), arguments: String::new() });
                open = Some(*index);
            }
            OutputEvent::ToolCallArguments { index, delta } => {
                assert_eq!(open, Some(*index), "arguments outside their call: {events:?}");
                merged.calls[*index].arguments.push_str(delta);
            }
            OutputEvent::ToolCallEnd { index } => {
                assert_eq!(open, Some(*index), "end of a call that is not open: {events:?}");
                open = None;
            }
        }
    }
    assert_eq!(open, None, "a call was left open: {events:?}");
    merged
}

/// Feeds `output` cut at the byte offsets `cuts` (moved back to char boundaries).
fn feed(parser: &mut OutputParser, output: &str, cuts: &[usize]) -> Vec<OutputEvent> {
    let mut cuts: Vec<usize> = cuts
        .iter()
        .map(|&c| (0..=c.min(output.len())).rev().find(|&i| output.is_char_boundary(i)).unwrap_or(0))
        .collect();
    cuts.sort_unstable();
    let mut events = Vec::new();
    let mut from = 0;
    for cut in cuts.into_iter().chain([output.len()]) {
        events.extend(parser.push(&output[from..cut]));
        from = cut;
    }
    events.extend(parser.finish());
    events
}

/// A declared tool list: names become bare OpenAI function tools.
fn tools(names: &[&str]) -> Value {
    Value::Array(names.iter().map(|n| json!({"type": "function", "function": {"name": n}})).collect())
}

fn format(tools: ToolFormat, think: bool) -> OutputFormat {
    let reasoning = think.then(|| ("<think>".to_string(), "</think>".to_string()));
    OutputFormat { tools: Some(tools), reasoning }
}

fn parse(format: &OutputFormat, tools: Option<&Value>, in_reasoning: bool, output: &str) -> Merged {
    merge(&feed(&mut OutputParser::new(format, tools, in_reasoning), output, &[]))
}

/// One fixture: the raw output and its expectation.
struct Fixture {
    name: String,
    output: String,
    format: OutputFormat,
    tools: Value,
    in_reasoning: bool,
    expected: Value,
}

impl Fixture {
    fn parser(&self) -> OutputParser {
        OutputParser::new(&self.format, Some(&self.tools), self.in_reasoning)
    }

    fn check(&self, got: &Merged, how: &str) {
        let e = &self.expected;
        let name = &self.name;
        assert_eq!(got.text, e["text"].as_str().unwrap(), "{name} ({how}): text");
        assert_eq!(got.reasoning, e["reasoning"].as_str().unwrap(), "{name} ({how}): reasoning");
        let calls = e["calls"].as_array().unwrap();
        assert_eq!(got.calls.len(), calls.len(), "{name} ({how}): calls {:?}", got.calls);
        for (got, want) in got.calls.iter().zip(calls) {
            assert_eq!(got.name, want["name"].as_str().unwrap(), "{name} ({how}): call name");
            assert_eq!(got.id.as_deref(), want["id"].as_str(), "{name} ({how}): call id");
            let arguments: Value = serde_json::from_str(&got.arguments)
                .unwrap_or_else(|e| panic!("{name} ({how}): arguments {:?} are not JSON: {e}", got.arguments));
            assert_eq!(arguments, want["arguments"], "{name} ({how}): arguments of {}", got.name);
        }
    }
}

fn fixtures() -> Vec<Fixture> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/output");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/output exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    paths.sort();
    let fixtures: Vec<Fixture> = paths
        .iter()
        .map(|path| {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            let output = std::fs::read_to_string(path).expect("fixture reads");
            let expected: Value = serde_json::from_str(
                &std::fs::read_to_string(dir.join(format!("{name}.expected.json"))).expect("expectation reads"),
            )
            .expect("expectation is JSON");
            let format = OutputFormat {
                tools: Some(serde_json::from_value(expected["format"].clone()).expect("a tool format")),
                reasoning: serde_json::from_value(expected["reasoning_tags"].clone()).expect("reasoning tags"),
            };
            Fixture {
                name,
                output,
                format,
                tools: expected["tools"].clone(),
                in_reasoning: expected["in_reasoning"].as_bool().unwrap_or(false),
                expected,
            }
        })
        .collect();
    assert!(fixtures.len() >= 12, "fixtures missing from {}", dir.display());
    fixtures
}

#[test]
fn every_format_has_fixtures() {
    let all = fixtures();
    for format in [
        ToolFormat::Hermes,
        ToolFormat::Qwen3Coder,
        ToolFormat::Llama3,
        ToolFormat::Mistral,
        ToolFormat::Harmony,
        ToolFormat::Gemma,
        ToolFormat::FunctionGemma,
    ] {
        let n = all.iter().filter(|f| f.format.tools == Some(format)).count();
        assert!(n >= 2, "{format:?} has {n} fixtures");
    }
}

#[test]
fn fixtures_give_their_text_reasoning_and_calls() {
    for fixture in fixtures() {
        let events = feed(&mut fixture.parser(), &fixture.output, &[]);
        fixture.check(&merge(&events), "whole");
        // Token-sized pieces: every char on its own.
        let cuts: Vec<usize> = fixture.output.char_indices().map(|(i, _)| i).collect();
        fixture.check(&merge(&feed(&mut fixture.parser(), &fixture.output, &cuts)), "char by char");
    }
}

#[test]
fn any_split_of_a_fixture_gives_the_same_result() {
    for fixture in fixtures() {
        let whole = merge(&feed(&mut fixture.parser(), &fixture.output, &[]));
        let len = fixture.output.len();
        let mut runner = TestRunner::new(Config { cases: 64, ..Config::default() });
        runner
            .run(&proptest::collection::vec(0..=len, 0..24), |cuts| {
                let split = merge(&feed(&mut fixture.parser(), &fixture.output, &cuts));
                prop_assert_eq!(&split, &whole, "{} cut at {:?}", fixture.name, cuts);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.name));
    }
}

/// Generation may stop anywhere (max_tokens): every prefix of a fixture, in any split, gives
/// what the prefix gives whole.
#[test]
fn any_split_of_any_prefix_of_a_fixture_gives_the_same_result() {
    for fixture in fixtures() {
        let len = fixture.output.len();
        let mut runner = TestRunner::new(Config { cases: 64, ..Config::default() });
        runner
            .run(&(0..=len, proptest::collection::vec(0..=len, 0..24)), |(end, cuts)| {
                let end = (0..=end).rev().find(|&i| fixture.output.is_char_boundary(i)).unwrap_or(0);
                let prefix = &fixture.output[..end];
                let whole = merge(&feed(&mut fixture.parser(), prefix, &[]));
                let split = merge(&feed(&mut fixture.parser(), prefix, &cuts));
                prop_assert_eq!(&split, &whole, "{} up to {} cut at {:?}", fixture.name, end, cuts);
                Ok(())
            })
            .unwrap_or_else(|e| panic!("{}: {e}", fixture.name));
    }
}

#[test]
fn the_parser_can_move_between_threads() {
    fn send<T: Send + 'static>() {}
    send::<OutputParser>();
}

#[test]
fn tool_calls_counts_the_calls() {
    let fixture = fixtures().into_iter().find(|f| f.name == "llama3-several-with-text").unwrap();
    let mut parser = fixture.parser();
    feed(&mut parser, &fixture.output, &[]);
    assert_eq!(parser.tool_calls(), 3);
}

/// A call the parser cannot read stays text, markup included.
#[test]
fn unreadable_calls_are_passed_on_as_text() {
    let cases: &[(ToolFormat, &str)] = &[
        (ToolFormat::Hermes, "<tool_call>not json</tool_call>"),
        (ToolFormat::Hermes, "Sure. <tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>"),
        (ToolFormat::Hermes, "<tool_call>\n{\"na"),
        (ToolFormat::Qwen3Coder, "<tool_call>\n{\"name\": \"get_weather\"}\n</tool_call>"),
        (ToolFormat::Qwen3Coder, "<tool_call>\n<function=delete_all>\n</function>\n</tool_call>"),
        (ToolFormat::Llama3, "<|python_tag|>brave_search.call(query=\"latest price of 1oz gold\")"),
        (ToolFormat::Llama3, "Use {\"name\": \"other_tool\", \"parameters\": {}} or {braces}."),
        (ToolFormat::Mistral, "[TOOL_CALLS] not json at all"),
        (ToolFormat::Mistral, "[TOOL_CALLS]unknown_tool[ARGS]{\"a\": 1}"),
        (ToolFormat::Gemma, "<|tool_call>get_weather{location:<|\"|>Paris<|\"|>}<tool_call|>"),
        (ToolFormat::FunctionGemma, "<start_function_call>call:nope{}<end_function_call>"),
    ];
    let declared = tools(&["get_weather", "search"]);
    for &(tools_format, output) in cases {
        let got = parse(&format(tools_format, false), Some(&declared), false, output);
        assert_eq!(got, Merged { text: output.to_string(), ..Merged::default() }, "{tools_format:?}: {output:?}");
    }
    // Harmony: the message to an undeclared tool is text; its header is markup.
    let output = "<|channel|>commentary to=browser.search <|constrain|>json<|message|>{\"query\": \"x\"}";
    let got = parse(&format(ToolFormat::Harmony, false), Some(&declared), false, output);
    assert_eq!(got, Merged { text: "{\"query\": \"x\"}".to_string(), ..Merged::default() });
}

/// Text after a recognised call block that is not another call stays text.
#[test]
fn text_after_calls_is_kept() {
    let declared = tools(&["get_weather"]);
    let output = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\nDone.";
    let got = parse(&format(ToolFormat::Hermes, false), Some(&declared), false, output);
    assert_eq!(got.text, "\nDone.");
    assert_eq!(got.calls.len(), 1);
    let output = "[TOOL_CALLS]get_weather[ARGS]{\"city\": \"Paris\"} and more";
    let got = parse(&format(ToolFormat::Mistral, false), Some(&declared), false, output);
    assert_eq!((got.text.as_str(), got.calls.len()), (" and more", 1));
}

#[test]
fn calls_inside_reasoning_are_not_calls() {
    let declared = tools(&["get_weather"]);
    let call = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>";
    let output = format!("<think>maybe {call}</think>Hello");
    let got = parse(&format(ToolFormat::Hermes, true), Some(&declared), false, &output);
    assert_eq!(got, Merged { text: "Hello".into(), reasoning: format!("maybe {call}"), calls: vec![] });
    // Started inside reasoning (the prompt opened it): no start tag in the output.
    let output = format!("maybe {call}</think>\n\nHello");
    let got = parse(&format(ToolFormat::Hermes, true), Some(&declared), true, &output);
    assert_eq!(got, Merged { text: "\n\nHello".into(), reasoning: format!("maybe {call}"), calls: vec![] });
    // Harmony's analysis channel.
    let output = "<|channel|>analysis<|message|>[TOOL_CALLS] <tool_call><|end|>";
    let got = parse(&format(ToolFormat::Harmony, false), Some(&declared), false, output);
    assert_eq!(got, Merged { reasoning: "[TOOL_CALLS] <tool_call>".into(), ..Merged::default() });
}

#[test]
fn an_end_tag_without_reasoning_leaves_the_text_before_it_as_text() {
    let got = parse(&format(ToolFormat::Hermes, true), None, false, "Plain answer</think> more");
    assert_eq!(got, Merged { text: "Plain answer more".into(), ..Merged::default() });
    let got = parse(&format(ToolFormat::Hermes, true), None, true, "Thinking</think>Answer");
    assert_eq!(got, Merged { text: "Answer".into(), reasoning: "Thinking".into(), calls: vec![] });
}

/// Generation stopped (max_tokens) inside the arguments: the call is closed with what it got.
#[test]
fn a_call_cut_by_the_end_of_generation_keeps_its_partial_arguments() {
    let declared = json!([
        {"type": "function", "function": {"name": "bash"}},
        {"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}}}},
    ]);
    let cases: &[(ToolFormat, &str, &str, &str)] = &[
        // vLLM's Mistral "complex" case: the output stops before the arguments close.
        (
            ToolFormat::Mistral,
            "hi{hi[TOOL_CALLS]bash{\"command\": \"print(\\\"hello world!\\\")\\nre.compile(r'{}')",
            "hi{hi",
            "{\"command\": \"print(\\\"hello world!\\\")\\nre.compile(r'{}')",
        ),
        (
            ToolFormat::Hermes,
            "<tool_call>\n{\"name\": \"bash\", \"arguments\": {\"command\": \"ls -",
            "",
            "{\"command\": \"ls -",
        ),
        (ToolFormat::Llama3, "{\"name\": \"bash\", \"parameters\": {\"command\"", "", "{\"command\""),
        (
            ToolFormat::Qwen3Coder,
            "<tool_call>\n<function=get_weather>\n<parameter=city>\nParis\n</parameter>\n<parameter=days>\n1",
            "",
            "{\"city\": \"Paris\"",
        ),
        (ToolFormat::Gemma, "<|tool_call>call:get_weather{city:<|\"|>Paris<|\"|>,days:", "", "{\"city\": \"Paris\""),
        (
            ToolFormat::Harmony,
            "<|channel|>commentary to=functions.bash <|constrain|>json<|message|>{\"command\": \"ls",
            "",
            "{\"command\": \"ls",
        ),
    ];
    for &(tools_format, output, text, arguments) in cases {
        let got = parse(&format(tools_format, false), Some(&declared), false, output);
        assert_eq!(got.text, text, "{tools_format:?}");
        assert_eq!(got.calls.len(), 1, "{tools_format:?}: {got:?}");
        assert_eq!(got.calls[0].arguments, arguments, "{tools_format:?}");
    }
}

#[test]
fn an_answer_of_whitespace_only_is_kept() {
    // Held while a call might follow, then given as the answer (mlx_lm.server gives it too);
    // after reasoning or a call, trailing whitespace is still dropped.
    let plain = OutputFormat { tools: None, reasoning: None };
    for format in [plain, format(ToolFormat::Hermes, true)] {
        for cuts in [&[][..], &[1, 2][..]] {
            let mut parser = OutputParser::new(&format, Some(&tools(&["get_weather"])), false);
            assert_eq!(merge(&feed(&mut parser, "\n\n \n", cuts)).text, "\n\n \n", "{format:?} {cuts:?}");
        }
    }
    let got = parse(&format(ToolFormat::Hermes, true), None, false, "<think>hm</think>\n\n");
    assert_eq!((got.text.as_str(), got.reasoning.as_str()), ("", "hm"));
}

#[test]
fn without_tools_nothing_is_a_call() {
    for fixture in fixtures() {
        let mut parser = OutputParser::new(&fixture.format, None, fixture.in_reasoning);
        let got = merge(&feed(&mut parser, &fixture.output, &[]));
        assert!(got.calls.is_empty(), "{}: {got:?}", fixture.name);
        assert_eq!(got.reasoning, fixture.expected["reasoning"].as_str().unwrap(), "{}", fixture.name);
    }
    let output = "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>";
    let got = parse(&format(ToolFormat::Hermes, false), None, false, output);
    assert_eq!(got.text, output);
}

#[test]
fn the_models_own_call_id_is_passed_on() {
    // The syntax Mistral Small 3.2's chat template writes for a call (tests/templates/).
    let output = "[TOOL_CALLS]get_weather[CALL_ID]a1b2c3d4e[ARGS]{\"city\": \"Paris\"}";
    let got = parse(&format(ToolFormat::Mistral, false), Some(&tools(&["get_weather"])), false, output);
    assert_eq!(
        got.calls,
        vec![Call {
            id: Some("a1b2c3d4e".into()),
            name: "get_weather".into(),
            arguments: "{\"city\": \"Paris\"}".into()
        }]
    );
}

#[test]
fn harmony_recipient_may_precede_the_channel() {
    let output = "<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Oslo\"}";
    let got = parse(&format(ToolFormat::Harmony, false), Some(&tools(&["get_weather"])), false, output);
    assert_eq!(
        got.calls,
        vec![Call { id: None, name: "get_weather".into(), arguments: "{\"city\": \"Oslo\"}".into() }]
    );
}

fn template(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/templates").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_format_comes_from_real_chat_templates() {
    let think = Some(("<think>".to_string(), "</think>".to_string()));
    let cases = [
        ("Qwen-Qwen2.5-7B-Instruct.jinja", Some(ToolFormat::Hermes), None),
        ("Qwen-Qwen3-0.6B.jinja", Some(ToolFormat::Hermes), think),
        ("meta-llama-Llama-3.1-8B-Instruct.jinja", Some(ToolFormat::Llama3), None),
        ("mistralai-Mistral-Small-3.2-24B-Instruct-2506.jinja", Some(ToolFormat::Mistral), None),
        ("mistralai-Mistral-Nemo-Instruct-2407.jinja", Some(ToolFormat::Mistral), None),
        ("openai-gpt-oss-120b.jinja", Some(ToolFormat::Harmony), None),
        ("google-gemma-2-2b-it.jinja", None, None),
        ("google-gemma-3-it.jinja", None, None),
        (
            "google-gemma-4-31B-it.jinja",
            Some(ToolFormat::Gemma),
            Some(("<|channel>thought".into(), "<channel|>".into())),
        ),
    ];
    for (file, tools, reasoning) in cases {
        assert_eq!(OutputFormat::from_template(&template(file)), OutputFormat { tools, reasoning }, "{file}");
    }
    // mlx-lm's own markers for the formats without a template here.
    let coder = "{{- '<tool_call>\\n<function=' + tool_call.name + '>\\n' }}";
    assert_eq!(OutputFormat::from_template(coder).tools, Some(ToolFormat::Qwen3Coder));
    assert_eq!(OutputFormat::from_template("<start_function_call>").tools, Some(ToolFormat::FunctionGemma));
}

#[test]
fn a_prompt_that_opens_reasoning_is_recognised() {
    let qwen3 = format(ToolFormat::Hermes, true);
    assert!(qwen3.opens_reasoning("<|im_start|>assistant\n<think>\n"));
    assert!(!qwen3.opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    assert!(!qwen3.opens_reasoning("<|im_start|>assistant\n"));
    assert!(!format(ToolFormat::Harmony, false).opens_reasoning("<|start|>assistant<|channel|>analysis<|message|>"));
}

#[test]
fn markup_is_held_back_only_while_it_may_be_markup() {
    let declared = tools(&["get_weather"]);
    let mut parser = OutputParser::new(&format(ToolFormat::Hermes, true), Some(&declared), false);
    assert_eq!(parser.push("Hello <tool"), vec![OutputEvent::Text("Hello ".into())]);
    assert_eq!(parser.push("box> and <th"), vec![OutputEvent::Text("<toolbox> and ".into())]);
    assert_eq!(parser.push("ink>hm"), vec![OutputEvent::Reasoning("hm".into())]);
    assert_eq!(parser.push("</think><tool_call>{\"name\": \"get_"), vec![]);
    let events = parser.push("weather\", \"arguments\": {\"city\"");
    assert_eq!(
        events,
        vec![
            OutputEvent::ToolCallStart { index: 0, id: None, name: "get_weather".into() },
            OutputEvent::ToolCallArguments { index: 0, delta: "{\"city\"".into() },
        ]
    );
    assert_eq!(
        parser.push(": \"Paris\"}}"),
        vec![
            OutputEvent::ToolCallArguments { index: 0, delta: ": \"Paris\"}".into() },
            OutputEvent::ToolCallEnd { index: 0 },
        ]
    );
    assert_eq!(parser.finish(), vec![]);
}

/// Pieces of every format's markup, to build arbitrary outputs from.
const PIECES: &[&str] = &[
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<function=get_weather>",
    "<parameter=city>",
    "</parameter>",
    "</function>",
    "<|python_tag|>",
    "[TOOL_CALLS]",
    "[ARGS]",
    "[CALL_ID]",
    "<|channel|>",
    "<|message|>",
    "<|end|>",
    "<|start|>",
    "assistant",
    "analysis",
    "final",
    "commentary",
    " to=functions.get_weather",
    "<|constrain|>",
    "<|tool_call>",
    "<tool_call|>",
    "call:get_weather{",
    "<|\"|>",
    "<start_function_call>",
    "<escape>",
    "{\"name\": \"get_weather\", \"arguments\": ",
    "{\"name\": \"nope\", \"parameters\": {",
    "get_weather",
    "{",
    "}",
    "[",
    "]",
    "\"",
    ",",
    ";",
    ":",
    "\\",
    "\n",
    " ",
    "é",
    "燃气",
    "🙂",
    "city",
    "Paris",
    "1.5",
];

fn arbitrary_output() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![3 => proptest::sample::select(PIECES).prop_map(str::to_string), 1 => ".{0,4}"],
        0..40,
    )
    .prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    /// No input makes the parser panic, and a split never changes what it finds.
    #[test]
    fn arbitrary_output_parses_the_same_in_any_split(
        output in arbitrary_output(),
        cuts in proptest::collection::vec(0..200usize, 0..16),
        which in 0..7usize,
        think in any::<bool>(),
        in_reasoning in any::<bool>(),
        with_tools in any::<bool>(),
    ) {
        let formats = [ToolFormat::Hermes, ToolFormat::Qwen3Coder, ToolFormat::Llama3, ToolFormat::Mistral, ToolFormat::Harmony, ToolFormat::Gemma, ToolFormat::FunctionGemma];
        let declared = json!([{"type": "function", "function": {"name": "get_weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
        let format = format(formats[which], think);
        let tools = with_tools.then_some(&declared);
        let whole = merge(&feed(&mut OutputParser::new(&format, tools, in_reasoning), &output, &[]));
        let split = merge(&feed(&mut OutputParser::new(&format, tools, in_reasoning), &output, &cuts));
        prop_assert_eq!(split, whole);
    }
}
