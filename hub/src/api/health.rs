//! Liveness, readiness, metrics and the OpenAPI document.

use std::{
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use axum::{extract::State, http::header, http::StatusCode, response::IntoResponse, Json};
use serde_json::json;

use super::{auth::Caller, ApiError, ApiState};
use crate::tokens::Role;

/// How old the log's last sequence in `/readyz` may be.
pub const LAST_SEQUENCE_MAX_AGE: Duration = Duration::from_millis(100);

/// The log's last sequence as `/readyz` reports it: asked of JetStream (a `STREAM.INFO`) at most
/// once per [`LAST_SEQUENCE_MAX_AGE`], however often probes come. A probe per millisecond (the
/// benchmark's latency poller) otherwise cost `nats-server` one API request each, and the
/// measurement loaded what it measured.
#[derive(Debug, Default)]
pub struct LogLastSequence(tokio::sync::Mutex<Option<(Instant, u64)>>);

impl LogLastSequence {
    /// The last sequence, at most [`LAST_SEQUENCE_MAX_AGE`] old (`None` when JetStream does not
    /// answer).
    pub async fn get(&self, js: &async_nats::jetstream::Context) -> Option<u64> {
        // Held while asking: probes arriving meanwhile wait for this answer instead of asking too.
        let mut known = self.0.lock().await;
        if let Some((at, last)) = *known {
            if at.elapsed() < LAST_SEQUENCE_MAX_AGE {
                return Some(last);
            }
        }
        let asked = Instant::now();
        // The stream as fetched carries its info: one round trip, not two.
        let last = js.get_stream(crate::log::streams::EVENTS).await.ok()?.cached_info().state.last_sequence;
        *known = Some((asked, last));
        Some(last)
    }
}

#[utoipa::path(get, path = "/healthz", tag = "operations", security(()), responses((status = 200, description = "The process is up", body = Object)))]
/// Whether the process is up (no token needed).
pub async fn healthz() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "operations", responses((status = 200, description = "The projection has caught up with the log: checkpoint, the log's last sequence (at most 100 ms old), lag", body = Object), (status = 503, description = "Not caught up, or NATS unavailable", body = Object), (status = 401, description = "No token", body = super::ErrorBody)))]
/// Whether the hub is ready: 200 when the projection has caught up with the log, else 503 with the lag.
pub async fn readyz(State(state): State<ApiState>, _caller: Caller) -> impl IntoResponse {
    let checkpoint = state.model.get().checkpoint().unwrap_or(0);
    let last = state.log_last_sequence.get(&state.js).await;
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
/// Prometheus metrics, as text (operators).
pub async fn metrics(State(state): State<ApiState>, caller: Caller) -> Result<impl IntoResponse, ApiError> {
    caller.require(&[Role::Operator])?;
    // Gauges read from elsewhere are refreshed at each scrape: the DLQ by reason (JetStream counts
    // it per subject) and each adapter's heartbeat age (from the heartbeats view).
    match crate::log::replay::count_by_reason(&state.js).await {
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
/// This OpenAPI document.
pub async fn openapi(_caller: Caller) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], super::openapi_json())
}
