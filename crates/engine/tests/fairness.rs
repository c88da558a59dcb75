//! No client can stall another: while one stream is decoding, another client's long prompt is
//! prefilled in slices between its tokens, and an oversized prompt is rendered, tokenized and
//! refused off the engine thread. The running stream's longest pause is measured against its own
//! decode steps.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mlx_manager_engine::tiny::TinySpec;
use mlx_manager_engine::tokenizer::Tokenizer;
use mlx_manager_engine::{EngineError, GenerateRequest, GenerationEvent, Prompt};

/// The stream that must keep flowing: the time each of its tokens arrived.
struct Running {
    arrivals: Arc<Mutex<Vec<Instant>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Running {
    async fn start(model: &str) -> Running {
        let request =
            GenerateRequest { model: model.to_string(), prompt: tokens(&[1, 2, 3]), params: greedy(1_000_000) };
        let mut stream = engine().generate(request).unwrap();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let seen = arrivals.clone();
        let reader = tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                if let Ok(GenerationEvent::Token { .. }) = event {
                    seen.lock().unwrap().push(Instant::now());
                }
            }
        });
        Running { arrivals, reader }
    }

    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Waits until it has sent `tokens` tokens; fails (rather than hanging) when it stopped.
    async fn wait_for(&self, tokens: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while self.count() < tokens {
            assert!(!self.reader.is_finished(), "the running stream ended after {} tokens", self.count());
            assert!(Instant::now() < deadline, "the running stream stopped at {} tokens", self.count());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// The longest pause between two of its tokens that arrived from `from` (and the first one
    /// after it) to `to`.
    fn longest_gap(&self, from: Instant, to: Instant) -> Duration {
        let arrivals = self.arrivals.lock().unwrap();
        let mut prev = from;
        let mut longest = Duration::ZERO;
        for &t in arrivals.iter().filter(|&&t| t > from) {
            longest = longest.max(t - prev);
            prev = t;
            if t > to {
                break;
            }
        }
        longest.max(to.saturating_duration_since(prev))
    }

    /// Its median gap over the tokens that arrived before `until`.
    fn median_step(&self, until: Instant) -> Duration {
        let arrivals = self.arrivals.lock().unwrap();
        let mut gaps: Vec<Duration> = arrivals.windows(2).filter(|w| w[1] <= until).map(|w| w[1] - w[0]).collect();
        gaps.sort();
        gaps[gaps.len() / 2]
    }
}

/// The longest a running stream may pause: a handful of its decode steps (a prefill slice is
/// about four), with room for a noisy machine's scheduling (`floor`).
fn allowed(step: Duration, floor_ms: u64) -> Duration {
    (step * 12).max(Duration::from_millis(floor_ms))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_prompt_and_oversized_ones_do_not_stall_a_running_stream() {
    // 512 wide, 4 layers: a 3000-token prompt takes seconds to prefill here (two mlx-lm chunks).
    let m = load_tiny(TinySpec { max_position_embeddings: 16_384, ..TinySpec::bench(512, 4) }).await;
    // A long, valid prompt: its first token comes after its whole prefill.
    let long: Vec<u32> = (0..3_000u32).map(|i| 3 + (i * 7919) % 450).collect();
    let running = Running::start(&m.id).await;
    running.wait_for(40).await;

    let sent = Instant::now();
    let mut stream =
        engine().generate(GenerateRequest { model: m.id.clone(), prompt: tokens(&long), params: greedy(1) }).unwrap();
    let first_token = loop {
        match stream.next().await.expect("the long prompt is answered").unwrap() {
            GenerationEvent::Token { .. } => break Instant::now(),
            GenerationEvent::Done { .. } => panic!("no token"),
            GenerationEvent::Started { .. } => {}
        }
    };
    let step = running.median_step(sent);
    let prefill = first_token - sent;
    let gap = running.longest_gap(sent, first_token);
    // Unpaced, the pause would be a whole 2048-token chunk: about two thirds of the prefill.
    assert!(prefill > allowed(step, 400) * 5, "the prompt is too short to test anything: {prefill:?} (step {step:?})");
    assert!(
        gap <= allowed(step, 400),
        "a {prefill:?} prefill paused the running stream for {gap:?}; its decode step is {step:?}"
    );

    // An oversized prompt whose size alone does not prove it (tokenized, then refused), and one
    // whose size does (refused untokenized).
    let tokenizer = Tokenizer::load(&m.path(), &[]).unwrap();
    let words = "the quick brown fox jumps over the lazy dog ";
    let under_bound = 16_384 * tokenizer.max_token_bytes() - 1;
    for (bytes, tokenized) in [(under_bound, true), (8 << 20, false)] {
        let text = words.repeat(bytes / words.len());
        let sent = Instant::now();
        let request = GenerateRequest { model: m.id.clone(), prompt: Prompt::Text(text), params: greedy(1) };
        let refused = generate_err(request).await;
        let done = Instant::now();
        match refused {
            EngineError::ContextLength { prompt_tokens, .. } if tokenized => assert!(prompt_tokens > 16_384),
            EngineError::PromptTooLarge { min_tokens, .. } if !tokenized => assert!(min_tokens > 16_384),
            other => panic!("a {bytes}-byte prompt: {other:?}"),
        }
        let before = running.count();
        running.wait_for(before + 2).await;
        let gap = running.longest_gap(sent, done);
        assert!(gap <= allowed(step, 150), "refusing a {bytes}-byte prompt paused the running stream for {gap:?}");
    }
    running.reader.abort();
}

async fn generate_err(request: GenerateRequest) -> EngineError {
    let mut stream = engine().generate(request).unwrap();
    loop {
        match stream.next().await.expect("an answer") {
            Err(e) => return e,
            Ok(GenerationEvent::Done { .. }) => panic!("the oversized prompt was served"),
            Ok(_) => {}
        }
    }
}
