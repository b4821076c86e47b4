//! What operators run against a live hub: following the streams ([`tail`]), replaying dead
//! letters ([`dlq`]), and the `hub tail|status|dlq|rebuild` commands ([`commands`]) that use the
//! hub's API through [`client`].

pub mod client;
pub mod commands;
pub mod dlq;
pub mod subscriptions;
pub mod tail;
