//! The read model on sled: one tree, written only by the projection runner, one atomic batch per
//! projected batch of events (counters, applied identities and the checkpoint together).
//!
//! Keys:
//! - `meta/format` → format version (u32, big-endian); another version will not open.
//! - `meta/checkpoint` → last applied `SGD_EVENTS` sequence (u64, big-endian).
//! - `ids/<sequence>` → the 128-bit digests of the `source`/`id` identities applied in the batch
//!   that ended at that sequence, concatenated (one key per batch, not per event: measured 3.5×
//!   faster rebuilds and an 11× smaller store, see `../shared/ARCHITECTURE.md`).
//! - `usage/<YYYY-MM-DD>/<principal>/<type>` → count (u64, big-endian).
//! - `v/<view>/<table>/<key>` → a view record (JSON), see [`crate::projections::DomainViews`];
//!   written every `views_flush_ms`, not every batch.
//! - `meta/views_sequence` → the log sequence the stored view records reflect.

use std::{collections::HashSet, path::Path};

use chrono::NaiveDate;

use crate::projections::{usage::UsageKey, DomainViews};

/// The layout version this build reads and writes.
pub const FORMAT_VERSION: u32 = 3;

const CHECKPOINT: &[u8] = b"meta/checkpoint";
const FORMAT: &[u8] = b"meta/format";
const IDS: &[u8] = b"ids/";
const USAGE: &str = "usage/";
const VIEWS: &[u8] = b"v/";
const VIEWS_SEQUENCE: &[u8] = b"meta/views_sequence";

/// Why the read model failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// sled could not open or write it (disk full, corrupt files, permissions) → stop projecting;
    /// `hub rebuild` recreates it from the log.
    #[error("read model at {path}: {source}")]
    Storage {
        /// Its directory.
        path: String,
        /// What sled said.
        source: sled::Error,
    },
    /// It was written by another version of the hub → rebuild it from the log.
    #[error("read model at {path} has format {found}, this hub reads format {expected}; rebuild it from the log")]
    Format {
        /// Its directory.
        path: String,
        /// Its format.
        found: u32,
        /// Ours.
        expected: u32,
    },
    /// A stored value is not what its key says → rebuild it from the log.
    #[error("read model at {path} holds a corrupt value under {key}")]
    Corrupt {
        /// Its directory.
        path: String,
        /// The key.
        key: String,
    },
}

/// One row of usage.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UsageCell {
    /// The day.
    pub day: NaiveDate,
    /// The principal code.
    pub principal: String,
    /// The event type.
    pub event_type: String,
    /// How many.
    pub count: u64,
}

/// The sled read model.
pub struct ReadModel {
    db: sled::Db,
    path: String,
}

impl ReadModel {
    /// Opens (or creates) the read model in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ReadModelError> {
        let path = dir.display().to_string();
        let storage = |source| ReadModelError::Storage { path: path.clone(), source };
        // The views live in memory; sled's cache serves usage scans.
        let config = sled::Config::new().path(dir).cache_capacity(32 * 1024 * 1024);
        // A handle closed a moment ago in this process may still hold sled's file lock while its
        // background flusher finishes: wait for it a little before reporting the lock as taken.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && attempts < 100 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                other => break other.map_err(storage)?,
            }
        };
        match db.get(FORMAT).map_err(storage)? {
            None => {
                db.insert(FORMAT, &FORMAT_VERSION.to_be_bytes()).map_err(storage)?;
            }
            Some(v) => {
                let found = u32::from_be_bytes(
                    v.as_ref()
                        .try_into()
                        .map_err(|_| ReadModelError::Corrupt { path: path.clone(), key: "meta/format".into() })?,
                );
                if found != FORMAT_VERSION {
                    return Err(ReadModelError::Format { path, found, expected: FORMAT_VERSION });
                }
            }
        }
        Ok(Self { db, path })
    }

    fn storage(&self, source: sled::Error) -> ReadModelError {
        ReadModelError::Storage { path: self.path.clone(), source }
    }

    fn corrupt(&self, key: &[u8]) -> ReadModelError {
        ReadModelError::Corrupt { path: self.path.clone(), key: String::from_utf8_lossy(key).into() }
    }

    /// The last applied log sequence (0 when empty).
    pub fn checkpoint(&self) -> Result<u64, ReadModelError> {
        match self.db.get(CHECKPOINT).map_err(|e| self.storage(e))? {
            None => Ok(0),
            Some(v) => Ok(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| self.corrupt(CHECKPOINT))?)),
        }
    }

    /// Every applied identity digest (loaded once by the projection runner at start).
    pub fn identities(&self) -> Result<HashSet<u128>, ReadModelError> {
        let mut set = HashSet::new();
        for item in self.db.scan_prefix(IDS) {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            if value.len() % 16 != 0 {
                return Err(self.corrupt(&key));
            }
            for chunk in value.chunks_exact(16) {
                set.insert(u128::from_be_bytes(chunk.try_into().unwrap_or_default()));
            }
        }
        Ok(set)
    }

    /// Every usage cell (loaded once by the projection runner at start, to add to).
    pub fn usage_cells(&self) -> Result<Vec<UsageCell>, ReadModelError> {
        self.usage_between(None, None)
    }

    /// Usage cells with `from <= day <= to`.
    pub fn usage_between(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
    ) -> Result<Vec<UsageCell>, ReadModelError> {
        let start = match from {
            Some(day) => format!("{USAGE}{day}"),
            None => USAGE.to_string(),
        };
        let end = match to {
            Some(day) => format!("{USAGE}{day}/\u{7f}"),
            None => format!("{USAGE}\u{7f}"),
        };
        let mut cells = Vec::new();
        for item in self.db.range(start.as_bytes()..end.as_bytes()) {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            cells.push(self.usage_cell(&key, &value)?);
        }
        Ok(cells)
    }

    fn usage_cell(&self, key: &[u8], value: &[u8]) -> Result<UsageCell, ReadModelError> {
        let text = std::str::from_utf8(key).map_err(|_| self.corrupt(key))?;
        let mut parts = text.strip_prefix(USAGE).ok_or_else(|| self.corrupt(key))?.splitn(3, '/');
        let (day, principal, event_type) = match (parts.next(), parts.next(), parts.next()) {
            (Some(d), Some(p), Some(t)) => (d, p, t),
            _ => return Err(self.corrupt(key)),
        };
        Ok(UsageCell {
            day: day.parse().map_err(|_| self.corrupt(key))?,
            principal: principal.into(),
            event_type: event_type.into(),
            count: u64::from_be_bytes(value.try_into().map_err(|_| self.corrupt(key))?),
        })
    }

    /// Every view record, loaded into memory (by the hub at start).
    pub fn load_views(&self) -> Result<DomainViews, ReadModelError> {
        let mut views = DomainViews::default();
        for item in self.db.scan_prefix(VIEWS) {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            let text = std::str::from_utf8(&key).map_err(|_| self.corrupt(&key))?;
            views.load(text, &value).map_err(|_| self.corrupt(&key))?;
        }
        Ok(views)
    }

    /// The log sequence the persisted views reflect (0 when none). It trails the checkpoint by
    /// at most the views' flush interval; the projection runner replays the difference at start.
    pub fn views_sequence(&self) -> Result<u64, ReadModelError> {
        match self.db.get(VIEWS_SEQUENCE).map_err(|e| self.storage(e))? {
            None => Ok(0),
            Some(v) => Ok(u64::from_be_bytes(v.as_ref().try_into().map_err(|_| self.corrupt(VIEWS_SEQUENCE))?)),
        }
    }

    /// The identity digests of the events applied after `sequence` (from the per-batch keys).
    pub fn identities_after(&self, sequence: u64) -> Result<HashSet<u128>, ReadModelError> {
        let mut start = IDS.to_vec();
        start.extend_from_slice(&(sequence + 1).to_be_bytes());
        let mut end = IDS.to_vec();
        end.extend_from_slice(&u64::MAX.to_be_bytes());
        let mut set = HashSet::new();
        for item in self.db.range(start..=end) {
            let (key, value) = item.map_err(|e| self.storage(e))?;
            if value.len() % 16 != 0 {
                return Err(self.corrupt(&key));
            }
            set.extend(value.chunks_exact(16).map(|c| u128::from_be_bytes(c.try_into().unwrap_or_default())));
        }
        Ok(set)
    }

    /// Commits one projected batch atomically: new usage totals, the batch's identity digests and
    /// the checkpoint, and, when the views are flushed with it, their changed records and the
    /// sequence they reflect (`views`); then flushes to disk.
    pub fn commit(
        &self,
        usage_totals: &[(UsageKey, u64)],
        views: Option<&[(Vec<u8>, Vec<u8>)]>,
        digests: &[u128],
        last_sequence: u64,
    ) -> Result<(), ReadModelError> {
        let mut batch = sled::Batch::default();
        if let Some(records) = views {
            for (key, value) in records {
                batch.insert(key.as_slice(), value.as_slice());
            }
            batch.insert(VIEWS_SEQUENCE, &last_sequence.to_be_bytes());
        }
        for (key, total) in usage_totals {
            let k = format!("{USAGE}{}/{}/{}", key.day, key.principal, key.event_type);
            batch.insert(k.as_bytes(), &total.to_be_bytes());
        }
        if !digests.is_empty() {
            let mut value = Vec::with_capacity(digests.len() * 16);
            for d in digests {
                value.extend_from_slice(&d.to_be_bytes());
            }
            let mut key = IDS.to_vec();
            key.extend_from_slice(&last_sequence.to_be_bytes());
            batch.insert(key, value);
        }
        batch.insert(CHECKPOINT, &last_sequence.to_be_bytes());
        self.db.apply_batch(batch).map_err(|e| self.storage(e))?;
        self.db.flush().map_err(|e| self.storage(e))?;
        Ok(())
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_are_read_back_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let key = UsageKey { day, principal: "1280".into(), event_type: "se.sgd.plans.plan.closed".into() };
        {
            let model = ReadModel::open(dir.path()).unwrap();
            assert_eq!(model.checkpoint().unwrap(), 0);
            model.commit(&[(key.clone(), 3)], Some(&[]), &[1, 2], 10).unwrap();
            model.commit(&[(key.clone(), 5)], None, &[3], 12).unwrap();
        }
        let model = ReadModel::open(dir.path()).unwrap();
        assert_eq!(model.checkpoint().unwrap(), 12);
        assert_eq!(model.identities().unwrap(), HashSet::from([1, 2, 3]));
        assert_eq!(model.views_sequence().unwrap(), 10);
        assert_eq!(model.identities_after(10).unwrap(), HashSet::from([3]));
        let cells = model.usage_between(Some(day), Some(day)).unwrap();
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].count, 5);
        assert!(model.usage_between(Some(day.succ_opt().unwrap()), None).unwrap().is_empty());
    }

    #[test]
    fn another_format_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            db.insert(FORMAT, &99u32.to_be_bytes()).unwrap();
            db.flush().unwrap();
        }
        let err = ReadModel::open(dir.path()).err().unwrap();
        assert!(err.to_string().contains("rebuild"), "{err}");
    }
}
