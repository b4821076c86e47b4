//! The validator: consumes `SGD_INGRESS`, sends valid events to the log and refused ones to the
//! dead-letter stream, and acks ingress only after that publish is acknowledged.
//!
//! Valid events are republished byte for byte (no re-serialisation) with `Nats-Msg-Id` =
//! `<source>/<id>`, so a redelivered ingress message lands in the log once. Dead letters carry
//! `Nats-Msg-Id` = `dlq/<ingress sequence>` for the same reason. A separate task awaits the
//! publish acknowledgements in order and acks (or naks) ingress, so the loop never waits on a
//! round trip.

use std::{sync::Arc, time::Duration};

use async_nats::{
    jetstream::{
        self,
        consumer::{pull, AckPolicy},
        context::{PublishAckFuture, PublishError},
        AckKind,
    },
    HeaderMap,
};
use futures::StreamExt;
use sgd_schemas::{validate, ValidationContext};
use tokio::{
    sync::{mpsc, watch},
    time::Instant,
};
use tracing::{field::Empty, Instrument};

use crate::{
    log::{dead_letter::DeadLetter, streams},
    metrics::Metrics,
};

/// Name of the validators' shared durable consumer on `SGD_INGRESS`.
pub const CONSUMER: &str = "validator";

/// Why the validator stopped → it is restarted by its supervisor (or the process exits non-zero).
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The consumer could not be created or read → restart when NATS is back.
    #[error("ingress consumer: {0}")]
    Consumer(#[source] async_nats::Error),
    /// The consumer's message stream ended (the connection closed).
    #[error("ingress consumer: ingress message stream ended")]
    Ended,
    /// The task that acks ingress after each publish stopped (it panicked: a bug).
    #[error("ingress consumer: ack task stopped")]
    AckTaskStopped,
}

/// Validator settings.
#[derive(Debug, Clone, Copy)]
pub struct ValidatorSettings {
    /// Largest accepted event.
    pub max_event_bytes: usize,
    /// Messages asked for per pull.
    pub pull_batch: usize,
}

/// Runs the validator until `shutdown` turns true.
pub async fn run(
    js: jetstream::Context,
    settings: ValidatorSettings,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ValidatorError> {
    let stream = js.get_stream(streams::INGRESS).await.map_err(|e| ValidatorError::Consumer(Box::new(e)))?;
    let consumer = stream
        .get_or_create_consumer(
            CONSUMER,
            pull::Config {
                durable_name: Some(CONSUMER.into()),
                ack_policy: AckPolicy::Explicit,
                // After a crash, what was delivered but not acked comes back after this long.
                ack_wait: Duration::from_secs(10),
                max_ack_pending: 20_000,
                description: Some("sgd-hub validators (shared by every hub replica)".into()),
                ..Default::default()
            },
        )
        .await
        .map_err(|e| ValidatorError::Consumer(Box::new(e)))?;
    // On a cluster a new consumer elects its leader after it is created, and a pull request sent
    // before that is lost: wait for the leader (a few seconds at most; at once on one server).
    let mut consumer = consumer;
    for _ in 0..20 {
        match consumer.info().await {
            Ok(info) if info.cluster.as_ref().is_none_or(|c| c.leader.is_some()) => break,
            _ => tokio::time::sleep(REPULL_PAUSE).await,
        }
    }
    let mut messages = pull(&consumer, settings).await?;

    let (to_acker, acks) = mpsc::channel::<(PublishAckFuture, jetstream::Message, Instant)>(10_000);
    let acker = tokio::spawn(ack_in_order(acks));
    tracing::info!("validator consuming {}", streams::INGRESS);

    let result = loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = shutdown.changed() => break Ok(()),
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                // A missed heartbeat means the outstanding pull request is gone (it reached a
                // consumer leader that was just elected or has since died): the client would not
                // ask again until the request expires. Ask again now.
                tracing::warn!(error = %e, "ingress consumer error; pulling again");
                tokio::time::sleep(REPULL_PAUSE).await;
                messages = pull(&consumer, settings).await?;
                continue;
            }
            None => break Err(ValidatorError::Ended),
        };
        match route(&js, &message, settings, &metrics).await {
            Ok(ack) => {
                if to_acker.send((ack, message, Instant::now() + PUBLISH_ACK_WAIT)).await.is_err() {
                    break Err(ValidatorError::AckTaskStopped);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, subject = %sgd_schemas::pii::redact(&message.subject), "publish failed; ingress message will be redelivered");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    };
    drop(to_acker);
    let _ = acker.await;
    result
}

/// Idle heartbeat of the validator's pull requests: two missed in a row (a lost pull request)
/// make the validator pull again.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Pause before pulling again after an error, so a consumer that answers nothing at all (no
/// leader during an election) is not asked in a tight loop.
const REPULL_PAUSE: Duration = Duration::from_millis(250);

/// A fresh pull on the shared consumer (the server serves the hubs' waiting pull requests in
/// turn, so each hub takes part once its pull has reached the consumer's leader).
async fn pull(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    settings: ValidatorSettings,
) -> Result<pull::Stream, ValidatorError> {
    consumer
        .stream()
        .max_messages_per_batch(settings.pull_batch)
        .heartbeat(HEARTBEAT)
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| ValidatorError::Consumer(Box::new(e)))
}

/// Validates one ingress message and publishes it to the log or the DLQ; returns the publish's
/// pending acknowledgement.
async fn route(
    js: &jetstream::Context,
    message: &jetstream::Message,
    settings: ValidatorSettings,
    metrics: &Metrics,
) -> Result<PublishAckFuture, PublishError> {
    let subject = message.subject.as_str();
    let ctx = ValidationContext::from_ingress_subject(subject, settings.max_event_bytes);
    let span = tracing::info_span!(target: crate::telemetry::PIPELINE, "validate", "event.id" = Empty, outcome = Empty);
    match validate(&message.payload, &ctx) {
        Ok(event) => {
            crate::telemetry::follow_message(&span, event.envelope.traceparent.as_deref(), message.headers.as_ref());
            span.record("event.id", event.envelope.id.as_str()).record("outcome", "valid");
            publish_valid(js, event, message.payload.clone(), metrics).instrument(span).await
        }
        Err(rejection) => {
            crate::telemetry::follow_message(&span, None, message.headers.as_ref());
            span.record("outcome", rejection.reason().as_str());
            let ingress_seq = message.info().ok().map(|i| i.stream_sequence);
            let dead_letter = DeadLetter::from_rejection(&rejection, subject, ingress_seq);
            metrics.count_refused(&dead_letter.reason, "nats");
            tracing::info!(reason = %dead_letter.reason, subject = %dead_letter.subject, "refused: {rejection}");
            let principal = ctx.transport_principal.filter(|p| sgd_schemas::principals::is_known(p));
            let msg_id = format!("dlq/{}", ingress_seq.unwrap_or_default());
            crate::log::dead_letter::publish(js, principal, &dead_letter, Some(&msg_id)).instrument(span).await
        }
    }
}

/// Publishes a valid event to the log, with its identity as `Nats-Msg-Id` so that a repeat within
/// the duplicate window is dropped; returns the pending acknowledgement. `payload` is what was
/// received (the log keeps the bytes the adapter sent). Used by the validator and by the DLQ
/// replay, so a replayed event goes through exactly what a new one does.
pub async fn publish_valid(
    js: &jetstream::Context,
    event: sgd_schemas::ValidatedEvent,
    payload: bytes::Bytes,
    metrics: &Metrics,
) -> Result<PublishAckFuture, PublishError> {
    let mut headers = HeaderMap::new();
    headers.insert(crate::log::streams::MSG_ID_HEADER, event.msg_id.as_str());
    // The caller's `validate` or `ingest.nats` span, for the log's readers to follow.
    crate::telemetry::pass_on_current(event.envelope.traceparent.as_deref(), &mut headers);
    let span = tracing::debug_span!(
        "validated",
        id = %event.envelope.id,
        traceparent = event.envelope.traceparent.as_deref().unwrap_or("")
    );
    metrics.count_validated(event.envelope.area(), &event.envelope.event_type);
    tracing::debug!(parent: &span, subject = %event.events_subject, "validated");
    // `instrument`, not `enter`: an entered span must not be held across an await.
    js.publish_with_headers(event.events_subject, headers, payload).instrument(span).await
}

/// How long a publish to the log may wait for its acknowledgement, counted from the publish.
const PUBLISH_ACK_WAIT: Duration = Duration::from_secs(5);

/// Awaits each publish acknowledgement in order, each until its own deadline (counted from its
/// publish); acks the ingress message after its publish is stored, naks it (for redelivery) when
/// the publish failed or was not acknowledged in time.
///
/// Regression (issue 7, NATS restarts): the client's timeout starts when an acknowledgement is
/// awaited, so awaiting thousands lost in a `nats-server` restart one after the other took 5 s
/// each, and validation stalled for hours behind the full queue.
async fn ack_in_order(mut acks: mpsc::Receiver<(PublishAckFuture, jetstream::Message, Instant)>) {
    while let Some((ack, message, deadline)) = acks.recv().await {
        let acknowledged = match tokio::time::timeout_at(deadline, std::future::IntoFuture::into_future(ack)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no acknowledgement within {PUBLISH_ACK_WAIT:?} of the publish")),
        };
        match acknowledged {
            Ok(_) => {
                if let Err(e) = message.ack().await {
                    tracing::warn!(error = %e, "ingress ack failed; the message will be redelivered and deduplicated");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "publish not acknowledged; ingress message will be redelivered");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    }
}
