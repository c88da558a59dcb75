//! A run's results: JSON for machines, a Markdown table for people.

use serde::Serialize;

use crate::measure::{Endpoint, Sample};
use crate::stats::{summarize, Summary};

/// Everything measured in one run.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub url: String,
    pub model: String,
    pub endpoint: Endpoint,
    pub stream: bool,
    pub prompt: String,
    pub max_tokens: u32,
    pub concurrency: usize,
    /// Every request had its own prompt (no prompt cache could help).
    pub unique_prompts: bool,
    /// Requests measured (warm-up excluded).
    pub requests: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub wall_seconds: f64,
    pub requests_per_second: f64,
    pub ttft_ms: Option<Summary>,
    pub e2e_ms: Option<Summary>,
    /// Streams: (completion tokens − 1) / (end − first token); otherwise completion tokens / end-to-end.
    pub decode_tokens_per_second: Option<Summary>,
    pub inter_token_ms: Option<Summary>,
    /// Each stream's longest gap between two text events: how long a running stream stalled.
    pub max_gap_ms: Option<Summary>,
    /// All completion tokens over the wall time (aggregate throughput).
    pub output_tokens_per_second: f64,
    pub prompt_tokens: Option<Summary>,
    pub completion_tokens: Option<Summary>,
    /// The server sent no `usage`: completion tokens are the number of streamed text events.
    pub tokens_counted_from_stream: bool,
    /// Distinct error messages (at most five).
    pub errors: Vec<String>,
}

pub struct RunInfo {
    pub unique_prompts: bool,
    pub url: String,
    pub model: String,
    pub endpoint: Endpoint,
    pub stream: bool,
    pub prompt: String,
    pub max_tokens: u32,
    pub concurrency: usize,
}

impl RunReport {
    pub fn new(info: RunInfo, samples: &[Sample], errors: &[String], wall_seconds: f64) -> RunReport {
        let ms = |f: &dyn Fn(&Sample) -> Option<f64>| {
            summarize(&samples.iter().filter_map(f).map(|v| v * 1e3).collect::<Vec<_>>())
        };
        let decode: Vec<f64> = samples
            .iter()
            .filter_map(|s| match s.ttft {
                Some(first) if s.completion_tokens > 1 && s.e2e > first => {
                    Some(f64::from(s.completion_tokens - 1) / (s.e2e - first))
                }
                None if s.completion_tokens > 0 && s.e2e > 0.0 => Some(f64::from(s.completion_tokens) / s.e2e),
                _ => None,
            })
            .collect();
        let gaps: Vec<f64> = samples.iter().flat_map(|s| s.gaps.iter().map(|g| g * 1e3)).collect();
        let max_gaps: Vec<f64> =
            samples.iter().filter_map(|s| s.gaps.iter().copied().reduce(f64::max)).map(|g| g * 1e3).collect();
        let tokens: f64 = samples.iter().map(|s| f64::from(s.completion_tokens)).sum();
        let mut distinct: Vec<String> = Vec::new();
        for e in errors {
            if !distinct.contains(e) && distinct.len() < 5 {
                distinct.push(e.clone());
            }
        }
        let requests = samples.len() + errors.len();
        RunReport {
            url: info.url,
            model: info.model,
            endpoint: info.endpoint,
            stream: info.stream,
            prompt: info.prompt,
            max_tokens: info.max_tokens,
            concurrency: info.concurrency,
            unique_prompts: info.unique_prompts,
            requests,
            succeeded: samples.len(),
            failed: errors.len(),
            wall_seconds,
            requests_per_second: if wall_seconds > 0.0 { samples.len() as f64 / wall_seconds } else { 0.0 },
            ttft_ms: ms(&|s| s.ttft),
            e2e_ms: ms(&|s| Some(s.e2e)),
            decode_tokens_per_second: summarize(&decode),
            inter_token_ms: summarize(&gaps),
            max_gap_ms: summarize(&max_gaps),
            output_tokens_per_second: if wall_seconds > 0.0 { tokens / wall_seconds } else { 0.0 },
            prompt_tokens: summarize(&samples.iter().map(|s| f64::from(s.prompt_tokens)).collect::<Vec<_>>()),
            completion_tokens: summarize(&samples.iter().map(|s| f64::from(s.completion_tokens)).collect::<Vec<_>>()),
            tokens_counted_from_stream: samples.iter().any(|s| s.counted),
            errors: distinct,
        }
    }

    /// The run as a Markdown section.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "### {} · {} · {} · prompt {} · {} requests ({} failed) · concurrency {}\n\n",
            self.model,
            self.endpoint.as_str(),
            if self.stream { "stream" } else { "no stream" },
            self.prompt,
            self.requests,
            self.failed,
            self.concurrency
        );
        out.push_str("| metric | min | avg | p50 | p95 | max |\n|---|---:|---:|---:|---:|---:|\n");
        let rows: [(&str, &Option<Summary>); 7] = [
            ("time to first token (ms)", &self.ttft_ms),
            ("end-to-end (ms)", &self.e2e_ms),
            ("decode (tokens/s)", &self.decode_tokens_per_second),
            ("inter-token (ms)", &self.inter_token_ms),
            ("longest gap per stream (ms)", &self.max_gap_ms),
            ("prompt tokens", &self.prompt_tokens),
            ("completion tokens", &self.completion_tokens),
        ];
        for (name, s) in rows {
            if let Some(s) = s {
                out.push_str(&format!(
                    "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                    s.min, s.avg, s.p50, s.p95, s.max
                ));
            }
        }
        out.push_str(&format!(
            "\nrequests/s: {:.2}, output tokens/s: {:.1} (wall {:.2} s){}\n",
            self.requests_per_second,
            self.output_tokens_per_second,
            self.wall_seconds,
            if self.tokens_counted_from_stream {
                "; no usage from the server: tokens counted from stream events"
            } else {
                ""
            }
        ));
        for e in &self.errors {
            out.push_str(&format!("\nerror: {e}\n"));
        }
        out
    }
}

/// One line per run: the suite's table.
pub fn suite_markdown(reports: &[RunReport]) -> String {
    let mut out = String::from(
        "| model | prompt | TTFT p50 (ms) | decode p50 (tok/s) | end-to-end p50 (ms) | requests/s | failed |\n|---|---|---:|---:|---:|---:|---:|\n",
    );
    let f = |s: &Option<Summary>| s.map_or("—".to_string(), |s| format!("{:.1}", s.p50));
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.2} | {} |\n",
            r.model,
            r.prompt,
            f(&r.ttft_ms),
            f(&r.decode_tokens_per_second),
            f(&r.e2e_ms),
            r.requests_per_second,
            r.failed
        ));
    }
    out
}
