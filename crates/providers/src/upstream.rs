//! One HTTP call to a provider: its URL and auth headers, the response-headers timeout, and
//! error statuses turned into [`ProviderError`]s (with the key scrubbed from anything echoed).

use std::pin::Pin;
use std::time::Duration;

use eventsource_stream::Eventsource;
use futures_util::{Stream, StreamExt};
use mlx_manager_core::{ExposeSecret, ProviderConfig, SecretString};
use serde_json::Value;

use crate::error::{scrub, ProviderError};

/// A configured provider with its key (a secret: `{:?}` prints it redacted).
#[derive(Debug, Clone)]
pub struct Provider {
    /// The stored settings.
    pub config: ProviderConfig,
    pub(crate) key: Option<SecretString>,
}

/// The Anthropic API version we speak.
pub(crate) const ANTHROPIC_VERSION: &str = "2023-06-01";

/// An upstream server-sent event.
pub(crate) struct UpEvent {
    pub(crate) data: String,
}

pub(crate) type UpStream = Pin<Box<dyn Stream<Item = Result<UpEvent, ProviderError>> + Send>>;

impl Provider {
    /// The provider's name.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.config.base_url.trim_end_matches('/'), path.trim_start_matches('/'))
    }

    /// The path of an API under the base URL (`/v1` is part of OpenAI-style base URLs only).
    pub(crate) fn api_path(&self, openai_path: &str) -> String {
        if self.config.kind.is_anthropic() {
            format!("v1/{openai_path}")
        } else {
            openai_path.to_string()
        }
    }

    pub(crate) fn request(
        &self,
        client: &reqwest::Client,
        method: reqwest::Method,
        path: &str,
    ) -> reqwest::RequestBuilder {
        let mut req = client.request(method, self.url(path));
        for (k, v) in &self.config.extra_headers {
            req = req.header(k, v);
        }
        if self.config.kind.is_anthropic() {
            req = req.header("anthropic-version", ANTHROPIC_VERSION);
            if let Some(key) = &self.key {
                req = req.header("x-api-key", key.expose_secret());
            }
        } else if let Some(key) = &self.key {
            req = req.bearer_auth(key.expose_secret());
        }
        req
    }

    fn unreachable(&self, e: &reqwest::Error) -> ProviderError {
        // reqwest's message names the URL (no key in it) and the cause.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        ProviderError::Unreachable { provider: self.config.name.clone(), message: scrub(&message, self.key.as_ref()) }
    }

    /// Sends `req`, waiting at most `timeout` for the response headers; error statuses become
    /// [`ProviderError::UpstreamStatus`].
    pub(crate) async fn send(
        &self,
        req: reqwest::RequestBuilder,
        timeout: Duration,
    ) -> Result<reqwest::Response, ProviderError> {
        let response = match tokio::time::timeout(timeout, req.send()).await {
            Err(_) => {
                return Err(ProviderError::UpstreamTimeout {
                    provider: self.config.name.clone(),
                    seconds: timeout.as_secs().max(1) as u32,
                })
            }
            Ok(Err(e)) if e.is_timeout() => {
                return Err(ProviderError::UpstreamTimeout {
                    provider: self.config.name.clone(),
                    seconds: timeout.as_secs().max(1) as u32,
                })
            }
            Ok(Err(e)) => return Err(self.unreachable(&e)),
            Ok(Ok(r)) => r,
        };
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u32>().ok());
        let text = tokio::time::timeout(Duration::from_secs(10), response.text()).await.ok().and_then(|r| r.ok());
        let message = text.as_deref().map(error_message).unwrap_or_else(|| "no details".to_string());
        Err(ProviderError::UpstreamStatus {
            provider: self.config.name.clone(),
            status,
            message: scrub(&message, self.key.as_ref()),
            retry_after,
        })
    }

    /// Sends a JSON body and reads a JSON answer.
    pub(crate) async fn post_json(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<Value, ProviderError> {
        let response = self.send(self.request(client, reqwest::Method::POST, path).json(body), timeout).await?;
        let bytes = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        serde_json::from_slice(&bytes).map_err(|e| ProviderError::Protocol {
            provider: self.config.name.clone(),
            message: format!("not JSON: {e}"),
        })
    }

    /// Sends a JSON body and reads the answer as server-sent events.
    pub(crate) async fn post_stream(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: &Value,
        timeout: Duration,
    ) -> Result<UpStream, ProviderError> {
        let response = self.send(self.request(client, reqwest::Method::POST, path).json(body), timeout).await?;
        let this = self.clone();
        let events = response.bytes_stream().eventsource().map(move |item| match item {
            Ok(e) => Ok(UpEvent { data: e.data }),
            Err(eventsource_stream::EventStreamError::Transport(e)) => Err(this.unreachable(&e)),
            Err(e) => Err(ProviderError::Protocol { provider: this.config.name.clone(), message: e.to_string() }),
        });
        Ok(Box::pin(events))
    }
}

/// The human message in an error body: OpenAI's and Anthropic's `error.message`, a problem
/// document's `detail`, or the start of the text.
fn error_message(text: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(text) {
        let found = v
            .pointer("/error/message")
            .or_else(|| v.get("detail"))
            .or_else(|| v.get("message"))
            .and_then(Value::as_str);
        if let Some(m) = found {
            return m.to_string();
        }
    }
    let t = text.trim();
    if t.is_empty() {
        "no details".to_string()
    } else {
        t.chars().take(500).collect()
    }
}
