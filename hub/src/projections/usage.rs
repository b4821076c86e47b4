//! Usage: how many events of each type each principal published, per Swedish calendar day.

use chrono::NaiveDate;

use super::ProjectedEvent;

/// One principal's usage on one Swedish calendar day: a stored row (`usage/<day>/<principal>`),
/// which holds its counts per type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UsageDay {
    /// The Swedish calendar day.
    pub day: NaiveDate,
    /// The principal code.
    pub principal: String,
}

/// A row's counts per event type, sorted by type.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TypeCounts(pub Vec<(String, u64)>);

impl TypeCounts {
    /// Adds `added` to the count of `event_type`.
    pub fn add(&mut self, event_type: &str, added: u64) {
        match self.0.binary_search_by(|(t, _)| t.as_str().cmp(event_type)) {
            Ok(i) => self.0[i].1 += added,
            Err(i) => self.0.insert(i, (event_type.to_owned(), added)),
        }
    }
}

/// Counts added by a batch of events, per cell. The cells borrow the batch's envelopes: no
/// allocation per event, one [`UsageDay`] per distinct row when the batch is committed.
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

    /// Each touched row and what the batch added to it.
    pub fn into_rows(self) -> impl Iterator<Item = (UsageDay, TypeCounts)> + 'a {
        let mut rows: hashbrown::HashMap<(NaiveDate, &'a str), TypeCounts> = hashbrown::HashMap::new();
        for ((day, principal, event_type), added) in self.counts {
            rows.entry((day, principal)).or_default().add(event_type, added);
        }
        rows.into_iter().map(|((day, principal), counts)| (UsageDay { day, principal: principal.to_owned() }, counts))
    }
}

/// Every row's counts, in memory with the views (the read model also stores each row in sled, in
/// the batch that changes it, and they are loaded from there at start).
pub type UsageTotals = crate::store::sharded::ShardedMap<UsageDay, TypeCounts>;

/// The cells of `totals` with `from <= day <= to`, in no particular order.
pub fn cells_between(
    totals: &UsageTotals,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> Vec<crate::store::read_model::UsageCell> {
    let inside = |day: &NaiveDate| from.is_none_or(|from| *day >= from) && to.is_none_or(|to| *day <= to);
    totals
        .iter()
        .filter(|(row, _)| inside(&row.day))
        .flat_map(|(row, counts)| {
            counts.0.iter().map(|(event_type, count)| crate::store::read_model::UsageCell {
                day: row.day,
                principal: row.principal.clone(),
                event_type: event_type.clone(),
                count: *count,
            })
        })
        .collect()
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
        let rows: HashMap<UsageDay, TypeCounts> = delta.into_rows().collect();
        assert_eq!(rows.len(), 2);
        let key = |principal: &str| UsageDay {
            day: NaiveDate::from_ymd_opt(2026, 3, 2).unwrap(),
            principal: principal.into(),
        };
        let closed = |n: u64| TypeCounts(vec![("se.sgd.plans.plan.closed".into(), n)]);
        assert_eq!(rows.get(&key("1280")), Some(&closed(2)));
        assert_eq!(rows.get(&key("12")), Some(&closed(1)));
    }

    #[test]
    fn type_counts_stay_sorted_and_add_up() {
        let mut counts = TypeCounts::default();
        for (t, n) in [("se.sgd.sdk.message.sent", 2), ("se.sgd.npo.consent.given", 1), ("se.sgd.sdk.message.sent", 3)]
        {
            counts.add(t, n);
        }
        assert_eq!(
            counts,
            TypeCounts(vec![("se.sgd.npo.consent.given".into(), 1), ("se.sgd.sdk.message.sent".into(), 5)])
        );
    }
}
