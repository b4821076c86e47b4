//! `GET /api/v1/dlq`: the newest dead letters, for operators.

use axum::{
    extract::{Query, State},
    Json,
};
use serde::{Deserialize, Serialize};

use super::{auth::Caller, ApiError, ApiState};
use crate::{dead_letter::DeadLetter, streams, tokens::Role};

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DlqQuery {
    /// How many, newest first: 1–1000, default 50.
    pub limit: Option<usize>,
}

/// One item: the dead letter and its sequence in `SGD_DLQ`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DlqItem {
    /// Sequence in `SGD_DLQ`.
    pub seq: u64,
    /// The dead letter.
    #[serde(flatten)]
    pub dead_letter: DeadLetter,
}

/// The answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DlqAnswer {
    /// How many dead letters the stream holds.
    pub total: u64,
    /// The newest `limit`, newest first.
    pub items: Vec<DlqItem>,
}

#[utoipa::path(get, path = "/api/v1/dlq", tag = "operations", params(DlqQuery), responses((status = 200, description = "The newest dead letters, newest first", body = DlqAnswer), (status = 400, description = "Bad limit", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 503, description = "NATS unavailable", body = super::ErrorBody)))]
/// The handler.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<DlqQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DlqAnswer>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = super::stream_tail::limit(query.limit)?;
    let (total, messages) = super::stream_tail::newest(&state.js, streams::DLQ, limit).await?;
    let mut items = Vec::new();
    for (seq, payload) in messages {
        match serde_json::from_slice::<DeadLetter>(&payload) {
            Ok(dead_letter) => items.push(DlqItem { seq, dead_letter }),
            Err(e) => tracing::warn!(seq, error = %e, "unreadable dead letter"),
        }
    }
    Ok(Json(DlqAnswer { total, items }))
}
