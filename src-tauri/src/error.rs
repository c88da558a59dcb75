//! The one error type every command returns: typed, serialisable, and free of secrets.

use mlx_manager_engine::EngineError;
use mlx_manager_providers::ProviderError;
use mlx_manager_server::StartupError;
use mlx_manager_store::StoreError;
use serde::{Deserialize, Serialize};

/// Why a command failed. The UI switches on `kind`; `message`-like fields are for people.
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize, specta::Type)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CommandError {
    /// A value the user entered is out of range or malformed.
    #[error("{field}: {message}")]
    Invalid {
        /// The setting's field name (as in the Rust/TypeScript types).
        field: String,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// No model with this id is registered.
    #[error("unknown model `{model}`")]
    ModelNotFound {
        /// The id asked for.
        model: String,
    },
    /// The pool cannot make room for the model.
    #[error("not enough memory to load `{model}`: needs {needed_bytes} bytes, {available_bytes} available")]
    InsufficientMemory {
        /// The model.
        model: String,
        /// Bytes it needs.
        #[specta(type = u32)]
        needed_bytes: u64,
        /// Bytes the budget leaves.
        #[specta(type = u32)]
        available_bytes: u64,
    },
    /// The model folder could not be loaded (bad config, weights or tokenizer).
    #[error("cannot load `{model}`: {message}")]
    ModelLoad {
        /// The model.
        model: String,
        /// What was wrong with it.
        message: String,
    },
    /// The listener could not be bound.
    #[error("cannot listen on {address}: {message}")]
    Bind {
        /// `host:port` asked for.
        address: String,
        /// The OS's reason.
        message: String,
    },
    /// The database failed.
    #[error("storage error: {message}")]
    Storage {
        /// What failed.
        message: String,
    },
    /// Writing an export file failed.
    #[error("cannot export to {path}: {message}")]
    Export {
        /// The file.
        path: String,
        /// Why.
        message: String,
    },
    /// The engine thread has stopped.
    #[error("the engine has stopped")]
    EngineStopped,
    /// No provider or routing rule by that name or id.
    #[error("{message}")]
    NotFound {
        /// Which one.
        message: String,
    },
    /// The change conflicts with the configuration (a duplicate name, a provider rules still use).
    #[error("{message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// The operating system refused a desktop change (launch at login).
    #[error("{message}")]
    Desktop {
        /// What was refused, and why.
        message: String,
    },
    /// The model library failed (search, download, delete): `code` is the library's stable
    /// code (`hub_offline`, `hub_access_denied`, `insufficient_disk_space`, `repo_not_found`, …).
    #[error("{message}")]
    Library {
        /// What went wrong, for the UI to switch on.
        code: String,
        /// For people.
        message: String,
    },
}

impl CommandError {
    pub(crate) fn invalid(field: &str, message: impl Into<String>) -> CommandError {
        CommandError::Invalid { field: field.to_string(), message: message.into() }
    }

    pub(crate) fn from_engine(e: EngineError, model: &str) -> CommandError {
        match e {
            EngineError::ModelNotFound { model } => CommandError::ModelNotFound { model },
            EngineError::InsufficientMemory { model, needed_bytes, available_bytes } => {
                CommandError::InsufficientMemory { model, needed_bytes, available_bytes }
            }
            EngineError::Stopped => CommandError::EngineStopped,
            other => CommandError::ModelLoad { model: model.to_string(), message: other.to_string() },
        }
    }
}

impl From<ProviderError> for CommandError {
    fn from(e: ProviderError) -> Self {
        let field = e.field();
        let message = e.to_string();
        match e {
            ProviderError::ProviderNotFound(_) | ProviderError::RuleNotFound(_) => CommandError::NotFound { message },
            ProviderError::DuplicateProvider(_) | ProviderError::ProviderInUse { .. } => {
                CommandError::Conflict { message }
            }
            ProviderError::Store(_) => CommandError::Storage { message },
            _ if field.is_some() => CommandError::Invalid { field: field.unwrap_or_default().to_string(), message },
            _ => CommandError::Storage { message },
        }
    }
}

impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::InvalidFilter { field, message } => CommandError::Invalid { field, message },
            other => CommandError::Storage { message: other.to_string() },
        }
    }
}

impl From<StartupError> for CommandError {
    fn from(e: StartupError) -> Self {
        match e {
            StartupError::Store(e) => e.into(),
            StartupError::Engine(e) => CommandError::from_engine(e, ""),
            StartupError::Providers(e) => e.into(),
            e @ StartupError::DataDir { .. } => CommandError::Storage { message: e.to_string() },
        }
    }
}

impl From<mlx_manager_library::LibraryError> for CommandError {
    fn from(e: mlx_manager_library::LibraryError) -> Self {
        use mlx_manager_library::LibraryError as L;
        let message = e.to_string();
        match e {
            L::InvalidRepoId(_) | L::NotAModel { .. } => CommandError::Invalid { field: "repo".into(), message },
            L::NoSuchDownload(_) | L::NotInstalled { .. } => CommandError::NotFound { message },
            L::Busy { .. } => CommandError::Conflict { message },
            other => CommandError::Library { code: other.code().to_string(), message },
        }
    }
}

impl From<mlx_manager_server::ApiError> for CommandError {
    fn from(e: mlx_manager_server::ApiError) -> Self {
        use mlx_manager_server::ApiError as A;
        let message = e.to_string();
        match e {
            A::Conflict(_) => CommandError::Conflict { message },
            A::NoSuchItem(_) => CommandError::NotFound { message },
            other => CommandError::Library { code: other.code().to_string(), message },
        }
    }
}
