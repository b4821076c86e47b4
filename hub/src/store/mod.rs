//! What the hub keeps on its own disk: the sled read model, the views' snapshot and journal
//! files beside it, and the in-memory sets and maps the projection runner fills from them.
//!
//! - [`read_model`]: the sled read model (checkpoint, counters, applied identities) and its directories.
//! - [`views_store`]: the views' records between runs, a snapshot plus a journal.
//! - [`digest_set`]: the applied identities, 16 bytes each.
//! - [`sharded`]: hash maps and sets in shards, so that growing one never rehashes everything.
//! - [`sorted_runs`]: records that grow with the log, in sorted files read a block at a time.
//! - [`applied_identities`]: the applied identities beyond the newest, on disk behind a filter.
//! - [`timeline_runs`]: the persons' timeline entries beyond the newest, on disk.
//! - [`record_runs`]: view records beyond the views' budget, on disk, read back on demand.

pub mod applied_identities;
pub mod digest_set;
pub mod read_model;
pub mod record_runs;
pub mod sharded;
pub mod sorted_runs;
pub mod timeline_runs;
pub mod views_store;

use std::time::Duration;

/// Syncs a directory, so that a file just renamed into it stays there after a crash.
pub fn sync_dir(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// Opens a sled database, waiting up to 5 s for its file lock. A database closed a moment ago in
/// this process may still hold the lock while its background flusher finishes, so a read model
/// reopened right after a drop (a restart in the suite, a rebuild swapped in) would otherwise
/// fail with "could not acquire lock".
pub fn open_sled(config: &sled::Config) -> sled::Result<sled::Db> {
    let mut attempts = 0;
    loop {
        match config.open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") && attempts < 100 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
