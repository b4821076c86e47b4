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
    /// No token has this id → `hub token list` shows the ids.
    #[error("no token with id {id} in {path}")]
    UnknownId {
        /// The id asked for.
        id: String,
        /// The file.
        path: PathBuf,
    },
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
    write_file(path, &file)?;
    Ok((record, secret))
}

/// Removes the token `id` from `path` and returns its record; a hub using the file refuses the
/// token from its next request on.
pub fn revoke(path: &Path, id: &str) -> Result<TokenRecord, TokenError> {
    let mut file = read_file(path)?;
    let index = file
        .tokens
        .iter()
        .position(|t| t.id == id)
        .ok_or_else(|| TokenError::UnknownId { id: id.into(), path: path.into() })?;
    let record = file.tokens.remove(index);
    write_file(path, &file)?;
    Ok(record)
}

/// Every token in `path` (records only: the file holds no secret).
pub fn list(path: &Path) -> Result<Vec<TokenRecord>, TokenError> {
    Ok(read_file(path)?.tokens)
}

/// Writes the whole file at once (a new file renamed over the old), so a hub never reads half.
fn write_file(path: &Path, file: &TokenFile) -> Result<(), TokenError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| TokenError::Io { path: path.into(), source })?;
    }
    let text = serde_json::to_string_pretty(file).unwrap_or_default();
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(|source| TokenError::Io { path: tmp.clone(), source })?;
    std::fs::rename(&tmp, path).map_err(|source| TokenError::Io { path: path.into(), source })
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

/// The tokens the API accepts, re-read whenever the file changes.
pub struct TokenStore {
    path: PathBuf,
    loaded: RwLock<(Option<FileVersion>, Vec<TokenRecord>)>,
}

/// What tells one version of the tokens file from another. The modification time alone does
/// not: file times tick coarsely (milliseconds), so a token revoked right after the file was read
/// could leave it unchanged. Every write renames a new file over the old, so its inode changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileVersion {
    modified: Option<SystemTime>,
    len: u64,
    #[cfg(unix)]
    inode: u64,
}

impl FileVersion {
    fn of(path: &Path) -> Option<Self> {
        let meta = std::fs::metadata(path).ok()?;
        Some(Self {
            modified: meta.modified().ok(),
            len: meta.len(),
            #[cfg(unix)]
            inode: std::os::unix::fs::MetadataExt::ino(&meta),
        })
    }
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
        let modified = FileVersion::of(&self.path);
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

    /// Regression: the store compared only modification times, which tick coarsely, so a token
    /// revoked within the same tick as the store's last read kept working.
    #[test]
    fn a_token_revoked_right_after_a_read_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.json");
        let store = TokenStore::new(path.clone());
        for _ in 0..20 {
            let (record, secret) = add(&path, Role::Analyst, None).unwrap();
            assert_eq!(store.authenticate(&secret).as_ref(), Some(&record));
            assert_eq!(revoke(&path, &record.id).unwrap(), record);
            assert_eq!(store.authenticate(&secret), None, "a revoked token still worked");
        }
        assert!(matches!(revoke(&path, "nope"), Err(TokenError::UnknownId { .. })));
        assert!(list(&path).unwrap().is_empty());
    }
}
