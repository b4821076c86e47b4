//! Publisher SDK for sgd-hub: typed domain events → CloudEvents JSON → NATS JetStream.
//!
//! # Layout
//! - [`cloudevent`]: a typed [`sgd_schemas::DomainEvent`] plus its metadata as a CloudEvent
//!   (built with the CloudEvents SDK) and its structured-mode JSON bytes.
//! - [`pseudonym`]: keyed HMAC-SHA256 pseudonyms of personal identity numbers; the number never
//!   leaves the adapter.
//! - [`publisher`]: publishes to `sgd.in.<principal>.<area>` with `Nats-Msg-Id` = `<source>/<id>`,
//!   retrying with backoff; a pipelined variant for bulk loads.
//! - [`fhir`]: HL7 FHIR R4 JSON input (a resource or a Bundle), person resolution and
//!   pseudonymisation, per-resource [`fhir::MappingError`]s; [`tabular`]: CSV input.
//! - One module per area mapping its native inputs into the catalogue's events: [`npo`] (Consent,
//!   AuditEvent, role CSV), [`sdk`] (Communication, address CSV), [`plans`] (CarePlan, Encounter),
//!   [`decision`] (vital-signs Observation with NEWS2 (RCP 2017), RiskAssessment), [`deviation`]
//!   (AdverseEvent, history CSV), [`video`] (Appointment).
//! - [`ingest`]: an adapter for one area: file, directory, watched directory or webhook input,
//!   mapped and enqueued in the outbox (the `adapter` binary is a thin shell around it).
//! - [`simulator`]: seeded, realistic load for the 34 principals across all six areas, as typed
//!   events or as native inputs through the real mappings.
//! - [`outbox`]: the durable outbox in sled and [`OutboxPublisher`], which writes events to local
//!   disk before sending and removes them only when JetStream has acknowledged them.
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
pub mod decision;
pub mod deviation;
pub mod fhir;
pub mod ingest;
pub mod npo;
pub mod outbox;
pub mod plans;
pub mod pseudonym;
pub mod publisher;
pub mod sdk;
pub mod simulator;
pub mod tabular;
pub mod video;

pub use cloudevent::{Draft, SourceSystem};
pub use outbox::{Outbox, OutboxPublisher};
pub use publisher::{PublishError, Publisher, RetryPolicy};
