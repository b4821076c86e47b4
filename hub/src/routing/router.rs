//! The router: reads the log from its checkpoint, applies the [rules](super::rules), and
//! publishes each routed event to `SGD_ROUTED` once per recipient, on
//! `sgd.to.<recipient>.<area>.<entity>.<action>`, with the log's bytes, a `Nats-Msg-Id` of its
//! own per copy ([`super::routed_msg_id`]), the log sequence it copies
//! ([`super::LOG_SEQUENCE_HEADER`]) and the event's `traceparent`. A batch's state and
//! checkpoint are committed to sled only after every copy of the batch is acknowledged by
//! JetStream; when a publish fails the router drops what it had in memory, reloads the store and
//! routes the events again from its checkpoint (JetStream drops the copies it already has).
//!
//! A router behind what `SGD_ROUTED` already holds (a new hub, a store removed, a hub away
//! longer than the duplicate window) replays the log into its rules' state without publishing
//! the events some router already copied: it reads the log sequence of the newest copy in
//! `SGD_ROUTED` when it starts, and publishes only after it.

use std::{sync::Arc, time::Duration};

use async_nats::{
    jetstream::{self, consumer::DeliverPolicy},
    HeaderMap,
};
use futures::StreamExt;
use sgd_schemas::{subjects, upcast};
use tokio::sync::watch;
use tracing::Instrument;

use super::{
    routed_msg_id,
    store::{RouterStore, RouterStoreError},
    RoutingState, LOG_SEQUENCE_HEADER,
};
use crate::{
    log::{streams, streams::MSG_ID_HEADER},
    metrics::Metrics,
};

/// Why one pass of the router ended early; it starts again from its checkpoint.
#[derive(Debug, thiserror::Error)]
enum PassError {
    #[error("log consumer: {0}")]
    Consumer(#[source] async_nats::Error),
    #[error("log consumer: the log's message stream ended")]
    Ended,
    #[error("publish to SGD_ROUTED: {0}")]
    Publish(#[source] async_nats::jetstream::context::PublishError),
    #[error("publish to SGD_ROUTED: no acknowledgement within {0:?}")]
    NotAcknowledged(Duration),
    #[error("log consumer: commit task: {0}")]
    Commit(tokio::task::JoinError),
    #[error(transparent)]
    Store(#[from] RouterStoreError),
}

/// Router settings.
#[derive(Debug, Clone, Copy)]
pub struct RouterSettings {
    /// Largest batch.
    pub batch_max: usize,
    /// How long a batch waits to fill after its first event.
    pub batch_wait: Duration,
}

impl Default for RouterSettings {
    fn default() -> Self {
        Self { batch_max: 1000, batch_wait: Duration::from_millis(2) }
    }
}

/// Pause before a new pass after a failure.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long the copies of a batch may wait for their acknowledgements.
const PUBLISH_ACK_WAIT: Duration = Duration::from_secs(10);

/// Runs the router until `shutdown` turns true; only its store failing stops it (the hub with
/// it: check the data directory's disk); NATS failures make it start again from its checkpoint.
pub async fn run(
    js: jetstream::Context,
    store: RouterStore,
    settings: RouterSettings,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), RouterStoreError> {
    loop {
        let (mut state, checkpoint) = {
            let store = store.clone();
            tokio::task::spawn_blocking(move || store.load()).await.map_err(|e| RouterStoreError::Storage {
                path: "routing".into(),
                source: sled::Error::Io(std::io::Error::other(e.to_string())),
            })??
        };
        metrics.routing_checkpoint.set(checkpoint as i64);
        tracing::info!(checkpoint, entries = state.entries(), "router consuming {}", streams::EVENTS);
        match pass(&js, &store, &mut state, checkpoint, settings, &metrics, &mut shutdown).await {
            Ok(()) => {
                let store = store.clone();
                let _ = tokio::task::spawn_blocking(move || store.flush()).await;
                return Ok(());
            }
            Err(PassError::Store(e)) => return Err(e),
            Err(e) => {
                tracing::warn!(error = %e, "router: starting again from its checkpoint");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_PAUSE) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    }
}

/// Routes from `checkpoint` until shutdown (Ok) or a failure.
async fn pass(
    js: &jetstream::Context,
    store: &RouterStore,
    state: &mut RoutingState,
    mut checkpoint: u64,
    settings: RouterSettings,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<(), PassError> {
    let stream = js.get_stream(streams::EVENTS).await.map_err(|e| PassError::Consumer(Box::new(e)))?;
    let deliver_policy = if checkpoint == 0 {
        DeliverPolicy::All
    } else {
        DeliverPolicy::ByStartSequence { start_sequence: checkpoint + 1 }
    };
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::OrderedConfig {
            deliver_policy,
            description: Some("sgd-hub router".into()),
            ..Default::default()
        })
        .await
        .map_err(|e| PassError::Consumer(Box::new(e)))?;
    let mut messages = consumer.messages().await.map_err(|e| PassError::Consumer(Box::new(e)))?;
    let routed_up_to = newest_routed(js).await?;
    if routed_up_to > checkpoint {
        tracing::info!(checkpoint, routed_up_to, "router: replaying into its state what is routed already");
    }
    let mut batch = Vec::with_capacity(settings.batch_max);
    loop {
        let first = tokio::select! {
            next = messages.next() => next,
            _ = shutdown.changed() => return Ok(()),
        };
        match first {
            Some(Ok(message)) => batch.push(message),
            Some(Err(e)) => return Err(PassError::Consumer(Box::new(e))),
            None => return Err(PassError::Ended),
        }
        let deadline = tokio::time::Instant::now() + settings.batch_wait;
        while batch.len() < settings.batch_max {
            match tokio::time::timeout_at(deadline, messages.next()).await {
                Ok(Some(Ok(message))) => batch.push(message),
                Ok(Some(Err(e))) => return Err(PassError::Consumer(Box::new(e))),
                Ok(None) => return Err(PassError::Ended),
                Err(_) => break,
            }
        }
        checkpoint = route_batch(js, store, state, (checkpoint, routed_up_to), &batch, metrics).await?;
        batch.clear();
    }
}

/// The log sequence of the newest copy in `SGD_ROUTED` (0 when it holds none).
async fn newest_routed(js: &jetstream::Context) -> Result<u64, PassError> {
    let mut stream = js.get_stream(streams::ROUTED).await.map_err(|e| PassError::Consumer(Box::new(e)))?;
    let info = stream.info().await.map_err(|e| PassError::Consumer(Box::new(e)))?;
    if info.state.messages == 0 {
        return Ok(0);
    }
    let last = info.state.last_sequence;
    let message = stream.get_raw_message(last).await.map_err(|e| PassError::Consumer(Box::new(e)))?;
    Ok(message.headers.get(LOG_SEQUENCE_HEADER).and_then(|v| v.as_str().parse().ok()).unwrap_or(0))
}

/// Routes one batch (publishing the copies of events after `routed_up_to` only); returns the
/// new checkpoint once it is committed.
async fn route_batch(
    js: &jetstream::Context,
    store: &RouterStore,
    state: &mut RoutingState,
    (checkpoint, routed_up_to): (u64, u64),
    batch: &[jetstream::Message],
    metrics: &Metrics,
) -> Result<u64, PassError> {
    let mut acks = Vec::new();
    let mut last = checkpoint;
    let mut pending = 0;
    for message in batch {
        let Ok(info) = message.info() else { continue };
        if info.stream_sequence <= checkpoint {
            continue;
        }
        last = info.stream_sequence;
        pending = info.pending;
        let decoded = upcast::decode_logged(&message.payload)
            .map_err(|e| e.to_string())
            .and_then(|(envelope, event)| event.map(|event| (envelope, event)).map_err(|e| e.to_string()));
        let (envelope, event) = match decoded {
            Ok(decoded) => decoded,
            Err(error) => {
                // The projection runner counts these as decode errors too; the log keeps them.
                tracing::error!(seq = last, %error, "router: a logged event has no typed form; not routed");
                metrics
                    .routing_unresolved
                    .get_or_create(&crate::metrics::RuleLabels { rule: "undecodable".into() })
                    .inc();
                continue;
            }
        };
        let Some(routing) = super::route(state, &envelope.principal, &event)? else { continue };
        if last <= routed_up_to {
            continue;
        }
        if routing.recipients.is_empty() {
            tracing::info!(seq = last, rule = routing.rule, id = %envelope.id, "routed to no one: the rule's recipients are unknown");
            metrics.routing_unresolved.get_or_create(&crate::metrics::RuleLabels { rule: routing.rule.into() }).inc();
            continue;
        }
        let log_msg_id = message
            .headers
            .as_ref()
            .and_then(|h| h.get(MSG_ID_HEADER))
            .map(|v| v.as_str().to_string())
            .unwrap_or_else(|| envelope.identity());
        for recipient in &routing.recipients {
            // One `route` span per copy: a child of the event's traceparent, else of the log
            // message's; the copy carries the event's, else this span's (docs/operations.md).
            let span = tracing::info_span!(target: crate::telemetry::PIPELINE, "route", otel.kind = "producer",
                "log.sequence" = last, "event.id" = %envelope.id, "event.type" = %envelope.event_type,
                rule = routing.rule, recipient = %recipient);
            crate::telemetry::follow_message(&span, envelope.traceparent.as_deref(), message.headers.as_ref());
            let mut headers = HeaderMap::new();
            headers.insert(MSG_ID_HEADER, routed_msg_id(&log_msg_id, recipient).as_str());
            headers.insert(LOG_SEQUENCE_HEADER, last.to_string().as_str());
            if let Some(traceparent) = envelope.traceparent.as_deref() {
                headers.insert(crate::telemetry::TRACEPARENT, traceparent);
            }
            crate::telemetry::pass_on(&span, envelope.traceparent.as_deref(), &mut headers);
            let ack = js
                .publish_with_headers(
                    subjects::routed(recipient, &envelope.event_type),
                    headers,
                    message.payload.clone(),
                )
                .instrument(span)
                .await
                .map_err(PassError::Publish)?;
            acks.push(ack);
            metrics.routed.get_or_create(&crate::metrics::RuleLabels { rule: routing.rule.into() }).inc();
        }
    }
    for ack in acks {
        match tokio::time::timeout(PUBLISH_ACK_WAIT, std::future::IntoFuture::into_future(ack)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(PassError::Publish(e)),
            Err(_) => return Err(PassError::NotAcknowledged(PUBLISH_ACK_WAIT)),
        }
    }
    if last > checkpoint {
        let mut changed = std::mem::take(state);
        let store = store.clone();
        let (returned, result) = tokio::task::spawn_blocking(move || {
            let result = store.commit(&mut changed, last);
            (changed, result)
        })
        .await
        .map_err(PassError::Commit)?;
        *state = returned;
        result?;
        metrics.routing_checkpoint.set(last as i64);
        metrics.routing_lag_events.set(pending as i64);
        metrics.routing_state_entries.set(state.entries() as i64);
    }
    Ok(last)
}
