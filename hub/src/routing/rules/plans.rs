//! Mina Planer: every plan event goes to the plan's participants (named when it was created).

use sgd_schemas::events::plans::PlanCreated;

use super::Routing;
use crate::routing::{state::OpenPlan, RoutingState};

pub(super) fn plan_created(state: &mut RoutingState, data: &PlanCreated) -> Option<Routing> {
    state
        .plans
        .insert(&data.plan_id, OpenPlan { person: data.person.clone(), participants: data.participants.clone() });
    state.person_plans.update(&data.person, |plans| {
        if !plans.contains(&data.plan_id) {
            plans.push(data.plan_id.clone());
        }
    });
    Some(Routing::new("plan_to_participants", data.participants.iter().cloned()))
}

pub(super) fn to_participants(state: &RoutingState, plan_id: &str) -> Option<Routing> {
    let participants = state.plans.get(plan_id).map(|plan| plan.participants.clone()).unwrap_or_default();
    Some(Routing::new("plan_to_participants", participants))
}

pub(super) fn plan_closed(state: &mut RoutingState, plan_id: &str) -> Option<Routing> {
    let routing = to_participants(state, plan_id);
    if let Some(plan) = state.plans.remove(plan_id) {
        let remaining = state
            .person_plans
            .get(&plan.person)
            .map(|plans| plans.iter().filter(|id| id.as_str() != plan_id).cloned().collect::<Vec<_>>());
        match remaining {
            Some(plans) if !plans.is_empty() => state.person_plans.insert(&plan.person, plans),
            _ => {
                state.person_plans.remove(&plan.person);
            }
        }
    }
    routing
}
