//! `GET /api/v1/status`: what an operator looks at first (`hub status` prints it): stream sizes,
//! validator and projection lag, totals, dead letters by reason, adapters' heartbeats.

use std::{collections::BTreeMap, sync::atomic::Ordering};

use axum::{extract::State, Json};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};

use super::{auth::Caller, ApiError, ApiState};
use crate::{log::streams, tokens::Role};

/// One stream.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StreamStatus {
    /// Its name.
    pub name: String,
    /// Messages held.
    pub messages: u64,
    /// Bytes held.
    pub bytes: u64,
    /// First sequence held.
    pub first_seq: u64,
    /// Last sequence written.
    pub last_seq: u64,
    /// Consumers.
    pub consumers: usize,
}

/// The validators' shared consumer on `SGD_INGRESS`.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ValidatorStatus {
    /// Ingress messages not yet delivered to a validator.
    pub pending: u64,
    /// Delivered, not yet acknowledged.
    pub ack_pending: usize,
    /// Age of the oldest ingress message still waiting (0 when none).
    pub lag_seconds: f64,
}

/// This hub's projection.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProjectionStatus {
    /// Last applied log sequence.
    pub checkpoint: u64,
    /// Log events not yet applied.
    pub lag_events: u64,
    /// Age of the oldest unapplied event at the last batch.
    pub lag_seconds: f64,
    /// Whether the last look found nothing left.
    pub caught_up: bool,
}

/// Totals since this hub process started (rates: sample twice).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Totals {
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// Events validated (NATS and HTTP).
    pub validated: u64,
    /// Events refused.
    pub refused: u64,
    /// Events projected.
    pub projected: u64,
}

/// One adapter's newest heartbeat.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdapterStatus {
    /// The principal.
    pub principal: String,
    /// Its name.
    pub principal_name: String,
    /// The adapter.
    pub adapter: String,
    /// Its version.
    pub version: String,
    /// When it was last heard from.
    pub last_seen: Option<DateTime<FixedOffset>>,
    /// Seconds since then.
    pub age_seconds: Option<f64>,
}

/// The router of this hub.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RoutingStatus {
    /// Last routed log sequence.
    pub checkpoint: u64,
    /// Log events not yet routed.
    pub lag_events: u64,
    /// Entries the rules remember (open cases, units).
    pub state_entries: u64,
}

/// One webhook subscription's delivery.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionStatus {
    /// Its id.
    pub id: String,
    /// Its principal.
    pub principal: String,
    /// Its URL.
    pub url: String,
    /// Whether it is paused.
    pub paused: bool,
    /// Its figures on this hub (all zero where another hub delivers).
    pub delivery: crate::webhooks::delivery::DeliveryStatus,
}

/// The hub at a glance: its streams, consumers, projection, adapters and deliveries.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HubStatus {
    /// This hub's instance name.
    pub instance: String,
    /// When this was read.
    pub at: DateTime<Utc>,
    /// Every stream of the hub.
    pub streams: Vec<StreamStatus>,
    /// The validators.
    pub validator: Option<ValidatorStatus>,
    /// This hub's projection (absent when it does not project).
    pub projection: Option<ProjectionStatus>,
    /// Totals since start.
    pub totals: Totals,
    /// Dead letters by reason.
    pub dlq_by_reason: BTreeMap<String, u64>,
    /// Adapters' heartbeats, the longest silent first.
    pub adapters: Vec<AdapterStatus>,
    /// This hub's router (absent when it does not route).
    #[serde(default)]
    pub routing: Option<RoutingStatus>,
    /// Every webhook subscription with its delivery.
    #[serde(default)]
    pub subscriptions: Vec<SubscriptionStatus>,
}

#[utoipa::path(get, path = "/api/v1/status", tag = "operations", responses((status = 200, description = "Streams, lags, totals, dead letters by reason, adapters' heartbeats", body = HubStatus), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// What an operator looks at first.
pub async fn status(State(state): State<ApiState>, caller: Caller) -> Result<Json<HubStatus>, ApiError> {
    caller.require(&[Role::Operator])?;
    let unavailable = |e: &dyn std::fmt::Display| ApiError::unavailable(e.to_string());
    let now = Utc::now();
    let mut stream_statuses = Vec::new();
    let mut events_last = 0;
    let mut ingress_first = None;
    for name in [streams::INGRESS, streams::EVENTS, streams::DLQ, streams::AUDIT, streams::ROUTED, streams::PARKED] {
        let mut stream = state.js.get_stream(name).await.map_err(|e| unavailable(&e))?;
        let info = stream.info().await.map_err(|e| unavailable(&e))?;
        if name == streams::EVENTS {
            events_last = info.state.last_sequence;
        }
        if name == streams::INGRESS && info.state.messages > 0 {
            ingress_first = Some(info.state.first_sequence);
        }
        stream_statuses.push(StreamStatus {
            name: name.into(),
            messages: info.state.messages,
            bytes: info.state.bytes,
            first_seq: info.state.first_sequence,
            last_seq: info.state.last_sequence,
            consumers: info.state.consumer_count,
        });
    }
    let validator = validator_status(&state, ingress_first, now).await;
    let projection = state.projector.as_ref().map(|p| {
        let checkpoint = state.model.get().checkpoint().unwrap_or(0);
        ProjectionStatus {
            checkpoint,
            lag_events: events_last.saturating_sub(checkpoint),
            lag_seconds: state.metrics.lag_seconds.get(),
            caught_up: p.caught_up.load(Ordering::Relaxed),
        }
    });
    let totals = &state.metrics.totals;
    let dlq_by_reason = crate::log::replay::count_by_reason(&state.js).await.map_err(|e| unavailable(&e))?;
    Ok(Json(HubStatus {
        instance: state.settings.instance.clone(),
        at: now,
        streams: stream_statuses,
        validator,
        projection,
        totals: Totals {
            uptime_seconds: state.started.elapsed().as_secs_f64(),
            validated: totals.validated.load(Ordering::Relaxed),
            refused: totals.refused.load(Ordering::Relaxed),
            projected: totals.projected.load(Ordering::Relaxed),
        },
        dlq_by_reason,
        adapters: adapters(&state, now).await,
        routing: state.settings.router.then(|| RoutingStatus {
            checkpoint: state.metrics.routing_checkpoint.get().max(0) as u64,
            lag_events: events_last.saturating_sub(state.metrics.routing_checkpoint.get().max(0) as u64),
            state_entries: state.metrics.routing_state_entries.get().max(0) as u64,
        }),
        subscriptions: subscriptions(&state).await?,
    }))
}

async fn subscriptions(state: &ApiState) -> Result<Vec<SubscriptionStatus>, ApiError> {
    let all = state.subscriptions.list(None).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let statuses = state.webhook_statuses.lock().map(|s| s.clone()).unwrap_or_default();
    Ok(all
        .into_iter()
        .map(|s| SubscriptionStatus {
            delivery: statuses.get(&s.id).cloned().unwrap_or_default(),
            id: s.id,
            principal: s.principal,
            url: s.url,
            paused: s.paused,
        })
        .collect())
}

async fn validator_status(state: &ApiState, ingress_first: Option<u64>, now: DateTime<Utc>) -> Option<ValidatorStatus> {
    let stream = state.js.get_stream(streams::INGRESS).await.ok()?;
    let mut consumer = stream
        .get_consumer::<async_nats::jetstream::consumer::pull::Config>(crate::log::validator::CONSUMER)
        .await
        .ok()?;
    let info = consumer.info().await.ok()?;
    let lag_seconds = match ingress_first {
        Some(seq) => match stream.get_raw_message(seq).await {
            Ok(message) => {
                let stored = message.time.unix_timestamp_nanos() as f64 / 1e9;
                (now.timestamp_nanos_opt().unwrap_or_default() as f64 / 1e9 - stored).max(0.0)
            }
            Err(_) => 0.0,
        },
        None => 0.0,
    };
    Some(ValidatorStatus { pending: info.num_pending, ack_pending: info.num_ack_pending, lag_seconds })
}

/// Every adapter's newest heartbeat, the longest silent first.
pub async fn adapters(state: &ApiState, now: DateTime<Utc>) -> Vec<AdapterStatus> {
    let views = state.views.read().await;
    let mut out: Vec<AdapterStatus> = views
        .heartbeats
        .adapters
        .values()
        .map(|beat| AdapterStatus {
            principal: beat.principal.to_string(),
            principal_name: sgd_schemas::principals::by_code(&beat.principal)
                .map(|p| p.name.to_string())
                .unwrap_or_default(),
            adapter: beat.adapter.to_string(),
            version: beat.version.to_string(),
            last_seen: beat.last_seen,
            age_seconds: beat.last_seen.map(|seen| (now - seen.with_timezone(&Utc)).num_milliseconds() as f64 / 1000.0),
        })
        .collect();
    out.sort_by(|a, b| b.age_seconds.partial_cmp(&a.age_seconds).unwrap_or(std::cmp::Ordering::Equal));
    out
}
