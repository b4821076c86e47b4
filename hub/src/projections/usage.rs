//! Usage: how many events of each type each principal published, per Swedish calendar day.

use std::collections::HashMap;

use chrono::NaiveDate;

use super::ProjectedEvent;

/// One usage cell.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageKey {
    /// The Swedish calendar day.
    pub day: NaiveDate,
    /// The principal code.
    pub principal: String,
    /// The event type.
    pub event_type: String,
}

/// Counts added by a batch of events, per cell.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UsageDelta {
    /// Added count per cell.
    pub counts: HashMap<UsageKey, u64>,
}

impl UsageDelta {
    /// Counts one event.
    pub fn apply(&mut self, event: &ProjectedEvent<'_>) {
        let key = UsageKey {
            day: event.day,
            principal: event.envelope.principal.clone(),
            event_type: event.envelope.event_type.clone(),
        };
        *self.counts.entry(key).or_default() += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgd_schemas::{events::plans::PlanClosed, DomainEvent, Envelope};

    fn envelope(time: &str, principal: &str) -> Envelope {
        Envelope {
            id: "1".into(),
            source: format!("/principals/{principal}/systems/x"),
            event_type: "se.sgd.plans.plan.closed".into(),
            time: chrono::DateTime::parse_from_rfc3339(time).unwrap(),
            subject: None,
            dataschema: None,
            principal: principal.into(),
            traceparent: None,
            data: serde_json::json!({"plan_id": "p"}),
        }
    }

    #[test]
    fn given_nothing_when_events_arrive_then_they_count_per_swedish_day() {
        let event = DomainEvent::from(PlanClosed { plan_id: "p".into() });
        let mut delta = UsageDelta::default();
        // 23:30 UTC on 1 March is 00:30 on 2 March in Sweden (CET, +01:00).
        for (time, principal) in [
            ("2026-03-01T23:30:00Z", "1280"),
            ("2026-03-02T08:00:00+01:00", "1280"),
            ("2026-03-02T08:00:00+01:00", "12"),
        ] {
            let e = envelope(time, principal);
            delta.apply(&ProjectedEvent::new(&e, &event));
        }
        let key = |principal: &str| UsageKey {
            day: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            principal: principal.into(),
            event_type: "se.sgd.plans.plan.closed".into(),
        };
        assert_eq!(delta.counts.get(&key("1280")), Some(&2));
        assert_eq!(delta.counts.get(&key("12")), Some(&1));
        assert_eq!(delta.counts.len(), 2);
    }
}
