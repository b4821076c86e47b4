//! Publishing to the hub's ingress over NATS JetStream.

use std::time::Duration;

use async_nats::{
    jetstream::{self, context::PublishAckFuture},
    HeaderMap,
};
use bytes::Bytes;
use sgd_schemas::subjects;

use crate::cloudevent::{BuildError, Draft, SourceSystem};

/// Why publishing failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event could not be built → a configuration or programming error; do not retry.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// JetStream did not acknowledge after every retry → keep the event and try again later
    /// (with the same id, so it is not counted twice).
    #[error("JetStream did not acknowledge {msg_id} on {subject} after {attempts} attempts: {last_error}")]
    NotAcknowledged {
        /// The ingress subject.
        subject: String,
        /// The event's `Nats-Msg-Id`.
        msg_id: String,
        /// How many attempts were made.
        attempts: u32,
        /// The last error.
        last_error: String,
    },
}

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// Wait before the first retry; doubles each time.
    pub first_backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self { attempts: 8, first_backoff: Duration::from_millis(100), max_backoff: Duration::from_secs(5) }
    }
}

/// Publishes one source system's events to `sgd.in.<principal>.<area>`.
#[derive(Clone)]
pub struct Publisher {
    jetstream: jetstream::Context,
    source: SourceSystem,
    retry: RetryPolicy,
}

/// What goes on the wire for `draft` from `source`: the ingress subject
/// `sgd.in.<principal>.<area>`, the `Nats-Msg-Id` (`<source>/<id>`) and the CloudEvents JSON body.
pub fn encode(source: &SourceSystem, draft: &Draft) -> Result<(String, String, Bytes), BuildError> {
    let body = draft.to_json(source)?;
    let subject = subjects::ingress(source.principal(), draft.area());
    let msg_id = sgd_schemas::envelope::identity(&source.source(), &draft.id);
    Ok((subject, msg_id, Bytes::from(body)))
}

/// A heartbeat (`se.sgd.hub.adapter.heartbeat`) of `adapter` at this crate's version, with an id
/// unique per minute so that a resend within the minute counts once.
pub fn heartbeat(adapter: &str) -> Draft {
    let now = chrono::Utc::now().fixed_offset();
    let event = sgd_schemas::events::hub::AdapterHeartbeat {
        adapter: adapter.to_string(),
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    Draft::at(format!("heartbeat/{adapter}/{}", now.format("%Y%m%dT%H%M")), now, event.into())
}

/// The header JetStream deduplicates on.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

impl Publisher {
    /// A publisher for `source` with the default retry policy.
    pub fn new(jetstream: jetstream::Context, source: SourceSystem) -> Self {
        Self { jetstream, source, retry: RetryPolicy::default() }
    }

    /// The same publisher with another retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// The source system this publisher speaks for.
    pub fn source(&self) -> &SourceSystem {
        &self.source
    }

    /// Publishes one event and waits for JetStream's acknowledgement, retrying with backoff.
    /// Returns the stream sequence (or that of the earlier copy, for a duplicate).
    pub async fn publish(&self, draft: &Draft) -> Result<u64, PublishError> {
        let (subject, msg_id, body) = self.encode(draft)?;
        let mut backoff = self.retry.first_backoff;
        let mut last_error = String::new();
        for attempt in 1..=self.retry.attempts.max(1) {
            let result = async {
                let ack = self.send(&subject, &msg_id, body.clone()).await?;
                ack.await.map_err(|e| e.to_string())
            }
            .await;
            match result {
                Ok(ack) => return Ok(ack.sequence),
                Err(e) => {
                    tracing::warn!(%subject, %msg_id, attempt, error = %e, "publish not acknowledged; retrying");
                    last_error = e;
                }
            }
            if attempt < self.retry.attempts {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(self.retry.max_backoff);
            }
        }
        Err(PublishError::NotAcknowledged { subject, msg_id, attempts: self.retry.attempts, last_error })
    }

    /// Publishes many events with up to `window` acknowledgements outstanding (for back-fill and
    /// load); an event whose acknowledgement fails is sent again through [`Publisher::publish`].
    /// Returns how many were acknowledged.
    pub async fn publish_pipelined<'a>(
        &self,
        drafts: impl IntoIterator<Item = &'a Draft>,
        window: usize,
    ) -> Result<usize, PublishError> {
        let mut pending: std::collections::VecDeque<(PublishAckFuture, &'a Draft)> = Default::default();
        let mut acknowledged = 0;
        for draft in drafts {
            if pending.len() >= window.max(1) {
                acknowledged += self.settle(pending.pop_front()).await?;
            }
            let (subject, msg_id, body) = self.encode(draft)?;
            match self.send(&subject, &msg_id, body).await {
                Ok(ack) => pending.push_back((ack, draft)),
                Err(_) => {
                    self.publish(draft).await?;
                    acknowledged += 1;
                }
            }
        }
        while let Some(entry) = pending.pop_front() {
            acknowledged += self.settle(Some(entry)).await?;
        }
        Ok(acknowledged)
    }

    async fn settle(&self, entry: Option<(PublishAckFuture, &Draft)>) -> Result<usize, PublishError> {
        let Some((ack, draft)) = entry else { return Ok(0) };
        if ack.await.is_err() {
            self.publish(draft).await?;
        }
        Ok(1)
    }

    fn encode(&self, draft: &Draft) -> Result<(String, String, Bytes), PublishError> {
        Ok(encode(&self.source, draft)?)
    }

    async fn send(&self, subject: &str, msg_id: &str, body: Bytes) -> Result<PublishAckFuture, String> {
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID_HEADER, msg_id);
        self.jetstream.publish_with_headers(subject.to_string(), headers, body).await.map_err(|e| e.to_string())
    }
}
