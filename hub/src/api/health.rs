//! Liveness, readiness, metrics and the OpenAPI document.

use std::sync::atomic::Ordering;

use axum::{extract::State, http::header, http::StatusCode, response::IntoResponse, Json};
use serde_json::json;

use super::{auth::Caller, ApiError, ApiState};
use crate::tokens::Role;

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "The process is up", body = Object)))]
/// `GET /healthz`: the process is up (no token needed).
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "The projection has caught up with the log: checkpoint, last sequence, lag", body = Object), (status = 503, description = "Not caught up, or NATS unavailable", body = Object), (status = 401, description = "No token", body = super::ErrorBody)))]
/// `GET /readyz`: 200 when the projection has caught up with the log, else 503 with the lag.
pub async fn readyz(State(state): State<ApiState>, _caller: Caller) -> impl IntoResponse {
    let checkpoint = state.model.get().checkpoint().unwrap_or(0);
    let last = match state.js.get_stream(crate::streams::EVENTS).await {
        // The stream as fetched carries its info: one round trip, not two.
        Ok(stream) => Some(stream.cached_info().state.last_sequence),
        Err(_) => None,
    };
    let projecting = state.projector.is_some();
    let (ready, lag) = match last {
        Some(last) => (checkpoint >= last || !projecting, last.saturating_sub(checkpoint)),
        None => (false, 0),
    };
    let caught_up = state.projector.as_ref().map(|p| p.caught_up.load(Ordering::Relaxed));
    let body = json!({
        "ready": ready,
        "checkpoint": checkpoint,
        "log_last_sequence": last,
        "lag_events": lag,
        "projector_running": projecting,
        "projector_caught_up": caught_up,
        "nats": if last.is_some() { "connected" } else { "unavailable" },
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody)))]
/// `GET /metrics`: Prometheus text (operators).
pub async fn metrics(State(state): State<ApiState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    // Gauges read from elsewhere are refreshed at each scrape: the DLQ by reason (JetStream counts
    // it per subject) and each adapter's heartbeat age (from the heartbeats view).
    match crate::ops::dlq::count_by_reason(&state.js).await {
        Ok(counts) => {
            for (reason, count) in counts {
                state.metrics.dlq_messages.get_or_create(&crate::metrics::DlqLabels { reason }).set(count as i64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "DLQ size not refreshed"),
    }
    for adapter in super::status::adapters(&state, chrono::Utc::now()).await {
        let labels = crate::metrics::AdapterLabels { principal: adapter.principal, adapter: adapter.adapter };
        state.metrics.adapter_heartbeat_age.get_or_create(&labels).set(adapter.age_seconds.unwrap_or(f64::NAN));
    }
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render()))
}

#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "operations", responses((status = 200, description = "This document", body = Object), (status = 401, description = "No token", body = super::ErrorBody)))]
/// `GET /api/v1/openapi.json`.
pub async fn openapi(_caller: Caller) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi_json())
}
