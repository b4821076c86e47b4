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
        context::PublishAckFuture,
        AckKind,
    },
    HeaderMap,
};
use futures::StreamExt;
use sgd_schemas::{subjects, validate, ValidationContext};
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

use crate::{dead_letter::DeadLetter, metrics::Metrics, streams};

/// Name of the validators' shared durable consumer on `SGD_INGRESS`.
pub const CONSUMER: &str = "validator";

/// Why the validator stopped → it is restarted by its supervisor (or the process exits non-zero).
#[derive(Debug, thiserror::Error)]
pub enum ValidatorError {
    /// The consumer could not be created or read.
    #[error("ingress consumer: {0}")]
    Consumer(String),
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
    let stream = js.get_stream(streams::INGRESS).await.map_err(|e| ValidatorError::Consumer(e.to_string()))?;
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
        .map_err(|e| ValidatorError::Consumer(e.to_string()))?;
    let mut messages = consumer
        .stream()
        .max_messages_per_batch(settings.pull_batch)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await
        .map_err(|e| ValidatorError::Consumer(e.to_string()))?;

    let (to_acker, acks) = mpsc::channel::<(PublishAckFuture, jetstream::Message)>(10_000);
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
                tracing::warn!(error = %e, "ingress consumer error; continuing");
                continue;
            }
            None => break Err(ValidatorError::Consumer("ingress message stream ended".into())),
        };
        match route(&js, &message, settings, &metrics).await {
            Ok(ack) => {
                if to_acker.send((ack, message)).await.is_err() {
                    break Err(ValidatorError::Consumer("ack task stopped".into()));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, subject = %message.subject, "publish failed; ingress message will be redelivered");
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    };
    drop(to_acker);
    let _ = acker.await;
    result
}

/// Validates one ingress message and publishes it to the log or the DLQ; returns the publish's
/// pending acknowledgement.
async fn route(
    js: &jetstream::Context,
    message: &jetstream::Message,
    settings: ValidatorSettings,
    metrics: &Metrics,
) -> Result<PublishAckFuture, String> {
    let subject = message.subject.as_str();
    let ctx = ValidationContext::from_ingress_subject(subject, settings.max_event_bytes);
    let mut headers = HeaderMap::new();
    match validate(&message.payload, &ctx) {
        Ok(event) => {
            headers.insert(crate::MSG_ID_HEADER, event.msg_id.as_str());
            let span = tracing::debug_span!(
                "validated",
                id = %event.envelope.id,
                traceparent = event.envelope.traceparent.as_deref().unwrap_or("")
            );
            metrics.count_validated(event.envelope.area(), &event.envelope.event_type);
            // `instrument`, not `enter`: an entered span must not be held across an await.
            js.publish_with_headers(event.events_subject, headers, message.payload.clone())
                .instrument(span)
                .await
                .map_err(|e| e.to_string())
        }
        Err(rejection) => {
            let ingress_seq = message.info().ok().map(|i| i.stream_sequence);
            let dead_letter = DeadLetter::from_rejection(&rejection, subject, ingress_seq);
            metrics.count_refused(&dead_letter.reason, "nats");
            tracing::info!(reason = %dead_letter.reason, subject, "refused: {rejection}");
            let principal = ctx.transport_principal.filter(|p| sgd_schemas::principals::is_known(p));
            headers.insert(crate::MSG_ID_HEADER, format!("dlq/{}", ingress_seq.unwrap_or_default()).as_str());
            headers.insert(crate::dead_letter::REASON_HEADER, dead_letter.reason.as_str());
            js.publish_with_headers(subjects::dlq(principal), headers, dead_letter.to_json().into())
                .await
                .map_err(|e| e.to_string())
        }
    }
}

/// Awaits each publish acknowledgement in order; acks the ingress message after its publish is
/// stored, naks it (for redelivery) when the publish failed.
async fn ack_in_order(mut acks: mpsc::Receiver<(PublishAckFuture, jetstream::Message)>) {
    while let Some((ack, message)) = acks.recv().await {
        match ack.await {
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
