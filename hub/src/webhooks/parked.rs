//! Parked deliveries: a routed event whose every attempt failed is kept in `SGD_PARKED` on
//! `sgd.parked.<principal>.<subscription>`, with the reason and the number of attempts, so the
//! subscription can go on with the next one. Parked ones are listed and, once the receiver is
//! fixed, replayed: each delivered one is deleted, each failing one stays.

use async_nats::{
    jetstream::{self, consumer::pull::OrderedConfig},
    HeaderMap,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::{delivery::Attempt, subscription::Subscription};
use crate::log::{streams, streams::MSG_ID_HEADER};

/// Header: why the last attempt failed.
pub const REASON_HEADER: &str = "Sgd-Park-Reason";
/// Header: attempts made.
pub const ATTEMPTS_HEADER: &str = "Sgd-Attempts";
/// Header: the routed message's own `Nats-Msg-Id` (the `webhook-id` of its deliveries).
pub const ROUTED_ID_HEADER: &str = "Sgd-Routed-Id";
/// Header: the routed subject.
pub const ROUTED_SUBJECT_HEADER: &str = "Sgd-Routed-Subject";

/// `SGD_PARKED` could not be written or read → 503 on the API (retry); a delivery that could not
/// be parked is tried again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ParkedError(#[source] async_nats::Error);

fn nats(error: impl std::error::Error + Send + Sync + 'static) -> ParkedError {
    ParkedError(Box::new(error))
}

/// The subject of a subscription's parked deliveries.
pub fn subject(subscription: &Subscription) -> String {
    format!("sgd.parked.{}.{}", subscription.principal, subscription.id)
}

/// A parked delivery.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ParkedDelivery {
    /// Its sequence in `SGD_PARKED` (what a replay names).
    pub seq: u64,
    /// The event's CloudEvents id.
    pub event_id: String,
    /// The event's type.
    pub event_type: String,
    /// The `webhook-id` its attempts carried.
    pub webhook_id: String,
    /// Why the last attempt failed.
    pub reason: String,
    /// Attempts made.
    pub attempts: u32,
    /// When it was parked.
    pub parked_at: chrono::DateTime<chrono::Utc>,
}

/// Parks a routed message: stored in `SGD_PARKED` (acknowledged) before the caller acks it.
pub async fn park(
    js: &jetstream::Context,
    subscription: &Subscription,
    message: &jetstream::Message,
    reason: &str,
    attempts: u32,
) -> Result<(), ParkedError> {
    let routed_id = routed_id(message);
    let mut headers = HeaderMap::new();
    headers.insert(MSG_ID_HEADER, format!("parked/{}/{routed_id}", subscription.id).as_str());
    headers.insert(ROUTED_ID_HEADER, routed_id.as_str());
    headers.insert(ROUTED_SUBJECT_HEADER, message.subject.as_str());
    headers.insert(REASON_HEADER, sgd_schemas::pii::redact(reason).chars().take(500).collect::<String>().as_str());
    headers.insert(ATTEMPTS_HEADER, attempts.to_string().as_str());
    let ack = js.publish_with_headers(subject(subscription), headers, message.payload.clone()).await.map_err(nats)?;
    ack.await.map(drop).map_err(nats)
}

/// The `Nats-Msg-Id` of a routed message (the `webhook-id` of its deliveries). The router gives
/// every copy one; a message published to `sgd.to.…` by anything else falls back to its subject.
pub fn routed_id(message: &async_nats::Message) -> String {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(MSG_ID_HEADER))
        .map(|v| v.as_str().to_string())
        .unwrap_or_else(|| message.subject.to_string())
}

/// A parked message as read back.
pub struct Parked {
    /// What is listed.
    pub delivery: ParkedDelivery,
    /// The event as routed.
    pub payload: bytes::Bytes,
}

/// The oldest `limit` parked deliveries of a subscription, with the count of all.
pub async fn read(
    js: &jetstream::Context,
    subscription: &Subscription,
    limit: usize,
) -> Result<(u64, Vec<Parked>), ParkedError> {
    let stream = js.get_stream(streams::PARKED).await.map_err(nats)?;
    let consumer = stream
        .create_consumer(OrderedConfig { filter_subject: subject(subscription), ..Default::default() })
        .await
        .map_err(nats)?;
    let total = consumer.cached_info().num_pending;
    let mut out = Vec::new();
    if total == 0 {
        return Ok((0, out));
    }
    let mut messages = consumer.messages().await.map_err(nats)?;
    while out.len() < limit {
        let next = tokio::time::timeout(std::time::Duration::from_secs(5), messages.next()).await;
        let message = match next {
            Ok(Some(Ok(message))) => message,
            Ok(Some(Err(e))) => return Err(nats(e)),
            Ok(None) | Err(_) => break,
        };
        let Ok(info) = message.info() else { continue };
        let (seq, pending, published) = (info.stream_sequence, info.pending, info.published);
        let header = |name: &str| {
            message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str().to_string()).unwrap_or_default()
        };
        let event: serde_json::Value = serde_json::from_slice(&message.payload).unwrap_or_default();
        out.push(Parked {
            delivery: ParkedDelivery {
                seq,
                event_id: event["id"].as_str().unwrap_or_default().into(),
                event_type: event["type"].as_str().unwrap_or_default().into(),
                webhook_id: header(ROUTED_ID_HEADER),
                reason: header(REASON_HEADER),
                attempts: header(ATTEMPTS_HEADER).parse().unwrap_or(0),
                parked_at: chrono::DateTime::from_timestamp(published.unix_timestamp(), published.nanosecond())
                    .unwrap_or_default(),
            },
            payload: message.payload.clone(),
        });
        if pending == 0 {
            break;
        }
    }
    Ok((total, out))
}

/// What a replay did to one parked delivery.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayResult {
    /// Its sequence in `SGD_PARKED`.
    pub seq: u64,
    /// The event's id.
    pub event_id: String,
    /// Delivered (and no longer parked), or not.
    pub delivered: bool,
    /// Why not.
    pub error: Option<String>,
}

/// Delivers the oldest `limit` parked deliveries once each, in order; deletes each delivered one.
/// Stops at the first failure (the receiver is still down: the rest would fail too).
pub async fn replay(
    js: &jetstream::Context,
    attempt: &Attempt,
    subscription: &Subscription,
    limit: usize,
) -> Result<Vec<ReplayResult>, ParkedError> {
    let (_, parked) = read(js, subscription, limit).await?;
    let stream = js.get_stream(streams::PARKED).await.map_err(nats)?;
    let mut results = Vec::new();
    for Parked { delivery, payload } in parked {
        match attempt.send(subscription, &delivery.webhook_id, &payload, None).await {
            Ok(()) => {
                stream.delete_message(delivery.seq).await.map_err(nats)?;
                results.push(ReplayResult {
                    seq: delivery.seq,
                    event_id: delivery.event_id,
                    delivered: true,
                    error: None,
                });
            }
            Err(e) => {
                results.push(ReplayResult {
                    seq: delivery.seq,
                    event_id: delivery.event_id,
                    delivered: false,
                    error: Some(e.to_string()),
                });
                break;
            }
        }
    }
    Ok(results)
}
