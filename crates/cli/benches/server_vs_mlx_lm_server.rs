//! `mlx-manager serve` against `mlx_lm.server` on the same model, side by side in one run:
//! time to first token (p50/p90, streaming chat), decode tok/s, and max_tokens=1 requests/s at
//! concurrency 1 and 4; plus our HTTP overhead on TTFT over in-process generation.
//!
//! `cargo bench -p mlx-manager-cli --bench server_vs_mlx_lm_server` (scripts/bench-server).
//! BENCH_REQUESTS (default 24) requests per measurement; BENCH_ROUNDS (3) alternating throughput
//! rounds; BENCH_HIDDEN (512) and BENCH_LAYERS (4) shape the model, or BENCH_SHAPE=realistic
//! measures Qwen2.5-0.5B's layer shapes at BENCH_BITS (4) instead, as scripts/bench-compare does
//! (whose realistic run also has the arrivals scenario). Loopback only; loops are bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures_util::StreamExt;
use mlx_manager_engine::tiny::{write_tiny_model, TinyFamily, TinySpec};
use mlx_manager_engine::{
    ChatMessage, Engine, EngineHandle, GenerateRequest, GenerationEvent, GenerationParams, Prompt,
};
use serde_json::json;

const MODEL: &str = "bench-llama";

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> PathBuf {
    std::env::var_os("MLX_MANAGER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/mlx-manager/venv"))
        .join("bin/python3")
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn body(model: &str, i: usize, max_tokens: u32, stream: bool) -> serde_json::Value {
    json!({"model": model, "messages": [{"role": "user", "content": format!("Request {i}: tell me about the sea.")}],
           "max_tokens": max_tokens, "temperature": 0, "stream": stream})
}

/// In-process and HTTP TTFT requests alternate in blocks of this many.
const BLOCK: usize = 8;

struct Latency {
    /// In-process TTFT p50 measured alternately with the HTTP requests, when asked for.
    in_process_p50: Option<f64>,
    ttft_p50: f64,
    ttft_p90: f64,
    decode_tps: f64,
}

/// One throughput round of one server: `max_tokens=1` requests/s with 1 and 4 clients, and its
/// CPU ms per request with 4.
struct Round {
    rps1: f64,
    rps4: f64,
    cpu4: f64,
}

impl Round {
    /// Each figure's median over `rounds`.
    fn median(rounds: &[Round]) -> Round {
        let of = |field: fn(&Round) -> f64| percentile(&mut rounds.iter().map(field).collect::<Vec<_>>(), 0.5);
        Round { rps1: of(|r| r.rps1), rps4: of(|r| r.rps4), cpu4: of(|r| r.cpu4) }
    }
}

/// A server under test: where it listens, the id it knows the model by (mlx_lm.server: its
/// path), and its process id (for its CPU time).
struct Server {
    url: String,
    model: String,
    pid: u32,
}

/// User + system CPU seconds the process has used so far, all threads (Linux /proc).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    // SAFETY: sysconf has no preconditions.
    ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
}

/// TTFT p50/p90 over `n` streaming requests and decode tok/s; with `in_process`, blocks of
/// [`BLOCK`] HTTP requests alternate with the same prompts run in-process, so that both see the
/// same machine.
async fn latency(client: &reqwest::Client, server: &Server, n: usize, in_process: Option<&InProcess>) -> Latency {
    let (chat, model) = (format!("{}/v1/chat/completions", server.url), server.model.as_str());
    // Warm-up (model load, caches).
    for i in 0..2 {
        client.post(&chat).json(&body(model, 1000 + i, 8, false)).send().await.unwrap().error_for_status().unwrap();
    }
    let mut ttft = Vec::new();
    let mut local = Vec::new();
    for i in 0..n {
        if let Some(engine) = in_process.filter(|_| i % BLOCK == 0) {
            for j in i..(i + BLOCK).min(n) {
                local.push(tokio::task::block_in_place(|| engine.ttft(j)));
            }
            // Long enough for this process's idle OpenBLAS threads to stop spinning.
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        let start = Instant::now();
        let response = client.post(&chat).json(&body(model, i, 8, true)).send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let mut events = response.bytes_stream().eventsource();
        let mut first = None;
        while let Some(event) = events.next().await {
            let data = event.unwrap().data;
            if data == "[DONE]" {
                break;
            }
            let v: serde_json::Value = serde_json::from_str(&data).unwrap();
            if first.is_none() && v["choices"][0]["delta"]["content"].as_str().is_some_and(|c| !c.is_empty()) {
                first = Some(start.elapsed().as_secs_f64() * 1000.0);
            }
        }
        ttft.push(first.unwrap_or_else(|| start.elapsed().as_secs_f64() * 1000.0));
    }
    let ttft_p50 = percentile(&mut ttft, 0.5);
    let ttft_p90 = percentile(&mut ttft, 0.9);
    let mut tps = Vec::new();
    for i in 0..3 {
        let start = Instant::now();
        let r: serde_json::Value =
            client.post(&chat).json(&body(model, 2000 + i, 128, false)).send().await.unwrap().json().await.unwrap();
        let secs = start.elapsed().as_secs_f64() - ttft_p50 / 1000.0;
        tps.push(r["usage"]["completion_tokens"].as_f64().unwrap() / secs);
    }
    let in_process_p50 = in_process.map(|_| percentile(&mut local, 0.5));
    Latency { in_process_p50, ttft_p50, ttft_p90, decode_tps: percentile(&mut tps, 0.5) }
}

/// `max_tokens=1` chat requests from `concurrency` clients: requests per second, and the
/// server's CPU milliseconds per request (all its threads).
async fn throughput(
    client: &reqwest::Client,
    server: &Server,
    concurrency: usize,
    n: usize,
    seed: usize,
) -> (f64, f64) {
    let chat = format!("{}/v1/chat/completions", server.url);
    let per_worker = n / concurrency;
    let cpu = cpu_seconds(server.pid);
    let start = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|w| {
            let (client, chat, model) = (client.clone(), chat.clone(), server.model.clone());
            tokio::spawn(async move {
                for i in 0..per_worker {
                    let r = client.post(&chat).json(&body(&model, seed + w * 1000 + i, 1, false)).send().await.unwrap();
                    assert!(r.status().is_success());
                    r.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let requests = (per_worker * concurrency) as f64;
    (requests / start.elapsed().as_secs_f64(), (cpu_seconds(server.pid) - cpu) * 1000.0 / requests)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn wait_ready(client: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if client.get(format!("{url}/v1/models")).send().await.is_ok_and(|r| r.status().is_success()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{url} did not come up");
}

/// The engine called in-process (no HTTP) on the same model, for our HTTP overhead on TTFT.
struct InProcess {
    _engine: Engine,
    handle: EngineHandle,
}

impl InProcess {
    fn start(model: &Path) -> InProcess {
        let engine = Engine::start().unwrap();
        let handle = engine.handle();
        handle.load_blocking(MODEL, model).unwrap();
        InProcess { _engine: engine, handle }
    }

    /// TTFT of request `i`'s chat prompt (as [`body`] words it), in ms.
    fn ttft(&self, i: usize) -> f64 {
        let prompt = Prompt::Chat {
            messages: vec![ChatMessage::new("user", format!("Request {i}: tell me about the sea."))],
            tools: None,
            template_kwargs: Default::default(),
        };
        let params = GenerationParams { max_tokens: 8, ..GenerationParams::default() };
        let start = Instant::now();
        let mut stream = self.handle.generate(GenerateRequest { model: MODEL.into(), prompt, params }).unwrap();
        let mut first = None;
        while let Some(event) = stream.blocking_next() {
            match event.unwrap() {
                GenerationEvent::Token { text, .. } if first.is_none() && !text.is_empty() => {
                    first = Some(start.elapsed().as_secs_f64() * 1000.0)
                }
                GenerationEvent::Done { .. } => break,
                _ => {}
            }
        }
        first.unwrap_or_else(|| start.elapsed().as_secs_f64() * 1000.0)
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // As `mlx-manager` does first thing, so the in-process engine runs the server's kernels.
    let switch = mlx_manager_engine::cpu_kernels::select();
    let kernels = match (&switch, std::env::var("OPENBLAS_CORETYPE")) {
        (Some(s), _) => format!("ours {} (switched from {}), mlx_lm.server {}", s.selected, s.detected, s.detected),
        (None, Ok(forced)) => format!("{forced} on both sides (OPENBLAS_CORETYPE)"),
        (None, Err(_)) => {
            format!("{} on both sides", mlx_manager_engine::cpu_kernels::current().unwrap_or("not OpenBLAS".into()))
        }
    };
    let n: usize = std::env::var("BENCH_REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(24);
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join(MODEL);
    let env = |name: &str, default: usize| std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default);
    let (hidden, layers) = (env("BENCH_HIDDEN", 512), env("BENCH_LAYERS", 4));
    let rounds_n = env("BENCH_ROUNDS", 3);
    let spec = match std::env::var("BENCH_SHAPE").as_deref() {
        // The shape of scripts/bench-compare's BENCH_SHAPE=realistic (Qwen2.5-0.5B's layers,
        // 16,384 vocabulary rows, tied), BENCH_BITS (4; 0: unquantized) with group 64.
        Ok("realistic") => TinySpec {
            hidden_size: 896,
            layers: 8,
            heads: 14,
            kv_heads: 2,
            intermediate_size: 4864,
            vocab_size: 16384,
            vocab_rows: Some(16384),
            tied: true,
            quantize: Some(env("BENCH_BITS", 4) as u32).filter(|&b| b != 0).map(|b| (b, 64)),
            max_position_embeddings: 16384,
            ..TinySpec::new(TinyFamily::Qwen2)
        },
        _ => TinySpec::bench(hidden, layers),
    };
    write_tiny_model(&model, &spec).unwrap();
    let quant = spec.quantize.map_or("fp32".to_string(), |(bits, group)| format!("{bits}-bit (group {group})"));
    let shape = format!(
        "{:?} {quant}, hidden {}, {} layers, {}/{} heads, MLP {}",
        spec.family, spec.hidden_size, spec.layers, spec.heads, spec.kv_heads, spec.intermediate_size
    )
    .to_lowercase();

    let in_process = InProcess::start(&model);

    let ours = Command::new(env!("CARGO_BIN_EXE_mlx-manager"))
        .args(["serve", "--port", "0", "--no-hf-cache", "--model"])
        .arg(&model)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut ours = Proc(ours);
    let mut line = String::new();
    BufReader::new(ours.0.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let ours_server = Server {
        url: line.trim().strip_prefix("listening on ").unwrap().to_string(),
        model: MODEL.to_string(),
        pid: ours.0.id(),
    };
    let port = free_port();
    let theirs = Command::new(python())
        .args(["-m", "mlx_lm", "server", "--model"])
        .arg(&model)
        .args(["--host", "127.0.0.1", "--port", &port.to_string(), "--log-level", "ERROR"])
        .env("HF_HUB_OFFLINE", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let theirs = Proc(theirs);
    let theirs_server = Server {
        url: format!("http://127.0.0.1:{port}"),
        model: model.to_str().unwrap().to_string(),
        pid: theirs.0.id(),
    };
    let servers = [("mlx-manager serve", &ours_server), ("mlx_lm.server 0.32.2", &theirs_server)];

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let (latencies, rounds) = runtime.block_on(async {
        let client = reqwest::Client::new();
        // Both up before anything is measured (mlx_lm.server's start-up is seconds of CPU).
        for (_, server) in servers {
            wait_ready(&client, &server.url).await;
        }
        let mut latencies = Vec::new();
        for (slot, (_, server)) in servers.iter().enumerate() {
            latencies.push(latency(&client, server, n, (slot == 0).then_some(&in_process)).await);
        }
        // Throughput rounds alternate between the servers, so that a slow spell of this
        // machine falls on both; each figure below is the median over the rounds.
        let mut rounds = vec![Vec::new(), Vec::new()];
        for round in 0..rounds_n {
            for (slot, (_, server)) in servers.iter().enumerate() {
                let (rps1, _) = throughput(&client, server, 1, n, 3000 + round * 10_000).await;
                let (rps4, cpu4) = throughput(&client, server, 4, n, 3000 + round * 10_000 + 5000).await;
                rounds[slot].push(Round { rps1, rps4, cpu4 });
            }
        }
        (latencies, rounds)
    });
    let medians: Vec<Round> = rounds.iter().map(|r| Round::median(r)).collect();
    println!(
        "model: {shape}; chat prompts of ~20 tokens; {n} requests per measurement; \
         max_tokens=1 figures are medians of {rounds_n} alternating rounds; OpenBLAS kernels: {kernels}"
    );
    println!(
        "| | TTFT p50 ms | TTFT p90 ms | decode tok/s | max_tokens=1 req/s (c=1) | req/s (c=4) | server CPU ms/request (c=4) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (slot, (name, _)) in servers.iter().enumerate() {
        let l = &latencies[slot];
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} |",
            l.ttft_p50, l.ttft_p90, l.decode_tps, medians[slot].rps1, medians[slot].rps4, medians[slot].cpu4
        );
    }
    let (a, b) = (&latencies[0], &latencies[1]);
    let local = a.in_process_p50.expect("measured with ours");
    println!(
        "| ratio (ours / mlx_lm.server) | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× | {:.2}× |",
        a.ttft_p50 / b.ttft_p50,
        a.ttft_p90 / b.ttft_p90,
        a.decode_tps / b.decode_tps,
        medians[0].rps1 / medians[1].rps1,
        medians[0].rps4 / medians[1].rps4,
        medians[0].cpu4 / medians[1].cpu4
    );
    for (slot, (name, _)) in servers.iter().enumerate() {
        let each: Vec<String> = rounds[slot].iter().map(|r| format!("{:.0}/{:.0}", r.rps1, r.rps4)).collect();
        println!("{name}: req/s c=1/c=4 per round: {}", each.join(", "));
    }
    println!(
        "in-process engine TTFT p50 (alternating with the HTTP requests): {local:.2} ms; HTTP overhead on TTFT: {:.2} ms",
        a.ttft_p50 - local
    );
}
