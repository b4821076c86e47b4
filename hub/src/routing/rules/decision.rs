//! Decision support: a risk flag goes to the principal of the person's primary care unit (risk
//! profiling: the vårdcentral is told); a raised score in band medium or high goes to the
//! participants of the person's open plans.

use sgd_schemas::events::decision::{Band, RiskFlagged, ScoreRaised};

use super::Routing;
use crate::routing::RoutingState;

pub(super) fn risk_flagged(state: &RoutingState, data: &RiskFlagged) -> Option<Routing> {
    let principal = state.units.get(&data.primary_care_unit).cloned();
    Some(Routing::new("risk_flag_to_primary_care", principal))
}

pub(super) fn score_raised(state: &RoutingState, data: &ScoreRaised) -> Option<Routing> {
    if !matches!(data.band, Band::Medium | Band::High) {
        return None;
    }
    let participants = state
        .person_plans
        .get(&data.person)
        .into_iter()
        .flatten()
        .filter_map(|plan_id| state.plans.get(plan_id))
        .flat_map(|plan| plan.participants.iter().cloned());
    Some(Routing::new("warning_to_plan_participants", participants))
}
