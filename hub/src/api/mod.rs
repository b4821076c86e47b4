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
//! | `GET /api/v1/dlq` | operator; integrator (its own principal's) | the newest dead letters (by reason, principal) |
//! | `GET /api/v1/dlq/{seq}` | operator | one dead letter |
//! | `POST /api/v1/dlq/replay` | operator | dead letters through validation again; passed ones land once |
//! | `GET /api/v1/persons/{pseudonym}/timeline` | coordinator, with a consent | a person's events; audited |
//! | `GET /api/v1/audit` | operator | the newest audit records |
//! | `POST /api/v1/events` | integrator | CloudEvents HTTP binding into the log, synchronously |
//! | `POST/GET /api/v1/subscriptions`, `GET/DELETE …/{id}`, `POST …/{id}/pause`, `…/resume`, `GET …/{id}/parked`, `POST …/{id}/parked/replay` | integrator (own principal), operator | webhook subscriptions |
//! | `GET /api/v1/status` | operator | streams, lags, totals, dead letters by reason, heartbeats |
//! | `POST/GET /api/v1/admin/rebuild` | operator | rebuild the read model beside the served one; swap or compare |
//! | `GET /api/v1/stream` | analyst, operator | live events (SSE); dead letters for operators |
//! | `GET /api/v1/openapi.json` | any token | this API described |
//! | `GET /api/v1/asyncapi.json` | any token | the NATS side described (AsyncAPI 3.0) |
//! | `GET /api/v1/schemas/{type}/{version}` | any token | an event type's JSON Schema |
//! | `GET /api/v1/me` | any token | the caller's role and the dashboard views it may see |
//! | `GET /`, `/assets/…` | anyone | the dashboard page (it asks for a token) |

pub mod admin;
pub mod adoption;
pub mod answer_cache;
pub mod as_of;
pub mod asyncapi;
pub mod audit;
pub mod auth;
pub mod dashboard;
pub mod dlq;
pub mod followup;
pub mod goals;
pub mod health;
pub mod ingest;
pub mod params;
pub mod persons;
pub mod rate_limit;
pub mod status;
pub mod stream;
pub mod stream_tail;
pub mod subscriptions;
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

use crate::{metrics::Metrics, projection::runner::ProjectorStatus, tokens::TokenStore};

/// The OpenAPI document's frame: title, security scheme; the paths come from the handlers.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "sgd-hub API",
        description = "The HTTP API of sgd-hub, the event-sourced integration hub for the shared digital services of \
Skåne's 34 care principals. Every route but /healthz needs `Authorization: Bearer <token>`; tokens have a role: \
analyst (aggregates), operator (also DLQ, audit and metrics), integrator (ingest for its own principal), \
coordinator (follow-up and, with a consent, a person's timeline; audited). Aggregate answers (goals, usage, \
adoption, follow-up) are shared between callers with the same role and principal: each reflects the read model's \
current checkpoint and, for answers as of now, is at most 5 s behind the clock."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    // Schemas named only by query and path parameters (utoipa collects those of bodies itself).
    components(schemas(
        params::AsOf,
        params::AreaName,
        params::EventTypeName,
        params::Format,
        params::PrincipalCode,
        params::RuleName,
        params::SinceDuration,
        stream::StreamPrincipal,
        usage::Bucket
    ))
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
        .routes(routes!(asyncapi::asyncapi))
        .routes(routes!(asyncapi::schema))
        .routes(routes!(usage::usage))
        .routes(routes!(goals::list))
        .routes(routes!(adoption::adoption))
        .routes(routes!(followup::summary_handler))
        .routes(routes!(followup::open_handler))
        .routes(routes!(dlq::list))
        .routes(routes!(dlq::show))
        .routes(routes!(dlq::replay_handler))
        .routes(routes!(persons::timeline))
        .routes(routes!(audit::list))
        .routes(routes!(ingest::post_events))
        .routes(routes!(dashboard::me))
        .routes(routes!(stream::live))
        .routes(routes!(status::status))
        .routes(routes!(admin::start, admin::progress))
        .routes(routes!(subscriptions::create, subscriptions::list))
        .routes(routes!(subscriptions::show, subscriptions::remove))
        .routes(routes!(subscriptions::pause))
        .routes(routes!(subscriptions::resume))
        .routes(routes!(subscriptions::parked_list))
        .routes(routes!(subscriptions::parked_replay))
}

/// The OpenAPI document of the whole API: generated from the handlers, with the event schemas
/// of the catalogue and the answers every route shares.
pub fn openapi() -> serde_json::Value {
    let generated = routes().split_for_parts().1;
    let mut doc = serde_json::to_value(&generated).unwrap_or_default();
    ingest::add_event_schemas(&mut doc);
    add_shared_responses(&mut doc);
    doc
}

/// The OpenAPI document as pretty JSON (served at `/api/v1/openapi.json`; `docs/openapi.json` is a
/// copy that a test keeps current).
pub fn openapi_json() -> &'static str {
    static JSON: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    JSON.get_or_init(|| serde_json::to_string_pretty(&openapi()).unwrap_or_default())
}

/// Adds to every operation the answers that do not depend on the route, where the handler's own
/// list lacks them: 401 and 429 wherever a token is needed (the rate limiter answers before any
/// handler), 400 wherever there is a parameter or a body to be malformed, and 413, 415 wherever
/// there is a body.
fn add_shared_responses(doc: &mut serde_json::Value) {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } }
        })
    };
    let Some(paths) = doc.get_mut("paths").and_then(serde_json::Value::as_object_mut) else { return };
    for item in paths.values_mut() {
        let Some(item) = item.as_object_mut() else { continue };
        for operation in item.values_mut() {
            let Some(operation) = operation.as_object_mut() else { continue };
            // `security: [{}]` (as on /healthz) means no token.
            let open = operation
                .get("security")
                .and_then(serde_json::Value::as_array)
                .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(|r| r.is_empty())));
            let has_parameters =
                operation.get("parameters").and_then(serde_json::Value::as_array).is_some_and(|p| !p.is_empty());
            let has_body = operation.contains_key("requestBody");
            let Some(responses) = operation.get_mut("responses").and_then(serde_json::Value::as_object_mut) else {
                continue;
            };
            let mut add = |status: &str, description: &str| {
                responses.entry(status).or_insert_with(|| error(description));
            };
            if has_parameters || has_body {
                add("400", "A parameter or the body is not what this document describes");
            }
            if !open {
                add("401", "No token, or an unknown or revoked one");
                add(
                    "429",
                    "This token made more requests per second than the hub allows (`rate_limit_per_second`, burst \
                     `rate_limit_burst`); retry in a moment",
                );
            }
            if has_body {
                add("413", "The body is larger than the hub accepts");
                add("415", "The body's Content-Type is not one this route reads");
            }
            // Keep the answers in status order, as the handlers list theirs.
            let mut sorted: Vec<(String, serde_json::Value)> = std::mem::take(responses).into_iter().collect();
            sorted.sort_by(|a, b| a.0.cmp(&b.0));
            responses.extend(sorted);
        }
    }
}

/// What every handler may use: the [`ApiParts`], shared. axum clones the state for every
/// middleware and extractor of every request; as one reference count that costs one atomic
/// increment instead of one per part (measured: cloning and dropping the parts one by one took ~8%
/// of the hub's CPU under the bench's query load, see docs/performance.md).
#[derive(Clone)]
pub struct ApiState(Arc<ApiParts>);

impl ApiState {
    /// The state holding `parts`.
    pub fn new(parts: ApiParts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiParts;

    fn deref(&self) -> &ApiParts {
        &self.0
    }
}

/// The parts of the API's state.
pub struct ApiParts {
    /// The served read model (a rebuild may replace it).
    pub model: crate::store::read_model::ServingModel,
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
    pub views: crate::projection::runner::SharedViews,
    /// The configuration (limits, goal settings, privacy threshold).
    pub settings: Arc<crate::config::HubConfig>,
    /// When the API started (uptime in `/api/v1/status`).
    pub started: std::time::Instant,
    /// Rebuilds, when this process projects.
    pub rebuilder: Option<Arc<crate::projection::rebuild::Rebuilder>>,
    /// Per-token rate limits.
    pub rate_limit: Arc<rate_limit::TokenRateLimit>,
    /// Answers shared between callers asking the same aggregate question.
    pub answers: Arc<answer_cache::AnswerCache>,
    /// The log's last sequence for `/readyz`, asked of JetStream at most every 100 ms.
    pub log_last_sequence: Arc<health::LogLastSequence>,
    /// Webhook subscriptions.
    pub subscriptions: crate::webhooks::store::SubscriptionStore,
    /// Webhook attempts (parked replays).
    pub webhook_attempt: crate::webhooks::delivery::Attempt,
    /// Delivery figures of the subscriptions this hub delivers.
    pub webhook_statuses: crate::webhooks::delivery::Statuses,
    /// Turns true at shutdown: long-lived answers (the live stream) end then, so the server can.
    pub shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Runs `compute` over the domain views on a blocking thread, under a read lock. The open
/// follow-up cases walk every case, tens to hundreds of milliseconds at a million events: on a
/// runtime worker that would stall the requests queued behind it (two workers on two cores). The
/// bench's query phase measured no change from it (docs/performance.md, "Queries"): there the
/// clients saturate both cores whoever computes. The answers that only sum the aggregates use
/// [`with_views`].
pub async fn over_views<T, F>(state: &ApiState, compute: F) -> Result<T, ApiError>
where
    T: Send + 'static,
    F: FnOnce(&crate::projections::DomainViews) -> T + Send + 'static,
{
    let views = state.views.clone().read_owned().await;
    tokio::task::spawn_blocking(move || compute(&views))
        .await
        .map_err(|e| ApiError::unavailable(format!("the computation failed: {e}")))
}

/// Runs `compute` over the domain views under a read lock, on the request's own task: for
/// answers that sum the aggregates (goals, the follow-up summary), a fraction of a millisecond at
/// a million events, too little to stall the requests queued behind it (handing it to a blocking
/// thread measured the same in the bench's query phase, docs/performance.md, "Queries").
pub async fn with_views<T, F>(state: &ApiState, compute: F) -> T
where
    F: FnOnce(&crate::projections::DomainViews) -> T,
{
    compute(&*state.views.read().await)
}

/// The router with every route.
pub fn router(state: ApiState) -> Router {
    let max_body = state.max_event_bytes.saturating_mul(64).max(1 << 20);
    let (router, _) = routes().split_for_parts();
    router
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), answer_cache::share_answers))
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), observe_http))
        .merge(dashboard::pages())
        .layer(DefaultBodyLimit::max(max_body))
        .with_state(state)
}

/// Records every routed request's duration by method, route pattern and status.
async fn observe_http(
    axum::extract::State(state): axum::extract::State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = request.method().to_string();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.observe_http(&method, &route, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
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

    /// 403 with a message.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self { status: StatusCode::FORBIDDEN, code: "forbidden", message: message.into(), details: None }
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self { status: StatusCode::NOT_FOUND, code: "not_found", message: message.into(), details: None }
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
    /// `too_large`, `unsupported_media_type`, `not_found`, `conflict`, `rate_limited`, `unavailable`.
    pub error: String,
    /// For a person.
    pub message: String,
    /// For `invalid_events`: `[{index, id, reason, problems: [{reason, path, message}]}]`.
    pub details: Option<serde_json::Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Messages may quote what the client sent (a header, a content type, a parser's error):
        // a personal identity number in it is redacted here, once for every route.
        let mut body = json!({ "error": self.code, "message": sgd_schemas::pii::redact(&self.message) });
        if let Some(details) = self.details {
            body["details"] = sgd_schemas::pii::redact_json(&details);
        }
        (self.status, Json(body)).into_response()
    }
}

/// A JSON body that could not be read: 413 `too_large` over the body limit (as on the ingest
/// route), 415 `unsupported_media_type` without a JSON Content-Type, else 400 `bad_request` with
/// the parser's reason.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(e: axum::extract::rejection::JsonRejection) -> Self {
        let code = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => "too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => return Self::bad_request(e.body_text()),
        };
        Self { status: e.status(), code, message: e.body_text(), details: None }
    }
}

impl From<crate::store::read_model::ReadModelError> for ApiError {
    fn from(e: crate::store::read_model::ReadModelError) -> Self {
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
        // Every reference resolves (a parameter's schema is not collected by utoipa on its own).
        fn references<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
            match value {
                serde_json::Value::Object(object) => {
                    out.extend(object.get("$ref").and_then(serde_json::Value::as_str));
                    object.values().for_each(|v| references(v, out));
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| references(v, out)),
                _ => {}
            }
        }
        let mut refs = Vec::new();
        references(&doc, &mut refs);
        let dangling: Vec<_> =
            refs.iter().filter(|r| r.strip_prefix('#').is_none_or(|p| doc.pointer(p).is_none())).collect();
        assert!(dangling.is_empty(), "references to nothing: {dangling:?}");
        // Every route that needs a token documents the rate limiter's answer.
        for (route, item) in paths {
            for (method, operation) in item.as_object().unwrap() {
                let open = route == "/healthz";
                assert_eq!(operation["responses"].get("429").is_some(), !open, "{method} {route}");
                assert!(!operation["summary"].as_str().unwrap_or_default().contains('\n'), "{method} {route}");
            }
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
