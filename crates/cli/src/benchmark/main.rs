//! `mlx-benchmark`: measures any OpenAI-compatible server (MLX Manager, mlx_lm.server, a cloud
//! URL) — time to first token, decode speed from the server's own token counts, inter-token and
//! end-to-end latency, requests per second — and reports them as a Markdown table or JSON.

mod measure;
mod prompts;
mod report;
mod stats;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use measure::{Endpoint, Sample, Target};
use mlx_manager_core::{ExposeSecret, SecretString};
use report::{FirstTokenProbe, RunInfo, RunReport};

#[derive(Parser)]
#[command(
    name = "mlx-benchmark",
    version,
    about = "Benchmark an OpenAI-compatible server (latency, tokens/s, requests/s)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Measure one model with one prompt.
    Run(RunArgs),
    /// Measure several models with the short, medium and long prompts.
    Suite(SuiteArgs),
    /// Requests arriving over time (Poisson, seeded): a mix of prompts and a few long ones.
    Arrivals(ArrivalsArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// The server's base URL (without /v1).
    #[arg(long, default_value = "http://127.0.0.1:10242")]
    url: String,
    /// Bearer key for the server.
    #[arg(long, env = "MLX_BENCHMARK_API_KEY", hide_env_values = true, value_parser = secret)]
    api_key: Option<SecretString>,
    /// Most tokens generated per request.
    #[arg(long, default_value_t = 256)]
    max_tokens: u32,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// Send the very same prompt every time (measures a server's prompt cache); by default each
    /// request's prompt starts with its own number, so none can be answered from a cache.
    #[arg(long)]
    same_prompt: bool,
    /// Number the requests from here (runs one after the other then send different prompts).
    #[arg(long, default_value_t = 0)]
    first_request: usize,
}

impl Common {
    /// Requests of `model` at `endpoint` with `prompt` (a name or text, see [`prompts::resolve`]),
    /// as the common flags say.
    fn target(&self, model: &str, endpoint: Endpoint, prompt: &str, stream: bool) -> Result<Target, BenchError> {
        Ok(Target {
            url: self.url.clone(),
            model: model.to_string(),
            endpoint,
            prompt: prompts::resolve(prompt)?,
            max_tokens: self.max_tokens,
            stream,
            api_key: self.api_key.clone(),
            timeout: Duration::from_secs(self.timeout),
            vary: !self.same_prompt,
            first: self.first_request,
        })
    }
}

#[derive(Args)]
struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// The model to request.
    #[arg(short, long)]
    model: String,
    /// Requests to measure.
    #[arg(short, default_value_t = 5)]
    n: usize,
    /// `short`, `medium`, `long` or a file holding the prompt.
    #[arg(long, default_value = "short")]
    prompt: String,
    /// Unmeasured requests first (loads the model, warms caches).
    #[arg(long, default_value_t = 1)]
    warmup: usize,
    /// Stream the answers (measures time to first token and inter-token latency).
    #[arg(long, overrides_with = "no_stream")]
    stream: bool,
    /// Do not stream (whole answers).
    #[arg(long = "no-stream", overrides_with = "stream")]
    no_stream: bool,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// The API measured.
    #[arg(long, value_enum, default_value_t = Endpoint::Chat)]
    endpoint: Endpoint,
    /// Stop starting requests after this many seconds.
    #[arg(long, default_value_t = 600)]
    max_seconds: u64,
    /// Time the first token and the decode rate without relying on when the server streams
    /// text: first send -n requests of the same prompt with max_tokens 1 (numbered after the
    /// measured ones, so their prompts are unique too; same concurrency) and take their
    /// end-to-end time as the time to first token; then each measured request's decode rate is
    /// (completion tokens − 1) / (its end-to-end − that time's median). A server may hold back
    /// the text of its first tokens (mlx_lm.server does, on unusual output), which skews the
    /// figures timed from text events; these do not depend on it.
    #[arg(long)]
    first_token_probe: bool,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct SuiteArgs {
    #[command(flatten)]
    common: Common,
    /// Measured requests per model and prompt.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Comma-separated models (default: every model in GET /v1/models).
    #[arg(long, value_delimiter = ',')]
    models: Vec<String>,
    /// Write every run's JSON here.
    #[arg(short, long)]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct ArrivalsArgs {
    #[command(flatten)]
    common: Common,
    /// The model to request.
    #[arg(short, long)]
    model: String,
    /// Requests to send.
    #[arg(short, default_value_t = 24)]
    n: usize,
    /// Mean arrivals per second (exponential gaps between arrivals).
    #[arg(long, default_value_t = 1.0)]
    rate: f64,
    /// Seed of the schedule (arrival times and which prompt each request gets).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Comma-separated prompts drawn at random for the ordinary requests.
    #[arg(long, value_delimiter = ',', default_value = "short,medium")]
    prompts: Vec<String>,
    /// How many requests carry the long prompt (evenly spaced through the schedule).
    #[arg(long, default_value_t = 1)]
    long: usize,
    /// The long prompt (any `--prompt` value, e.g. `paragraphs:18`).
    #[arg(long, default_value = "long")]
    long_prompt: String,
    /// Print JSON instead of Markdown.
    #[arg(long)]
    json: bool,
}

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot reach {url}: {message} (is the server running?)")]
    Unreachable { url: String, message: String },
    #[error("the server answered {status}: {message}")]
    Status { status: u16, message: String },
    #[error("the request timed out")]
    Timeout,
    #[error("broken stream: {0}")]
    Stream(String),
    #[error("--prompt {path}: not short, medium or long, and not a readable file: {message}")]
    Prompt { path: String, message: String },
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl BenchError {
    fn from_reqwest(url: &str, e: reqwest::Error) -> BenchError {
        if e.is_timeout() {
            return BenchError::Timeout;
        }
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            message = format!("{message}: {s}");
            source = s.source();
        }
        BenchError::Unreachable { url: url.to_string(), message }
    }
}

/// `--api-key`'s text goes straight into a secret (never a plain `String`).
fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

fn progress(total: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_style(ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}").expect("template"));
    bar.set_message(what.to_string());
    bar
}

/// `warmup` unmeasured requests of `target`, one at a time.
async fn warm_up(client: &reqwest::Client, target: &Target, warmup: usize) -> Result<(), BenchError> {
    for i in 0..warmup {
        // A server that is down or refuses the request fails here, with its reason.
        measure::once(client, target, 1_000_000 + i).await?;
    }
    Ok(())
}

/// Warm-up, then `n` measured requests with `concurrency` in flight, stopping early at `max`.
async fn measure(
    target: &Target,
    n: usize,
    warmup: usize,
    concurrency: usize,
    max: Duration,
) -> Result<(Vec<Sample>, Vec<String>, f64), BenchError> {
    let client = reqwest::Client::new();
    warm_up(&client, target, warmup).await?;
    let bar = progress(n as u64, &format!("{} {}", target.model, target.prompt.chars().count()));
    let next = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Vec::new()));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..concurrency.clamp(1, n.max(1)) {
        let (client, target, next, samples, errors, bar) =
            (client.clone(), target.clone(), next.clone(), samples.clone(), errors.clone(), bar.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n || started.elapsed() >= max {
                    break;
                }
                match measure::once(&client, &target, i).await {
                    Ok(s) => samples.lock().expect("samples").push(s),
                    Err(e) => errors.lock().expect("errors").push(e.to_string()),
                }
                bar.inc(1);
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    bar.finish_and_clear();
    let wall = started.elapsed().as_secs_f64();
    let samples = std::mem::take(&mut *samples.lock().expect("samples"));
    let errors = std::mem::take(&mut *errors.lock().expect("errors"));
    Ok((samples, errors, wall))
}

async fn run(a: RunArgs) -> Result<RunReport, BenchError> {
    if a.n == 0 {
        return Err(BenchError::Usage("-n must be at least 1".into()));
    }
    let stream = !a.no_stream;
    let target = a.common.target(&a.model, a.endpoint, &a.prompt, stream)?;
    let max = Duration::from_secs(a.max_seconds);
    let mut warmup = a.warmup;
    let probe = if a.first_token_probe {
        if a.endpoint == Endpoint::Embeddings {
            return Err(BenchError::Usage("--first-token-probe needs a generating endpoint".into()));
        }
        // The warm-up as without the probe (whole answers), then the same prompt with
        // max_tokens 1, numbered after the measured requests.
        warm_up(&reqwest::Client::new(), &target, std::mem::take(&mut warmup)).await?;
        let probe = Target { max_tokens: 1, first: target.first + a.n, ..target.clone() };
        let (samples, errors, _) = measure(&probe, a.n, 0, a.concurrency, max).await?;
        Some((samples, errors))
    } else {
        None
    };
    let (samples, errors, wall) = measure(&target, a.n, warmup, a.concurrency, max).await?;
    let info = RunInfo {
        unique_prompts: !a.common.same_prompt,
        url: a.common.url,
        model: a.model,
        endpoint: a.endpoint,
        stream: stream && a.endpoint != Endpoint::Embeddings,
        prompt: a.prompt,
        max_tokens: a.common.max_tokens,
        concurrency: a.concurrency,
    };
    let mut report = RunReport::new(info, &samples, &errors, wall);
    if let Some((probe, probe_errors)) = probe {
        report.first_token_probe = Some(FirstTokenProbe::new(&probe, &probe_errors, &samples));
    }
    Ok(report)
}

/// Arrival times (seconds from the start) and prompt choices of an arrivals run: exponential
/// gaps at `rate` and uniform picks among `choices` from a splitmix64 stream seeded by `seed`;
/// `long` requests evenly spaced through the schedule get `None` (the long prompt).
fn schedule(n: usize, rate: f64, seed: u64, choices: usize, long: usize) -> Vec<(f64, Option<usize>)> {
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut t = 0.0;
    (0..n)
        .map(|i| {
            if i > 0 {
                t += -(1.0 - next()).ln() / rate;
            }
            let pick = ((next() * choices as f64) as usize).min(choices.saturating_sub(1));
            let is_long = (1..=long).any(|k| i == k * n / (long + 1));
            (t, (!is_long).then_some(pick))
        })
        .collect()
}

async fn arrivals(a: ArrivalsArgs) -> Result<RunReport, BenchError> {
    if a.n == 0 || a.prompts.is_empty() || a.rate.is_nan() || a.rate <= 0.0 {
        return Err(BenchError::Usage("-n, --prompts and --rate must not be empty or zero".into()));
    }
    let target = |prompt: &str| a.common.target(&a.model, Endpoint::Chat, prompt, true);
    let ordinary = a.prompts.iter().map(|p| target(p)).collect::<Result<Vec<_>, _>>()?;
    let long = target(&a.long_prompt)?;
    let client = reqwest::Client::new();
    // A server that is down or refuses the request fails here, with its reason.
    measure::once(&client, &ordinary[0], 1_000_000).await?;
    let plan = schedule(a.n, a.rate, a.seed, ordinary.len(), a.long);
    let started = tokio::time::Instant::now();
    let tasks: Vec<_> = plan
        .iter()
        .enumerate()
        .map(|(i, &(at, pick))| {
            let (client, target) = (client.clone(), pick.map_or(&long, |p| &ordinary[p]).clone());
            tokio::spawn(async move {
                tokio::time::sleep_until(started + Duration::from_secs_f64(at)).await;
                measure::once(&client, &target, i).await
            })
        })
        .collect();
    let (mut samples, mut errors) = (Vec::new(), Vec::new());
    for t in tasks {
        match t.await {
            Ok(Ok(s)) => samples.push(s),
            Ok(Err(e)) => errors.push(e.to_string()),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let wall = started.elapsed().as_secs_f64();
    let info = RunInfo {
        unique_prompts: !a.common.same_prompt,
        url: a.common.url,
        model: a.model,
        endpoint: Endpoint::Chat,
        stream: true,
        prompt: format!(
            "arrivals: {} requests at {}/s (Poisson, seed {}), {} of them {}, the others among {}",
            a.n,
            a.rate,
            a.seed,
            plan.iter().filter(|p| p.1.is_none()).count(),
            a.long_prompt,
            a.prompts.join("/")
        ),
        max_tokens: a.common.max_tokens,
        concurrency: 0,
    };
    Ok(RunReport::new(info, &samples, &errors, wall))
}

async fn models(common: &Common) -> Result<Vec<String>, BenchError> {
    let mut req = reqwest::Client::new().get(format!("{}/v1/models", common.url.trim_end_matches('/')));
    if let Some(key) = &common.api_key {
        req = req.bearer_auth(key.expose_secret());
    }
    let r = req.send().await.map_err(|e| BenchError::from_reqwest(&common.url, e))?;
    if !r.status().is_success() {
        return Err(BenchError::Status { status: r.status().as_u16(), message: "GET /v1/models failed".into() });
    }
    let v: serde_json::Value = r.json().await.map_err(|e| BenchError::from_reqwest(&common.url, e))?;
    Ok(v["data"].as_array().into_iter().flatten().filter_map(|m| m["id"].as_str().map(str::to_string)).collect())
}

async fn suite(a: SuiteArgs) -> Result<Vec<RunReport>, BenchError> {
    let models = if a.models.is_empty() { models(&a.common).await? } else { a.models.clone() };
    if models.is_empty() {
        return Err(BenchError::Usage("no models: pass --models or serve at least one".into()));
    }
    let mut reports = Vec::new();
    for model in &models {
        for prompt in ["short", "medium", "long"] {
            let target = a.common.target(model, Endpoint::Chat, prompt, true)?;
            let (samples, errors, wall) = measure(&target, a.runs.max(1), 1, 1, Duration::from_secs(3600)).await?;
            let info = RunInfo {
                unique_prompts: !a.common.same_prompt,
                url: a.common.url.clone(),
                model: model.clone(),
                endpoint: Endpoint::Chat,
                stream: true,
                prompt: prompt.to_string(),
                max_tokens: a.common.max_tokens,
                concurrency: 1,
            };
            reports.push(RunReport::new(info, &samples, &errors, wall));
        }
    }
    if let Some(path) = &a.output {
        let json = serde_json::json!({"url": a.common.url, "runs": a.runs, "results": reports});
        std::fs::write(path, serde_json::to_vec_pretty(&json).expect("json"))?;
    }
    Ok(reports)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let (json, result) = match cli.command {
        Command::Run(a) => {
            let json = a.json;
            (json, runtime.block_on(run(a)).map(|r| vec![r]))
        }
        Command::Suite(a) => (false, runtime.block_on(suite(a))),
        Command::Arrivals(a) => {
            let json = a.json;
            (json, runtime.block_on(arrivals(a)).map(|r| vec![r]))
        }
    };
    match result {
        Ok(reports) => {
            if json && reports.len() == 1 {
                println!("{}", serde_json::to_string_pretty(&reports[0]).expect("json"));
            } else if reports.len() == 1 {
                print!("{}", reports[0].markdown());
            } else {
                print!("{}", report::suite_markdown(&reports));
            }
            let failed: usize =
                reports.iter().map(|r| r.failed + r.first_token_probe.as_ref().map_or(0, |p| p.failed)).sum();
            if failed > 0 {
                let first = reports
                    .iter()
                    .flat_map(|r| r.errors.iter().chain(r.first_token_probe.iter().flat_map(|p| &p.errors)))
                    .next()
                    .cloned()
                    .unwrap_or_default();
                eprintln!("error: {failed} request(s) failed; first: {first}");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(if matches!(e, BenchError::Unreachable { .. }) { 2 } else { 1 })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::schedule;

    #[test]
    fn arrivals_are_seeded_ordered_and_place_the_long_prompts_evenly() {
        let plan = schedule(24, 2.0, 7, 2, 2);
        assert_eq!(plan, schedule(24, 2.0, 7, 2, 2));
        assert_ne!(plan, schedule(24, 2.0, 8, 2, 2));
        assert_eq!(plan[0].0, 0.0);
        assert!(plan.windows(2).all(|w| w[0].0 <= w[1].0));
        let long: Vec<usize> = plan.iter().enumerate().filter(|p| p.1 .1.is_none()).map(|p| p.0).collect();
        assert_eq!(long, [8, 16]);
        assert!(plan.iter().filter_map(|p| p.1).all(|pick| pick < 2));
        // Mean gap near 1 / rate over a long schedule.
        let many = schedule(4000, 2.0, 1, 1, 0);
        let mean = many.last().unwrap().0 / 3999.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
