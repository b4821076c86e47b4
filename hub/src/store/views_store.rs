//! Where the views' records are kept between runs: a snapshot of every record plus a journal of
//! the records changed since, in files beside the sled tree of the read model.
//!
//! Each view record used to be a JSON value in sled, rewritten whenever it changed. At 1,000,000
//! events sled's tree nodes took ~270 MB of the hub's heap and the store grew to ~435 bytes per
//! event, and writing the records stalled the checkpoint batches (docs/performance.md). Here a
//! changed record costs one append of its compact (postcard) encoding, and the journal is folded
//! into a new snapshot once it outgrows half of the last one.
//!
//! Files in `<read model>/views/`:
//! - `journal-<n>.bin`: frames appended by the projection runner every `views_flush_ms`, each the
//!   records changed since the frame before and the log sequence they reflect;
//! - `snapshot-<n>-<sequence>.bin`: every record. A snapshot taken while the projection runs is
//!   read a shard of a table at a time (the projection carries on between them), so it is no
//!   single moment's state: it is begun together with journal segment `n` and counts only once a
//!   frame at `sequence`, drained after its last shard, is safely in that segment. Loading it and
//!   then every frame of the segments from `n` on gives exactly the state of the last frame: every
//!   record changed after the snapshot began is in those frames, with its latest value last.
//!
//! A file is [`MAGIC`] and then frames: payload length (u32, little-endian), the payload's xxh3-64
//! digest (u64, little-endian), the payload (a postcard [`Frame`]). A torn or damaged last frame
//! (a crash in the middle of an append) is cut off when the store opens; anything else damaged
//! makes [`ViewsStore::load`] fail, and the read model then replays the whole log into the views.

use std::{
    fs::{File, OpenOptions},
    io::{BufReader, BufWriter, Read, Write},
    path::{Path, PathBuf},
    sync::Mutex,
};

use serde::{Deserialize, Serialize};

use crate::projections::{table::EncodedRecords, DomainViews, ViewChanges};

/// The first bytes of every views file (and the layout's version).
pub const MAGIC: &[u8; 8] = b"SGDVIEW4";

/// The journal is folded into a new snapshot when it holds more than this and more than half of
/// the last snapshot: disk stays within 1.5 snapshots, and a snapshot is taken about once per
/// half a model's worth of changes.
pub const MIN_JOURNAL_BYTES: u64 = 4 * 1024 * 1024;

/// Why the views' files could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ViewsStoreError {
    /// The file system refused (disk full, permissions).
    #[error("views store at {path}: {source}")]
    Io {
        /// The file or directory.
        path: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// A file is not what it should be; the views are replayed from the log instead.
    #[error("views store at {path} is damaged: {reason}")]
    Damaged {
        /// The file or directory.
        path: String,
        /// What is wrong.
        reason: Damage,
    },
}

impl From<&'static str> for Damage {
    fn from(found: &'static str) -> Self {
        Self::Found(found)
    }
}

/// What is wrong with a damaged views store.
#[derive(Debug, thiserror::Error)]
pub enum Damage {
    /// What was found (a frame that does not decode, frames out of order, a missing file).
    #[error("{0}")]
    Found(&'static str),
    /// A write failed earlier (its error, as reported then); the store takes no more frames.
    #[error("{0}")]
    Earlier(String),
    /// A stored record does not load into the views.
    #[error(transparent)]
    Record(#[from] crate::projections::ViewLoadError),
    /// A frame could not be encoded.
    #[error("cannot encode a frame: {0}")]
    Encode(#[from] postcard::Error),
}

/// One frame: records of some tables, the keys of records that left memory for the read
/// model's record runs before them, and the log sequence they reflect.
#[derive(Debug, Serialize, Deserialize)]
struct Frame {
    sequence: u64,
    tables: Vec<(String, EncodedRecords)>,
    left: Vec<(String, Vec<String>)>,
}

/// The same frame, written from borrowed records.
#[derive(Serialize)]
struct FrameRef<'a> {
    sequence: u64,
    tables: &'a [(&'static str, EncodedRecords)],
    left: &'a [(&'static str, Vec<String>)],
}

/// A file of the store, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum StoredFile {
    /// `journal-<n>.bin`.
    Journal(u64),
    /// `snapshot-<n>-<sequence>.bin`.
    Snapshot(u64, u64),
}

impl StoredFile {
    fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(".bin")?;
        if let Some(n) = stem.strip_prefix("journal-") {
            return n.parse().ok().map(StoredFile::Journal);
        }
        let (n, sequence) = stem.strip_prefix("snapshot-")?.split_once('-')?;
        Some(StoredFile::Snapshot(n.parse().ok()?, sequence.parse().ok()?))
    }

    fn name(self) -> String {
        match self {
            StoredFile::Journal(n) => format!("journal-{n:020}.bin"),
            StoredFile::Snapshot(n, sequence) => format!("snapshot-{n:020}-{sequence:020}.bin"),
        }
    }
}

/// The segment being appended to, and what decides the next snapshot.
#[derive(Debug, Default)]
struct Journal {
    /// The current segment's number and file (opened at the first append).
    segment: Option<(u64, File)>,
    /// The highest segment number in use.
    last_segment: u64,
    /// Journal bytes written since the newest snapshot began.
    since_snapshot: u64,
    /// The newest snapshot's size.
    snapshot_bytes: u64,
    /// A snapshot written but not yet completed by a frame: its segment number and temporary file.
    pending: Option<(u64, PathBuf)>,
    /// Why the newest journal segment cannot be appended to (until [`ViewsStore::reset`]).
    damaged: Option<String>,
}

/// The views' files of one read model.
#[derive(Debug)]
pub struct ViewsStore {
    dir: PathBuf,
    journal: Mutex<Journal>,
    min_journal_bytes: u64,
}

impl ViewsStore {
    /// Opens (or creates) the store in `dir`: removes what an interrupted snapshot left and cuts a
    /// torn frame off the end of the journal.
    pub fn open(dir: &Path) -> Result<Self, ViewsStoreError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let store = Self {
            dir: dir.to_path_buf(),
            journal: Mutex::new(Journal::default()),
            min_journal_bytes: MIN_JOURNAL_BYTES,
        };
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            if path.extension().is_some_and(|x| x == "tmp") {
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            }
        }
        let files = store.files()?;
        let newest = newest_snapshot(&files);
        let mut journal = Journal::default();
        for file in &files {
            match *file {
                StoredFile::Journal(n) => {
                    journal.last_segment = journal.last_segment.max(n);
                    if newest.is_none_or(|(from, _)| n >= from) {
                        journal.since_snapshot += store.size(*file)?;
                    }
                }
                StoredFile::Snapshot(n, _) => journal.last_segment = journal.last_segment.max(n),
            }
        }
        if let Some(snapshot) = newest {
            journal.snapshot_bytes = store.size(StoredFile::Snapshot(snapshot.0, snapshot.1))?;
        }
        if let Some(StoredFile::Journal(n)) = files.iter().rev().find(|f| matches!(f, StoredFile::Journal(_))) {
            let path = store.path(StoredFile::Journal(*n));
            let read = FrameReader::open(&path).and_then(|mut reader| {
                while reader.next_frame()?.is_some() {}
                Ok((reader.good_len, reader.total_len))
            });
            match read {
                Ok((good, total)) => {
                    let file = OpenOptions::new().append(true).open(&path).map_err(|e| io(&path, e))?;
                    if good < total {
                        tracing::warn!(file = %path.display(), cut = total - good, "cut a torn frame off the views journal");
                        file.set_len(good).map_err(|e| io(&path, e))?;
                        journal.since_snapshot = journal.since_snapshot.saturating_sub(total - good);
                    }
                    journal.segment = Some((*n, file));
                }
                // Reported by `load` (the read model then drops the views and replays the log).
                Err(e @ ViewsStoreError::Damaged { .. }) => journal.damaged = Some(e.to_string()),
                Err(e) => return Err(e),
            }
        }
        *store.journal.lock().unwrap_or_else(|p| p.into_inner()) = journal;
        Ok(store)
    }

    /// Whether no views are stored (a new read model).
    pub fn is_empty(&self) -> Result<bool, ViewsStoreError> {
        Ok(self.files()?.is_empty())
    }

    /// Takes snapshots once the journal holds more than `bytes` (and half the last snapshot)
    /// instead of [`MIN_JOURNAL_BYTES`] (for tests and experiments).
    pub fn with_min_journal_bytes(mut self, bytes: u64) -> Self {
        self.min_journal_bytes = bytes;
        self
    }

    /// The views as stored, with [`DomainViews::applied_through`] set to the sequence they reflect
    /// (empty views at 0 when nothing is stored).
    pub fn load(&self) -> Result<DomainViews, ViewsStoreError> {
        if let Some(reason) = &self.journal.lock().unwrap_or_else(|p| p.into_inner()).damaged {
            return Err(damaged(&self.dir, Damage::Earlier(reason.clone())));
        }
        let files = self.files()?;
        let mut views = DomainViews::default();
        let mut sequence = 0;
        let newest = newest_snapshot(&files);
        if let Some((n, completed_at)) = newest {
            let path = self.path(StoredFile::Snapshot(n, completed_at));
            let mut reader = FrameReader::open(&path)?;
            while let Some(frame) = reader.next_frame()? {
                load_frame(&mut views, frame, &path)?;
            }
            if reader.good_len < reader.total_len {
                return Err(damaged(&path, "a snapshot frame is damaged"));
            }
        }
        let journals: Vec<u64> = files
            .iter()
            .filter_map(|f| match f {
                StoredFile::Journal(n) if newest.is_none_or(|(from, _)| *n >= from) => Some(*n),
                _ => None,
            })
            .collect();
        for (i, n) in journals.iter().enumerate() {
            let path = self.path(StoredFile::Journal(*n));
            let mut reader = FrameReader::open(&path)?;
            while let Some(frame) = reader.next_frame()? {
                if frame.sequence < sequence {
                    return Err(damaged(&path, "journal frames go back in the log"));
                }
                sequence = frame.sequence;
                load_frame(&mut views, frame, &path)?;
            }
            // A torn end is only possible on the newest segment (an append being written now).
            if reader.good_len < reader.total_len && i + 1 < journals.len() {
                return Err(damaged(&path, "a journal frame is damaged"));
            }
        }
        if let Some((_, completed_at)) = newest {
            if sequence < completed_at {
                return Err(damaged(&self.dir, "the frame that completes the newest snapshot is missing"));
            }
        }
        views.applied_through = sequence;
        Ok(views)
    }

    /// Removes every file (the views are rebuilt from the log and written anew).
    pub fn reset(&self) -> Result<(), ViewsStoreError> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        *journal = Journal::default();
        for file in self.files()? {
            let path = self.path(file);
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
        }
        Ok(())
    }

    /// Appends the records changed up to log `sequence` (drained from `views`). When the journal
    /// has outgrown the last snapshot, then takes a new one, reading `views` a shard at a time;
    /// the next append completes it.
    pub fn append(
        &self,
        sequence: u64,
        changes: &ViewChanges,
        views: &tokio::sync::RwLock<DomainViews>,
    ) -> Result<(), ViewsStoreError> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        self.append_frame(&mut journal, sequence, changes)?;
        if let Some((n, temporary)) = journal.pending.take() {
            self.complete_snapshot(&mut journal, n, &temporary, sequence)?;
        } else if journal.since_snapshot > self.min_journal_bytes.max(journal.snapshot_bytes / 2) {
            let n = self.rotate(&mut journal)?;
            let began = std::time::Instant::now();
            let temporary = self.write_snapshot(n, |write| {
                // A slice (1/256 of a table) per read, so the projection waits for one slice at
                // most. One read at a time: a second read while holding one would wait behind the
                // projection's queued write, which waits for the first.
                // After each slice, a pause as long as the slice took: the snapshot takes half a
                // core instead of a whole one (at a million events, ~2 s of a core that the
                // projection, the validator and nats-server wanted on a 2-core machine).
                let tables = views.blocking_read().tables().len();
                for table in 0..tables {
                    let slices = views.blocking_read().tables()[table].slices();
                    for slice in 0..slices {
                        let began = std::time::Instant::now();
                        let records = {
                            let views = views.blocking_read();
                            let table = views.tables()[table];
                            (table.prefix(), table.encode_slice(slice))
                        };
                        write(records)?;
                        std::thread::sleep(began.elapsed());
                    }
                }
                Ok(())
            })?;
            tracing::info!(segment = n, seconds = began.elapsed().as_secs_f64(), "views snapshot read and written");
            journal.pending = Some((n, temporary));
        }
        Ok(())
    }

    /// Stores every record of `views` (which must reflect log `sequence` and not change meanwhile:
    /// the caller holds them) as a new snapshot, completed at once. For large changes, such as the
    /// end of a rebuild, where one frame would hold most records.
    pub fn write_all(&self, sequence: u64, views: &DomainViews) -> Result<(), ViewsStoreError> {
        let mut journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, temporary)) = journal.pending.take() {
            let _ = std::fs::remove_file(temporary);
        }
        let n = self.rotate(&mut journal)?;
        let temporary = self.write_snapshot(n, |write| {
            for table in views.tables() {
                for slice in 0..table.slices() {
                    write((table.prefix(), table.encode_slice(slice)))?;
                }
            }
            Ok(())
        })?;
        self.append_frame(&mut journal, sequence, &ViewChanges::default())?;
        self.complete_snapshot(&mut journal, n, &temporary, sequence)
    }

    /// Syncs the journal segment being appended to (frames are otherwise left to the system).
    pub fn sync(&self) -> Result<(), ViewsStoreError> {
        let journal = self.journal.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((n, file)) = &journal.segment {
            file.sync_data().map_err(|e| io(&self.path(StoredFile::Journal(*n)), e))?;
        }
        Ok(())
    }

    /// Bytes on disk.
    pub fn size_on_disk(&self) -> u64 {
        self.files().unwrap_or_default().into_iter().map(|f| self.size(f).unwrap_or(0)).sum()
    }

    fn append_frame(&self, journal: &mut Journal, sequence: u64, changes: &ViewChanges) -> Result<(), ViewsStoreError> {
        if let Some(reason) = &journal.damaged {
            return Err(damaged(&self.dir, Damage::Earlier(reason.clone())));
        }
        let payload = postcard::to_stdvec(&FrameRef { sequence, tables: &changes.records, left: &changes.left })
            .map_err(|e| damaged(&self.dir, e))?;
        if journal.segment.is_none() {
            let n = journal.last_segment;
            journal.segment = Some((n, self.create(StoredFile::Journal(n), true)?));
        }
        let Some((n, file)) = journal.segment.as_mut() else { unreachable!("opened above") };
        let path = self.dir.join(StoredFile::Journal(*n).name());
        file.write_all(&framed(&payload)).map_err(|e| io(&path, e))?;
        journal.since_snapshot += 12 + payload.len() as u64;
        Ok(())
    }

    /// Starts a new journal segment (syncing the one before) and returns its number.
    fn rotate(&self, journal: &mut Journal) -> Result<u64, ViewsStoreError> {
        if let Some((n, file)) = journal.segment.take() {
            file.sync_data().map_err(|e| io(&self.path(StoredFile::Journal(n)), e))?;
        }
        let n = journal.last_segment + 1;
        journal.segment = Some((n, self.create(StoredFile::Journal(n), false)?));
        journal.last_segment = n;
        journal.since_snapshot = 0;
        Ok(n)
    }

    /// Writes a snapshot for segment `n` to a temporary file, frame by frame from `fill`.
    fn write_snapshot(
        &self,
        n: u64,
        fill: impl FnOnce(
            &mut dyn FnMut((&'static str, EncodedRecords)) -> Result<(), ViewsStoreError>,
        ) -> Result<(), ViewsStoreError>,
    ) -> Result<PathBuf, ViewsStoreError> {
        let temporary = self.dir.join(format!("snapshot-{n:020}.tmp"));
        let file = File::create(&temporary).map_err(|e| io(&temporary, e))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        out.write_all(MAGIC).map_err(|e| io(&temporary, e))?;
        fill(&mut |records| {
            if records.1.is_empty() {
                return Ok(());
            }
            let payload = postcard::to_stdvec(&FrameRef { sequence: 0, tables: &[records], left: &[] })
                .map_err(|e| damaged(&temporary, e))?;
            out.write_all(&framed(&payload)).map_err(|e| io(&temporary, e))
        })?;
        let file = out.into_inner().map_err(|e| io(&temporary, e.into_error()))?;
        file.sync_all().map_err(|e| io(&temporary, e))?;
        Ok(temporary)
    }

    /// Makes the snapshot of segment `n` count, now that a frame at `sequence` follows it: syncs
    /// that frame, renames the snapshot into place and removes what it replaces.
    fn complete_snapshot(
        &self,
        journal: &mut Journal,
        n: u64,
        temporary: &Path,
        sequence: u64,
    ) -> Result<(), ViewsStoreError> {
        if let Some((current, file)) = &journal.segment {
            file.sync_data().map_err(|e| io(&self.path(StoredFile::Journal(*current)), e))?;
        }
        let snapshot = StoredFile::Snapshot(n, sequence);
        std::fs::rename(temporary, self.path(snapshot)).map_err(|e| io(temporary, e))?;
        super::sync_dir(&self.dir).map_err(|e| io(&self.dir, e))?;
        journal.snapshot_bytes = self.size(snapshot)?;
        for file in self.files()? {
            let older = match file {
                StoredFile::Journal(m) => m < n,
                StoredFile::Snapshot(m, _) => m < n,
            };
            if older {
                let path = self.path(file);
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            }
        }
        tracing::debug!(sequence, bytes = journal.snapshot_bytes, "views snapshot written");
        Ok(())
    }

    fn files(&self) -> Result<Vec<StoredFile>, ViewsStoreError> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(|e| io(&self.dir, e))? {
            let entry = entry.map_err(|e| io(&self.dir, e))?;
            if let Some(file) = entry.file_name().to_str().and_then(StoredFile::parse) {
                files.push(file);
            }
        }
        files.sort();
        Ok(files)
    }

    fn path(&self, file: StoredFile) -> PathBuf {
        self.dir.join(file.name())
    }

    fn size(&self, file: StoredFile) -> Result<u64, ViewsStoreError> {
        let path = self.path(file);
        std::fs::metadata(&path).map(|m| m.len()).map_err(|e| io(&path, e))
    }

    /// Creates (or, with `append`, opens) a file of the store, starting it with [`MAGIC`].
    fn create(&self, file: StoredFile, append: bool) -> Result<File, ViewsStoreError> {
        let path = self.path(file);
        let mut handle =
            OpenOptions::new().create(true).append(true).truncate(false).open(&path).map_err(|e| io(&path, e))?;
        let len = handle.metadata().map_err(|e| io(&path, e))?.len();
        if len > 0 && !append {
            handle.set_len(0).map_err(|e| io(&path, e))?;
        }
        if len == 0 || !append {
            handle.write_all(MAGIC).map_err(|e| io(&path, e))?;
        }
        Ok(handle)
    }
}

/// The newest snapshot as (segment number, sequence that completed it).
fn newest_snapshot(files: &[StoredFile]) -> Option<(u64, u64)> {
    files
        .iter()
        .filter_map(|f| match f {
            StoredFile::Snapshot(n, sequence) => Some((*n, *sequence)),
            StoredFile::Journal(_) => None,
        })
        .max()
}

fn load_frame(views: &mut DomainViews, frame: Frame, path: &Path) -> Result<(), ViewsStoreError> {
    // Records left memory before the frame's records were drained: a record that came back and
    // changed since is in the frame's records.
    for (prefix, keys) in frame.left {
        for key in keys {
            views.load_left(&prefix, &key).map_err(|e| damaged(path, e))?;
        }
    }
    for (prefix, records) in frame.tables {
        for (key, value) in records {
            views.load(&prefix, &key, &value).map_err(|e| damaged(path, e))?;
        }
    }
    Ok(())
}

/// Length, digest and payload, as written.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Reads the frames of one file, stopping at the first torn or damaged one.
struct FrameReader {
    reader: BufReader<File>,
    path: PathBuf,
    /// Bytes up to the end of the last good frame.
    good_len: u64,
    /// The file's length.
    total_len: u64,
}

impl FrameReader {
    fn open(path: &Path) -> Result<Self, ViewsStoreError> {
        let file = File::open(path).map_err(|e| io(path, e))?;
        let total_len = file.metadata().map_err(|e| io(path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 20, file);
        let mut magic = [0u8; 8];
        if total_len < 8 || reader.read_exact(&mut magic).is_err() || &magic != MAGIC {
            return Err(damaged(path, "not a views file of this version"));
        }
        Ok(Self { reader, path: path.to_path_buf(), good_len: 8, total_len })
    }

    /// The next good frame, or `None` at the end or at a torn/damaged frame (then `good_len`
    /// stays below `total_len`).
    fn next_frame(&mut self) -> Result<Option<Frame>, ViewsStoreError> {
        let left = self.total_len - self.good_len;
        if left < 12 {
            return Ok(None);
        }
        let mut header = [0u8; 12];
        self.reader.read_exact(&mut header).map_err(|e| io(&self.path, e))?;
        let len = u64::from(u32::from_le_bytes(header[..4].try_into().unwrap_or_default()));
        let digest = u64::from_le_bytes(header[4..].try_into().unwrap_or_default());
        if len > left - 12 {
            return Ok(None);
        }
        let mut payload = vec![0u8; len as usize];
        self.reader.read_exact(&mut payload).map_err(|e| io(&self.path, e))?;
        if xxhash_rust::xxh3::xxh3_64(&payload) != digest {
            return Ok(None);
        }
        let Ok(frame) = postcard::from_bytes::<Frame>(&payload) else { return Ok(None) };
        self.good_len += 12 + len;
        Ok(Some(frame))
    }
}

fn io(path: &Path, source: std::io::Error) -> ViewsStoreError {
    ViewsStoreError::Io { path: path.display().to_string(), source }
}

fn damaged(path: &Path, reason: impl Into<Damage>) -> ViewsStoreError {
    ViewsStoreError::Damaged { path: path.display().to_string(), reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pseudonym made of `name`.
    fn id(name: &str) -> crate::projections::ids::PersonId {
        crate::projections::ids::PersonId::parse(&format!("{:0>64}", hex::encode(name))).unwrap()
    }

    fn person(views: &mut DomainViews, name: &str, at: i64) {
        views.timelines.entry(&id(name)).push((at, at as u64));
    }

    fn drain(views: &tokio::sync::RwLock<DomainViews>) -> ViewChanges {
        views.blocking_write().drain_changes()
    }

    fn timeline(views: &DomainViews, name: &str) -> Option<Vec<(i64, u64)>> {
        views.timelines.get(&id(name)).map(|refs| refs.into_owned())
    }

    #[test]
    fn frames_load_back_in_order_and_a_torn_last_frame_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let views = tokio::sync::RwLock::new(DomainViews::default());
        {
            let store = ViewsStore::open(dir.path()).unwrap();
            assert_eq!(store.load().unwrap().applied_through, 0);
            person(&mut views.blocking_write(), "a", 1);
            person(&mut views.blocking_write(), "b", 2);
            store.append(5, &drain(&views), &views).unwrap();
            person(&mut views.blocking_write(), "a", 3);
            store.append(9, &drain(&views), &views).unwrap();
        }
        let store = ViewsStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.applied_through, 9);
        assert_eq!(timeline(&loaded, "a"), Some(vec![(1, 1), (3, 3)]));
        assert_eq!(loaded.all_records(), views.blocking_read().all_records());

        // A crash in the middle of an append leaves part of a frame.
        person(&mut views.blocking_write(), "c", 4);
        store.append(12, &drain(&views), &views).unwrap();
        drop(store);
        let journal = dir.path().join(StoredFile::Journal(0).name());
        let len = std::fs::metadata(&journal).unwrap().len();
        OpenOptions::new().write(true).open(&journal).unwrap().set_len(len - 3).unwrap();
        let store = ViewsStore::open(dir.path()).unwrap();
        let loaded = store.load().unwrap();
        assert_eq!(loaded.applied_through, 9, "the torn frame is not applied");
        assert_eq!(timeline(&loaded, "c"), None);
        // Appends carry on after the cut.
        store.append(12, &drain(&views), &views).unwrap();
        let loaded = ViewsStore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(loaded.applied_through, 12);
        assert_eq!(timeline(&loaded, "c"), None, "c was drained into the torn frame and is lost with it");
    }

    #[test]
    fn snapshots_taken_while_records_change_load_to_the_last_frame() {
        let dir = tempfile::tempdir().unwrap();
        let views = tokio::sync::RwLock::new(DomainViews::default());
        let store = ViewsStore::open(dir.path()).unwrap().with_min_journal_bytes(2_000);
        let mut sequence = 0;
        for round in 0..40 {
            for i in 0..50 {
                sequence += 1;
                person(&mut views.blocking_write(), &format!("p{}", (round * 7 + i) % 300), sequence as i64);
            }
            store.append(sequence, &drain(&views), &views).unwrap();
        }
        let files = store.files().unwrap();
        assert!(files.iter().any(|f| matches!(f, StoredFile::Snapshot(..))), "{files:?}");
        assert!(files.len() <= 3, "replaced files are removed: {files:?}");
        let loaded = ViewsStore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(loaded.applied_through, sequence);
        assert_eq!(loaded.all_records(), views.blocking_read().all_records());
    }

    #[test]
    fn a_snapshot_taken_while_the_projection_writes_does_not_block_it() {
        let dir = tempfile::tempdir().unwrap();
        let views = std::sync::Arc::new(tokio::sync::RwLock::new(DomainViews::default()));
        for i in 0..20_000 {
            person(&mut views.blocking_write(), &format!("p{i}"), i);
        }
        let store = ViewsStore::open(dir.path()).unwrap().with_min_journal_bytes(1);
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        let writer = {
            let views = views.clone();
            std::thread::spawn(move || {
                // The projection: short writes, back to back, until the snapshot is done.
                let mut i = 0;
                while done_rx.try_recv().is_err() {
                    person(&mut views.blocking_write(), &format!("p{}", i % 20_000), 100_000 + i);
                    i += 1;
                }
            })
        };
        let (finished_tx, finished_rx) = std::sync::mpsc::channel();
        let appender = {
            let views = views.clone();
            std::thread::spawn(move || {
                let first = drain(&views);
                store.append(1, &first, &views).unwrap(); // takes a snapshot, reading a shard at a time
                let second = drain(&views);
                store.append(2, &second, &views).unwrap(); // completes it
                finished_tx.send(()).unwrap();
            })
        };
        let finished = finished_rx.recv_timeout(std::time::Duration::from_secs(30));
        done_tx.send(()).unwrap();
        assert!(finished.is_ok(), "the snapshot and the projection's writes blocked each other");
        appender.join().unwrap();
        writer.join().unwrap();
    }

    #[test]
    fn an_uncompleted_snapshot_is_ignored_and_a_whole_write_replaces_everything() {
        let dir = tempfile::tempdir().unwrap();
        let views = tokio::sync::RwLock::new(DomainViews::default());
        {
            let store = ViewsStore::open(dir.path()).unwrap().with_min_journal_bytes(1);
            person(&mut views.blocking_write(), "a", 1);
            store.append(1, &drain(&views), &views).unwrap(); // starts a snapshot
            assert!(store.journal.lock().unwrap().pending.is_some());
            // killed before the frame that would complete it
        }
        let store = ViewsStore::open(dir.path()).unwrap();
        assert!(!store.files().unwrap().iter().any(|f| matches!(f, StoredFile::Snapshot(..))));
        assert_eq!(store.load().unwrap().applied_through, 1);
        person(&mut views.blocking_write(), "b", 2);
        views.blocking_write().clear_changes();
        store.write_all(2, &views.blocking_read()).unwrap();
        let files = store.files().unwrap();
        assert_eq!(files.len(), 2, "one snapshot and its segment: {files:?}");
        let loaded = store.load().unwrap();
        assert_eq!(loaded.applied_through, 2);
        assert_eq!(loaded.all_records(), views.blocking_read().all_records());
    }

    #[test]
    fn damage_before_the_end_is_reported_not_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let views = tokio::sync::RwLock::new(DomainViews::default());
        let store = ViewsStore::open(dir.path()).unwrap();
        person(&mut views.blocking_write(), "a", 1);
        views.blocking_write().clear_changes();
        store.write_all(1, &views.blocking_read()).unwrap();
        let snapshot = store.files().unwrap().into_iter().find(|f| matches!(f, StoredFile::Snapshot(..))).unwrap();
        let path = store.path(snapshot);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let err = ViewsStore::open(dir.path()).unwrap().load().unwrap_err();
        assert!(matches!(err, ViewsStoreError::Damaged { .. }), "{err}");
        std::fs::write(&path, b"not a views file").unwrap();
        let err = ViewsStore::open(dir.path()).unwrap().load().unwrap_err();
        assert!(err.to_string().contains("not a views file"), "{err}");
        // A damaged journal opens, refuses appends and loads, until the store is reset.
        let journal = store.path(StoredFile::Journal(1));
        std::fs::write(&journal, b"garbage").unwrap();
        let store = ViewsStore::open(dir.path()).unwrap();
        assert!(store.load().unwrap_err().to_string().contains("not a views file"));
        assert!(store.append(2, &ViewChanges::default(), &views).is_err());
        store.reset().unwrap();
        store.append(2, &ViewChanges::default(), &views).unwrap();
        assert_eq!(store.load().unwrap().applied_through, 2);
    }
}
