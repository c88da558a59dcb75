//! The providers and routing rules in force: validated edits (persisted, then swapped in so the
//! next request uses them — no restart), keys through [`Secrets`], and route resolution.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use mlx_manager_core::{
    BackendType, ExposeSecret, KeyStorage, ProviderConfig, ProviderInput, ProviderKind, ProviderTestResult,
    ProviderView, RouteTest, RoutingConfig, RoutingRule, RoutingStore, RuleInput, SecretString, LOCAL_BACKEND,
};
use serde_json::{Map, Value};

use crate::error::ProviderError;
use crate::rules::{self, Compiled};
use crate::secrets::Secrets;
use crate::upstream::Provider;
use crate::{translate, ChatReply, Reply};

/// Headers MLX Manager sets itself.
const RESERVED_HEADERS: &[&str] =
    &["authorization", "x-api-key", "anthropic-version", "content-type", "content-length", "host"];

/// Where one leg of a route goes.
#[derive(Debug, Clone)]
pub enum Backend {
    /// The local engine.
    Local,
    /// A provider.
    Provider(Arc<Provider>),
}

/// A backend and the model name it receives.
#[derive(Debug, Clone)]
pub struct Target {
    /// Where.
    pub backend: Backend,
    /// The model name sent there.
    pub model: String,
}

impl Target {
    /// `local` or the provider's name.
    pub fn name(&self) -> &str {
        match &self.backend {
            Backend::Local => LOCAL_BACKEND,
            Backend::Provider(p) => p.name(),
        }
    }

    /// The audit backend type.
    pub fn backend_type(&self) -> BackendType {
        match &self.backend {
            Backend::Local => BackendType::Local,
            Backend::Provider(p) => p.config.kind.backend_type(),
        }
    }
}

/// What a matching rule decided.
#[derive(Debug, Clone)]
pub struct Route {
    /// The rule.
    pub rule_id: u32,
    /// First choice.
    pub primary: Target,
    /// Serves the request when the first choice fails in a way that allows it.
    pub fallback: Option<Target>,
}

#[derive(Default)]
struct Snapshot {
    providers: BTreeMap<String, Arc<Provider>>,
    rules: Vec<Compiled>,
}

/// Providers, rules and the HTTP client that calls providers.
pub struct Catalog {
    /// Where providers and rules are saved (the store crate's database, in the binaries).
    store: Arc<dyn RoutingStore>,
    secrets: Secrets,
    /// Built on first use: a TLS client loads the system's root certificates (several MB), which
    /// nobody without providers should pay for.
    client: OnceLock<reqwest::Client>,
    snapshot: RwLock<Arc<Snapshot>>,
    edits: tokio::sync::Mutex<()>,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.' || b == b'-')
        && !name.eq_ignore_ascii_case(LOCAL_BACKEND)
}

/// Checks and normalises a provider's settings (the key is checked by the caller, who knows the
/// stored one).
fn check_provider(input: &ProviderInput) -> Result<ProviderConfig, ProviderError> {
    if !valid_name(&input.name) {
        return Err(ProviderError::InvalidName { name: input.name.clone() });
    }
    let raw = input.base_url.trim();
    let raw = if raw.is_empty() {
        input.kind.default_base_url().ok_or_else(|| ProviderError::InvalidUrl {
            url: String::new(),
            message: "required for compatible servers".into(),
        })?
    } else {
        raw
    };
    let bad = |message: &str| ProviderError::InvalidUrl { url: raw.to_string(), message: message.to_string() };
    let url = reqwest::Url::parse(raw).map_err(|e| bad(&format!("{e} (write it as http://host:port/…)")))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("no host"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("put credentials in the API key, not the URL"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("no query or fragment"));
    }
    for (k, v) in &input.extra_headers {
        let invalid = |message: &str| ProviderError::InvalidHeader { name: k.clone(), message: message.to_string() };
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).map_err(|_| invalid("not a header name"))?;
        if RESERVED_HEADERS.contains(&name.as_str()) {
            return Err(invalid("set by MLX Manager (use the API key field)"));
        }
        reqwest::header::HeaderValue::from_str(v).map_err(|_| invalid("not a valid header value"))?;
    }
    if input.timeout_seconds.is_some_and(|t| !(1..=86_400).contains(&t)) {
        return Err(ProviderError::InvalidTimeout);
    }
    Ok(ProviderConfig {
        name: input.name.clone(),
        kind: input.kind,
        base_url: raw.trim_end_matches('/').to_string(),
        extra_headers: input.extra_headers.clone(),
        enabled: input.enabled,
        timeout_seconds: input.timeout_seconds,
    })
}

fn hint(key: &SecretString) -> String {
    let key = key.expose_secret();
    let tail: String = key.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect();
    if key.chars().count() >= 12 {
        format!("…{tail}")
    } else {
        "…".to_string()
    }
}

impl Catalog {
    /// Loads the saved providers and rules (keys from `secrets`).
    pub async fn open(store: Arc<dyn RoutingStore>, secrets: Secrets) -> Result<Catalog, ProviderError> {
        let RoutingConfig { providers: configs, rules: saved } = store.load_routing().await?;
        let mut providers = BTreeMap::new();
        for config in configs {
            let key = secrets.get(&config.name).unwrap_or_else(|e| {
                tracing::warn!(provider = %config.name, error = %e, "provider key unavailable");
                None
            });
            providers.insert(config.name.clone(), Arc::new(Provider { config, key }));
        }
        let mut compiled = Vec::new();
        for rule in saved {
            match Compiled::new(rule) {
                Ok(c) => compiled.push(c),
                Err(e) => tracing::warn!(error = %e, "stored routing rule skipped"),
            }
        }
        rules::sort(&mut compiled);
        Ok(Catalog {
            store,
            secrets,
            client: OnceLock::new(),
            snapshot: RwLock::new(Arc::new(Snapshot { providers, rules: compiled })),
            edits: tokio::sync::Mutex::new(()),
        })
    }

    /// The client that calls providers, built the first time one is called.
    fn client(&self) -> Result<&reqwest::Client, ProviderError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| ProviderError::Secret(format!("HTTP client: {e}")))?;
        Ok(self.client.get_or_init(|| client))
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Where provider keys are kept.
    pub fn key_storage(&self) -> KeyStorage {
        self.secrets.storage()
    }

    fn target(snapshot: &Snapshot, backend: &str, model: String) -> Option<Target> {
        if backend == LOCAL_BACKEND {
            return Some(Target { backend: Backend::Local, model });
        }
        let p = snapshot.providers.get(backend).filter(|p| p.config.enabled)?;
        Some(Target { backend: Backend::Provider(p.clone()), model })
    }

    /// The route of a model name: the first enabled rule (by priority) that matches and has an
    /// enabled backend. None: the local engine serves it under its own name.
    pub fn resolve(&self, model: &str) -> Option<Route> {
        let snapshot = self.snapshot();
        for c in snapshot.rules.iter().filter(|c| c.matches(model)) {
            let r = &c.rule.rule;
            let primary = Self::target(&snapshot, &r.backend, r.backend_model.clone().unwrap_or_else(|| model.into()));
            let fallback = r
                .fallback
                .as_deref()
                .and_then(|f| Self::target(&snapshot, f, r.fallback_model.clone().unwrap_or_else(|| model.into())));
            match (primary, fallback) {
                (Some(primary), fallback) => return Some(Route { rule_id: c.rule.id, primary, fallback }),
                (None, Some(fallback)) => return Some(Route { rule_id: c.rule.id, primary: fallback, fallback: None }),
                (None, None) => continue,
            }
        }
        None
    }

    /// Where `model` would go ("Test rule").
    pub fn test_route(&self, model: &str) -> RouteTest {
        match self.resolve(model) {
            Some(route) => RouteTest {
                model: model.to_string(),
                rule_id: Some(route.rule_id),
                backend: route.primary.name().to_string(),
                backend_type: route.primary.backend_type(),
                backend_model: route.primary.model.clone(),
                fallback: route.fallback.as_ref().map(|f| f.name().to_string()),
                fallback_model: route.fallback.map(|f| f.model),
            },
            None => RouteTest {
                model: model.to_string(),
                rule_id: None,
                backend: LOCAL_BACKEND.to_string(),
                backend_type: BackendType::Local,
                backend_model: model.to_string(),
                fallback: None,
                fallback_model: None,
            },
        }
    }

    fn view(&self, p: &Provider) -> ProviderView {
        ProviderView {
            config: p.config.clone(),
            api_key_hint: p.key.as_ref().map(hint),
            key_storage: self.key_storage(),
        }
    }

    /// Every provider, by name.
    pub fn providers(&self) -> Vec<ProviderView> {
        self.snapshot().providers.values().map(|p| self.view(p)).collect()
    }

    /// One provider with its key, for calling it.
    pub fn provider(&self, name: &str) -> Option<Arc<Provider>> {
        self.snapshot().providers.get(name).cloned()
    }

    /// Every rule, in matching order.
    pub fn rules(&self) -> Vec<RoutingRule> {
        self.snapshot().rules.iter().map(|c| c.rule.clone()).collect()
    }

    async fn commit(
        &self,
        providers: BTreeMap<String, Arc<Provider>>,
        mut rules: Vec<Compiled>,
    ) -> Result<(), ProviderError> {
        rules::sort(&mut rules);
        let saved = RoutingConfig {
            providers: providers.values().map(|p| p.config.clone()).collect(),
            rules: rules.iter().map(|c| c.rule.clone()).collect(),
        };
        self.store.save_routing(saved).await?;
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(Snapshot { providers, rules });
        Ok(())
    }

    /// Adds a provider.
    pub async fn create_provider(&self, input: ProviderInput) -> Result<ProviderView, ProviderError> {
        let _edit = self.edits.lock().await;
        let config = check_provider(&input)?;
        let snapshot = self.snapshot();
        if snapshot.providers.contains_key(&config.name) {
            return Err(ProviderError::DuplicateProvider(config.name));
        }
        let key = input.api_key.filter(|k| !k.expose_secret().is_empty());
        if key.is_none() && config.kind.requires_key() {
            return Err(ProviderError::MissingKey { provider: config.name });
        }
        if let Some(k) = &key {
            self.secrets.set(&config.name, k)?;
        }
        let provider = Arc::new(Provider { config, key });
        let mut providers = snapshot.providers.clone();
        providers.insert(provider.config.name.clone(), provider.clone());
        self.commit(providers, snapshot.rules.clone()).await?;
        Ok(self.view(&provider))
    }

    /// Changes (and maybe renames) a provider; rules follow a rename.
    pub async fn update_provider(&self, name: &str, input: ProviderInput) -> Result<ProviderView, ProviderError> {
        let _edit = self.edits.lock().await;
        let snapshot = self.snapshot();
        let old = snapshot.providers.get(name).ok_or_else(|| ProviderError::ProviderNotFound(name.to_string()))?;
        let config = check_provider(&input)?;
        let renamed = config.name != name;
        if renamed && snapshot.providers.contains_key(&config.name) {
            return Err(ProviderError::DuplicateProvider(config.name));
        }
        let key = match input.api_key {
            None => old.key.clone(),
            Some(k) if k.expose_secret().is_empty() => None,
            Some(k) => Some(k),
        };
        if key.is_none() && config.kind.requires_key() {
            return Err(ProviderError::MissingKey { provider: config.name });
        }
        let changed = |k: &SecretString| old.key.as_ref().is_none_or(|o| o.expose_secret() != k.expose_secret());
        match &key {
            Some(k) if renamed || changed(k) => self.secrets.set(&config.name, k)?,
            None if !renamed && old.key.is_some() => self.secrets.delete(name)?,
            _ => {}
        }
        if renamed {
            self.secrets.delete(name)?;
        }
        let provider = Arc::new(Provider { config, key });
        let mut providers = snapshot.providers.clone();
        providers.remove(name);
        providers.insert(provider.config.name.clone(), provider.clone());
        let mut rules = snapshot.rules.clone();
        if renamed {
            let new = provider.config.name.clone();
            rules = rules
                .into_iter()
                .map(|c| {
                    let mut rule = c.rule;
                    if rule.rule.backend == name {
                        rule.rule.backend = new.clone();
                    }
                    if rule.rule.fallback.as_deref() == Some(name) {
                        rule.rule.fallback = Some(new.clone());
                    }
                    Compiled::new(rule)
                })
                .collect::<Result<_, _>>()?;
        }
        self.commit(providers, rules).await?;
        Ok(self.view(&provider))
    }

    /// Removes a provider no rule uses, and its key.
    pub async fn delete_provider(&self, name: &str) -> Result<(), ProviderError> {
        let _edit = self.edits.lock().await;
        let snapshot = self.snapshot();
        if !snapshot.providers.contains_key(name) {
            return Err(ProviderError::ProviderNotFound(name.to_string()));
        }
        let users: Vec<u32> = snapshot
            .rules
            .iter()
            .filter(|c| c.rule.rule.backend == name || c.rule.rule.fallback.as_deref() == Some(name))
            .map(|c| c.rule.id)
            .collect();
        if !users.is_empty() {
            return Err(ProviderError::ProviderInUse { provider: name.to_string(), rules: users });
        }
        let mut providers = snapshot.providers.clone();
        providers.remove(name);
        self.commit(providers, snapshot.rules.clone()).await?;
        self.secrets.delete(name)
    }

    /// Makes a minimal real call (listing models, which costs no tokens) and reports the latency
    /// or the upstream's error.
    pub async fn test_provider(&self, name: &str) -> Result<ProviderTestResult, ProviderError> {
        let p = self.provider(name).ok_or_else(|| ProviderError::ProviderNotFound(name.to_string()))?;
        let timeout = Duration::from_secs(u64::from(p.config.timeout_seconds.unwrap_or(15)));
        let started = Instant::now();
        let req = p.request(self.client()?, reqwest::Method::GET, &p.api_path("models"));
        let result = p.send(req, timeout).await;
        let latency_ms = started.elapsed().as_millis() as u32;
        Ok(match result {
            Ok(r) => ProviderTestResult {
                ok: true,
                latency_ms,
                status: Some(r.status().as_u16()),
                message: format!("HTTP {}", r.status().as_u16()),
            },
            Err(e) => ProviderTestResult {
                ok: false,
                latency_ms,
                status: match &e {
                    ProviderError::UpstreamStatus { status, .. } => Some(*status),
                    _ => None,
                },
                message: e.to_string(),
            },
        })
    }

    fn check_rule(snapshot: &Snapshot, input: &RuleInput) -> Result<(), ProviderError> {
        rules::check(input)?;
        let known = |n: &str| n == LOCAL_BACKEND || snapshot.providers.contains_key(n);
        if !known(&input.backend) {
            return Err(ProviderError::UnknownBackend { field: "backend", name: input.backend.clone() });
        }
        if let Some(f) = input.fallback.as_deref().filter(|f| !known(f)) {
            return Err(ProviderError::UnknownBackend { field: "fallback", name: f.to_string() });
        }
        Ok(())
    }

    /// Adds a rule.
    pub async fn create_rule(&self, input: RuleInput) -> Result<RoutingRule, ProviderError> {
        let _edit = self.edits.lock().await;
        let snapshot = self.snapshot();
        Self::check_rule(&snapshot, &input)?;
        let id = snapshot.rules.iter().map(|c| c.rule.id).max().unwrap_or(0) + 1;
        let rule = RoutingRule { id, rule: input };
        let mut rules = snapshot.rules.clone();
        rules.push(Compiled::new(rule.clone())?);
        self.commit(snapshot.providers.clone(), rules).await?;
        Ok(rule)
    }

    /// Replaces a rule.
    pub async fn update_rule(&self, id: u32, input: RuleInput) -> Result<RoutingRule, ProviderError> {
        let _edit = self.edits.lock().await;
        let snapshot = self.snapshot();
        Self::check_rule(&snapshot, &input)?;
        let mut rules = snapshot.rules.clone();
        let slot = rules.iter_mut().find(|c| c.rule.id == id).ok_or(ProviderError::RuleNotFound(id))?;
        let rule = RoutingRule { id, rule: input };
        *slot = Compiled::new(rule.clone())?;
        self.commit(snapshot.providers.clone(), rules).await?;
        Ok(rule)
    }

    /// Removes a rule.
    pub async fn delete_rule(&self, id: u32) -> Result<(), ProviderError> {
        let _edit = self.edits.lock().await;
        let snapshot = self.snapshot();
        let mut rules = snapshot.rules.clone();
        let before = rules.len();
        rules.retain(|c| c.rule.id != id);
        if rules.len() == before {
            return Err(ProviderError::RuleNotFound(id));
        }
        self.commit(snapshot.providers.clone(), rules).await
    }

    /// Puts the rules in the given order (first = highest priority) by rewriting priorities;
    /// `ids` must name every rule once.
    pub async fn reorder_rules(&self, ids: Vec<u32>) -> Result<Vec<RoutingRule>, ProviderError> {
        let _edit = self.edits.lock().await;
        let snapshot = self.snapshot();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        let mut existing: Vec<u32> = snapshot.rules.iter().map(|c| c.rule.id).collect();
        existing.sort_unstable();
        if sorted != existing {
            return Err(ProviderError::InvalidRule { field: "ids", message: "must list every rule id once".into() });
        }
        let n = ids.len() as i32;
        let rules = snapshot
            .rules
            .iter()
            .map(|c| {
                let mut rule = c.rule.clone();
                let pos = ids.iter().position(|&i| i == rule.id).unwrap_or(0) as i32;
                rule.rule.priority = (n - pos) * 10;
                Compiled::new(rule)
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.commit(snapshot.providers.clone(), rules).await?;
        Ok(self.rules())
    }

    /// An OpenAI chat request on a provider (translated when it speaks Anthropic's API).
    pub async fn openai_chat(
        &self,
        provider: &Provider,
        request: mlx_manager_api::openai::ChatRequest,
        timeout: Duration,
    ) -> Result<ChatReply, ProviderError> {
        translate::openai_chat(self.client()?, provider, request, timeout).await
    }

    /// An Anthropic Messages request on a provider (translated when it speaks OpenAI's API).
    pub async fn anthropic_messages(
        &self,
        provider: &Provider,
        request: mlx_manager_api::anthropic::MessagesRequest,
        timeout: Duration,
    ) -> Result<ChatReply, ProviderError> {
        translate::anthropic_messages(self.client()?, provider, request, timeout).await
    }

    /// `/v1/completions` (`path` = `completions`) or `/v1/embeddings` on an OpenAI-style provider.
    pub async fn openai_other(
        &self,
        provider: &Provider,
        path: &str,
        body: Map<String, Value>,
        timeout: Duration,
    ) -> Result<Reply, ProviderError> {
        translate::openai_other(self.client()?, provider, path, body, timeout).await
    }
}

/// The kinds, for listing in forms.
pub const PROVIDER_KINDS: [ProviderKind; 4] =
    [ProviderKind::Openai, ProviderKind::Anthropic, ProviderKind::OpenaiCompatible, ProviderKind::AnthropicCompatible];
