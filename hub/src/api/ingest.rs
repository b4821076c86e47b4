//! `POST /api/v1/events`: the CloudEvents HTTP binding (structured, binary and batch modes) into
//! the log, through the same validator as NATS ingress, synchronously.
//!
//! A request is all or nothing: if any event is refused, none is published and the answer lists
//! every problem of every refused event. Accepted events go straight to `SGD_EVENTS` with
//! `Nats-Msg-Id` = `<source>/<id>`, so a client that retries after a timeout does not publish
//! twice.

use axum::{
    body::Bytes,
    extract::{Request, State},
    http::{header, HeaderMap, StatusCode},
    Json,
};
use cloudevents::{event::Data, AttributesReader, AttributesWriter};
use serde::Serialize;
use serde_json::json;
use sgd_schemas::{validate, ValidationContext};
use tracing::field::Empty;

use super::{auth::Caller, ApiError, ApiState};
use crate::{
    telemetry::{self, PIPELINE, TRACEPARENT},
    tokens::Role,
};

/// The answer to an accepted request.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Ids of the events now in the log (including duplicates of earlier ones).
    pub accepted: Vec<String>,
    /// Ids that were already in the log (a retry): accepted, but not stored again.
    pub duplicates: Vec<String>,
}

#[utoipa::path(post, path = "/api/v1/events", tag = "ingest", request_body(description = "Structured mode (`application/cloudevents+json`, or `application/json` without `ce-*` headers: one event), batch mode (`application/cloudevents-batch+json`: an array of events) or binary mode (`ce-*` headers, the `data` as the `application/json` body). Each event is a CloudEvent of a published type and version, for the token's own principal, with no personal identity number anywhere in it. All or nothing.", content((CloudEvent = "application/cloudevents+json"), (CloudEventBatch = "application/cloudevents-batch+json"), (CloudEvent = "application/json"))), responses((status = 202, description = "Every event is in the log", body = Accepted), (status = 400, description = "Refused; nothing was published; details lists each refused event and its problems", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 413, description = "Body too large", body = super::ErrorBody), (status = 415, description = "Not a CloudEvents content type", body = super::ErrorBody), (status = 503, description = "The log is unavailable; retry with the same ids", body = super::ErrorBody)))]
/// Validates CloudEvents and publishes them to the log, all or nothing.
pub async fn post_events(
    State(state): State<ApiState>,
    caller: Caller,
    request: Request,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    caller.require(&[Role::Integrator])?;
    let principal = caller
        .0
        .principal
        .clone()
        .ok_or_else(|| ApiError::forbidden("this integrator token is bound to no principal"))?;
    let (parts, body) = request.into_parts();
    let limit = state.max_event_bytes.saturating_mul(64).max(1 << 20);
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| ApiError {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        code: "too_large",
        message: format!("the request body is larger than {limit} bytes or unreadable: {e}"),
        details: None,
    })?;
    let bodies = split_request(&parts.headers, bytes)?;
    if bodies.is_empty() {
        return Err(ApiError::bad_request("the batch holds no event"));
    }

    let ctx = ValidationContext {
        transport_principal: Some(&principal),
        transport_area: None,
        max_bytes: state.max_event_bytes,
    };
    let mut valid = Vec::with_capacity(bodies.len());
    let mut refused = Vec::new();
    // One `ingest.http` span per event (docs/operations.md, "Tracing"): a child of the event's
    // traceparent, else of the request's, else a new trace.
    let request_traceparent = parts.headers.get(TRACEPARENT).and_then(|v| v.to_str().ok());
    for (index, body) in bodies.iter().enumerate() {
        let span = tracing::info_span!(target: PIPELINE, "ingest.http", otel.kind = "server", principal = %principal,
            "event.id" = Empty, "event.type" = Empty, outcome = Empty, reason = Empty, "log.sequence" = Empty);
        match validate(body, &ctx) {
            Ok(event) => {
                telemetry::follow(&span, event.envelope.traceparent.as_deref().or(request_traceparent));
                span.record("event.id", event.envelope.id.as_str())
                    .record("event.type", event.envelope.event_type.as_str());
                valid.push((event, span));
            }
            Err(rejection) => {
                telemetry::follow(&span, request_traceparent);
                span.record("outcome", "refused").record("reason", rejection.reason().as_str());
                state.metrics.count_refused(rejection.reason().as_str(), "http");
                refused.push(json!({
                    "index": index,
                    "id": rejection.event_id,
                    "reason": rejection.reason().as_str(),
                    "problems": rejection.problems,
                }));
            }
        }
    }
    if !refused.is_empty() {
        for (_, span) in &valid {
            span.record("outcome", "withheld");
        }
        let n = refused.len();
        return Err(ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_events",
            message: format!("{n} of {} events refused; nothing was published", bodies.len()),
            details: Some(json!(refused)),
        });
    }

    let mut pending = Vec::with_capacity(valid.len());
    for ((event, span), body) in valid.iter().zip(bodies) {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(crate::log::streams::MSG_ID_HEADER, event.msg_id.as_str());
        telemetry::pass_on(span, event.envelope.traceparent.as_deref(), &mut headers);
        let ack = state
            .js
            .publish_with_headers(event.events_subject.clone(), headers, body)
            .await
            .map_err(|e| ApiError::unavailable(format!("the log is unavailable ({e}); retry with the same ids")))?;
        pending.push(ack);
    }
    let mut answer = Accepted { accepted: Vec::new(), duplicates: Vec::new() };
    for ((event, span), ack) in valid.iter().zip(pending) {
        let ack = ack.await.map_err(|e| {
            span.record("outcome", "unavailable");
            ApiError::unavailable(format!("the log did not acknowledge ({e}); retry with the same ids"))
        })?;
        span.record("outcome", if ack.duplicate { "duplicate" } else { "accepted" })
            .record("log.sequence", ack.sequence);
        state.metrics.count_validated(event.envelope.area(), &event.envelope.event_type);
        if ack.duplicate {
            answer.duplicates.push(event.envelope.id.clone());
        }
        answer.accepted.push(event.envelope.id.clone());
    }
    Ok((StatusCode::ACCEPTED, Json(answer)))
}

/// One event in structured mode. The document's schema of it is a `oneOf` of every published type
/// and version, made from the catalogue by [`add_event_schemas`]; this type only names it.
pub struct CloudEvent;

impl utoipa::PartialSchema for CloudEvent {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::ObjectBuilder::new().description(Some("A CloudEvent (replaced from the catalogue)")).into()
    }
}

impl utoipa::ToSchema for CloudEvent {}

/// Events in batch mode (see [`CloudEvent`]).
pub struct CloudEventBatch;

impl utoipa::PartialSchema for CloudEventBatch {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::ObjectBuilder::new().description(Some("CloudEvents (replaced from the catalogue)")).into()
    }
}

impl utoipa::ToSchema for CloudEventBatch {}

/// Puts the catalogue's events into the OpenAPI document `doc`: for every published type and
/// version a component `<area>.<entity>.<action>.v<n>.event` (the envelope the AsyncAPI document
/// has, from the same function) with its `….data` (the catalogue's schema, its `$defs` inlined so
/// that it stands alone among the components), `CloudEvent` as one of them and `CloudEventBatch`
/// as a non-empty array of them.
pub fn add_event_schemas(doc: &mut serde_json::Value) {
    let catalogue = sgd_schemas::catalogue::Catalogue::get();
    let Some(schemas) = doc.pointer_mut("/components/schemas").and_then(serde_json::Value::as_object_mut) else {
        return;
    };
    let mut events = Vec::new();
    for event_type in catalogue.types() {
        for version in catalogue.versions(event_type) {
            let Some(published) = catalogue.schema(event_type, version) else { continue };
            let name = super::asyncapi::message_name(event_type, version);
            let data: serde_json::Value = serde_json::from_str(published.text).unwrap_or_default();
            schemas.insert(format!("{name}.data"), standalone(data));
            let data_ref = format!("#/components/schemas/{name}.data");
            let mut envelope = super::asyncapi::envelope_schema(event_type, version, &data_ref);
            envelope["title"] = json!(format!("{event_type} v{version}"));
            schemas.insert(format!("{name}.event"), envelope);
            events.push(json!({ "$ref": format!("#/components/schemas/{name}.event") }));
        }
    }
    schemas.insert(
        "CloudEvent".into(),
        json!({ "description": "A CloudEvent 1.0 of a published type and version, in structured mode.", "oneOf": events }),
    );
    schemas.insert(
        "CloudEventBatch".into(),
        json!({
            "description": "CloudEvents in batch mode: all are logged, or none.",
            "type": "array",
            "minItems": 1,
            "items": { "$ref": "#/components/schemas/CloudEvent" }
        }),
    );
}

/// A catalogue schema without what ties it to its own file: `$schema` and `$id` dropped, every
/// `#/$defs/…` reference replaced by the definition (with the referring object's own keywords,
/// e.g. its description, kept).
fn standalone(mut schema: serde_json::Value) -> serde_json::Value {
    let defs = schema.as_object_mut().and_then(|o| o.remove("$defs")).unwrap_or_default();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        object.remove("$id");
    }
    fn inline(value: &mut serde_json::Value, defs: &serde_json::Value) {
        match value {
            serde_json::Value::Object(object) => {
                let target =
                    object.get("$ref").and_then(serde_json::Value::as_str).and_then(|r| r.strip_prefix("#/$defs/"));
                if let Some(definition) = target.and_then(|name| defs.get(name)).cloned() {
                    object.remove("$ref");
                    let mut definition = definition;
                    inline(&mut definition, defs);
                    if let serde_json::Value::Object(definition) = definition {
                        for (key, value) in definition {
                            object.entry(key).or_insert(value);
                        }
                    }
                }
                for value in object.values_mut() {
                    inline(value, defs);
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|item| inline(item, defs)),
            _ => {}
        }
    }
    inline(&mut schema, &defs);
    schema
}

/// The request's events as structured-mode JSON bodies.
fn split_request(headers: &HeaderMap, bytes: Bytes) -> Result<Vec<Bytes>, ApiError> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase())
        .unwrap_or_default();
    if headers.contains_key("ce-specversion") {
        return Ok(vec![binary_mode(headers, bytes)?]);
    }
    match media.as_str() {
        "application/cloudevents+json" | "application/json" => Ok(vec![bytes]),
        "application/cloudevents-batch+json" => {
            let items: Vec<serde_json::Value> = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::bad_request(format!("a batch is a JSON array of CloudEvents: {e}")))?;
            Ok(items.iter().map(|item| Bytes::from(serde_json::to_vec(item).unwrap_or_default())).collect())
        }
        other => Err(ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: "unsupported_media_type",
            message: format!(
                "Content-Type {other:?} is not a CloudEvents mode: use application/cloudevents+json (structured), \
                 application/cloudevents-batch+json (batch), or ce-* headers with application/json data (binary)"
            ),
            details: None,
        }),
    }
}

/// A binary-mode request (attributes in `ce-*` headers) read with the CloudEvents SDK and written
/// out in structured mode.
fn binary_mode(headers: &HeaderMap, bytes: Bytes) -> Result<Bytes, ApiError> {
    let mut event = cloudevents::binding::http::to_event(headers, bytes.to_vec())
        .map_err(|e| ApiError::bad_request(format!("not a binary-mode CloudEvent: {e}")))?;
    let is_json =
        event.datacontenttype().is_some_and(|t| t.split(';').next().unwrap_or_default().trim().ends_with("json"));
    if let (true, Some(Data::Binary(raw))) = (is_json, event.data()) {
        let value: serde_json::Value = serde_json::from_slice(raw)
            .map_err(|e| ApiError::bad_request(format!("the body is not the JSON its Content-Type says: {e}")))?;
        let content_type = event.datacontenttype().map(str::to_string);
        let schema = event.dataschema().cloned();
        event.set_data(content_type.unwrap_or_default(), Data::Json(value));
        if let Some(schema) = schema {
            event.set_dataschema(Some(schema));
        }
    }
    serde_json::to_vec(&event)
        .map(Bytes::from)
        .map_err(|e| ApiError::bad_request(format!("cannot read the event: {e}")))
}
