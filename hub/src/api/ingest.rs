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

#[utoipa::path(post, path = "/api/v1/events", tag = "ingest", request_body(description = "Structured mode (application/cloudevents+json), batch mode (application/cloudevents-batch+json, an array) or binary mode (ce-* headers, application/json data). All or nothing.", content((Object = "application/cloudevents+json"), (Vec<Object> = "application/cloudevents-batch+json"), (Object = "application/json"))), responses((status = 202, description = "Every event is in the log", body = Accepted), (status = 400, description = "Refused; nothing was published; details lists each refused event and its problems", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 413, description = "Body too large", body = super::ErrorBody), (status = 415, description = "Not a CloudEvents content type", body = super::ErrorBody), (status = 503, description = "The log is unavailable; retry with the same ids", body = super::ErrorBody)))]
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
