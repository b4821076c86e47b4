//! The aggregates behind the goals and the follow-up summary: moment-stamped counts per measure and
//! principal, summed per Swedish day, so an answer as of any moment is a sum and never a walk over
//! every case.
//!
//! Every case (a plan, a warning, a flag, a message, a deviation, a meeting) contributes to a
//! measure at the moments its milestones fall on ([`super::contributions`]): an overdue flag +1 at
//! flagged + 3 days and −1 at its acknowledgement, a late notice +1 at its sending. The count of a
//! measure as of `T` is the sum of the contributions stamped at or before `T`. When an event
//! changes a case, the case's contributions before the event are taken away and those after it
//! added, so the sums stay exactly those of the cases as they are, in whatever order the events
//! arrived.
//!
//! Held per Swedish day ([`DayContributions`], one record per day in a views table, so they are
//! stored, journalled and replayed with the views): each measure's total for the day, and the
//! day's contributions by moment (for an `as_of` inside the day). Equal moments are merged and
//! zero sums dropped, so a day's record depends only on the cases, never on the order of events.

use chrono::Datelike;
use serde::{Deserialize, Serialize};

use super::{
    exact,
    followup::FollowupLimits,
    ids::{Day, PrincipalCode},
    moment::Moment,
    table::{StoredTable, Table},
};

/// What is counted. Rules count a principal's cases (as the follow-up rules of `EVENTS.md`),
/// the discharge figures a principal's episodes, the goals' numerators and denominators cases of
/// the whole region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Measure {
    /// `late_notice` (per principal; the rules keep the order of [`super::followup::RULES`]).
    LateNotice = 0,
    /// `ready_days_over_threshold`.
    ReadyDaysOverThreshold,
    /// `svu_without_sip`.
    SvuWithoutSip,
    /// `open_warning`.
    OpenWarning,
    /// `overdue_risk_flag`.
    OverdueRiskFlag,
    /// `undelivered_message`.
    UndeliveredMessage,
    /// `rejected_message`.
    RejectedMessage,
    /// `overdue_deviation`.
    OverdueDeviation,
    /// `overdue_analysis`.
    OverdueAnalysis,
    /// `not_strongly_identified`.
    NotStronglyIdentified,
    /// Discharged episodes with a ready-for-discharge date (per principal).
    DischargeEpisodes,
    /// Of those, episodes of at least one day.
    EpisodesOfADayOrMore,
    /// Days as ready for discharge, summed over the episodes.
    ReadyDays,
    /// Episodes discharged the day they were ready.
    DayZeroEpisodes,
    /// Days beyond the payment threshold, summed over the episodes.
    DaysBeyondThreshold,
    /// Admission notices sent (region).
    NoticesSent,
    /// Of those, sent within the limit of the assessed need.
    NoticesInTime,
    /// Discharged SVU plans.
    DischargedSvuPlans,
    /// Of those, with a SIP held before discharge.
    SipBeforeDischarge,
    /// Medium or high warnings whose follow-up window has passed.
    WarningsDue,
    /// Of those, followed by a plan event for the person within the window.
    WarningsFollowedUp,
    /// Deviations answered in time, or whose time to answer has passed.
    DeviationsDue,
    /// Of those, answered in time.
    DeviationsAnsweredInTime,
    /// Held meetings.
    MeetingsHeld,
    /// Of those, every admitted participant strongly identified.
    MeetingsStronglyIdentified,
}

/// How many measures there are.
pub const MEASURES: usize = Measure::MeetingsStronglyIdentified as usize + 1;

/// The rules' measures, in the order of [`super::followup::RULES`].
pub const RULE_MEASURES: [Measure; 10] = [
    Measure::LateNotice,
    Measure::ReadyDaysOverThreshold,
    Measure::SvuWithoutSip,
    Measure::OpenWarning,
    Measure::OverdueRiskFlag,
    Measure::UndeliveredMessage,
    Measure::RejectedMessage,
    Measure::OverdueDeviation,
    Measure::OverdueAnalysis,
    Measure::NotStronglyIdentified,
];

/// A measure for one principal, or for the region (principal slot 0): two bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Cell(u16);

impl Cell {
    /// A principal's count of `measure`.
    pub fn of(measure: Measure, principal: PrincipalCode) -> Self {
        Self(u16::from(measure as u8) << 8 | u16::from(principal.byte()))
    }

    /// The region's count of `measure`.
    pub fn region(measure: Measure) -> Self {
        Self(u16::from(measure as u8) << 8)
    }

    fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// One case's part in a measure: `delta` at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Contribution {
    /// When it counts from.
    pub at: Moment,
    /// What it counts in.
    pub cell: Cell,
    /// How much.
    pub delta: i64,
}

/// One measure's contributions on one day.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CellDay {
    /// The measure and principal.
    pub cell: Cell,
    /// The sum of `deltas`.
    pub total: i64,
    /// (moment, sum of the contributions at that moment), by moment, no zero sums.
    pub deltas: Vec<(Moment, i64)>,
}

/// One Swedish day's contributions, by cell.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DayContributions {
    /// By cell, no empty ones.
    pub cells: Vec<CellDay>,
}

impl DayContributions {
    fn add(&mut self, at: Moment, cell: Cell, delta: i64) {
        let i = match self.cells.binary_search_by_key(&cell, |c| c.cell) {
            Ok(i) => i,
            Err(i) => {
                exact::insert(&mut self.cells, i, CellDay { cell, total: 0, deltas: Vec::new() });
                i
            }
        };
        let day = &mut self.cells[i];
        day.total += delta;
        add_sorted(&mut day.deltas, at, delta);
        if day.deltas.is_empty() {
            self.cells.remove(i);
            self.cells.shrink_to_fit();
        }
    }
}

/// One month's totals by cell (the sums of its days' totals), no zero ones: an answer adds up
/// the months before its own and the days of its own month, not every day.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MonthTotals {
    /// (cell, total), by cell, no zero totals.
    pub cells: Vec<(Cell, i64)>,
}

/// Adds `delta` to the sum under `key` in `items` (sorted by key, no zero sums), keeping it so.
fn add_sorted<K: Ord + Copy>(items: &mut Vec<(K, i64)>, key: K, delta: i64) {
    match items.binary_search_by_key(&key, |(k, _)| *k) {
        Ok(i) => {
            items[i].1 += delta;
            if items[i].1 == 0 {
                items.remove(i);
                items.shrink_to_fit();
            }
        }
        Err(i) => exact::insert(items, i, (key, delta)),
    }
}

/// The first day of the month of `day` (a month's key).
fn month_of(day: Day) -> Day {
    Day(day.0.with_day(1).unwrap_or(day.0))
}

/// Counts per cell as of a moment.
#[derive(Debug, Clone)]
pub struct Totals(Vec<i64>);

thread_local! {
    /// Totals' vectors dropped on this thread, for the next ones. A vector is ~45 KB: allocated
    /// zeroed anew for every answer, jemalloc handed it fresh pages each time, and the page
    /// faults, purges and TLB shootdowns took ~25% of the hub's CPU under the bench's query load
    /// (docs/performance.md, "Queries").
    static FREE_TOTALS: std::cell::RefCell<Vec<Vec<i64>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Totals' vectors kept per thread for reuse.
const FREE_TOTALS_KEPT: usize = 4;

impl Totals {
    fn new() -> Self {
        match FREE_TOTALS.try_with(|free| free.borrow_mut().pop()).ok().flatten() {
            Some(mut counts) => {
                counts.fill(0);
                Self(counts)
            }
            None => Self(vec![0; MEASURES << 8]),
        }
    }

    /// A principal's count of `measure` (0 when nothing counts in it; never negative for a
    /// consistent model).
    pub fn principal(&self, measure: Measure, principal: PrincipalCode) -> u64 {
        self.0.get(Cell::of(measure, principal).index()).copied().unwrap_or(0).max(0) as u64
    }

    /// The region's count of `measure`.
    pub fn region(&self, measure: Measure) -> u64 {
        self.0.get(Cell::region(measure).index()).copied().unwrap_or(0).max(0) as u64
    }
}

impl Drop for Totals {
    fn drop(&mut self) {
        let counts = std::mem::take(&mut self.0);
        if counts.len() == MEASURES << 8 {
            // At a thread's exit the list may be gone already: the vector is then simply freed.
            let _ = FREE_TOTALS.try_with(|free| {
                let mut free = free.borrow_mut();
                if free.len() < FREE_TOTALS_KEPT {
                    free.push(counts);
                }
            });
        }
    }
}

/// Where the days' records are stored.
pub const DAYS_PREFIX: &str = "v/aggregate/day/";

/// The contributions of every case, per Swedish day (`v/aggregate/day/<YYYY-MM-DD>`), and the
/// follow-up limits they were counted with (`v/aggregate/limits/followup`).
#[derive(Debug, Clone)]
pub struct Aggregates {
    /// By Swedish day.
    pub days: Table<DayContributions, Day>,
    /// By month (keyed by its first day): the sums of its days' totals.
    pub months: Table<MonthTotals, Day>,
    /// The limits the stored days were counted with (absent in views stored before there were
    /// aggregates: they are then counted from the cases at start).
    counted: Table<FollowupLimits>,
    /// The limits new contributions are counted with.
    limits: FollowupLimits,
    /// The last day a contribution fell on, with its first nanosecond and the next day's: the
    /// contributions of one case mostly fall on a few days, which are then not looked up again.
    last_day: Option<(i64, i64, Day)>,
}

/// The key of the limits' record.
const LIMITS_KEY: &str = "followup";

impl Default for Aggregates {
    fn default() -> Self {
        Self {
            days: Table::bounded(DAYS_PREFIX),
            months: Table::new("v/aggregate/month/"),
            counted: Table::new("v/aggregate/limits/"),
            limits: FollowupLimits::default(),
            last_day: None,
        }
    }
}

impl Aggregates {
    /// The limits contributions are counted with.
    pub fn limits(&self) -> &FollowupLimits {
        &self.limits
    }

    /// The limits the stored aggregates were counted with, if recorded.
    pub fn counted_with(&self) -> Option<FollowupLimits> {
        self.counted.get(LIMITS_KEY).map(|limits| *limits)
    }

    /// Counts with `limits` from now on, and records that the aggregates were.
    pub fn set_limits(&mut self, limits: FollowupLimits) {
        self.limits = limits;
        if self.counted_with() != Some(limits) {
            *self.counted.entry(LIMITS_KEY) = limits;
        }
    }

    /// Forgets every contribution.
    pub fn clear(&mut self) {
        self.days.remove_all();
        self.months.remove_all();
    }

    /// The tables, in the order they are stored in.
    pub fn tables(&self) -> [&dyn StoredTable; 3] {
        [&self.days, &self.months, &self.counted]
    }

    /// The tables, mutable, in the order of [`Aggregates::tables`].
    pub fn tables_mut(&mut self) -> [&mut dyn StoredTable; 3] {
        [&mut self.days, &mut self.months, &mut self.counted]
    }
    /// Adds `delta` to `cell` at `at`.
    pub fn add(&mut self, contribution: Contribution) {
        if contribution.delta == 0 {
            return;
        }
        let day = self.day_of(contribution.at);
        let record = self.days.entry(&day);
        record.add(contribution.at, contribution.cell, contribution.delta);
        if record.cells.is_empty() {
            self.days.remove(&day);
        }
        let month = month_of(day);
        let totals = self.months.entry(&month);
        add_sorted(&mut totals.cells, contribution.cell, contribution.delta);
        if totals.cells.is_empty() {
            self.months.remove(&month);
        }
    }

    /// The Swedish day of `at`.
    fn day_of(&mut self, at: Moment) -> Day {
        let nanos = at.nanos();
        if let Some((start, end, day)) = self.last_day {
            if (start..end).contains(&nanos) {
                return day;
            }
        }
        let day = at.swedish_day();
        let start_of = |day: chrono::NaiveDate| {
            chrono::TimeZone::from_local_datetime(&chrono_tz::Europe::Stockholm, &day.and_time(chrono::NaiveTime::MIN))
                .earliest()
                .and_then(|t| t.timestamp_nanos_opt())
        };
        // Days outside the nanoseconds' range are not cached (no moment is held there anyway).
        if let (Some(start), Some(end)) = (start_of(day), day.succ_opt().and_then(start_of)) {
            self.last_day = Some((start, end, Day(day)));
        }
        Day(day)
    }

    /// Replaces the contributions `before` with `after` (the same cases before and after an
    /// event), adding only what differs. Both are left sorted.
    pub fn replace(&mut self, before: &mut [Contribution], after: &mut [Contribution]) {
        before.sort_unstable();
        after.sort_unstable();
        let (mut b, mut a) = (before.iter().peekable(), after.iter().peekable());
        loop {
            match (b.peek(), a.peek()) {
                (Some(old), Some(new)) if old == new => {
                    b.next();
                    a.next();
                }
                (Some(old), Some(new)) if old < new => {
                    self.add(Contribution { delta: -old.delta, ..**old });
                    b.next();
                }
                (_, Some(new)) => {
                    self.add(**new);
                    a.next();
                }
                (Some(old), None) => {
                    self.add(Contribution { delta: -old.delta, ..**old });
                    b.next();
                }
                (None, None) => return,
            }
        }
    }

    /// Every count as of `as_of`: the totals of the days before its Swedish day, and that day's
    /// contributions up to it.
    pub fn totals_at(&self, as_of: Moment) -> Totals {
        let mut totals = Totals::new();
        let day = Day(as_of.swedish_day());
        let month = month_of(day);
        for (_, before) in self.months.iter().filter(|(key, _)| **key < month) {
            for (cell, total) in &before.cells {
                totals.0[cell.index()] += total;
            }
        }
        let days_of_month = std::iter::successors(Some(month.0), |d| d.succ_opt()).take_while(|d| *d < day.0);
        for earlier in days_of_month.filter_map(|d| self.days.get(&Day(d))) {
            let earlier: &DayContributions = &earlier;
            for cell in &earlier.cells {
                totals.0[cell.cell.index()] += cell.total;
            }
        }
        let today = self.days.get(&day);
        for cell in today.as_ref().map(|d| d.cells.as_slice()).unwrap_or_default() {
            let until = cell.deltas.partition_point(|(t, _)| *t <= as_of);
            totals.0[cell.cell.index()] += cell.deltas[..until].iter().map(|(_, d)| d).sum::<i64>();
        }
        totals
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: &str) -> Moment {
        chrono::DateTime::parse_from_rfc3339(time).unwrap().into()
    }

    #[test]
    fn counts_as_of_a_moment_sum_what_is_stamped_up_to_it_and_cancel_exactly() {
        let malmo = PrincipalCode::parse("1280").unwrap();
        let cell = Cell::of(Measure::OverdueRiskFlag, malmo);
        let mut aggregates = Aggregates::default();
        aggregates.add(Contribution { at: at("2026-03-04T10:00:00+01:00"), cell, delta: 1 });
        aggregates.add(Contribution { at: at("2026-03-05T23:30:00Z"), cell, delta: 1 }); // 6 March in Sweden
        aggregates.add(Contribution { at: at("2026-03-06T12:00:00+01:00"), cell, delta: -1 });
        let count = |time: &str| aggregates.totals_at(at(time)).principal(Measure::OverdueRiskFlag, malmo);
        assert_eq!(count("2026-03-04T09:59:59+01:00"), 0);
        assert_eq!(count("2026-03-04T10:00:00+01:00"), 1);
        assert_eq!(count("2026-03-06T00:29:59+01:00"), 1);
        assert_eq!(count("2026-03-06T00:30:00+01:00"), 2);
        assert_eq!(count("2026-03-06T12:00:00+01:00"), 1);
        assert_eq!(count("2027-01-01T00:00:00+01:00"), 1);
        assert_eq!(aggregates.totals_at(at("2027-01-01T00:00:00Z")).region(Measure::OverdueRiskFlag), 0);
        // taking every contribution away leaves no record at all
        aggregates.add(Contribution { at: at("2026-03-04T10:00:00+01:00"), cell, delta: -1 });
        aggregates.add(Contribution { at: at("2026-03-05T23:30:00Z"), cell, delta: -1 });
        aggregates.add(Contribution { at: at("2026-03-06T12:00:00+01:00"), cell, delta: 1 });
        assert!(aggregates.days.is_empty());
        assert!(aggregates.months.is_empty());
    }

    #[test]
    fn a_contribution_falls_on_its_swedish_day_across_midnight_and_summer_time() {
        let cell = Cell::region(Measure::MeetingsHeld);
        let mut aggregates = Aggregates::default();
        for time in [
            "2026-03-28T23:59:59.999999999+01:00",
            "2026-03-29T00:00:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-29T23:59:59+02:00",
            "2026-03-29T22:00:00Z",
            "2026-10-25T02:30:00+01:00",
            "2026-10-25T23:00:00Z",
        ] {
            aggregates.add(Contribution { at: at(time), cell, delta: 1 });
        }
        let mut days: Vec<(String, i64)> = Vec::new();
        aggregates.days.for_each(|day, c| days.push((day.to_string(), c.cells[0].total)));
        days.sort();
        assert_eq!(
            days,
            [
                ("2026-03-28".into(), 1),
                ("2026-03-29".into(), 3),
                ("2026-03-30".into(), 1),
                ("2026-10-25".into(), 1),
                ("2026-10-26".into(), 1)
            ]
        );
    }
}
