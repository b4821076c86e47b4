//! Following the log or the dead-letter stream live: the filters `hub tail` and
//! `GET /api/v1/stream` share, where to start, and one readable summary per message.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    consumer::{pull, DeliverPolicy},
};
use bytes::Bytes;
use chrono::{DateTime, FixedOffset, Utc};
use futures::{Stream, StreamExt};
use serde::Serialize;
use sgd_schemas::{catalogue, principals, Envelope};

use crate::log::{dead_letter::DeadLetter, streams};

/// Why a tail could not start or went wrong.
#[derive(Debug, thiserror::Error)]
pub enum TailError {
    /// A filter names something that does not exist → fix the flag or query parameter.
    #[error("bad filter: {0}")]
    Filter(String),
    /// The stream could not be read → check NATS.
    #[error("cannot follow {stream}: {source}")]
    Nats {
        /// The stream.
        stream: &'static str,
        /// What NATS said.
        source: async_nats::Error,
    },
}

/// NATS failed while following `stream`.
fn nats<E: std::error::Error + Send + Sync + 'static>(stream: &'static str) -> impl Fn(E) -> TailError {
    move |e| TailError::Nats { stream, source: Box::new(e) }
}

/// What to follow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TailFilter {
    /// Only this area (`npo`, `sdk`, `plans`, `decision`, `deviation`, `video`, `hub`).
    pub area: Option<String>,
    /// Only this principal's events (its code, e.g. `1280`).
    pub principal: Option<String>,
    /// Only this event type (`se.sgd.npo.consent.given`).
    pub event_type: Option<String>,
    /// The dead-letter stream instead of the log.
    pub dlq: bool,
    /// The copies routed to this principal (`SGD_ROUTED`) instead of the log.
    pub routed_to: Option<String>,
}

/// Where to start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartAt {
    /// Only what arrives from now on.
    #[default]
    New,
    /// From this stream sequence.
    Sequence(u64),
    /// From this long ago.
    Since(Duration),
}

impl StartAt {
    /// From the two optional parameters; giving both is an error.
    pub fn from_parameters(from_seq: Option<u64>, since: Option<&str>) -> Result<Self, TailError> {
        match (from_seq, since) {
            (Some(_), Some(_)) => Err(TailError::Filter("give either a start sequence or a duration, not both".into())),
            (Some(seq), None) => Ok(Self::Sequence(seq.max(1))),
            (None, Some(text)) => humantime::parse_duration(text)
                .map(Self::Since)
                .map_err(|e| TailError::Filter(format!("since {text:?}: {e} (write e.g. 90s, 15m, 2h, 1d)"))),
            (None, None) => Ok(Self::New),
        }
    }

    fn deliver_policy(self) -> DeliverPolicy {
        match self {
            Self::New => DeliverPolicy::New,
            Self::Sequence(start_sequence) => DeliverPolicy::ByStartSequence { start_sequence },
            Self::Since(ago) => {
                let start = Utc::now() - chrono::Duration::from_std(ago).unwrap_or(chrono::Duration::zero());
                let nanos = start.timestamp_nanos_opt().unwrap_or_default() as i128;
                let start_time =
                    time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
                DeliverPolicy::ByStartTime { start_time }
            }
        }
    }
}

impl TailFilter {
    /// Checks every part names something that exists.
    pub fn check(&self) -> Result<(), TailError> {
        if let Some(area) = &self.area {
            if !catalogue::AREAS.contains(&area.as_str()) {
                return Err(TailError::Filter(format!(
                    "unknown area {area:?}; one of {}",
                    catalogue::AREAS.join(", ")
                )));
            }
        }
        if let Some(principal) = &self.principal {
            if !principals::is_known(principal) && principal != "unknown" {
                return Err(TailError::Filter(format!("{principal:?} is not one of the 34 principals' codes")));
            }
        }
        if let Some(event_type) = &self.event_type {
            if !catalogue::Catalogue::get().knows(event_type) {
                return Err(TailError::Filter(format!("unknown event type {event_type:?}")));
            }
            let type_area = catalogue::TypeName::parse(event_type).map(|t| t.area);
            if let (Some(area), Some(type_area)) = (&self.area, type_area) {
                if area != type_area {
                    return Err(TailError::Filter(format!("{event_type} is not an event of area {area}")));
                }
            }
        }
        Ok(())
    }

    /// The stream followed.
    pub fn stream(&self) -> &'static str {
        if self.dlq {
            streams::DLQ
        } else if self.routed_to.is_some() {
            streams::ROUTED
        } else {
            streams::EVENTS
        }
    }

    /// The subject filter the server applies (area and type of dead letters are filtered here,
    /// their subject names only the principal).
    pub fn subject(&self) -> String {
        let principal = self.principal.as_deref().unwrap_or("*");
        if self.dlq {
            return format!("sgd.dlq.{principal}.>");
        }
        if let Some(recipient) = &self.routed_to {
            return match (&self.event_type, &self.area) {
                (Some(event_type), _) => sgd_schemas::subjects::routed(recipient, event_type),
                (None, Some(area)) => format!("sgd.to.{recipient}.{area}.>"),
                (None, None) => format!("sgd.to.{recipient}.>"),
            };
        }
        match (&self.event_type, &self.area) {
            (Some(event_type), _) => sgd_schemas::subjects::events(principal, event_type),
            (None, Some(area)) => format!("sgd.events.{principal}.{area}.>"),
            (None, None) => format!("sgd.events.{principal}.>"),
        }
    }

    fn admits_dead_letter(&self, summary: &DeadLetterSummary) -> bool {
        let event_type = summary.event_type.as_deref();
        let area = event_type.and_then(catalogue::TypeName::parse).map(|t| t.area);
        self.event_type.as_deref().is_none_or(|t| Some(t) == event_type)
            && self.area.as_deref().is_none_or(|a| Some(a) == area)
    }
}

/// One log event, summarised (no data: the summary is safe for any role that may see usage).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EventSummary {
    /// Sequence in `SGD_EVENTS`.
    pub seq: u64,
    /// When it happened.
    pub time: DateTime<FixedOffset>,
    /// The principal's code.
    pub principal: String,
    /// The principal's name.
    pub principal_name: String,
    /// The area.
    pub area: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The log subject.
    pub subject: String,
    /// The event's `id`.
    pub id: String,
}

impl EventSummary {
    /// The summary of a log message.
    pub fn from_log(seq: u64, subject: &str, payload: &[u8]) -> Result<Self, serde_json::Error> {
        let envelope: Envelope = serde_json::from_slice(payload)?;
        Ok(Self {
            seq,
            time: envelope.time,
            principal_name: principal_name(&envelope.principal),
            area: envelope.area().to_string(),
            principal: envelope.principal,
            event_type: envelope.event_type,
            subject: subject.to_string(),
            id: envelope.id,
        })
    }

    /// One line for a terminal: time, principal, type, subject.
    pub fn line(&self) -> String {
        format!(
            "{:>8}  {}  {:<4} {:<14}  {:<40}  {}",
            self.seq,
            self.time.format("%Y-%m-%d %H:%M:%S%:z"),
            self.principal,
            self.principal_name,
            self.event_type,
            self.subject
        )
    }
}

/// One dead letter, summarised.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeadLetterSummary {
    /// Sequence in `SGD_DLQ`.
    pub seq: u64,
    /// When it was refused.
    pub received_at: DateTime<Utc>,
    /// The principal of its ingress subject, when it is one of the 34.
    pub principal: Option<String>,
    /// The reason code.
    pub reason: String,
    /// The subject it was published to.
    pub subject: String,
    /// Its type, when readable.
    pub event_type: Option<String>,
}

impl DeadLetterSummary {
    /// The summary of a dead letter.
    pub fn new(seq: u64, dead_letter: &DeadLetter) -> Self {
        let principal = sgd_schemas::subjects::parse_ingress(&dead_letter.subject)
            .map(|(p, _)| p)
            .filter(|p| principals::is_known(p))
            .map(str::to_string);
        Self {
            seq,
            received_at: dead_letter.received_at,
            principal,
            reason: dead_letter.reason.clone(),
            subject: dead_letter.subject.clone(),
            event_type: dead_letter.event_type.clone(),
        }
    }

    /// One line for a terminal.
    pub fn line(&self) -> String {
        format!(
            "{:>8}  {}  {:<4} {:<18}  {:<40}  {}",
            self.seq,
            self.received_at.format("%Y-%m-%d %H:%M:%S"),
            self.principal.as_deref().unwrap_or("?"),
            self.reason,
            self.event_type.as_deref().unwrap_or("-"),
            self.subject
        )
    }
}

fn principal_name(code: &str) -> String {
    principals::by_code(code).map(|p| p.name.to_string()).unwrap_or_else(|| "?".into())
}

/// One followed message: its summary and the raw body (the CloudEvent, or the dead letter JSON).
#[derive(Debug, Clone)]
pub enum TailItem {
    /// A log event.
    Event(EventSummary, Bytes),
    /// A dead letter.
    DeadLetter(DeadLetterSummary, Bytes),
}

impl TailItem {
    /// The stream sequence.
    pub fn seq(&self) -> u64 {
        match self {
            Self::Event(s, _) => s.seq,
            Self::DeadLetter(s, _) => s.seq,
        }
    }

    /// The terminal line.
    pub fn line(&self) -> String {
        match self {
            Self::Event(s, _) => s.line(),
            Self::DeadLetter(s, _) => s.line(),
        }
    }

    /// The raw body.
    pub fn raw(&self) -> &Bytes {
        match self {
            Self::Event(_, raw) | Self::DeadLetter(_, raw) => raw,
        }
    }
}

/// Follows the stream the filter names from `start`, with an ordered consumer (no state on the
/// server beyond the follow; it disappears when dropped). Unreadable messages are logged and
/// skipped, never end the follow.
pub async fn follow(
    js: &jetstream::Context,
    filter: &TailFilter,
    start: StartAt,
) -> Result<impl Stream<Item = Result<TailItem, TailError>> + Send + 'static, TailError> {
    filter.check()?;
    let stream_name = filter.stream();
    let stream = js.get_stream(stream_name).await.map_err(nats(stream_name))?;
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter.subject(),
            deliver_policy: start.deliver_policy(),
            description: Some("sgd-hub tail".into()),
            ..Default::default()
        })
        .await
        .map_err(nats(stream_name))?;
    let messages = consumer.messages().await.map_err(nats(stream_name))?;
    let filter = filter.clone();
    Ok(messages.filter_map(move |message| {
        let item = match message {
            Err(e) => Some(Err(nats(stream_name)(e))),
            Ok(message) => summarise(&filter, &message),
        };
        std::future::ready(item)
    }))
}

fn summarise(filter: &TailFilter, message: &jetstream::Message) -> Option<Result<TailItem, TailError>> {
    let seq = message.info().ok()?.stream_sequence;
    if filter.dlq {
        match serde_json::from_slice::<DeadLetter>(&message.payload) {
            Ok(dead_letter) => {
                let summary = DeadLetterSummary::new(seq, &dead_letter);
                filter.admits_dead_letter(&summary).then(|| Ok(TailItem::DeadLetter(summary, message.payload.clone())))
            }
            Err(e) => {
                tracing::warn!(seq, error = %e, "unreadable dead letter skipped");
                None
            }
        }
    } else {
        match EventSummary::from_log(seq, &message.subject, &message.payload) {
            Ok(summary) => Some(Ok(TailItem::Event(summary, message.payload.clone()))),
            Err(e) => {
                tracing::warn!(seq, error = %e, "unreadable log event skipped");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(area: Option<&str>, principal: Option<&str>, event_type: Option<&str>, dlq: bool) -> TailFilter {
        TailFilter {
            area: area.map(Into::into),
            principal: principal.map(Into::into),
            event_type: event_type.map(Into::into),
            dlq,
            routed_to: None,
        }
    }

    #[test]
    fn filters_become_subjects() {
        assert_eq!(filter(None, None, None, false).subject(), "sgd.events.*.>");
        assert_eq!(filter(Some("npo"), Some("1280"), None, false).subject(), "sgd.events.1280.npo.>");
        assert_eq!(
            filter(None, None, Some("se.sgd.npo.consent.given"), false).subject(),
            "sgd.events.*.npo.consent.given"
        );
        assert_eq!(filter(Some("npo"), None, None, true).subject(), "sgd.dlq.*.>");
        assert_eq!(filter(None, Some("1280"), None, true).subject(), "sgd.dlq.1280.>");
        let routed = TailFilter { routed_to: Some("1283".into()), ..filter(Some("decision"), None, None, false) };
        assert_eq!((routed.stream(), routed.subject().as_str()), (streams::ROUTED, "sgd.to.1283.decision.>"));
    }

    #[test]
    fn filters_naming_nothing_are_refused_with_the_reason() {
        assert!(filter(Some("npx"), None, None, false).check().unwrap_err().to_string().contains("unknown area"));
        assert!(filter(None, Some("9999"), None, false).check().unwrap_err().to_string().contains("34"));
        assert!(filter(None, None, Some("se.sgd.npo.nope"), false).check().is_err());
        assert!(filter(Some("sdk"), None, Some("se.sgd.npo.consent.given"), false).check().is_err());
        assert!(filter(Some("npo"), Some("1280"), Some("se.sgd.npo.consent.given"), false).check().is_ok());
    }

    #[test]
    fn start_positions_parse_and_refuse_nonsense() {
        assert_eq!(StartAt::from_parameters(None, None).unwrap(), StartAt::New);
        assert_eq!(StartAt::from_parameters(Some(0), None).unwrap(), StartAt::Sequence(1));
        assert_eq!(StartAt::from_parameters(None, Some("15m")).unwrap(), StartAt::Since(Duration::from_secs(900)));
        assert!(StartAt::from_parameters(None, Some("soon")).is_err());
        assert!(StartAt::from_parameters(Some(3), Some("1h")).is_err());
    }
}
