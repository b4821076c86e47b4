//! The HTTP API (axum): routes, shared state and error responses.
//!
//! | route | who | what |
//! | --- | --- | --- |
//! | `GET /healthz` | anyone | the process is up |
//! | `GET /readyz` | any token | 200 when the projection has caught up, else 503 |
//! | `GET /metrics` | operator | Prometheus text |
//! | `GET /api/v1/usage` | analyst, operator | usage counts (JSON or CSV) |
//! | `GET /api/v1/goals` | analyst, operator | each stated goal: numerator, denominator, value, target |
//! | `GET /api/v1/adoption` | analyst, operator | per principal × area: events, units, first/last activity |
//! | `GET /api/v1/followup/summary` | analyst, operator, coordinator | follow-up figures per principal |
//! | `GET /api/v1/followup/open` | analyst, operator, coordinator | the open cases themselves |
//! | `GET /api/v1/dlq` | operator | the newest dead letters |
//! | `GET /api/v1/persons/{pseudonym}/timeline` | coordinator, with a consent | a person's events; audited |
//! | `GET /api/v1/audit` | operator | the newest audit records |
//! | `POST /api/v1/events` | integrator | CloudEvents HTTP binding into the log, synchronously |
//! | `GET /api/v1/openapi.json` | any token | this API described |

pub mod adoption;
pub mod as_of;
pub mod audit;
pub mod auth;
pub mod dlq;
pub mod followup;
pub mod goals;
pub mod health;
pub mod ingest;
pub mod persons;
pub mod stream_tail;
pub mod usage;

use std::sync::Arc;

use async_nats::jetstream;
use axum::{
    extract::DefaultBodyLimit,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use serde_json::json;

use crate::{metrics::Metrics, projector::ProjectorStatus, read_model::ReadModel, tokens::TokenStore};

/// The OpenAPI description served at `/api/v1/openapi.json` (also `docs/openapi.json`).
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");

/// What every handler may use.
#[derive(Clone)]
pub struct ApiState {
    /// The read model.
    pub model: Arc<ReadModel>,
    /// API tokens.
    pub tokens: Arc<TokenStore>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Projection progress, when this process projects.
    pub projector: Option<Arc<ProjectorStatus>>,
    /// JetStream, for ingest, the DLQ and readiness.
    pub js: jetstream::Context,
    /// Largest accepted event.
    pub max_event_bytes: usize,
    /// The domain views (goals, follow-up, consent).
    pub views: crate::projector::SharedViews,
    /// The configuration (limits, goal settings, privacy threshold).
    pub settings: Arc<crate::HubConfig>,
}

/// The router with every route.
pub fn router(state: ApiState) -> Router {
    let max_body = state.max_event_bytes.saturating_mul(64).max(1 << 20);
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/api/v1/openapi.json", get(health::openapi))
        .route("/api/v1/usage", get(usage::usage))
        .route("/api/v1/goals", get(goals::list))
        .route("/api/v1/adoption", get(adoption::adoption))
        .route("/api/v1/followup/summary", get(followup::summary_handler))
        .route("/api/v1/followup/open", get(followup::open_handler))
        .route("/api/v1/dlq", get(dlq::list))
        .route("/api/v1/persons/{pseudonym}/timeline", get(persons::timeline))
        .route("/api/v1/audit", get(audit::list))
        .route("/api/v1/events", post(ingest::post_events).layer(DefaultBodyLimit::max(max_body)))
        .with_state(state)
}

/// An error response: `{"error": code, "message": text, "problems": [...]?}`.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// A stable code, e.g. `unauthorized`.
    pub code: &'static str,
    /// For a person.
    pub message: String,
    /// Details (e.g. every refused event's problems).
    pub details: Option<serde_json::Value>,
}

impl ApiError {
    /// 400 with a message.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, code: "bad_request", message: message.into(), details: None }
    }

    /// 503 when a dependency (NATS, the read model) failed.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self { status: StatusCode::SERVICE_UNAVAILABLE, code: "unavailable", message: message.into(), details: None }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = json!({ "error": self.code, "message": self.message });
        if let Some(details) = self.details {
            body["details"] = details;
        }
        (self.status, Json(body)).into_response()
    }
}

impl From<crate::read_model::ReadModelError> for ApiError {
    fn from(e: crate::read_model::ReadModelError) -> Self {
        tracing::error!(error = %e, "read model error");
        Self::unavailable(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_document_describes_every_route() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for route in [
            "/healthz",
            "/readyz",
            "/metrics",
            "/api/v1/openapi.json",
            "/api/v1/usage",
            "/api/v1/dlq",
            "/api/v1/events",
        ] {
            assert!(paths.contains_key(route), "{route} is not in docs/openapi.json");
        }
        let source = include_str!("mod.rs");
        let routed = source.matches(".route(\"").count();
        assert_eq!(routed, paths.len(), "docs/openapi.json and the router list different routes");
    }
}
