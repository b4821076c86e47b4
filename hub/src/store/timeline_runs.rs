//! Each person's place in the log (time, log sequence) beyond the newest ones the views keep in
//! memory: sorted runs of 48-byte records, person (32 bytes) then time then sequence, so one
//! person's entries are one range ([`super::sorted_runs`]).
//!
//! The views hand their timeline entries over when they hold many (see
//! [`crate::projections::DomainViews::timeline_refs`]); a person's timeline is what the views hold
//! for them and what the runs hold, merged. An entry handed over twice (a crash between writing a
//! run and storing the views that no longer hold its entries) counts once.

use std::path::Path;

use super::sorted_runs::{RunsError, SortedRuns};
use crate::projections::ids::PersonId;

/// Bytes of one record.
const RECORD: usize = 48;

/// The timelines on disk.
#[derive(Debug)]
pub struct TimelineRuns {
    runs: SortedRuns<RECORD>,
}

/// A time in nanoseconds as bytes that sort as the times do.
fn time_bytes(at: i64) -> [u8; 8] {
    ((at as u64) ^ (1 << 63)).to_be_bytes()
}

fn record(person: &PersonId, at: i64, sequence: u64) -> [u8; RECORD] {
    let mut record = [0u8; RECORD];
    record[..32].copy_from_slice(person.as_bytes());
    record[32..40].copy_from_slice(&time_bytes(at));
    record[40..].copy_from_slice(&sequence.to_be_bytes());
    record
}

fn entry(record: &[u8; RECORD]) -> (i64, u64) {
    let at = u64::from_be_bytes(record[32..40].try_into().unwrap_or_default()) ^ (1 << 63);
    (at as i64, u64::from_be_bytes(record[40..].try_into().unwrap_or_default()))
}

impl TimelineRuns {
    /// Opens (or creates) the runs in `dir`.
    pub fn open(dir: &Path) -> Result<Self, RunsError> {
        Ok(Self { runs: SortedRuns::open(dir, |_| {})? })
    }

    /// The log sequence up to which handed-over entries are on disk.
    pub fn through(&self) -> u64 {
        self.runs.through()
    }

    /// Writes entries (person, time in nanoseconds, log sequence) as a run covering the views up
    /// to `through`.
    pub fn hand_over(
        &self,
        entries: impl IntoIterator<Item = (PersonId, i64, u64)>,
        through: u64,
    ) -> Result<(), RunsError> {
        let records = entries.into_iter().map(|(person, at, sequence)| record(&person, at, sequence)).collect();
        self.runs.add_run(records, through)
    }

    /// The person's entries on disk as (time in nanoseconds, log sequence), sorted, each once.
    pub fn of(&self, person: &PersonId) -> Result<Vec<(i64, u64)>, RunsError> {
        Ok(self.runs.with_prefix(person.as_bytes())?.iter().map(entry).collect())
    }

    /// Every entry on disk, as (person, time, sequence), repeats across runs included.
    pub fn for_each(&self, mut each: impl FnMut(PersonId, i64, u64)) -> Result<(), RunsError> {
        self.runs.for_each(|record| {
            let (at, sequence) = entry(record);
            each(PersonId::from_bytes(record[..32].try_into().unwrap_or_default()), at, sequence)
        })
    }

    /// How many runs and entries.
    pub fn size(&self) -> (usize, u64) {
        self.runs.size()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn person(c: u8) -> PersonId {
        PersonId::from_bytes([c; 32])
    }

    #[test]
    fn a_persons_entries_come_back_in_time_order_from_every_run() {
        let dir = tempfile::tempdir().unwrap();
        let runs = TimelineRuns::open(dir.path()).unwrap();
        // times before and after 1970 sort as times
        runs.hand_over([(person(1), 50, 3), (person(2), 10, 1), (person(1), -20, 2)], 3).unwrap();
        runs.hand_over([(person(1), 40, 7), (person(1), 50, 3), (person(3), 1, 8)], 8).unwrap();
        assert_eq!(runs.of(&person(1)).unwrap(), vec![(-20, 2), (40, 7), (50, 3)]);
        assert_eq!(runs.of(&person(2)).unwrap(), vec![(10, 1)]);
        assert!(runs.of(&person(4)).unwrap().is_empty());
        assert_eq!(runs.through(), 8);
    }
}
