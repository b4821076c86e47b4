//! One deliverer per subscription. It takes up to `window` events at a time from the
//! subscription's durable consumer and delivers them one after the other, in order: each is
//! POSTed until the receiver answers 2xx within the timeout, with growing delays (doubling, with
//! jitter) between attempts; after the last attempt it is parked with its reason and the
//! deliverer goes on. An event is acknowledged to JetStream only once delivered or parked, so a
//! hub that stops or dies loses none; the ones delivered whose acknowledgement JetStream had not
//! stored yet (at most `window`) are delivered again.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, AckKind};
use futures::StreamExt;
use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{field::Empty, Instrument};

use super::{parked, signature, store::SubscriptionStore, subscription::Subscription, WebhookSettings};
use crate::metrics::{Metrics, SubscriptionLabels};

/// The media type of a structured-mode CloudEvent.
pub const CONTENT_TYPE: &str = "application/cloudevents+json; charset=utf-8";

/// One HTTP attempt: the client and what it may call.
#[derive(Clone)]
pub struct Attempt {
    client: reqwest::Client,
    policy: super::target::TargetPolicy,
}

impl Attempt {
    /// Attempts with `client` under `policy`.
    pub fn new(client: reqwest::Client, policy: super::target::TargetPolicy) -> Self {
        Self { client, policy }
    }

    /// POSTs `body` signed to the subscription's URL, with `traceparent` as its W3C trace
    /// context header when given; Ok on a 2xx.
    pub async fn send(
        &self,
        subscription: &Subscription,
        webhook_id: &str,
        body: &[u8],
        traceparent: Option<&str>,
    ) -> Result<(), AttemptError> {
        // Checked at every attempt: an address literal never reaches the guarded resolver.
        self.policy.check_url(&subscription.url)?;
        let key = signature::key(&subscription.secret)?;
        let timestamp = chrono::Utc::now().timestamp();
        let mut request = self
            .client
            .post(&subscription.url)
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header("webhook-id", webhook_id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature::sign(&key, webhook_id, timestamp, body));
        if let Some(traceparent) = traceparent {
            request = request.header(crate::telemetry::TRACEPARENT, traceparent);
        }
        let response = request.body(body.to_vec()).send().await.map_err(AttemptError::Transport)?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(AttemptError::Answered(status))
        }
    }
}

/// Why one delivery attempt failed → counted, retried after a delay, parked after the last
/// attempt; its text is the subscription's `last_error` and the parked delivery's reason.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The subscription's URL is not one deliveries may go to (any more).
    #[error(transparent)]
    Target(#[from] super::target::TargetError),
    /// The subscription's secret is not a signing key.
    #[error(transparent)]
    Secret(#[from] signature::SecretError),
    /// No answer (connection, TLS, timeout); shown with its causes.
    #[error("{}", describe(.0))]
    Transport(reqwest::Error),
    /// The receiver answered with a status other than 2xx.
    #[error("the receiver answered {0}")]
    Answered(reqwest::StatusCode),
}

/// An error with its causes (reqwest's own text is often only "error sending request").
fn describe(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A subscription's delivery figures since this hub started, for the API and `hub status`.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(default)]
pub struct DeliveryStatus {
    /// Events delivered (2xx).
    pub delivered: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Events parked.
    pub parked: u64,
    /// Routed events not yet delivered (JetStream's count).
    pub lag_events: u64,
    /// Age of the oldest undelivered event, seconds.
    pub lag_seconds: f64,
    /// The last failure's reason.
    pub last_error: Option<String>,
    /// When it happened.
    pub last_error_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether this hub runs its deliverer.
    pub running: bool,
}

/// Every subscription's figures, by id.
pub type Statuses = Arc<Mutex<HashMap<String, DeliveryStatus>>>;

/// What every deliverer shares.
#[derive(Clone)]
pub struct DeliveryContext {
    /// JetStream.
    pub js: jetstream::Context,
    /// The subscriptions.
    pub store: SubscriptionStore,
    /// HTTP.
    pub attempt: Attempt,
    /// Retries, window.
    pub settings: WebhookSettings,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Figures per subscription.
    pub statuses: Statuses,
}

impl DeliveryContext {
    fn update(&self, id: &str, change: impl FnOnce(&mut DeliveryStatus)) {
        if let Ok(mut statuses) = self.statuses.lock() {
            change(statuses.entry(id.to_string()).or_default());
        }
    }
}

/// Why a deliverer stopped working through its batch.
enum Interrupted {
    /// Shutdown, or the subscription was removed: leave the rest unacknowledged.
    Stop,
    /// Paused: give the rest back to JetStream for later.
    Paused,
}

/// Runs a subscription's deliverer until `stop` turns true. `subscription` carries its
/// changes (pause, resume).
pub async fn run(
    ctx: DeliveryContext,
    mut subscription: watch::Receiver<Subscription>,
    mut stop: watch::Receiver<bool>,
) {
    let id = subscription.borrow().id.clone();
    let labels = {
        let s = subscription.borrow();
        SubscriptionLabels { subscription: s.id.clone(), principal: s.principal.clone() }
    };
    ctx.update(&id, |s| s.running = true);
    let window = ctx.settings.window.clamp(1, super::store::WINDOW_LIMIT);
    let mut starting = true;
    'outer: loop {
        if *stop.borrow() {
            break;
        }
        if subscription.borrow().paused {
            tokio::select! {
                _ = subscription.changed() => continue,
                _ = stop.changed() => break,
            }
        }
        let current = subscription.borrow().clone();
        // Asking again for the consumer would make it anew if the subscription was just removed
        // (its consumer deleted before this deliverer is told): only while it is still stored.
        if !starting && !matches!(ctx.store.get(&id).await, Ok(Some(_))) {
            if sleep_or_stop(Duration::from_secs(1), &mut stop).await {
                break;
            }
            continue;
        }
        let consumer = match ctx.store.consumer(&current).await {
            Ok(consumer) => consumer,
            Err(e) => {
                tracing::warn!(subscription = %id, error = %e, "webhook consumer unavailable; retrying");
                if sleep_or_stop(Duration::from_secs(1), &mut stop).await {
                    break;
                }
                continue;
            }
        };
        if starting {
            starting = false;
            if !held_elsewhere_released(&consumer, &mut stop).await {
                break;
            }
        }
        loop {
            // What is there now, up to the window; when nothing is, one long poll for the next,
            // so an idle subscription asks JetStream once every IDLE_WAIT, not in a loop.
            let taken = match take(&consumer, window, None, &mut stop).await {
                Ok(none) if none.is_empty() => take(&consumer, 1, Some(IDLE_WAIT), &mut stop).await,
                other => other,
            };
            let messages = match taken {
                Ok(messages) => messages,
                Err(Taken::Stop) => break 'outer,
                Err(Taken::Failed(e)) => {
                    tracing::warn!(subscription = %id, error = %e, "webhook fetch failed; retrying");
                    if sleep_or_stop(Duration::from_secs(1), &mut stop).await {
                        break 'outer;
                    }
                    continue 'outer;
                }
            };
            refresh_lag(&ctx, &consumer, &labels, messages.first()).await;
            if messages.is_empty() {
                if *stop.borrow() {
                    break 'outer;
                }
                if subscription.has_changed().unwrap_or(false) {
                    continue 'outer;
                }
                continue;
            }
            match deliver_batch(&ctx, &mut subscription, &mut stop, &labels, &messages).await {
                Ok(()) => {}
                Err(Interrupted::Stop) => break 'outer,
                Err(Interrupted::Paused) => continue 'outer,
            }
        }
    }
    ctx.update(&id, |s| s.running = false);
}

/// How long an idle deliverer's pull waits for the next event.
const IDLE_WAIT: Duration = Duration::from_secs(5);

enum Taken {
    Stop,
    Failed(async_nats::Error),
}

/// Up to `n` messages: those available now (`wait` none), or the first to come within `wait`.
async fn take(
    consumer: &jetstream::consumer::PullConsumer,
    n: usize,
    wait: Option<Duration>,
    stop: &mut watch::Receiver<bool>,
) -> Result<Vec<jetstream::Message>, Taken> {
    let batch = match wait {
        None => consumer.fetch().max_messages(n).messages().await,
        Some(wait) => consumer.batch().max_messages(n).expires(wait).messages().await,
    };
    let mut batch = batch.map_err(|e| Taken::Failed(Box::new(e)))?;
    let mut messages = Vec::new();
    loop {
        let next = tokio::select! {
            next = batch.next() => next,
            _ = stop.changed() => return Err(Taken::Stop),
        };
        match next {
            Some(Ok(message)) => messages.push(message),
            Some(Err(e)) => {
                // The end of a pull: no messages, a timeout, the window full.
                tracing::trace!(error = %e, "webhook pull ended");
                break;
            }
            None => break,
        }
    }
    Ok(messages)
}

/// Waits, when a deliverer that stopped or died left events unacknowledged, until JetStream
/// gives them out again ([`super::store::ACK_WAIT`]), so they are delivered before any later
/// event (order is kept across a crash). False when asked to stop meanwhile.
async fn held_elsewhere_released(
    consumer: &jetstream::consumer::PullConsumer,
    stop: &mut watch::Receiver<bool>,
) -> bool {
    let mut consumer = consumer.clone();
    match consumer.info().await {
        Ok(info) if info.num_ack_pending > 0 => {
            tracing::info!(
                consumer = %info.name,
                held = info.num_ack_pending,
                "waiting for the events an earlier deliverer held to come back, to keep their order"
            );
            !sleep_or_stop(super::store::ACK_WAIT + Duration::from_secs(1), stop).await
        }
        _ => !*stop.borrow(),
    }
}

async fn sleep_or_stop(pause: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(pause) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// Lag from JetStream's count and the oldest message the deliverer holds.
async fn refresh_lag(
    ctx: &DeliveryContext,
    consumer: &jetstream::consumer::PullConsumer,
    labels: &SubscriptionLabels,
    oldest: Option<&jetstream::Message>,
) {
    let mut consumer = consumer.clone();
    let Ok(info) = consumer.info().await else { return };
    let lag_events = info.num_pending + info.num_ack_pending as u64;
    let lag_seconds = oldest.and_then(|m| m.info().ok()).map_or(0.0, |info| age_seconds(info.published));
    ctx.metrics.webhook_lag_events.get_or_create(labels).set(lag_events as i64);
    ctx.metrics.webhook_lag_seconds.get_or_create(labels).set(lag_seconds);
    ctx.update(&labels.subscription, |s| {
        s.lag_events = lag_events;
        s.lag_seconds = lag_seconds;
    });
}

fn age_seconds(published: time::OffsetDateTime) -> f64 {
    ((time::OffsetDateTime::now_utc() - published).as_seconds_f64()).max(0.0)
}

/// Delivers a batch in order.
async fn deliver_batch(
    ctx: &DeliveryContext,
    subscription: &mut watch::Receiver<Subscription>,
    stop: &mut watch::Receiver<bool>,
    labels: &SubscriptionLabels,
    messages: &[jetstream::Message],
) -> Result<(), Interrupted> {
    for (index, message) in messages.iter().enumerate() {
        let current = subscription.borrow().clone();
        if current.paused {
            give_back(&messages[index..]).await;
            return Err(Interrupted::Paused);
        }
        let event_type = sgd_schemas::subjects::parse_routed(&message.subject).map(|(_, t)| t).unwrap_or_default();
        if !current.wants(&event_type) {
            let _ = message.ack().await;
            continue;
        }
        let webhook_id = parked::routed_id(message);
        let mut attempts = 0;
        loop {
            attempts += 1;
            // One `deliver.webhook` span per attempt, a child of the routed copy's traceparent
            // (the event's, else the `route` span's); the receiver gets this span's, else that.
            let span = tracing::info_span!(target: crate::telemetry::PIPELINE, "deliver.webhook", otel.kind = "client",
                subscription = %current.id, recipient = %current.principal, "webhook.id" = %webhook_id,
                attempt = attempts, outcome = Empty, "error.message" = Empty, otel.status_code = Empty);
            crate::telemetry::follow_message(&span, None, message.headers.as_ref());
            let routed_traceparent =
                message.headers.as_ref().and_then(|h| h.get(crate::telemetry::TRACEPARENT)).map(|v| v.as_str());
            let traceparent = crate::telemetry::traceparent_of(&span);
            let sent = ctx
                .attempt
                .send(&current, &webhook_id, &message.payload, traceparent.as_deref().or(routed_traceparent))
                .instrument(span.clone())
                .await;
            match &sent {
                Ok(()) => span.record("outcome", "delivered"),
                Err(e) => span
                    .record("outcome", "failed")
                    .record("error.message", tracing::field::display(e))
                    .record("otel.status_code", "error"),
            };
            match sent {
                Ok(()) => {
                    if let Err(e) = message.ack().await {
                        tracing::warn!(subscription = %current.id, error = %e, "ack failed; the event may be delivered again");
                    }
                    ctx.metrics.webhook_deliveries.get_or_create(labels).inc();
                    if let Ok(info) = message.info() {
                        ctx.metrics.webhook_delivery_seconds.observe(age_seconds(info.published));
                    }
                    ctx.update(&current.id, |s| s.delivered += 1);
                    break;
                }
                Err(error) => {
                    let reason = error.to_string();
                    ctx.metrics.webhook_failures.get_or_create(labels).inc();
                    ctx.metrics
                        .webhook_last_error_time
                        .get_or_create(labels)
                        .set(chrono::Utc::now().timestamp() as f64);
                    ctx.update(&current.id, |s| {
                        s.failures += 1;
                        s.last_error = Some(reason.clone());
                        s.last_error_at = Some(chrono::Utc::now());
                    });
                    tracing::info!(subscription = %current.id, attempt = attempts, %reason, "webhook attempt failed");
                    if attempts >= ctx.settings.attempts.max(1) {
                        park_or_retry(ctx, &current, message, &reason, attempts, labels).await;
                        break;
                    }
                    let delay = ctx.settings.delay_after(attempts).mul_f64(rand::rng().random_range(0.5..=1.0));
                    match wait_holding(delay, &messages[index..], subscription, stop).await {
                        Waited::Elapsed => {}
                        Waited::Stop => return Err(Interrupted::Stop),
                        Waited::Paused => {
                            give_back(&messages[index..]).await;
                            return Err(Interrupted::Paused);
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

/// Parks the message and acks it; if parking fails, leaves it for JetStream to give out again.
async fn park_or_retry(
    ctx: &DeliveryContext,
    subscription: &Subscription,
    message: &jetstream::Message,
    reason: &str,
    attempts: u32,
    labels: &SubscriptionLabels,
) {
    match parked::park(&ctx.js, subscription, message, reason, attempts).await {
        Ok(()) => {
            let _ = message.ack().await;
            ctx.metrics.webhook_parked.get_or_create(labels).inc();
            ctx.update(&subscription.id, |s| s.parked += 1);
            tracing::warn!(subscription = %subscription.id, attempts, reason, "webhook delivery parked");
        }
        Err(e) => {
            tracing::error!(subscription = %subscription.id, error = %e, "could not park a delivery; it will be tried again");
            let _ = message.ack_with(AckKind::Nak(Some(Duration::from_secs(5)))).await;
        }
    }
}

enum Waited {
    Elapsed,
    Stop,
    Paused,
}

/// Waits `delay` between attempts, telling JetStream every few seconds that the held messages
/// are still being worked on (so none is given out again meanwhile).
async fn wait_holding(
    delay: Duration,
    held: &[jetstream::Message],
    subscription: &mut watch::Receiver<Subscription>,
    stop: &mut watch::Receiver<bool>,
) -> Waited {
    let deadline = tokio::time::Instant::now() + delay;
    let progress_every = super::store::ACK_WAIT / 3;
    loop {
        let wake = deadline.min(tokio::time::Instant::now() + progress_every);
        tokio::select! {
            _ = tokio::time::sleep_until(wake) => {}
            _ = stop.changed() => return Waited::Stop,
            changed = subscription.changed() => {
                if changed.is_err() {
                    return Waited::Stop;
                }
                if subscription.borrow().paused {
                    return Waited::Paused;
                }
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Waited::Elapsed;
        }
        for message in held {
            let _ = message.ack_with(AckKind::Progress).await;
        }
    }
}

/// Hands unacknowledged messages back to JetStream at once, to come again in order.
async fn give_back(messages: &[jetstream::Message]) {
    for message in messages {
        let _ = message.ack_with(AckKind::Nak(None)).await;
    }
}
