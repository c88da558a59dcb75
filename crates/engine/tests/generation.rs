//! Generation as a user sees it: sampling, stop conditions, streaming text, cancellation,
//! fairness between concurrent requests, and request validation.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mlx_manager_engine::tiny::TinyFamily;
use mlx_manager_engine::tokenizer::{StreamDecoder, Tokenizer};
use mlx_manager_engine::{
    ChatMessage, EngineError, EngineStatus, FinishReason, GenerateRequest, GenerationEvent, GenerationParams, Prompt,
    SamplingParams,
};

const PROMPT: &[u32] = &[5, 100, 200, 300, 17, 42, 99];

fn sampled(seed: Option<u64>, f: impl FnOnce(&mut SamplingParams)) -> GenerationParams {
    let mut sampling = SamplingParams { temperature: 0.9, seed, ..SamplingParams::default() };
    f(&mut sampling);
    GenerationParams { max_tokens: 32, sampling, ..GenerationParams::default() }
}

#[tokio::test]
async fn seeded_sampling_repeats_and_different_seeds_differ() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    let a = generate(&m.id, tokens(PROMPT), sampled(Some(7), |_| {})).await.unwrap();
    let b = generate(&m.id, tokens(PROMPT), sampled(Some(7), |_| {})).await.unwrap();
    let c = generate(&m.id, tokens(PROMPT), sampled(Some(8), |_| {})).await.unwrap();
    let greedy_out = generate(&m.id, tokens(PROMPT), greedy(32)).await.unwrap();
    assert_eq!(a.ids, b.ids);
    assert_ne!(a.ids, c.ids);
    assert_ne!(a.ids, greedy_out.ids, "temperature 0.9 should not reproduce greedy decoding");
}

#[tokio::test]
async fn filters_that_keep_one_token_reduce_sampling_to_greedy() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let want = generate(&m.id, tokens(PROMPT), greedy(32)).await.unwrap().ids;
    let top_k = generate(&m.id, tokens(PROMPT), sampled(Some(1), |s| s.top_k = 1)).await.unwrap();
    let top_p = generate(&m.id, tokens(PROMPT), sampled(Some(2), |s| s.top_p = 1e-6)).await.unwrap();
    let min_p = generate(&m.id, tokens(PROMPT), sampled(Some(3), |s| s.min_p = 1.0)).await.unwrap();
    assert_eq!(top_k.ids, want, "top_k=1");
    assert_eq!(top_p.ids, want, "top_p≈0");
    assert_eq!(min_p.ids, want, "min_p=1");
}

#[tokio::test]
async fn strong_repetition_penalty_avoids_repeats_in_its_window() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    let params = GenerationParams {
        max_tokens: 40,
        sampling: SamplingParams {
            repetition_penalty: Some(1000.0),
            penalty_context_size: 20,
            ..SamplingParams::default()
        },
        ..GenerationParams::default()
    };
    let out = generate(&m.id, tokens(&[7]), params).await.unwrap();
    for window in out.ids.windows(20) {
        let mut sorted = window.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 20, "a token repeated within 20: {:?}", out.ids);
    }
}

#[tokio::test]
async fn stop_string_cuts_the_text_before_it() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    let full = generate(&m.id, tokens(PROMPT), greedy(40)).await.unwrap();
    let chars: Vec<char> = full.text.chars().collect();
    assert!(chars.len() > 20, "{:?}", full.text);
    let stop: String = chars[12..16].iter().collect();
    let expected = &full.text[..full.text.find(&stop).unwrap()];
    let params = GenerationParams { stop: vec![stop.clone()], ..greedy(40) };
    let out = generate(&m.id, tokens(PROMPT), params).await.unwrap();
    assert_eq!(out.finish, FinishReason::Stop);
    assert_eq!(out.text, expected, "stop {stop:?}");
    assert!(out.usage.completion_tokens < full.usage.completion_tokens);
}

#[tokio::test]
async fn stop_token_ends_generation_without_emitting_it() {
    let m = load_tiny(spec(TinyFamily::Qwen3)).await;
    let full = generate(&m.id, tokens(PROMPT), greedy(24)).await.unwrap();
    let stop = full.ids[6];
    let first = full.ids.iter().position(|&t| t == stop).unwrap();
    let params = GenerationParams { stop_token_ids: vec![stop], ..greedy(24) };
    let out = generate(&m.id, tokens(PROMPT), params).await.unwrap();
    assert_eq!(out.finish, FinishReason::Stop);
    assert_eq!(out.ids, full.ids[..first]);
}

#[tokio::test]
async fn max_tokens_is_exact_and_logprobs_are_log_probabilities() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let params = GenerationParams { logprobs: true, ..greedy(9) };
    let out = generate(&m.id, tokens(PROMPT), params).await.unwrap();
    assert_eq!(out.ids.len(), 9);
    assert_eq!(out.finish, FinishReason::Length);
    for lp in &out.logprobs {
        let lp = lp.expect("logprob requested");
        assert!(lp <= 0.0 && lp.is_finite(), "{lp}");
    }
    let without = generate(&m.id, tokens(PROMPT), greedy(9)).await.unwrap();
    assert!(without.logprobs.iter().all(Option::is_none));
    assert_eq!(without.ids, out.ids);
}

#[tokio::test]
async fn streamed_pieces_are_whole_characters() {
    // Multi-byte characters are split across byte-level BPE tokens; the decoder must never emit
    // half a character, and the pieces must add up to the text.
    let m = write_tiny(spec(TinyFamily::Llama));
    let tok = Tokenizer::load(&m.path(), &[]).unwrap();
    let text = "Café 日本語のテキスト 🙂🚀 привет";
    let ids = tok.encode(text, false).unwrap();
    assert!(ids.len() > text.chars().count() / 2, "expected multi-token characters");
    let mut dec = StreamDecoder::new();
    let mut pieces = Vec::new();
    for &id in &ids {
        pieces.push(dec.push(&tok, id).unwrap());
    }
    pieces.push(dec.finish(&tok).unwrap());
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')), "{pieces:?}");
    assert!(pieces.iter().any(|p| p.is_empty()), "some token must end mid-character: {pieces:?}");
    assert_eq!(pieces.concat(), text);
}

#[tokio::test]
async fn chat_prompts_use_the_template_and_template_errors_are_typed() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let chat = Prompt::Chat {
        messages: vec![ChatMessage::new("system", "Be brief."), ChatMessage::new("user", "Hi!")],
        tools: None,
        template_kwargs: Default::default(),
    };
    let out = generate(&m.id, chat, greedy(5)).await.unwrap();
    let tok = Tokenizer::load(&m.path(), &[]).unwrap();
    let rendered = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n";
    assert_eq!(out.usage.prompt_tokens, tok.encode(rendered, false).unwrap().len());
    let bad = Prompt::Chat {
        messages: vec![ChatMessage::new("wizard", "x")],
        tools: None,
        template_kwargs: Default::default(),
    };
    match generate(&m.id, bad, greedy(5)).await.unwrap_err() {
        EngineError::ChatTemplate { message } => assert!(message.contains("Unknown role: wizard"), "{message}"),
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn invalid_requests_are_rejected_with_the_parameter_named() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    let cases: Vec<(GenerationParams, &str)> = vec![
        (sampled(None, |s| s.temperature = -1.0), "temperature"),
        (sampled(None, |s| s.top_p = 0.0), "top_p"),
        (sampled(None, |s| s.min_p = 1.5), "min_p"),
        (sampled(None, |s| s.top_k = 1_000_000), "top_k"),
        (sampled(None, |s| s.repetition_penalty = Some(0.0)), "repetition_penalty"),
    ];
    for (params, name) in cases {
        match generate(&m.id, tokens(PROMPT), params).await.unwrap_err() {
            EngineError::InvalidRequest { field, message } => assert_eq!(field, name, "{message}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(matches!(generate(&m.id, tokens(&[]), greedy(1)).await.unwrap_err(), EngineError::InvalidRequest { .. }));
    assert!(matches!(
        generate(&m.id, tokens(&[999_999]), greedy(1)).await.unwrap_err(),
        EngineError::InvalidRequest { .. }
    ));
}

#[tokio::test]
async fn prompts_longer_than_the_context_are_typed_errors() {
    let mut s = spec(TinyFamily::Qwen3);
    s.max_position_embeddings = 16;
    let m = load_tiny(s).await;
    let long: Vec<u32> = (1..40).collect();
    match generate(&m.id, tokens(&long), greedy(4)).await.unwrap_err() {
        EngineError::ContextLength { prompt_tokens, context_length } => {
            assert_eq!((prompt_tokens, context_length), (39, 16))
        }
        other => panic!("unexpected {other:?}"),
    }
}

async fn wait_until_idle() -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if engine().status().await.unwrap().running == 0 {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test]
async fn dropping_the_stream_cancels_generation() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    let request = GenerateRequest { model: m.id.clone(), prompt: tokens(PROMPT), params: greedy(1_000_000) };
    let mut stream = engine().generate(request).unwrap();
    let started = stream.next().await;
    assert!(
        matches!(started, Some(Ok(GenerationEvent::Started { prompt_tokens: 7, reasoning_open: false }))),
        "{started:?}"
    );
    for _ in 0..3 {
        assert!(matches!(stream.next().await, Some(Ok(GenerationEvent::Token { .. }))));
    }
    assert!(engine().status().await.unwrap().running >= 1);
    drop(stream);
    assert!(wait_until_idle().await, "the cancelled generation kept running");
}

#[tokio::test]
async fn concurrent_requests_share_the_engine_fairly() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let long = GenerateRequest { model: m.id.clone(), prompt: tokens(PROMPT), params: greedy(100_000) };
    let mut long_stream = engine().generate(long).unwrap();
    assert!(matches!(long_stream.next().await, Some(Ok(GenerationEvent::Started { .. }))));
    assert!(matches!(long_stream.next().await, Some(Ok(GenerationEvent::Token { .. }))));
    // A short request sent while the long one runs finishes first, and the long one is still going.
    let short = generate(&m.id, tokens(PROMPT), greedy(8)).await.unwrap();
    assert_eq!(short.ids.len(), 8);
    let mut more = 0;
    while more < 5 {
        match long_stream.next().await {
            Some(Ok(GenerationEvent::Token { .. })) => more += 1,
            other => panic!("long generation ended early: {other:?}"),
        }
    }
    drop(long_stream);
    assert!(wait_until_idle().await);
}

#[tokio::test]
async fn a_slow_reader_does_not_stall_other_requests() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    // Never read: its buffer fills and it must wait without blocking the engine.
    let stalled = engine()
        .generate(GenerateRequest { model: m.id.clone(), prompt: tokens(PROMPT), params: greedy(100_000) })
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let other = generate(&m.id, tokens(PROMPT), greedy(16)).await.unwrap();
    assert_eq!(other.ids.len(), 16);
    drop(stalled);
    assert!(wait_until_idle().await);
}

#[tokio::test]
async fn unload_waits_for_running_requests_and_forced_unload_ends_them() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    let loaded = |id: String| async move { engine().list().await.unwrap().iter().any(|i| i.id == id) };

    // Graceful: the running request finishes in full, then the model goes.
    let request = GenerateRequest { model: m.id.clone(), prompt: tokens(PROMPT), params: greedy(300) };
    let mut stream = engine().generate(request).unwrap();
    assert!(matches!(stream.next().await, Some(Ok(GenerationEvent::Started { .. }))));
    let unload = tokio::spawn(async move { engine().unload(m.id.clone()).await });
    let mut tokens_seen = 0;
    loop {
        match stream.next().await {
            Some(Ok(GenerationEvent::Token { .. })) => {
                tokens_seen += 1;
                if tokens_seen == 20 {
                    // The unload has had time to arrive; it is waiting for this request.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    assert!(!unload.is_finished(), "the unload did not wait for the running request");
                }
            }
            Some(Ok(GenerationEvent::Done { .. })) => break,
            other => panic!("the request was cut short by a graceful unload: {other:?}"),
        }
    }
    assert_eq!(tokens_seen, 300);
    assert!(unload.await.unwrap().unwrap(), "the model was loaded");
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    assert!(loaded(m.id.clone()).await);

    // Forced: the running request ends at once with a typed error, and the model is gone.
    let request = GenerateRequest { model: m.id.clone(), prompt: tokens(PROMPT), params: greedy(1_000_000) };
    let mut stream = engine().generate(request).unwrap();
    assert!(matches!(stream.next().await, Some(Ok(GenerationEvent::Started { .. }))));
    assert!(engine().unload_forced(&m.id).await.unwrap());
    let ended = loop {
        match stream.next().await {
            Some(Ok(GenerationEvent::Token { .. })) => continue,
            other => break other,
        }
    };
    assert!(matches!(&ended, Some(Err(EngineError::Unloaded { model })) if *model == m.id), "{ended:?}");
    assert!(!loaded(m.id.clone()).await);
    assert!(wait_until_idle().await);
}

#[tokio::test]
async fn a_running_request_s_kv_cache_is_counted_and_released() {
    let m = load_tiny(spec(TinyFamily::Qwen2)).await;
    let kv = |id: String| async move {
        engine().list().await.unwrap().into_iter().find(|i| i.id == id).map(|i| i.kv_cache_bytes).unwrap()
    };
    assert_eq!(kv(m.id.clone()).await, 0);
    let request = GenerateRequest { model: m.id.clone(), prompt: tokens(PROMPT), params: greedy(1_000_000) };
    let mut stream = engine().generate(request).unwrap();
    for _ in 0..4 {
        stream.next().await.unwrap().unwrap();
    }
    // Keys and values for every layer, in steps of 256 positions: [1, kv_heads, 256, head_dim] fp32.
    let t = spec(TinyFamily::Qwen2);
    let expected = t.layers * 2 * t.kv_heads * 256 * (t.hidden_size / t.heads) * 4;
    assert_eq!(kv(m.id.clone()).await, expected, "a running request's key/value cache is counted");
    drop(stream);
    assert!(wait_until_idle().await);
    assert_eq!(kv(m.id.clone()).await, 0, "the cache went with the request");
}

/// Greedy for even `i`, seeded sampling for odd, `max_tokens` each, with log-probabilities.
fn mixed_params(i: usize, max_tokens: usize) -> GenerationParams {
    let mut p = if i % 2 == 0 { greedy(max_tokens) } else { sampled(Some(i as u64), |_| {}) };
    p.max_tokens = max_tokens;
    p.logprobs = true;
    p
}

/// What `prompts` (with [`mixed_params`]) produced one at a time, then all at once while another
/// generation keeps the engine busy (so they queue up and start together), with the engine's
/// status just before and after the second round.
async fn alone_and_together(
    model: &str,
    prompts: &[&[u32]],
    max_tokens: usize,
) -> (Vec<Outcome>, Vec<Outcome>, EngineStatus, EngineStatus) {
    let mut alone = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        alone.push(generate(model, tokens(p), mixed_params(i, max_tokens)).await.unwrap());
    }
    let mut busy = engine()
        .generate(GenerateRequest { model: model.to_string(), prompt: tokens(PROMPT), params: greedy(100_000) })
        .unwrap();
    assert!(matches!(busy.next().await, Some(Ok(GenerationEvent::Started { .. }))));
    assert!(matches!(busy.next().await, Some(Ok(GenerationEvent::Token { .. }))));
    let before = engine().status().await.unwrap();
    let streams: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let request =
                GenerateRequest { model: model.to_string(), prompt: tokens(p), params: mixed_params(i, max_tokens) };
            engine().generate(request).unwrap()
        })
        .collect();
    let mut together = Vec::new();
    for stream in streams {
        together.push(collect(stream).await);
    }
    drop(busy);
    let after = engine().status().await.unwrap();
    (alone, together, before, after)
}

/// Each of `together` is its `alone` counterpart: same tokens, log-probabilities within 1e-4.
fn assert_same(alone: &[Outcome], together: &[Outcome], what: &str) {
    for (i, (a, t)) in alone.iter().zip(together).enumerate() {
        assert_eq!(a.ids, t.ids, "{what} prompt {i}: tokens differ");
        assert_eq!(a.usage.prompt_tokens, t.usage.prompt_tokens);
        for (x, y) in a.logprobs.iter().zip(&t.logprobs) {
            let (x, y) = (x.unwrap(), y.unwrap());
            assert!((x - y).abs() < 1e-4, "{what} prompt {i}: logprob {x} alone, {y} together");
        }
    }
}

/// Prompts that arrive together are prefilled as one padded batch and then decoded together
/// (one pass per token for all of them, each attending to its own history): each must still get
/// exactly what it gets alone (tokens, and log-probabilities to float rounding), whatever its
/// length, with greedy and with seeded sampling.
#[tokio::test]
async fn prompts_run_together_get_what_they_get_alone() {
    for family in [TinyFamily::Llama, TinyFamily::Qwen3] {
        let m = load_tiny(spec(family)).await;
        let prompts: [&[u32]; 5] = [&[7], &[5, 100, 200], PROMPT, &[9; 20], &[3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5]];
        let (alone, together, before, after) = alone_and_together(&m.id, &prompts, 12).await;
        assert!(
            after.batched_prompts >= before.batched_prompts + prompts.len() as u64,
            "the prompts were not prefilled together"
        );
        assert!(after.batched_tokens >= before.batched_tokens + 5 * 11, "the sequences were not decoded together");
        assert_same(&alone, &together, &format!("{family:?} batched"));
    }
    assert!(wait_until_idle().await);
}

/// On the CPU with more than one core, a batch of new prompts long enough is split into parts on
/// separate MLX streams (computed on several cores, evaluated together): each prompt must still
/// get exactly what it gets alone.
#[tokio::test]
async fn prompts_split_across_cpu_streams_get_what_they_get_alone() {
    let m = load_tiny(spec(TinyFamily::Llama)).await;
    let prompts: Vec<Vec<u32>> =
        (0..5).map(|i| (0..30 + 4 * i).map(|j| ((j * 11 + i * 29) % 400) as u32 + 3).collect()).collect();
    let prompts: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let (alone, together, before, after) = alone_and_together(&m.id, &prompts, 8).await;
    if std::thread::available_parallelism().map_or(1, |n| n.get()) > 1 {
        assert!(after.split_batches > before.split_batches, "the batch was not split across streams");
    }
    assert_same(&alone, &together, "split");
    assert!(wait_until_idle().await);
}
