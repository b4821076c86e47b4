//! The applied identities: a set of 128-bit digests that takes 16 bytes per digest.
//!
//! The projection runner checks every event's identity digest against every identity it ever
//! applied, so the set holds one digest per event in the log. As a hash set (hashbrown, in 256
//! shards) it took 35.7 MB at 1,120,000 digests (heaptrack, docs/performance.md, "Memory"):
//! a hash table keeps its load below 7/8 by doubling, so at times it is half empty. Here each
//! shard keeps its digests in a sorted vector of exactly their number, plus a small hash set of
//! the newest ones that is merged into the vector once it holds [`MERGE_AT`]. Lookups are a
//! binary search and a hash probe; a merge copies one shard (~4,400 digests at a million events),
//! about 280 bytes copied per insert.
//!
//! Digests are xxh3 hashes, already uniform: the shard is the top byte, with no hashing again.

use hashbrown::HashSet;

/// Shards (by the digest's top byte).
const SHARDS: usize = 256;

/// Newest digests a shard keeps in its hash set before merging them into its sorted vector.
pub const MERGE_AT: usize = 256;

/// A set of 128-bit digests (see the module's documentation).
#[derive(Debug, Clone)]
pub struct DigestSet {
    shards: Vec<Shard>,
}

#[derive(Debug, Clone, Default)]
struct Shard {
    /// Sorted, no repeats, capacity equal to length (after each merge).
    sorted: Vec<u128>,
    /// The newest digests, none of them in `sorted`.
    recent: HashSet<u128>,
}

impl Default for DigestSet {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Shard::default()).collect() }
    }
}

impl DigestSet {
    /// A set of the given digests (repeats count once); each shard sorted once.
    pub fn from_digests(digests: impl IntoIterator<Item = u128>) -> Self {
        let mut set = Self::default();
        for digest in digests {
            set.shards[shard_of(digest)].sorted.push(digest);
        }
        for shard in &mut set.shards {
            shard.sorted.sort_unstable();
            shard.sorted.dedup();
            shard.sorted.shrink_to_fit();
        }
        set
    }

    /// Adds `digest`; whether it was new.
    pub fn insert(&mut self, digest: u128) -> bool {
        let shard = &mut self.shards[shard_of(digest)];
        if shard.sorted.binary_search(&digest).is_ok() || !shard.recent.insert(digest) {
            return false;
        }
        if shard.recent.len() >= MERGE_AT {
            shard.merge();
        }
        true
    }

    /// Whether `digest` is present.
    pub fn contains(&self, digest: u128) -> bool {
        let shard = &self.shards[shard_of(digest)];
        shard.recent.contains(&digest) || shard.sorted.binary_search(&digest).is_ok()
    }

    /// How many digests it holds.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.sorted.len() + s.recent.len()).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every digest, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = u128> + '_ {
        self.shards.iter().flat_map(|s| s.sorted.iter().chain(s.recent.iter()).copied())
    }
}

impl Shard {
    /// Moves the recent digests into the sorted vector, into a new one of exactly the size needed.
    fn merge(&mut self) {
        let mut recent: Vec<u128> = self.recent.drain().collect();
        recent.sort_unstable();
        let mut merged = Vec::with_capacity(self.sorted.len() + recent.len());
        let (mut old, mut new) = (self.sorted.iter().peekable(), recent.iter().peekable());
        while let (Some(&&a), Some(&&b)) = (old.peek(), new.peek()) {
            if a < b {
                merged.push(a);
                old.next();
            } else {
                merged.push(b);
                new.next();
            }
        }
        merged.extend(old);
        merged.extend(new);
        self.sorted = merged;
    }
}

fn shard_of(digest: u128) -> usize {
    (digest >> 120) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Digests spread over every shard, as xxh3's are.
    fn digest(i: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&i.to_le_bytes())
    }

    #[test]
    fn holds_what_a_hash_set_holds_through_many_merges() {
        let mut set = DigestSet::default();
        let mut reference = std::collections::HashSet::new();
        // Every value three times, in an order that mixes old and new: repeats of merged and of
        // recent digests are both refused.
        for round in 0..3u64 {
            for i in 0..200_000u64 {
                let d = digest((i * 7 + round * 13) % 150_000);
                assert_eq!(set.insert(d), reference.insert(d), "digest of {i} in round {round}");
            }
        }
        assert_eq!(set.len(), reference.len());
        assert!(reference.iter().all(|d| set.contains(*d)));
        assert!(!set.contains(digest(150_001)));
        let mut all: Vec<u128> = set.iter().collect();
        assert_eq!(all.len(), reference.len());
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), reference.len(), "iter yields each digest once");
        for shard in &set.shards {
            assert!(shard.sorted.windows(2).all(|w| w[0] < w[1]), "each shard's vector stays sorted");
            assert!(shard.recent.len() < MERGE_AT);
        }
    }

    #[test]
    fn built_from_digests_it_is_the_same_set_and_goes_on_refusing_repeats() {
        let digests: Vec<u128> = (0..50_000).map(digest).chain((0..1_000).map(digest)).collect();
        let mut set = DigestSet::from_digests(digests);
        assert_eq!(set.len(), 50_000);
        assert!(!set.insert(digest(42)));
        assert!(set.insert(digest(50_000)));
        assert!(set.contains(digest(50_000)));
        assert!(!set.is_empty());
        assert!(DigestSet::default().is_empty());
    }

    #[test]
    fn takes_about_sixteen_bytes_per_digest() {
        let set = DigestSet::from_digests((0..100_000).map(digest));
        let bytes: usize = set.shards.iter().map(|s| s.sorted.capacity() * 16).sum();
        assert_eq!(bytes, 100_000 * 16);
    }
}
