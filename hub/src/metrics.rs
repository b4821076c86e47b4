//! Prometheus metrics of the hub (`GET /metrics`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use prometheus_client::{
    encoding::{text::encode, EncodeLabelSet},
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

/// Labels of per-type counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabels {
    /// The area.
    pub area: String,
    /// The event type.
    pub r#type: String,
}

/// Labels of refusals.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    /// The reject reason code.
    pub reason: String,
    /// Where the event came in: `nats` or `http`.
    pub entry: String,
}

/// Labels of the DLQ size.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DlqLabels {
    /// The reject reason code.
    pub reason: String,
}

/// Labels of an adapter's heartbeat age.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdapterLabels {
    /// The principal.
    pub principal: String,
    /// The adapter.
    pub adapter: String,
}

/// Labels of HTTP request durations.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    /// The method.
    pub method: String,
    /// The route (its pattern, e.g. `/api/v1/dlq/{seq}`), or `unmatched`.
    pub route: String,
    /// The status code.
    pub status: u16,
}

/// Labels of routing counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The routing rule (`docs/routing.md`), or `undecodable`.
    pub rule: String,
}

/// Labels of a webhook subscription's figures.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubscriptionLabels {
    /// The subscription's id.
    pub subscription: String,
    /// Its principal.
    pub principal: String,
}

/// Totals since the process started, readable without the registry (`GET /api/v1/status`).
#[derive(Debug, Default)]
pub struct Totals {
    /// Events accepted by the validator (NATS and HTTP).
    pub validated: AtomicU64,
    /// Events refused.
    pub refused: AtomicU64,
    /// Events applied to the read model.
    pub projected: AtomicU64,
}

/// Every metric of the hub.
pub struct Metrics {
    registry: Registry,
    /// Events accepted by the validator.
    pub validated: Family<TypeLabels, Counter>,
    /// Events refused.
    pub refused: Family<ReasonLabels, Counter>,
    /// Events applied to the read model.
    pub projected: Family<TypeLabels, Counter>,
    /// Events skipped because their identity was applied before.
    pub duplicates: Counter,
    /// Events in the log that the typed decoder could not read (a schema/type mismatch bug).
    pub decode_errors: Counter,
    /// Projection lag in events (log last sequence − checkpoint).
    pub lag_events: Gauge,
    /// Projection lag in seconds (age of the oldest unapplied event).
    pub lag_seconds: Gauge<f64, AtomicU64>,
    /// The projection checkpoint (last applied log sequence).
    pub checkpoint: Gauge<i64, AtomicI64>,
    /// The log sequence the stored views reflect (a hub killed now replays from there at start).
    pub views_sequence: Gauge<i64, AtomicI64>,
    /// Projection batches committed.
    pub batches: Counter,
    /// Events per committed projection batch.
    pub batch_size: Histogram,
    /// Seconds to commit one projection batch to sled (apply + flush).
    pub commit_seconds: Histogram,
    /// Dead letters in `SGD_DLQ` by reason (read from JetStream at each scrape).
    pub dlq_messages: Family<DlqLabels, Gauge>,
    /// Seconds since each adapter's newest heartbeat (computed at each scrape).
    pub adapter_heartbeat_age: Family<AdapterLabels, Gauge<f64, AtomicU64>>,
    /// HTTP request durations.
    pub http_seconds: Family<HttpLabels, Histogram>,
    /// Copies published to `SGD_ROUTED`, by rule.
    pub routed: Family<RuleLabels, Counter>,
    /// Events a rule applied to but whose recipients are unknown (or that could not be read).
    pub routing_unresolved: Family<RuleLabels, Counter>,
    /// The router's checkpoint (last routed log sequence).
    pub routing_checkpoint: Gauge<i64, AtomicI64>,
    /// Log events not yet routed.
    pub routing_lag_events: Gauge<i64, AtomicI64>,
    /// Entries the routing rules remember (open cases and units).
    pub routing_state_entries: Gauge<i64, AtomicI64>,
    /// Webhook deliveries answered 2xx.
    pub webhook_deliveries: Family<SubscriptionLabels, Counter>,
    /// Webhook attempts that failed (refused, timed out, non-2xx).
    pub webhook_failures: Family<SubscriptionLabels, Counter>,
    /// Deliveries parked after the last attempt failed.
    pub webhook_parked: Family<SubscriptionLabels, Counter>,
    /// Routed events not yet delivered to the subscription.
    pub webhook_lag_events: Family<SubscriptionLabels, Gauge<i64, AtomicI64>>,
    /// Age of the oldest undelivered event of the subscription.
    pub webhook_lag_seconds: Family<SubscriptionLabels, Gauge<f64, AtomicU64>>,
    /// When the subscription's last attempt failed (Unix seconds; 0: never).
    pub webhook_last_error_time: Family<SubscriptionLabels, Gauge<f64, AtomicU64>>,
    /// Seconds from an event's copy being stored in `SGD_ROUTED` to its delivery (2xx) to a webhook.
    pub webhook_delivery_seconds: Histogram,
    /// NATS ingest requests answered, by outcome (`accepted`, `refused`, `unavailable`).
    pub ingest_requests: Family<OutcomeLabels, Counter>,
    /// Totals since start.
    pub totals: Totals,
}

/// Labels of an outcome count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// The outcome.
    pub outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sgd");
        let validated = Family::<TypeLabels, Counter>::default();
        let refused = Family::<ReasonLabels, Counter>::default();
        let projected = Family::<TypeLabels, Counter>::default();
        let duplicates = Counter::default();
        let decode_errors = Counter::default();
        let lag_events = Gauge::default();
        let lag_seconds = Gauge::<f64, AtomicU64>::default();
        let checkpoint = Gauge::<i64, AtomicI64>::default();
        let views_sequence = Gauge::<i64, AtomicI64>::default();
        let batches = Counter::default();
        let batch_size = Histogram::new(exponential_buckets(1.0, 4.0, 8));
        let commit_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        let dlq_messages = Family::<DlqLabels, Gauge>::default();
        let adapter_heartbeat_age = Family::<AdapterLabels, Gauge<f64, AtomicU64>>::default();
        let http_seconds = Family::<HttpLabels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.0005, 2.0, 14))) as fn() -> Histogram,
        );
        registry.register("events_validated", "Events accepted by the validator", validated.clone());
        registry.register("events_refused", "Events refused (to the DLQ or an HTTP error)", refused.clone());
        registry.register("events_projected", "Events applied to the read model", projected.clone());
        registry.register("events_duplicate", "Events skipped as already applied", duplicates.clone());
        registry.register("events_decode_errors", "Log events the typed decoder could not read", decode_errors.clone());
        registry.register("projection_lag_events", "Log events not yet projected", lag_events.clone());
        registry.register("projection_lag_seconds", "Age of the oldest unprojected event", lag_seconds.clone());
        registry.register("projection_checkpoint", "Last applied log sequence", checkpoint.clone());
        registry.register(
            "projection_views_sequence",
            "Log sequence the stored views reflect (a hub killed now replays the log from there into its views)",
            views_sequence.clone(),
        );
        registry.register("projection_batches", "Projection batches committed", batches.clone());
        registry.register("projection_batch_size", "Events per committed projection batch", batch_size.clone());
        registry.register("projection_commit_seconds", "Seconds to commit one batch to sled", commit_seconds.clone());
        registry.register("dlq_messages", "Dead letters in SGD_DLQ by reason", dlq_messages.clone());
        registry.register(
            "adapter_heartbeat_age_seconds",
            "Seconds since each adapter's newest heartbeat",
            adapter_heartbeat_age.clone(),
        );
        registry.register("http_request_duration_seconds", "HTTP request durations", http_seconds.clone());
        let routed = Family::<RuleLabels, Counter>::default();
        let routing_unresolved = Family::<RuleLabels, Counter>::default();
        let routing_checkpoint = Gauge::<i64, AtomicI64>::default();
        let routing_lag_events = Gauge::<i64, AtomicI64>::default();
        let routing_state_entries = Gauge::<i64, AtomicI64>::default();
        let webhook_deliveries = Family::<SubscriptionLabels, Counter>::default();
        let webhook_failures = Family::<SubscriptionLabels, Counter>::default();
        let webhook_parked = Family::<SubscriptionLabels, Counter>::default();
        let webhook_lag_events = Family::<SubscriptionLabels, Gauge<i64, AtomicI64>>::default();
        let webhook_lag_seconds = Family::<SubscriptionLabels, Gauge<f64, AtomicU64>>::default();
        let webhook_last_error_time = Family::<SubscriptionLabels, Gauge<f64, AtomicU64>>::default();
        let webhook_delivery_seconds = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        let ingest_requests = Family::<OutcomeLabels, Counter>::default();
        registry.register("routed", "Copies of logged events published to SGD_ROUTED, by rule", routed.clone());
        registry.register(
            "routing_unresolved",
            "Events a routing rule applied to whose recipients are unknown, by rule",
            routing_unresolved.clone(),
        );
        registry.register("routing_checkpoint", "Last routed log sequence", routing_checkpoint.clone());
        registry.register("routing_lag_events", "Log events not yet routed", routing_lag_events.clone());
        registry.register(
            "routing_state_entries",
            "Entries the routing rules remember (open cases, units)",
            routing_state_entries.clone(),
        );
        registry.register("webhook_deliveries", "Webhook deliveries answered 2xx", webhook_deliveries.clone());
        registry.register("webhook_failures", "Webhook attempts that failed", webhook_failures.clone());
        registry.register(
            "webhook_parked",
            "Webhook deliveries parked after their last attempt",
            webhook_parked.clone(),
        );
        registry.register("webhook_lag_events", "Routed events not yet delivered", webhook_lag_events.clone());
        registry.register(
            "webhook_lag_seconds",
            "Age of the oldest routed event not yet delivered",
            webhook_lag_seconds.clone(),
        );
        registry.register(
            "webhook_last_error_timestamp_seconds",
            "When the last attempt failed (Unix seconds)",
            webhook_last_error_time.clone(),
        );
        registry.register(
            "webhook_delivery_seconds",
            "From a routed copy's storage in SGD_ROUTED to its 2xx from a webhook",
            webhook_delivery_seconds.clone(),
        );
        registry.register("ingest_requests", "NATS ingest requests answered, by outcome", ingest_requests.clone());
        for outcome in ["accepted", "refused", "unavailable"] {
            let _ = ingest_requests.get_or_create(&OutcomeLabels { outcome: outcome.into() });
        }
        // Every series exists from the start (at zero), so dashboards and alerts see all of them.
        for event_type in sgd_schemas::catalogue::Catalogue::get().types() {
            let area = sgd_schemas::catalogue::TypeName::parse(event_type).map(|t| t.area).unwrap_or_default();
            let labels = TypeLabels { area: area.into(), r#type: event_type.into() };
            let _ = validated.get_or_create(&labels);
            let _ = projected.get_or_create(&labels);
        }
        for reason in sgd_schemas::RejectReason::ALL {
            for entry in ["nats", "http"] {
                let _ = refused.get_or_create(&ReasonLabels { reason: reason.as_str().into(), entry: entry.into() });
            }
            let _ = dlq_messages.get_or_create(&DlqLabels { reason: reason.as_str().into() });
        }
        Self {
            registry,
            validated,
            refused,
            projected,
            duplicates,
            decode_errors,
            lag_events,
            lag_seconds,
            checkpoint,
            views_sequence,
            batches,
            batch_size,
            commit_seconds,
            dlq_messages,
            adapter_heartbeat_age,
            http_seconds,
            routed,
            routing_unresolved,
            routing_checkpoint,
            routing_lag_events,
            routing_state_entries,
            webhook_deliveries,
            webhook_failures,
            webhook_parked,
            webhook_lag_events,
            webhook_lag_seconds,
            webhook_last_error_time,
            webhook_delivery_seconds,
            ingest_requests,
            totals: Totals::default(),
        }
    }
}

impl Metrics {
    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Counts an accepted event.
    pub fn count_validated(&self, area: &str, event_type: &str) {
        self.validated.get_or_create(&TypeLabels { area: area.into(), r#type: event_type.into() }).inc();
        self.totals.validated.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal.
    pub fn count_refused(&self, reason: &str, entry: &str) {
        self.refused.get_or_create(&ReasonLabels { reason: reason.into(), entry: entry.into() }).inc();
        self.totals.refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an HTTP request.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let labels = HttpLabels { method: method.into(), route: route.into(), status };
        self.http_seconds.get_or_create(&labels).observe(seconds);
    }
}
