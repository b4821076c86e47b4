//! The router's state and checkpoint in sled (`<data_dir>/routing`): the rules read the entries
//! here ([`KindStore`]), and a routed batch's changes are written with its checkpoint in one
//! batch, so that after a crash the router resumes from a checkpoint whose
//! state it has: it routes the events after it again, and `SGD_ROUTED` drops the copies it
//! already holds (`Nats-Msg-Id`, within the duplicate window).

use std::{
    fmt,
    path::{Path, PathBuf},
};

use serde::{de::DeserializeOwned, Serialize};

use super::state::{RoutingState, Tracked};

const CHECKPOINT: &[u8] = b"checkpoint";

/// Why the router's store failed → the router stops (and the hub with it): check the disk.
#[derive(Debug, thiserror::Error)]
pub enum RouterStoreError {
    /// sled failed.
    #[error("routing store {path}: {source}")]
    Storage {
        /// Its directory.
        path: PathBuf,
        /// What sled said.
        source: sled::Error,
    },
    /// A stored entry could not be read (written by an incompatible version) → remove the
    /// directory: the router then starts again from the beginning of the log.
    #[error("routing store {path}: entry {key:?} is unreadable: {source}")]
    Corrupt {
        /// Its directory.
        path: PathBuf,
        /// The key.
        key: String,
        /// What the decoder said.
        source: postcard::Error,
    },
}

/// The router's sled store.
#[derive(Clone)]
pub struct RouterStore {
    db: sled::Db,
    path: PathBuf,
}

/// The prefixes of each kind of entry.
const UNITS: &str = "u/";
const PLANS: &str = "p/";
const PERSON_PLANS: &str = "h/";
const DEVIATIONS: &str = "d/";
const MESSAGES: &str = "m/";
const MEETINGS: &str = "v/";

impl RouterStore {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Self, RouterStoreError> {
        let storage = |source| RouterStoreError::Storage { path: dir.into(), source };
        let db = crate::store::open_sled(&sled::Config::new().path(dir).cache_capacity(8 << 20)).map_err(storage)?;
        Ok(Self { db, path: dir.into() })
    }

    /// The stored state (read from here on demand) and checkpoint (0: nothing routed yet).
    pub fn load(&self) -> Result<(RoutingState, u64), RouterStoreError> {
        let state = RoutingState {
            units: self.kind(UNITS)?,
            plans: self.kind(PLANS)?,
            person_plans: self.kind(PERSON_PLANS)?,
            deviations: self.kind(DEVIATIONS)?,
            messages: self.kind(MESSAGES)?,
            meetings: self.kind(MEETINGS)?,
        };
        let checkpoint = self
            .db
            .get(CHECKPOINT)
            .map_err(|source| RouterStoreError::Storage { path: self.path.clone(), source })?
            .and_then(|v| v.as_ref().try_into().ok().map(u64::from_be_bytes))
            .unwrap_or(0);
        Ok((state, checkpoint))
    }

    /// The entries under `prefix`, counted (their keys only are read).
    fn kind<V: Clone + Serialize + DeserializeOwned>(
        &self,
        prefix: &'static str,
    ) -> Result<Tracked<V>, RouterStoreError> {
        let mut len = 0;
        for key in self.db.scan_prefix(prefix).keys() {
            key.map_err(|source| RouterStoreError::Storage { path: self.path.clone(), source })?;
            len += 1;
        }
        Ok(Tracked::stored(KindStore { db: self.db.clone(), prefix, path: self.path.clone() }, len))
    }

    /// Writes what changed in `state` and the new checkpoint, in one batch.
    pub fn commit(&self, state: &mut RoutingState, checkpoint: u64) -> Result<(), RouterStoreError> {
        let mut batch = sled::Batch::default();
        stage(&mut batch, UNITS, &mut state.units);
        stage(&mut batch, PLANS, &mut state.plans);
        stage(&mut batch, PERSON_PLANS, &mut state.person_plans);
        stage(&mut batch, DEVIATIONS, &mut state.deviations);
        stage(&mut batch, MESSAGES, &mut state.messages);
        stage(&mut batch, MEETINGS, &mut state.meetings);
        batch.insert(CHECKPOINT, &checkpoint.to_be_bytes());
        self.db.apply_batch(batch).map_err(|source| RouterStoreError::Storage { path: self.path.clone(), source })
    }

    /// Writes everything to disk now (at shutdown).
    pub fn flush(&self) -> Result<(), RouterStoreError> {
        self.db.flush().map(drop).map_err(|source| RouterStoreError::Storage { path: self.path.clone(), source })
    }
}

/// One kind of entry in the store, read by the rules through [`Tracked`].
#[derive(Clone)]
pub struct KindStore {
    db: sled::Db,
    prefix: &'static str,
    path: PathBuf,
}

impl fmt::Debug for KindStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KindStore").field("prefix", &self.prefix).field("path", &self.path).finish()
    }
}

impl KindStore {
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn storage(&self, source: sled::Error) -> RouterStoreError {
        RouterStoreError::Storage { path: self.path.clone(), source }
    }

    /// The written entry of `key`.
    pub(super) fn get<V: DeserializeOwned>(&self, key: &str) -> Result<Option<V>, RouterStoreError> {
        let key = self.key(key);
        let Some(bytes) = self.db.get(key.as_bytes()).map_err(|e| self.storage(e))? else { return Ok(None) };
        postcard::from_bytes(&bytes).map(Some).map_err(|source| RouterStoreError::Corrupt {
            path: self.path.clone(),
            key,
            source,
        })
    }

    /// Whether an entry of `key` is written.
    pub(super) fn contains(&self, key: &str) -> Result<bool, RouterStoreError> {
        self.db.contains_key(self.key(key).as_bytes()).map_err(|e| self.storage(e))
    }
}

fn stage<V: Clone + Serialize + DeserializeOwned>(batch: &mut sled::Batch, prefix: &str, tracked: &mut Tracked<V>) {
    for (key, value) in tracked.drain_changed() {
        let key = format!("{prefix}{key}");
        match value.and_then(|v| postcard::to_stdvec(&v).ok()) {
            Some(bytes) => batch.insert(key.as_bytes(), bytes),
            None => batch.remove(key.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::state::OpenPlan;

    #[test]
    fn state_and_checkpoint_survive_a_reopen_and_removals_are_written() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = RouterStore::open(dir.path()).unwrap();
            let (mut state, checkpoint) = store.load().unwrap();
            assert_eq!((state.entries(), checkpoint), (0, 0));
            state.units.insert("SE1-A", "1283".into()).unwrap();
            state.plans.insert("pl1", OpenPlan { person: "p1".into(), participants: vec!["12".into()] }).unwrap();
            state.messages.insert("m1", "1280".into()).unwrap();
            store.commit(&mut state, 7).unwrap();
            state.messages.remove("m1").unwrap();
            store.commit(&mut state, 9).unwrap();
            store.flush().unwrap();
        }
        let store = RouterStore::open(dir.path()).unwrap();
        let (state, checkpoint) = store.load().unwrap();
        assert_eq!(checkpoint, 9);
        assert_eq!(state.entries(), 2);
        assert_eq!(state.units.get("SE1-A").unwrap().as_deref(), Some("1283"));
        assert_eq!(state.plans.get("pl1").unwrap().map(|p| p.participants), Some(vec!["12".to_string()]));
        assert!(state.messages.is_empty());
        assert_eq!(state.messages.get("m1").unwrap(), None);
    }

    #[test]
    fn an_unreadable_entry_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = RouterStore::open(dir.path()).unwrap();
        store.db.insert("p/pl1", &[0xff, 0xff, 0xff]).unwrap();
        let (state, _) = store.load().unwrap();
        let error = state.plans.get("pl1").unwrap_err();
        assert!(error.to_string().contains("entry \"p/pl1\" is unreadable"), "{error}");
    }
}
