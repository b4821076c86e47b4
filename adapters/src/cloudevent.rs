//! Typed events as CloudEvents 1.0 in JSON structured mode.

use chrono::{DateTime, FixedOffset, Utc};
use cloudevents::{EventBuilder, EventBuilderV10};
use sgd_schemas::{
    catalogue::{Catalogue, TypeName},
    envelope, principals, DomainEvent,
};

/// Why an event could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The principal code is not one of the 34 → fix the adapter's configuration.
    #[error("principal {0:?} is not one of the 34 principals of Skåne")]
    UnknownPrincipal(String),
    /// The system name does not fit in a source → use letters, digits, `-`, `_`, `.` only.
    #[error("system name {0:?} must be 1–64 letters, digits, '-', '_' or '.'")]
    BadSystemName(String),
    /// The CloudEvents SDK refused the event (a bug in this crate).
    #[error("the CloudEvents SDK refused the event: {0}")]
    CloudEvent(String),
}

/// The local system an adapter speaks for: `/principals/<principal>/systems/<system>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceSystem {
    principal: String,
    system: String,
}

impl SourceSystem {
    /// A source for `system` of `principal`.
    pub fn new(principal: &str, system: &str) -> Result<Self, BuildError> {
        if !principals::is_known(principal) {
            return Err(BuildError::UnknownPrincipal(principal.to_string()));
        }
        let source = format!("/principals/{principal}/systems/{system}");
        if envelope::parse_source(&source).is_none() {
            return Err(BuildError::BadSystemName(system.to_string()));
        }
        Ok(Self { principal: principal.to_string(), system: system.to_string() })
    }

    /// The principal code.
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// The CloudEvents `source`.
    pub fn source(&self) -> String {
        format!("/principals/{}/systems/{}", self.principal, self.system)
    }
}

/// An event ready to be published: the domain event and its envelope metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    /// Unique per source; retries must reuse it (it is the dedup key).
    pub id: String,
    /// When it happened in the local system.
    pub time: DateTime<FixedOffset>,
    /// The case the event is about; defaults to the event's case id (see [`default_subject`]).
    pub subject: Option<String>,
    /// W3C trace context, if the local system has one.
    pub traceparent: Option<String>,
    /// The event.
    pub event: DomainEvent,
}

impl Draft {
    /// A draft with a fresh UUID, the current time and the default subject.
    pub fn now(event: DomainEvent) -> Self {
        Self::at(uuid::Uuid::new_v4().to_string(), Utc::now().fixed_offset(), event)
    }

    /// A draft with the given id and time and the default subject.
    pub fn at(id: String, time: DateTime<FixedOffset>, event: DomainEvent) -> Self {
        let subject = default_subject(&event);
        Self { id, time, subject, traceparent: None, event }
    }

    /// The area of the event, e.g. `plans`.
    pub fn area(&self) -> &'static str {
        TypeName::parse(self.event.event_type()).map(|t| t.area).unwrap_or("hub")
    }

    /// The event as a CloudEvent from `source`, with `dataschema` naming the newest version.
    pub fn to_cloudevent(&self, source: &SourceSystem) -> Result<cloudevents::Event, BuildError> {
        let event_type = self.event.event_type();
        let version = Catalogue::get().newest_version(event_type).unwrap_or(1);
        let urn = TypeName::parse(event_type).map(|t| t.schema_urn(version)).unwrap_or_default();
        let mut builder = EventBuilderV10::new()
            .id(self.id.clone())
            .source(source.source())
            .ty(event_type)
            .time(self.time.with_timezone(&Utc))
            .extension("principal", source.principal().to_string())
            .data_with_schema("application/json", urn.as_str(), self.event.data_json());
        if let Some(subject) = &self.subject {
            builder = builder.subject(subject.clone());
        }
        if let Some(traceparent) = &self.traceparent {
            builder = builder.extension("traceparent", traceparent.clone());
        }
        builder.build().map_err(|e| BuildError::CloudEvent(e.to_string()))
    }

    /// The event as CloudEvents JSON (structured mode), the bytes that go on the wire.
    pub fn to_json(&self, source: &SourceSystem) -> Result<Vec<u8>, BuildError> {
        let event = self.to_cloudevent(source)?;
        serde_json::to_vec(&event).map_err(|e| BuildError::CloudEvent(e.to_string()))
    }
}

/// The case an event is about: its plan, message, meeting, deviation, assessment or flag id; the
/// unit for role and address events; the adapter for heartbeats.
pub fn default_subject(event: &DomainEvent) -> Option<String> {
    let data = event.data_json();
    ["plan_id", "message_id", "meeting_id", "deviation_id", "assessment_id", "flag_id", "unit", "person", "adapter"]
        .iter()
        .find_map(|key| data.get(key).and_then(|v| v.as_str()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgd_schemas::{events::plans::PlanClosed, subjects, validate, ValidationContext};

    #[test]
    fn a_draft_becomes_a_valid_event() {
        let source = SourceSystem::new("1280", "treserva").unwrap();
        let draft = Draft::now(PlanClosed { plan_id: "svu-1".into() }.into());
        let bytes = draft.to_json(&source).unwrap();
        let subject = subjects::ingress("1280", draft.area());
        let event = validate(&bytes, &ValidationContext::from_ingress_subject(&subject, 1 << 20)).unwrap();
        assert_eq!(event.envelope.subject.as_deref(), Some("svu-1"));
        assert_eq!(event.envelope.principal, "1280");
    }

    #[test]
    fn bad_sources_are_refused() {
        assert!(matches!(SourceSystem::new("9999", "x"), Err(BuildError::UnknownPrincipal(_))));
        assert!(matches!(SourceSystem::new("1280", "a/b"), Err(BuildError::BadSystemName(_))));
    }
}
