//! The JetStream streams the hub keeps, created or updated idempotently at start.
//!
//! | stream | subjects | retention |
//! | --- | --- | --- |
//! | `SGD_INGRESS` | `sgd.in.>` | work queue: each message until the validator acks it |
//! | `SGD_EVENTS` | `sgd.events.>` | limits, file storage, no expiry: the log, the source of truth |
//! | `SGD_DLQ` | `sgd.dlq.>` | limits, file storage: refused events with their reasons |
//! | `SGD_AUDIT` | `sgd.audit.>` | limits, file storage, deny delete and purge: person-level reads |
//! | `SGD_ROUTED` | `sgd.to.>` | limits, file storage, `routed_retention_days`: copies for the principals an event concerns |
//! | `SGD_PARKED` | `sgd.parked.>` | limits, file storage: webhook deliveries that failed every attempt |
//! | `KV_SGD_SUBSCRIPTIONS` | `$KV.SGD_SUBSCRIPTIONS.>` | the key-value bucket of webhook subscriptions (one value per key) |

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{Config, DiscardPolicy, RetentionPolicy, StorageType},
};
use sgd_schemas::subjects;

/// The header JetStream deduplicates on.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";
/// The ingress work queue.
pub const INGRESS: &str = "SGD_INGRESS";
/// The log.
pub const EVENTS: &str = "SGD_EVENTS";
/// The dead-letter stream.
pub const DLQ: &str = "SGD_DLQ";
/// The audit stream of person-level reads (no deletes, no purges).
pub const AUDIT: &str = "SGD_AUDIT";
/// The routed events: a copy per recipient principal (`sgd.to.<recipient>.<area>.<entity>.<action>`).
pub const ROUTED: &str = "SGD_ROUTED";
/// Parked webhook deliveries (`sgd.parked.<principal>.<subscription>`).
pub const PARKED: &str = "SGD_PARKED";
/// Subjects of the parked deliveries.
pub const PARKED_SUBJECTS: &str = "sgd.parked.>";
/// The stream behind the key-value bucket of webhook subscriptions. Made here, as a stream in
/// the key-value layout (ADR-8), rather than by the client's bucket creation, whose request
/// carries settings that servers before 2.11 do not answer in a form the client reads.
pub const SUBSCRIPTIONS_KV: &str = "KV_SGD_SUBSCRIPTIONS";
/// Subjects of the audit stream: `sgd.audit.<principal>`.
pub const AUDIT_SUBJECTS: &str = "sgd.audit.>";

/// Duplicate window of `SGD_INGRESS`: as short as JetStream allows (see [`configs`]).
pub const INGRESS_DEDUP_WINDOW: Duration = Duration::from_millis(100);

/// Why the streams could not be set up → check the NATS URL, that JetStream is enabled, and that
/// an existing stream of the same name was not made with another retention (which cannot change).
#[derive(Debug, thiserror::Error)]
#[error("cannot set up stream {stream}: {message}")]
pub struct StreamSetupError {
    /// The stream.
    pub stream: &'static str,
    /// What NATS said.
    pub message: String,
}

/// Stream settings from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct StreamSettings {
    /// Duplicate window of the log and the DLQ.
    pub dedup_window: Duration,
    /// Replicas (1, or 3 on a cluster).
    pub replicas: usize,
    /// How long `SGD_ROUTED` keeps a copy (a principal's consumer or webhook away longer misses it).
    pub routed_max_age: Duration,
}

/// The three stream configurations.
pub fn configs(settings: StreamSettings) -> Vec<Config> {
    vec![
        Config {
            name: INGRESS.into(),
            subjects: vec![subjects::INGRESS_ALL.into()],
            retention: RetentionPolicy::WorkQueue,
            storage: StorageType::File,
            // Ingress does not deduplicate (100 ms is the least JetStream takes); the log does.
            // With a real window here, an event refused and then corrected and resent with the
            // same id would be dropped by JetStream as a repeat before the validator saw it.
            duplicate_window: INGRESS_DEDUP_WINDOW,
            num_replicas: settings.replicas,
            discard: DiscardPolicy::New,
            description: Some("sgd-hub ingress: events from adapters, until validated".into()),
            ..Default::default()
        },
        Config {
            name: EVENTS.into(),
            subjects: vec![subjects::EVENTS_ALL.into()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            duplicate_window: settings.dedup_window,
            num_replicas: settings.replicas,
            discard: DiscardPolicy::New,
            description: Some("sgd-hub log: valid, PII-free domain events; the source of truth".into()),
            ..Default::default()
        },
        Config {
            name: DLQ.into(),
            subjects: vec![subjects::DLQ_ALL.into()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            duplicate_window: settings.dedup_window,
            num_replicas: settings.replicas,
            allow_direct: true,
            description: Some("sgd-hub dead letters: refused events, redacted, with reasons".into()),
            ..Default::default()
        },
        Config {
            name: AUDIT.into(),
            subjects: vec![AUDIT_SUBJECTS.into()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: settings.replicas,
            deny_delete: true,
            deny_purge: true,
            allow_direct: true,
            description: Some("sgd-hub audit: every person-level read, allowed or refused".into()),
            ..Default::default()
        },
        Config {
            name: ROUTED.into(),
            subjects: vec![subjects::ROUTED_ALL.into()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            duplicate_window: settings.dedup_window,
            num_replicas: settings.replicas,
            max_age: settings.routed_max_age,
            description: Some("sgd-hub routed events: a copy for each principal an event concerns".into()),
            ..Default::default()
        },
        Config {
            name: PARKED.into(),
            subjects: vec![PARKED_SUBJECTS.into()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: settings.replicas,
            allow_direct: true,
            description: Some("sgd-hub parked webhook deliveries: every attempt failed; replayable".into()),
            ..Default::default()
        },
        Config {
            name: SUBSCRIPTIONS_KV.into(),
            subjects: vec!["$KV.SGD_SUBSCRIPTIONS.>".into()],
            retention: RetentionPolicy::Limits,
            storage: StorageType::File,
            num_replicas: settings.replicas,
            max_messages_per_subject: 1,
            discard: DiscardPolicy::New,
            deny_delete: true,
            allow_rollup: true,
            allow_direct: true,
            duplicate_window: Duration::from_secs(120),
            description: Some("sgd-hub webhook subscriptions (key-value)".into()),
            ..Default::default()
        },
    ]
}

/// Creates each stream, or updates it to the configuration when it exists.
pub async fn ensure(js: &jetstream::Context, settings: StreamSettings) -> Result<(), StreamSetupError> {
    for config in configs(settings) {
        let stream: &'static str = match config.name.as_str() {
            INGRESS => INGRESS,
            EVENTS => EVENTS,
            DLQ => DLQ,
            ROUTED => ROUTED,
            PARKED => PARKED,
            SUBSCRIPTIONS_KV => SUBSCRIPTIONS_KV,
            _ => AUDIT,
        };
        let error = |e: &dyn std::fmt::Display| StreamSetupError { stream, message: e.to_string() };
        match js.get_stream(stream).await {
            Ok(_) => {
                js.update_stream(&config).await.map_err(|e| error(&e))?;
            }
            Err(e) if matches!(e.kind(), jetstream::context::GetStreamErrorKind::JetStream(_)) => {
                js.create_stream(config).await.map_err(|e| error(&e))?;
            }
            Err(e) => return Err(error(&e)),
        }
        tracing::debug!(stream, "stream ready");
    }
    Ok(())
}
