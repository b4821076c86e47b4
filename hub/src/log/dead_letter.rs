//! What the dead-letter stream `SGD_DLQ` holds: a refused event's reasons, where it came from and
//! its body with every personal identity number redacted.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sgd_schemas::{Problem, Rejection};

/// Header on every dead letter naming its reason code.
pub const REASON_HEADER: &str = "Sgd-Reason";

/// Publishes `dead_letter` to `SGD_DLQ` on `sgd.dlq.<principal>.<reason>` (`unknown` for no
/// trustworthy principal), with its reason as a header and, when given, a `Nats-Msg-Id`;
/// returns the pending acknowledgement.
pub async fn publish(
    js: &async_nats::jetstream::Context,
    principal: Option<&str>,
    dead_letter: &DeadLetter,
    msg_id: Option<&str>,
) -> Result<async_nats::jetstream::context::PublishAckFuture, async_nats::jetstream::context::PublishError> {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(msg_id) = msg_id {
        headers.insert(crate::log::streams::MSG_ID_HEADER, msg_id);
    }
    headers.insert(REASON_HEADER, dead_letter.reason.as_str());
    js.publish_with_headers(
        sgd_schemas::subjects::dlq(principal, &dead_letter.reason),
        headers,
        dead_letter.to_json().into(),
    )
    .await
}

/// One refused event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// The most severe reason: `pii`, `too_large`, `malformed`, `unknown_type`,
    /// `unknown_version`, `principal_mismatch`, `area_mismatch`, `envelope` or `schema`.
    pub reason: String,
    /// Every problem, each with a JSON path and a message a person can act on.
    pub problems: Vec<ProblemRecord>,
    /// The subject the event was published to.
    pub subject: String,
    /// When the validator refused it.
    pub received_at: DateTime<Utc>,
    /// Its sequence in `SGD_INGRESS`, when it came over NATS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_seq: Option<u64>,
    /// The event's `id`, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    /// The event's `type`, when readable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    /// The body as received, with personal identity numbers redacted.
    pub body: String,
}

/// A problem as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProblemRecord {
    /// Reason code.
    pub reason: String,
    /// RFC 6901 JSON pointer.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl From<&Problem> for ProblemRecord {
    fn from(p: &Problem) -> Self {
        Self { reason: p.reason.as_str().into(), path: p.path.clone(), message: p.message.clone() }
    }
}

impl DeadLetter {
    /// The dead letter of a rejection.
    pub fn from_rejection(rejection: &Rejection, subject: &str, ingress_seq: Option<u64>) -> Self {
        Self {
            reason: rejection.reason().as_str().into(),
            problems: rejection.problems.iter().map(ProblemRecord::from).collect(),
            // an ingress subject is the publisher's choice and may hold anything, a number too
            subject: sgd_schemas::pii::redact(subject),
            received_at: Utc::now(),
            ingress_seq,
            event_id: rejection.event_id.clone(),
            event_type: rejection.event_type.clone(),
            body: rejection.redacted_body.clone(),
        }
    }

    /// The JSON bytes published.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}
