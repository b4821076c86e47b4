//! NATS request/reply ingest: a local system sends one CloudEvent as a request to
//! `sgd.ingest.<principal>.<area>` and the answer tells it at once whether the event is in the
//! log (with its sequence) or why it was refused, as `POST /api/v1/events` does over HTTP.
//! Validation is the validator's; an accepted event goes to the log with the same
//! `Nats-Msg-Id`, so a retried request lands once. A message sent without a reply subject
//! cannot be answered: a refused one then goes to the dead letters, as on `sgd.in.…`.
//!
//! Answers (JSON):
//! - `{"accepted": true, "id": …, "sequence": N, "duplicate": false}`
//! - `{"accepted": false, "id": …, "reason": "schema", "problems": [{reason, path, message}]}`
//! - `{"accepted": false, "error": "unavailable", "message": …}`: the log did not answer; retry.

use std::sync::Arc;

use futures::StreamExt;
use serde::Serialize;
use sgd_schemas::{subjects, validate, ValidationContext};
use tokio::sync::{watch, Semaphore};
use tracing::{field::Empty, Instrument};

use crate::{
    log::dead_letter::DeadLetter,
    metrics::Metrics,
    telemetry::{self, PIPELINE},
};

/// The queue group every hub's responder joins, so each request is answered once.
pub const QUEUE_GROUP: &str = "sgd-hub-ingest";

/// Requests answered at once, at most.
const CONCURRENT: usize = 256;

/// Why the responder stopped → the hub stops.
#[derive(Debug, thiserror::Error)]
pub enum IngestRequestError {
    /// The subscription could not be made.
    #[error("cannot subscribe to {subject}: {source}")]
    Subscribe {
        /// The subject.
        subject: &'static str,
        /// What NATS said.
        source: async_nats::SubscribeError,
    },
}

/// Responder settings.
#[derive(Debug, Clone, Copy)]
pub struct IngestSettings {
    /// Largest accepted event.
    pub max_event_bytes: usize,
}

/// The answer to one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct IngestAnswer {
    /// Whether the event is in the log.
    pub accepted: bool,
    /// The event's id, when it could be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Its sequence in the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sequence: Option<u64>,
    /// Whether the log had it already (a retry).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// The refusal's reason code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Each problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problems: Option<Vec<crate::log::dead_letter::ProblemRecord>>,
    /// `unavailable` when the log did not answer.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// For a person.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Answers requests until `shutdown` turns true.
pub async fn run(
    client: async_nats::Client,
    js: async_nats::jetstream::Context,
    settings: IngestSettings,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), IngestRequestError> {
    let mut requests = client
        .queue_subscribe(subjects::INGEST_REQUESTS_ALL, QUEUE_GROUP.into())
        .await
        .map_err(|source| IngestRequestError::Subscribe { subject: subjects::INGEST_REQUESTS_ALL, source })?;
    let slots = Arc::new(Semaphore::new(CONCURRENT));
    tracing::info!("answering ingest requests on {}", subjects::INGEST_REQUESTS_ALL);
    loop {
        let request = tokio::select! {
            request = requests.next() => request,
            _ = shutdown.changed() => break,
        };
        let Some(request) = request else { break };
        let Ok(slot) = slots.clone().acquire_owned().await else { break };
        let (client, js, metrics) = (client.clone(), js.clone(), metrics.clone());
        tokio::spawn(async move {
            let answer = answer(&js, &request, settings, &metrics).await;
            let outcome = match (&answer.accepted, &answer.error) {
                (true, _) => "accepted",
                (false, Some(_)) => "unavailable",
                (false, None) => "refused",
            };
            metrics.ingest_requests.get_or_create(&crate::metrics::OutcomeLabels { outcome: outcome.into() }).inc();
            if let Some(reply) = request.reply {
                let body = serde_json::to_vec(&answer).unwrap_or_default();
                if let Err(e) = client.publish(reply, body.into()).await {
                    tracing::warn!(error = %e, "could not answer an ingest request");
                }
            }
            drop(slot);
        });
    }
    let _ = requests.unsubscribe().await;
    Ok(())
}

async fn answer(
    js: &async_nats::jetstream::Context,
    request: &async_nats::Message,
    settings: IngestSettings,
    metrics: &Metrics,
) -> IngestAnswer {
    // A child of the event's traceparent, else of the request's `traceparent` header, else a new
    // trace; passed on to the log message when the event has none (docs/operations.md, "Tracing").
    let span = tracing::info_span!(target: PIPELINE, "ingest.nats", otel.kind = "server", principal = Empty,
        "event.id" = Empty, "event.type" = Empty, outcome = Empty, reason = Empty, "log.sequence" = Empty);
    let refused = |id: Option<String>, reason: &str, problems: Vec<crate::log::dead_letter::ProblemRecord>| {
        span.record("outcome", "refused").record("reason", reason);
        IngestAnswer { id, reason: Some(reason.into()), problems: Some(problems), ..Default::default() }
    };
    let Some((principal, area)) = subjects::parse_ingest_request(&request.subject) else {
        telemetry::follow_message(&span, None, request.headers.as_ref());
        return refused(
            None,
            "subject",
            vec![crate::log::dead_letter::ProblemRecord {
                reason: "subject".into(),
                path: String::new(),
                message: "send requests to sgd.ingest.<principal>.<area>".into(),
            }],
        );
    };
    let ctx = ValidationContext {
        transport_principal: Some(principal),
        transport_area: Some(area),
        max_bytes: settings.max_event_bytes,
    };
    span.record("principal", principal);
    match validate(&request.payload, &ctx) {
        Ok(event) => {
            let id = event.envelope.id.clone();
            telemetry::follow_message(&span, event.envelope.traceparent.as_deref(), request.headers.as_ref());
            span.record("event.id", id.as_str()).record("event.type", event.envelope.event_type.as_str());
            // Instrumented: `publish_valid` passes the current span on to the log message.
            let published = crate::log::validator::publish_valid(js, event, request.payload.clone(), metrics)
                .instrument(span.clone())
                .await;
            let acked = match published {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            let outcome = match &acked {
                Ok(ack) if ack.duplicate => "duplicate",
                Ok(_) => "accepted",
                Err(_) => "unavailable",
            };
            span.record("outcome", outcome);
            if let Ok(ack) = &acked {
                span.record("log.sequence", ack.sequence);
            }
            match acked {
                Ok(ack) => IngestAnswer {
                    accepted: true,
                    id: Some(id),
                    sequence: Some(ack.sequence),
                    duplicate: Some(ack.duplicate),
                    ..Default::default()
                },
                Err(e) => IngestAnswer {
                    id: Some(id),
                    error: Some("unavailable".into()),
                    message: Some(format!("the log did not acknowledge ({e}); retry with the same id")),
                    ..Default::default()
                },
            }
        }
        Err(rejection) => {
            telemetry::follow_message(&span, None, request.headers.as_ref());
            metrics.count_refused(rejection.reason().as_str(), "nats");
            let dead_letter = DeadLetter::from_rejection(&rejection, &request.subject, None);
            if request.reply.is_none() {
                // Nobody to tell: keep it with its reason, as the validator does.
                let principal = sgd_schemas::principals::is_known(principal).then_some(principal);
                let stored = match crate::log::dead_letter::publish(js, principal, &dead_letter, None).await {
                    Ok(ack) => ack.await.map(drop).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                if let Err(e) = stored {
                    tracing::error!(error = %e, reason = %dead_letter.reason, "could not dead-letter an unanswerable ingest request");
                }
            }
            refused(rejection.event_id.clone(), &dead_letter.reason, dead_letter.problems)
        }
    }
}
