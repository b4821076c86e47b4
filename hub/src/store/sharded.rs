//! Hash maps and sets split into [`SHARDS`] smaller tables, so that growing one never rehashes
//! everything at once.
//!
//! A hash table doubles when it fills, moving every entry in one insert. In the projection that
//! insert holds the views' write lock. Measured on maps of the same shapes (a throwaway program,
//! docs/performance.md): a string-keyed map doubling at 229,000 keys (the person timelines at a
//! million events are ~206,000) took 54 ms, a set of 128-bit digests (the applied identities, since
//! kept in [`crate::store::digest_set`]) 40 ms at 917,000 and 94 ms at 1.8 million; in the hub, single
//! batches spent 45–92 ms applying a few events, the 99th percentile of publish → visible. Split in
//! 256, a doubling moves at most 1/256 of the entries (by the same curve a few hundred microseconds
//! at a million), for the same total work. Shards also let a snapshot read a table a slice at a
//! time (see [`crate::store::views_store`]).
//!
//! The shard of a key comes from bits 40–47 of its hash under a seed of its own, independent of
//! the per-shard tables' own (seeded) hashing.

use std::{
    borrow::Borrow,
    hash::{BuildHasher, Hash},
};

use hashbrown::{
    hash_map::{Entry, EntryRef},
    DefaultHashBuilder, HashMap,
};

/// How many shards a map has.
pub const SHARDS: usize = 256;

/// A hash map in [`SHARDS`] shards.
#[derive(Debug, Clone)]
pub struct ShardedMap<K, V> {
    shards: Box<[HashMap<K, V>]>,
    picker: DefaultHashBuilder,
    len: usize,
}

impl<K, V> Default for ShardedMap<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| HashMap::default()).collect(),
            picker: DefaultHashBuilder::default(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq, V> ShardedMap<K, V> {
    fn shard_of<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        ((self.picker.hash_one(key) >> 40) as usize) % SHARDS
    }

    /// The value under `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].get(key)
    }

    /// The value under `key`, to change.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        self.shards[shard].get_mut(key)
    }

    /// Whether `key` is present.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard_of(key)].contains_key(key)
    }

    /// Puts `value` under `key`; returns the value it replaces.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard_of(&key);
        let old = self.shards[shard].insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// Removes `key`; returns its value.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard_of(key);
        let old = self.shards[shard].remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    /// The value under `key`, inserted with `V::default()` under a key made from `key` when
    /// absent: one lookup, and a key made only for a new entry.
    pub fn get_or_insert_default<Q>(&mut self, key: &Q) -> &mut V
    where
        K: Borrow<Q> + for<'a> From<&'a Q>,
        Q: Hash + Eq + ?Sized,
        V: Default,
    {
        let shard = self.shard_of(key);
        match self.shards[shard].entry_ref(key) {
            EntryRef::Occupied(entry) => entry.into_mut(),
            EntryRef::Vacant(entry) => {
                self.len += 1;
                entry.insert(V::default())
            }
        }
    }

    /// The value under `key`, inserted with `V::default()` when absent.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let shard = self.shard_of(&key);
        match self.shards[shard].entry(key) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => {
                self.len += 1;
                entry.insert(V::default())
            }
        }
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every entry (shard by shard, in no particular order).
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(|shard| shard.iter())
    }

    /// Every value.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(|shard| shard.values())
    }

    /// The entries of shard `index` (`0..SHARDS`).
    pub fn shard(&self, index: usize) -> impl Iterator<Item = (&K, &V)> {
        self.shards.get(index).into_iter().flat_map(|shard| shard.iter())
    }

    /// Removes every entry, returning them; each shard keeps its room.
    pub fn drain(&mut self) -> Vec<(K, V)> {
        let mut out = Vec::with_capacity(self.len);
        for shard in self.shards.iter_mut() {
            out.extend(shard.drain());
        }
        self.len = 0;
        out
    }

    /// Removes every entry; each shard keeps its room.
    pub fn clear(&mut self) {
        self.shards.iter_mut().for_each(HashMap::clear);
        self.len = 0;
    }
}

impl<K: Hash + Eq, V> FromIterator<(K, V)> for ShardedMap<K, V> {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(items: I) -> Self {
        let mut map = Self::default();
        map.extend(items);
        map
    }
}

impl<K: Hash + Eq, V> Extend<(K, V)> for ShardedMap<K, V> {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, items: I) {
        for (key, value) in items {
            self.insert(key, value);
        }
    }
}

/// A hash set in [`SHARDS`] shards.
#[derive(Debug, Clone)]
pub struct ShardedSet<K>(ShardedMap<K, ()>);

impl<K> Default for ShardedSet<K> {
    fn default() -> Self {
        Self(ShardedMap::default())
    }
}

impl<K: Hash + Eq> ShardedSet<K> {
    /// Adds `key`; whether it was new.
    pub fn insert(&mut self, key: K) -> bool {
        self.0.insert(key, ()).is_none()
    }

    /// Adds a key made from `key` when absent (one lookup, and a key made only when new).
    pub fn insert_ref<Q>(&mut self, key: &Q)
    where
        K: Borrow<Q> + for<'a> From<&'a Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.get_or_insert_default(key);
    }

    /// Whether `key` is present.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.contains_key(key)
    }

    /// Removes `key`; whether it was present.
    pub fn remove<Q>(&mut self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.0.remove(key).is_some()
    }

    /// The keys of shard `index` (`0..SHARDS`).
    pub fn shard(&self, index: usize) -> impl Iterator<Item = &K> {
        self.0.shard(index).map(|(key, ())| key)
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every key.
    pub fn iter(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(key, ())| key)
    }

    /// Removes every key, returning them; each shard keeps its room.
    pub fn drain(&mut self) -> Vec<K> {
        self.0.drain().into_iter().map(|(key, ())| key).collect()
    }

    /// Removes every key.
    pub fn clear(&mut self) {
        self.0.clear();
    }
}

impl<K: Hash + Eq> FromIterator<K> for ShardedSet<K> {
    fn from_iter<I: IntoIterator<Item = K>>(keys: I) -> Self {
        Self(keys.into_iter().map(|key| (key, ())).collect())
    }
}

impl<K: Hash + Eq> Extend<K> for ShardedSet<K> {
    fn extend<I: IntoIterator<Item = K>>(&mut self, keys: I) {
        self.0.extend(keys.into_iter().map(|key| (key, ())));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap as StdMap;

    use super::*;

    #[test]
    fn it_behaves_like_one_map_across_shards() {
        let mut map: ShardedMap<String, u64> = ShardedMap::default();
        let mut model: StdMap<String, u64> = StdMap::new();
        for i in 0..5_000u64 {
            let key = format!("k{}", i % 3_000);
            assert_eq!(map.insert(key.clone(), i), model.insert(key, i));
        }
        for i in (0..3_000u64).step_by(7) {
            let key = format!("k{i}");
            assert_eq!(map.remove(key.as_str()), model.remove(&key));
        }
        *map.entry_or_default("new".into()) += 5;
        *model.entry("new".into()).or_default() += 5;
        *map.get_or_insert_default("new") += 1;
        *map.get_or_insert_default("newer") += 2;
        *model.entry("new".into()).or_default() += 1;
        *model.entry("newer".into()).or_default() += 2;
        assert_eq!(map.len(), model.len());
        assert_eq!(map.iter().count(), model.len());
        for (key, value) in &model {
            assert_eq!(map.get(key.as_str()), Some(value));
        }
        let per_shard: usize = (0..SHARDS).map(|i| map.shard(i).count()).sum();
        assert_eq!(per_shard, model.len());
        assert!(map.shard(SHARDS).next().is_none());
        // Spread over the shards, not piled into a few.
        assert!((0..SHARDS).all(|i| map.shard(i).count() < 4 * model.len() / SHARDS));
        let drained: StdMap<String, u64> = map.drain().into_iter().collect();
        assert_eq!(drained, model);
        assert!(map.is_empty() && map.get("k1").is_none());
    }

    #[test]
    fn a_set_counts_each_key_once() {
        let mut set: ShardedSet<u128> = (0..1_000u128).collect();
        assert!(!set.insert(5));
        assert!(set.insert(1_000));
        assert_eq!(set.len(), 1_001);
        assert!(set.contains(&999) && !set.contains(&1_001));
        let mut names: ShardedSet<String> = ShardedSet::default();
        names.insert_ref("a");
        names.insert_ref("a");
        assert!(names.len() == 1 && names.contains("a"));
        assert_eq!(set.drain().len(), 1_001);
        assert!(set.is_empty());
    }
}
