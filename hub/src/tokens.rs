//! API tokens: kept as SHA-256 hashes in a JSON file, each with a role (and a principal for
//! integrators). The file is re-read when it changes, so a removed token stops working at once.
//!
//! Tokens are 256-bit random secrets, so a plain SHA-256 (not a slow password hash) is the right
//! way to keep them: nothing about them can be guessed.

use std::{
    path::{Path, PathBuf},
    sync::RwLock,
    time::SystemTime,
};

use base64::Engine;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Aggregates only: usage, goals.
    Analyst,
    /// Operations: also the DLQ, metrics, streams.
    Operator,
    /// An adapter or local system: ingest for its own principal only.
    Integrator,
    /// Person-level follow-up (audited).
    Coordinator,
}

impl Role {
    /// The role's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analyst => "analyst",
            Self::Operator => "operator",
            Self::Integrator => "integrator",
            Self::Coordinator => "coordinator",
        }
    }
}

/// One stored token (never the secret itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// A public id, to tell tokens apart (and revoke one).
    pub id: String,
    /// Its role.
    pub role: Role,
    /// The principal an integrator token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Hex SHA-256 of the secret.
    pub sha256: String,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TokenFile {
    tokens: Vec<TokenRecord>,
}

/// Why tokens could not be read or added.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// The file could not be read or written.
    #[error("tokens file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a tokens file.
    #[error("tokens file {path} is not valid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        source: serde_json::Error,
    },
    /// An integrator token needs a principal, and only integrator tokens have one.
    #[error("{0}")]
    Usage(String),
}

/// Adds a token to `path` (creating the file) and returns (record, secret).
pub fn add(path: &Path, role: Role, principal: Option<&str>) -> Result<(TokenRecord, String), TokenError> {
    // Integrators publish for, and coordinators read on behalf of, one principal.
    let bound = matches!(role, Role::Integrator | Role::Coordinator);
    match (bound, principal) {
        (true, None) => {
            return Err(TokenError::Usage(format!("a {} token needs --principal CODE", role.as_str())));
        }
        (true, Some(code)) if !sgd_schemas::principals::is_known(code) => {
            return Err(TokenError::Usage(format!("{code} is not the code of one of the 34 principals")));
        }
        (true, Some(_)) | (false, None) => {}
        (false, Some(_)) => {
            return Err(TokenError::Usage("only integrator and coordinator tokens are bound to a principal".into()))
        }
    }
    let mut file = read_file(path)?;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let id = hex::encode(&bytes[..4]);
    let secret = format!("sgd_{}_{}", id, base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let record = TokenRecord {
        id,
        role,
        principal: principal.map(str::to_string),
        sha256: hash(&secret),
        created_at: chrono::Utc::now(),
    };
    file.tokens.push(record.clone());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TokenError::Io { path: path.into(), source })?;
    }
    let text = serde_json::to_string_pretty(&file).unwrap_or_default();
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|source| TokenError::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| TokenError::Io { path: path.into(), source })?;
    Ok((record, secret))
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn read_file(path: &Path) -> Result<TokenFile, TokenError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| TokenError::Parse { path: path.into(), source }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TokenFile::default()),
        Err(source) => Err(TokenError::Io { path: path.into(), source }),
    }
}

/// The tokens the API accepts, re-read whenever the file's modification time changes.
pub struct TokenStore {
    path: PathBuf,
    loaded: RwLock<(Option<SystemTime>, Vec<TokenRecord>)>,
}

impl TokenStore {
    /// A store over `path` (which need not exist yet: then no token is valid).
    pub fn new(path: PathBuf) -> Self {
        Self { path, loaded: RwLock::new((None, Vec::new())) }
    }

    /// The record of `secret`, if it is a current token.
    pub fn authenticate(&self, secret: &str) -> Option<TokenRecord> {
        self.refresh();
        let wanted = hash(secret);
        let loaded = self.loaded.read().ok()?;
        loaded.1.iter().find(|t| constant_time_eq(t.sha256.as_bytes(), wanted.as_bytes())).cloned()
    }

    fn refresh(&self) {
        let modified = std::fs::metadata(&self.path).and_then(|m| m.modified()).ok();
        let current = self.loaded.read().map(|l| l.0).unwrap_or(None);
        if modified == current && modified.is_some() {
            return;
        }
        let tokens = match read_file(&self.path) {
            Ok(file) => file.tokens,
            Err(e) => {
                tracing::error!(error = %e, "cannot read tokens; refusing every token until fixed");
                Vec::new()
            }
        };
        if let Ok(mut loaded) = self.loaded.write() {
            *loaded = (modified, tokens);
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn added_tokens_authenticate_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let (record, secret) = add(&path, Role::Integrator, Some("1280")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&secret));
        let store = TokenStore::new(path.clone());
        assert_eq!(store.authenticate(&secret), Some(record));
        assert_eq!(store.authenticate("sgd_nope"), None);
        assert!(add(&path, Role::Integrator, None).is_err());
        assert!(add(&path, Role::Analyst, Some("1280")).is_err());
    }
}
