//! The built-in prompts (short, medium, long) and prompts read from a file.

use std::path::Path;

use crate::BenchError;

const PARAGRAPH: &str = "The harbour town woke slowly. Fishing boats returned with the tide, gulls argued over \
the nets, and the baker on the corner pulled the first loaves from an oven older than the pier. Visitors \
walked the sea wall, reading the weathered plaques about storms, shipwrecks and the lighthouse keeper who \
kept the lamp burning for forty winters. ";

/// The text of a `--prompt` value: `short`, `medium`, `long`, `paragraphs:N` (N paragraphs of
/// about 65 words before the question) or a file path.
pub fn resolve(name: &str) -> Result<String, BenchError> {
    if let Some(n) = name.strip_prefix("paragraphs:").and_then(|n| n.parse::<usize>().ok()) {
        return Ok(format!("{}\nSummarise the text above in two sentences.", PARAGRAPH.repeat(n)));
    }
    Ok(match name {
        "short" => "Say hello in one sentence.".to_string(),
        // About 200 and 1,600 words of context before the question.
        "medium" => format!("{}\nSummarise the text above in two sentences.", PARAGRAPH.repeat(3)),
        "long" => format!("{}\nSummarise the text above in two sentences.", PARAGRAPH.repeat(24)),
        path => std::fs::read_to_string(Path::new(path))
            .map_err(|e| BenchError::Prompt { path: path.to_string(), message: e.to_string() })?,
    })
}
