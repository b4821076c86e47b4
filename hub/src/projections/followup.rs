//! The follow-up rules of `EVENTS.md`: open cases by rule, and a summary per principal, as of a
//! moment. Pure functions of the views; the limits are configuration.

use std::collections::BTreeMap;

use chrono::Duration;
use serde::{Deserialize, Serialize};
use sgd_schemas::events::{plans::PlanKind, Timestamp};

use super::{
    aggregates::{Measure, RULE_MEASURES},
    ids::PrincipalCode,
    moment::Moment,
    DomainViews,
};

/// The limits of the rules (local agreements set them), with the defaults of `EVENTS.md`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, PartialOrd, Ord, utoipa::ToSchema)]
pub struct OpenCase {
    /// The rule.
    #[schema(value_type = String)]
    pub rule: &'static str,
    /// The principal it is counted for.
    pub principal: String,
    /// The case id (plan, assessment, flag, message, deviation or meeting id).
    pub case_id: String,
    /// Since when the case has been open or flagged, in Swedish time (Europe/Stockholm), whatever
    /// offset the event was written with.
    #[schema(value_type = String, format = DateTime)]
    pub since: Timestamp,
}

/// Days as ready for discharge of one episode (SKR: calendar days in Sweden, never negative).
pub fn ready_days(ready_at: Moment, discharged_at: Moment) -> i64 {
    (discharged_at.swedish_day() - ready_at.swedish_day()).num_days().max(0)
}

/// Every open or flagged case as of `as_of`, sorted by rule, principal and case.
pub fn open_cases(views: &DomainViews, as_of: Timestamp, limits: &FollowupLimits) -> Vec<OpenCase> {
    let mut cases = Vec::new();
    let mut push = |rule: &'static str, principal: Option<&str>, case_id: &str, since: Moment| {
        if let Some(principal) = principal {
            let since = since.to_timestamp();
            cases.push(OpenCase { rule, principal: principal.into(), case_id: case_id.into(), since });
        }
    };
    views.plans.plans.for_each(|id, plan| {
        if let (Some(sent), Some(assessed)) = (plan.notice_sent_at, plan.need_assessed_at) {
            if sent <= as_of && sent - assessed > Duration::hours(limits.admission_notice_hours) {
                push("late_notice", plan.notice_principal.as_deref(), id, sent);
            }
        }
        let Some(discharged) = plan.discharged_at.filter(|t| *t <= as_of) else { return };
        if let Some(ready) = plan.ready_at {
            if ready_days(ready, discharged) > limits.payment_threshold_days {
                for principal in plan.accountable_principals() {
                    push("ready_days_over_threshold", Some(principal.as_str()), id, discharged);
                }
            }
        }
        if plan.kind == Some(PlanKind::Svu) && plan.sip_held_at.is_none_or(|held| held > discharged) {
            push("svu_without_sip", plan.principal.as_deref(), id, discharged);
        }
    });
    let window = Duration::hours(limits.warning_follow_up_hours);
    views.decision.warnings.for_each(|id, w| {
        let Some(raised) = w.raised_at.filter(|_| w.needs_follow_up()) else { return };
        if raised + window <= as_of && !views.plans.person_active_between(&w.person, raised, raised + window) {
            push("open_warning", Some(&w.principal), id, raised);
        }
    });
    views.decision.flags.for_each(|id, f| {
        let Some(flagged) = f.flagged_at else { return };
        let acknowledged = f.acknowledged_at.is_some_and(|t| t <= as_of);
        if !acknowledged && flagged + Duration::days(limits.risk_acknowledge_days) <= as_of {
            push("overdue_risk_flag", f.principal.as_deref(), id, flagged);
        }
    });
    views.sdk.messages.for_each(|id, m| {
        let received = m.received_at.filter(|t| *t <= as_of);
        if let Some(sent) = m.sent_at {
            if received.is_none() && sent + Duration::hours(limits.receipt_hours) <= as_of {
                push("undelivered_message", m.principal.as_deref(), id, sent);
            }
        }
        if let (Some(at), true) = (received, m.rejected) {
            push("rejected_message", m.principal.as_deref(), id, at);
        }
    });
    views.deviation.deviations.for_each(|id, d| {
        let Some(logged) = d.logged_at.filter(|t| *t <= as_of) else { return };
        let answered = d.first_concerned_answer().is_some_and(|t| t <= as_of);
        if !answered && logged + Duration::days(limits.deviation_answer_days) <= as_of {
            push("overdue_deviation", d.principal.as_deref(), id, logged);
        }
        let analysed = d.analysis_at.is_some_and(|t| t <= as_of);
        if d.requires_analysis && !analysed && logged + Duration::days(limits.deviation_analysis_days) <= as_of {
            push("overdue_analysis", d.principal.as_deref(), id, logged);
        }
    });
    views.video.meetings.for_each(|id, m| {
        if let Some(held) = m.held_at.filter(|t| *t <= as_of) {
            if m.admitted_weak > 0 {
                push("not_strongly_identified", m.principal.as_deref(), id, held);
            }
        }
    });
    cases.sort();
    cases
}

/// One principal's follow-up figures.
#[derive(Debug, Clone, PartialEq, Serialize, Default, utoipa::ToSchema)]
pub struct PrincipalFollowup {
    /// Principal code.
    pub principal: String,
    /// Its name.
    pub name: String,
    /// Open or flagged cases per rule (`null` when suppressed).
    #[schema(value_type = Object)]
    pub cases: BTreeMap<&'static str, Option<u64>>,
    /// Discharged episodes with a ready-for-discharge date (utskrivningsklar).
    pub discharge_episodes: Option<u64>,
    /// SKR: mean days as ready for discharge over episodes of at least one day.
    pub ready_days_mean: Option<f64>,
    /// Share of episodes discharged the day they were ready (day 0).
    pub ready_day0_share: Option<f64>,
    /// Days beyond the payment threshold, summed over episodes.
    pub days_beyond_threshold: Option<u64>,
    /// Present and true when small counts were suppressed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// The follow-up summary of every principal as of `as_of`, from the aggregates (the counts of
/// [`open_cases`], and the discharge episodes, summed per principal; limits as the views counted
/// them, see [`super::aggregates::Aggregates::limits`]).
pub fn summary(views: &DomainViews, as_of: Timestamp) -> Vec<PrincipalFollowup> {
    let totals = views.aggregates.totals_at(as_of.into());
    sgd_schemas::principals::all()
        .iter()
        .map(|p| {
            let mut entry = PrincipalFollowup { principal: p.code.into(), name: p.name.into(), ..Default::default() };
            let Some(code) = PrincipalCode::parse(p.code) else { return entry };
            let count = |measure| totals.principal(measure, code);
            entry.cases =
                RULES.iter().zip(RULE_MEASURES).map(|(rule, measure)| (*rule, Some(count(measure)))).collect();
            let episodes = count(Measure::DischargeEpisodes);
            let of_a_day_or_more = count(Measure::EpisodesOfADayOrMore);
            entry.discharge_episodes = Some(episodes);
            entry.ready_days_mean =
                (of_a_day_or_more > 0).then(|| count(Measure::ReadyDays) as f64 / of_a_day_or_more as f64);
            entry.ready_day0_share = (episodes > 0).then(|| count(Measure::DayZeroEpisodes) as f64 / episodes as f64);
            entry.days_beyond_threshold = Some(count(Measure::DaysBeyondThreshold));
            entry
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::projections::testing::{at, event, given, person};

    fn cases(views: &DomainViews, as_of: &str, rule: &str) -> Vec<String> {
        crate::projections::reference::assert_aggregates_agree(views, at(as_of));
        open_cases(views, at(as_of), &FollowupLimits::default())
            .into_iter()
            .filter(|c| c.rule == rule)
            .map(|c| format!("{}:{}", c.principal, c.case_id))
            .collect()
    }

    #[test]
    fn an_admission_notice_is_late_only_after_24_hours_exactly() {
        let notice = |plan: &str, sent: &str| {
            event(
                "se.sgd.plans.admission.notified",
                "12",
                sent,
                json!({"plan_id": plan, "need_assessed_at": "2026-03-02T08:00:00+01:00", "sent_at": sent}),
            )
        };
        let views =
            given(&[notice("on-time", "2026-03-03T08:00:00+01:00"), notice("late", "2026-03-03T08:00:01+01:00")]);
        assert_eq!(cases(&views, "2026-04-01T00:00:00Z", "late_notice"), vec!["12:late"]);
    }

    #[test]
    fn a_warning_is_open_when_no_plan_event_follows_within_48_hours() {
        let p = person('a');
        let q = person('b');
        let raised = |id: &str, who: &str, band: &str| {
            event(
                "se.sgd.decision.score.raised",
                "1280",
                "2026-03-02T10:00:00+01:00",
                json!({"person": who, "assessment_id": id, "scale": "news2", "score": 6, "band": band}),
            )
        };
        let plan = |who: &str, time: &str| {
            event(
                "se.sgd.plans.plan.created",
                "12",
                time,
                json!({"plan_id": format!("plan-{who}"), "kind": "svu", "person": who}),
            )
        };
        let views = given(&[
            raised("followed-at-48h", &p, "medium"),
            plan(&p, "2026-03-04T10:00:00+01:00"), // exactly 48 h later: followed
            raised("late-follow-up", &q, "high"),
            plan(&q, "2026-03-04T10:00:01+01:00"), // one second too late
            raised("low-band", &person('c'), "low_medium"),
        ]);
        // not counted before the 48 hours have passed
        assert!(cases(&views, "2026-03-04T09:59:59+01:00", "open_warning").is_empty());
        assert_eq!(cases(&views, "2026-03-05T00:00:00+01:00", "open_warning"), vec!["1280:late-follow-up"]);
    }

    #[test]
    fn ready_for_discharge_days_follow_the_skr_definition() {
        let episode = |plan: &str, ready: &str, discharged: &str| {
            vec![
                event(
                    "se.sgd.plans.plan.created",
                    "12",
                    ready,
                    json!({"plan_id": plan, "kind": "svu", "person": person('d'), "participants": ["12", "1280"]}),
                ),
                event("se.sgd.plans.discharge.ready", "12", ready, json!({"plan_id": plan, "ready_at": ready})),
                event(
                    "se.sgd.plans.patient.discharged",
                    "12",
                    discharged,
                    json!({"plan_id": plan, "discharged_at": discharged}),
                ),
            ]
        };
        let mut events = Vec::new();
        events.extend(episode("day0", "2026-03-02T09:00:00+01:00", "2026-03-02T23:30:00+01:00"));
        // 23:30 UTC on 2 March is 3 March in Sweden: one day
        events.extend(episode("one", "2026-03-02T09:00:00+01:00", "2026-03-02T23:30:00Z"));
        events.extend(episode("five", "2026-03-02T09:00:00+01:00", "2026-03-07T09:00:00+01:00"));
        let views = given(&events);
        let summary = summary(&views, at("2026-04-01T00:00:00Z"));
        crate::projections::reference::assert_aggregates_agree(&views, at("2026-04-01T00:00:00Z"));
        let malmo = summary.iter().find(|p| p.principal == "1280").unwrap();
        assert_eq!(malmo.discharge_episodes, Some(3));
        assert_eq!(malmo.ready_days_mean, Some(3.0)); // (1 + 5) / 2: day-0 episodes apart
        assert_eq!(malmo.ready_day0_share, Some(1.0 / 3.0));
        assert_eq!(malmo.days_beyond_threshold, Some(2)); // 5 − 3
        assert_eq!(malmo.cases["ready_days_over_threshold"], Some(1));
        // none had a SIP: each SVU plan is flagged, for its creator
        assert_eq!(cases(&views, "2026-04-01T00:00:00Z", "svu_without_sip").len(), 3);
    }

    #[test]
    fn a_sip_before_discharge_clears_the_flag_but_one_after_does_not() {
        let events = vec![
            event(
                "se.sgd.plans.plan.created",
                "12",
                "2026-03-01T09:00:00+01:00",
                json!({"plan_id": "a", "kind": "svu", "person": person('e')}),
            ),
            event(
                "se.sgd.plans.sip.held",
                "1280",
                "2026-03-03T09:00:00+01:00",
                json!({"plan_id": "a", "held_at": "2026-03-03T09:00:00+01:00", "mode": "video"}),
            ),
            event(
                "se.sgd.plans.patient.discharged",
                "12",
                "2026-03-04T09:00:00+01:00",
                json!({"plan_id": "a", "discharged_at": "2026-03-04T09:00:00+01:00"}),
            ),
            event(
                "se.sgd.plans.plan.created",
                "12",
                "2026-03-01T09:00:00+01:00",
                json!({"plan_id": "b", "kind": "svu", "person": person('f')}),
            ),
            event(
                "se.sgd.plans.patient.discharged",
                "12",
                "2026-03-04T09:00:00+01:00",
                json!({"plan_id": "b", "discharged_at": "2026-03-04T09:00:00+01:00"}),
            ),
            event(
                "se.sgd.plans.sip.held",
                "1280",
                "2026-03-05T09:00:00+01:00",
                json!({"plan_id": "b", "held_at": "2026-03-05T09:00:00+01:00", "mode": "physical"}),
            ),
        ];
        assert_eq!(cases(&given(&events), "2026-04-01T00:00:00Z", "svu_without_sip"), vec!["12:b"]);
    }

    #[test]
    fn risk_flags_messages_deviations_and_meetings() {
        let events = vec![
            event(
                "se.sgd.decision.risk.flagged",
                "12",
                "2026-03-01T09:00:00+01:00",
                json!({"person": person('g'), "flag_id": "acked", "primary_care_unit": "SE2321000255-VC1"}),
            ),
            event("se.sgd.decision.risk.acknowledged", "12", "2026-03-03T09:00:00+01:00", json!({"flag_id": "acked"})),
            event(
                "se.sgd.decision.risk.flagged",
                "12",
                "2026-03-01T09:00:00+01:00",
                json!({"person": person('h'), "flag_id": "ignored", "primary_care_unit": "SE2321000255-VC1"}),
            ),
            event(
                "se.sgd.sdk.message.sent",
                "1281",
                "2026-03-01T09:00:00+01:00",
                json!({"message_id": "no-receipt", "recipient_principal": "12"}),
            ),
            event(
                "se.sgd.sdk.message.sent",
                "1281",
                "2026-03-01T09:00:00+01:00",
                json!({"message_id": "rejected", "recipient_principal": "12"}),
            ),
            event(
                "se.sgd.sdk.message.delivered",
                "12",
                "2026-03-01T09:05:00+01:00",
                json!({"message_id": "rejected", "status": "rejected", "error_code": "E1"}),
            ),
            event(
                "se.sgd.deviation.case.logged",
                "1283",
                "2026-03-01T09:00:00+01:00",
                json!({"deviation_id": "serious", "concerned_principals": ["12"], "category": "x", "actuality": "actual", "probability": 2, "consequence": 4}),
            ),
            // an answer from a principal that is not concerned does not count
            event(
                "se.sgd.deviation.case.answered",
                "1280",
                "2026-03-02T09:00:00+01:00",
                json!({"deviation_id": "serious", "answered_by": "1280"}),
            ),
            event(
                "se.sgd.deviation.case.logged",
                "1283",
                "2026-03-01T09:00:00+01:00",
                json!({"deviation_id": "minor", "concerned_principals": ["12"], "category": "x", "actuality": "near_miss", "probability": 1, "consequence": 1}),
            ),
            event(
                "se.sgd.deviation.case.answered",
                "12",
                "2026-03-10T09:00:00+01:00",
                json!({"deviation_id": "minor", "answered_by": "12"}),
            ),
            event(
                "se.sgd.video.meeting.booked",
                "1290",
                "2026-03-01T09:00:00+01:00",
                json!({"meeting_id": "weak", "purpose": "sip", "principals": ["1290"]}),
            ),
            event(
                "se.sgd.video.participant.admitted",
                "1290",
                "2026-03-02T09:00:00+01:00",
                json!({"meeting_id": "weak", "method": "siths"}),
            ),
            event(
                "se.sgd.video.participant.admitted",
                "1290",
                "2026-03-02T09:00:00+01:00",
                json!({"meeting_id": "weak", "method": "none"}),
            ),
            event(
                "se.sgd.video.meeting.held",
                "1290",
                "2026-03-02T10:00:00+01:00",
                json!({"meeting_id": "weak", "duration_s": 600, "participants": 2}),
            ),
        ];
        let views = given(&events);
        assert!(cases(&views, "2026-03-04T08:59:59+01:00", "overdue_risk_flag").is_empty());
        assert_eq!(cases(&views, "2026-03-04T09:00:00+01:00", "overdue_risk_flag"), vec!["12:ignored"]);
        assert_eq!(cases(&views, "2026-03-02T09:00:00+01:00", "undelivered_message"), vec!["1281:no-receipt"]);
        assert_eq!(cases(&views, "2026-03-02T09:00:00+01:00", "rejected_message"), vec!["1281:rejected"]);
        assert!(cases(&views, "2026-03-15T08:59:59+01:00", "overdue_deviation").is_empty());
        assert_eq!(cases(&views, "2026-03-15T09:00:00+01:00", "overdue_deviation"), vec!["1283:serious"]);
        assert!(cases(&views, "2026-03-31T08:59:59+01:00", "overdue_analysis").is_empty());
        assert_eq!(cases(&views, "2026-03-31T09:00:00+01:00", "overdue_analysis"), vec!["1283:serious"]);
        assert_eq!(cases(&views, "2026-03-03T00:00:00+01:00", "not_strongly_identified"), vec!["1290:weak"]);
    }
}
