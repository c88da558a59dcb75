//! Which of a repo's files a model needs.
//!
//! The same patterns mlx-lm downloads with (`mlx_lm.utils.DEFAULT_ALLOW_PATTERNS`), so a model
//! pulled here is exactly what `mlx_lm.generate --model org/name` would have fetched and its
//! snapshot check (`hf_repo_to_path`) accepts it — except `*.py`: this app never runs a repo's
//! code. Weights other than `model*.safetensors` (`consolidated.safetensors`, `*.bin`, `*.gguf`,
//! `original/`), README, images and `.gitattributes` are skipped.

/// mlx-lm's allow patterns, in fnmatch syntax (`*` also matches `/`), without `*.py`.
const PATTERNS: &[&str] =
    &["*.json", "model*.safetensors", "tokenizer.model", "*.tiktoken", "tiktoken.model", "*.txt", "*.jsonl", "*.jinja"];

/// `fnmatch` with `*` as the only wildcard (all the patterns above use).
fn matches(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = name.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether a file (its path in the repo) is one a model needs.
pub fn is_model_file(name: &str) -> bool {
    PATTERNS.iter().any(|p| matches(p, name))
}

/// Whether a file is a weight shard.
pub(crate) fn is_weights(name: &str) -> bool {
    matches("model*.safetensors", name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_model_is_its_config_tokenizer_template_and_safetensors() {
        for needed in [
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "special_tokens_map.json",
            "chat_template.jinja",
            "chat_template.json",
            "tokenizer.model",
            "merges.txt",
            "vocab.json",
            "added_tokens.json",
            "model.safetensors",
            "model-00001-of-00002.safetensors",
            "model.safetensors.index.json",
            "additional_chat_templates/tool_use.jinja",
            "qwen.tiktoken",
        ] {
            assert!(is_model_file(needed), "{needed}");
        }
        for skipped in [
            "README.md",
            ".gitattributes",
            "consolidated.safetensors",
            "pytorch_model.bin",
            "model.gguf",
            "modeling_custom.py",
            "tokenization_custom.py",
            "original/consolidated.00.pth",
            "figures/benchmark.png",
            "onnx/model.onnx",
        ] {
            assert!(!is_model_file(skipped), "{skipped}");
        }
        assert!(is_weights("model-00002-of-00002.safetensors") && !is_weights("model.safetensors.index.json"));
    }

    #[test]
    fn fnmatch_star_crosses_folders_as_python_does() {
        assert!(matches("*.json", "original/params.json"));
        assert!(matches("a*b*c", "a--b--c") && matches("a*b*c", "abc") && !matches("a*b*c", "acb"));
        assert!(matches("x", "x") && !matches("x", "xy"));
    }
}
