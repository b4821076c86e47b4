//! The sgd-hub event contract, enforced.
//!
//! # Layout
//! - [`catalogue`]: every published event type and version, with its JSON Schema (embedded from
//!   `schemas/json/` at build time).
//! - [`principals`]: the 34 care principals (huvudmän) of Skåne and their codes.
//! - [`envelope`]: the CloudEvents 1.0 envelope as we require it, read from wire JSON.
//! - [`pii`]: the guard against Swedish personal identity and coordination numbers, and redaction.
//! - [`validate`]: the one validation function every entry point uses, and its [`Rejection`].
//! - [`subjects`]: the NATS subjects of the ingress, the log and the dead-letter stream.
//! - [`events`]: typed domain events, one module per area, and the [`events::DomainEvent`] enum.
//! - [`upcast`]: turns every published version of a type into the newest shape.
//!
//! This crate does no I/O.
#![deny(missing_docs)]

pub mod catalogue;
pub mod envelope;
pub mod events;
pub mod pii;
pub mod principals;
pub mod subjects;
pub mod upcast;
pub mod validate;

pub use envelope::Envelope;
pub use events::DomainEvent;
pub use validate::{validate, Problem, RejectReason, Rejection, ValidatedEvent, ValidationContext};
