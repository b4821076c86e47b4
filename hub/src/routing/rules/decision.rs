//! Decision support: a risk flag goes to the principal of the person's primary care unit (risk
//! profiling: the vårdcentral is told); a raised score in band medium or high goes to the
//! participants of the person's open plans.

use sgd_schemas::events::decision::{Band, RiskFlagged, ScoreRaised};

use super::Routing;
use crate::routing::{store::RouterStoreError, RoutingState};

pub(super) fn risk_flagged(state: &RoutingState, data: &RiskFlagged) -> Result<Option<Routing>, RouterStoreError> {
    let principal = state.units.get(&data.primary_care_unit)?;
    Ok(Some(Routing::new("risk_flag_to_primary_care", principal)))
}

pub(super) fn score_raised(state: &RoutingState, data: &ScoreRaised) -> Result<Option<Routing>, RouterStoreError> {
    if !matches!(data.band, Band::Medium | Band::High) {
        return Ok(None);
    }
    let mut participants = Vec::new();
    for plan_id in state.person_plans.get(&data.person)?.unwrap_or_default() {
        if let Some(plan) = state.plans.get(&plan_id)? {
            participants.extend(plan.participants);
        }
    }
    Ok(Some(Routing::new("warning_to_plan_participants", participants)))
}
