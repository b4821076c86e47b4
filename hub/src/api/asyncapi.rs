//! The NATS side of the hub as an AsyncAPI 3.0 document, generated from the event catalogue
//! (`schemas/`), the subjects and the streams: what an integrator publishes, requests and
//! receives, with every message's JSON Schema. Served at `GET /api/v1/asyncapi.json`;
//! `docs/asyncapi.json` is a copy kept current by a test. The schemas alone are served at
//! `GET /api/v1/schemas/{type}/{version}`.

use axum::{
    extract::Path,
    http::{header, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{json, Map, Value};
use sgd_schemas::{
    catalogue::{Catalogue, TypeName, AREAS},
    principals,
    validate::RejectReason,
};
use utoipa::PartialSchema;

use super::{auth::Caller, ApiError};
use crate::log::{dead_letter, ingest_requests::IngestAnswer, streams};

/// The media type of a structured CloudEvent.
const CLOUDEVENTS_JSON: &str = "application/cloudevents+json";

/// How the catalogue's schemas are labelled (JSON Schema 2020-12, each with its own `$id`, so its
/// `#/$defs/…` references resolve inside it).
const SCHEMA_FORMAT: &str = "application/schema+json;version=draft-2020-12";

/// A component name for an event type and version: `plans.plan.created.v1`.
pub(super) fn message_name(event_type: &str, version: u32) -> String {
    format!("{}.v{version}", event_type.strip_prefix(sgd_schemas::catalogue::TYPE_PREFIX).unwrap_or(event_type))
}

/// The parameter of a subject token with its allowed values.
fn parameter(description: &str, values: impl IntoIterator<Item = String>) -> Value {
    json!({ "description": description, "enum": values.into_iter().collect::<Vec<_>>() })
}

fn principal_codes() -> Vec<String> {
    principals::all().iter().map(|p| p.code.to_string()).collect()
}

/// The envelope of one event type and version: the CloudEvents attributes the validator accepts,
/// with `data` the catalogue's schema (at `data_ref`). The OpenAPI document uses it too, for the
/// body of `POST /api/v1/events`.
pub(super) fn envelope_schema(event_type: &str, version: u32, data_ref: &str) -> Value {
    let urn = TypeName::parse(event_type).map(|t| t.schema_urn(version)).unwrap_or_default();
    let dataschema = if version == 1 {
        json!({ "type": "string", "const": urn, "description": "May be left out for version 1." })
    } else {
        json!({ "type": "string", "const": urn })
    };
    let mut required = vec!["specversion", "id", "source", "type", "time", "principal", "data"];
    if version > 1 {
        required.push("dataschema");
    }
    json!({
        "type": "object",
        "required": required,
        "properties": {
            "specversion": { "type": "string", "const": "1.0" },
            "id": { "type": "string", "minLength": 1, "maxLength": 256, "description": "Unique per source; source and id are the event's identity (its Nats-Msg-Id: `<source>/<id>`). At most 256 bytes." },
            "source": { "type": "string", "pattern": "^/principals/[0-9]{1,64}/systems/[A-Za-z0-9._-]{1,64}$", "description": "`/principals/<principal>/systems/<system>`, naming the same principal as `principal`." },
            "type": { "type": "string", "const": event_type },
            "time": { "type": "string", "format": "date-time", "description": format!("When it happened in the sending system, with an offset; at most {} days after the hub's clock.", sgd_schemas::validate::MAX_FUTURE_DAYS) },
            "subject": { "type": "string", "minLength": 1 },
            "dataschema": dataschema,
            "datacontenttype": { "type": "string", "pattern": "^\\s*[Aa][Pp][Pp][Ll][Ii][Cc][Aa][Tt][Ii][Oo][Nn]/[Jj][Ss][Oo][Nn]\\s*(;.*)?$", "description": "application/json (parameters allowed)." },
            "principal": { "type": "string", "enum": principal_codes(), "description": "The sender's principal: the one its credentials (nkey, API token) are for." },
            "traceparent": { "type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", "description": "W3C trace context." },
            "tracestate": { "description": "W3C trace state, passed on as sent (not checked)." },
            "data": { "$ref": data_ref }
        },
        "propertyNames": { "pattern": "^[a-z0-9]{1,20}$" },
        "additionalProperties": {
            "type": ["string", "number", "boolean"],
            "description": "An extension attribute (CloudEvents 1.0): 1–20 lower-case letters or digits, a string, number or boolean."
        }
    })
}

/// A Rust type's schema as the OpenAPI document has it (the same JSON Schema subset).
fn type_schema<T: PartialSchema>() -> Value {
    serde_json::to_value(T::schema()).unwrap_or_default()
}

/// The whole document.
pub fn document() -> Value {
    let catalogue = Catalogue::get();
    let mut messages = Map::new();
    let mut schemas = Map::new();
    let mut event_refs = Map::new();
    for event_type in catalogue.types() {
        for version in catalogue.versions(event_type) {
            let Some(published) = catalogue.schema(event_type, version) else { continue };
            let name = message_name(event_type, version);
            let data: Value = serde_json::from_str(published.text).unwrap_or_default();
            let summary = data.get("description").and_then(Value::as_str).unwrap_or(event_type).to_string();
            schemas.insert(format!("{name}.data"), json!({ "schemaFormat": SCHEMA_FORMAT, "schema": data }));
            schemas.insert(
                format!("{name}.event"),
                envelope_schema(event_type, version, &format!("#/components/schemas/{name}.data")),
            );
            messages.insert(
                name.clone(),
                json!({
                    "name": event_type,
                    "title": format!("{event_type} v{version}"),
                    "summary": summary,
                    "contentType": CLOUDEVENTS_JSON,
                    "headers": { "$ref": "#/components/schemas/EventHeaders" },
                    "payload": { "$ref": format!("#/components/schemas/{name}.event") },
                    "externalDocs": { "url": format!("/api/v1/schemas/{event_type}/{version}") }
                }),
            );
            event_refs.insert(name.clone(), json!({ "$ref": format!("#/components/messages/{name}") }));
        }
    }
    schemas.insert(
        "EventHeaders".into(),
        json!({
            "type": "object",
            "properties": {
                "Nats-Msg-Id": { "type": "string", "description": "`<source>/<id>`: JetStream drops a repeat within its duplicate window; the hub skips one applied before at any age." },
                "traceparent": { "type": "string", "pattern": "^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", "description": "W3C trace context of the message, when the event carries none of its own: the hub's spans follow it (docs/operations.md, Tracing); on the log and on routed copies the hub sets it." }
            }
        }),
    );
    schemas.insert("DeadLetter".into(), type_schema::<dead_letter::DeadLetter>());
    schemas.insert("ProblemRecord".into(), type_schema::<dead_letter::ProblemRecord>());
    schemas.insert("IngestAnswer".into(), type_schema::<IngestAnswer>());
    messages.insert(
        "deadLetter".into(),
        json!({
            "name": "dead letter",
            "title": "A refused event and why",
            "contentType": "application/json",
            "payload": { "$ref": "#/components/schemas/DeadLetter" }
        }),
    );
    messages.insert(
        "ingestAnswer".into(),
        json!({
            "name": "ingest answer",
            "title": "Accepted (with its log sequence) or refused (with each problem)",
            "contentType": "application/json",
            "payload": { "$ref": "#/components/schemas/IngestAnswer" }
        }),
    );
    let areas = || AREAS.iter().map(|a| a.to_string());
    let principal = || parameter("A principal's code (Region Skåne 12, or a municipality's code).", principal_codes());
    let area = || parameter("The service area (or `hub` for the hub's own events).", areas());
    let reasons = RejectReason::ALL.iter().map(|r| r.as_str().to_string());
    let entity_action = json!({
        "entity": { "description": "The type's entity, e.g. `plan` in `se.sgd.plans.plan.created`." },
        "action": { "description": "The type's action, e.g. `created`." }
    });
    let with = |base: Value, extra: &Value| {
        let mut base = base;
        if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        base
    };
    let channels = json!({
        "ingress": {
            "address": "sgd.in.{principal}.{area}",
            "title": "Ingress (stream SGD_INGRESS)",
            "description": format!("What adapters publish, one CloudEvent per message; the validator moves each to the log ({}) or to the dead letters ({}). Use a JetStream publish and wait for its acknowledgement.", streams::EVENTS, streams::DLQ),
            "parameters": { "principal": principal(), "area": area() },
            "messages": event_refs
        },
        "ingestRequest": {
            "address": "sgd.ingest.{principal}.{area}",
            "title": "Ingest with an answer (request/reply)",
            "description": "The same events as ingress, as a NATS request: the reply says at once whether the event is in the log (with its sequence) or why it was refused.",
            "parameters": { "principal": principal(), "area": area() },
            "messages": event_refs
        },
        "ingestReply": {
            "address": null,
            "title": "The answer to an ingest request",
            "description": "Sent to the request's reply subject (an inbox).",
            "messages": { "ingestAnswer": { "$ref": "#/components/messages/ingestAnswer" } }
        },
        "log": {
            "address": "sgd.events.{principal}.{area}.{entity}.{action}",
            "title": format!("The log (stream {})", streams::EVENTS),
            "description": "Every accepted event, as published, in order: the source of truth. Read by the hub; operators may read it.",
            "parameters": with(json!({ "principal": principal(), "area": area() }), &entity_action),
            "messages": event_refs
        },
        "routed": {
            "address": "sgd.to.{recipient}.{area}.{entity}.{action}",
            "title": format!("Events for a principal (stream {})", streams::ROUTED),
            "description": "A copy of each event for every principal it concerns (docs/routing.md); a principal's nkey reads only its own, through its durable consumers `to_<principal>_<n>`.",
            "parameters": with(json!({ "recipient": principal(), "area": area() }), &entity_action),
            "messages": event_refs
        },
        "deadLetters": {
            "address": "sgd.dlq.{principal}.{reason}",
            "title": format!("Dead letters (stream {})", streams::DLQ),
            "description": "Refused events with every problem; a principal reads its own through `dlq_<principal>_<n>`. `unknown` stands for a sender whose principal could not be trusted.",
            "parameters": {
                "principal": parameter("The sender's principal code, or `unknown`.", principal_codes().into_iter().chain(["unknown".to_string()])),
                "reason": parameter("The most severe reason.", reasons)
            },
            "messages": { "deadLetter": { "$ref": "#/components/messages/deadLetter" } }
        }
    });
    let operations = json!({
        "publishEvent": {
            "action": "send",
            "channel": { "$ref": "#/channels/ingress" },
            "title": "Publish an event",
            "summary": "An adapter publishes an event of its own principal and area (JetStream publish, Nats-Msg-Id set)."
        },
        "requestIngest": {
            "action": "send",
            "channel": { "$ref": "#/channels/ingestRequest" },
            "title": "Publish an event and wait for the verdict",
            "reply": {
                "address": { "location": "$message.header#/replyTo" },
                "channel": { "$ref": "#/channels/ingestReply" }
            }
        },
        "receiveRouted": {
            "action": "receive",
            "channel": { "$ref": "#/channels/routed" },
            "title": "Receive the events that concern you",
            "summary": "Pull from your durable consumer on SGD_ROUTED and ack each message (or subscribe a webhook over HTTP)."
        },
        "receiveDeadLetters": {
            "action": "receive",
            "channel": { "$ref": "#/channels/deadLetters" },
            "title": "Read your refused events"
        },
        "readLog": {
            "action": "receive",
            "channel": { "$ref": "#/channels/log" },
            "title": "Read the log (the hub; operators)"
        }
    });
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": "sgd-hub NATS interface",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Events of Skåne's shared digital services as CloudEvents 1.0 (structured JSON) on NATS JetStream. Each of the 34 care principals connects with its own nkey (hub nats-config) and may use only its own subjects. Persons appear as 64-hex pseudonyms only; an event carrying a personal identity number is refused. The HTTP API is described at /api/v1/openapi.json."
        },
        "defaultContentType": CLOUDEVENTS_JSON,
        "servers": {
            "nats": {
                "host": "localhost:4222",
                "protocol": "nats",
                "description": "The NATS server or cluster the hub uses (its --nats-url); TLS and an nkey per principal in production."
            }
        },
        "channels": channels,
        "operations": operations,
        "components": { "messages": messages, "schemas": schemas }
    })
}

/// The document as pretty JSON, made once.
pub fn document_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| serde_json::to_string_pretty(&document()).unwrap_or_default())
}

#[utoipa::path(get, path = "/api/v1/asyncapi.json", tag = "operations", responses((status = 200, description = "The AsyncAPI 3.0 document", body = Object), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody)))]
/// The NATS side of the hub (subjects, streams, every message's schema) as AsyncAPI 3.0.
pub async fn asyncapi(_caller: Caller) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document_json())
}

#[utoipa::path(
    get,
    path = "/api/v1/schemas/{type}/{version}",
    tag = "operations",
    params(
        ("type" = String, Path, description = "An event type, e.g. `se.sgd.plans.plan.created`", pattern = r"^se\.sgd\.[a-z0-9_]+\.[a-z0-9_]+\.[a-z0-9_]+$"),
        ("version" = u32, Path, description = "A published version, from 1", minimum = 1)
    ),
    responses(
        (status = 200, description = "The JSON Schema of the type's `data` at that version", content_type = "application/schema+json", body = Object),
        (status = 400, description = "The version is not a positive number", body = super::ErrorBody),
        (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody),
        (status = 404, description = "No such type, or no such version of it", body = super::ErrorBody)
    )
)]
/// One event type's JSON Schema at one version, as the validator applies it.
pub async fn schema(
    _caller: Caller,
    Path((event_type, version)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let version: u32 = version
        .parse()
        .ok()
        .filter(|v| *v >= 1)
        .ok_or_else(|| ApiError::bad_request(format!("version {version:?} is not a positive number")))?;
    let catalogue = Catalogue::get();
    let published = catalogue.schema(&event_type, version).ok_or_else(|| {
        let versions = catalogue.versions(&event_type);
        if versions.is_empty() {
            ApiError::not_found(format!("{event_type:?} is not a published event type"))
        } else {
            ApiError::not_found(format!("{event_type} has versions {versions:?}, not {version}"))
        }
    })?;
    Ok((StatusCode::OK, [(header::CONTENT_TYPE, "application/schema+json")], published.text).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` inside the document (outside the embedded JSON Schemas, whose references are
    /// their own) points at something that exists.
    fn check_refs(doc: &Value, at: &Value, path: &str, problems: &mut Vec<String>) {
        match at {
            Value::Object(map) => {
                if let Some(Value::String(target)) = map.get("$ref") {
                    if let Some(pointer) = target.strip_prefix('#') {
                        if doc.pointer(pointer).is_none() {
                            problems.push(format!("{path}: {target} does not resolve"));
                        }
                    }
                }
                for (key, value) in map {
                    if key == "schema" && map.contains_key("schemaFormat") {
                        continue;
                    }
                    check_refs(doc, value, &format!("{path}/{key}"), problems);
                }
            }
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_refs(doc, item, &format!("{path}/{i}"), problems);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn every_reference_resolves_and_every_published_type_and_version_has_a_message() {
        let doc = document();
        assert_eq!(doc["asyncapi"], "3.0.0");
        let mut problems = Vec::new();
        check_refs(&doc, &doc, "", &mut problems);
        assert!(problems.is_empty(), "{problems:#?}");
        let catalogue = Catalogue::get();
        let mut published = 0;
        for event_type in catalogue.types() {
            for version in catalogue.versions(event_type) {
                published += 1;
                let name = message_name(event_type, version);
                let message = &doc["components"]["messages"][&name];
                assert_eq!(message["name"], event_type, "{name}");
                for channel in ["ingress", "ingestRequest", "log", "routed"] {
                    assert!(doc["channels"][channel]["messages"].get(&name).is_some(), "{channel} lacks {name}");
                }
                // the embedded schema is the catalogue's, unchanged
                let embedded = &doc["components"]["schemas"][format!("{name}.data")]["schema"];
                assert_eq!(
                    embedded,
                    &serde_json::from_str::<Value>(catalogue.schema(event_type, version).unwrap().text).unwrap()
                );
            }
        }
        assert_eq!(doc["channels"]["ingress"]["messages"].as_object().unwrap().len(), published);
        // every channel parameter is a token of its address, and the other way round
        for (name, channel) in doc["channels"].as_object().unwrap() {
            let Some(address) = channel["address"].as_str() else { continue };
            let tokens: Vec<&str> =
                address.split('.').filter_map(|t| t.strip_prefix('{').and_then(|t| t.strip_suffix('}'))).collect();
            let params: Vec<&str> =
                channel["parameters"].as_object().map(|p| p.keys().map(String::as_str).collect()).unwrap_or_default();
            let mut sorted = tokens.clone();
            sorted.sort();
            let mut params_sorted = params.clone();
            params_sorted.sort();
            assert_eq!(sorted, params_sorted, "channel {name}");
        }
    }

    #[test]
    fn docs_holds_the_current_document() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/asyncapi.json");
        let current = document_json();
        if std::env::var_os("UPDATE_ASYNCAPI").is_some() {
            std::fs::write(path, format!("{current}\n")).unwrap();
        }
        let stored = std::fs::read_to_string(path).unwrap_or_default();
        assert_eq!(
            stored.trim_end(),
            current,
            "docs/asyncapi.json is not the current document: run UPDATE_ASYNCAPI=1 cargo test -p sgd-hub --no-default-features --lib asyncapi"
        );
    }

    #[test]
    fn the_subjects_in_the_document_are_the_ones_the_hub_uses() {
        // Made with the same functions the hub publishes and reads with.
        let sample = |address: &str, values: &[(&str, &str)]| {
            values.iter().fold(address.to_string(), |a, (k, v)| a.replace(&format!("{{{k}}}"), v))
        };
        let doc = document();
        let address = |channel: &str| doc["channels"][channel]["address"].as_str().unwrap().to_string();
        assert_eq!(
            sample(&address("ingress"), &[("principal", "1280"), ("area", "plans")]),
            sgd_schemas::subjects::ingress("1280", "plans")
        );
        assert_eq!(
            sample(
                &address("log"),
                &[("principal", "1280"), ("area", "plans"), ("entity", "plan"), ("action", "created")]
            ),
            sgd_schemas::subjects::events("1280", "se.sgd.plans.plan.created")
        );
        assert_eq!(
            sample(
                &address("routed"),
                &[("recipient", "12"), ("area", "plans"), ("entity", "plan"), ("action", "created")]
            ),
            sgd_schemas::subjects::routed("12", "se.sgd.plans.plan.created")
        );
        assert_eq!(
            sample(&address("deadLetters"), &[("principal", "1280"), ("reason", "schema")]),
            sgd_schemas::subjects::dlq(Some("1280"), "schema")
        );
        assert_eq!(
            sgd_schemas::subjects::parse_ingest_request(&sample(
                &address("ingestRequest"),
                &[("principal", "1280"), ("area", "plans")]
            )),
            Some(("1280", "plans"))
        );
    }
}
