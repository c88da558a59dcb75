//! Routing rules, compiled: which rule a model name matches, in priority order.

use mlx_manager_core::{MatchType, RoutingRule, RuleInput};
use regex::Regex;

use crate::error::ProviderError;

/// A rule ready to match.
#[derive(Debug, Clone)]
pub(crate) struct Compiled {
    pub(crate) rule: RoutingRule,
    regex: Option<Regex>,
}

/// Checks a rule's own fields (backend names are checked against the providers by the catalog).
pub(crate) fn check(input: &RuleInput) -> Result<Option<Regex>, ProviderError> {
    if input.pattern.is_empty() {
        return Err(ProviderError::InvalidRule { field: "pattern", message: "must not be empty".into() });
    }
    if input.pattern.len() > 1024 {
        return Err(ProviderError::InvalidRule { field: "pattern", message: "longer than 1024 characters".into() });
    }
    for (field, name) in [("backend_model", &input.backend_model), ("fallback_model", &input.fallback_model)] {
        if name.as_deref().is_some_and(|m| m.trim().is_empty()) {
            return Err(ProviderError::InvalidRule { field, message: "must not be empty when set".into() });
        }
    }
    if input.fallback.as_deref() == Some(input.backend.as_str()) {
        return Err(ProviderError::InvalidRule { field: "fallback", message: "must differ from the backend".into() });
    }
    if input.fallback.is_none() && input.fallback_model.is_some() {
        return Err(ProviderError::InvalidRule { field: "fallback_model", message: "needs a fallback backend".into() });
    }
    match input.match_type {
        MatchType::Regex => regex::RegexBuilder::new(&format!("^(?:{})$", input.pattern))
            .size_limit(1 << 20)
            .build()
            .map(Some)
            .map_err(|e| ProviderError::InvalidRegex { pattern: input.pattern.clone(), message: e.to_string() }),
        _ => Ok(None),
    }
}

impl Compiled {
    pub(crate) fn new(rule: RoutingRule) -> Result<Compiled, ProviderError> {
        let regex = check(&rule.rule)?;
        Ok(Compiled { rule, regex })
    }

    pub(crate) fn matches(&self, model: &str) -> bool {
        let r = &self.rule.rule;
        r.enabled
            && match r.match_type {
                MatchType::Exact => model == r.pattern,
                MatchType::Prefix => model.starts_with(&r.pattern),
                MatchType::Regex => self.regex.as_ref().is_some_and(|re| re.is_match(model)),
            }
    }
}

/// Sorts rules into matching order: higher priority first, then older (lower id) first.
pub(crate) fn sort(rules: &mut [Compiled]) {
    rules.sort_by(|a, b| b.rule.rule.priority.cmp(&a.rule.rule.priority).then(a.rule.id.cmp(&b.rule.id)));
}
