//! The identities (`source`/`id`) of every event the read model applied, as 128-bit digests, in
//! memory that does not grow with the log.
//!
//! The projection runner asks about every event whether its identity was applied before (a retry
//! days after JetStream's duplicate window). The newest identities (up to the configured
//! `identities_in_memory`) are in memory; older ones are in sorted runs on disk
//! ([`super::sorted_runs`]), in front of which a Bloom filter answers "never seen" for nearly
//! every new event without reading the disk. The filter has 16 bits per identity, in powers of
//! two from 1 MiB up to [`FILTER_MAX_BYTES`] (16 MiB, reached at 8,388,608 identities), and is
//! refilled from the runs when it grows; past that its false positives grow with the log (about
//! 0.2 % at 10,000,000 identities, 4 % at 20,000,000), each costing one block read per run, never
//! a wrong answer.
//!
//! Crash recovery: the digests of each batch are also written with its checkpoint in sled
//! (`ids/<sequence>`, see the read model); those newer than the runs' `through` are what
//! [`AppliedIdentities::open`] is given back as the recent ones. Runs are written only for
//! batches sled has made durable, so a run never holds an identity that a crash could un-apply.

use std::path::Path;

use super::{
    digest_set::DigestSet,
    sorted_runs::{RunsError, SortedRuns},
};

/// The Bloom filter's largest size (2^27 bits).
pub const FILTER_MAX_BYTES: usize = 1 << 24;

/// Its smallest size.
const FILTER_MIN_BYTES: usize = 1 << 20;

/// Bits of filter per identity, up to [`FILTER_MAX_BYTES`].
const FILTER_BITS_PER_IDENTITY: usize = 16;

/// Hash functions of the filter (bits set per identity).
const FILTER_HASHES: u64 = 6;

/// A Bloom filter over digests that are already uniform hashes (xxh3-128): bit positions come
/// from the digest's two halves (double hashing), without hashing again.
#[derive(Debug)]
struct Filter {
    words: Vec<u64>,
}

impl Filter {
    /// A filter sized for `identities`.
    fn for_identities(identities: u64) -> Self {
        let bytes = (identities as usize * FILTER_BITS_PER_IDENTITY / 8)
            .next_power_of_two()
            .clamp(FILTER_MIN_BYTES, FILTER_MAX_BYTES);
        Self { words: vec![0; bytes / 8] }
    }

    /// How many identities it is sized for.
    fn capacity(&self) -> usize {
        self.words.len() * 64 / FILTER_BITS_PER_IDENTITY
    }

    fn positions(&self, digest: u128) -> impl Iterator<Item = usize> {
        let bits = (self.words.len() * 64) as u64;
        let (low, high) = (digest as u64, (digest >> 64) as u64 | 1);
        (0..FILTER_HASHES).map(move |i| (low.wrapping_add(i.wrapping_mul(high)) % bits) as usize)
    }

    fn insert(&mut self, digest: u128) {
        for bit in self.positions(digest) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_contain(&self, digest: u128) -> bool {
        self.positions(digest).all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// The applied identities (see the module's documentation).
#[derive(Debug)]
pub struct AppliedIdentities {
    recent: DigestSet,
    filter: Filter,
    runs: SortedRuns<16>,
}

impl AppliedIdentities {
    /// Opens the runs in `dir` (reading them once to fill the filter) and takes the digests
    /// applied after their [`SortedRuns::through`], which `recent_after` gives (from sled).
    pub fn open<E: From<RunsError>>(
        dir: &Path,
        recent_after: impl FnOnce(u64) -> Result<Vec<u128>, E>,
    ) -> Result<Self, E> {
        let runs = SortedRuns::open(dir, |_| {})?;
        let recent = DigestSet::from_digests(recent_after(runs.through())?);
        let filter = Filter::for_identities(runs.size().1 + recent.len() as u64);
        let mut ids = Self { recent, filter, runs };
        ids.refill_filter()?;
        Ok(ids)
    }

    /// Fills the filter from the runs and the recent identities.
    fn refill_filter(&mut self) -> Result<(), RunsError> {
        let filter = &mut self.filter;
        self.runs.for_each(|record| filter.insert(u128::from_be_bytes(*record)))?;
        for digest in self.recent.iter() {
            filter.insert(digest);
        }
        Ok(())
    }

    /// The log sequence up to which the identities are in runs on disk.
    pub fn through(&self) -> u64 {
        self.runs.through()
    }

    /// Records `digest` as applied; whether it was new.
    pub fn insert(&mut self, digest: u128) -> Result<bool, RunsError> {
        if self.contains(digest)? {
            return Ok(false);
        }
        self.recent.insert(digest);
        self.filter.insert(digest);
        Ok(true)
    }

    /// Whether `digest` was applied.
    pub fn contains(&self, digest: u128) -> Result<bool, RunsError> {
        Ok(self.filter.may_contain(digest)
            && (self.recent.contains(digest) || self.runs.contains(&digest.to_be_bytes())?))
    }

    /// How many identities are in memory (not yet handed over).
    pub fn recent(&self) -> usize {
        self.recent.len()
    }

    /// Writes the recent identities as a run covering the log up to `through` and forgets them
    /// from memory. The caller makes sure every batch up to `through` is durable first.
    pub fn hand_over(&mut self, through: u64) -> Result<(), RunsError> {
        let records = self.recent.iter().map(u128::to_be_bytes).collect();
        self.runs.add_run(records, through)?;
        self.recent = DigestSet::default();
        let identities = self.runs.size().1;
        if identities as usize > self.filter.capacity() && self.filter.words.len() * 8 < FILTER_MAX_BYTES {
            self.filter = Filter::for_identities(identities);
            self.refill_filter()?;
        }
        Ok(())
    }

    /// Every identity, recent and on disk (repeats across runs included): for tests and checks.
    pub fn for_each(&self, mut each: impl FnMut(u128)) -> Result<(), RunsError> {
        self.recent.iter().for_each(&mut each);
        self.runs.for_each(|record| each(u128::from_be_bytes(*record)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(n: u64) -> u128 {
        xxhash_rust::xxh3::xxh3_128(&n.to_le_bytes())
    }

    #[test]
    fn an_identity_is_new_once_whether_recent_or_handed_over() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = AppliedIdentities::open(dir.path(), |_| Ok::<_, RunsError>(vec![])).unwrap();
        for n in 0..1000 {
            assert!(ids.insert(digest(n)).unwrap());
        }
        ids.hand_over(10).unwrap();
        assert_eq!((ids.recent(), ids.through()), (0, 10));
        for n in 1000..1500 {
            assert!(ids.insert(digest(n)).unwrap());
        }
        for n in 0..1500 {
            assert!(!ids.insert(digest(n)).unwrap(), "{n} applied before");
        }
        // reopened with the recent ones given back, as the read model does from sled
        drop(ids);
        let mut ids = AppliedIdentities::open(dir.path(), |through| {
            assert_eq!(through, 10);
            Ok::<_, RunsError>((1000..1500).map(digest).collect())
        })
        .unwrap();
        assert!(!ids.insert(digest(3)).unwrap());
        assert!(!ids.insert(digest(1400)).unwrap());
        assert!(ids.insert(digest(1500)).unwrap());
        let mut all = Vec::new();
        ids.for_each(|d| all.push(d)).unwrap();
        assert_eq!(all.len(), 1501);
    }

    #[test]
    fn the_filter_never_forgets_and_rarely_errs() {
        let mut filter = Filter::for_identities(100_000);
        for n in 0..100_000 {
            filter.insert(digest(n));
        }
        assert!((0..100_000).all(|n| filter.may_contain(digest(n))));
        let false_positives = (100_000..200_000).filter(|n| filter.may_contain(digest(*n))).count();
        assert!(false_positives < 100, "{false_positives} false positives in 100,000");
    }

    #[test]
    fn the_filter_grows_with_the_identities_up_to_its_largest_size() {
        assert_eq!(Filter::for_identities(0).words.len() * 8, FILTER_MIN_BYTES);
        assert_eq!(Filter::for_identities(1_000_000).words.len() * 8, 1 << 21);
        assert_eq!(Filter::for_identities(100_000_000).words.len() * 8, FILTER_MAX_BYTES);
        let dir = tempfile::tempdir().unwrap();
        let mut ids = AppliedIdentities::open(dir.path(), |_| Ok::<_, RunsError>(vec![])).unwrap();
        let small = ids.filter.capacity();
        for n in 0..small as u64 + 10 {
            ids.insert(digest(n)).unwrap();
        }
        ids.hand_over(1).unwrap();
        assert!(ids.filter.capacity() > small);
        assert!((0..small as u64 + 10).all(|n| !ids.insert(digest(n)).unwrap()));
    }
}
