//! Deviations: every event of a case goes to each of its concerned principals (named when it was
//! logged).

use sgd_schemas::events::deviation::CaseLogged;

use super::Routing;
use crate::routing::{store::RouterStoreError, RoutingState};

pub(super) fn case_logged(state: &mut RoutingState, data: &CaseLogged) -> Result<Option<Routing>, RouterStoreError> {
    state.deviations.insert(&data.deviation_id, data.concerned_principals.clone())?;
    Ok(Some(Routing::new("deviation_to_concerned", data.concerned_principals.iter().cloned())))
}

pub(super) fn to_concerned(state: &RoutingState, deviation_id: &str) -> Result<Option<Routing>, RouterStoreError> {
    let concerned = state.deviations.get(deviation_id)?.unwrap_or_default();
    Ok(Some(Routing::new("deviation_to_concerned", concerned)))
}

pub(super) fn case_closed(state: &mut RoutingState, deviation_id: &str) -> Result<Option<Routing>, RouterStoreError> {
    let concerned = state.deviations.remove(deviation_id)?.unwrap_or_default();
    Ok(Some(Routing::new("deviation_to_concerned", concerned)))
}
