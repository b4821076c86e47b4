//! A keyed table of view records that remembers which records changed, so the projection runner
//! writes only those (to the views' journal, see [`crate::store::views_store`]).

use std::{borrow::Borrow, hash::Hash};

use serde::{de::DeserializeOwned, Serialize};

use super::ids::{TableKey, Text};
use crate::store::sharded::{ShardedMap, ShardedSet, SHARDS};

/// Records of one kind, by key (short text unless told), with change tracking.
#[derive(Debug, Clone)]
pub struct Table<V, K = Text> {
    prefix: &'static str,
    rows: ShardedMap<K, V>,
    /// The keys of the records changed since the last drain, unless `all_changed`.
    dirty: ShardedSet<K>,
    /// Every record counts as changed and no keys are tracked (during a catch-up longer than the
    /// views are big, after which they are stored whole: a copy of every key would cost ~25 MB at
    /// a million events).
    all_changed: bool,
}

/// Changed or stored records of one table: (key, record encoded with postcard); an empty
/// encoding (no record encodes to nothing) stands for a record removed.
pub type EncodedRecords = Vec<(String, Vec<u8>)>;

/// A table seen without its record type: what storing and comparing the views needs.
pub trait StoredTable {
    /// The name it is stored under (e.g. `v/plans/plan/`).
    fn prefix(&self) -> &'static str;
    /// How many records.
    fn records(&self) -> usize;
    /// How many records changed since the last [`StoredTable::drain_changes`].
    fn changed(&self) -> usize;
    /// The changed records, encoded, forgetting that they changed.
    fn drain_changes(&mut self) -> EncodedRecords;
    /// Forgets which records changed (they were stored another way), and the room that took.
    fn clear_changes(&mut self);
    /// Counts every record as changed from now until the next drain or clear, tracking no keys.
    fn mark_all_changed(&mut self);
    /// How many slices [`StoredTable::encode_slice`] reads the table in.
    fn slices(&self) -> usize;
    /// The records of slice `index` (`0..slices()`), encoded: every record is in exactly one.
    fn encode_slice(&self, index: usize) -> EncodedRecords;
    /// Stores an encoded record under `key`.
    fn load(&mut self, key: &str, value: &[u8]) -> Result<(), LoadError>;
    /// Every record as (storage key, JSON value), for comparing two models.
    fn all_records(&self, out: &mut std::collections::BTreeMap<String, serde_json::Value>);
}

/// Why a stored record could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The record does not decode.
    #[error(transparent)]
    Record(#[from] postcard::Error),
    /// The key is not one of the table's (a person table's keys are pseudonyms).
    #[error("not a key of this table")]
    Key,
}

impl<V: Serialize + DeserializeOwned + Default, K: TableKey> Table<V, K> {
    /// An empty table stored under `prefix` (e.g. `v/plans/plan/`).
    pub fn new(prefix: &'static str) -> Self {
        Self { prefix, rows: ShardedMap::default(), dirty: ShardedSet::default(), all_changed: false }
    }

    /// The record under `key`, created empty if absent; marked changed.
    pub fn entry<Q>(&mut self, key: &Q) -> &mut V
    where
        K: Borrow<Q> + for<'a> From<&'a Q>,
        Q: Hash + Eq + ?Sized,
    {
        // Keys are made only the first time they are seen, each table looked up once (this is
        // the projection hot path).
        if !self.all_changed {
            self.dirty.insert_ref(key);
        }
        self.rows.get_or_insert_default(key)
    }

    /// The record under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.rows.get(key)
    }

    /// Removes the record under `key` (drained as a removal while keys are tracked).
    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q> + for<'a> From<&'a Q>,
        Q: Hash + Eq + ?Sized,
    {
        if self.rows.remove(key).is_some() && !self.all_changed {
            self.dirty.insert_ref(key);
        }
    }

    /// Removes every record; while keys are tracked each removal is a change (drained as a
    /// removal), otherwise the table is stored whole anyway.
    pub fn remove_all(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        if !self.all_changed {
            for (key, _) in rows.iter() {
                self.dirty.insert(key.clone());
            }
        }
    }

    /// Every record.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
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

    fn encode_one(value: &V) -> Vec<u8> {
        // Plain structs of strings, numbers and times: encoding into a Vec cannot fail.
        postcard::to_stdvec(value).unwrap_or_default()
    }
}

impl<V: Serialize + DeserializeOwned + Default, K: TableKey> StoredTable for Table<V, K> {
    fn prefix(&self) -> &'static str {
        self.prefix
    }

    fn records(&self) -> usize {
        self.rows.len()
    }

    fn changed(&self) -> usize {
        if self.all_changed {
            self.rows.len()
        } else {
            self.dirty.len()
        }
    }

    fn drain_changes(&mut self) -> EncodedRecords {
        if std::mem::take(&mut self.all_changed) {
            return (0..SHARDS).flat_map(|i| self.encode_slice(i)).collect();
        }
        let mut out = Vec::with_capacity(self.dirty.len());
        for key in self.dirty.drain() {
            let encoded = self.rows.get(&key).map(Self::encode_one).unwrap_or_default();
            out.push((key.to_string(), encoded));
        }
        out
    }

    fn clear_changes(&mut self) {
        self.all_changed = false;
        self.dirty = ShardedSet::default();
    }

    fn mark_all_changed(&mut self) {
        self.all_changed = true;
        self.dirty = ShardedSet::default();
    }

    fn slices(&self) -> usize {
        SHARDS
    }

    fn encode_slice(&self, index: usize) -> EncodedRecords {
        self.rows.shard(index).map(|(key, value)| (key.to_string(), Self::encode_one(value))).collect()
    }

    fn load(&mut self, key: &str, value: &[u8]) -> Result<(), LoadError> {
        let key = K::parse_key(key).ok_or(LoadError::Key)?;
        if value.is_empty() {
            self.rows.remove(&key);
        } else {
            self.rows.insert(key, postcard::from_bytes(value)?);
        }
        Ok(())
    }

    fn all_records(&self, out: &mut std::collections::BTreeMap<String, serde_json::Value>) {
        for (key, value) in self.rows.iter() {
            out.insert(format!("{}{key}", self.prefix), serde_json::to_value(value).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changed_records_are_drained_once_and_load_back() {
        let mut table: Table<Vec<(i64, u64)>> = Table::new("v/test/");
        table.entry("a").push((1, 2));
        table.entry("b").push((3, 4));
        assert_eq!(table.changed(), 2);
        let mut drained = table.drain_changes();
        drained.sort();
        assert_eq!(drained.len(), 2);
        assert_eq!(table.changed(), 0);
        let mut copy: Table<Vec<(i64, u64)>> = Table::new("v/test/");
        for (key, value) in &drained {
            copy.load(key, value).unwrap();
        }
        assert_eq!(copy.get("a"), Some(&vec![(1, 2)]));
        let mut slices: EncodedRecords = (0..copy.slices()).flat_map(|i| copy.encode_slice(i)).collect();
        slices.sort();
        assert_eq!(slices, drained);
        assert!(copy.load("c", &[0xff, 0xff]).is_err());
    }

    #[test]
    fn a_table_marked_all_changed_drains_every_record_once_then_tracks_again() {
        let mut table: Table<Vec<(i64, u64)>> = Table::new("v/test/");
        table.entry("a").push((1, 2));
        let _ = table.drain_changes();
        table.entry("b").push((3, 4));
        table.mark_all_changed();
        table.entry("c").push((5, 6));
        assert_eq!(table.changed(), 3);
        let mut drained: Vec<String> = table.drain_changes().into_iter().map(|(key, _)| key).collect();
        drained.sort();
        assert_eq!(drained, ["a", "b", "c"]);
        assert_eq!(table.changed(), 0);
        table.entry("b").push((7, 8));
        assert_eq!(table.drain_changes().len(), 1);
        table.mark_all_changed();
        table.clear_changes();
        assert_eq!(table.changed(), 0);
    }

    #[test]
    fn removed_records_are_drained_as_removals_and_load_as_such() {
        let mut table: Table<Vec<(i64, u64)>> = Table::new("v/test/");
        table.entry("a").push((1, 2));
        table.entry("b").push((3, 4));
        let stored = table.drain_changes();
        table.remove_all();
        let removals = table.drain_changes();
        assert_eq!(removals.len(), 2);
        assert!(removals.iter().all(|(_, value)| value.is_empty()));
        let mut copy: Table<Vec<(i64, u64)>> = Table::new("v/test/");
        for (key, value) in stored.iter().chain(&removals) {
            copy.load(key, value).unwrap();
        }
        assert!(copy.is_empty());
    }
}
