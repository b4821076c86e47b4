//! Subscriptions in the JetStream key-value bucket `SGD_SUBSCRIPTIONS` (one key per
//! subscription id, JSON), so every hub and the CLI see the same ones; and each subscription's
//! durable consumer on `SGD_ROUTED`, whose acknowledged position survives any hub's restart.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, AckPolicy, DeliverPolicy},
    kv,
};

use futures::TryStreamExt;

use super::subscription::Subscription;
use crate::log::streams;

/// The bucket.
pub const BUCKET: &str = "SGD_SUBSCRIPTIONS";

/// Why the store failed → 503 on the API (retry); the deliverers try again.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// NATS failed.
    #[error("subscriptions: {0}")]
    Nats(#[source] async_nats::Error),
    /// A stored subscription is unreadable.
    #[error("subscription {key} is unreadable: {source}")]
    Corrupt {
        /// Its key.
        key: String,
        /// What serde said.
        source: serde_json::Error,
    },
}

fn nats(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Nats(Box::new(e))
}

/// The subscriptions.
#[derive(Clone)]
pub struct SubscriptionStore {
    kv: kv::Store,
    js: jetstream::Context,
    window: usize,
}

/// How long a deliverer may hold an event without acknowledging it before JetStream gives it
/// out again; deliverers retrying longer tell JetStream they are still at it.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

impl SubscriptionStore {
    /// Opens the bucket (its stream is made with the others, [`streams::SUBSCRIPTIONS_KV`]);
    /// consumers it creates let `window` events be unacknowledged at once.
    pub async fn open(js: &jetstream::Context, window: usize) -> Result<Self, StoreError> {
        let kv = js.get_key_value(BUCKET).await.map_err(nats)?;
        Ok(Self { kv, js: js.clone(), window: window.clamp(1, WINDOW_LIMIT) })
    }

    /// The bucket, for watching.
    pub fn bucket(&self) -> &kv::Store {
        &self.kv
    }

    /// One subscription.
    pub async fn get(&self, id: &str) -> Result<Option<Subscription>, StoreError> {
        if !valid_id(id) {
            return Ok(None);
        }
        match self.kv.get(id).await.map_err(nats)? {
            Some(bytes) => decode(id, &bytes).map(Some),
            None => Ok(None),
        }
    }

    /// Every subscription (of `principal` when given), oldest first.
    pub async fn list(&self, principal: Option<&str>) -> Result<Vec<Subscription>, StoreError> {
        let keys: Vec<String> = match self.kv.keys().await {
            Ok(keys) => keys.try_collect().await.map_err(nats)?,
            Err(e) => return Err(nats(e)),
        };
        let mut all = Vec::new();
        for key in keys {
            if let Some(subscription) = self.get(&key).await? {
                if principal.is_none_or(|p| subscription.principal == p) {
                    all.push(subscription);
                }
            }
        }
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then_with(|| a.id.cmp(&b.id)));
        Ok(all)
    }

    /// Stores a new subscription after creating its consumer, so that it receives every event
    /// routed from the moment it is answered, whichever hub delivers it.
    pub async fn create(&self, subscription: &Subscription) -> Result<(), StoreError> {
        self.consumer(subscription).await?;
        self.put(subscription).await
    }

    /// Stores a changed subscription (paused, resumed).
    pub async fn put(&self, subscription: &Subscription) -> Result<(), StoreError> {
        let json = serde_json::to_vec(subscription)
            .map_err(|source| StoreError::Corrupt { key: subscription.id.clone(), source })?;
        self.kv.put(&subscription.id, json.into()).await.map_err(nats)?;
        Ok(())
    }

    /// Removes a subscription and its consumer (its parked deliveries go too).
    pub async fn remove(&self, subscription: &Subscription) -> Result<(), StoreError> {
        self.kv.purge(&subscription.id).await.map_err(nats)?;
        let routed = self.js.get_stream(streams::ROUTED).await.map_err(nats)?;
        if let Err(e) = routed.delete_consumer(&subscription.consumer_name()).await {
            tracing::debug!(error = %e, "no consumer to delete");
        }
        let parked = self.js.get_stream(streams::PARKED).await.map_err(nats)?;
        parked.purge().filter(super::parked::subject(subscription)).await.map_err(nats)?;
        Ok(())
    }

    /// The subscription's durable consumer, created when missing: from the newest routed event
    /// on, explicit acks, at most `window` unacknowledged. A deliverer that starts while events
    /// are still held by a dead one waits for JetStream to give those out again (after
    /// [`ACK_WAIT`]), so they come before any later one.
    pub async fn consumer(&self, subscription: &Subscription) -> Result<jetstream::consumer::PullConsumer, StoreError> {
        let stream = self.js.get_stream(streams::ROUTED).await.map_err(nats)?;
        let name = subscription.consumer_name();
        stream
            .get_or_create_consumer(
                &name,
                pull::Config {
                    durable_name: Some(name.clone()),
                    filter_subject: subscription.filter_subject(),
                    deliver_policy: DeliverPolicy::New,
                    ack_policy: AckPolicy::Explicit,
                    ack_wait: ACK_WAIT,
                    max_ack_pending: self.window as i64,
                    description: Some(format!("sgd-hub webhook {} of {}", subscription.id, subscription.principal)),
                    ..Default::default()
                },
            )
            .await
            .map_err(nats)
    }
}

/// The largest window a deliverer may take (the consumers' `max_ack_pending`).
pub const WINDOW_LIMIT: usize = 1000;

/// Whether `id` has the shape of a subscription id (`wh-` + 16 hex digits), so no request can
/// name another key or subject.
pub fn valid_id(id: &str) -> bool {
    id.len() == 19 && id.starts_with("wh-") && id[3..].bytes().all(|b| b.is_ascii_hexdigit())
}

fn decode(key: &str, bytes: &[u8]) -> Result<Subscription, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { key: key.into(), source })
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_well_formed_ids_name_a_key() {
        assert!(super::valid_id("wh-0123456789abcdef"));
        assert!(!super::valid_id("wh-0123456789abcde"));
        assert!(!super::valid_id("wh-0123456789abcdeg"));
        assert!(!super::valid_id("wh-01234567.9abcdef"));
        assert!(!super::valid_id(">"));
    }
}
