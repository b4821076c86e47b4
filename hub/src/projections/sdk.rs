//! SDK: published function addresses, and messages with their receipts.

use serde::{Deserialize, Serialize};
use sgd_schemas::events::{sdk, Timestamp, UnitKind};

use super::{
    ids::{PrincipalCode, Text},
    moment::Moment,
    table::StoredTable,
    table::Table,
    ProjectedEvent, View,
};

/// A unit's published function address.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Address {
    /// The principal.
    pub principal: Text,
    /// The unit's HSA-id.
    pub unit: Text,
    /// The function address.
    pub function_address: Text,
    /// The kind of care actor.
    pub unit_kind: Option<UnitKind>,
    /// First published.
    pub first_at: Option<Timestamp>,
}

/// A message and its receipt.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Message {
    /// The sending principal.
    pub principal: Option<PrincipalCode>,
    /// The receiving principal.
    pub recipient_principal: Option<PrincipalCode>,
    /// When it was sent.
    pub sent_at: Option<Moment>,
    /// When the (first) receipt was issued.
    pub received_at: Option<Moment>,
    /// Whether the receipt rejected it.
    pub rejected: bool,
}

/// The SDK view.
#[derive(Debug, Clone)]
pub struct SdkView {
    /// Addresses by `<principal>/<unit>`.
    pub addresses: Table<Address>,
    /// Messages by message id.
    pub messages: Table<Message>,
}

impl Default for SdkView {
    fn default() -> Self {
        Self { addresses: Table::new("v/sdk/address/"), messages: Table::bounded("v/sdk/message/") }
    }
}

impl View for SdkView {
    /// Applies one event.
    fn apply(&mut self, e: &ProjectedEvent<'_>) {
        use sgd_schemas::DomainEvent as D;
        let principal = &e.envelope.principal;
        let at = e.envelope.time;
        match e.event {
            D::SdkAddressPublished(d) => {
                let a = self.addresses.entry(format!("{principal}/{}", d.unit).as_str());
                a.principal = principal.into();
                a.unit = d.unit.as_str().into();
                a.function_address = d.function_address.as_str().into();
                a.unit_kind = d.unit_kind.or(a.unit_kind);
                a.first_at = Some(a.first_at.map_or(at, |t| t.min(at)));
            }
            D::SdkMessageSent(d) => {
                let m = self.messages.entry(d.message_id.as_str());
                m.principal = PrincipalCode::of(principal);
                m.recipient_principal = PrincipalCode::of(&d.recipient_principal);
                m.sent_at = Some(m.sent_at.map_or(e.at, |t| t.min(e.at)));
            }
            D::SdkMessageDelivered(d) => {
                let m = self.messages.entry(d.message_id.as_str());
                if m.received_at.is_none_or(|t| t > d.received_at) {
                    m.received_at = Some(d.received_at.into());
                    m.rejected = d.status == sdk::DeliveryStatus::Rejected;
                }
            }
            _ => {}
        }
    }

    fn tables(&self) -> Vec<&dyn StoredTable> {
        vec![&self.addresses, &self.messages]
    }

    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        vec![&mut self.addresses, &mut self.messages]
    }
}
