//! The validator: consumes `SGD_INGRESS`, sends valid events to the log and refused ones to the
//! dead-letter stream, and acks ingress only after that publish is acknowledged.
//!
//! Valid events are republished byte for byte (no re-serialisation) with `Nats-Msg-Id` =
//! `<source>/<id>`, so a redelivered ingress message lands in the log once. Dead letters carry
//! `Nats-Msg-Id` = `dlq/<ingress sequence>` for the same reason. A separate task awaits the
//! publish acknowledgements in order and acks ingress, so the loop never waits on a round trip.
//!
//! On NATS 2.11 and later the validators' consumer acknowledges up to a sequence at a time
//! (`AckPolicy::All`: one ack per few hundred events instead of one per event) and is a
//! pinned-client priority group: one hub's validator takes the ingress, the others stand by and
//! take over when it stops pulling (an ack up to a sequence is only safe where one client holds
//! every message below it). On older servers, and on an ingress still made as a work queue, each
//! message is acked on its own and several validators share the consumer.

use std::{sync::Arc, time::Duration};

use async_nats::{
    jetstream::{
        self,
        consumer::{pull, AckPolicy, PriorityPolicy},
        context::{PublishAckFuture, PublishError},
        stream::RetentionPolicy,
        AckKind,
    },
    HeaderMap,
};
use futures::{FutureExt, StreamExt};
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
/// The validators' priority group on a pinned-client consumer.
pub const GROUP: &str = "validators";
/// How long the pin outlives the pinned validator's last pull before a standby one takes over
/// (the ingress waits this long when the pinned hub dies or pulls anew). Longer than
/// [`PINNED_ACK_WAIT`], so what the old holder left unacked is due for redelivery before a new
/// holder's first ack, which would otherwise ack it unvalidated.
pub const PIN_TIMEOUT: Duration = Duration::from_secs(8);
/// Ack wait of the pinned consumer: what was delivered and not acked comes back after this long.
const PINNED_ACK_WAIT: Duration = Duration::from_secs(6);
/// Life of a pull request: below [`PIN_TIMEOUT`], so an idle pinned validator keeps its pin.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// Messages between validation and their ingress ack.
const ACK_QUEUE: usize = 10_000;
/// An ack up to a sequence is sent at least every this many events (and whenever the validator
/// has caught up).
const ACK_EVERY: usize = 512;

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

/// How the validator acknowledges ingress: read from the consumer the server holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Acking {
    /// One ack per message (a work queue, or a server before 2.11).
    EachMessage,
    /// One ack for every message up to it (`AckPolicy::All`, pinned to one validator).
    UpTo,
}

/// The validators' consumer for an ingress of `retention` on a server of `server_version`.
pub fn consumer_config(retention: RetentionPolicy, server_version: &str) -> pull::Config {
    let mut config = pull::Config {
        durable_name: Some(CONSUMER.into()),
        ack_policy: AckPolicy::Explicit,
        // After a crash, what was delivered but not acked comes back after this long.
        ack_wait: Duration::from_secs(10),
        max_ack_pending: 20_000,
        description: Some("sgd-hub validators (shared by every hub replica)".into()),
        ..Default::default()
    };
    if retention != RetentionPolicy::WorkQueue && pins_clients(server_version) {
        config.ack_policy = AckPolicy::All;
        config.priority_policy = PriorityPolicy::PinnedClient;
        config.priority_groups = vec![GROUP.into()];
        config.priority_timeout = PIN_TIMEOUT;
        config.ack_wait = PINNED_ACK_WAIT;
        // No more than the validator holds in its queue, so nothing waits there past the ack wait.
        config.max_ack_pending = ACK_QUEUE as i64;
        config.description = Some("sgd-hub validators (one hub's at a time; the others stand by)".into());
    }
    config
}

/// Whether a server of this version (`2.11.0`, `v2.15.1`, …) has pinned-client priority groups.
fn pins_clients(server_version: &str) -> bool {
    let mut parts = server_version.trim_start_matches('v').split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) >= (2, 11)
}

/// Makes the validators' consumer on `SGD_INGRESS` unless it exists (an existing one is kept as
/// it was made; docs/operations.md says how to make it anew).
pub async fn ensure_consumer(
    js: &jetstream::Context,
) -> Result<jetstream::consumer::Consumer<pull::Config>, async_nats::Error> {
    let mut stream = js.get_stream(streams::INGRESS).await?;
    let retention = stream.info().await?.config.retention;
    let version = js.client().server_info().version;
    Ok(stream.get_or_create_consumer(CONSUMER, consumer_config(retention, &version)).await?)
}

/// Runs the validator until `shutdown` turns true.
pub async fn run(
    js: jetstream::Context,
    settings: ValidatorSettings,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(), ValidatorError> {
    let mut consumer = ensure_consumer(&js).await.map_err(ValidatorError::Consumer)?;
    // On a cluster a new consumer elects its leader after it is created, and a pull request sent
    // before that is lost: wait for the leader (a few seconds at most; at once on one server).
    for _ in 0..20 {
        match consumer.info().await {
            Ok(info) if info.cluster.as_ref().is_none_or(|c| c.leader.is_some()) => break,
            _ => tokio::time::sleep(REPULL_PAUSE).await,
        }
    }
    let config = &consumer.cached_info().config;
    let acking = if config.ack_policy == AckPolicy::All { Acking::UpTo } else { Acking::EachMessage };
    let pinned = config.priority_policy == PriorityPolicy::PinnedClient;
    tracing::info!(?acking, pinned, "validator consuming {}", streams::INGRESS);
    loop {
        match pass(&js, &consumer, acking, pinned, settings, &metrics, &mut shutdown).await? {
            PassEnd::Shutdown => return Ok(()),
            PassEnd::PublishFailed => {
                // What was not acked comes back after the consumer's ack wait.
                tokio::select! {
                    _ = tokio::time::sleep(REPULL_PAUSE) => {}
                    _ = shutdown.changed() => return Ok(()),
                }
            }
        }
    }
}

/// How a pass over the ingress ended.
enum PassEnd {
    Shutdown,
    /// A publish failed while acking up to a sequence: nothing after it may be acked, so the
    /// validator pulls again (the unacked messages come back after the ack wait).
    PublishFailed,
}

async fn pass(
    js: &jetstream::Context,
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    acking: Acking,
    pinned: bool,
    settings: ValidatorSettings,
    metrics: &Metrics,
    shutdown: &mut watch::Receiver<bool>,
) -> Result<PassEnd, ValidatorError> {
    let mut messages = pull(consumer, pinned, settings).await?;
    let (to_acker, acks) = mpsc::channel::<(PublishAckFuture, jetstream::Message, Instant)>(ACK_QUEUE);
    let acker = tokio::spawn(match acking {
        Acking::EachMessage => ack_each(acks).boxed(),
        Acking::UpTo => ack_up_to(acks).boxed(),
    });
    let end = loop {
        let next = tokio::select! {
            next = messages.next() => next,
            _ = shutdown.changed() => break Ok(PassEnd::Shutdown),
        };
        let message = match next {
            Some(Ok(message)) => message,
            Some(Err(e)) => {
                // A missed heartbeat means the outstanding pull request is gone (it reached a
                // consumer leader that was just elected or has since died): the client would not
                // ask again until the request expires. Ask again now.
                tracing::warn!(error = %e, "ingress consumer error; pulling again");
                tokio::time::sleep(REPULL_PAUSE).await;
                messages = pull(consumer, pinned, settings).await?;
                continue;
            }
            None => break Err(ValidatorError::Ended),
        };
        match route(js, &message, settings, metrics).await {
            Ok(ack) => {
                if to_acker.send((ack, message, Instant::now() + PUBLISH_ACK_WAIT)).await.is_err() {
                    // The acker stops on a failed publish when acking up to a sequence.
                    break Ok(PassEnd::PublishFailed);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, subject = %sgd_schemas::pii::redact(&message.subject), "publish failed; ingress message will be redelivered");
                if acking == Acking::UpTo {
                    break Ok(PassEnd::PublishFailed);
                }
                let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(1)))).await;
            }
        }
    };
    drop(to_acker);
    match acker.await {
        // The loop saw a failed publish through the closed channel already.
        Ok(AckerEnd::Drained | AckerEnd::PublishFailed) => end,
        Err(_) => Err(ValidatorError::AckTaskStopped),
    }
}

/// Idle heartbeat of the validator's pull requests: two missed in a row (a lost pull request)
/// make the validator pull again.
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Pause before pulling again after an error, so a consumer that answers nothing at all (no
/// leader during an election) is not asked in a tight loop.
const REPULL_PAUSE: Duration = Duration::from_millis(250);

/// A fresh pull on the shared consumer (the server serves the hubs' waiting pull requests in
/// turn, so each hub takes part once its pull has reached the consumer's leader). On a pinned
/// consumer a new pull is a new client, which stands by until the pin is free ([`PIN_TIMEOUT`]
/// after the holder's last pull). The pin is never released early: a new holder's ack up to a
/// sequence would cover what the old one had taken and not yet validated.
async fn pull(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
    pinned: bool,
    settings: ValidatorSettings,
) -> Result<pull::Stream, ValidatorError> {
    let messages =
        consumer.stream().max_messages_per_batch(settings.pull_batch).heartbeat(HEARTBEAT).expires(PULL_EXPIRES);
    let messages = if pinned { messages.group(GROUP) } else { messages };
    messages.messages().await.map_err(|e| ValidatorError::Consumer(Box::new(e)))
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

/// How an acking task ended.
enum AckerEnd {
    /// Its channel closed and every acknowledgement in it was awaited.
    Drained,
    /// A publish failed while acking up to a sequence; nothing after it was acked.
    PublishFailed,
}

/// Awaits a publish acknowledgement until `deadline` (counted from its publish).
///
/// Regression (issue 7, NATS restarts): the client's timeout starts when an acknowledgement is
/// awaited, so awaiting thousands lost in a `nats-server` restart one after the other took 5 s
/// each, and validation stalled for hours behind the full queue.
async fn published(ack: PublishAckFuture, deadline: Instant) -> Result<(), String> {
    match tokio::time::timeout_at(deadline, std::future::IntoFuture::into_future(ack)).await {
        Ok(result) => result.map(|_| ()).map_err(|e| e.to_string()),
        Err(_) => Err(format!("no acknowledgement within {PUBLISH_ACK_WAIT:?} of the publish")),
    }
}

/// Awaits each publish acknowledgement in order; acks the ingress message after its publish is
/// stored, naks it (for redelivery) when the publish failed or was not acknowledged in time.
async fn ack_each(mut acks: mpsc::Receiver<(PublishAckFuture, jetstream::Message, Instant)>) -> AckerEnd {
    while let Some((ack, message, deadline)) = acks.recv().await {
        match published(ack, deadline).await {
            Ok(()) => {
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
    AckerEnd::Drained
}

/// Awaits each publish acknowledgement in order and acks ingress up to the newest message whose
/// publish (and every one before it) is stored: every [`ACK_EVERY`] messages and whenever no
/// more are waiting. Stops at the first failed publish, having acked only what came before it.
async fn ack_up_to(mut acks: mpsc::Receiver<(PublishAckFuture, jetstream::Message, Instant)>) -> AckerEnd {
    let mut newest: Option<jetstream::Message> = None;
    let mut since_ack = 0;
    let end = loop {
        let Some((ack, message, deadline)) = acks.recv().await else { break AckerEnd::Drained };
        if let Err(e) = published(ack, deadline).await {
            tracing::warn!(error = %e, "publish not acknowledged; the ingress from it on will be redelivered");
            break AckerEnd::PublishFailed;
        }
        newest = Some(message);
        since_ack += 1;
        if since_ack >= ACK_EVERY || acks.is_empty() {
            ack_all(newest.take()).await;
            since_ack = 0;
        }
    };
    ack_all(newest).await;
    end
}

/// Acks every ingress message up to `newest` (AckPolicy::All).
async fn ack_all(newest: Option<jetstream::Message>) {
    if let Some(message) = newest {
        if let Err(e) = message.ack().await {
            tracing::warn!(error = %e, "ingress ack failed; the messages up to it will be redelivered and deduplicated");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pinned_clients_from_2_11_on() {
        assert!(!pins_clients("2.9.10"));
        assert!(!pins_clients("2.10.22"));
        assert!(pins_clients("2.11.0"));
        assert!(pins_clients("v2.15.1"));
        assert!(pins_clients("2.12.0-RC.1"));
        assert!(!pins_clients("not a version"));
    }

    #[test]
    fn a_work_queue_or_an_old_server_gets_one_ack_per_message() {
        let wq = consumer_config(RetentionPolicy::WorkQueue, "2.15.1");
        assert_eq!((wq.ack_policy, wq.priority_policy), (AckPolicy::Explicit, PriorityPolicy::None));
        let old = consumer_config(RetentionPolicy::Interest, "2.9.10");
        assert_eq!((old.ack_policy, old.priority_policy), (AckPolicy::Explicit, PriorityPolicy::None));
        let current = consumer_config(RetentionPolicy::Interest, "2.15.1");
        assert_eq!((current.ack_policy, current.priority_policy), (AckPolicy::All, PriorityPolicy::PinnedClient));
        assert_eq!(current.priority_groups, vec![GROUP.to_string()]);
    }
}
