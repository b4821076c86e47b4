//! The stated goals of the six areas as numbers: numerator, denominator, value and target, as of
//! a moment. Pure functions of the views; see `docs/goals.md` for each definition.

use std::collections::{BTreeSet, HashMap};

use serde::{Deserialize, Serialize};
use sgd_schemas::events::Timestamp;

use super::{aggregates::Measure, ids::Principals, DomainViews};

/// Settings of the goals (configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GoalSettings {
    /// The agreed minimum of NPÖ information sets every producer principal shares.
    pub npo_minimum_sets: Vec<String>,
    /// Targets by goal id (default 1.0 for every goal: "every principal", "every case").
    pub targets: HashMap<String, f64>,
}

impl Default for GoalSettings {
    fn default() -> Self {
        Self {
            npo_minimum_sets: vec![
                "GetCareDocumentation".into(),
                "GetAlertInformation".into(),
                "GetFunctionalStatus".into(),
            ],
            targets: HashMap::new(),
        }
    }
}

/// One goal's standing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Goal {
    /// Stable id, e.g. `npo.both_roles`.
    pub id: &'static str,
    /// The area.
    pub area: &'static str,
    /// What it measures.
    pub title: &'static str,
    /// How many meet it.
    pub numerator: u64,
    /// Out of how many.
    pub denominator: u64,
    /// numerator / denominator; `null` when the denominator is 0.
    pub value: Option<f64>,
    /// The target value.
    pub target: f64,
    /// Whether it counts cases about persons (then small counts are suppressed when published).
    #[serde(skip)]
    pub about_persons: bool,
}

/// Which principals have published at least one event of each type (up to the as-of day), by
/// type ([`super::publishers::PublishersView::until`]).
pub type PublishersByType<'a> = HashMap<&'a str, Principals>;

/// Every goal as of `as_of`: the principal goals from the roles, the addresses and the
/// publishers; the goals about cases from the aggregates (counted with the follow-up limits of
/// [`super::aggregates::Aggregates::limits`]).
pub fn goals(
    views: &DomainViews,
    publishers: &PublishersByType,
    as_of: Timestamp,
    settings: &GoalSettings,
) -> Vec<Goal> {
    let principals = sgd_schemas::principals::all().len() as u64;
    let publishers_of = |types: &[&str]| -> u64 {
        types.iter().filter_map(|t| publishers.get(t)).fold(Principals::default(), |all, p| all.union(*p)).len() as u64
    };

    // NPÖ: active roles as of, per principal.
    let mut producers: HashMap<&str, BTreeSet<String>> = HashMap::new();
    let mut consumers: BTreeSet<&str> = BTreeSet::new();
    for role in views.npo.roles.values() {
        let Some(sets) = role.state_at(as_of) else { continue };
        if role.role == "producer" {
            producers.entry(role.principal.as_str()).or_default().extend(sets);
        } else {
            consumers.insert(role.principal.as_str());
        }
    }
    let both_roles = producers.keys().filter(|p| consumers.contains(*p)).count() as u64;
    let minimum_sets =
        producers.values().filter(|sets| settings.npo_minimum_sets.iter().all(|s| sets.contains(s))).count() as u64;

    let sdk_access = views
        .sdk
        .addresses
        .values()
        .filter(|a| a.first_at.is_some_and(|t| t <= as_of))
        .map(|a| a.principal.as_str())
        .collect::<BTreeSet<_>>()
        .len() as u64;

    let totals = views.aggregates.totals_at(as_of.into());
    let count = |measure| totals.region(measure);

    let goal = |id: &'static str, area: &'static str, title: &'static str, numerator: u64, denominator: u64| Goal {
        id,
        area,
        title,
        numerator,
        denominator,
        value: (denominator > 0).then(|| numerator as f64 / denominator as f64),
        target: settings.targets.get(id).copied().unwrap_or(1.0),
        // Principal goals count principals; the others count cases about persons.
        about_persons: area_goal_counts_cases(id),
    };
    vec![
        goal(
            "npo.both_roles",
            "npo",
            "Principals with a unit active as NPÖ producer and one as consumer",
            both_roles,
            principals,
        ),
        goal(
            "npo.minimum_sets",
            "npo",
            "Principals whose active producer units share every information set of the agreed minimum",
            minimum_sets,
            principals,
        ),
        goal("sdk.access", "sdk", "Principals with a published SDK function address", sdk_access, principals),
        goal(
            "plans.connected",
            "plans",
            "Principals that have published any Mina Planer event",
            publishers_of(&PLANS_TYPES),
            principals,
        ),
        goal(
            "plans.admission_notice_24h",
            "plans",
            "Admission notices sent within 24 h of the assessed need",
            count(Measure::NoticesInTime),
            count(Measure::NoticesSent),
        ),
        goal(
            "plans.sip_before_discharge",
            "plans",
            "Discharged SVU plans with a SIP held before discharge",
            count(Measure::SipBeforeDischarge),
            count(Measure::DischargedSvuPlans),
        ),
        goal(
            "decision.digital",
            "decision",
            "Principals that have published a ViSam assessment",
            publishers_of(&["se.sgd.decision.assessment.completed"]),
            principals,
        ),
        goal(
            "decision.warnings_followed_up",
            "decision",
            "Medium or high early-warning scores followed within 48 h by a Mina Planer event for the person",
            count(Measure::WarningsFollowedUp),
            count(Measure::WarningsDue),
        ),
        goal(
            "deviation.answered_in_time",
            "deviation",
            "Deviations answered within 14 days",
            count(Measure::DeviationsAnsweredInTime),
            count(Measure::DeviationsDue),
        ),
        goal(
            "video.adoption",
            "video",
            "Principals that have booked a video meeting",
            publishers_of(&["se.sgd.video.meeting.booked"]),
            principals,
        ),
        goal(
            "video.strong_identification",
            "video",
            "Held meetings where every admitted participant used BankID, SITHS or Freja",
            count(Measure::MeetingsStronglyIdentified),
            count(Measure::MeetingsHeld),
        ),
    ]
}

fn area_goal_counts_cases(id: &str) -> bool {
    matches!(
        id,
        "plans.admission_notice_24h"
            | "plans.sip_before_discharge"
            | "decision.warnings_followed_up"
            | "deviation.answered_in_time"
            | "video.strong_identification"
    )
}

/// Every Mina Planer event type.
pub const PLANS_TYPES: [&str; 7] = [
    "se.sgd.plans.plan.created",
    "se.sgd.plans.admission.notified",
    "se.sgd.plans.discharge.ready",
    "se.sgd.plans.discharge.withdrawn",
    "se.sgd.plans.patient.discharged",
    "se.sgd.plans.sip.held",
    "se.sgd.plans.plan.closed",
];

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::projections::testing::{at, event, given, person};

    fn goal(views: &DomainViews, publishers: &PublishersByType, as_of: &str, id: &str) -> (u64, u64) {
        crate::projections::reference::assert_aggregates_agree(views, at(as_of));
        let all = goals(views, publishers, at(as_of), &GoalSettings::default());
        let g = all.into_iter().find(|g| g.id == id).unwrap();
        (g.numerator, g.denominator)
    }

    #[test]
    fn npo_roles_count_until_deactivated_and_minimum_sets_need_every_set() {
        let all = json!(["GetCareDocumentation", "GetAlertInformation", "GetFunctionalStatus"]);
        let views = given(&[
            event(
                "se.sgd.npo.role.activated",
                "1280",
                "2026-01-01T00:00:00Z",
                json!({"unit": "SE2120001124-A", "role": "producer", "information_sets": all}),
            ),
            event(
                "se.sgd.npo.role.activated",
                "1280",
                "2026-01-01T00:00:00Z",
                json!({"unit": "SE2120001124-B", "role": "consumer"}),
            ),
            event(
                "se.sgd.npo.role.deactivated",
                "1280",
                "2026-02-01T00:00:00Z",
                json!({"unit": "SE2120001124-B", "role": "consumer"}),
            ),
            event(
                "se.sgd.npo.role.activated",
                "1281",
                "2026-01-01T00:00:00Z",
                json!({"unit": "SE2120001173-A", "role": "producer", "information_sets": ["GetCareDocumentation"]}),
            ),
            event(
                "se.sgd.npo.role.activated",
                "1281",
                "2026-01-01T00:00:00Z",
                json!({"unit": "SE2120001173-B", "role": "consumer"}),
            ),
            // a producer stops sharing one set of the minimum
            event(
                "se.sgd.npo.role.deactivated",
                "1280",
                "2026-03-01T00:00:00Z",
                json!({"unit": "SE2120001124-A", "role": "producer", "information_sets": ["GetFunctionalStatus"]}),
            ),
        ]);
        let none = PublishersByType::new();
        assert_eq!(goal(&views, &none, "2026-01-15T00:00:00Z", "npo.both_roles"), (2, 34));
        assert_eq!(goal(&views, &none, "2026-02-15T00:00:00Z", "npo.both_roles"), (1, 34));
        assert_eq!(goal(&views, &none, "2026-02-15T00:00:00Z", "npo.minimum_sets"), (1, 34));
        assert_eq!(goal(&views, &none, "2026-03-15T00:00:00Z", "npo.minimum_sets"), (0, 34));
    }

    #[test]
    fn shares_of_cases_count_only_what_is_due() {
        let p = person('a');
        let views = given(&[
            event(
                "se.sgd.plans.admission.notified",
                "12",
                "2026-03-02T08:00:00Z",
                json!({"plan_id": "x", "need_assessed_at": "2026-03-01T08:00:00Z", "sent_at": "2026-03-02T08:00:00Z"}),
            ),
            event(
                "se.sgd.plans.admission.notified",
                "12",
                "2026-03-03T08:00:00Z",
                json!({"plan_id": "y", "need_assessed_at": "2026-03-01T08:00:00Z", "sent_at": "2026-03-03T08:00:00Z"}),
            ),
            event(
                "se.sgd.decision.score.raised",
                "1280",
                "2026-03-02T10:00:00Z",
                json!({"person": p, "assessment_id": "w", "scale": "news2", "score": 7, "band": "high"}),
            ),
            event(
                "se.sgd.deviation.case.logged",
                "1283",
                "2026-03-01T00:00:00Z",
                json!({"deviation_id": "d1", "concerned_principals": ["12"], "category": "x", "actuality": "actual", "probability": 1, "consequence": 1}),
            ),
            event(
                "se.sgd.deviation.case.logged",
                "1283",
                "2026-03-01T00:00:00Z",
                json!({"deviation_id": "d2", "concerned_principals": ["12"], "category": "x", "actuality": "actual", "probability": 1, "consequence": 1}),
            ),
            event(
                "se.sgd.deviation.case.answered",
                "12",
                "2026-03-15T00:00:00Z",
                json!({"deviation_id": "d1", "answered_by": "12"}),
            ),
        ]);
        let none = PublishersByType::new();
        assert_eq!(goal(&views, &none, "2026-04-01T00:00:00Z", "plans.admission_notice_24h"), (1, 2));
        assert_eq!(goal(&views, &none, "2026-03-04T09:59:59Z", "decision.warnings_followed_up"), (0, 0));
        assert_eq!(goal(&views, &none, "2026-03-04T10:00:00Z", "decision.warnings_followed_up"), (0, 1));
        // d1 answered on day 14 exactly: in time; d2 unanswered: waits until its 14 days are over
        assert_eq!(goal(&views, &none, "2026-03-14T23:59:59Z", "deviation.answered_in_time"), (0, 0));
        assert_eq!(goal(&views, &none, "2026-03-15T00:00:00Z", "deviation.answered_in_time"), (1, 2));
    }

    #[test]
    fn principal_goals_from_publishers() {
        let mut publishers = PublishersByType::new();
        let code = |text| crate::projections::ids::PrincipalCode::parse(text).unwrap();
        publishers.entry("se.sgd.plans.sip.held").or_default().insert(code("12"));
        publishers.entry("se.sgd.plans.plan.created").or_default().insert(code("1280"));
        publishers.entry("se.sgd.video.meeting.booked").or_default().insert(code("1280"));
        let views = DomainViews::default();
        assert_eq!(goal(&views, &publishers, "2026-04-01T00:00:00Z", "plans.connected"), (2, 34));
        assert_eq!(goal(&views, &publishers, "2026-04-01T00:00:00Z", "video.adoption"), (1, 34));
        assert_eq!(goal(&views, &publishers, "2026-04-01T00:00:00Z", "decision.digital"), (0, 34));
    }
}
