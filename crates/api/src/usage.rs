//! Token counts as each API spells them.

use serde::{Deserialize, Serialize};

/// Cached prompt tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PromptTokensDetails {
    /// Prompt tokens served from the prompt cache.
    #[serde(default)]
    pub cached_tokens: u32,
}

/// OpenAI `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OpenAiUsage {
    /// Prompt tokens.
    #[serde(default)]
    pub prompt_tokens: u32,
    /// Generated tokens.
    #[serde(default)]
    pub completion_tokens: u32,
    /// Both.
    #[serde(default)]
    pub total_tokens: u32,
    /// Cache details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_tokens_details: Option<PromptTokensDetails>,
}

/// Anthropic `usage`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AnthropicUsage {
    /// Prompt tokens.
    #[serde(default)]
    pub input_tokens: u32,
    /// Generated tokens.
    #[serde(default)]
    pub output_tokens: u32,
    /// Prompt tokens read from the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_tokens: Option<u32>,
    /// Prompt tokens written to the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_tokens: Option<u32>,
}

/// Token counts independent of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt_tokens: u32,
    /// Generated tokens.
    pub completion_tokens: u32,
    /// Prompt tokens served from a cache.
    pub cached_tokens: u32,
}

impl From<Usage> for OpenAiUsage {
    fn from(u: Usage) -> Self {
        OpenAiUsage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.prompt_tokens + u.completion_tokens,
            prompt_tokens_details: Some(PromptTokensDetails { cached_tokens: u.cached_tokens }),
        }
    }
}

impl From<OpenAiUsage> for Usage {
    fn from(u: OpenAiUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            cached_tokens: u.prompt_tokens_details.map_or(0, |d| d.cached_tokens),
        }
    }
}

impl From<Usage> for AnthropicUsage {
    fn from(u: Usage) -> Self {
        AnthropicUsage {
            input_tokens: u.prompt_tokens,
            output_tokens: u.completion_tokens,
            cache_read_input_tokens: Some(u.cached_tokens),
            cache_creation_input_tokens: None,
        }
    }
}

impl From<AnthropicUsage> for Usage {
    fn from(u: AnthropicUsage) -> Self {
        Usage {
            prompt_tokens: u.input_tokens,
            completion_tokens: u.output_tokens,
            cached_tokens: u.cache_read_input_tokens.unwrap_or(0),
        }
    }
}
