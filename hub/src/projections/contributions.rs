//! What each case contributes to the aggregates ([`super::aggregates`]): the follow-up rules, the
//! discharge figures and the goals about cases, each written as moment-stamped counts of one case
//! (see `docs/goals.md` and `EVENTS.md` for the definitions; [`super::followup::open_cases`] lists
//! the same rules case by case, and the tests hold the two to the same answers).

use chrono::Duration;
use sgd_schemas::{events::plans::PlanKind, DomainEvent};

use super::{
    aggregates::{Cell, Contribution, Measure},
    followup::{ready_days, FollowupLimits},
    ids::{PersonId, PrincipalCode, Text},
    moment::Moment,
    plans::plan_event_id,
    DomainViews, ProjectedEvent,
};

/// A case whose contributions an event can change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseRef {
    /// A plan, by id.
    Plan(Text),
    /// A raised score, by assessment id.
    Warning(Text),
    /// A risk flag, by id.
    Flag(Text),
    /// A message, by id.
    Message(Text),
    /// A deviation, by id.
    Deviation(Text),
    /// A meeting, by id.
    Meeting(Text),
}

/// The cases whose contributions `event` can change, given the views before it. A plan event
/// changes its plan and, through "followed by a plan event", the warnings of the plan's person
/// (the one it has and, for a creation, the one it gets).
pub fn touched(event: &ProjectedEvent<'_>, views: &DomainViews, out: &mut Vec<CaseRef>) {
    use DomainEvent as D;
    let id = |s: &String| Text::from(s.as_str());
    match event.event {
        D::DecisionScoreRaised(d) => out.push(CaseRef::Warning(id(&d.assessment_id))),
        D::DecisionRiskFlagged(d) => out.push(CaseRef::Flag(id(&d.flag_id))),
        D::DecisionRiskAcknowledged(d) => out.push(CaseRef::Flag(id(&d.flag_id))),
        D::SdkMessageSent(d) => out.push(CaseRef::Message(id(&d.message_id))),
        D::SdkMessageDelivered(d) => out.push(CaseRef::Message(id(&d.message_id))),
        D::DeviationCaseLogged(d) => out.push(CaseRef::Deviation(id(&d.deviation_id))),
        D::DeviationCaseAnswered(d) => out.push(CaseRef::Deviation(id(&d.deviation_id))),
        D::DeviationAnalysisCompleted(d) => out.push(CaseRef::Deviation(id(&d.deviation_id))),
        D::DeviationCaseClosed(d) => out.push(CaseRef::Deviation(id(&d.deviation_id))),
        D::VideoMeetingBooked(d) => out.push(CaseRef::Meeting(id(&d.meeting_id))),
        D::VideoParticipantAdmitted(d) => out.push(CaseRef::Meeting(id(&d.meeting_id))),
        D::VideoMeetingHeld(d) => out.push(CaseRef::Meeting(id(&d.meeting_id))),
        other => {
            let Some(plan_id) = plan_event_id(other) else { return };
            out.push(CaseRef::Plan(id(plan_id)));
            let current = views.plans.plans.get(plan_id.as_str()).and_then(|plan| plan.person);
            let created = match other {
                D::PlansPlanCreated(d) => PersonId::parse(&d.person),
                _ => None,
            };
            for person in current.iter().chain(created.iter().filter(|p| Some(**p) != current)) {
                for warning in views.decision.by_person.get(person).iter().flat_map(|warnings| warnings.iter()) {
                    out.push(CaseRef::Warning(warning.clone()));
                }
            }
        }
    }
}

/// Appends the contributions of `case` as the views hold it now.
pub fn of(case: &CaseRef, views: &DomainViews, limits: &FollowupLimits, out: &mut Vec<Contribution>) {
    match case {
        CaseRef::Plan(id) => plan(views, id, limits, out),
        CaseRef::Warning(id) => warning(views, id, limits, out),
        CaseRef::Flag(id) => flag(views, id, limits, out),
        CaseRef::Message(id) => message(views, id, limits, out),
        CaseRef::Deviation(id) => deviation(views, id, limits, out),
        CaseRef::Meeting(id) => meeting(views, id, out),
    }
}

/// Shows every case the views hold, in memory or on disk, to `each` (for computing the
/// aggregates from scratch).
pub fn for_each_case(views: &DomainViews, mut each: impl FnMut(CaseRef)) {
    views.plans.plans.for_each(|id, _| each(CaseRef::Plan(id.clone())));
    views.decision.warnings.for_each(|id, _| each(CaseRef::Warning(id.clone())));
    views.decision.flags.for_each(|id, _| each(CaseRef::Flag(id.clone())));
    views.sdk.messages.for_each(|id, _| each(CaseRef::Message(id.clone())));
    views.deviation.deviations.for_each(|id, _| each(CaseRef::Deviation(id.clone())));
    views.video.meetings.for_each(|id, _| each(CaseRef::Meeting(id.clone())));
}

fn count(out: &mut Vec<Contribution>, at: Moment, cell: Cell, delta: i64) {
    out.push(Contribution { at, cell, delta });
}

fn for_principal(out: &mut Vec<Contribution>, at: Moment, measure: Measure, principal: Option<PrincipalCode>) {
    if let Some(principal) = principal {
        count(out, at, Cell::of(measure, principal), 1);
    }
}

fn plan(views: &DomainViews, id: &Text, limits: &FollowupLimits, out: &mut Vec<Contribution>) {
    let Some(plan) = views.plans.plans.get(id.as_str()) else { return };
    if let (Some(sent), Some(assessed)) = (plan.notice_sent_at, plan.need_assessed_at) {
        let in_time = sent - assessed <= Duration::hours(limits.admission_notice_hours);
        count(out, sent, Cell::region(Measure::NoticesSent), 1);
        if in_time {
            count(out, sent, Cell::region(Measure::NoticesInTime), 1);
        } else {
            for_principal(out, sent, Measure::LateNotice, plan.notice_principal);
        }
    }
    let Some(discharged) = plan.discharged_at else { return };
    if let Some(ready) = plan.ready_at {
        let days = ready_days(ready, discharged);
        for principal in plan.accountable_principals() {
            let mut add = |measure, delta| count(out, discharged, Cell::of(measure, principal), delta);
            add(Measure::DischargeEpisodes, 1);
            if days >= 1 {
                add(Measure::EpisodesOfADayOrMore, 1);
                add(Measure::ReadyDays, days);
            } else {
                add(Measure::DayZeroEpisodes, 1);
            }
            add(Measure::DaysBeyondThreshold, (days - limits.payment_threshold_days).max(0));
            if days > limits.payment_threshold_days {
                add(Measure::ReadyDaysOverThreshold, 1);
            }
        }
    }
    if plan.kind == Some(PlanKind::Svu) {
        count(out, discharged, Cell::region(Measure::DischargedSvuPlans), 1);
        if plan.sip_held_at.is_some_and(|held| held <= discharged) {
            count(out, discharged, Cell::region(Measure::SipBeforeDischarge), 1);
        } else {
            for_principal(out, discharged, Measure::SvuWithoutSip, plan.principal);
        }
    }
}

fn warning(views: &DomainViews, id: &Text, limits: &FollowupLimits, out: &mut Vec<Contribution>) {
    let Some(w) = views.decision.warnings.get(id.as_str()).filter(|w| w.needs_follow_up()) else { return };
    let Some(raised) = w.raised_at else { return };
    let due = raised + Duration::hours(limits.warning_follow_up_hours);
    count(out, due, Cell::region(Measure::WarningsDue), 1);
    if views.plans.person_active_between(&w.person, raised, due) {
        count(out, due, Cell::region(Measure::WarningsFollowedUp), 1);
    } else {
        // A principal that is not a code is listed as an open case but counted for no one.
        for_principal(out, due, Measure::OpenWarning, PrincipalCode::parse(&w.principal));
    }
}

/// +1 from `due` until `cleared` (for ever when it never is, nothing when it is by `due`).
fn overdue_until(out: &mut Vec<Contribution>, due: Moment, cleared: Option<Moment>, cell: Cell) {
    if cleared.is_some_and(|t| t <= due) {
        return;
    }
    count(out, due, cell, 1);
    if let Some(cleared) = cleared {
        count(out, cleared, cell, -1);
    }
}

fn flag(views: &DomainViews, id: &Text, limits: &FollowupLimits, out: &mut Vec<Contribution>) {
    let Some(f) = views.decision.flags.get(id.as_str()) else { return };
    let (Some(flagged), Some(principal)) = (f.flagged_at, f.principal) else { return };
    let due = flagged + Duration::days(limits.risk_acknowledge_days);
    overdue_until(out, due, f.acknowledged_at, Cell::of(Measure::OverdueRiskFlag, principal));
}

fn message(views: &DomainViews, id: &Text, limits: &FollowupLimits, out: &mut Vec<Contribution>) {
    let Some(m) = views.sdk.messages.get(id.as_str()) else { return };
    let Some(principal) = m.principal else { return };
    if let Some(sent) = m.sent_at {
        let due = sent + Duration::hours(limits.receipt_hours);
        overdue_until(out, due, m.received_at, Cell::of(Measure::UndeliveredMessage, principal));
    }
    if let (Some(received), true) = (m.received_at, m.rejected) {
        count(out, received, Cell::of(Measure::RejectedMessage, principal), 1);
    }
}

fn deviation(views: &DomainViews, id: &Text, limits: &FollowupLimits, out: &mut Vec<Contribution>) {
    let Some(d) = views.deviation.deviations.get(id.as_str()) else { return };
    let Some(logged) = d.logged_at else { return };
    let answer_limit = Duration::days(limits.deviation_answer_days);
    let answered = d.first_concerned_answer();
    // The goal: answered in time counts from the answer (or the logging, when the answer's time is
    // earlier); otherwise the deviation is due once its time to answer is over.
    match answered.filter(|a| *a - logged <= answer_limit) {
        Some(answer) => {
            let at = answer.max(logged);
            count(out, at, Cell::region(Measure::DeviationsDue), 1);
            count(out, at, Cell::region(Measure::DeviationsAnsweredInTime), 1);
        }
        None => count(out, logged + answer_limit, Cell::region(Measure::DeviationsDue), 1),
    }
    let Some(principal) = d.principal else { return };
    // The rules also need the logging itself to have happened: an answer stamped before it clears
    // the case from the moment it is due.
    let answered = answered.map(|a| a.max(logged));
    overdue_until(out, logged + answer_limit, answered, Cell::of(Measure::OverdueDeviation, principal));
    if d.requires_analysis {
        let due = logged + Duration::days(limits.deviation_analysis_days);
        overdue_until(out, due, d.analysis_at.map(|a| a.max(logged)), Cell::of(Measure::OverdueAnalysis, principal));
    }
}

fn meeting(views: &DomainViews, id: &Text, out: &mut Vec<Contribution>) {
    let Some(m) = views.video.meetings.get(id.as_str()) else { return };
    let Some(held) = m.held_at else { return };
    count(out, held, Cell::region(Measure::MeetingsHeld), 1);
    if m.admitted_weak == 0 {
        count(out, held, Cell::region(Measure::MeetingsStronglyIdentified), 1);
    } else {
        for_principal(out, held, Measure::NotStronglyIdentified, m.principal);
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Duration, FixedOffset, TimeZone};
    use rand::{rngs::StdRng, seq::SliceRandom, Rng, SeedableRng};
    use serde_json::{json, Value};
    use sgd_schemas::{DomainEvent, Envelope};

    use crate::projections::{
        reference::assert_aggregates_agree,
        testing::{event, given, person},
        DomainViews,
    };

    const PRINCIPALS: [&str; 4] = ["12", "1280", "1283", "1290"];

    fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
        items[rng.random_range(0..items.len())]
    }

    /// A moment in the first weeks of March 2026, on a whole hour or one second off one (so that
    /// milestones land exactly on, just before and just after each other's limits).
    fn moment(rng: &mut StdRng) -> DateTime<FixedOffset> {
        let start = FixedOffset::east_opt(3600).and_then(|z| z.with_ymd_and_hms(2026, 3, 1, 0, 0, 0).single());
        let hour = Duration::hours(rng.random_range(0..24 * 40));
        let nudge = Duration::seconds(rng.random_range(-1..=1));
        start.expect("a valid start") + hour + nudge
    }

    /// One random event about a few plans, persons, flags, messages, deviations and meetings.
    /// What creates a case (its principal, kind, person, participants, band…) follows from the
    /// case's id, as it does in the log: an id is created once, so no answer may depend on which of
    /// two conflicting creations came last.
    fn random_event(rng: &mut StdRng) -> (Envelope, DomainEvent) {
        let at = moment(rng);
        let time = at.to_rfc3339();
        let other = moment(rng).to_rfc3339();
        let n = rng.random_range(0..4usize);
        let principal = PRINCIPALS[n];
        let plan = ["p1", "p2", "p3", "p4"][n];
        let id = ["x1", "x2", "x3", "x4"][n];
        let who = person(['a', 'b', 'c', 'a'][n]);
        // an admission notice 12 h, 24 h exactly or 24 h and a second after the assessed need
        let assessed = (at - Duration::hours(12 + 12 * (n as i64 % 2)) - Duration::seconds(n as i64 / 2)).to_rfc3339();
        let (event_type, data): (&str, Value) = match rng.random_range(0..19) {
            0 => (
                "se.sgd.plans.plan.created",
                json!({"plan_id": plan, "kind": (["svu", "sip", "svu", "other"][n]), "person": who,
                       "participants": [PRINCIPALS[n], PRINCIPALS[(n + 1) % 4]]}),
            ),
            1 => (
                "se.sgd.plans.admission.notified",
                json!({"plan_id": plan, "need_assessed_at": assessed, "sent_at": time}),
            ),
            2 => ("se.sgd.plans.discharge.ready", json!({"plan_id": plan, "ready_at": other})),
            3 => ("se.sgd.plans.discharge.withdrawn", json!({"plan_id": plan})),
            4 => ("se.sgd.plans.patient.discharged", json!({"plan_id": plan, "discharged_at": time})),
            5 => ("se.sgd.plans.sip.held", json!({"plan_id": plan, "held_at": other, "mode": "video"})),
            6 => ("se.sgd.plans.plan.closed", json!({"plan_id": plan})),
            7 => (
                "se.sgd.decision.score.raised",
                json!({"person": who, "assessment_id": id, "scale": "news2", "score": 6,
                       "band": (["medium", "high", "low", "medium"][n])}),
            ),
            8 => (
                "se.sgd.decision.risk.flagged",
                json!({"person": who, "flag_id": id, "primary_care_unit": "SE2321000255-VC1"}),
            ),
            9 => ("se.sgd.decision.risk.acknowledged", json!({"flag_id": id})),
            10 => {
                ("se.sgd.sdk.message.sent", json!({"message_id": id, "recipient_principal": PRINCIPALS[(n + 1) % 4]}))
            }
            11 => (
                "se.sgd.sdk.message.delivered",
                json!({"message_id": id, "status": (["accepted", "rejected"][n % 2]), "received_at": time}),
            ),
            12 => (
                "se.sgd.deviation.case.logged",
                json!({"deviation_id": id, "concerned_principals": [PRINCIPALS[(n + 1) % 4]], "category": "x",
                       "actuality": "actual", "probability": 1 + n, "consequence": 1 + n}),
            ),
            13 => {
                ("se.sgd.deviation.case.answered", json!({"deviation_id": id, "answered_by": pick(rng, &PRINCIPALS)}))
            }
            14 => ("se.sgd.deviation.analysis.completed", json!({"deviation_id": id, "lex_maria": false})),
            15 => ("se.sgd.deviation.case.closed", json!({"deviation_id": id})),
            16 => {
                ("se.sgd.video.meeting.booked", json!({"meeting_id": id, "purpose": "sip", "principals": [principal]}))
            }
            17 => (
                "se.sgd.video.participant.admitted",
                json!({"meeting_id": id, "method": pick(rng, &["siths", "bankid", "none"])}),
            ),
            _ => ("se.sgd.video.meeting.held", json!({"meeting_id": id, "duration_s": 600, "participants": 2})),
        };
        event(event_type, principal, &time, data)
    }

    fn aggregate_records(views: &DomainViews) -> std::collections::BTreeMap<String, Value> {
        let counts = |key: &String| key.starts_with("v/aggregate/day/") || key.starts_with("v/aggregate/month/");
        views.all_records().into_iter().filter(|(key, _)| counts(key)).collect()
    }

    #[test]
    fn aggregates_answer_as_walking_every_case_does_at_every_moment_in_any_order() {
        for seed in 0..300 {
            let mut rng = StdRng::seed_from_u64(seed);
            let mut events: Vec<_> = (0..rng.random_range(1..60)).map(|_| random_event(&mut rng)).collect();
            let views = given(&events);
            let mut moments: Vec<DateTime<FixedOffset>> = (0..20).map(|_| moment(&mut rng)).collect();
            // every milestone's own moment and each limit after it, where counts change
            for (envelope, _) in &events {
                for after in [Duration::zero(), Duration::hours(24), Duration::hours(48), Duration::days(3)] {
                    moments.push(envelope.time + after);
                    moments.push(envelope.time + after - Duration::nanoseconds(1));
                }
            }
            for as_of in moments {
                assert_aggregates_agree(&views, as_of);
            }
            events.shuffle(&mut rng);
            assert_eq!(aggregate_records(&given(&events)), aggregate_records(&views), "seed {seed}: order matters");
        }
    }

    #[test]
    fn aggregates_counted_again_from_the_cases_equal_those_kept_event_by_event() {
        for seed in 0..50 {
            let mut rng = StdRng::seed_from_u64(1000 + seed);
            let events: Vec<_> = (0..60).map(|_| random_event(&mut rng)).collect();
            let kept = given(&events);
            let mut counted = kept.clone();
            let limits = crate::projections::followup::FollowupLimits { receipt_hours: 12, ..Default::default() };
            assert!(counted.count_with(limits), "other limits count again");
            assert!(!counted.count_with(limits), "the same limits do not");
            assert!(counted.count_with(Default::default()));
            assert_eq!(aggregate_records(&counted), aggregate_records(&kept), "seed {seed}");
        }
    }
}
