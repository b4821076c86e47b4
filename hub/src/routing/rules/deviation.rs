//! Deviations: every event of a case goes to each of its concerned principals (named when it was
//! logged).

use sgd_schemas::events::deviation::CaseLogged;

use super::Routing;
use crate::routing::RoutingState;

pub(super) fn case_logged(state: &mut RoutingState, data: &CaseLogged) -> Option<Routing> {
    state.deviations.insert(&data.deviation_id, data.concerned_principals.clone());
    Some(Routing::new("deviation_to_concerned", data.concerned_principals.iter().cloned()))
}

pub(super) fn to_concerned(state: &RoutingState, deviation_id: &str) -> Option<Routing> {
    let concerned = state.deviations.get(deviation_id).cloned().unwrap_or_default();
    Some(Routing::new("deviation_to_concerned", concerned))
}

pub(super) fn case_closed(state: &mut RoutingState, deviation_id: &str) -> Option<Routing> {
    let concerned = state.deviations.remove(deviation_id).unwrap_or_default();
    Some(Routing::new("deviation_to_concerned", concerned))
}
