//! What the routing rules remember between events. Every entry belongs to an open case and is
//! removed when the case ends (a plan closed, a deviation closed, a message receipted, a meeting
//! held), except the directory of units, which grows with the units of the region, not with the
//! log.
//!
//! The entries live in the router's sled store ([`super::store`]); memory holds only what the
//! current batch changed, until the router writes it with the batch's checkpoint, and sled's
//! cache. A case that is never closed (a message that never gets its receipt) stays on disk, not
//! in memory: the simulator's load leaves 176,000 entries open after 10,000,000 events, 45 MB of
//! heap when the state was held whole (`examples/routing_footprint.rs`). A state
//! made with `Default` has no store and holds every entry in memory (the rules' tests).

use std::collections::HashMap;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::store::{KindStore, RouterStoreError};

/// An open plan: whose it is and who takes part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPlan {
    /// The person's pseudonym.
    pub person: String,
    /// The participating principals.
    pub participants: Vec<String>,
}

/// One kind of entry, keyed by a case id: the stored entries and the changes not written yet.
#[derive(Debug, Clone)]
pub struct Tracked<V> {
    /// Set (`Some`) or removed (`None`) since the last write; without a store, every entry.
    changed: HashMap<String, Option<V>>,
    /// Where the written entries are.
    stored: Option<KindStore>,
    /// How many entries, written or not.
    len: usize,
}

impl<V> Default for Tracked<V> {
    fn default() -> Self {
        Self { changed: HashMap::new(), stored: None, len: 0 }
    }
}

impl<V: Clone + Serialize + DeserializeOwned> Tracked<V> {
    /// The kind stored in `stored`, holding `len` entries, nothing changed.
    pub(super) fn stored(stored: KindStore, len: usize) -> Self {
        Self { changed: HashMap::new(), stored: Some(stored), len }
    }

    /// The entry of `key`.
    pub fn get(&self, key: &str) -> Result<Option<V>, RouterStoreError> {
        match (self.changed.get(key), &self.stored) {
            (Some(changed), _) => Ok(changed.clone()),
            (None, Some(stored)) => stored.get(key),
            (None, None) => Ok(None),
        }
    }

    fn contains(&self, key: &str) -> Result<bool, RouterStoreError> {
        match (self.changed.get(key), &self.stored) {
            (Some(changed), _) => Ok(changed.is_some()),
            (None, Some(stored)) => stored.contains(key),
            (None, None) => Ok(false),
        }
    }

    /// Sets the entry of `key`.
    pub fn insert(&mut self, key: &str, value: V) -> Result<(), RouterStoreError> {
        if !self.contains(key)? {
            self.len += 1;
        }
        self.changed.insert(key.to_string(), Some(value));
        Ok(())
    }

    /// Removes the entry of `key`, returning it.
    pub fn remove(&mut self, key: &str) -> Result<Option<V>, RouterStoreError> {
        let removed = self.get(key)?;
        if removed.is_some() {
            self.len -= 1;
            if self.stored.is_some() {
                self.changed.insert(key.to_string(), None);
            } else {
                self.changed.remove(key);
            }
        }
        Ok(removed)
    }

    /// Changes the entry of `key` (creating it from `Default` when missing).
    pub fn update(&mut self, key: &str, change: impl FnOnce(&mut V)) -> Result<(), RouterStoreError>
    where
        V: Default,
    {
        let mut value = match self.get(key)? {
            Some(value) => value,
            None => {
                self.len += 1;
                V::default()
            }
        };
        change(&mut value);
        self.changed.insert(key.to_string(), Some(value));
        Ok(())
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The changes not written yet (`None`: removed), forgotten here: the store writes them.
    /// Without a store there is nothing to hand over (every entry is in memory).
    pub(super) fn drain_changed(&mut self) -> Vec<(String, Option<V>)> {
        if self.stored.is_none() {
            return Vec::new();
        }
        self.changed.drain().collect()
    }
}

/// Everything the rules remember.
#[derive(Debug, Clone, Default)]
pub struct RoutingState {
    /// Care unit (HSA-id) → the principal that introduced it (`npo.role.activated`,
    /// `sdk.address.published`).
    pub units: Tracked<String>,
    /// Open plan id → the plan.
    pub plans: Tracked<OpenPlan>,
    /// Person pseudonym → the ids of their open plans.
    pub person_plans: Tracked<Vec<String>>,
    /// Open deviation id → its concerned principals.
    pub deviations: Tracked<Vec<String>>,
    /// Message id without a receipt → the sending principal.
    pub messages: Tracked<String>,
    /// Meeting id not yet held → its principals.
    pub meetings: Tracked<Vec<String>>,
}

impl RoutingState {
    /// Records `unit` as `principal`'s (written only when that changes).
    pub fn introduce_unit(&mut self, unit: &str, principal: &str) -> Result<(), RouterStoreError> {
        if self.units.get(unit)?.as_deref() != Some(principal) {
            self.units.insert(unit, principal.to_string())?;
        }
        Ok(())
    }

    /// Entries held, all kinds together (the `sgd_routing_state_entries` gauge).
    pub fn entries(&self) -> usize {
        self.units.len()
            + self.plans.len()
            + self.person_plans.len()
            + self.deviations.len()
            + self.messages.len()
            + self.meetings.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::store::RouterStore;

    #[test]
    fn a_stored_state_reads_what_was_written_and_what_is_not_written_yet() {
        let dir = tempfile::tempdir().unwrap();
        let store = RouterStore::open(dir.path()).unwrap();
        let (mut state, _) = store.load().unwrap();
        state.messages.insert("m1", "1280".into()).unwrap();
        state.messages.insert("m2", "1281".into()).unwrap();
        store.commit(&mut state, 1).unwrap();
        assert_eq!(state.messages.len(), 2);
        assert_eq!(state.messages.get("m1").unwrap().as_deref(), Some("1280"), "read from the store");
        assert_eq!(state.messages.remove("m1").unwrap().as_deref(), Some("1280"));
        assert_eq!(state.messages.get("m1").unwrap(), None, "removed, not written yet");
        assert_eq!(state.messages.remove("m1").unwrap(), None);
        state.messages.insert("m2", "1283".into()).unwrap();
        assert_eq!(state.messages.len(), 1, "m2 replaced, not counted twice");
        state.person_plans.update("p1", |plans| plans.push("pl1".into())).unwrap();
        state.person_plans.update("p1", |plans| plans.push("pl2".into())).unwrap();
        assert_eq!(state.person_plans.len(), 1);
        assert_eq!(state.entries(), 2);
        store.commit(&mut state, 2).unwrap();
        assert_eq!(state.person_plans.get("p1").unwrap(), Some(vec!["pl1".to_string(), "pl2".to_string()]));
        assert_eq!(state.messages.get("m2").unwrap().as_deref(), Some("1283"));
        assert_eq!(state.messages.get("m1").unwrap(), None);
    }

    #[test]
    fn a_state_without_a_store_keeps_every_entry_in_memory() {
        let mut state = RoutingState::default();
        state.introduce_unit("SE1-A", "1283").unwrap();
        state.introduce_unit("SE1-A", "1283").unwrap();
        assert_eq!(state.units.len(), 1);
        assert!(state.units.drain_changed().is_empty());
        assert_eq!(state.units.get("SE1-A").unwrap().as_deref(), Some("1283"));
        assert_eq!(state.units.remove("SE1-A").unwrap().as_deref(), Some("1283"));
        assert!(state.units.is_empty());
    }
}
