//! NPÖ: no event is delivered; `npo.role.activated` introduces a unit and its principal, which
//! the risk-flag rule needs.

use sgd_schemas::events::npo::RoleActivated;

use super::Routing;
use crate::routing::RoutingState;

pub(super) fn role_activated(state: &mut RoutingState, principal: &str, data: &RoleActivated) -> Option<Routing> {
    if state.units.get(&data.unit).map(String::as_str) != Some(principal) {
        state.units.insert(&data.unit, principal.to_string());
    }
    None
}
