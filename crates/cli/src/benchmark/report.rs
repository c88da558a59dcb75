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
    /// `run --first-token-probe`: the first token and the decode rate timed from end-to-end
    /// times, whatever the server streams when.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_probe: Option<FirstTokenProbe>,
}

/// `run --first-token-probe`: as many requests as measured, same prompt and concurrency but
/// max_tokens 1 (numbered after the measured ones, so every prompt is still unique), sent first.
/// A request with max_tokens 1 ends when the server has generated its first token, so its
/// end-to-end time is the time to first token however the server streams text; the measured
/// requests' decode rate follows from their end-to-end times.
#[derive(Debug, Clone, Serialize)]
pub struct FirstTokenProbe {
    /// max_tokens-1 requests sent (warm-up excluded).
    pub requests: usize,
    pub failed: usize,
    /// Their end-to-end times: the time to first token.
    pub ttft_ms: Option<Summary>,
    pub prompt_tokens: Option<Summary>,
    pub completion_tokens: Option<Summary>,
    /// Each measured request's (completion tokens − 1) / (end-to-end − `ttft_ms` p50).
    pub decode_tokens_per_second: Option<Summary>,
    /// Distinct error messages of the max_tokens-1 requests (at most five).
    pub errors: Vec<String>,
}

impl FirstTokenProbe {
    /// `probe`: the max_tokens-1 requests; `measured`: the run's own requests.
    pub fn new(probe: &[Sample], errors: &[String], measured: &[Sample]) -> FirstTokenProbe {
        let ttft_ms = summarize(&probe.iter().map(|s| s.e2e * 1e3).collect::<Vec<_>>());
        let decode: Vec<f64> = match ttft_ms {
            Some(t) => measured
                .iter()
                .filter(|s| s.completion_tokens > 1 && s.e2e > t.p50 / 1e3)
                .map(|s| f64::from(s.completion_tokens - 1) / (s.e2e - t.p50 / 1e3))
                .collect(),
            None => Vec::new(),
        };
        FirstTokenProbe {
            requests: probe.len() + errors.len(),
            failed: errors.len(),
            ttft_ms,
            prompt_tokens: summarize(&probe.iter().map(|s| f64::from(s.prompt_tokens)).collect::<Vec<_>>()),
            completion_tokens: summarize(&probe.iter().map(|s| f64::from(s.completion_tokens)).collect::<Vec<_>>()),
            decode_tokens_per_second: summarize(&decode),
            errors: distinct(errors),
        }
    }
}

/// The distinct messages among `errors`, at most five.
fn distinct(errors: &[String]) -> Vec<String> {
    let mut distinct: Vec<String> = Vec::new();
    for e in errors {
        if !distinct.contains(e) && distinct.len() < 5 {
            distinct.push(e.clone());
        }
    }
    distinct
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
            errors: distinct(errors),
            first_token_probe: None,
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
        if let Some(p) = &self.first_token_probe {
            out.push_str(&format!(
                "\nTimed without text events ({} max_tokens-1 requests of the same prompt first, {} failed):\n\n\
                 | metric | min | avg | p50 | p95 | max |\n|---|---:|---:|---:|---:|---:|\n",
                p.requests, p.failed
            ));
            let rows: [(&str, &Option<Summary>); 3] = [
                ("time to first token = end-to-end at max_tokens 1 (ms)", &p.ttft_ms),
                ("decode = (tokens − 1) / (end-to-end − that p50) (tokens/s)", &p.decode_tokens_per_second),
                ("prompt tokens (max_tokens 1)", &p.prompt_tokens),
            ];
            for (name, s) in rows {
                if let Some(s) = s {
                    out.push_str(&format!(
                        "| {name} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                        s.min, s.avg, s.p50, s.p95, s.max
                    ));
                }
            }
        }
        for e in self.errors.iter().chain(self.first_token_probe.iter().flat_map(|p| &p.errors)) {
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

#[cfg(test)]
mod tests {
    use super::FirstTokenProbe;
    use crate::measure::Sample;

    #[test]
    fn the_probe_times_the_first_token_and_decode_from_end_to_end_times() {
        let at = |e2e: f64, completion_tokens: u32| Sample { e2e, completion_tokens, ..Sample::default() };
        // max_tokens 1 took 1.9, 2.0 and 2.4 s: the first token at 2.0 s (p50).
        let probe = [at(2.4, 1), at(1.9, 1), at(2.0, 1)];
        // 65 tokens in 10 s: 64 after the first, in 8 s. A request that ended before the first
        // token's time, or with one token, has no rate.
        let measured = [at(10.0, 65), at(12.0, 81), at(1.5, 3), at(9.0, 1)];
        let p = FirstTokenProbe::new(&probe, &["refused".to_string()], &measured);
        assert_eq!((p.requests, p.failed), (4, 1));
        let ttft = p.ttft_ms.unwrap();
        assert!((ttft.p50 - 2000.0).abs() < 1e-9 && (ttft.min - 1900.0).abs() < 1e-9);
        let decode = p.decode_tokens_per_second.unwrap();
        assert_eq!(decode.count, 2);
        assert!((decode.min - 8.0).abs() < 1e-9 && (decode.max - 8.0).abs() < 1e-9, "{decode:?}");
        assert!(FirstTokenProbe::new(&[], &[], &measured).decode_tokens_per_second.is_none());
    }
}
