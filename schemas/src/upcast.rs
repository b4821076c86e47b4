//! Upcasters: every published version of a type is brought to the newest shape before a projection
//! sees it. One function per (type, old version); [`to_newest`] chains them.

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::{json, value::RawValue, Value};

use crate::{
    envelope::Envelope,
    events::{DecodeError, DomainEvent},
};

/// The [`Envelope`]'s fields, with `data` left as its JSON text.
#[derive(Deserialize)]
struct LoggedEnvelope<'a> {
    id: String,
    source: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(deserialize_with = "rfc3339_time")]
    time: DateTime<FixedOffset>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(default)]
    dataschema: Option<String>,
    principal: String,
    #[serde(default)]
    traceparent: Option<String>,
    #[serde(borrow)]
    data: &'a RawValue,
}

/// An RFC 3339 time, read by chrono's strict RFC 3339 parser first (a logged event's time is in
/// that form) and by the general one otherwise, so that what is read is the same. The general
/// parser, which `DateTime`'s own `Deserialize` uses, took 3.2% of a rebuild's CPU; with this the
/// rebuild ran ~3% faster (docs/performance.md, "Rebuild").
fn rfc3339_time<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<DateTime<FixedOffset>, D::Error> {
    struct TimeVisitor;
    impl serde::de::Visitor<'_> for TimeVisitor {
        type Value = DateTime<FixedOffset>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 date and time")
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            DateTime::parse_from_rfc3339(text).or_else(|_| text.parse()).map_err(E::custom)
        }
    }
    deserializer.deserialize_str(TimeVisitor)
}

/// A logged (validated) event's bytes as its envelope, with `data` left [`Value::Null`], and its
/// data typed in the newest shape (or why it does not decode); an error when the bytes are not an
/// envelope. The same result as reading an [`Envelope`] and [`decode`], but data already in the
/// newest shape is typed straight from its text, without building a [`Value`] first.
pub type Logged = (Envelope, Result<DomainEvent, DecodeError>);

/// Reads a logged event: see [`Logged`].
pub fn decode_logged(body: &[u8]) -> Result<Logged, serde_json::Error> {
    let logged: LoggedEnvelope<'_> = serde_json::from_slice(body)?;
    let envelope = Envelope {
        id: logged.id,
        source: logged.source,
        event_type: logged.event_type,
        time: logged.time,
        subject: logged.subject,
        dataschema: logged.dataschema,
        principal: logged.principal,
        traceparent: logged.traceparent,
        data: Value::Null,
    };
    let version = envelope.version();
    let direct = is_newest(&envelope.event_type, version)
        .then(|| DomainEvent::decode_json(&envelope.event_type, logged.data.get()).ok())
        .flatten();
    let event = match direct {
        Some(event) => Ok(event),
        // Older shapes, and whatever the direct path refused (a repeated key: the log keeps the
        // raw bytes, and the value path lets the last one win), go through a `Value`.
        None => serde_json::from_str(logged.data.get())
            .map_err(|source| DecodeError::Data { event_type: envelope.event_type.clone(), source })
            .and_then(|data| DomainEvent::decode(&envelope.event_type, to_newest(&envelope, version, data))),
    };
    Ok((envelope, event))
}

/// The event's data in the newest version of its type, typed.
pub fn decode(envelope: &Envelope) -> Result<DomainEvent, DecodeError> {
    let data = to_newest(envelope, envelope.version(), envelope.data.clone());
    DomainEvent::decode(&envelope.event_type, data)
}

/// Whether data of `version` of `event_type` is already in the newest shape: the newest version
/// the catalogue publishes (so an upcaster added later cannot be bypassed).
fn is_newest(event_type: &str, version: u32) -> bool {
    crate::catalogue::Catalogue::get().newest_version(event_type) == Some(version)
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
    fn logged_bytes_decode_as_envelope_and_newest_event() {
        let v1 = envelope(None, json!({"message_id": "m1", "status": "rejected", "error_code": "E42"}));
        let v2 = envelope(
            Some("urn:sgd:schema:sdk.message.delivered:v2"),
            json!({"message_id": "m1", "status": "accepted", "received_at": "2026-03-02T10:20:00+01:00"}),
        );
        for logged in [v1, v2] {
            let (read, event) = decode_logged(&serde_json::to_vec(&logged).unwrap()).unwrap();
            assert_eq!(event.unwrap(), decode(&logged).unwrap());
            assert_eq!(read, Envelope { data: Value::Null, ..logged });
        }
        // A repeated key: the last one wins, as through a `Value`.
        let repeated = br#"{"specversion":"1.0","id":"e1","source":"/principals/1280/systems/sdk-gw","type":"se.sgd.sdk.message.delivered","time":"2026-03-02T10:15:00+01:00","principal":"1280","dataschema":"urn:sgd:schema:sdk.message.delivered:v2","data":{"message_id":"m0","message_id":"m1","status":"accepted","received_at":"2026-03-02T10:20:00+01:00"}}"#;
        let (_, Ok(DomainEvent::SdkMessageDelivered(d))) = decode_logged(repeated).unwrap() else {
            panic!("wrong variant")
        };
        assert_eq!(d.message_id, "m1");
        assert!(decode_logged(b"{\"id\": 1}").is_err());
        let unknown = br#"{"id":"e1","source":"/principals/1280/systems/x","type":"se.sgd.no.such.type","time":"2026-03-02T10:15:00+01:00","principal":"1280","data":{}}"#;
        assert!(matches!(decode_logged(unknown), Ok((_, Err(DecodeError::UnknownType(_))))));
    }

    #[test]
    fn a_logged_time_reads_as_chronos_own_parser_reads_it() {
        // `time_json` as it stands in the log's JSON text.
        let body = |time_json: &str| {
            format!(
                r#"{{"id":"e1","source":"/principals/1280/systems/x","type":"se.sgd.plans.plan.closed","time":{time_json},"principal":"1280","data":{{"plan_id":"p"}}}}"#
            )
        };
        // Strict RFC 3339, forms only the general parser takes, and an escaped character.
        for time_json in [
            r#""2026-03-02T10:15:00+01:00""#,
            r#""2026-03-02T09:15:00Z""#,
            r#""2026-03-02T09:15:00.123456789Z""#,
            r#""2026-03-02t09:15:00z""#,
            r#""2026-03-02 10:15:00+01:00""#,
            r#""2026-03-02T10:15:00\u002B01:00""#,
        ] {
            let text: String = serde_json::from_str(time_json).unwrap();
            let expected = text.parse::<DateTime<FixedOffset>>().unwrap();
            assert_eq!(decode_logged(body(time_json).as_bytes()).unwrap().0.time, expected, "{time_json}");
        }
        for refused in [r#""2026-03-02""#, r#""yesterday""#, "1700000000"] {
            assert!(decode_logged(body(refused).as_bytes()).is_err(), "{refused}");
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
