//! The store's one error type.

use std::path::PathBuf;

/// What can go wrong with the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file could not be opened or created.
    #[error("cannot open the database {}: {message}", path.display())]
    Open {
        /// The database file.
        path: PathBuf,
        /// SQLite's message.
        message: String,
    },
    /// The file was written by a newer MLX Manager; it is left untouched.
    #[error("the database {} has schema version {found}; this build understands up to {supported}", path.display())]
    NewerSchema {
        /// The database file.
        path: PathBuf,
        /// Its `user_version`.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The file is not a (healthy) SQLite database; it is left untouched.
    #[error("the database {} is corrupt or not a database: {message}", path.display())]
    Corrupt {
        /// The database file.
        path: PathBuf,
        /// What SQLite said.
        message: String,
    },
    /// A filter value is invalid.
    #[error("invalid filter `{field}`: {message}")]
    InvalidFilter {
        /// The filter's name.
        field: String,
        /// Why.
        message: String,
    },
    /// A stored setting could not be read or written as JSON.
    #[error("setting `{key}`: {message}")]
    Setting {
        /// The setting's key.
        key: String,
        /// Why.
        message: String,
    },
    /// A query or write failed.
    #[error("database error: {0}")]
    Sqlite(String),
    /// Writing an export failed.
    #[error("export failed: {0}")]
    Export(String),
    /// The store thread has stopped.
    #[error("the store has stopped")]
    Closed,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Sqlite(e.to_string())
    }
}
