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
//!
//! Beside the tree, records that grow with the log are kept in sorted runs on disk, so the hub's
//! memory does not grow with them: `identities/` (the applied identities once there are many,
//! [`crate::store::applied_identities`]; their `ids/` keys are then removed once the stored views
//! no longer need them for a replay) and `timelines/` (persons' timeline entries the views handed
//! over, [`crate::store::timeline_runs`]).
//!
//! The views' records ([`crate::projections::DomainViews`]) are not in the tree: they live in
//! files in `views/` beside it, a snapshot and a journal ([`crate::store::views_store`]), written every
//! `views_flush_ms`, and reflect a log sequence at or below the checkpoint.

use std::{
    collections::HashSet,
    path::Path,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
};

use chrono::NaiveDate;

use crate::{
    projections::{
        usage::{TypeCounts, UsageDay, UsageTotals},
        DomainViews,
    },
    store::{
        applied_identities::AppliedIdentities,
        record_runs::{RecordRuns, RecordRunsError},
        sorted_runs::RunsError,
        timeline_runs::TimelineRuns,
        views_store::{ViewsStore, ViewsStoreError},
    },
};

/// The layout version this build reads and writes (4: views in their own files; 5: consents
/// kept per person; 6: usage as one row per principal and day).
pub const FORMAT_VERSION: u32 = 6;

const CHECKPOINT: &[u8] = b"meta/checkpoint";
const FORMAT: &[u8] = b"meta/format";
const IDS: &[u8] = b"ids/";
const USAGE: &str = "usage/";

/// Why the read model failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    /// sled could not open or write it (disk full, corrupt files, permissions) → stop projecting;
    /// `hub rebuild` recreates it from the log.
    #[error("read model at {path}: {source}{}", damaged_hint(source))]
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
    /// The views' files could not be written (disk full, permissions) → stop projecting.
    #[error(transparent)]
    Views(#[from] ViewsStoreError),
    /// The identities' or timelines' runs could not be read or written (disk full, damaged).
    #[error(transparent)]
    Runs(#[from] RunsError),
    /// The view records on disk could not be read or written (disk full, damaged).
    #[error(transparent)]
    Records(#[from] RecordRunsError),
    /// A view record could not be read back from disk while projecting (its error, as logged).
    #[error("a view record could not be read from disk: {0}")]
    RecordLookup(String),
    /// Views were to be stored for a log sequence the checkpoint has not reached (the runner
    /// commits a batch before it stores the views that include it, so this is a bug).
    #[error("read model at {path}: views at log sequence {views} are ahead of the checkpoint {checkpoint}")]
    ViewsAhead {
        /// Its directory.
        path: String,
        /// The views' sequence.
        views: u64,
        /// The checkpoint.
        checkpoint: u64,
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

/// What to do when sled says the files are not a store it can read (damaged, or not sled's).
fn damaged_hint(source: &sled::Error) -> &'static str {
    match source {
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => {
            "; its files are damaged: rebuild it from the log (hub rebuild, or delete the directory and restart)"
        }
        _ => "",
    }
}

/// The identity digests of one batch's value (16 bytes each, big-endian; callers check that the
/// length is a multiple of 16).
fn digests_of(value: sled::IVec) -> impl Iterator<Item = u128> {
    (0..value.len() / 16).map(move |i| u128::from_be_bytes(value[i * 16..][..16].try_into().unwrap_or_default()))
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
    views: ViewsStore,
    timelines: TimelineRuns,
    /// The view records that left the views' memory.
    records: Arc<RecordRuns>,
    /// The log sequence up to which the applied identities are in runs on disk (set by the
    /// projection runner as it hands them over).
    identities_on_disk: AtomicU64,
    /// The log sequence of the newest views written to `views/` (synced or not; 0 when none are,
    /// `u64::MAX` until known): a restart loads views at most that new. See
    /// [`ReadModel::merge_records_after_views`].
    views_written: AtomicU64,
    path: String,
}

/// How often sled's background flusher writes applied batches to disk (the most a crash can make
/// the projection replay, besides the views' own interval).
pub const FLUSH_EVERY_MS: u64 = 200;

impl ReadModel {
    /// Opens (or creates) the read model in `dir`.
    pub fn open(dir: &Path) -> Result<Self, ReadModelError> {
        let path = dir.display().to_string();
        let storage = |source| ReadModelError::Storage { path: path.clone(), source };
        // The views live in memory; sled's cache serves usage scans.
        let config =
            sled::Config::new().path(dir).cache_capacity(32 * 1024 * 1024).flush_every_ms(Some(FLUSH_EVERY_MS));
        // A handle closed a moment ago in this process may still hold sled's file lock while its
        // background flusher finishes: wait for it a little before reporting the lock as taken.
        let db = crate::store::open_sled(&config).map_err(storage)?;
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
        let views = ViewsStore::open(&dir.join("views"))?;
        let timelines = TimelineRuns::open(&dir.join("timelines"))?;
        let records = Arc::new(RecordRuns::open(&dir.join("records"))?);
        let views_written = if views.is_empty()? { 0 } else { u64::MAX };
        Ok(Self {
            db,
            views,
            timelines,
            records,
            identities_on_disk: AtomicU64::new(0),
            views_written: AtomicU64::new(views_written),
            path,
        })
    }

    /// The view records that left the views' memory.
    pub fn records(&self) -> &Arc<RecordRuns> {
        &self.records
    }

    /// The persons' timeline entries handed over to disk.
    pub fn timelines(&self) -> &TimelineRuns {
        &self.timelines
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

    /// The applied identities (opened once by the projection runner at start): the runs in
    /// `identities/` and, in memory, those of the batches after them (from the `ids/` keys).
    pub fn applied_identities(&self) -> Result<AppliedIdentities, ReadModelError> {
        let identities = AppliedIdentities::open(&self.dir().join("identities"), |through| {
            self.identities_after(through).map(|set| set.into_iter().collect())
        })?;
        self.identities_on_disk.store(identities.through(), Ordering::Relaxed);
        Ok(identities)
    }

    /// Notes that the applied identities up to log `sequence` are in runs on disk: their `ids/`
    /// keys go once the stored views are past them too (a replay of the views reads them).
    pub fn identities_handed_over(&self, sequence: u64) {
        self.identities_on_disk.fetch_max(sequence, Ordering::Relaxed);
    }

    /// Removes the `ids/` keys that neither a replay of views stored at `views_sequence` nor the
    /// identities in memory need any more.
    fn forget_identities(&self, views_sequence: u64) -> Result<(), ReadModelError> {
        let through = views_sequence.min(self.identities_on_disk.load(Ordering::Relaxed));
        if through == 0 {
            return Ok(());
        }
        let mut end = IDS.to_vec();
        end.extend_from_slice(&through.to_be_bytes());
        let mut batch = sled::Batch::default();
        for item in self.db.range(IDS.to_vec()..=end) {
            let (key, _) = item.map_err(|e| self.storage(e))?;
            batch.remove(key);
        }
        self.db.apply_batch(batch).map_err(|e| self.storage(e))
    }

    /// The usage totals, for the views that go with this model (the projection runner adds to
    /// them there with each batch, and stores each row it changes here).
    pub fn usage_totals(&self) -> Result<UsageTotals, ReadModelError> {
        let mut totals = UsageTotals::default();
        for cell in self.usage_cells()? {
            totals
                .entry_or_default(UsageDay { day: cell.day, principal: cell.principal })
                .add(&cell.event_type, cell.count);
        }
        Ok(totals)
    }

    /// Every usage cell.
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
            self.usage_row(&key, &value, &mut cells)?;
        }
        Ok(cells)
    }

    /// Adds the cells of the row stored under `key` (`usage/<day>/<principal>`, its value the
    /// counts per type) to `cells`.
    fn usage_row(&self, key: &[u8], value: &[u8], cells: &mut Vec<UsageCell>) -> Result<(), ReadModelError> {
        let text = std::str::from_utf8(key).map_err(|_| self.corrupt(key))?;
        let (day, principal) =
            text.strip_prefix(USAGE).and_then(|t| t.split_once('/')).ok_or_else(|| self.corrupt(key))?;
        let day: NaiveDate = day.parse().map_err(|_| self.corrupt(key))?;
        let counts: Vec<(String, u64)> = postcard::from_bytes(value).map_err(|_| self.corrupt(key))?;
        cells.extend(counts.into_iter().map(|(event_type, count)| UsageCell {
            day,
            principal: principal.to_owned(),
            event_type,
            count,
        }));
        Ok(())
    }

    /// The views as stored, with [`DomainViews::applied_through`] the log sequence they reflect
    /// (at most the checkpoint; the projection runner replays the difference at start). Views
    /// whose files are damaged, or ahead of the checkpoint (sled lost batches to damage of its
    /// own), are dropped with a warning and come back empty at sequence 0: the runner then
    /// replays the log up to the checkpoint into them.
    pub fn load_views(&self) -> Result<DomainViews, ReadModelError> {
        let checkpoint = self.checkpoint()?;
        let problem = match self.views.load() {
            Ok(mut views) if views.applied_through <= checkpoint => {
                // Read only here: no record leaves memory without a budget.
                views.keep_on_disk(self.records.clone(), usize::MAX);
                return Ok(views);
            }
            Ok(views) => {
                format!("views at log sequence {} are ahead of the checkpoint {checkpoint}", views.applied_through)
            }
            Err(e @ ViewsStoreError::Damaged { .. }) => e.to_string(),
            Err(e) => return Err(e.into()),
        };
        tracing::warn!(problem, "the stored views are dropped; they are replayed from the log");
        self.views.reset()?;
        self.records.reset()?;
        let mut views = DomainViews::default();
        views.keep_on_disk(self.records.clone(), usize::MAX);
        Ok(views)
    }

    /// The stored views, for the projection to carry on from: the view records handed over
    /// after them (whose views write did not complete) are removed, since the log replays what
    /// they hold, and the views keep `records_in_memory` records per table in memory, handing
    /// the others over to disk. Only for the process that projects into this read model.
    pub fn load_views_to_project(&self, records_in_memory: usize) -> Result<DomainViews, ReadModelError> {
        let mut views = self.load_views()?;
        let removed = self.records.discard_after(views.applied_through)?;
        if removed > 0 {
            tracing::info!(
                runs = removed,
                sequence = views.applied_through,
                "view records handed over after the stored views were removed (the log replays them)"
            );
        }
        views.keep_on_disk(self.records.clone(), records_in_memory);
        self.views_written.store(views.applied_through, Ordering::Release);
        Ok(views)
    }

    /// The log sequence the stored views reflect (reads them all: for checks and tests).
    pub fn views_sequence(&self) -> Result<u64, ReadModelError> {
        Ok(self.load_views()?.applied_through)
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
            set.extend(digests_of(value));
        }
        Ok(set)
    }

    /// Commits one projected batch atomically: new usage totals, the batch's identity digests and
    /// the checkpoint.
    pub fn commit(
        &self,
        usage_totals: &[(UsageDay, TypeCounts)],
        digests: &[u128],
        last_sequence: u64,
    ) -> Result<(), ReadModelError> {
        let mut batch = sled::Batch::default();
        for (key, totals) in usage_totals {
            let k = format!("{USAGE}{}/{}", key.day, key.principal);
            // Strings and integers: encoding into a Vec cannot fail.
            batch.insert(k.as_bytes(), postcard::to_stdvec(&totals.0).unwrap_or_default());
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
        // No fsync here: sled applies the batch atomically and its background flusher writes it
        // within `FLUSH_EVERY_MS`. A crash (even a power cut) recovers a prefix of whole batches,
        // so the checkpoint always matches what it counts, and the log replays the rest. An fsync
        // per batch put the disk's worst moments (tens to hundreds of ms) into the publish →
        // visible latency (docs/performance.md).
        self.db.apply_batch(batch).map_err(|e| self.storage(e))
    }

    /// Appends the views' records changed up to log `sequence` (drained from `views`, which the
    /// journal may then read a shard at a time for a new snapshot). The checkpoint batches up to
    /// `sequence` are flushed to disk first, so stored views never run ahead of the checkpoint.
    pub fn write_views(
        &self,
        sequence: u64,
        changes: &crate::projections::ViewChanges,
        views: &tokio::sync::RwLock<DomainViews>,
    ) -> Result<(), ReadModelError> {
        let began = std::time::Instant::now();
        self.flush_through(sequence)?;
        let flushed = began.elapsed();
        self.views_written.store(sequence, Ordering::Release);
        self.views.append(sequence, changes, views)?;
        self.merge_records(sequence)?;
        self.forget_identities(sequence)?;
        tracing::debug!(
            sequence,
            sled_flush_ms = flushed.as_secs_f64() * 1000.0,
            views_ms = (began.elapsed() - flushed).as_secs_f64() * 1000.0,
            "views written"
        );
        Ok(())
    }

    /// Stores every record of `views` (at log `sequence`, held by the caller) as a new snapshot.
    pub fn write_all_views(&self, sequence: u64, views: &DomainViews) -> Result<(), ReadModelError> {
        self.flush_through(sequence)?;
        self.views_written.store(sequence, Ordering::Release);
        self.views.write_all(sequence, views)?;
        self.merge_records(sequence)?;
        self.forget_identities(sequence)
    }

    /// Merges the view records' runs handed over up to log `sequence`, once the views written at
    /// `sequence` are synced (a merged run counts from its newest input's views write on).
    fn merge_records(&self, sequence: u64) -> Result<(), ReadModelError> {
        if self.records.wants_merge(sequence) {
            self.views.sync()?;
            self.records.merge(sequence)?;
        }
        Ok(())
    }

    /// The log sequence of the newest views written, once known (none stored, or loaded to
    /// project, or written since the model was opened).
    pub fn views_written(&self) -> Option<u64> {
        Some(self.views_written.load(Ordering::Acquire)).filter(|written| *written != u64::MAX)
    }

    /// Merges the view records' runs handed over after the newest views written
    /// ([`RecordRuns::merge_after`]), once that is known. Called beside the projection with each
    /// hand-over, which never overlaps a views write: a catch-up writes views only every 500,000
    /// events, and its runs would otherwise pile up.
    pub fn merge_records_after_views(&self) -> Result<(), ReadModelError> {
        match self.views_written() {
            Some(written) => Ok(self.records.merge_after(written)?),
            None => Ok(()),
        }
    }

    fn flush_through(&self, sequence: u64) -> Result<(), ReadModelError> {
        self.flush()?;
        let checkpoint = self.checkpoint()?;
        if checkpoint < sequence {
            return Err(ReadModelError::ViewsAhead { path: self.path.clone(), views: sequence, checkpoint });
        }
        Ok(())
    }

    /// Writes everything applied so far to disk and waits for it (at shutdown and after a views
    /// write, so a clean stop leaves nothing to replay).
    pub fn flush(&self) -> Result<(), ReadModelError> {
        self.db.flush().map(drop).map_err(|e| self.storage(e))
    }

    /// Its directory.
    pub fn dir(&self) -> std::path::PathBuf {
        std::path::PathBuf::from(&self.path)
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.db.size_on_disk().unwrap_or(0) + self.views.size_on_disk() + self.records.size().1
    }
}

/// The read model the API serves, replaceable while requests still hold the one they started
/// with (a rebuild swaps in its fresh model this way).
#[derive(Clone)]
pub struct ServingModel(std::sync::Arc<std::sync::RwLock<std::sync::Arc<ReadModel>>>);

impl ServingModel {
    /// Serves `model`.
    pub fn new(model: std::sync::Arc<ReadModel>) -> Self {
        Self(std::sync::Arc::new(std::sync::RwLock::new(model)))
    }

    /// The model served now.
    pub fn get(&self) -> std::sync::Arc<ReadModel> {
        self.0.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Serves `model` from now on; returns the one served before.
    pub fn replace(&self, model: std::sync::Arc<ReadModel>) -> std::sync::Arc<ReadModel> {
        let mut guard = self.0.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        std::mem::replace(&mut *guard, model)
    }
}

/// The read models in a data directory: the one served (named by the file `CURRENT`, or
/// `read-model` when there is none) and fresh ones a rebuild fills beside it. Switching is one
/// atomic rename of `CURRENT`, so a rebuild killed at any moment leaves the served model as it was.
#[derive(Debug, Clone)]
pub struct ModelDirs {
    data_dir: std::path::PathBuf,
}

const CURRENT: &str = "CURRENT";
const DEFAULT_DIR: &str = "read-model";

impl ModelDirs {
    /// The read models under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self { data_dir: data_dir.to_path_buf() }
    }

    /// The directory of the served model.
    pub fn serving(&self) -> std::path::PathBuf {
        let name = std::fs::read_to_string(self.data_dir.join(CURRENT))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty() && !s.contains('/') && s.starts_with(DEFAULT_DIR));
        self.data_dir.join(name.as_deref().unwrap_or(DEFAULT_DIR))
    }

    /// A new, empty directory for a rebuild, beside the served one.
    pub fn fresh(&self) -> std::io::Result<std::path::PathBuf> {
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f");
        let dir = self.data_dir.join(format!("{DEFAULT_DIR}-{stamp}-{:04x}", rand::random::<u16>()));
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    /// Makes `dir` the served model: writes `CURRENT` by an atomic rename, synced.
    pub fn promote(&self, dir: &Path) -> std::io::Result<()> {
        use std::io::Write;
        let name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| std::io::Error::other(format!("{} has no usable name", dir.display())))?;
        let temporary = self.data_dir.join(format!("{CURRENT}.tmp"));
        let mut file = std::fs::File::create(&temporary)?;
        file.write_all(name.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, self.data_dir.join(CURRENT))?;
        std::fs::File::open(&self.data_dir)?.sync_all()
    }

    /// Removes every read-model directory but the served one and those in `keep` (left by a
    /// rebuild that was killed, or replaced by one that finished). Call only when no rebuild runs,
    /// and keep every directory a model in this process may still use (a replaced model that
    /// requests still read, see [`crate::projection::rebuild`]).
    pub fn remove_stale(
        &self,
        keep: &std::collections::BTreeSet<std::path::PathBuf>,
    ) -> std::io::Result<Vec<std::path::PathBuf>> {
        let serving = self.serving();
        let mut removed = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.data_dir) else { return Ok(removed) };
        for entry in entries {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() && name.starts_with(DEFAULT_DIR) && path != serving && !keep.contains(&path) {
                std::fs::remove_dir_all(&path)?;
                removed.push(path);
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_value_of_the_wrong_length_is_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        model.commit(&[], &[1, 2], 5).unwrap();
        let mut key = IDS.to_vec();
        key.extend_from_slice(&9u64.to_be_bytes());
        model.db.insert(key, &[0u8; 17][..]).unwrap();
        let error = model.applied_identities().map(|set| set.recent()).unwrap_err();
        assert!(matches!(error, ReadModelError::Corrupt { .. }), "{error}");
    }

    #[test]
    fn commits_are_read_back_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap();
        let key = UsageDay { day, principal: "1280".into() };
        let closed = |n: u64| TypeCounts(vec![("se.sgd.plans.plan.closed".into(), n)]);
        {
            let model = ReadModel::open(dir.path()).unwrap();
            assert_eq!(model.checkpoint().unwrap(), 0);
            model.commit(&[(key.clone(), closed(3))], &[1, 2], 10).unwrap();
            model.write_all_views(10, &DomainViews::default()).unwrap();
            model.commit(&[(key.clone(), closed(5))], &[3], 12).unwrap();
        }
        let model = ReadModel::open(dir.path()).unwrap();
        assert_eq!(model.checkpoint().unwrap(), 12);
        let mut identities = Vec::new();
        model.applied_identities().unwrap().for_each(|d| identities.push(d)).unwrap();
        identities.sort();
        assert_eq!(identities, [1, 2, 3]);
        assert_eq!(model.views_sequence().unwrap(), 10);
        assert_eq!(model.identities_after(10).unwrap(), HashSet::from([3]));
        let cells = model.usage_between(Some(day), Some(day)).unwrap();
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].count, 5);
        assert!(model.usage_between(Some(day.succ_opt().unwrap()), None).unwrap().is_empty());
    }

    #[test]
    fn handed_over_identities_leave_sled_once_the_stored_views_are_past_them() {
        let dir = tempfile::tempdir().unwrap();
        let model = ReadModel::open(dir.path()).unwrap();
        model.commit(&[], &[1, 2], 10).unwrap();
        model.commit(&[], &[3], 20).unwrap();
        let mut ids = model.applied_identities().unwrap();
        model.flush().unwrap();
        ids.hand_over(20).unwrap();
        model.identities_handed_over(20);
        // views stored at 10: a replay from 10 still needs the batch at 20
        model.write_all_views(10, &DomainViews::default()).unwrap();
        assert_eq!(model.identities_after(0).unwrap(), HashSet::from([3]));
        model.write_all_views(20, &DomainViews::default()).unwrap();
        assert!(model.identities_after(0).unwrap().is_empty());
        // reopened: every identity is still known, none of them in memory
        drop(ids);
        let mut ids = model.applied_identities().unwrap();
        assert_eq!(ids.recent(), 0);
        assert!((1..=3).all(|d| !ids.insert(d).unwrap()));
        assert!(ids.insert(4).unwrap());
    }

    #[test]
    fn a_promoted_directory_is_served_and_the_others_are_stale_but_those_kept() {
        let data = tempfile::tempdir().unwrap();
        let dirs = ModelDirs::new(data.path());
        assert_eq!(dirs.serving(), data.path().join("read-model"));
        std::fs::create_dir_all(dirs.serving()).unwrap();
        let fresh = dirs.fresh().unwrap();
        assert_ne!(fresh, dirs.serving());
        let abandoned = dirs.fresh().unwrap();
        let retiring = dirs.fresh().unwrap();
        dirs.promote(&fresh).unwrap();
        assert_eq!(dirs.serving(), fresh);
        let mut removed = dirs.remove_stale(&[retiring.clone()].into()).unwrap();
        removed.sort();
        let mut expected = vec![data.path().join("read-model"), abandoned];
        expected.sort();
        assert_eq!(removed, expected);
        assert!(fresh.exists());
        assert!(retiring.exists(), "a directory to keep was removed");
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
