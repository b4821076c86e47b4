//! Publisher SDK for sgd-hub: typed domain events → CloudEvents JSON → NATS JetStream.
//!
//! # Layout
//! - [`cloudevent`]: a typed [`sgd_schemas::DomainEvent`] plus its metadata as a CloudEvent
//!   (built with the CloudEvents SDK) and its structured-mode JSON bytes.
//! - [`publisher`]: publishes to `sgd.in.<principal>.<area>` with `Nats-Msg-Id` = `<source>/<id>`,
//!   retrying with backoff; a pipelined variant for bulk loads.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use sgd_adapters::{cloudevent::{Draft, SourceSystem}, publisher::Publisher};
//! use sgd_schemas::events::sdk::AddressPublished;
//!
//! let client = async_nats::connect("nats://127.0.0.1:4222").await?;
//! let source = SourceSystem::new("1280", "treserva")?;
//! let publisher = Publisher::new(async_nats::jetstream::new(client), source);
//! let event = AddressPublished {
//!     unit: "SE2120001124-HT1".into(),
//!     function_address: "SE2120001124-FA1".into(),
//!     unit_kind: None,
//! };
//! publisher.publish(&Draft::now(event.into())).await?;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

pub mod cloudevent;
pub mod publisher;

pub use cloudevent::{Draft, SourceSystem};
pub use publisher::{PublishError, Publisher, RetryPolicy};
