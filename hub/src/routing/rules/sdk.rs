//! SDK: a message goes to its recipient principal, its receipt back to the sender.
//! `sdk.address.published` introduces a unit (for the risk-flag rule) and goes to no one.

use sgd_schemas::events::sdk::{AddressPublished, MessageDelivered, MessageSent};

use super::Routing;
use crate::routing::{store::RouterStoreError, RoutingState};

pub(super) fn address_published(
    state: &mut RoutingState,
    principal: &str,
    data: &AddressPublished,
) -> Result<Option<Routing>, RouterStoreError> {
    state.introduce_unit(&data.unit, principal)?;
    Ok(None)
}

pub(super) fn message_sent(
    state: &mut RoutingState,
    principal: &str,
    data: &MessageSent,
) -> Result<Option<Routing>, RouterStoreError> {
    state.messages.insert(&data.message_id, principal.to_string())?;
    Ok(Some(Routing::new("message_to_recipient", [data.recipient_principal.clone()])))
}

pub(super) fn message_delivered(
    state: &mut RoutingState,
    data: &MessageDelivered,
) -> Result<Option<Routing>, RouterStoreError> {
    let sender = state.messages.remove(&data.message_id)?;
    Ok(Some(Routing::new("receipt_to_sender", sender)))
}
