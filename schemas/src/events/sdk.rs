//! SDK – Säker digital kommunikation: function addresses, messages and receipts (meddelandekvittens).

use serde::{Deserialize, Serialize};

use super::{HsaId, PrincipalCode, Timestamp, UnitKind};

/// `se.sgd.sdk.address.published`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddressPublished {
    /// The unit's HSA-id.
    pub unit: HsaId,
    /// Its function address (funktionsadress).
    pub function_address: String,
    /// The kind of care actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_kind: Option<UnitKind>,
}

/// `se.sgd.sdk.message.sent`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageSent {
    /// The message id.
    pub message_id: String,
    /// The receiving principal.
    pub recipient_principal: PrincipalCode,
    /// The receiving function address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient_address: Option<String>,
    /// The conversation it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<String>,
}

/// The outcome of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Accepted by the receiver.
    Accepted,
    /// Rejected by the receiver.
    Rejected,
}

/// Why a delivery was rejected (v2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryError {
    /// The receiver's error code.
    pub code: String,
    /// Its description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// `se.sgd.sdk.message.delivered`, newest version (v2). v1 events are upcast: `received_at` is the
/// event's `time`, `error_code` becomes `error.code`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageDelivered {
    /// The message id.
    pub message_id: String,
    /// Accepted or rejected.
    pub status: DeliveryStatus,
    /// When the receiver issued the receipt.
    pub received_at: Timestamp,
    /// Why it was rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<DeliveryError>,
}
