//! Video meetings: a booking goes to its principals, and so does the meeting once held.

use sgd_schemas::events::video::MeetingBooked;

use super::Routing;
use crate::routing::{store::RouterStoreError, RoutingState};

pub(super) fn meeting_booked(
    state: &mut RoutingState,
    data: &MeetingBooked,
) -> Result<Option<Routing>, RouterStoreError> {
    state.meetings.insert(&data.meeting_id, data.principals.clone())?;
    Ok(Some(Routing::new("meeting_to_principals", data.principals.iter().cloned())))
}

pub(super) fn meeting_held(state: &mut RoutingState, meeting_id: &str) -> Result<Option<Routing>, RouterStoreError> {
    let principals = state.meetings.remove(meeting_id)?.unwrap_or_default();
    Ok(Some(Routing::new("meeting_to_principals", principals)))
}
