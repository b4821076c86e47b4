//! Replaying dead letters: a refused event, after a fix (a new schema version deployed, a limit
//! raised, a principal's catalogue corrected), goes through validation again. One that passes is
//! published to the log exactly as the validator publishes a new event (same `Nats-Msg-Id`, so it
//! lands once) and its dead letter is deleted; one that fails again stays, with the new reasons
//! reported.

use async_nats::jetstream::{self, consumer::pull};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use sgd_schemas::{validate, RejectReason, ValidationContext};

use crate::{
    log::{dead_letter::DeadLetter, streams, validator},
    metrics::Metrics,
};

/// What happened to one dead letter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// It passed and is in the log now; its dead letter was deleted.
    Logged,
    /// It passed, and the log already held it (published before within the duplicate window);
    /// its dead letter was deleted.
    AlreadyLogged,
    /// It failed again and stays in the DLQ.
    Refused,
    /// Its stored body is not the event as sent (personal identity numbers were redacted, or it
    /// was cut at the size limit), so it cannot be replayed: the sender must send it again.
    NotReplayable,
    /// No dead letter has this sequence.
    NotFound,
}

/// One dead letter's replay.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReplayResult {
    /// Its sequence in `SGD_DLQ`.
    pub seq: u64,
    /// What happened.
    pub outcome: ReplayOutcome,
    /// Why it failed again or cannot be replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The new problems, when it failed again.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<crate::log::dead_letter::ProblemRecord>,
}

/// Why a replay could not run.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// NATS failed → nothing after the failing dead letter was touched; run it again.
    #[error("replay: {0}")]
    Nats(#[source] async_nats::Error),
    /// The reason named is not a reject reason code.
    #[error("{0:?} is not a reason code; one of pii, too_large, malformed, unknown_type, unknown_version, principal_mismatch, area_mismatch, envelope, schema")]
    UnknownReason(String),
}

/// NATS failed: `error`, its source kept.
fn nats(error: impl std::error::Error + Send + Sync + 'static) -> ReplayError {
    ReplayError::Nats(Box::new(error))
}

impl DeadLetter {
    /// Whether the stored body is the event as sent: not when personal identity numbers were
    /// redacted from it, nor when it was too large and its copy was cut (copies of oversized
    /// events keep their first 4,096 bytes).
    pub fn replayable(&self) -> bool {
        let refused_for = |reason: RejectReason| {
            self.reason == reason.as_str() || self.problems.iter().any(|p| p.reason == reason.as_str())
        };
        let cut = refused_for(RejectReason::TooLarge) && self.body.len() >= 4090;
        !refused_for(RejectReason::Pii) && !cut
    }
}

/// Replays the dead letters with these sequences, in order.
pub async fn replay_sequences(
    js: &jetstream::Context,
    sequences: &[u64],
    max_event_bytes: usize,
    metrics: &Metrics,
) -> Result<Vec<ReplayResult>, ReplayError> {
    let stream = js.get_stream(streams::DLQ).await.map_err(nats)?;
    let mut results = Vec::with_capacity(sequences.len());
    for &seq in sequences {
        let result = match stream.get_raw_message(seq).await {
            Ok(message) => replay_one(js, &stream, seq, &message.payload, max_event_bytes, metrics).await?,
            Err(e) if e.kind() == jetstream::stream::RawMessageErrorKind::NoMessageFound => {
                ReplayResult { seq, outcome: ReplayOutcome::NotFound, reason: None, problems: vec![] }
            }
            Err(e) => return Err(nats(e)),
        };
        results.push(result);
    }
    Ok(results)
}

/// Replays every dead letter refused for `reason` (up to `limit` of them, oldest first); returns
/// the results and whether more were left.
pub async fn replay_reason(
    js: &jetstream::Context,
    reason: &str,
    limit: usize,
    max_event_bytes: usize,
    metrics: &Metrics,
) -> Result<(Vec<ReplayResult>, bool), ReplayError> {
    if !RejectReason::ALL.iter().any(|r| r.as_str() == reason) {
        return Err(ReplayError::UnknownReason(reason.to_string()));
    }
    let mut stream = js.get_stream(streams::DLQ).await.map_err(nats)?;
    let info = stream.info().await.map_err(nats)?;
    let last = info.state.last_sequence;
    let mut counts = stream.info_with_subjects(format!("sgd.dlq.*.{reason}")).await.map_err(nats)?;
    let mut pending = 0;
    while let Some((_, count)) = counts.try_next().await.map_err(nats)? {
        pending += count;
    }
    if pending == 0 {
        return Ok((vec![], false));
    }
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("sgd.dlq.*.{reason}"),
            description: Some("sgd-hub dlq replay".into()),
            ..Default::default()
        })
        .await
        .map_err(nats)?;
    let mut messages = consumer.messages().await.map_err(nats)?;
    let mut results = Vec::new();
    let mut more = false;
    while let Ok(Some(message)) = tokio::time::timeout(std::time::Duration::from_secs(2), messages.next()).await {
        let message = message.map_err(nats)?;
        let Ok(info) = message.info() else { continue };
        let seq = info.stream_sequence;
        if seq > last {
            break;
        }
        if results.len() == limit {
            more = true;
            break;
        }
        results.push(replay_one(js, &stream, seq, &message.payload, max_event_bytes, metrics).await?);
        if info.pending == 0 {
            break;
        }
    }
    Ok((results, more))
}

async fn replay_one(
    js: &jetstream::Context,
    stream: &jetstream::stream::Stream,
    seq: u64,
    payload: &[u8],
    max_event_bytes: usize,
    metrics: &Metrics,
) -> Result<ReplayResult, ReplayError> {
    let result = |outcome, reason, problems| ReplayResult { seq, outcome, reason, problems };
    let dead_letter: DeadLetter = match serde_json::from_slice(payload) {
        Ok(dead_letter) => dead_letter,
        Err(e) => {
            let reason = format!("the dead letter itself is unreadable: {e}");
            return Ok(result(ReplayOutcome::NotReplayable, Some(reason), vec![]));
        }
    };
    if !dead_letter.replayable() {
        let reason = format!(
            "refused for {}: the stored body is redacted or cut, so the sender must send the event again",
            dead_letter.reason
        );
        return Ok(result(ReplayOutcome::NotReplayable, Some(reason), vec![]));
    }
    let ctx = ValidationContext::from_ingress_subject(&dead_letter.subject, max_event_bytes);
    let body = bytes::Bytes::from(dead_letter.body.into_bytes());
    match validate(&body, &ctx) {
        Ok(event) => {
            let ack = validator::publish_valid(js, event, body, metrics).await.map_err(nats)?.await.map_err(nats)?;
            stream.delete_message(seq).await.map_err(nats)?;
            let outcome = if ack.duplicate { ReplayOutcome::AlreadyLogged } else { ReplayOutcome::Logged };
            tracing::info!(seq, ?outcome, "dead letter replayed");
            Ok(result(outcome, None, vec![]))
        }
        Err(rejection) => Ok(result(
            ReplayOutcome::Refused,
            Some(rejection.reason().as_str().to_string()),
            rejection.problems.iter().map(Into::into).collect(),
        )),
    }
}

/// Dead letters in `SGD_DLQ` by reason, counted by JetStream per subject (no message is read).
/// Every reason code is present, at zero when none.
pub async fn count_by_reason(js: &jetstream::Context) -> Result<std::collections::BTreeMap<String, u64>, ReplayError> {
    let stream = js.get_stream(streams::DLQ).await.map_err(nats)?;
    let mut counts: std::collections::BTreeMap<String, u64> =
        RejectReason::ALL.iter().map(|r| (r.as_str().to_string(), 0)).collect();
    let mut subjects = stream.info_with_subjects("sgd.dlq.>").await.map_err(nats)?;
    while let Some((subject, count)) = subjects.try_next().await.map_err(nats)? {
        let reason = sgd_schemas::subjects::parse_dlq(&subject).map(|(_, r)| r).unwrap_or("unknown");
        *counts.entry(reason.to_string()).or_default() += count as u64;
    }
    Ok(counts)
}
