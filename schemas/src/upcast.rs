//! Upcasters: every published version of a type is brought to the newest shape before a projection
//! sees it. One function per (type, old version); [`to_newest`] chains them.

use serde_json::{json, Value};

use crate::{
    envelope::Envelope,
    events::{DecodeError, DomainEvent},
};

/// The event's data in the newest version of its type, typed.
pub fn decode(envelope: &Envelope) -> Result<DomainEvent, DecodeError> {
    let data = to_newest(envelope, envelope.version(), envelope.data.clone());
    DomainEvent::decode(&envelope.event_type, data)
}

/// `data` of version `version` lifted step by step to the newest version.
pub fn to_newest(envelope: &Envelope, version: u32, mut data: Value) -> Value {
    let mut version = version;
    loop {
        let next = match (envelope.event_type.as_str(), version) {
            ("se.sgd.sdk.message.delivered", 1) => sdk_message_delivered_v1_to_v2(envelope, data),
            _ => return data,
        };
        data = next;
        version += 1;
    }
}

/// v1 had only the event's `time` and a flat `error_code`; v2 has the receipt's own
/// `received_at` and an `error` object.
fn sdk_message_delivered_v1_to_v2(envelope: &Envelope, mut data: Value) -> Value {
    if let Some(object) = data.as_object_mut() {
        let error_code = object.remove("error_code");
        object.insert("received_at".into(), json!(envelope.time.to_rfc3339()));
        if let Some(code) = error_code {
            object.insert("error".into(), json!({ "code": code }));
        }
    }
    data
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::sdk::{DeliveryStatus, MessageDelivered};

    fn envelope(dataschema: Option<&str>, data: Value) -> Envelope {
        Envelope {
            id: "e1".into(),
            source: "/principals/1280/systems/sdk-gw".into(),
            event_type: "se.sgd.sdk.message.delivered".into(),
            time: chrono::DateTime::parse_from_rfc3339("2026-03-02T10:15:00+01:00").unwrap(),
            subject: None,
            dataschema: dataschema.map(str::to_string),
            principal: "1280".into(),
            traceparent: None,
            data,
        }
    }

    #[test]
    fn v1_delivery_receipts_reach_projections_as_v2() {
        let v1 = envelope(None, json!({"message_id": "m1", "status": "rejected", "error_code": "E42"}));
        let DomainEvent::SdkMessageDelivered(d) = decode(&v1).unwrap() else { panic!("wrong variant") };
        assert_eq!(d.status, DeliveryStatus::Rejected);
        assert_eq!(d.received_at, v1.time);
        assert_eq!(d.error.unwrap().code, "E42");
    }

    #[test]
    fn v2_passes_through() {
        let v2 = envelope(
            Some("urn:sgd:schema:sdk.message.delivered:v2"),
            json!({"message_id": "m1", "status": "accepted", "received_at": "2026-03-02T10:20:00+01:00"}),
        );
        let decoded = decode(&v2).unwrap();
        let expected = MessageDelivered {
            message_id: "m1".into(),
            status: DeliveryStatus::Accepted,
            received_at: chrono::DateTime::parse_from_rfc3339("2026-03-02T10:20:00+01:00").unwrap(),
            error: None,
        };
        assert_eq!(decoded, DomainEvent::SdkMessageDelivered(expected));
    }
}
