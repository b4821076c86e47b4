//! Which principals have published each event type, and since when: the principal goals
//! ("principals that have published any Mina Planer event", …) as of any day, without reading the
//! usage counters.

use super::{
    goals::PublishersByType,
    ids::{PrincipalCode, Principals},
    moment::Moment,
    table::StoredTable,
    table::Table,
};
use super::{ProjectedEvent, View};

/// Each type's publishers with the time of their first event of it.
#[derive(Debug, Clone)]
pub struct PublishersView {
    /// By event type: (principal, earliest event), by principal.
    pub first: Table<Vec<(PrincipalCode, Moment)>>,
}

impl Default for PublishersView {
    fn default() -> Self {
        Self { first: Table::new("v/usage/first/") }
    }
}

impl PublishersView {
    /// Which principals had published each type by the end of the Swedish day `day` (as the
    /// usage counters would say).
    pub fn until(&self, day: chrono::NaiveDate) -> PublishersByType<'_> {
        // The next Swedish day's first moment, once, rather than each first event's day (a
        // time-zone lookup each, ~1,400 per goals answer: 6,000 → 6,250 answers/s of each under
        // the bench's query load, docs/performance.md, "Queries").
        let next_day_starts = day.succ_opt().and_then(|next| {
            chrono::TimeZone::from_local_datetime(&chrono_tz::Europe::Stockholm, &next.and_time(chrono::NaiveTime::MIN))
                .earliest()
                .and_then(|t| t.timestamp_nanos_opt())
        });
        let by_the_end = |first: &Moment| match next_day_starts {
            Some(next) => first.nanos() < next,
            None => first.swedish_day() <= day,
        };
        let mut publishers = PublishersByType::new();
        for (event_type, firsts) in self.first.iter() {
            let by: Principals =
                firsts.iter().filter(|(_, first)| by_the_end(first)).map(|(principal, _)| *principal).collect();
            if !by.is_empty() {
                publishers.insert(event_type, by);
            }
        }
        publishers
    }
}

impl View for PublishersView {
    fn apply(&mut self, e: &ProjectedEvent<'_>) {
        let Some(principal) = PrincipalCode::parse(&e.envelope.principal) else { return };
        let event_type = e.envelope.event_type.as_str();
        let known = self.first.get(event_type).and_then(|firsts| firsts.iter().find(|(p, _)| *p == principal).copied());
        if known.is_some_and(|(_, first)| first <= e.at) {
            return;
        }
        let firsts = self.first.entry(event_type);
        match firsts.binary_search_by_key(&principal, |(p, _)| *p) {
            Ok(i) => firsts[i].1 = e.at,
            Err(i) => super::exact::insert(firsts, i, (principal, e.at)),
        }
    }

    fn tables(&self) -> Vec<&dyn StoredTable> {
        vec![&self.first]
    }

    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        vec![&mut self.first]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::projections::testing::{event, given};

    #[test]
    fn a_principal_publishes_a_type_from_the_swedish_day_of_its_earliest_event() {
        let booked = |principal: &str, time: &str| {
            event(
                "se.sgd.video.meeting.booked",
                principal,
                time,
                json!({"meeting_id": format!("m-{time}"), "purpose": "sip", "principals": [principal]}),
            )
        };
        // 23:30 UTC on 1 March is 2 March in Sweden; the later event arrives first
        let views = given(&[booked("1280", "2026-03-05T10:00:00+01:00"), booked("1280", "2026-03-01T23:30:00Z")]);
        let day = |d: &str| d.parse().unwrap();
        assert!(views.publishers.until(day("2026-03-01")).is_empty());
        let on_the_2nd = views.publishers.until(day("2026-03-02"));
        assert_eq!(on_the_2nd["se.sgd.video.meeting.booked"].iter().map(|p| p.as_str()).collect::<Vec<_>>(), ["1280"]);
    }
}
