//! Where provider keys live: the OS keychain (macOS Keychain, Secret Service on Linux), or, where
//! no keychain answers (CI, a bare Linux box), one ChaCha20-Poly1305–encrypted file in the data
//! dir whose key sits in a separate owner-only file. Keys never go to SQLite.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use mlx_manager_core::{ExposeSecret, KeyStorage, SecretString};
use rand::RngCore;
use serde::{Deserialize, Serialize};

use crate::error::ProviderError;

/// The keychain service name entries are stored under.
const SERVICE: &str = "mlx-manager";

/// Which storage to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecretMode {
    /// The keychain when it answers, else the encrypted file.
    #[default]
    Auto,
    /// Only the keychain (an error when there is none).
    Keychain,
    /// Only the encrypted file.
    File,
}

impl SecretMode {
    /// Parses `auto`, `keychain` or `file` (e.g. from `MLX_MANAGER_KEY_STORAGE`).
    pub fn parse(s: &str) -> Option<SecretMode> {
        match s {
            "auto" => Some(SecretMode::Auto),
            "keychain" => Some(SecretMode::Keychain),
            "file" => Some(SecretMode::File),
            _ => None,
        }
    }
}

enum Backend {
    Keychain,
    File { path: PathBuf, cipher: Box<ChaCha20Poly1305>, keys: Mutex<BTreeMap<String, SecretString>> },
}

/// Provider keys by provider name.
pub struct Secrets {
    backend: Backend,
}

/// Says where keys are kept, never what they are.
impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Secrets");
        d.field("storage", &self.storage());
        if let Backend::File { path, keys, .. } = &self.backend {
            d.field("path", path).field("keys", &keys.lock().unwrap_or_else(|p| p.into_inner()).len());
        }
        d.finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    version: u32,
    nonce: String,
    data: String,
}

fn secret_err(e: impl std::fmt::Display) -> ProviderError {
    ProviderError::Secret(e.to_string())
}

fn keychain_available() -> bool {
    match keyring::Entry::new(SERVICE, "__probe__").and_then(|e| e.get_password()) {
        Ok(_) | Err(keyring::Error::NoEntry) => true,
        Err(e) => {
            tracing::info!(error = %e, "no OS keychain; provider keys go to an encrypted file");
            false
        }
    }
}

/// Writes `bytes` to `path` through a temporary file (owner-only), so a crash never leaves half a file.
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), ProviderError> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut f = options.open(&tmp).map_err(secret_err)?;
        std::io::Write::write_all(&mut f, bytes).map_err(secret_err)?;
        f.sync_all().map_err(secret_err)?;
    }
    std::fs::rename(&tmp, path).map_err(secret_err)
}

impl Secrets {
    /// Opens the key storage for a data dir.
    pub fn open(data_dir: &Path, mode: SecretMode) -> Result<Secrets, ProviderError> {
        let keychain = match mode {
            SecretMode::File => false,
            SecretMode::Keychain => true,
            SecretMode::Auto => keychain_available(),
        };
        if keychain {
            return Ok(Secrets { backend: Backend::Keychain });
        }
        Self::open_file(data_dir)
    }

    fn open_file(data_dir: &Path) -> Result<Secrets, ProviderError> {
        std::fs::create_dir_all(data_dir).map_err(secret_err)?;
        let key_path = data_dir.join("secrets.key");
        let key = match std::fs::read(&key_path) {
            Ok(k) if k.len() == 32 => k,
            Ok(_) => return Err(ProviderError::Secret(format!("{} is not a 32-byte key", key_path.display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut k = vec![0u8; 32];
                rand::rng().fill_bytes(&mut k);
                write_private(&key_path, &k)?;
                k
            }
            Err(e) => return Err(secret_err(e)),
        };
        let cipher = Box::new(ChaCha20Poly1305::new(Key::from_slice(&key)));
        let path = data_dir.join("secrets.enc");
        let keys = match std::fs::read(&path) {
            Ok(raw) => {
                let sealed: Sealed = serde_json::from_slice(&raw).map_err(secret_err)?;
                let nonce = B64.decode(sealed.nonce).map_err(secret_err)?;
                let data = B64.decode(sealed.data).map_err(secret_err)?;
                if nonce.len() != 12 {
                    return Err(ProviderError::Secret("corrupt key file (nonce)".into()));
                }
                let plain = cipher.decrypt(Nonce::from_slice(&nonce), data.as_ref()).map_err(|_| {
                    ProviderError::Secret(format!("{} cannot be decrypted with {}", path.display(), key_path.display()))
                })?;
                serde_json::from_slice(&plain).map_err(secret_err)?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(secret_err(e)),
        };
        Ok(Secrets { backend: Backend::File { path, cipher, keys: Mutex::new(keys) } })
    }

    /// Where keys are kept.
    pub fn storage(&self) -> KeyStorage {
        match self.backend {
            Backend::Keychain => KeyStorage::Keychain,
            Backend::File { .. } => KeyStorage::EncryptedFile,
        }
    }

    fn save_file(
        path: &Path,
        cipher: &ChaCha20Poly1305,
        keys: &BTreeMap<String, SecretString>,
    ) -> Result<(), ProviderError> {
        // The one place keys are written out: sealed right away.
        let exposed: BTreeMap<&str, &str> = keys.iter().map(|(k, v)| (k.as_str(), v.expose_secret())).collect();
        let plain = serde_json::to_vec(&exposed).map_err(secret_err)?;
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let data = cipher
            .encrypt(Nonce::from_slice(&nonce), plain.as_ref())
            .map_err(|_| ProviderError::Secret("encryption failed".into()))?;
        let sealed = Sealed { version: 1, nonce: B64.encode(nonce), data: B64.encode(data) };
        write_private(path, &serde_json::to_vec(&sealed).map_err(secret_err)?)
    }

    /// The key of `provider`, if one is stored.
    pub fn get(&self, provider: &str) -> Result<Option<SecretString>, ProviderError> {
        match &self.backend {
            Backend::Keychain => match keyring::Entry::new(SERVICE, provider).and_then(|e| e.get_password()) {
                Ok(k) => Ok(Some(SecretString::from(k))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(secret_err(e)),
            },
            Backend::File { keys, .. } => Ok(keys.lock().unwrap_or_else(|p| p.into_inner()).get(provider).cloned()),
        }
    }

    /// Stores (or replaces) the key of `provider`.
    pub fn set(&self, provider: &str, key: &SecretString) -> Result<(), ProviderError> {
        match &self.backend {
            Backend::Keychain => keyring::Entry::new(SERVICE, provider)
                .and_then(|e| e.set_password(key.expose_secret()))
                .map_err(secret_err),
            Backend::File { path, cipher, keys } => {
                let mut keys = keys.lock().unwrap_or_else(|p| p.into_inner());
                keys.insert(provider.to_string(), key.clone());
                Self::save_file(path, cipher, &keys)
            }
        }
    }

    /// Forgets the key of `provider` (nothing stored is fine).
    pub fn delete(&self, provider: &str) -> Result<(), ProviderError> {
        match &self.backend {
            Backend::Keychain => match keyring::Entry::new(SERVICE, provider).and_then(|e| e.delete_credential()) {
                Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
                Err(e) => Err(secret_err(e)),
            },
            Backend::File { path, cipher, keys } => {
                let mut keys = keys.lock().unwrap_or_else(|p| p.into_inner());
                if keys.remove(provider).is_some() {
                    Self::save_file(path, cipher, &keys)?;
                }
                Ok(())
            }
        }
    }
}
