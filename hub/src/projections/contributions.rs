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
                for warning in views.decision.by_person.get(person).into_iter().flatten() {
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

/// Every case the views hold (for computing the aggregates from scratch).
pub fn every_case(views: &DomainViews) -> impl Iterator<Item = CaseRef> + '_ {
    let plans = views.plans.plans.iter().map(|(id, _)| CaseRef::Plan(id.clone()));
    let warnings = views.decision.warnings.iter().map(|(id, _)| CaseRef::Warning(id.clone()));
    let flags = views.decision.flags.iter().map(|(id, _)| CaseRef::Flag(id.clone()));
    let messages = views.sdk.messages.iter().map(|(id, _)| CaseRef::Message(id.clone()));
    let deviations = views.deviation.deviations.iter().map(|(id, _)| CaseRef::Deviation(id.clone()));
    let meetings = views.video.meetings.iter().map(|(id, _)| CaseRef::Meeting(id.clone()));
    plans.chain(warnings).chain(flags).chain(messages).chain(deviations).chain(meetings)
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
