//! Usage: how many events of each type each principal published, per Swedish calendar day.

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

/// Counts added by a batch of events, per cell. The cells borrow the batch's envelopes: no
/// allocation per event, one [`UsageKey`] per distinct cell when the batch is committed.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct UsageDelta<'a> {
    /// Added count per (day, principal, type).
    counts: hashbrown::HashMap<(NaiveDate, &'a str, &'a str), u64>,
}

impl<'a> UsageDelta<'a> {
    /// Counts one event.
    pub fn apply(&mut self, event: &ProjectedEvent<'a>) {
        let envelope = event.envelope;
        *self.counts.entry((event.day, envelope.principal.as_str(), envelope.event_type.as_str())).or_default() += 1;
    }

    /// Each touched cell and what the batch added to it.
    pub fn into_cells(self) -> impl Iterator<Item = (UsageKey, u64)> + 'a {
        self.counts.into_iter().map(|((day, principal, event_type), added)| {
            (UsageKey { day, principal: principal.to_owned(), event_type: event_type.to_owned() }, added)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sgd_schemas::{events::plans::PlanClosed, DomainEvent, Envelope};
    use std::collections::HashMap;

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
        // 23:30 UTC on 1 March is 00:30 on 2 March in Sweden (CET, +01:00).
        let envelopes = [
            envelope("2026-03-01T23:30:00Z", "1280"),
            envelope("2026-03-02T08:00:00+01:00", "1280"),
            envelope("2026-03-02T08:00:00+01:00", "12"),
        ];
        let mut delta = UsageDelta::default();
        for e in &envelopes {
            delta.apply(&ProjectedEvent::new(e, &event));
        }
        let cells: HashMap<UsageKey, u64> = delta.into_cells().collect();
        assert_eq!(cells.len(), 2);
        let key = |principal: &str| UsageKey {
            day: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            principal: principal.into(),
            event_type: "se.sgd.plans.plan.closed".into(),
        };
        assert_eq!(cells.get(&key("1280")), Some(&2));
        assert_eq!(cells.get(&key("12")), Some(&1));
    }
}
