//! A keyed table of view records that remembers which records changed, so the projection runner
//! writes only those (to the views' journal, see [`crate::store::views_store`]), and that can keep
//! only its most recently changed records in memory: a table made with [`Table::bounded`] hands
//! the others over to disk ([`crate::store::record_runs`]) when it holds more than its budget,
//! and reads them back when they are asked for.

use std::{borrow::Borrow, borrow::Cow, fmt, hash::Hash, sync::Arc};

use serde::{de::DeserializeOwned, Serialize};

use super::ids::{TableKey, Text};
use crate::store::{
    record_runs::{RecordRuns, Stored},
    sharded::{ShardedMap, ShardedSet, SHARDS},
};

/// A record and the batch that last changed it.
#[derive(Debug, Clone, Default)]
struct Slot<V> {
    value: V,
    touched: u32,
}

/// Records of one kind, by key (short text unless told), with change tracking.
#[derive(Debug, Clone)]
pub struct Table<V, K = Text> {
    prefix: &'static str,
    rows: ShardedMap<K, Slot<V>>,
    /// The keys of the records changed since the last drain, unless `all_changed`.
    dirty: ShardedSet<K>,
    /// Every record counts as changed and no keys are tracked (during a catch-up longer than the
    /// views are big, after which they are stored whole: a copy of every key would cost ~25 MB at
    /// a million events).
    all_changed: bool,
    /// Whether records may leave memory for disk (fixed by the table's kind).
    bounded: bool,
    /// How many records stay in memory before the least recently changed leave.
    budget: usize,
    /// Where records that left memory are (once the read model attached it).
    disk: Option<Arc<RecordRuns>>,
    /// Keys removed while a copy of theirs may be on disk, until their removal is there too.
    removed: ShardedSet<K>,
    /// Keys that left memory since the last drain (the next journal frame says so).
    left: Vec<K>,
    /// Records left memory while every record counted as changed, without their keys being
    /// kept: the table must then be stored whole (a snapshot), not by a frame.
    left_untracked: bool,
    /// The current batch's number, which changed records are stamped with.
    clock: u32,
}

/// Changed or stored records of one table: (key, record encoded with postcard); an empty
/// encoding (no record encodes to nothing) stands for a record removed.
pub type EncodedRecords = Vec<(String, Vec<u8>)>;

/// The key a record of the table stored under `prefix` has on disk.
pub fn disk_key(prefix: &str, key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(prefix.len() + 1 + key.len());
    out.extend_from_slice(prefix.as_bytes());
    out.push(0);
    out.extend_from_slice(key.as_bytes());
    out
}

/// A table seen without its record type: what storing and comparing the views needs.
pub trait StoredTable {
    /// The name it is stored under (e.g. `v/plans/plan/`).
    fn prefix(&self) -> &'static str;
    /// How many records in memory.
    fn records(&self) -> usize;
    /// How many records changed (or left memory) since the last [`StoredTable::drain_changes`].
    fn changed(&self) -> usize;
    /// The changed records, encoded, forgetting that they changed.
    fn drain_changes(&mut self) -> EncodedRecords;
    /// The keys of the records that left memory since the last call, forgetting them.
    fn drain_left(&mut self) -> Vec<String>;
    /// Forgets which records changed or left (they were stored another way), and the room that took.
    fn clear_changes(&mut self);
    /// Whether records left memory without their keys being kept (while every record counted as
    /// changed): only a snapshot, not a journal frame, stores the table then.
    fn needs_snapshot(&self) -> bool;
    /// Counts every record as changed from now until the next drain or clear, tracking no keys.
    fn mark_all_changed(&mut self);
    /// How many slices [`StoredTable::encode_slice`] reads the table in.
    fn slices(&self) -> usize;
    /// The records in memory of slice `index` (`0..slices()`), encoded, with the removals not
    /// yet on disk: every record is in exactly one.
    fn encode_slice(&self, index: usize) -> EncodedRecords;
    /// Stores an encoded record under `key`.
    fn load(&mut self, key: &str, value: &[u8]) -> Result<(), LoadError>;
    /// Takes note (while loading) that the record under `key` left memory: its state is on disk.
    fn load_left(&mut self, key: &str) -> Result<(), LoadError>;
    /// Every record, in memory or on disk, as (storage key, JSON value), for comparing two models.
    fn all_records(&self, out: &mut std::collections::BTreeMap<String, serde_json::Value>);
    /// Whether more records are in memory than the budget allows (never, without a disk).
    fn over_budget(&self) -> bool;
    /// The records that should leave memory now (the least recently changed beyond three
    /// quarters of the budget, when over it) and the removals not yet on disk, as (key, stored
    /// state); nothing without a disk.
    fn leaving(&self) -> Vec<(String, Stored)>;
    /// Forgets the records of `keys` from memory (they are on disk now, as they were after
    /// batch `unchanged_since`): those changed since stay.
    fn forget(&mut self, keys: &[String], unchanged_since: u32);
    /// Sets where records that leave memory go, and how many stay (a table not made with
    /// [`Table::bounded`] keeps every record whatever it is given).
    fn keep_on_disk(&mut self, disk: Arc<RecordRuns>, budget: usize);
    /// Starts a new batch: records changed from now on count as more recent.
    fn tick(&mut self);
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

impl<V: Serialize + DeserializeOwned + Default + Clone, K: TableKey> Table<V, K> {
    /// An empty table stored under `prefix` (e.g. `v/plans/plan/`) whose records all stay in memory.
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            rows: ShardedMap::default(),
            dirty: ShardedSet::default(),
            all_changed: false,
            bounded: false,
            budget: usize::MAX,
            disk: None,
            removed: ShardedSet::default(),
            left: Vec::new(),
            left_untracked: false,
            clock: 0,
        }
    }

    /// An empty table stored under `prefix` whose records may leave memory for disk, once
    /// [`StoredTable::keep_on_disk`] gives it a disk and a budget.
    pub fn bounded(prefix: &'static str) -> Self {
        Self { bounded: true, ..Self::new(prefix) }
    }

    /// Whether removals must be remembered until they are on disk.
    fn tracks_removals(&self) -> bool {
        self.bounded && self.disk.is_some()
    }

    /// The record under `key`, created empty if absent (read back from disk if it is there);
    /// marked changed.
    pub fn entry<Q>(&mut self, key: &Q) -> &mut V
    where
        K: Borrow<Q> + for<'a> From<&'a Q>,
        Q: Hash + Eq + fmt::Display + ?Sized,
    {
        // Keys are made only the first time they are seen, each table looked up once when
        // nothing is on disk (this is the projection hot path).
        if !self.all_changed {
            self.dirty.insert_ref(key);
        }
        let clock = self.clock;
        if self.bounded && !self.rows.contains_key(key) {
            // Created again after a removal, or read back from disk (when one is attached).
            let value = if self.removed.remove(key) { V::default() } else { self.read_disk(key).unwrap_or_default() };
            self.rows.insert(K::from(key), Slot { value, touched: clock });
        }
        let slot = self.rows.get_or_insert_default(key);
        slot.touched = clock;
        &mut slot.value
    }

    /// The record under `key`, from memory or from disk.
    pub fn get<Q>(&self, key: &Q) -> Option<Cow<'_, V>>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + fmt::Display + ?Sized,
    {
        if let Some(slot) = self.rows.get(key) {
            return Some(Cow::Borrowed(&slot.value));
        }
        if self.disk.is_none() || self.removed.contains(key) {
            return None;
        }
        self.read_disk(key).map(Cow::Owned)
    }

    /// The record under `key` on disk. A read that fails is reported to the disk's owner (the
    /// projection runner stops on it) and reads as no record.
    fn read_disk<Q: fmt::Display + ?Sized>(&self, key: &Q) -> Option<V> {
        let disk = self.disk.as_ref()?;
        let found = disk.get(&disk_key(self.prefix, &key.to_string()));
        match found {
            Ok(Some(Some(bytes))) => match postcard::from_bytes(&bytes) {
                Ok(value) => Some(value),
                Err(e) => {
                    disk.note_failure(&crate::store::record_runs::RecordRunsError::Damaged {
                        path: self.prefix.into(),
                        reason: format!("record {key} does not decode: {e}"),
                    });
                    None
                }
            },
            Ok(_) => None,
            Err(e) => {
                disk.note_failure(&e);
                None
            }
        }
    }

    /// Removes the record under `key` (drained as a removal while keys are tracked).
    pub fn remove<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q> + for<'a> From<&'a Q>,
        Q: Hash + Eq + ?Sized,
    {
        let was = self.rows.remove(key).is_some();
        let tracked = self.tracks_removals();
        if tracked {
            self.removed.insert_ref(key);
        }
        if (was || tracked) && !self.all_changed {
            self.dirty.insert_ref(key);
        }
    }

    /// Removes every record, in memory and on disk; while keys are tracked each removal is a
    /// change (drained as a removal), otherwise the table is stored whole anyway.
    pub fn remove_all(&mut self) {
        let rows = std::mem::take(&mut self.rows);
        let mut keys: Vec<K> = rows.iter().map(|(key, _)| key.clone()).collect();
        if self.tracks_removals() {
            self.for_each_on_disk(|key, _| keys.push(key));
            self.removed.extend(keys.iter().cloned());
        }
        if !self.all_changed {
            self.dirty.extend(keys);
        }
    }

    /// Shows every record, in memory and on disk, to `each` (in no particular order).
    pub fn for_each(&self, mut each: impl FnMut(&K, &V)) {
        for (key, slot) in self.rows.iter() {
            each(key, &slot.value);
        }
        self.for_each_on_disk(|key, value| each(&key, &value));
    }

    /// Every record of a table whose records all stay in memory (one not made with
    /// [`Table::bounded`]; a bounded table's are walked with [`Table::for_each`]).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        debug_assert!(!self.bounded, "{}: a bounded table is walked with for_each", self.prefix);
        self.rows.iter().map(|(key, slot)| (key, &slot.value))
    }

    /// Every record's value, of a table whose records all stay in memory (see [`Table::iter`]).
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, value)| value)
    }

    /// The records on disk that are neither in memory nor removed.
    fn for_each_on_disk(&self, mut each: impl FnMut(K, V)) {
        let Some(disk) = &self.disk else { return };
        let prefix = disk_key(self.prefix, "");
        let mut failure = None;
        let walked = disk.for_each_with_prefix(&prefix, |stored_key, value| {
            let Some(value) = value else { return };
            let Some(key) = std::str::from_utf8(&stored_key[prefix.len()..]).ok().and_then(K::parse_key) else {
                failure.get_or_insert_with(|| "a key on disk is not one of this table's".to_string());
                return;
            };
            if self.rows.contains_key(&key) || self.removed.contains(&key) {
                return;
            }
            match postcard::from_bytes(value) {
                Ok(value) => each(key, value),
                Err(e) => {
                    failure.get_or_insert_with(|| format!("record {key} does not decode: {e}"));
                }
            }
        });
        if let Err(e) = walked {
            disk.note_failure(&e);
        }
        if let Some(reason) = failure {
            disk.note_failure(&crate::store::record_runs::RecordRunsError::Damaged {
                path: self.prefix.into(),
                reason,
            });
        }
    }

    /// How many records in memory.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there are no records in memory.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    fn encode_one(value: &V) -> Vec<u8> {
        // Plain structs of strings, numbers and times: encoding into a Vec cannot fail.
        postcard::to_stdvec(value).unwrap_or_default()
    }
}

impl<V: Serialize + DeserializeOwned + Default + Clone, K: TableKey> StoredTable for Table<V, K> {
    fn prefix(&self) -> &'static str {
        self.prefix
    }

    fn records(&self) -> usize {
        self.rows.len()
    }

    fn changed(&self) -> usize {
        let changed = if self.all_changed { self.rows.len() + self.removed.len() } else { self.dirty.len() };
        changed + self.left.len()
    }

    fn drain_changes(&mut self) -> EncodedRecords {
        if std::mem::take(&mut self.all_changed) {
            return (0..SHARDS).flat_map(|i| self.encode_slice(i)).collect();
        }
        let mut out = Vec::with_capacity(self.dirty.len());
        for key in self.dirty.drain() {
            let encoded = match self.rows.get(&key) {
                Some(slot) => Self::encode_one(&slot.value),
                // Left memory since it changed: its state is on disk, and the frame says it left.
                None if self.bounded && !self.removed.contains(&key) && self.disk.is_some() => continue,
                None => Vec::new(),
            };
            out.push((key.to_string(), encoded));
        }
        out
    }

    fn drain_left(&mut self) -> Vec<String> {
        self.left.drain(..).map(|key| key.to_string()).collect()
    }

    fn clear_changes(&mut self) {
        self.all_changed = false;
        self.dirty = ShardedSet::default();
        self.left = Vec::new();
        self.left_untracked = false;
    }

    fn needs_snapshot(&self) -> bool {
        self.left_untracked
    }

    fn mark_all_changed(&mut self) {
        self.all_changed = true;
        self.dirty = ShardedSet::default();
    }

    fn slices(&self) -> usize {
        SHARDS
    }

    fn encode_slice(&self, index: usize) -> EncodedRecords {
        let records = self.rows.shard(index).map(|(key, slot)| (key.to_string(), Self::encode_one(&slot.value)));
        records.chain(self.removed.shard(index).map(|key| (key.to_string(), Vec::new()))).collect()
    }

    fn load(&mut self, key: &str, value: &[u8]) -> Result<(), LoadError> {
        let key = K::parse_key(key).ok_or(LoadError::Key)?;
        if value.is_empty() {
            self.rows.remove(&key);
            if self.bounded {
                self.removed.insert(key);
            }
        } else {
            self.removed.remove(&key);
            self.rows.insert(key, Slot { value: postcard::from_bytes(value)?, touched: 0 });
        }
        Ok(())
    }

    fn load_left(&mut self, key: &str) -> Result<(), LoadError> {
        let key = K::parse_key(key).ok_or(LoadError::Key)?;
        self.rows.remove(&key);
        self.removed.remove(&key);
        Ok(())
    }

    fn all_records(&self, out: &mut std::collections::BTreeMap<String, serde_json::Value>) {
        self.for_each(|key, value| {
            out.insert(format!("{}{key}", self.prefix), serde_json::to_value(value).unwrap_or_default());
        });
    }

    fn over_budget(&self) -> bool {
        self.disk.is_some() && self.rows.len() > self.budget
    }

    fn leaving(&self) -> Vec<(String, Stored)> {
        if self.disk.is_none() {
            return Vec::new();
        }
        let mut out: Vec<(String, Stored)> = self.removed.iter().map(|key| (key.to_string(), None)).collect();
        if self.rows.len() > self.budget {
            let count = self.rows.len() - self.budget / 4 * 3;
            let mut stamps: Vec<u32> = self.rows.values().map(|slot| slot.touched).collect();
            let threshold = *stamps.select_nth_unstable(count - 1).1;
            let below = stamps.iter().filter(|stamp| **stamp < threshold).count();
            let mut at_threshold = count - below;
            for (key, slot) in self.rows.iter() {
                let leaves = slot.touched < threshold
                    || (slot.touched == threshold && at_threshold > 0 && {
                        at_threshold -= 1;
                        true
                    });
                if leaves {
                    out.push((key.to_string(), Some(Self::encode_one(&slot.value))));
                }
            }
        }
        out
    }

    fn forget(&mut self, keys: &[String], unchanged_since: u32) {
        for key in keys.iter().filter_map(|key| K::parse_key(key)) {
            if self.rows.get(&key).is_some_and(|slot| slot.touched > unchanged_since) {
                continue;
            }
            self.rows.remove(&key);
            self.removed.remove(&key);
            if self.all_changed {
                // A catch-up: its keys would grow with the log; the table is stored whole.
                self.left_untracked = true;
            } else {
                self.left.push(key);
            }
        }
    }

    fn keep_on_disk(&mut self, disk: Arc<RecordRuns>, budget: usize) {
        if self.bounded {
            self.disk = Some(disk);
            self.budget = budget.max(4);
        }
    }

    fn tick(&mut self) {
        self.clock = self.clock.wrapping_add(1);
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
        assert_eq!(copy.get("a").as_deref(), Some(&vec![(1, 2)]));
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

    /// A bounded table on disk with room for `budget` records.
    fn on_disk(dir: &std::path::Path, budget: usize) -> (Table<Vec<(i64, u64)>>, Arc<RecordRuns>) {
        let disk = Arc::new(RecordRuns::open(dir).unwrap());
        let mut table: Table<Vec<(i64, u64)>> = Table::bounded("v/test/");
        table.keep_on_disk(disk.clone(), budget);
        (table, disk)
    }

    /// What the projection runner does: the leaving records to a run, then forgotten.
    fn hand_over(table: &mut Table<Vec<(i64, u64)>>, disk: &RecordRuns, through: u64) -> Vec<String> {
        let leaving = table.leaving();
        let keys: Vec<String> = leaving.iter().map(|(key, _)| key.clone()).collect();
        disk.add_run(leaving.into_iter().map(|(key, stored)| (disk_key("v/test/", &key), stored)).collect(), through)
            .unwrap();
        let clock = table.clock;
        table.forget(&keys, clock);
        keys
    }

    #[test]
    fn a_bounded_table_hands_its_least_recently_changed_records_to_disk_and_reads_them_back() {
        let dir = tempfile::tempdir().unwrap();
        let (mut table, disk) = on_disk(dir.path(), 8);
        for i in 0..10 {
            table.tick();
            table.entry(format!("k{i}").as_str()).push((i, i as u64));
        }
        assert!(table.over_budget());
        let _ = table.drain_changes();
        let left = hand_over(&mut table, &disk, 10);
        // Down to three quarters of the budget, the oldest first.
        assert_eq!(left.len(), 4);
        assert!(left.iter().all(|key| ["k0", "k1", "k2", "k3"].contains(&key.as_str())));
        assert_eq!(table.records(), 6);
        assert!(!table.over_budget());
        // Read back when asked for, without coming back into memory; brought back by a change.
        assert_eq!(table.get("k1").as_deref(), Some(&vec![(1, 1)]));
        assert_eq!(table.records(), 6);
        table.entry("k1").push((11, 11));
        assert_eq!(table.records(), 7);
        assert_eq!(table.get("k1").as_deref(), Some(&vec![(1, 1), (11, 11)]));
        // The next frame says which records left, and holds k1's new state.
        let changes = table.drain_changes();
        assert_eq!(changes.iter().map(|(key, _)| key.as_str()).collect::<Vec<_>>(), ["k1"]);
        let mut frame_left = table.drain_left();
        frame_left.sort();
        assert_eq!(frame_left, ["k0", "k1", "k2", "k3"]);
        // A removal hides the copy on disk, in memory until it is on disk too.
        table.remove("k2");
        assert_eq!(table.get("k2"), None);
        assert_eq!(table.drain_changes(), vec![("k2".to_string(), Vec::new())]);
        let mut all = Vec::new();
        table.for_each(|key, value| all.push((key.to_string(), value.clone())));
        all.sort();
        assert_eq!(all.len(), 9, "k0, k1, k3..k9: {all:?}");
        let slices: EncodedRecords = (0..table.slices()).flat_map(|i| table.encode_slice(i)).collect();
        assert!(slices.contains(&("k2".to_string(), Vec::new())), "a snapshot keeps the removal");
        assert_eq!(hand_over(&mut table, &disk, 11), ["k2"]);
        assert_eq!(table.get("k2"), None);
        assert_eq!(disk.get(&disk_key("v/test/", "k2")).unwrap(), Some(None));
        // Created again after its removal: nothing of the old record comes back.
        table.entry("k2").push((12, 12));
        assert_eq!(table.get("k2").as_deref(), Some(&vec![(12, 12)]));
        // Removing everything removes what is on disk too.
        table.remove_all();
        let mut none = 0;
        table.for_each(|_, _| none += 1);
        assert_eq!(none, 0);
        assert_eq!(table.get("k0"), None);
    }

    #[test]
    fn loading_a_frame_that_says_records_left_forgets_them_from_memory() {
        let dir = tempfile::tempdir().unwrap();
        let (mut table, disk) = on_disk(dir.path(), 4);
        for i in 0..6 {
            table.tick();
            table.entry(format!("k{i}").as_str()).push((i, i as u64));
        }
        let stored = table.drain_changes();
        let left = hand_over(&mut table, &disk, 6);
        let mut loaded: Table<Vec<(i64, u64)>> = Table::bounded("v/test/");
        for (key, value) in &stored {
            loaded.load(key, value).unwrap();
        }
        for key in table.drain_left() {
            loaded.load_left(&key).unwrap();
        }
        loaded.keep_on_disk(disk, 4);
        assert_eq!(loaded.records(), 6 - left.len());
        for i in 0..6 {
            assert_eq!(loaded.get(format!("k{i}").as_str()).as_deref(), Some(&vec![(i, i as u64)]));
        }
        assert!(loaded.load_left("not a key").is_ok(), "a text table takes any key");
    }
}
