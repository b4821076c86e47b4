//! The hub's own events.

use serde::{Deserialize, Serialize};

/// `se.sgd.hub.adapter.heartbeat`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterHeartbeat {
    /// The adapter's name.
    pub adapter: String,
    /// Its version.
    pub version: String,
}
