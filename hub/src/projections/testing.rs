//! Given/when/then helpers for projection tests: events built from JSON, applied without I/O.

use serde_json::Value;
use sgd_schemas::{upcast, DomainEvent, Envelope};

use super::{DomainViews, ProjectedEvent};

/// An event of `event_type` from `principal` at `time` (RFC 3339) with `data`.
pub fn event(event_type: &str, principal: &str, time: &str, data: Value) -> (Envelope, DomainEvent) {
    let envelope = Envelope {
        id: format!("{event_type}-{time}-{data}"),
        source: format!("/principals/{principal}/systems/test"),
        event_type: event_type.into(),
        time: chrono::DateTime::parse_from_rfc3339(time).expect("test time"),
        subject: None,
        dataschema: None,
        principal: principal.into(),
        traceparent: None,
        data,
    };
    let decoded = upcast::decode(&envelope).expect("test event decodes");
    (envelope, decoded)
}

/// The views after `events`.
pub fn given(events: &[(Envelope, DomainEvent)]) -> DomainViews {
    let mut views = DomainViews::default();
    for (envelope, event) in events {
        views.apply(&ProjectedEvent::new(envelope, event));
    }
    views
}

/// A moment.
pub fn at(time: &str) -> sgd_schemas::events::Timestamp {
    chrono::DateTime::parse_from_rfc3339(time).expect("test time")
}

/// A 64-hex pseudonym made from a letter.
pub fn person(c: char) -> String {
    c.to_string().repeat(64)
}
