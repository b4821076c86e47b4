//! `POST /api/v1/admin/rebuild` and `GET /api/v1/admin/rebuild`: rebuild the read model from the
//! log beside the served one (the API keeps answering from it), then swap, or compare (`check`).

use axum::{extract::State, http::StatusCode, Json};
use serde::{Deserialize, Serialize};

use super::{auth::Caller, ApiError, ApiState};
use crate::{
    projection::rebuild::{RebuildError, RebuildReport},
    tokens::Role,
};

/// What to run.
#[derive(Debug, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RebuildRequest {
    /// Compare a fresh rebuild with the served model instead of swapping.
    #[serde(default)]
    pub check: bool,
}

#[utoipa::path(post, path = "/api/v1/admin/rebuild", tag = "operations", request_body = RebuildRequest, responses((status = 202, description = "Started; follow it with GET", body = RebuildReport), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 409, description = "A rebuild is running, or this hub does not project", body = super::ErrorBody), (status = 413, description = "Body too large", body = super::ErrorBody)))]
/// Starts a rebuild.
pub async fn start(
    State(state): State<ApiState>,
    caller: Caller,
    body: Result<Json<RebuildRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<RebuildReport>), ApiError> {
    caller.require(&[Role::Operator])?;
    let Json(request) = body.map_err(ApiError::from)?;
    let rebuilder = rebuilder(&state)?;
    match rebuilder.start(request.check) {
        Ok(report) => Ok((StatusCode::ACCEPTED, Json(report))),
        Err(e @ RebuildError::Running) => Err(conflict(e.to_string())),
        Err(e) => Err(ApiError::unavailable(e.to_string())),
    }
}

#[utoipa::path(get, path = "/api/v1/admin/rebuild", tag = "operations", responses((status = 200, description = "The running or last rebuild", body = RebuildReport), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody), (status = 409, description = "This hub does not project", body = super::ErrorBody)))]
/// The running or last rebuild's progress.
pub async fn progress(State(state): State<ApiState>, caller: Caller) -> Result<Json<RebuildReport>, ApiError> {
    caller.require(&[Role::Operator])?;
    Ok(Json(rebuilder(&state)?.progress.report()))
}

fn rebuilder(state: &ApiState) -> Result<&std::sync::Arc<crate::projection::rebuild::Rebuilder>, ApiError> {
    state.rebuilder.as_ref().ok_or_else(|| {
        conflict("this hub process does not project (started with --no-projector); ask one that does".into())
    })
}

fn conflict(message: String) -> ApiError {
    ApiError { status: StatusCode::CONFLICT, code: "conflict", message, details: None }
}
