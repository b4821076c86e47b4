//! The follow-up rules of `EVENTS.md`: open cases by rule, and a summary per principal, as of a
//! moment. Pure functions of the views; the limits are configuration.

use std::collections::BTreeMap;

use chrono::Duration;
use chrono_tz::Europe::Stockholm;
use serde::{Deserialize, Serialize};
use sgd_schemas::events::{plans::PlanKind, Timestamp};

use super::DomainViews;

/// The limits of the rules (local agreements set them), with the defaults of `EVENTS.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FollowupLimits {
    /// An SVU admission notice later than this after the assessed need is late. Default 24.
    pub admission_notice_hours: i64,
    /// A medium/high score needs a plan event for the person within this. Default 48.
    pub warning_follow_up_hours: i64,
    /// A risk flag not acknowledged in this many days is overdue. Default 3.
    pub risk_acknowledge_days: i64,
    /// A message with no receipt in this many hours is undelivered. Default 24.
    pub receipt_hours: i64,
    /// A deviation not answered in this many days is overdue. Default 14.
    pub deviation_answer_days: i64,
    /// A deviation that requires an analysis and has none after this many days is overdue. Default 30.
    pub deviation_analysis_days: i64,
    /// Days as ready for discharge beyond this are paid for (betalningsansvar). Default 3.
    pub payment_threshold_days: i64,
}

impl Default for FollowupLimits {
    fn default() -> Self {
        Self {
            admission_notice_hours: 24,
            warning_follow_up_hours: 48,
            risk_acknowledge_days: 3,
            receipt_hours: 24,
            deviation_answer_days: 14,
            deviation_analysis_days: 30,
            payment_threshold_days: 3,
        }
    }
}

/// The rules, as named in the API.
pub const RULES: &[&str] = &[
    "late_notice",
    "ready_days_over_threshold",
    "svu_without_sip",
    "open_warning",
    "overdue_risk_flag",
    "undelivered_message",
    "rejected_message",
    "overdue_deviation",
    "overdue_analysis",
    "not_strongly_identified",
];

/// One open (or flagged) case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord)]
pub struct OpenCase {
    /// The rule.
    pub rule: &'static str,
    /// The principal it is counted for.
    pub principal: String,
    /// The case id (plan, assessment, flag, message, deviation or meeting id).
    pub case_id: String,
    /// Since when the case has been open or flagged.
    pub since: Timestamp,
}

/// Days as ready for discharge of one episode (SKR: calendar days in Sweden, never negative).
pub fn ready_days(ready_at: Timestamp, discharged_at: Timestamp) -> i64 {
    let ready = ready_at.with_timezone(&Stockholm).date_naive();
    let discharged = discharged_at.with_timezone(&Stockholm).date_naive();
    (discharged - ready).num_days().max(0)
}

/// Every open or flagged case as of `as_of`, sorted by rule, principal and case.
pub fn open_cases(views: &DomainViews, as_of: Timestamp, limits: &FollowupLimits) -> Vec<OpenCase> {
    let mut cases = Vec::new();
    let mut push = |rule: &'static str, principal: &Option<String>, case_id: &str, since: Timestamp| {
        if let Some(principal) = principal {
            cases.push(OpenCase { rule, principal: principal.clone(), case_id: case_id.into(), since });
        }
    };
    for (id, plan) in views.plans.plans.iter() {
        if let (Some(sent), Some(assessed)) = (plan.notice_sent_at, plan.need_assessed_at) {
            if sent <= as_of && sent - assessed > Duration::hours(limits.admission_notice_hours) {
                push("late_notice", &plan.notice_principal, id, sent);
            }
        }
        let Some(discharged) = plan.discharged_at.filter(|t| *t <= as_of) else { continue };
        if let Some(ready) = plan.ready_at {
            if ready_days(ready, discharged) > limits.payment_threshold_days {
                for principal in plan.accountable_principals() {
                    push("ready_days_over_threshold", &Some(principal), id, discharged);
                }
            }
        }
        if plan.kind == Some(PlanKind::Svu) && !plan.sip_held_at.is_some_and(|held| held <= discharged) {
            push("svu_without_sip", &plan.principal, id, discharged);
        }
    }
    let window = Duration::hours(limits.warning_follow_up_hours);
    for (id, w) in views.decision.warnings.iter().filter(|(_, w)| w.needs_follow_up()) {
        let Some(raised) = w.raised_at else { continue };
        if raised + window <= as_of && !views.plans.person_active_between(&w.person, raised, raised + window) {
            push("open_warning", &Some(w.principal.clone()), id, raised);
        }
    }
    for (id, f) in views.decision.flags.iter() {
        let Some(flagged) = f.flagged_at else { continue };
        let acknowledged = f.acknowledged_at.is_some_and(|t| t <= as_of);
        if !acknowledged && flagged + Duration::days(limits.risk_acknowledge_days) <= as_of {
            push("overdue_risk_flag", &f.principal, id, flagged);
        }
    }
    for (id, m) in views.sdk.messages.iter() {
        let received = m.received_at.filter(|t| *t <= as_of);
        if let Some(sent) = m.sent_at {
            if received.is_none() && sent + Duration::hours(limits.receipt_hours) <= as_of {
                push("undelivered_message", &m.principal, id, sent);
            }
        }
        if let (Some(at), true) = (received, m.rejected) {
            push("rejected_message", &m.principal, id, at);
        }
    }
    for (id, d) in views.deviation.deviations.iter() {
        let Some(logged) = d.logged_at.filter(|t| *t <= as_of) else { continue };
        let answered = d.first_concerned_answer().is_some_and(|t| t <= as_of);
        if !answered && logged + Duration::days(limits.deviation_answer_days) <= as_of {
            push("overdue_deviation", &d.principal, id, logged);
        }
        let analysed = d.analysis_at.is_some_and(|t| t <= as_of);
        if d.requires_analysis && !analysed && logged + Duration::days(limits.deviation_analysis_days) <= as_of {
            push("overdue_analysis", &d.principal, id, logged);
        }
    }
    for (id, m) in views.video.meetings.iter() {
        if let Some(held) = m.held_at.filter(|t| *t <= as_of) {
            if m.admitted_weak > 0 {
                push("not_strongly_identified", &m.principal, id, held);
            }
        }
    }
    cases.sort();
    cases
}

/// One principal's follow-up figures.
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct PrincipalFollowup {
    /// Principal code.
    pub principal: String,
    /// Its name.
    pub name: String,
    /// Open or flagged cases per rule.
    pub cases: BTreeMap<&'static str, u64>,
    /// Discharged episodes with a ready-for-discharge date (utskrivningsklar).
    pub discharge_episodes: u64,
    /// SKR: mean days as ready for discharge over episodes of at least one day.
    pub ready_days_mean: Option<f64>,
    /// Share of episodes discharged the day they were ready (day 0).
    pub ready_day0_share: Option<f64>,
    /// Days beyond the payment threshold, summed over episodes.
    pub days_beyond_threshold: u64,
}

/// The follow-up summary of every principal as of `as_of`.
pub fn summary(views: &DomainViews, as_of: Timestamp, limits: &FollowupLimits) -> Vec<PrincipalFollowup> {
    let mut by_principal: BTreeMap<String, PrincipalFollowup> = sgd_schemas::principals::all()
        .iter()
        .map(|p| {
            let cases = RULES.iter().map(|r| (*r, 0)).collect();
            (
                p.code.to_string(),
                PrincipalFollowup { principal: p.code.into(), name: p.name.into(), cases, ..Default::default() },
            )
        })
        .collect();
    for case in open_cases(views, as_of, limits) {
        if let Some(entry) = by_principal.get_mut(&case.principal) {
            *entry.cases.entry(case.rule).or_default() += 1;
        }
    }
    let mut episodes: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for plan in views.plans.plans.values() {
        let (Some(ready), Some(discharged)) = (plan.ready_at, plan.discharged_at.filter(|t| *t <= as_of)) else {
            continue;
        };
        for principal in plan.accountable_principals() {
            episodes.entry(principal).or_default().push(ready_days(ready, discharged));
        }
    }
    for (principal, days) in episodes {
        let Some(entry) = by_principal.get_mut(&principal) else { continue };
        let at_least_one: Vec<i64> = days.iter().copied().filter(|d| *d >= 1).collect();
        entry.discharge_episodes = days.len() as u64;
        entry.ready_days_mean =
            (!at_least_one.is_empty()).then(|| at_least_one.iter().sum::<i64>() as f64 / at_least_one.len() as f64);
        entry.ready_day0_share =
            (!days.is_empty()).then(|| days.iter().filter(|d| **d == 0).count() as f64 / days.len() as f64);
        entry.days_beyond_threshold =
            days.iter().map(|d| (d - limits.payment_threshold_days).max(0)).sum::<i64>() as u64;
    }
    by_principal.into_values().collect()
}
