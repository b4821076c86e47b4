//! The goals about cases and the follow-up summary computed by walking every case as of a moment:
//! what the aggregates ([`super::aggregates`]) must always answer. Only the tests use it.

use std::collections::BTreeMap;

use chrono::Duration;
use sgd_schemas::events::{plans::PlanKind, Timestamp};

use super::{
    followup::{open_cases, ready_days, FollowupLimits, PrincipalFollowup, RULES},
    DomainViews,
};

/// Every record of a table, in memory or on disk.
fn every<V, K>(table: &crate::projections::table::Table<V, K>) -> Vec<V>
where
    V: serde::Serialize + serde::de::DeserializeOwned + Default + Clone,
    K: crate::projections::ids::TableKey,
{
    let mut out = Vec::new();
    table.for_each(|_, value| out.push(value.clone()));
    out
}

/// The goals about cases as (id, numerator, denominator), walking every case.
pub fn case_goals(views: &DomainViews, as_of: Timestamp, limits: &FollowupLimits) -> Vec<(&'static str, u64, u64)> {
    let (mut notices, mut notices_in_time) = (0, 0);
    let (mut discharged_svu, mut sip_before) = (0, 0);
    for plan in &every(&views.plans.plans) {
        if let (Some(sent), Some(assessed)) = (plan.notice_sent_at, plan.need_assessed_at) {
            if sent <= as_of {
                notices += 1;
                if sent - assessed <= Duration::hours(limits.admission_notice_hours) {
                    notices_in_time += 1;
                }
            }
        }
        if plan.kind == Some(PlanKind::Svu) {
            if let Some(discharged) = plan.discharged_at.filter(|t| *t <= as_of) {
                discharged_svu += 1;
                if plan.sip_held_at.is_some_and(|held| held <= discharged) {
                    sip_before += 1;
                }
            }
        }
    }
    let window = Duration::hours(limits.warning_follow_up_hours);
    let (mut warnings, mut followed) = (0, 0);
    for w in every(&views.decision.warnings).iter().filter(|w| w.needs_follow_up()) {
        let Some(raised) = w.raised_at else { continue };
        if raised + window > as_of {
            continue;
        }
        warnings += 1;
        if views.plans.person_active_between(&w.person, raised, raised + window) {
            followed += 1;
        }
    }
    let answer_limit = Duration::days(limits.deviation_answer_days);
    let (mut deviations, mut answered) = (0, 0);
    for d in &every(&views.deviation.deviations) {
        let Some(logged) = d.logged_at.filter(|t| *t <= as_of) else { continue };
        let in_time = d.first_concerned_answer().is_some_and(|a| a <= as_of && a - logged <= answer_limit);
        if in_time {
            deviations += 1;
            answered += 1;
        } else if logged + answer_limit <= as_of {
            deviations += 1;
        }
    }
    let (mut held, mut strong) = (0, 0);
    for m in &every(&views.video.meetings) {
        if m.held_at.is_some_and(|t| t <= as_of) {
            held += 1;
            if m.admitted_weak == 0 {
                strong += 1;
            }
        }
    }
    vec![
        ("plans.admission_notice_24h", notices_in_time, notices),
        ("plans.sip_before_discharge", sip_before, discharged_svu),
        ("decision.warnings_followed_up", followed, warnings),
        ("deviation.answered_in_time", answered, deviations),
        ("video.strong_identification", strong, held),
    ]
}

/// The follow-up summary of every principal, walking every case.
pub fn summary(views: &DomainViews, as_of: Timestamp, limits: &FollowupLimits) -> Vec<PrincipalFollowup> {
    let mut by_principal: BTreeMap<String, PrincipalFollowup> = sgd_schemas::principals::all()
        .iter()
        .map(|p| {
            let cases = RULES.iter().map(|r| (*r, Some(0))).collect();
            let entry = PrincipalFollowup {
                principal: p.code.into(),
                name: p.name.into(),
                cases,
                discharge_episodes: Some(0),
                days_beyond_threshold: Some(0),
                ..Default::default()
            };
            (p.code.to_string(), entry)
        })
        .collect();
    for case in open_cases(views, as_of, limits) {
        if let Some(entry) = by_principal.get_mut(&case.principal) {
            *entry.cases.entry(case.rule).or_default().get_or_insert(0) += 1;
        }
    }
    let mut episodes: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for plan in &every(&views.plans.plans) {
        let (Some(ready), Some(discharged)) = (plan.ready_at, plan.discharged_at.filter(|t| *t <= as_of)) else {
            continue;
        };
        for principal in plan.accountable_principals() {
            episodes.entry(principal.as_str().into()).or_default().push(ready_days(ready, discharged));
        }
    }
    for (principal, days) in episodes {
        let Some(entry) = by_principal.get_mut(&principal) else { continue };
        let at_least_one: Vec<i64> = days.iter().copied().filter(|d| *d >= 1).collect();
        entry.discharge_episodes = Some(days.len() as u64);
        entry.ready_days_mean =
            (!at_least_one.is_empty()).then(|| at_least_one.iter().sum::<i64>() as f64 / at_least_one.len() as f64);
        entry.ready_day0_share =
            (!days.is_empty()).then(|| days.iter().filter(|d| **d == 0).count() as f64 / days.len() as f64);
        entry.days_beyond_threshold =
            Some(days.iter().map(|d| (d - limits.payment_threshold_days).max(0)).sum::<i64>() as u64);
    }
    by_principal.into_values().collect()
}

/// Asserts that the aggregates of `views` answer the goals about cases and the follow-up summary
/// as of `as_of` exactly as walking every case does.
pub fn assert_aggregates_agree(views: &DomainViews, as_of: Timestamp) {
    let limits = views.aggregates.limits();
    let goals = super::goals::goals(views, &Default::default(), as_of, &Default::default());
    for (id, numerator, denominator) in case_goals(views, as_of, limits) {
        let goal = goals.iter().find(|g| g.id == id).expect("every case goal is listed");
        assert_eq!((goal.numerator, goal.denominator), (numerator, denominator), "{id} as of {as_of}");
    }
    assert_eq!(super::followup::summary(views, as_of), summary(views, as_of, limits), "summary as of {as_of}");
}
