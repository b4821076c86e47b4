//! Feeding the pure projections from the log: the runner that reads `SGD_EVENTS` and commits the
//! read model exactly once, and the rebuild that replays the log into a new read model beside
//! the served one.
//!
//! - [`runner`]: the projection runner, `SGD_EVENTS` → the read model, exactly once.
//! - [`catch_up`]: the log replayed without the live runner (a rebuild, the views at start).
//! - `consumer`: the log consumers, and how the live one notices that it broke.
//! - `batch`: one batch decoded, applied and committed; the views' writes beside the batches.
//! - [`rebuild`]: the read model rebuilt from the log beside the served one, then swapped or compared.

mod batch;
pub mod catch_up;
mod consumer;
pub mod rebuild;
pub mod runner;
