//! View records that left memory (cases untouched for a while, days of the aggregates long
//! past), on disk in sorted immutable files ("runs") of (key, value) records of any size, read a
//! block at a time: the views' memory stays within their budget however long the log grows.
//!
//! The views hand over records when a table holds more than its budget
//! ([`crate::projections::table::Table`]); each hand-over is one new run, written and synced
//! before the views' journal frame that says those records left memory. A record removed while
//! an older copy may be in a run is handed over as a removal (a tombstone), which hides that copy
//! until a merge reaches the oldest run and drops both. Runs are merged by size (a run into the
//! one before it once it is at least half as large), so a store of `n` bytes written in runs
//! of `r` has at most about `log2(n / r)` runs.
//!
//! In memory per run: the first key of every block of about [`BLOCK_BYTES`] with its offset, a
//! Bloom filter (10 bits per record, so a key that is in no run is nearly always answered without
//! reading), and an open file. A lookup reads at most one block per run that may hold the key,
//! with `pread`, so what is read stays in the system's page cache and out of the hub's heap.
//!
//! A file is `run-<through>-<first>-<last>.bin`. `through` is the log sequence of the views write
//! that handed it over (a merge keeps the highest): when the views load at an earlier sequence
//! (their frame was lost with the machine), the run is removed, since the log replays what it
//! holds. `first..=last` are the hand-overs it holds: a merge's output covers its inputs, so
//! inputs left behind by a crash before their removal are recognised and removed at open. Layout:
//! [`MAGIC`], record count (u64 LE), the records' xxh3-64 digest (u64 LE), then the records in
//! key order, each a key length (u16 LE), a value length (u32 LE, `u32::MAX` for a removal), the
//! key and the value. A file is written beside its final name, synced, renamed and its directory
//! synced, so a run either is complete or is not there; a damaged one is reported at open.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, RwLock},
};

/// The first bytes of every run file (and the layout's version).
pub const MAGIC: &[u8; 8] = b"SGDREC01";

/// About how many bytes one lookup reads (a block ends at the first record boundary past it).
pub const BLOCK_BYTES: u64 = 8192;

const HEADER_BYTES: u64 = 8 + 8 + 8;
const REMOVED: u32 = u32::MAX;

/// A record as a run holds it: its encoding, or `None` for a removal.
pub type Stored = Option<Vec<u8>>;

/// Why the runs could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordRunsError {
    /// The file system refused (disk full, permissions).
    #[error("view records at {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A run file is not what its header says (damaged, or another layout).
    #[error("view records run {path} is damaged: {reason}; rebuild the read model from the log (hub rebuild, or delete the read-model directory and restart)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A key or value too long for the layout.
    #[error("a view record of {0} bytes is too long to hand over")]
    TooLong(usize),
}

fn io(path: &Path, source: std::io::Error) -> RecordRunsError {
    RecordRunsError::Io { path: path.to_path_buf(), source }
}

/// A Bloom filter over keys: 10 bits and 7 probes per key (about 1% false positives).
#[derive(Debug)]
struct Bloom {
    words: Vec<u64>,
}

impl Bloom {
    fn for_keys(keys: usize) -> Self {
        let bits = (keys * 10).max(64).next_power_of_two();
        Self { words: vec![0; bits / 64] }
    }

    fn insert(&mut self, key: &[u8]) {
        for bit in KeyHash::of(key).probes(self.words.len()) {
            self.words[bit / 64] |= 1 << (bit % 64);
        }
    }

    fn may_hold(&self, key: KeyHash) -> bool {
        key.probes(self.words.len()).all(|bit| self.words[bit / 64] & (1 << (bit % 64)) != 0)
    }
}

/// The two hashes a key's 7 Bloom probes are made of: computed once per lookup, whatever the
/// number of runs it asks.
#[derive(Debug, Clone, Copy)]
struct KeyHash(u64, u64);

impl KeyHash {
    fn of(key: &[u8]) -> Self {
        let hash = xxhash_rust::xxh3::xxh3_128(key);
        Self(hash as u64, (hash >> 64) as u64 | 1)
    }

    /// The bits the key sets in a filter of `words` words.
    fn probes(self, words: usize) -> impl Iterator<Item = usize> {
        let (Self(a, b), mask) = (self, (words * 64 - 1) as u64);
        (0..7u64).map(move |i| (a.wrapping_add(i.wrapping_mul(b)) & mask) as usize)
    }
}

/// A record read from a block: key, value (`None` for a removal), where the next one starts.
type Parsed<'a> = (&'a [u8], Option<&'a [u8]>, usize);

/// Reads the record at `at` in `buffer`.
fn parse(buffer: &[u8], at: usize) -> Option<Parsed<'_>> {
    let key_len = u16::from_le_bytes(buffer.get(at..at + 2)?.try_into().ok()?) as usize;
    let value_len = u32::from_le_bytes(buffer.get(at + 2..at + 6)?.try_into().ok()?);
    let key = buffer.get(at + 6..at + 6 + key_len)?;
    let start = at + 6 + key_len;
    if value_len == REMOVED {
        return Some((key, None, start));
    }
    let end = start + value_len as usize;
    Some((key, Some(buffer.get(start..end)?), end))
}

/// What reading or writing a run's records once through collects: their digest, Bloom filter,
/// block fences, count and where the next record starts.
struct Indexer {
    hasher: xxhash_rust::xxh3::Xxh3,
    bloom: Bloom,
    fences: Vec<(Box<[u8]>, u64)>,
    at: u64,
    block_start: u64,
    count: u64,
}

impl Indexer {
    fn new(expected: usize) -> Self {
        Self {
            hasher: xxhash_rust::xxh3::Xxh3::new(),
            bloom: Bloom::for_keys(expected),
            fences: Vec::new(),
            at: HEADER_BYTES,
            block_start: 0,
            count: 0,
        }
    }

    /// Takes in the next record (its length prefix, key and value bytes).
    fn add(&mut self, lengths: &[u8; 6], key: &[u8], value: &[u8]) {
        for part in [&lengths[..], key, value] {
            self.hasher.update(part);
        }
        if self.count == 0 || self.at - self.block_start >= BLOCK_BYTES {
            self.fences.push((key.into(), self.at));
            self.block_start = self.at;
        }
        self.bloom.insert(key);
        self.at += (6 + key.len() + value.len()) as u64;
        self.count += 1;
    }
}

/// One immutable sorted file.
#[derive(Debug)]
struct Run {
    path: PathBuf,
    file: File,
    through: u64,
    first: u64,
    last: u64,
    count: u64,
    /// The file's length.
    end: u64,
    /// The first key of every block and where the block starts.
    fences: Vec<(Box<[u8]>, u64)>,
    bloom: Bloom,
}

impl Run {
    fn name(through: u64, first: u64, last: u64) -> String {
        format!("run-{through:020}-{first:020}-{last:020}.bin")
    }

    fn parse_name(name: &str) -> Option<(u64, u64, u64)> {
        let mut parts = name.strip_prefix("run-")?.strip_suffix(".bin")?.split('-');
        let numbers = (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
        parts.next().is_none().then_some(numbers)
    }

    /// Opens a run and reads it once through: checks its order and digest, and collects its
    /// fences and Bloom filter.
    fn open(path: PathBuf, (through, first, last): (u64, u64, u64)) -> Result<Self, RecordRunsError> {
        let damaged = |reason: String| RecordRunsError::Damaged { path: path.clone(), reason };
        let file = File::open(&path).map_err(|e| io(&path, e))?;
        let end = file.metadata().map_err(|e| io(&path, e))?.len();
        let mut reader = BufReader::with_capacity(1 << 16, &file);
        let mut header = [0u8; HEADER_BYTES as usize];
        reader.read_exact(&mut header).map_err(|e| damaged(format!("no header ({e})")))?;
        if &header[..8] != MAGIC {
            return Err(damaged("not a view records run".into()));
        }
        let count = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        let digest = u64::from_le_bytes(header[16..24].try_into().unwrap_or_default());
        let mut index = Indexer::new(count as usize);
        let mut previous: Vec<u8> = Vec::new();
        for record in 0..count {
            let mut lengths = [0u8; 6];
            reader.read_exact(&mut lengths).map_err(|e| damaged(format!("record {record}: {e}")))?;
            let key_len = u16::from_le_bytes([lengths[0], lengths[1]]) as usize;
            let value_len = u32::from_le_bytes([lengths[2], lengths[3], lengths[4], lengths[5]]);
            let value_bytes = if value_len == REMOVED { 0 } else { value_len as usize };
            if index.at + 6 + (key_len + value_bytes) as u64 > end {
                return Err(damaged(format!("record {record} runs past the end")));
            }
            let mut key = vec![0u8; key_len];
            reader.read_exact(&mut key).map_err(|e| damaged(format!("record {record}: {e}")))?;
            let mut value = vec![0u8; value_bytes];
            reader.read_exact(&mut value).map_err(|e| damaged(format!("record {record}: {e}")))?;
            if record > 0 && previous >= key {
                return Err(damaged(format!("record {record} is out of order")));
            }
            index.add(&lengths, &key, &value);
            previous = key;
        }
        if index.at != end {
            return Err(damaged(format!("{end} bytes for {count} records of {} bytes", index.at)));
        }
        if index.hasher.digest() != digest {
            return Err(damaged("its records do not match its digest".into()));
        }
        let Indexer { fences, bloom, .. } = index;
        Ok(Self { path, file, through, first, last, count, end, fences, bloom })
    }

    /// Writes `records` (sorted by key, no key twice) as a run in `dir`; `expected` is how many
    /// there are at most (the Bloom filter's size).
    fn write(
        dir: &Path,
        (through, first, last): (u64, u64, u64),
        expected: usize,
        records: impl Iterator<Item = Result<(Vec<u8>, Stored), RecordRunsError>>,
    ) -> Result<Self, RecordRunsError> {
        let path = dir.join(Self::name(through, first, last));
        let temporary = path.with_extension("tmp");
        let file = File::create(&temporary).map_err(|e| io(&temporary, e))?;
        let mut out = BufWriter::with_capacity(1 << 16, file);
        out.write_all(&[0u8; HEADER_BYTES as usize]).map_err(|e| io(&temporary, e))?;
        let mut index = Indexer::new(expected);
        for record in records {
            let (key, value) = record?;
            let key_len = u16::try_from(key.len()).map_err(|_| RecordRunsError::TooLong(key.len()))?;
            let value_len = match &value {
                None => REMOVED,
                Some(v) => {
                    u32::try_from(v.len()).ok().filter(|l| *l != REMOVED).ok_or(RecordRunsError::TooLong(v.len()))?
                }
            };
            let mut lengths = [0u8; 6];
            lengths[..2].copy_from_slice(&key_len.to_le_bytes());
            lengths[2..].copy_from_slice(&value_len.to_le_bytes());
            let value = value.unwrap_or_default();
            for part in [&lengths[..], &key, &value] {
                out.write_all(part).map_err(|e| io(&temporary, e))?;
            }
            index.add(&lengths, &key, &value);
        }
        let mut file = out.into_inner().map_err(|e| io(&temporary, e.into_error()))?;
        let mut header = Vec::with_capacity(HEADER_BYTES as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&index.count.to_le_bytes());
        header.extend_from_slice(&index.hasher.digest().to_le_bytes());
        file.seek(SeekFrom::Start(0)).map_err(|e| io(&temporary, e))?;
        file.write_all(&header).map_err(|e| io(&temporary, e))?;
        file.sync_all().map_err(|e| io(&temporary, e))?;
        std::fs::rename(&temporary, &path).map_err(|e| io(&path, e))?;
        super::sync_dir(dir).map_err(|e| io(dir, e))?;
        let file = File::open(&path).map_err(|e| io(&path, e))?;
        let Indexer { fences, bloom, count, at: end, .. } = index;
        Ok(Self { path, file, through, first, last, count, end, fences, bloom })
    }

    /// The bytes of block `index`.
    fn block(&self, index: usize) -> Result<Vec<u8>, RecordRunsError> {
        let start = self.fences[index].1;
        let end = self.fences.get(index + 1).map_or(self.end, |f| f.1);
        let mut buffer = vec![0u8; (end - start) as usize];
        self.file.read_exact_at(&mut buffer, start).map_err(|e| io(&self.path, e))?;
        Ok(buffer)
    }

    /// The block that would hold `key`, if any.
    fn block_of(&self, key: &[u8]) -> Option<usize> {
        self.fences.partition_point(|(first, _)| first.as_ref() <= key).checked_sub(1)
    }

    fn get(&self, key: &[u8], hash: KeyHash) -> Result<Option<Stored>, RecordRunsError> {
        if !self.bloom.may_hold(hash) {
            return Ok(None);
        }
        let Some(index) = self.block_of(key) else { return Ok(None) };
        let block = self.block(index)?;
        let mut at = 0;
        while let Some((found, value, next)) = parse(&block, at) {
            match found.cmp(key) {
                std::cmp::Ordering::Less => at = next,
                std::cmp::Ordering::Equal => return Ok(Some(value.map(<[u8]>::to_vec))),
                std::cmp::Ordering::Greater => break,
            }
        }
        Ok(None)
    }

    fn bytes(&self) -> u64 {
        self.end
    }
}

/// The records of one run from a key on, block by block.
struct Cursor {
    run: Arc<Run>,
    block: usize,
    buffer: Vec<u8>,
    at: usize,
    head: Option<(Vec<u8>, Stored)>,
}

impl Cursor {
    /// A cursor at the first record of `run` whose key is at least `from`.
    fn new(run: Arc<Run>, from: &[u8]) -> Result<Self, RecordRunsError> {
        let block = run.block_of(from).unwrap_or(0);
        let mut cursor = Self { run, block, buffer: Vec::new(), at: 0, head: None };
        if !cursor.run.fences.is_empty() {
            cursor.buffer = cursor.run.block(block)?;
        }
        cursor.advance()?;
        while cursor.head.as_ref().is_some_and(|(key, _)| key.as_slice() < from) {
            cursor.advance()?;
        }
        Ok(cursor)
    }

    fn advance(&mut self) -> Result<(), RecordRunsError> {
        loop {
            if let Some((key, value, next)) = parse(&self.buffer, self.at) {
                self.head = Some((key.to_vec(), value.map(<[u8]>::to_vec)));
                self.at = next;
                return Ok(());
            }
            if self.block + 1 >= self.run.fences.len() {
                self.head = None;
                return Ok(());
            }
            self.block += 1;
            self.buffer = self.run.block(self.block)?;
            self.at = 0;
        }
    }
}

/// Runs in order, the newest first where they hold the same key: every key once, with the value
/// of the newest run that holds it.
struct Merge {
    /// Oldest first.
    cursors: Vec<Cursor>,
}

impl Merge {
    fn next(&mut self) -> Result<Option<(Vec<u8>, Stored)>, RecordRunsError> {
        let Some(smallest) = self.cursors.iter().filter_map(|c| c.head.as_ref().map(|h| &h.0)).min().cloned() else {
            return Ok(None);
        };
        let mut found = None;
        for cursor in &mut self.cursors {
            if cursor.head.as_ref().is_some_and(|(key, _)| *key == smallest) {
                found = cursor.head.take();
                cursor.advance()?;
            }
        }
        Ok(found)
    }
}

/// The view records on disk of one read model.
#[derive(Debug)]
pub struct RecordRuns {
    dir: PathBuf,
    /// Oldest first.
    runs: RwLock<Vec<Arc<Run>>>,
    /// The first error met by a lookup made where no error can be returned (inside a
    /// projection); the projection runner stops on it.
    failure: Mutex<Option<String>>,
}

impl RecordRuns {
    /// Opens (or creates) the store in `dir`, removing what an interrupted write or merge left.
    pub fn open(dir: &Path) -> Result<Self, RecordRunsError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if path.extension().is_some_and(|x| x == "tmp") {
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            } else if let Some(numbers) = Run::parse_name(&name) {
                found.push((path, numbers));
            }
        }
        // A merge's inputs that its crash left behind: covered by the merge.
        let covered = |(_, (_, first, last)): &(PathBuf, (u64, u64, u64))| {
            found.iter().any(|(_, (_, f, l))| f <= first && last <= l && (f, l) != (first, last))
        };
        let (gone, kept): (Vec<_>, Vec<_>) = found.iter().cloned().partition(covered);
        for (path, _) in gone {
            std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
        }
        let mut runs = kept
            .into_iter()
            .map(|(path, numbers)| Run::open(path, numbers).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        runs.sort_by_key(|run| run.first);
        Ok(Self { dir: dir.to_path_buf(), runs: RwLock::new(runs), failure: Mutex::new(None) })
    }

    fn runs(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Run>>> {
        self.runs.read().unwrap_or_else(|p| p.into_inner())
    }

    /// Removes the runs handed over after log `sequence` (the views loaded at `sequence`; the log
    /// replays what those runs hold).
    pub fn discard_after(&self, sequence: u64) -> Result<usize, RecordRunsError> {
        let mut runs = self.runs.write().unwrap_or_else(|p| p.into_inner());
        let (later, kept): (Vec<_>, Vec<_>) = runs.drain(..).partition(|run| run.through > sequence);
        *runs = kept;
        for run in &later {
            std::fs::remove_file(&run.path).map_err(|e| io(&run.path, e))?;
        }
        Ok(later.len())
    }

    /// Removes every run (the views are replayed from the log).
    pub fn reset(&self) -> Result<(), RecordRunsError> {
        let mut runs = self.runs.write().unwrap_or_else(|p| p.into_inner());
        for run in runs.drain(..) {
            std::fs::remove_file(&run.path).map_err(|e| io(&run.path, e))?;
        }
        Ok(())
    }

    /// Hands over `records` (any order; a key given twice keeps its last value) as a new run,
    /// at the views write of log `sequence`.
    pub fn add_run(&self, mut records: Vec<(Vec<u8>, Stored)>, sequence: u64) -> Result<(), RecordRunsError> {
        if records.is_empty() {
            return Ok(());
        }
        records.reverse();
        records.sort_by(|a, b| a.0.cmp(&b.0));
        records.dedup_by(|later, earlier| later.0 == earlier.0);
        let next = self.runs().last().map_or(0, |run| run.last + 1);
        let expected = records.len();
        let run = Run::write(&self.dir, (sequence, next, next), expected, records.into_iter().map(Ok))?;
        self.runs.write().unwrap_or_else(|p| p.into_inner()).push(Arc::new(run));
        Ok(())
    }

    /// The two runs to merge next among `runs[window]` (their `through` grows with their order):
    /// the newest two neighbours of which the newer is at least half as large as the older, so
    /// that once none is left each run is more than twice the size of the next and there are at
    /// most ~log2 of them (with "at least as large", and looking only at the newest two, runs of
    /// nearly equal sizes, and small runs left before a large one, piled up: 65 runs at
    /// 10,000,000 events); and whether the older one is the oldest run.
    fn next_merge(&self, window: impl Fn(&[Arc<Run>]) -> std::ops::Range<usize>) -> Option<(Arc<Run>, Arc<Run>, bool)> {
        let runs = self.runs();
        let std::ops::Range { start, end } = window(&runs);
        (start + 1..end)
            .rev()
            .find(|&newer| runs[newer].bytes() * 2 >= runs[newer - 1].bytes())
            .map(|newer| (runs[newer - 1].clone(), runs[newer].clone(), newer == 1))
    }

    /// The runs handed over up to log `through`.
    fn up_to(through: u64) -> impl Fn(&[Arc<Run>]) -> std::ops::Range<usize> {
        move |runs| 0..runs.partition_point(|run| run.through <= through)
    }

    /// The runs handed over after log `after`.
    fn after(after: u64) -> impl Fn(&[Arc<Run>]) -> std::ops::Range<usize> {
        move |runs| runs.partition_point(|run| run.through <= after)..runs.len()
    }

    /// Whether merging up to log `through` would do anything ([`RecordRuns::merge`]).
    pub fn wants_merge(&self, through: u64) -> bool {
        self.next_merge(Self::up_to(through)).is_some()
    }

    /// Merges runs handed over up to log `through`, a run into the one before it for as long as
    /// one is at least half as large as the one before it. A merge keeps the highest `through` of
    /// its inputs, and [`RecordRuns::discard_after`] removes a run by its `through`: so `through`
    /// must be a sequence the views' files hold on disk (a journal frame synced).
    pub fn merge(&self, through: u64) -> Result<(), RecordRunsError> {
        self.merge_within(Self::up_to(through))
    }

    /// Merges the runs handed over after log `views_written`, the newest views written (whether
    /// synced or not), in the same way as [`RecordRuns::merge`]. A restart loads views at most
    /// that new and discards every one of these runs whatever they were merged into, so merging
    /// them changes nothing a restart sees; meanwhile lookups probe a few runs instead of one per
    /// hand-over (a catch-up writes views only every 500,000 events, and before these merges a
    /// rebuild of 10,000,000 events handed over ~900 runs, whose filters it spent most of its
    /// time probing).
    pub fn merge_after(&self, views_written: u64) -> Result<(), RecordRunsError> {
        self.merge_within(Self::after(views_written))
    }

    fn merge_within(&self, window: impl Fn(&[Arc<Run>]) -> std::ops::Range<usize>) -> Result<(), RecordRunsError> {
        while let Some((older, newer, oldest)) = self.next_merge(&window) {
            let mut merge = Merge { cursors: vec![Cursor::new(older.clone(), &[])?, Cursor::new(newer.clone(), &[])?] };
            let records = std::iter::from_fn(|| merge.next().transpose())
                // Nothing older is left for a removal to hide once the oldest run is merged.
                .filter(|record| !(oldest && matches!(record, Ok((_, None)))));
            let numbers = (older.through.max(newer.through), older.first, newer.last);
            let merged = Run::write(&self.dir, numbers, (older.count + newer.count) as usize, records)?;
            {
                let mut runs = self.runs.write().unwrap_or_else(|p| p.into_inner());
                runs.retain(|run| !Arc::ptr_eq(run, &older) && !Arc::ptr_eq(run, &newer));
                runs.push(Arc::new(merged));
                runs.sort_by_key(|run| run.first);
            }
            for input in [older, newer] {
                std::fs::remove_file(&input.path).map_err(|e| io(&input.path, e))?;
            }
            super::sync_dir(&self.dir).map_err(|e| io(&self.dir, e))?;
        }
        Ok(())
    }

    /// The newest stored state of `key`: `None` when no run holds it, `Some(None)` when it was
    /// removed.
    pub fn get(&self, key: &[u8]) -> Result<Option<Stored>, RecordRunsError> {
        let hash = KeyHash::of(key);
        for run in self.runs().iter().rev() {
            if let Some(found) = run.get(key, hash)? {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// Shows every stored record whose key starts with `prefix` (its newest state, removals
    /// included as `None`) to `each`, in key order.
    pub fn for_each_with_prefix(
        &self,
        prefix: &[u8],
        mut each: impl FnMut(&[u8], Option<&[u8]>),
    ) -> Result<(), RecordRunsError> {
        let runs: Vec<Arc<Run>> = self.runs().clone();
        let cursors = runs.into_iter().map(|run| Cursor::new(run, prefix)).collect::<Result<Vec<_>, _>>()?;
        let mut merge = Merge { cursors };
        while let Some((key, value)) = merge.next()? {
            if !key.starts_with(prefix) {
                break;
            }
            each(&key, value.as_deref());
        }
        Ok(())
    }

    /// How many runs and bytes on disk.
    pub fn size(&self) -> (usize, u64) {
        let runs = self.runs();
        (runs.len(), runs.iter().map(|run| run.bytes()).sum())
    }

    /// Records a lookup's error (the first one is kept for [`RecordRuns::take_failure`]).
    pub fn note_failure(&self, error: &RecordRunsError) {
        let mut failure = self.failure.lock().unwrap_or_else(|p| p.into_inner());
        if failure.is_none() {
            tracing::error!(%error, "a view record could not be read from disk");
            *failure = Some(error.to_string());
        }
    }

    /// The first lookup error since the last call, if any.
    pub fn take_failure(&self) -> Option<String> {
        self.failure.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, value: Option<&str>) -> (Vec<u8>, Stored) {
        (key.as_bytes().to_vec(), value.map(|v| v.as_bytes().to_vec()))
    }

    fn all(runs: &RecordRuns, prefix: &str) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        runs.for_each_with_prefix(prefix.as_bytes(), |key, value| {
            out.push((String::from_utf8_lossy(key).into(), value.map(|v| String::from_utf8_lossy(v).into())));
        })
        .unwrap();
        out
    }

    #[test]
    fn the_newest_run_holding_a_key_answers_for_it_and_removals_hide_older_copies() {
        let dir = tempfile::tempdir().unwrap();
        let runs = RecordRuns::open(dir.path()).unwrap();
        runs.add_run(vec![record("a/1", Some("one")), record("a/2", Some("two")), record("b/1", Some("b"))], 10)
            .unwrap();
        runs.add_run(vec![record("a/2", None), record("a/3", Some("three")), record("a/1", Some("uno"))], 20).unwrap();
        assert_eq!(runs.get(b"a/1").unwrap(), Some(Some(b"uno".to_vec())));
        assert_eq!(runs.get(b"a/2").unwrap(), Some(None));
        assert_eq!(runs.get(b"a/9").unwrap(), None);
        assert_eq!(
            all(&runs, "a/"),
            [("a/1".into(), Some("uno".into())), ("a/2".into(), None), ("a/3".into(), Some("three".into()))]
        );
        assert_eq!(all(&runs, "b/"), [("b/1".into(), Some("b".into()))]);
        assert!(all(&runs, "c/").is_empty());
    }

    #[test]
    fn merging_keeps_every_newest_value_and_drops_removals_at_the_oldest_run() {
        let dir = tempfile::tempdir().unwrap();
        let runs = RecordRuns::open(dir.path()).unwrap();
        let many: Vec<_> = (0..5000).map(|i| (format!("k/{i:05}").into_bytes(), Some(vec![1u8]))).collect();
        runs.add_run(many, 1).unwrap();
        let changed: Vec<_> = (0..5000)
            .map(|i| (format!("k/{i:05}").into_bytes(), if i % 4 == 0 { None } else { Some(vec![2u8; 30]) }))
            .collect();
        runs.add_run(changed.clone(), 2).unwrap();
        assert_eq!(runs.get(b"k/00004").unwrap(), Some(None));
        runs.add_run(changed, 3).unwrap();
        assert!(!runs.wants_merge(1), "runs handed over after the stored views are not merged");
        assert!(runs.wants_merge(3));
        runs.merge(3).unwrap();
        assert_eq!(runs.size().0, 1);
        for i in 0..5000 {
            let expected = if i % 4 == 0 { None } else { Some(Some(vec![2u8; 30])) };
            assert_eq!(runs.get(format!("k/{i:05}").as_bytes()).unwrap(), expected, "key {i}");
        }
        assert_eq!(all(&runs, "k/").len(), 3750);
        // Opened again: the same answers from the files alone.
        let again = RecordRuns::open(dir.path()).unwrap();
        assert_eq!(all(&again, "k/").len(), 3750);
        assert_eq!(again.get(b"k/00002").unwrap(), Some(Some(vec![2u8; 30])));
        assert_eq!(again.get(b"k/00004").unwrap(), None);
    }

    #[test]
    fn runs_after_the_views_written_merge_among_themselves_and_a_restart_still_discards_them() {
        let dir = tempfile::tempdir().unwrap();
        let runs = RecordRuns::open(dir.path()).unwrap();
        // Handed over before the views written at 10: a restart needs it.
        runs.add_run(vec![record("a", Some("1")), record("b", Some("1"))], 10).unwrap();
        for (i, through) in (20..100).step_by(10).enumerate() {
            runs.add_run(vec![record("b", if i % 2 == 0 { None } else { Some("2") }), record("c", Some("3"))], through)
                .unwrap();
        }
        assert_eq!(runs.size().0, 9);
        runs.merge_after(10).unwrap();
        let (count, _) = runs.size();
        assert!(count <= 4, "the eight runs after the views written merged into a few: {count}");
        // The run the views written need is left as it was (no merge reaches it).
        assert!(dir.path().join(Run::name(10, 0, 0)).exists());
        assert_eq!(runs.get(b"a").unwrap(), Some(Some(b"1".to_vec())));
        assert_eq!(runs.get(b"b").unwrap(), Some(Some(b"2".to_vec())), "the newest state of b");
        assert_eq!(runs.get(b"c").unwrap(), Some(Some(b"3".to_vec())));
        // A restart with the views written at 10 discards every merged run and keeps the first.
        let reopened = RecordRuns::open(dir.path()).unwrap();
        reopened.discard_after(10).unwrap();
        assert_eq!(reopened.size().0, 1);
        assert_eq!(reopened.get(b"b").unwrap(), Some(Some(b"1".to_vec())));
        assert_eq!(reopened.get(b"c").unwrap(), None);
    }

    #[test]
    fn runs_after_the_loaded_views_and_inputs_a_merge_covered_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let runs = RecordRuns::open(dir.path()).unwrap();
        runs.add_run(vec![record("a", Some("1"))], 5).unwrap();
        runs.add_run(vec![record("a", Some("2"))], 9).unwrap();
        // An input of a merge whose removal a crash prevented.
        let leftover = dir.path().join(Run::name(5, 0, 0));
        std::fs::copy(dir.path().join(Run::name(5, 0, 0)), dir.path().join("copy")).unwrap();
        runs.merge(9).unwrap();
        std::fs::rename(dir.path().join("copy"), &leftover).unwrap();
        let reopened = RecordRuns::open(dir.path()).unwrap();
        assert_eq!(reopened.size().0, 1);
        assert_eq!(reopened.get(b"a").unwrap(), Some(Some(b"2".to_vec())));
        reopened.add_run(vec![record("a", Some("3"))], 12).unwrap();
        assert_eq!(reopened.discard_after(9).unwrap(), 1);
        assert_eq!(RecordRuns::open(dir.path()).unwrap().get(b"a").unwrap(), Some(Some(b"2".to_vec())));
    }

    #[test]
    fn a_damaged_run_is_reported_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let runs = RecordRuns::open(dir.path()).unwrap();
        runs.add_run(vec![record("a", Some("value"))], 1).unwrap();
        let path = dir.path().join(Run::name(1, 0, 0));
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        assert!(matches!(RecordRuns::open(dir.path()), Err(RecordRunsError::Damaged { .. })));
    }
}
