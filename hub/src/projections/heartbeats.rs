//! The adapters' heartbeats: which adapter of which principal was last heard from when, so
//! operators see a silent adapter (`hub status`, the `sgd_adapter_heartbeat_age_seconds` metric).

use serde::{Deserialize, Serialize};
use sgd_schemas::events::Timestamp;

use super::{ids::Text, table::StoredTable, table::Table, ProjectedEvent, View};

/// The last heartbeat of one adapter.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Heartbeat {
    /// The principal.
    pub principal: Text,
    /// The adapter's name.
    pub adapter: Text,
    /// Its version.
    pub version: Text,
    /// When it was last heard from (the newest heartbeat time seen).
    pub last_seen: Option<Timestamp>,
}

/// Heartbeats by `<principal>/<adapter>`.
#[derive(Debug, Clone)]
pub struct HeartbeatView {
    /// The newest heartbeat of each adapter.
    pub adapters: Table<Heartbeat>,
}

impl Default for HeartbeatView {
    fn default() -> Self {
        Self { adapters: Table::new("v/hub/heartbeat/") }
    }
}

impl View for HeartbeatView {
    /// Applies one event (only heartbeats matter).
    fn apply(&mut self, e: &ProjectedEvent<'_>) {
        let sgd_schemas::DomainEvent::HubAdapterHeartbeat(beat) = e.event else { return };
        let key = format!("{}/{}", e.envelope.principal, beat.adapter);
        let at = e.envelope.time;
        let record = self.adapters.entry(key.as_str());
        // Heartbeats may arrive out of order (an outbox drained after an outage): keep the newest.
        if record.last_seen.is_none_or(|seen| at >= seen) {
            *record = Heartbeat {
                principal: e.envelope.principal.as_str().into(),
                adapter: beat.adapter.as_str().into(),
                version: beat.version.as_str().into(),
                last_seen: Some(at),
            };
        }
    }

    fn tables(&self) -> Vec<&dyn StoredTable> {
        vec![&self.adapters]
    }

    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        vec![&mut self.adapters]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::projections::testing::{at, event, given};

    #[test]
    fn the_newest_heartbeat_of_each_adapter_is_kept_even_when_an_older_one_arrives_later() {
        let beat = |principal: &str, adapter: &str, version: &str, time: &str| {
            event("se.sgd.hub.adapter.heartbeat", principal, time, json!({"adapter": adapter, "version": version}))
        };
        let views = given(&[
            beat("1280", "npo-cosmic", "0.2.0", "2026-03-02T10:00:00+01:00"),
            beat("1280", "npo-cosmic", "0.1.0", "2026-03-02T09:00:00+01:00"),
            beat("1281", "npo-cosmic", "0.1.0", "2026-03-02T09:30:00+01:00"),
        ]);
        let malmo = views.heartbeats.adapters.get("1280/npo-cosmic").unwrap();
        assert_eq!(malmo.last_seen, Some(at("2026-03-02T10:00:00+01:00")));
        assert_eq!(malmo.version, "0.2.0");
        assert_eq!(views.heartbeats.adapters.len(), 2);
    }
}
