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
    Json, Router,
};
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{metrics::Metrics, projector::ProjectorStatus, read_model::ReadModel, tokens::TokenStore};

/// The OpenAPI document's frame: title, security scheme; the paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "sgd-hub API",
        description = "The HTTP API of sgd-hub, the event-sourced integration hub for the shared digital services of \
Skåne's 34 care principals. Every route but /healthz needs `Authorization: Bearer <token>`; tokens have a role: \
analyst (aggregates), operator (also DLQ, audit and metrics), integrator (ingest for its own principal), \
coordinator (follow-up and, with a consent, a person's timeline; audited)."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every route with its OpenAPI description: the one list both the router and the document use.
fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(<ApiDoc as utoipa::OpenApi>::openapi())
        .routes(routes!(health::healthz))
        .routes(routes!(health::readyz))
        .routes(routes!(health::metrics))
        .routes(routes!(health::openapi))
        .routes(routes!(usage::usage))
        .routes(routes!(goals::list))
        .routes(routes!(adoption::adoption))
        .routes(routes!(followup::summary_handler))
        .routes(routes!(followup::open_handler))
        .routes(routes!(dlq::list))
        .routes(routes!(persons::timeline))
        .routes(routes!(audit::list))
        .routes(routes!(ingest::post_events))
}

/// The OpenAPI document of the whole API, generated from the handlers.
pub fn openapi() -> utoipa::openapi::OpenApi {
    routes().split_for_parts().1
}

/// The OpenAPI document as pretty JSON (served at `/api/v1/openapi.json`; `docs/openapi.json` is a
/// copy that a test keeps current).
pub fn openapi_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| openapi().to_pretty_json().unwrap_or_default())
}

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
    let (router, _) = routes().split_for_parts();
    router.layer(DefaultBodyLimit::max(max_body)).with_state(state)
}

/// An error response: `{"error": code, "message": text, "details": ...?}`.
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

/// The body of every error response.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// A stable code: `unauthorized`, `forbidden`, `no_consent`, `bad_request`, `invalid_events`,
    /// `too_large`, `unsupported_media_type`, `unavailable`.
    pub error: String,
    /// For a person.
    pub message: String,
    /// For `invalid_events`: `[{index, id, reason, problems: [{reason, path, message}]}]`.
    pub details: Option<serde_json::Value>,
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
    fn the_openapi_document_describes_every_route_and_docs_holds_its_copy() {
        let doc: serde_json::Value = serde_json::from_str(super::openapi_json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        let source = include_str!("mod.rs");
        let router_source = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        let routed = router_source.matches(".routes(routes!(").count();
        assert_eq!(paths.len(), routed, "a route without its OpenAPI description: {:?}", paths.keys());
        for route in ["/healthz", "/api/v1/goals", "/api/v1/events", "/api/v1/persons/{pseudonym}/timeline"] {
            assert!(paths.contains_key(route), "{route} is not described");
        }
        let copy = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/openapi.json");
        if std::env::var_os("UPDATE_OPENAPI").is_some() {
            std::fs::write(&copy, format!("{}\n", super::openapi_json())).unwrap();
        }
        let on_disk = std::fs::read_to_string(&copy).unwrap_or_default();
        assert_eq!(
            on_disk.trim_end(),
            super::openapi_json(),
            "docs/openapi.json is out of date: run `UPDATE_OPENAPI=1 cargo test -p sgd-hub --lib openapi`"
        );
    }
}
