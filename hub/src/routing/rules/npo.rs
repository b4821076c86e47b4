//! NPÖ: no event is delivered; `npo.role.activated` introduces a unit and its principal, which
//! the risk-flag rule needs.

use sgd_schemas::events::npo::RoleActivated;

use super::Routing;
use crate::routing::{store::RouterStoreError, RoutingState};

pub(super) fn role_activated(
    state: &mut RoutingState,
    principal: &str,
    data: &RoleActivated,
) -> Result<Option<Routing>, RouterStoreError> {
    state.introduce_unit(&data.unit, principal)?;
    Ok(None)
}
