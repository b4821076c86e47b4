//! The event log and what flows into and out of it on JetStream: the streams, the validator that
//! admits events, the dead letters it refuses, NATS request/reply ingest, replaying dead letters,
//! and following the streams live.
//!
//! - [`streams`]: the JetStream streams, created or updated at start; the dedup header.
//! - [`validator`]: `SGD_INGRESS` → `SGD_EVENTS` or `SGD_DLQ`.
//! - [`dead_letter`]: what a refused event looks like in `SGD_DLQ`.
//! - [`ingest_requests`]: NATS request/reply ingest (`sgd.ingest.<principal>.<area>`), answered at once.
//! - [`replay`]: dead letters validated again and, when they pass, logged; counted by reason.
//! - [`tail`]: following `SGD_EVENTS` or `SGD_DLQ` live, filtered, one summary per message.

pub mod dead_letter;
pub mod ingest_requests;
pub mod replay;
pub mod streams;
pub mod tail;
pub mod validator;
