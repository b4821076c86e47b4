//! Webhook subscriptions: an integrator subscribes its own principal's local system to the
//! events routed to that principal; operators see and manage every subscription.
//!
//! | route | what |
//! | --- | --- |
//! | `POST /api/v1/subscriptions` | a new subscription (the answer shows its secret, once) |
//! | `GET /api/v1/subscriptions` | the caller's subscriptions (an operator's: all) with their delivery figures |
//! | `GET/DELETE /api/v1/subscriptions/{id}` | one; remove it (its consumer and parked deliveries go too) |
//! | `POST /api/v1/subscriptions/{id}/pause`, `…/resume` | stop delivering (events wait), go on |
//! | `GET /api/v1/subscriptions/{id}/parked` | deliveries parked after their last attempt |
//! | `POST /api/v1/subscriptions/{id}/parked/replay` | deliver the parked ones again, oldest first |

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    Json,
};
use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};

use super::{auth::Caller, ApiError, ApiState};
use crate::{
    tokens::Role,
    webhooks::{
        delivery::DeliveryStatus,
        parked::{self, ParkedDelivery, ReplayResult},
        store::StoreError,
        subscription::{NewSubscription, Subscription, SubscriptionView},
    },
};

/// A subscription with its delivery figures.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionItem {
    /// The subscription.
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// Its figures on the hub that answers (zero where another hub delivers).
    pub delivery: DeliveryStatus,
}

/// The answer to a new subscription: the only time the secret is shown.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CreatedSubscription {
    /// The subscription.
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// The signing secret (`whsec_…`): keep it; it is not shown again.
    pub secret: String,
}

/// Subscriptions listed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionList {
    /// Oldest first.
    pub items: Vec<SubscriptionItem>,
}

/// Parked deliveries listed.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParkedList {
    /// How many are parked.
    pub total: u64,
    /// The oldest `limit`.
    pub items: Vec<ParkedDelivery>,
}

/// What a replay did.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(as = ParkedReplayAnswer)]
pub struct ReplayAnswer {
    /// Delivered now (no longer parked).
    pub delivered: usize,
    /// Still parked (the replay stops at the first failure).
    pub failed: usize,
    /// Each one tried.
    #[schema(value_type = Vec<ParkedReplayResult>)]
    pub results: Vec<ReplayResult>,
}

/// A parked delivery's `ReplayResult` under a name of its own (the DLQ's replays have another).
pub struct ParkedReplayResult;

impl utoipa::PartialSchema for ParkedReplayResult {
    fn schema() -> RefOr<Schema> {
        <ReplayResult as utoipa::PartialSchema>::schema()
    }
}

impl utoipa::ToSchema for ParkedReplayResult {}

/// The pattern of a subscription's id.
pub const ID_PATTERN: &str = "^wh-[0-9a-f]{16}$";

/// The pattern of a signing secret as the hub reads it: `whsec_` and the canonical base64 (with
/// its padding, unused bits zero) of 24–64 bytes.
pub const SECRET_PATTERN: &str = "^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,21}(?:[A-Za-z0-9+/][AQgw]==)?|(?:[A-Za-z0-9+/]{4}){8,20}[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)$";

/// The request body of `POST /api/v1/subscriptions`: [`NewSubscription`] with the values the hub
/// accepts.
pub struct NewSubscriptionBody;

impl utoipa::PartialSchema for NewSubscriptionBody {
    fn schema() -> RefOr<Schema> {
        use utoipa::openapi::schema::{AdditionalProperties, ArrayBuilder, ObjectBuilder, Type};
        let string = || ObjectBuilder::new().schema_type(Type::String);
        let nullable = || {
            ObjectBuilder::new().schema_type(utoipa::openapi::schema::SchemaType::Array(vec![Type::String, Type::Null]))
        };
        let listed = |values: Vec<String>, description: &str| {
            ArrayBuilder::new().items(string().enum_values(Some(values))).description(Some(description))
        };
        let areas = crate::webhooks::subscription::AREAS.iter().map(|a| a.to_string()).collect();
        let types = sgd_schemas::events::DomainEvent::TYPES.iter().map(|t| t.to_string()).collect();
        let principals: Vec<Option<String>> =
            sgd_schemas::principals::all().iter().map(|p| Some(p.code.to_string())).chain([None]).collect();
        ObjectBuilder::new()
            .description(Some("A request for a new subscription."))
            .property(
                "url",
                string().pattern(Some(crate::webhooks::target::URL_PATTERN)).description(Some(
                    "The receiver's URL: https, to a host that is not internal (loopback, private, link-local, \
                     … addresses are refused at creation and at every delivery).",
                )),
            )
            .required("url")
            .property("areas", listed(areas, "Only these areas (default all)."))
            .property("types", listed(types, "Only these event types (default all)."))
            .property(
                "secret",
                nullable().pattern(Some(SECRET_PATTERN)).description(Some(
                    "The signing secret, `whsec_` + base64 of 24–64 bytes; made by the hub when absent (and \
                     then shown once, in the answer).",
                )),
            )
            .property(
                "principal",
                nullable().enum_values(Some(principals)).description(Some(
                    "The principal: an operator names it; an integrator's is its token's (another one is \
                     refused with 403).",
                )),
            )
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    }
}

impl utoipa::ToSchema for NewSubscriptionBody {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("NewSubscription")
    }
}

/// `limit` of the parked list and replay.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LimitQuery {
    /// How many, oldest first: 1–1000, default 100.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

fn unavailable(e: StoreError) -> ApiError {
    ApiError::unavailable(e.to_string())
}

fn item(state: &ApiState, subscription: &Subscription) -> SubscriptionItem {
    let delivery = state
        .webhook_statuses
        .lock()
        .ok()
        .and_then(|statuses| statuses.get(&subscription.id).cloned())
        .unwrap_or_default();
    SubscriptionItem { subscription: subscription.public(), delivery }
}

/// The subscription `id` if the caller may see it (its principal's integrator, or an operator);
/// 404 otherwise, so that no one learns of another principal's subscriptions.
async fn visible(state: &ApiState, caller: &Caller, id: &str) -> Result<Subscription, ApiError> {
    caller.require(&[Role::Integrator, Role::Operator])?;
    let not_found = || ApiError::not_found(format!("no subscription {id}"));
    // Anything but an id the hub makes is no subscription (and not a key to ask the store for).
    let well_formed = id
        .strip_prefix("wh-")
        .is_some_and(|hex| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)));
    if !well_formed {
        return Err(not_found());
    }
    let subscription = state.subscriptions.get(id).await.map_err(unavailable)?.ok_or_else(not_found)?;
    match caller.0.role {
        Role::Operator => Ok(subscription),
        _ if caller.0.principal.as_deref() == Some(subscription.principal.as_str()) => Ok(subscription),
        _ => Err(not_found()),
    }
}

#[utoipa::path(post, path = "/api/v1/subscriptions", tag = "subscriptions", request_body = NewSubscriptionBody, responses((status = 201, description = "Made; the answer holds the secret, shown only now", body = CreatedSubscription), (status = 400, description = "A body this document does not describe; a URL to an internal host (localhost, a private or loopback address); an operator's request without a principal", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Only integrator (own principal) and operator tokens", body = super::ErrorBody), (status = 413, description = "Body too large", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// Subscribes a URL to the events routed to a principal.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<Json<NewSubscription>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<CreatedSubscription>), ApiError> {
    caller.require(&[Role::Integrator, Role::Operator])?;
    let Json(request) = body.map_err(ApiError::from)?;
    let principal = match (caller.0.role, &caller.0.principal, &request.principal) {
        (Role::Operator, _, Some(principal)) => principal.clone(),
        (Role::Operator, _, None) => return Err(ApiError::bad_request("an operator names the principal")),
        (_, Some(own), Some(asked)) if own != asked => {
            return Err(ApiError::forbidden("an integrator token subscribes its own principal only"))
        }
        (_, Some(own), _) => own.clone(),
        (_, None, _) => return Err(ApiError::forbidden("this integrator token is bound to no principal")),
    };
    let subscription = request
        .into_subscription(&principal, &caller.0.id, &state.settings.webhook.policy())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    state.subscriptions.create(&subscription).await.map_err(unavailable)?;
    tracing::info!(subscription = %subscription.id, principal = %subscription.principal, by = %caller.0.id, "subscription made");
    Ok((
        StatusCode::CREATED,
        Json(CreatedSubscription { subscription: subscription.public(), secret: subscription.secret.clone() }),
    ))
}

#[utoipa::path(get, path = "/api/v1/subscriptions", tag = "subscriptions", responses((status = 200, description = "The caller's principal's subscriptions (an operator's: all), oldest first", body = SubscriptionList), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Only integrator and operator tokens", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// Lists subscriptions with their delivery figures.
pub async fn list(State(state): State<ApiState>, caller: Caller) -> Result<Json<SubscriptionList>, ApiError> {
    caller.require(&[Role::Integrator, Role::Operator])?;
    let principal = match caller.0.role {
        Role::Operator => None,
        _ => Some(caller.0.principal.clone().unwrap_or_default()),
    };
    let all = state.subscriptions.list(principal.as_deref()).await.map_err(unavailable)?;
    Ok(Json(SubscriptionList { items: all.iter().map(|s| item(&state, s)).collect() }))
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path, description = "The subscription's id: wh- and 16 hex digits", pattern = "^wh-[0-9a-f]{16}$")), responses((status = 200, description = "The subscription with its figures", body = SubscriptionItem), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Only integrator and operator tokens", body = super::ErrorBody), (status = 404, description = "No such subscription of the caller's principal", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// One subscription.
pub async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionItem>, ApiError> {
    let subscription = visible(&state, &caller, &id).await?;
    Ok(Json(item(&state, &subscription)))
}

#[utoipa::path(delete, path = "/api/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path, description = "The subscription's id: wh- and 16 hex digits", pattern = "^wh-[0-9a-f]{16}$")), responses((status = 204, description = "Removed, with its consumer and parked deliveries"), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Only integrator and operator tokens", body = super::ErrorBody), (status = 404, description = "No such subscription of the caller's principal", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// Removes a subscription.
pub async fn remove(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let subscription = visible(&state, &caller, &id).await?;
    state.subscriptions.remove(&subscription).await.map_err(unavailable)?;
    tracing::info!(subscription = %id, by = %caller.0.id, "subscription removed");
    Ok(StatusCode::NO_CONTENT)
}

async fn set_paused(
    state: &ApiState,
    caller: &Caller,
    id: &str,
    paused: bool,
) -> Result<Json<SubscriptionItem>, ApiError> {
    let mut subscription = visible(state, caller, id).await?;
    subscription.paused = paused;
    state.subscriptions.put(&subscription).await.map_err(unavailable)?;
    tracing::info!(subscription = %id, paused, by = %caller.0.id, "subscription changed");
    Ok(Json(item(state, &subscription)))
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/pause", tag = "subscriptions", params(("id" = String, Path, description = "The subscription's id: wh- and 16 hex digits", pattern = "^wh-[0-9a-f]{16}$")), responses((status = 200, description = "Paused: nothing is delivered; routed events wait at its position", body = SubscriptionItem), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Only integrator and operator tokens", body = super::ErrorBody), (status = 404, description = "No such subscription of the caller's principal", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// Pauses a subscription.
pub async fn pause(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionItem>, ApiError> {
    set_paused(&state, &caller, &id, true).await
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/resume", tag = "subscriptions", params(("id" = String, Path, description = "The subscription's id: wh- and 16 hex digits", pattern = "^wh-[0-9a-f]{16}$")), responses((status = 200, description = "Delivering again, from where it paused", body = SubscriptionItem), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Only integrator and operator tokens", body = super::ErrorBody), (status = 404, description = "No such subscription of the caller's principal", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// Resumes a paused subscription.
pub async fn resume(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<SubscriptionItem>, ApiError> {
    set_paused(&state, &caller, &id, false).await
}

fn limit(query: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>) -> Result<usize, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1–1000"));
    }
    Ok(limit)
}

#[utoipa::path(get, path = "/api/v1/subscriptions/{id}/parked", tag = "subscriptions", params(("id" = String, Path, description = "The subscription's id: wh- and 16 hex digits", pattern = "^wh-[0-9a-f]{16}$"), LimitQuery), responses((status = 200, description = "Parked deliveries, oldest first", body = ParkedList), (status = 400, description = "Bad limit", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Only integrator and operator tokens", body = super::ErrorBody), (status = 404, description = "No such subscription of the caller's principal", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// Lists a subscription's parked deliveries.
pub async fn parked_list(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ParkedList>, ApiError> {
    let subscription = visible(&state, &caller, &id).await?;
    let limit = limit(query)?;
    let (total, parked) =
        parked::read(&state.js, &subscription, limit).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(ParkedList { total, items: parked.into_iter().map(|p| p.delivery).collect() }))
}

#[utoipa::path(post, path = "/api/v1/subscriptions/{id}/parked/replay", tag = "subscriptions", params(("id" = String, Path, description = "The subscription's id: wh- and 16 hex digits", pattern = "^wh-[0-9a-f]{16}$"), LimitQuery), responses((status = 200, description = "What happened to each parked delivery tried", body = ReplayAnswer), (status = 400, description = "Bad limit", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "Only integrator and operator tokens", body = super::ErrorBody), (status = 404, description = "No such subscription of the caller's principal", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// Delivers a subscription's parked deliveries again, oldest first.
///
/// Each is tried once; the replay stops at the first failure.
pub async fn parked_replay(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<LimitQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<ReplayAnswer>, ApiError> {
    let subscription = visible(&state, &caller, &id).await?;
    let limit = limit(query)?;
    let results = parked::replay(&state.js, &state.webhook_attempt, &subscription, limit)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let delivered = results.iter().filter(|r| r.delivered).count();
    Ok(Json(ReplayAnswer { delivered, failed: results.len() - delivered, results }))
}
