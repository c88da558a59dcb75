//! Each API's encoder and decoder agree: an answer encoded as a stream and decoded again is the
//! same answer (text, reasoning, tool calls with their arguments, finish reason, usage), for any
//! answer and however its text arrived in pieces. This is what a client of a translated
//! provider stream relies on.

use mlx_manager_api::anthropic::MessageResponse;
use mlx_manager_api::anthropic::StreamEvent;
use mlx_manager_api::encode::{AnthropicDecoder, ChatEncoder, MessagesEncoder, OpenAiDecoder};
use mlx_manager_api::openai::{ChatChunk, ChatCompletion};
use mlx_manager_api::{Answer, Call, Event, Finish, Usage};
use proptest::prelude::*;

/// The events of `answer` with its text, reasoning and arguments cut into pieces at `cuts`.
fn pieces(answer: &Answer, cuts: &[usize]) -> Vec<Event> {
    fn split(s: &str, cuts: &[usize]) -> Vec<String> {
        let mut points: Vec<usize> =
            cuts.iter().map(|c| c % (s.len() + 1)).filter(|c| s.is_char_boundary(*c)).collect();
        points.sort_unstable();
        points.dedup();
        let mut out = Vec::new();
        let mut last = 0;
        for p in points.into_iter().chain([s.len()]) {
            if p > last {
                out.push(s[last..p].to_string());
                last = p;
            }
        }
        out
    }
    let mut events: Vec<Event> = split(&answer.reasoning, cuts).into_iter().map(Event::Reasoning).collect();
    events.extend(split(&answer.text, cuts).into_iter().map(Event::Text));
    for (i, c) in answer.calls.iter().enumerate() {
        let index = i as u32;
        events.push(Event::ToolCallStart { index, id: c.id.clone(), name: c.name.clone() });
        events.extend(split(&c.arguments, cuts).into_iter().map(|delta| Event::ToolCallArguments { index, delta }));
        events.push(Event::ToolCallEnd { index });
    }
    events.push(Event::Done { finish: answer.finish.clone().unwrap(), usage: answer.usage });
    events
}

fn through_openai(events: Vec<Event>) -> Answer {
    let mut encoder = ChatEncoder::new("chatcmpl-1", 1, "m", true);
    let mut decoder = OpenAiDecoder::new();
    let mut answer = Answer::default();
    let mut chunks = vec![encoder.start()];
    for e in events {
        chunks.extend(encoder.on(e));
    }
    for chunk in chunks {
        // Over the wire: JSON text.
        let wire: ChatChunk = serde_json::from_str(&serde_json::to_string(&chunk).unwrap()).unwrap();
        for e in decoder.on(wire) {
            answer.push(e);
        }
    }
    for e in decoder.finish() {
        answer.push(e);
    }
    answer
}

fn through_anthropic(events: Vec<Event>, prompt_tokens: u32) -> Answer {
    let mut encoder = MessagesEncoder::new("msg_1", "m");
    let mut decoder = AnthropicDecoder::new();
    let mut answer = Answer::default();
    let mut wire = encoder.start(prompt_tokens);
    for e in events {
        wire.extend(encoder.on(e));
    }
    for event in wire {
        let event: StreamEvent = serde_json::from_str(&serde_json::to_string(&event).unwrap()).unwrap();
        for e in decoder.on(event).unwrap() {
            answer.push(e);
        }
    }
    answer
}

/// What the far side reads back: a turn that called tools ended to call them, whatever its
/// finish said (decoders make a `stop` with calls `tool_calls`), and OpenAI has one `stop` for a
/// natural end and a stop string.
fn read_back(answer: &Answer, openai: bool) -> Answer {
    let mut want = answer.clone();
    want.finish = match want.finish.take() {
        Some(Finish::Stop) if !answer.calls.is_empty() => Some(Finish::ToolCalls),
        Some(Finish::StopSequence(_)) if openai => {
            Some(if answer.calls.is_empty() { Finish::Stop } else { Finish::ToolCalls })
        }
        other => other,
    };
    want
}

fn answer_strategy() -> impl Strategy<Value = Answer> {
    let call = ("[a-z_]{1,12}", "\\PC{0,40}").prop_map(|(name, arg)| Call {
        id: format!("call_{name}"),
        name,
        arguments: serde_json::json!({"q": arg, "n": 3}).to_string(),
    });
    let finish = prop_oneof![
        Just(Finish::Stop),
        Just(Finish::Length),
        Just(Finish::ToolCalls),
        "[a-z]{1,5}".prop_map(Finish::StopSequence),
    ];
    ("\\PC{0,60}", "\\PC{0,60}", proptest::collection::vec(call, 0..3), finish, 1u32..5000, 0u32..5000).prop_map(
        |(text, reasoning, calls, finish, prompt, completion)| Answer {
            text,
            reasoning,
            calls,
            logprobs: None,
            finish: Some(finish),
            usage: Usage { prompt_tokens: prompt, completion_tokens: completion, cached_tokens: 0 },
        },
    )
}

proptest! {
    #[test]
    fn openai_stream_round_trips(answer in answer_strategy(), cuts in proptest::collection::vec(0usize..200, 0..8)) {
        let back = through_openai(pieces(&answer, &cuts));
        prop_assert_eq!(back, read_back(&answer, true));
    }

    #[test]
    fn anthropic_stream_round_trips(answer in answer_strategy(), cuts in proptest::collection::vec(0usize..200, 0..8)) {
        let back = through_anthropic(pieces(&answer, &cuts), answer.usage.prompt_tokens);
        prop_assert_eq!(back, read_back(&answer, false));
    }

    #[test]
    fn whole_answers_round_trip(answer in answer_strategy()) {
        let chat = ChatEncoder::new("chatcmpl-1", 1, "m", false).completion(answer.clone());
        let wire: ChatCompletion = serde_json::from_str(&serde_json::to_string(&chat).unwrap()).unwrap();
        prop_assert_eq!(Answer::from(wire), read_back(&answer, true));

        let message = MessagesEncoder::new("msg_1", "m").message_of(answer.clone());
        let wire: MessageResponse = serde_json::from_str(&serde_json::to_string(&message).unwrap()).unwrap();
        let back = Answer::from(wire);
        // Anthropic's `input` is an object: the arguments come back as its JSON text.
        prop_assert_eq!(back.calls.len(), answer.calls.len());
        for (b, a) in back.calls.iter().zip(&answer.calls) {
            let (b_args, a_args): (serde_json::Value, serde_json::Value) =
                (serde_json::from_str(&b.arguments).unwrap(), serde_json::from_str(&a.arguments).unwrap());
            prop_assert_eq!(b_args, a_args);
            prop_assert_eq!(&b.name, &a.name);
        }
        prop_assert_eq!(back.finish, read_back(&answer, false).finish);
        prop_assert_eq!(back.text, answer.text);
        prop_assert_eq!(back.reasoning, answer.reasoning);
    }
}

#[test]
fn openai_chunks_have_the_shape_sdks_accumulate() {
    let mut encoder = ChatEncoder::new("chatcmpl-1", 1, "m", false);
    let start = encoder.on(Event::ToolCallStart { index: 0, id: "call_a".into(), name: "get_weather".into() });
    let v = serde_json::to_value(&start[0]).unwrap();
    assert_eq!(
        v["choices"][0]["delta"]["tool_calls"][0],
        serde_json::json!({"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": ""}})
    );
    let args = encoder.on(Event::ToolCallArguments { index: 0, delta: "{\"city\"".into() });
    let v = serde_json::to_value(&args[0]).unwrap();
    assert_eq!(
        v["choices"][0]["delta"]["tool_calls"][0],
        serde_json::json!({"index": 0, "function": {"arguments": "{\"city\""}})
    );
    let done = encoder.on(Event::Done { finish: Finish::ToolCalls, usage: Usage::default() });
    let v = serde_json::to_value(&done[0]).unwrap();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(v["choices"][0]["delta"], serde_json::json!({}));
}

#[test]
fn anthropic_blocks_open_and_close_as_the_output_changes_kind() {
    let mut encoder = MessagesEncoder::new("msg_1", "m");
    let mut names = Vec::new();
    let events = [
        Event::Reasoning("hmm".into()),
        Event::Text("Let me check.".into()),
        Event::ToolCallStart { index: 0, id: "toolu_1".into(), name: "get_weather".into() },
        Event::ToolCallArguments { index: 0, delta: "{}".into() },
        Event::ToolCallEnd { index: 0 },
        Event::Done { finish: Finish::ToolCalls, usage: Usage::default() },
    ];
    for e in events {
        for out in encoder.on(e) {
            let v = serde_json::to_value(&out).unwrap();
            let index = v.get("index").map(|i| i.to_string()).unwrap_or_default();
            let kind = v
                .pointer("/content_block/type")
                .or(v.pointer("/delta/type"))
                .or(v.pointer("/delta/stop_reason"))
                .and_then(|t| t.as_str())
                .unwrap_or("");
            names.push(format!(
                "{}{index}{}",
                out.name(),
                if kind.is_empty() { String::new() } else { format!(":{kind}") }
            ));
        }
    }
    assert_eq!(
        names,
        [
            "content_block_start0:thinking",
            "content_block_delta0:thinking_delta",
            "content_block_stop0",
            "content_block_start1:text",
            "content_block_delta1:text_delta",
            "content_block_stop1",
            "content_block_start2:tool_use",
            "content_block_delta2:input_json_delta",
            "content_block_stop2",
            "message_delta:tool_use",
            "message_stop",
        ]
    );
}

#[test]
fn interleaved_parallel_calls_become_one_anthropic_block_each() {
    let events = vec![
        Event::ToolCallStart { index: 0, id: "call_a".into(), name: "first".into() },
        Event::ToolCallStart { index: 1, id: "call_b".into(), name: "second".into() },
        Event::ToolCallArguments { index: 0, delta: "{\"a\"".into() },
        Event::ToolCallArguments { index: 1, delta: "{\"b\": 2}".into() },
        Event::ToolCallArguments { index: 0, delta: ": 1}".into() },
        Event::ToolCallEnd { index: 0 },
        Event::ToolCallEnd { index: 1 },
        Event::Done { finish: Finish::ToolCalls, usage: Usage::default() },
    ];
    let back = through_anthropic(events, 3);
    let calls: Vec<(&str, &str)> = back.calls.iter().map(|c| (c.name.as_str(), c.arguments.as_str())).collect();
    assert_eq!(calls, [("first", "{\"a\": 1}"), ("second", "{\"b\": 2}")]);
}
