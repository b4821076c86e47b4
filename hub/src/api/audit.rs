//! `GET /api/v1/audit`: the newest audit records of person-level reads, for operators.

use axum::{
    extract::{Query, State},
    Json,
};
use serde::{Deserialize, Serialize};

use super::{auth::Caller, persons::AuditRecord, ApiError, ApiState};
use crate::{log::streams, tokens::Role};

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// How many, newest first: 1–1000, default 50.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

/// One item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditItem {
    /// Sequence in `SGD_AUDIT`.
    pub seq: u64,
    /// The record.
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// The newest audit records and how many the stream holds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AuditAnswer {
    /// Records in the stream.
    pub total: u64,
    /// The newest, newest first.
    pub items: Vec<AuditItem>,
}

#[utoipa::path(get, path = "/api/v1/audit", tag = "operations", params(AuditQuery), responses((status = 200, description = "The newest audit records, newest first", body = AuditAnswer), (status = 400, description = "Bad limit", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody)))]
/// The newest records of the audit log (each read of a person's timeline), newest first.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditAnswer>, ApiError> {
    caller.require(&[Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = super::stream_tail::limit(query.limit)?;
    let (total, messages) = super::stream_tail::newest(&state.js, streams::AUDIT, limit).await?;
    let items = messages
        .into_iter()
        .filter_map(|(seq, payload)| serde_json::from_slice(&payload).ok().map(|record| AuditItem { seq, record }))
        .collect();
    Ok(Json(AuditAnswer { total, items }))
}
