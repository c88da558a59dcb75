//! The providers crate's persistence ([`RoutingStore`]): the providers and routing rules as two
//! JSON settings, written together in one transaction.

use mlx_manager_core::{PersistError, PersistFuture, ProviderConfig, RoutingConfig, RoutingRule, RoutingStore};

use crate::{Store, StoreError};

const PROVIDERS_KEY: &str = "routing.providers";
const RULES_KEY: &str = "routing.rules";

impl From<StoreError> for PersistError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Setting { key, message } => PersistError::Unreadable { what: key, message },
            other => PersistError::Storage(Box::new(other)),
        }
    }
}

impl RoutingStore for Store {
    fn load_routing(&self) -> PersistFuture<'_, RoutingConfig> {
        Box::pin(async move {
            let providers: Vec<ProviderConfig> = self.setting(PROVIDERS_KEY).await?.unwrap_or_default();
            let rules: Vec<RoutingRule> = self.setting(RULES_KEY).await?.unwrap_or_default();
            Ok(RoutingConfig { providers, rules })
        })
    }

    fn save_routing(&self, config: RoutingConfig) -> PersistFuture<'_, ()> {
        Box::pin(async move {
            let json = |key: &str, value: Result<String, serde_json::Error>| {
                value.map_err(|e| StoreError::Setting { key: key.to_string(), message: e.to_string() })
            };
            let providers = json(PROVIDERS_KEY, serde_json::to_string(&config.providers))?;
            let rules = json(RULES_KEY, serde_json::to_string(&config.rules))?;
            self.call(move |conn| {
                let tx = conn.transaction()?;
                {
                    let mut put = tx.prepare_cached(
                        "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    )?;
                    put.execute([PROVIDERS_KEY, providers.as_str()])?;
                    put.execute([RULES_KEY, rules.as_str()])?;
                }
                tx.commit()?;
                Ok(())
            })
            .await?;
            Ok(())
        })
    }
}
