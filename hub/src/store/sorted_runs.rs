//! Records that grow with the log, on disk in sorted immutable files ("runs"), read a block at a
//! time: the hub's memory does not grow with them.
//!
//! A record is a fixed-size byte string (`[u8; N]`) compared as bytes (big-endian numbers sort
//! as numbers). Whoever owns a store buffers new records in memory and hands them over as a new
//! run now and then ([`SortedRuns::add_run`]); runs are merged by size (a run is merged into the
//! one before it once it is at least as large), so a store of `n` records written in runs of `r`
//! has about `log2(n / r)` runs and every record is rewritten about that many times.
//!
//! In memory per run: the first record of every block of [`BLOCK_BYTES`] (1/256 of the file for
//! 16-byte records) and an open file. A lookup reads one block per run ([`SortedRuns::contains`]),
//! a prefix range reads the blocks that hold it ([`SortedRuns::with_prefix`]), both with `pread`,
//! so what is read stays in the system's page cache and out of the hub's heap.
//!
//! A file is `run-<through>-<generation>.bin`: `through` is the log sequence up to which its
//! owner had handed over every record when it was written (a merge keeps the highest), and
//! `generation` orders runs of the same `through`. Layout: [`MAGIC`], record size (u32 LE),
//! record count (u64 LE), the records' xxh3-64 digest (u64 LE), `through` (u64 LE), then the
//! records. A file is written beside its final name, synced, renamed and its directory synced,
//! so a run either is complete or is not there; a damaged one is reported when the store opens.
//! Records repeated across runs (a run handed over again after a crash) count once.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read, Write},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

/// The first bytes of every run file (and the layout's version).
pub const MAGIC: &[u8; 8] = b"SGDRUN01";

/// How many bytes of records one lookup reads (one block).
pub const BLOCK_BYTES: usize = 4096;

const HEADER_BYTES: u64 = 8 + 4 + 8 + 8 + 8;

/// Why a store of runs could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RunsError {
    /// The file system refused (disk full, permissions).
    #[error("runs at {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A run file is not what its header says (damaged, or another layout).
    #[error("run {path} is damaged: {reason}; rebuild the read model from the log (hub rebuild, or delete the read-model directory and restart)")]
    Damaged {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io(path: &Path, source: std::io::Error) -> RunsError {
    RunsError::Io { path: path.to_path_buf(), source }
}

/// One immutable sorted file.
#[derive(Debug)]
struct Run<const N: usize> {
    path: PathBuf,
    file: File,
    count: u64,
    through: u64,
    generation: u64,
    /// The first record of every block.
    fences: Vec<[u8; N]>,
}

impl<const N: usize> Run<N> {
    const PER_BLOCK: usize = if BLOCK_BYTES / N == 0 { 1 } else { BLOCK_BYTES / N };

    fn name(through: u64, generation: u64) -> String {
        format!("run-{through:020}-{generation:020}.bin")
    }

    fn parse_name(name: &str) -> Option<(u64, u64)> {
        let (through, generation) = name.strip_prefix("run-")?.strip_suffix(".bin")?.split_once('-')?;
        Some((through.parse().ok()?, generation.parse().ok()?))
    }

    /// Opens a run and reads it once through: checks its digest and collects its fences (and
    /// shows every record to `each`).
    fn open(path: PathBuf, generation: u64, mut each: impl FnMut(&[u8; N])) -> Result<Self, RunsError> {
        let damaged = |reason: String| RunsError::Damaged { path: path.clone(), reason };
        let file = File::open(&path).map_err(|e| io(&path, e))?;
        let mut reader = BufReader::with_capacity(1 << 16, &file);
        let mut header = [0u8; HEADER_BYTES as usize];
        reader.read_exact(&mut header).map_err(|e| damaged(format!("no header ({e})")))?;
        if &header[..8] != MAGIC {
            return Err(damaged("not a run file".into()));
        }
        let size = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default()) as usize;
        let count = u64::from_le_bytes(header[12..20].try_into().unwrap_or_default());
        let digest = u64::from_le_bytes(header[20..28].try_into().unwrap_or_default());
        let through = u64::from_le_bytes(header[28..36].try_into().unwrap_or_default());
        if size != N {
            return Err(damaged(format!("records of {size} bytes, this store's are {N}")));
        }
        let length = file.metadata().map_err(|e| io(&path, e))?.len();
        if length != HEADER_BYTES + count * N as u64 {
            return Err(damaged(format!("{length} bytes for {count} records")));
        }
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut fences = Vec::with_capacity(count as usize / Self::PER_BLOCK + 1);
        let mut record = [0u8; N];
        let mut previous: Option<[u8; N]> = None;
        for index in 0..count as usize {
            reader.read_exact(&mut record).map_err(|e| io(&path, e))?;
            hasher.update(&record);
            if previous.is_some_and(|p| p >= record) {
                return Err(damaged(format!("record {index} is out of order")));
            }
            if index.is_multiple_of(Self::PER_BLOCK) {
                fences.push(record);
            }
            each(&record);
            previous = Some(record);
        }
        if hasher.digest() != digest {
            return Err(damaged("its records do not match its digest".into()));
        }
        Ok(Self { path, file, count, through, generation, fences })
    }

    /// Writes `records` (sorted, no repeats) as a run in `dir`.
    fn write(
        dir: &Path,
        through: u64,
        generation: u64,
        records: impl Iterator<Item = Result<[u8; N], RunsError>>,
    ) -> Result<Self, RunsError> {
        let path = dir.join(Self::name(through, generation));
        let temporary = path.with_extension("tmp");
        let file = File::create(&temporary).map_err(|e| io(&temporary, e))?;
        let mut writer = BufWriter::with_capacity(1 << 16, &file);
        writer.write_all(&[0u8; HEADER_BYTES as usize]).map_err(|e| io(&temporary, e))?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut fences = Vec::new();
        let mut count = 0u64;
        for record in records {
            let record = record?;
            if (count as usize).is_multiple_of(Self::PER_BLOCK) {
                fences.push(record);
            }
            hasher.update(&record);
            writer.write_all(&record).map_err(|e| io(&temporary, e))?;
            count += 1;
        }
        writer.flush().map_err(|e| io(&temporary, e))?;
        drop(writer);
        let mut header = Vec::with_capacity(HEADER_BYTES as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&(N as u32).to_le_bytes());
        header.extend_from_slice(&count.to_le_bytes());
        header.extend_from_slice(&hasher.digest().to_le_bytes());
        header.extend_from_slice(&through.to_le_bytes());
        file.write_all_at(&header, 0).map_err(|e| io(&temporary, e))?;
        file.sync_all().map_err(|e| io(&temporary, e))?;
        drop(file);
        std::fs::rename(&temporary, &path).map_err(|e| io(&path, e))?;
        sync_dir(dir)?;
        let file = File::open(&path).map_err(|e| io(&path, e))?;
        Ok(Self { path, file, count, through, generation, fences })
    }

    /// Reads records `from..to` into `out`.
    fn read(&self, from: u64, to: u64, out: &mut Vec<u8>) -> Result<(), RunsError> {
        out.resize(((to - from) as usize) * N, 0);
        self.file.read_exact_at(out, HEADER_BYTES + from * N as u64).map_err(|e| io(&self.path, e))
    }

    /// The records of block `block`.
    fn block(&self, block: usize, buffer: &mut Vec<u8>) -> Result<(), RunsError> {
        let from = (block * Self::PER_BLOCK) as u64;
        let to = (from + Self::PER_BLOCK as u64).min(self.count);
        self.read(from, to, buffer)
    }

    fn contains(&self, key: &[u8; N], buffer: &mut Vec<u8>) -> Result<bool, RunsError> {
        let block = self.fences.partition_point(|f| f <= key);
        if block == 0 {
            return Ok(false);
        }
        self.block(block - 1, buffer)?;
        let records = buffer.len() / N;
        let (mut low, mut high) = (0, records);
        while low < high {
            let middle = (low + high) / 2;
            match buffer[middle * N..][..N].cmp(&key[..]) {
                std::cmp::Ordering::Equal => return Ok(true),
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
            }
        }
        Ok(false)
    }

    fn with_prefix(&self, prefix: &[u8], out: &mut Vec<[u8; N]>, buffer: &mut Vec<u8>) -> Result<(), RunsError> {
        let first = self.fences.partition_point(|f| &f[..prefix.len()] < prefix).saturating_sub(1);
        for block in first..self.fences.len() {
            self.block(block, buffer)?;
            for record in buffer.chunks_exact(N) {
                match record[..prefix.len()].cmp(prefix) {
                    std::cmp::Ordering::Less => {}
                    std::cmp::Ordering::Equal => out.push(record.try_into().unwrap_or([0; N])),
                    std::cmp::Ordering::Greater => return Ok(()),
                }
            }
        }
        Ok(())
    }

    /// Every record, in order, read sequentially.
    fn records(&self) -> RunReader<'_, N> {
        RunReader { run: self, next: 0, buffer: Vec::new(), at: 0 }
    }
}

/// Reads a run front to back, a block at a time.
struct RunReader<'a, const N: usize> {
    run: &'a Run<N>,
    next: u64,
    buffer: Vec<u8>,
    at: usize,
}

impl<const N: usize> RunReader<'_, N> {
    const CHUNK: u64 = 4096;

    fn next_record(&mut self) -> Result<Option<[u8; N]>, RunsError> {
        if self.at >= self.buffer.len() {
            if self.next >= self.run.count {
                return Ok(None);
            }
            let to = (self.next + Self::CHUNK).min(self.run.count);
            self.run.read(self.next, to, &mut self.buffer)?;
            self.next = to;
            self.at = 0;
        }
        let record = self.buffer[self.at..][..N].try_into().unwrap_or([0; N]);
        self.at += N;
        Ok(Some(record))
    }
}

fn sync_dir(dir: &Path) -> Result<(), RunsError> {
    super::sync_dir(dir).map_err(|e| io(dir, e))
}

/// A directory of sorted runs of `N`-byte records (see the module's documentation).
#[derive(Debug)]
pub struct SortedRuns<const N: usize> {
    dir: PathBuf,
    /// Oldest first; readers take a copy of the list and read without the lock.
    runs: RwLock<Vec<Arc<Run<N>>>>,
}

impl<const N: usize> SortedRuns<N> {
    /// Opens (or creates) the store in `dir`, reading every run once (its digest is checked) and
    /// showing each record to `each` (e.g. to fill a filter). Leftovers of an interrupted write
    /// are removed; a run that a finished merge made redundant is removed too.
    pub fn open(dir: &Path, mut each: impl FnMut(&[u8; N])) -> Result<Self, RunsError> {
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(|e| io(dir, e))? {
            let path = entry.map_err(|e| io(dir, e))?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_string();
            if name.ends_with(".tmp") {
                std::fs::remove_file(&path).map_err(|e| io(&path, e))?;
            } else if let Some((through, generation)) = Run::<N>::parse_name(&name) {
                found.push((generation, through, path));
            }
        }
        found.sort();
        let mut runs: Vec<Arc<Run<N>>> = Vec::new();
        for (generation, _, path) in found {
            runs.push(Arc::new(Run::open(path, generation, &mut each)?));
        }
        // A crash between a merge's output and the removal of its inputs leaves both: their
        // records then count once (lookups and ranges do not mind repeats), and the next merge
        // that takes the leftovers in drops the repeats.
        Ok(Self { dir: dir.to_path_buf(), runs: RwLock::new(runs) })
    }

    fn list(&self) -> Vec<Arc<Run<N>>> {
        self.runs.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The highest `through` of any run (0 when there is none): every record handed over up to
    /// that log sequence is on disk.
    pub fn through(&self) -> u64 {
        self.list().iter().map(|r| r.through).max().unwrap_or(0)
    }

    /// How many runs and records (records repeated across runs counted each time).
    pub fn size(&self) -> (usize, u64) {
        let runs = self.list();
        (runs.len(), runs.iter().map(|r| r.count).sum())
    }

    /// Writes `records` (any order, repeats allowed) as a new run covering the log up to
    /// `through`, then merges runs by size. An empty hand-over writes nothing.
    pub fn add_run(&self, mut records: Vec<[u8; N]>, through: u64) -> Result<(), RunsError> {
        if records.is_empty() {
            return Ok(());
        }
        records.sort_unstable();
        records.dedup();
        let generation = self.list().last().map_or(1, |r| r.generation + 1);
        let run = Run::write(&self.dir, through, generation, records.into_iter().map(Ok))?;
        self.runs.write().unwrap_or_else(|p| p.into_inner()).push(Arc::new(run));
        self.merge_by_size()
    }

    /// Merges the newest two runs while the newer is at least as large as the older.
    fn merge_by_size(&self) -> Result<(), RunsError> {
        loop {
            let runs = self.list();
            let [.., older, newer] = runs.as_slice() else { return Ok(()) };
            if newer.count < older.count {
                return Ok(());
            }
            let merged = self.merge(older, newer)?;
            {
                let mut list = self.runs.write().unwrap_or_else(|p| p.into_inner());
                let at = list.len() - 2;
                list.truncate(at);
                list.push(Arc::new(merged));
            }
            for input in [older, newer] {
                std::fs::remove_file(&input.path).map_err(|e| io(&input.path, e))?;
            }
            sync_dir(&self.dir)?;
        }
    }

    fn merge(&self, older: &Run<N>, newer: &Run<N>) -> Result<Run<N>, RunsError> {
        let (mut a, mut b) = (older.records(), newer.records());
        let (mut next_a, mut next_b) = (a.next_record()?, b.next_record()?);
        let merged = std::iter::from_fn(|| {
            let mut step = || -> Result<Option<[u8; N]>, RunsError> {
                let record = match (next_a, next_b) {
                    (None, None) => return Ok(None),
                    (Some(x), None) => {
                        next_a = a.next_record()?;
                        x
                    }
                    (None, Some(y)) => {
                        next_b = b.next_record()?;
                        y
                    }
                    (Some(x), Some(y)) => {
                        if x <= y {
                            next_a = a.next_record()?;
                        }
                        if y <= x {
                            next_b = b.next_record()?;
                        }
                        x.min(y)
                    }
                };
                Ok(Some(record))
            };
            step().transpose()
        });
        Run::write(&self.dir, older.through.max(newer.through), newer.generation + 1, merged)
    }

    /// Whether any run holds `key` (one block read per run whose range covers it).
    pub fn contains(&self, key: &[u8; N]) -> Result<bool, RunsError> {
        let mut buffer = Vec::with_capacity(BLOCK_BYTES);
        for run in self.list().iter().rev() {
            if run.contains(key, &mut buffer)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Every record that starts with `prefix`, sorted, each once.
    pub fn with_prefix(&self, prefix: &[u8]) -> Result<Vec<[u8; N]>, RunsError> {
        let prefix = &prefix[..prefix.len().min(N)];
        let mut out = Vec::new();
        let mut buffer = Vec::with_capacity(BLOCK_BYTES);
        for run in self.list().iter() {
            run.with_prefix(prefix, &mut out, &mut buffer)?;
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Every record of every run, in run order (repeats across runs included): for comparing two
    /// stores and for tests.
    pub fn for_each(&self, mut each: impl FnMut(&[u8; N])) -> Result<(), RunsError> {
        for run in self.list().iter() {
            let mut reader = run.records();
            while let Some(record) = reader.next_record()? {
                each(&record);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u64) -> [u8; 16] {
        let mut k = [0u8; 16];
        k[..8].copy_from_slice(&n.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
        k[8..].copy_from_slice(&n.to_be_bytes());
        k
    }

    #[test]
    fn lookups_find_every_record_handed_over_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let store = SortedRuns::<16>::open(dir.path(), |_| {}).unwrap();
        for batch in 0..10u64 {
            let records: Vec<_> = (batch * 1000..batch * 1000 + 1000).map(key).collect();
            store.add_run(records, batch + 1).unwrap();
        }
        let (runs, records) = store.size();
        assert_eq!(records, 10_000);
        assert!(runs <= 4, "{runs} runs after merging by size");
        assert_eq!(store.through(), 10);
        for n in (0..10_000).step_by(7) {
            assert!(store.contains(&key(n)).unwrap(), "{n}");
        }
        for n in 10_000..10_500 {
            assert!(!store.contains(&key(n)).unwrap(), "{n}");
        }
        // reopened: the same, and every record shown once to the opener
        drop(store);
        let mut seen = 0;
        let store = SortedRuns::<16>::open(dir.path(), |_| seen += 1).unwrap();
        assert_eq!(seen, 10_000);
        assert!(store.contains(&key(9_999)).unwrap());
    }

    #[test]
    fn a_prefix_range_gathers_its_records_across_runs_sorted_and_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = SortedRuns::<4>::open(dir.path(), |_| {}).unwrap();
        let record = |a: u8, b: u8, c: u16| {
            let [x, y] = c.to_be_bytes();
            [a, b, x, y]
        };
        // 3000 records per run across 256 prefixes; prefix (7, 7) gets three in each run
        for run in 0..3u16 {
            let mut records: Vec<_> = (0..3000u16).map(|i| record((i % 256) as u8, (i / 256) as u8, run)).collect();
            records.extend((0..3).map(|i| record(7, 7, 1000 + run * 10 + i)));
            records.push(record(7, 7, 1000)); // handed over again: counts once
            store.add_run(records, u64::from(run) + 1).unwrap();
        }
        let found = store.with_prefix(&[7, 7]).unwrap();
        let expected: Vec<_> = (0..3u16)
            .map(|run| record(7, 7, run))
            .chain((0..3).flat_map(|run| (0..3).map(move |i| record(7, 7, 1000 + run * 10 + i))))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(found, expected);
        assert!(store.with_prefix(&[255, 255]).unwrap().is_empty());
    }

    #[test]
    fn a_damaged_run_is_reported_and_a_torn_write_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = SortedRuns::<16>::open(dir.path(), |_| {}).unwrap();
        store.add_run((0..100).map(key).collect(), 1).unwrap();
        drop(store);
        std::fs::write(dir.path().join("run-00000000000000000002-00000000000000000009.tmp"), b"torn").unwrap();
        let store = SortedRuns::<16>::open(dir.path(), |_| {}).unwrap();
        assert_eq!(store.size(), (1, 100));
        assert!(!dir.path().join("run-00000000000000000002-00000000000000000009.tmp").exists());
        drop(store);
        let run = std::fs::read_dir(dir.path()).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&run).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&run, bytes).unwrap();
        let error = SortedRuns::<16>::open(dir.path(), |_| {}).unwrap_err();
        assert!(matches!(error, RunsError::Damaged { .. }), "{error}");
    }
}
