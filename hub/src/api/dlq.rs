//! `GET /api/v1/dlq`: the newest dead letters, for operators.

use axum::{
    extract::{Query, State},
    Json,
};
use serde::{Deserialize, Serialize};

use super::{auth::Caller, ApiError, ApiState};
use crate::{dead_letter::DeadLetter, streams, tokens::Role};

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DlqQuery {
    /// How many, newest first: 1–1000, default 50.
    pub limit: Option<usize>,
}

/// One item: the dead letter and its sequence in `SGD_DLQ`.
#[derive(Debug, Serialize)]
pub struct DlqItem {
    /// Sequence in `SGD_DLQ`.
    pub seq: u64,
    /// The dead letter.
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct DlqAnswer {
    /// How many dead letters the stream holds.
    pub total: u64,
    /// The newest `limit`, newest first.
    pub items: Vec<DlqItem>,
}

/// The handler.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<DlqQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DlqAnswer>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=1000).contains(&limit) {
        return Err(ApiError::bad_request("limit must be 1–1000"));
    }
    let mut stream = state.js.get_stream(streams::DLQ).await.map_err(|e| ApiError::unavailable(e.to_string()))?;
    let info = stream.info().await.map_err(|e| ApiError::unavailable(e.to_string()))?.clone();
    let (first, last) = (info.state.first_sequence, info.state.last_sequence);
    let mut items = Vec::new();
    let mut seq = last;
    while seq >= first.max(1) && items.len() < limit {
        match stream.get_raw_message(seq).await {
            Ok(message) => match serde_json::from_slice::<DeadLetter>(&message.payload) {
                Ok(dead_letter) => items.push(DlqItem { seq, dead_letter }),
                Err(e) => tracing::warn!(seq, error = %e, "unreadable dead letter"),
            },
            Err(e) => tracing::debug!(seq, error = %e, "dead letter gone"),
        }
        seq -= 1;
    }
    Ok(Json(DlqAnswer { total: info.state.messages, items }))
}
