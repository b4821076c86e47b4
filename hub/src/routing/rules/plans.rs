//! Mina Planer: every plan event goes to the plan's participants (named when it was created).

use sgd_schemas::events::plans::PlanCreated;

use super::Routing;
use crate::routing::{state::OpenPlan, store::RouterStoreError, RoutingState};

pub(super) fn plan_created(state: &mut RoutingState, data: &PlanCreated) -> Result<Option<Routing>, RouterStoreError> {
    state
        .plans
        .insert(&data.plan_id, OpenPlan { person: data.person.clone(), participants: data.participants.clone() })?;
    state.person_plans.update(&data.person, |plans| {
        if !plans.contains(&data.plan_id) {
            plans.push(data.plan_id.clone());
        }
    })?;
    Ok(Some(Routing::new("plan_to_participants", data.participants.iter().cloned())))
}

pub(super) fn to_participants(state: &RoutingState, plan_id: &str) -> Result<Option<Routing>, RouterStoreError> {
    let participants = state.plans.get(plan_id)?.map(|plan| plan.participants).unwrap_or_default();
    Ok(Some(Routing::new("plan_to_participants", participants)))
}

pub(super) fn plan_closed(state: &mut RoutingState, plan_id: &str) -> Result<Option<Routing>, RouterStoreError> {
    let Some(plan) = state.plans.remove(plan_id)? else {
        return Ok(Some(Routing::new("plan_to_participants", Vec::new())));
    };
    let remaining: Vec<String> =
        state.person_plans.get(&plan.person)?.unwrap_or_default().into_iter().filter(|id| id != plan_id).collect();
    if remaining.is_empty() {
        state.person_plans.remove(&plan.person)?;
    } else {
        state.person_plans.insert(&plan.person, remaining)?;
    }
    Ok(Some(Routing::new("plan_to_participants", plan.participants)))
}
