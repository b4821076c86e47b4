//! sgd-hub: the event-sourced integration hub for the shared digital services of Skåne's 34
//! care principals.
//!
//! # Layout
//! - [`config`]: the one typed configuration (file, `HUB_*` environment, flags).
//! - [`server`]: starts and runs the hub (NATS connection, TLS, the parts as tasks); the
//!   demo's embedded `nats-server`.
//! - [`log`]: the streams, the validator, dead letters and their replay, NATS ingest, tail.
//! - [`projections`]: pure projections (one module per view), tested without I/O.
//! - [`projection`]: the runner that feeds the projections from the log, and the rebuild.
//! - [`store`]: the sled read model, the views' snapshot and journal, the applied identities.
//! - [`routing`]: who an event concerns, and the router that copies it to `SGD_ROUTED` for them.
//! - [`webhooks`]: subscriptions and their signed, retried, ordered HTTP deliveries.
//! - [`api`]: the HTTP API (axum).
//! - [`bench`]: the pipeline benchmark against raw JetStream (`cargo bench -p sgd-hub --bench pipeline`).
//! - [`tokens`]: hashed API tokens and roles.
//! - [`metrics`]: Prometheus metrics.
//! - [`nats_config`]: `hub nats-config`: per-principal nkey users for `nats-server`.
//! - [`demo`]: `hub demo`: a sample of every event type for several principals.
//! - [`offline`]: `hub validate FILE…`.
//! - [`privacy`]: small-count suppression in statistics about persons.
//! - [`cli`]: the `hub` command line, and the operator commands run against a live hub's API.
//! - [`telemetry`]: logs, and the pipeline's spans over OTLP when configured.
#![deny(missing_docs)]

pub mod api;
pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod log;
pub mod metrics;
pub mod nats_config;
pub mod offline;
pub mod privacy;
pub mod projection;
pub mod projections;
pub mod routing;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod webhooks;
