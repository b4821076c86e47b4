//! What the read model keeps on disk beside sled: records that grow with the log.

pub mod applied_identities;
pub mod sorted_runs;
pub mod timeline_runs;

pub use crate::digest_set;
