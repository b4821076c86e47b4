//! Feeding the pure projections from the log: the runner that reads `SGD_EVENTS` and commits the
//! read model exactly once, and the rebuild that replays the log into a new read model beside
//! the served one.
//!
//! - [`runner`]: the projection runner, `SGD_EVENTS` → the read model, exactly once.
//! - [`rebuild`]: the read model rebuilt from the log beside the served one, then swapped or compared.

pub mod rebuild;
pub mod runner;
