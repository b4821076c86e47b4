//! Routing: who an event of the log concerns, and its delivery to them.
//!
//! # Layout
//! - [`rules`]: the routing rules, one module per area: pure functions of (state, event) →
//!   recipients, tested given/when/then (the table is `docs/routing.md`).
//! - [`state`]: what the rules remember between events (units' principals, open plans,
//!   deviations, messages, meetings), kept in the store; memory holds a batch's changes.
//! - [`store`]: that state and the router's checkpoint in sled (the rules read entries from it;
//!   a batch's changes are written with its checkpoint in one batch).
//! - [`router`]: the runner: `SGD_EVENTS` → `SGD_ROUTED` (`sgd.to.<recipient>.<area>.<entity>.<action>`),
//!   the same bytes and headers, each copy with its own `Nats-Msg-Id`.

pub mod router;
pub mod rules;
pub mod state;
pub mod store;

pub use rules::route;
pub use state::RoutingState;

/// The header a routed copy carries with the log sequence of the event it copies.
pub const LOG_SEQUENCE_HEADER: &str = "Sgd-Log-Sequence";

/// The `Nats-Msg-Id` of the copy of a logged event (whose own is `log_msg_id`) for `recipient`:
/// each recipient's copy is a message of its own in `SGD_ROUTED`, deduplicated on its own.
pub fn routed_msg_id(log_msg_id: &str, recipient: &str) -> String {
    format!("{log_msg_id}>{recipient}")
}
