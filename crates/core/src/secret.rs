//! Keys (the server's API key, provider keys) are [`SecretString`]s: their `Debug` prints
//! `[REDACTED]`, so logging a config or an input cannot leak one, and code that needs the text
//! says so with `expose_secret()` where it builds a header or compares.
//!
//! Re-exported from here so that every crate names the same type. `SecretString` deliberately has
//! no `Serialize`; the one helper below is for the few settings that must be written out whole
//! (the shell's saved server settings, which its window shows and edits).

pub use secrecy::{ExposeSecret, SecretString};

/// `#[serde(serialize_with = "…")]` for an `Option<SecretString>` that must be stored or shown
/// as its text.
pub fn serialize_exposed<S: serde::Serializer>(key: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match key {
        Some(k) => s.serialize_some(k.expose_secret()),
        None => s.serialize_none(),
    }
}
