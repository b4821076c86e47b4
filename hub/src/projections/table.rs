//! A keyed table of view records that remembers which records changed, so the projection runner
//! writes only those to sled (in the same atomic batch as the checkpoint).

use std::collections::{HashMap, HashSet};

use serde::{de::DeserializeOwned, Serialize};

/// Records of one kind, by key, with change tracking.
#[derive(Debug, Clone)]
pub struct Table<V> {
    prefix: &'static str,
    rows: HashMap<String, V>,
    dirty: HashSet<String>,
}

impl<V: Serialize + DeserializeOwned + Default> Table<V> {
    /// An empty table stored under `prefix` (e.g. `v/plans/plan/`).
    pub fn new(prefix: &'static str) -> Self {
        Self { prefix, rows: HashMap::new(), dirty: HashSet::new() }
    }

    /// The record under `key`, created empty if absent; marked changed.
    pub fn entry(&mut self, key: &str) -> &mut V {
        // Keys are allocated only the first time they are seen (this is the projection hot path).
        if !self.dirty.contains(key) {
            self.dirty.insert(key.to_string());
        }
        if !self.rows.contains_key(key) {
            self.rows.insert(key.to_string(), V::default());
        }
        self.rows.get_mut(key).unwrap_or_else(|| unreachable!("the row was inserted above"))
    }

    /// The record under `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.rows.get(key)
    }

    /// Every record.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &V)> {
        self.rows.iter()
    }

    /// Every record's value.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.rows.values()
    }

    /// How many records.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// How many records changed since the last [`Table::drain_changes`].
    pub fn changed(&self) -> usize {
        self.dirty.len()
    }

    /// The storage prefix.
    pub fn prefix(&self) -> &'static str {
        self.prefix
    }

    /// The changed records as (storage key, JSON value), forgetting that they changed.
    pub fn drain_changes(&mut self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        for key in self.dirty.drain() {
            if let Some(value) = self.rows.get(&key) {
                let mut storage_key = self.prefix.as_bytes().to_vec();
                storage_key.extend_from_slice(key.as_bytes());
                // Serialising plain structs of strings, numbers and times cannot fail.
                out.push((storage_key, serde_json::to_vec(value).unwrap_or_default()));
            }
        }
    }

    /// Every record as (storage key, JSON value), for comparing two models.
    pub fn all_records(&self, out: &mut std::collections::BTreeMap<String, serde_json::Value>) {
        for (key, value) in &self.rows {
            out.insert(format!("{}{key}", self.prefix), serde_json::to_value(value).unwrap_or_default());
        }
    }

    /// Loads a stored record (storage key without the prefix).
    pub fn load(&mut self, key: &str, value: &[u8]) -> Result<(), serde_json::Error> {
        self.rows.insert(key.to_string(), serde_json::from_slice(value)?);
        Ok(())
    }
}
