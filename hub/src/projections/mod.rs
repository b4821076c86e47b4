//! Pure projections: functions of (view, event) with no I/O, tested given/when/then.
//!
//! The [`crate::projection::runner`] feeds them from `SGD_EVENTS` and commits what they change to the read
//! model. Every projection sees events in the newest shape of their type (see
//! [`sgd_schemas::upcast`]).

pub mod aggregates;
#[cfg(test)]
mod bounded_tests;
pub mod contributions;
pub mod decision;
pub mod deviation;
pub mod exact;
pub mod followup;
pub mod goals;
pub mod heartbeats;
pub mod ids;
pub mod moment;
pub mod npo;
pub mod plans;
pub mod publishers;
#[cfg(test)]
pub mod reference;
pub mod sdk;
pub mod table;
#[cfg(test)]
pub mod testing;
pub mod usage;
pub mod video;

use chrono::NaiveDate;
use chrono_tz::Europe::Stockholm;
use serde::{Deserialize, Serialize};
use sgd_schemas::{DomainEvent, Envelope};
use table::{EncodedRecords, StoredTable};

/// An event as projections see it.
pub struct ProjectedEvent<'a> {
    /// The envelope (attributes and data as published).
    pub envelope: &'a Envelope,
    /// The data in the newest shape, typed.
    pub event: &'a DomainEvent,
    /// When it happened (the envelope's time), as the views keep it.
    pub at: moment::Moment,
    /// The calendar day in Sweden (Europe/Stockholm) when it happened.
    pub day: NaiveDate,
}

impl<'a> ProjectedEvent<'a> {
    /// Wraps an event, computing its Swedish calendar day.
    pub fn new(envelope: &'a Envelope, event: &'a DomainEvent) -> Self {
        Self { envelope, event, at: envelope.time.into(), day: swedish_day(envelope) }
    }
}

/// The calendar day in Sweden when the event happened: statistics follow the Swedish day whatever
/// offset the local system wrote.
pub fn swedish_day(envelope: &Envelope) -> NaiveDate {
    envelope.time.with_timezone(&Stockholm).date_naive()
}

/// One area's view: what it makes of the events, and the tables it keeps them in. The projection
/// runner applies every event to every view and stores every view's tables, so a view that gains a
/// table lists it in its own [`View::tables`] and [`View::tables_mut`], and nowhere else.
pub trait View {
    /// Applies one event (a view ignores what is not its own).
    fn apply(&mut self, event: &ProjectedEvent<'_>);

    /// The view's tables, in a fixed order (the order they are stored in).
    fn tables(&self) -> Vec<&dyn StoredTable>;

    /// The view's tables, mutable, in the order of [`View::tables`].
    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable>;
}

/// Keys of view records by table prefix.
pub type LeavingKeys = Vec<(&'static str, Vec<String>)>;

/// View records leaving memory ([`DomainViews::leaving`]).
#[derive(Debug)]
pub struct Leaving {
    /// As the disk keeps them (key, encoded record or `None` for a removal).
    pub records: Vec<(Vec<u8>, crate::store::record_runs::Stored)>,
    /// Their keys by table prefix, to forget once they are on disk.
    pub keys: LeavingKeys,
    /// The batch they were read in ([`DomainViews::tick`]): a record changed after it stays.
    pub batch: u32,
}

/// How many days of the aggregates stay in memory (the most recently changed): a day's record
/// holds every contribution stamped in it (~60 KB at a million events a year).
pub const DAYS_IN_MEMORY: usize = 62;

/// Each person's events as (time in nanoseconds, log sequence), sorted.
pub type Timelines = table::Table<Vec<(i64, u64)>, ids::PersonId>;

/// Every view of the domain, in memory; the projection runner persists what changes.
#[derive(Debug, Clone)]
pub struct DomainViews {
    /// NPÖ roles and consents.
    pub npo: npo::NpoView,
    /// SDK addresses and messages.
    pub sdk: sdk::SdkView,
    /// Mina Planer plans.
    pub plans: plans::PlansView,
    /// Raised scores and risk flags.
    pub decision: decision::DecisionView,
    /// Deviations.
    pub deviation: deviation::DeviationView,
    /// Video meetings.
    pub video: video::VideoView,
    /// The adapters' last heartbeats.
    pub heartbeats: heartbeats::HeartbeatView,
    /// Which principals have published each type since when.
    pub publishers: publishers::PublishersView,
    /// Each person's newest events as (time in nanoseconds, log sequence), sorted: references
    /// into the log, which the timeline endpoint reads. Older ones are handed over to the read
    /// model's timeline runs on disk ([`DomainViews::take_timeline_entries`]).
    pub timelines: Timelines,
    /// The goals' and follow-up rules' counts per day, kept up to date by [`DomainViews::apply`].
    pub aggregates: aggregates::Aggregates,
    /// The usage counters: loaded from the read model's rows and added to by the projection
    /// runner with each batch (stored in sled with the checkpoint, not in the views' files).
    pub usage: usage::UsageTotals,
    /// The log sequence these views reflect: set by loading them and by the projection runner
    /// whenever it brings them up to a checkpoint (a batch, a replay).
    pub applied_through: u64,
    /// Timeline entries added since the views were loaded or last handed their entries over (a
    /// count, not stored: after a restart the entries loaded with the views are not counted
    /// until the next hand-over takes them along).
    timeline_entries: usize,
    /// Reused buffers of [`DomainViews::apply`].
    scratch: Scratch,
    /// The current batch's number ([`DomainViews::tick`]; every table counts the same).
    batch: u32,
}

/// The buffers [`DomainViews::apply`] reuses from event to event.
#[derive(Debug, Clone, Default)]
struct Scratch {
    touched: Vec<contributions::CaseRef>,
    before: Vec<aggregates::Contribution>,
    after: Vec<aggregates::Contribution>,
}

impl Default for DomainViews {
    fn default() -> Self {
        Self {
            npo: Default::default(),
            sdk: Default::default(),
            plans: Default::default(),
            decision: Default::default(),
            deviation: Default::default(),
            video: Default::default(),
            heartbeats: Default::default(),
            publishers: Default::default(),
            timelines: table::Table::new("v/timeline/"),
            aggregates: Default::default(),
            usage: Default::default(),
            applied_through: 0,
            timeline_entries: 0,
            scratch: Default::default(),
            batch: 0,
        }
    }
}

impl DomainViews {
    /// The area views, in the order their tables are stored in.
    fn views(&self) -> [&dyn View; 8] {
        [
            &self.npo,
            &self.sdk,
            &self.plans,
            &self.decision,
            &self.deviation,
            &self.video,
            &self.heartbeats,
            &self.publishers,
        ]
    }

    /// The area views, mutable, in the order of [`DomainViews::views`], and the timelines and
    /// aggregates beside them (borrowed together, since the caller holds them all).
    fn parts_mut(&mut self) -> ([&mut dyn View; 8], &mut Timelines, &mut aggregates::Aggregates) {
        let Self {
            npo,
            sdk,
            plans,
            decision,
            deviation,
            video,
            heartbeats,
            publishers,
            timelines,
            aggregates,
            usage: _,
            applied_through: _,
            timeline_entries: _,
            scratch: _,
            batch: _,
        } = self;
        ([npo, sdk, plans, decision, deviation, video, heartbeats, publishers], timelines, aggregates)
    }

    /// Applies one event to every view (each ignores what is not its own), and the difference it
    /// makes to the cases' contributions to the aggregates.
    pub fn apply(&mut self, event: &ProjectedEvent<'_>) {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.touched.clear();
        contributions::touched(event, self, &mut scratch.touched);
        let limits = *self.aggregates.limits();
        scratch.before.clear();
        for case in &scratch.touched {
            contributions::of(case, self, &limits, &mut scratch.before);
        }
        for view in self.parts_mut().0 {
            view.apply(event);
        }
        scratch.after.clear();
        for case in &scratch.touched {
            contributions::of(case, self, &limits, &mut scratch.after);
        }
        self.aggregates.replace(&mut scratch.before, &mut scratch.after);
        self.scratch = scratch;
    }

    /// Empty views whose aggregates count with `limits`.
    pub fn counting_with(limits: followup::FollowupLimits) -> Self {
        let mut views = Self::default();
        views.count_with(limits);
        views
    }

    /// Sets the follow-up limits the aggregates count with. When the views were counted with
    /// other limits (or before they held aggregates), the aggregates are counted again from every
    /// case; returns whether they were.
    pub fn count_with(&mut self, limits: followup::FollowupLimits) -> bool {
        if self.aggregates.counted_with() == Some(limits) {
            self.aggregates.set_limits(limits);
            return false;
        }
        self.aggregates.clear();
        self.aggregates.set_limits(limits);
        let mut out = Vec::new();
        contributions::for_each_case(self, |case| contributions::of(&case, self, &limits, &mut out));
        for contribution in out {
            self.aggregates.add(contribution);
        }
        true
    }

    /// Applies one event from the log at `sequence`, including its place on a person's timeline.
    pub fn apply_logged(&mut self, event: &ProjectedEvent<'_>, sequence: u64) {
        self.apply(event);
        if let Some(person) = person_of(event, &self.plans) {
            let at = event.at.nanos();
            let refs = self.timelines.entry(&person);
            let index = refs.partition_point(|r| *r <= (at, sequence));
            exact::insert(refs, index, (at, sequence));
            self.timeline_entries += 1;
        }
    }

    /// Timeline entries added since the last hand-over (see the field's caveat).
    pub fn timeline_entries(&self) -> usize {
        self.timeline_entries
    }

    /// Every timeline entry the views hold, as (person, time in nanoseconds, log sequence).
    pub fn timeline_refs(&self) -> Vec<(ids::PersonId, i64, u64)> {
        self.timelines.iter().flat_map(|(person, refs)| refs.iter().map(|(at, seq)| (*person, *at, *seq))).collect()
    }

    /// Forgets every timeline entry (once they are on disk); the next write of the views records
    /// their removal.
    pub fn take_timeline_entries(&mut self) {
        self.timelines.remove_all();
        self.timeline_entries = 0;
    }

    /// Every table, in a fixed order (the order they are stored in): the area views' tables, then
    /// the timelines, then the aggregates'.
    pub fn tables(&self) -> Vec<&dyn StoredTable> {
        let mut tables: Vec<&dyn StoredTable> = self.views().into_iter().flat_map(|view| view.tables()).collect();
        tables.push(&self.timelines);
        tables.extend(self.aggregates.tables());
        tables
    }

    /// Every table, mutable, in the order of [`DomainViews::tables`].
    pub fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        let (views, timelines, aggregates) = self.parts_mut();
        let mut tables: Vec<&mut dyn StoredTable> = views.into_iter().flat_map(|view| view.tables_mut()).collect();
        tables.push(timelines);
        tables.extend(aggregates.tables_mut());
        tables
    }

    /// How many records, in every table.
    pub fn records(&self) -> usize {
        self.tables().iter().map(|t| t.records()).sum()
    }

    /// How many records changed since the last [`DomainViews::drain_changes`].
    pub fn changed(&self) -> usize {
        self.tables().iter().map(|t| t.changed()).sum()
    }

    /// What changed since the last drain (records changed, records that left memory), forgetting
    /// that it changed.
    pub fn drain_changes(&mut self) -> ViewChanges {
        let mut changes = ViewChanges::default();
        for table in self.tables_mut() {
            let records = table.drain_changes();
            if !records.is_empty() {
                changes.records.push((table.prefix(), records));
            }
            let left = table.drain_left();
            if !left.is_empty() {
                changes.left.push((table.prefix(), left));
            }
        }
        changes
    }

    /// Lets the bounded tables (the cases, the persons' consents and plans, the aggregates' days)
    /// keep only their most recently changed records in memory, `records` each (the days at most
    /// [`DAYS_IN_MEMORY`]), handing the others over to `disk`.
    pub fn keep_on_disk(&mut self, disk: std::sync::Arc<crate::store::record_runs::RecordRuns>, records: usize) {
        for table in self.tables_mut() {
            let budget = if table.prefix() == aggregates::DAYS_PREFIX { records.min(DAYS_IN_MEMORY) } else { records };
            table.keep_on_disk(disk.clone(), budget);
        }
    }

    /// Whether only a snapshot can store the views now ([`StoredTable::needs_snapshot`]).
    pub fn needs_snapshot(&self) -> bool {
        self.tables().iter().any(|t| t.needs_snapshot())
    }

    /// Whether a table holds more records in memory than its budget.
    pub fn over_budget(&self) -> bool {
        self.tables().iter().any(|t| t.over_budget())
    }

    /// When a table is over its budget, what leaves memory now (every table's
    /// [`StoredTable::leaving`]): the records as the disk keeps them
    /// ([`crate::store::record_runs::RecordRuns::add_run`]), and their keys by table prefix, for
    /// [`DomainViews::forget`] once they are on disk.
    pub fn leaving(&self) -> Option<Leaving> {
        if !self.over_budget() {
            return None;
        }
        let (mut records, mut keys) = (Vec::new(), Vec::new());
        for table in self.tables() {
            let leaving = table.leaving();
            if leaving.is_empty() {
                continue;
            }
            let mut table_keys = Vec::with_capacity(leaving.len());
            for (key, stored) in leaving {
                records.push((table::disk_key(table.prefix(), &key), stored));
                table_keys.push(key);
            }
            keys.push((table.prefix(), table_keys));
        }
        Some(Leaving { records, keys, batch: self.batch })
    }

    /// Hands what is beyond the budgets over to `disk` at once, as of log `through`, and forgets
    /// it (where nothing else changes the views meanwhile: a replay, a test); returns how many
    /// records went.
    pub fn hand_over_now(
        &mut self,
        disk: &crate::store::record_runs::RecordRuns,
        through: u64,
    ) -> Result<usize, crate::store::record_runs::RecordRunsError> {
        let Some(Leaving { records, keys, batch }) = self.leaving() else { return Ok(0) };
        let count = records.len();
        disk.add_run(records, through)?;
        self.forget(&keys, batch);
        Ok(count)
    }

    /// Forgets from memory the records handed over to disk, as read in `batch` (keys by table
    /// prefix): those changed since stay.
    pub fn forget(&mut self, left: &LeavingKeys, batch: u32) {
        for table in self.tables_mut() {
            if let Some((_, keys)) = left.iter().find(|(prefix, _)| *prefix == table.prefix()) {
                table.forget(keys, batch);
            }
        }
    }

    /// Starts a new batch: records changed from now on count as more recent than those before.
    pub fn tick(&mut self) {
        self.batch = self.batch.wrapping_add(1);
        for table in self.tables_mut() {
            table.tick();
        }
    }

    /// Forgets which records changed (after storing every record).
    pub fn clear_changes(&mut self) {
        for table in self.tables_mut() {
            table.clear_changes();
        }
    }

    /// Counts every record as changed until the next drain or clear, without tracking keys (while
    /// catching up: the views are then stored whole).
    pub fn mark_all_changed(&mut self) {
        for table in self.tables_mut() {
            table.mark_all_changed();
        }
    }

    /// Every record of every view by storage key, as JSON (for `hub rebuild --check`).
    pub fn all_records(&self) -> std::collections::BTreeMap<String, serde_json::Value> {
        let mut out = std::collections::BTreeMap::new();
        for table in self.tables() {
            table.all_records(&mut out);
        }
        out
    }

    /// Loads one stored record into the table stored under `prefix`.
    pub fn load(&mut self, prefix: &str, key: &str, value: &[u8]) -> Result<(), ViewLoadError> {
        self.table_mut(prefix)?.load(key, value).map_err(|source| ViewLoadError::Record {
            prefix: prefix.into(),
            key: key.into(),
            source,
        })
    }

    /// Takes note (while loading) that the record under `key` of the table stored under `prefix`
    /// left memory for disk.
    pub fn load_left(&mut self, prefix: &str, key: &str) -> Result<(), ViewLoadError> {
        self.table_mut(prefix)?.load_left(key).map_err(|source| ViewLoadError::Record {
            prefix: prefix.into(),
            key: key.into(),
            source,
        })
    }

    fn table_mut(&mut self, prefix: &str) -> Result<&mut dyn StoredTable, ViewLoadError> {
        self.tables_mut()
            .into_iter()
            .find(|t| t.prefix() == prefix)
            .ok_or_else(|| ViewLoadError::UnknownTable { prefix: prefix.into() })
    }
}

/// What changed in the views since the last drain, by table prefix: the records changed (each
/// encoded, empty for a removal) and the keys of the records that left memory for disk.
#[derive(Debug, Default)]
pub struct ViewChanges {
    /// Records changed.
    pub records: Vec<(&'static str, EncodedRecords)>,
    /// Keys of records that left memory (their state is on disk).
    pub left: Vec<(&'static str, Vec<String>)>,
}

/// Why a stored record does not load into the views → the views store counts as damaged and the
/// views are replayed from the log.
#[derive(Debug, thiserror::Error)]
pub enum ViewLoadError {
    /// No view stores a table under this prefix (a record of another version).
    #[error("{prefix}: no view stores this table")]
    UnknownTable {
        /// The table prefix.
        prefix: String,
    },
    /// The record does not load into its table.
    #[error("{prefix}{key}: {source}")]
    Record {
        /// The table prefix.
        prefix: String,
        /// The record's key.
        key: String,
        /// Why.
        source: table::LoadError,
    },
}

/// One entry of a person's cross-area timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    /// When it happened.
    #[schema(value_type = String, format = DateTime)]
    pub time: sgd_schemas::events::Timestamp,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The area.
    pub area: String,
    /// The principal that published it.
    pub principal: String,
    /// The case (plan, assessment, flag id…).
    pub subject: Option<String>,
    /// The event's id.
    pub id: String,
}

/// The person an event is about, if any: its `person` field, or the person of the plan it
/// belongs to (when the plan's creation has been seen). A `person` that is not a pseudonym
/// (validation rules it out) names no one.
pub fn person_of(event: &ProjectedEvent<'_>, plans: &plans::PlansView) -> Option<ids::PersonId> {
    use DomainEvent as D;
    let plan_id = match event.event {
        D::NpoConsentGiven(d) => return ids::PersonId::parse(&d.person),
        D::NpoConsentRevoked(d) => return ids::PersonId::parse(&d.person),
        D::NpoRecordAccessed(d) => return ids::PersonId::parse(&d.person),
        D::PlansPlanCreated(d) => return ids::PersonId::parse(&d.person),
        D::DecisionAssessmentCompleted(d) => return ids::PersonId::parse(&d.person),
        D::DecisionScoreRaised(d) => return ids::PersonId::parse(&d.person),
        D::DecisionRiskFlagged(d) => return ids::PersonId::parse(&d.person),
        D::VideoMeetingBooked(d) => d.plan_id.as_ref()?,
        D::DeviationCaseLogged(d) => d.plan_id.as_ref()?,
        other => plans::plan_event_id(other)?,
    };
    plans.plans.get(plan_id.as_str()).and_then(|plan| plan.person)
}

impl TimelineEntry {
    /// The timeline entry of an event.
    pub fn of(envelope: &Envelope) -> Self {
        Self {
            time: envelope.time,
            event_type: envelope.event_type.clone(),
            area: envelope.area().to_string(),
            principal: envelope.principal.clone(),
            subject: envelope.subject.clone(),
            id: envelope.id.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_and_tables_mut_list_the_same_tables_once_each() {
        let mut views = DomainViews::default();
        let prefixes: Vec<&str> = views.tables().iter().map(|t| t.prefix()).collect();
        let prefixes_mut: Vec<&str> = views.tables_mut().iter().map(|t| t.prefix()).collect();
        assert_eq!(prefixes, prefixes_mut);
        let unique: std::collections::BTreeSet<&str> = prefixes.iter().copied().collect();
        assert_eq!(unique.len(), prefixes.len(), "two tables share a prefix: {prefixes:?}");
    }
}
