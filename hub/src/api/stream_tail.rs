//! The newest messages of a stream (the DLQ, the audit stream), newest first.

use async_nats::jetstream;

use super::ApiError;

/// How many messages a filtered look reads at most before it stops.
pub const MAX_SCAN: usize = 10_000;

/// (messages in the stream, the newest `limit` as (sequence, payload), newest first).
pub async fn newest(
    js: &jetstream::Context,
    stream: &str,
    limit: usize,
) -> Result<(u64, Vec<(u64, bytes::Bytes)>), ApiError> {
    newest_matching(js, stream, limit, |_| true).await
}

/// Like [`newest`], only messages whose subject `admit`s, reading at most [`MAX_SCAN`].
pub async fn newest_matching(
    js: &jetstream::Context,
    stream: &str,
    limit: usize,
    admit: impl Fn(&str) -> bool,
) -> Result<(u64, Vec<(u64, bytes::Bytes)>), ApiError> {
    let mut stream = js.get_stream(stream).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let info = stream.info().await.map_err(|e| ApiError::unavailable(e.to_string()))?.clone();
    let (first, last) = (info.state.first_sequence.max(1), info.state.last_sequence);
    let mut out = Vec::new();
    let mut seq = last;
    let mut scanned = 0;
    while seq >= first && out.len() < limit && scanned < MAX_SCAN {
        scanned += 1;
        match stream.get_raw_message(seq).await {
            Ok(message) if admit(message.subject.as_str()) => out.push((seq, message.payload)),
            Ok(_) => {}
            Err(e) => tracing::debug!(seq, error = %e, "message gone"),
        }
        seq -= 1;
    }
    Ok((info.state.messages, out))
}

/// Checks a `limit` parameter: 1–1000, default 50.
pub fn limit(limit: Option<usize>) -> Result<usize, ApiError> {
    let limit = limit.unwrap_or(50);
    if (1..=1000).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request("limit must be 1–1000"))
    }
}
