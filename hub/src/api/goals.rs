//! `GET /api/v1/goals`: where Skåne stands on each stated goal.

use axum::{
    extract::{Query, State},
    Json,
};
use serde::{Deserialize, Serialize};

use super::{as_of, auth::Caller, ApiError, ApiState};
use crate::{
    projections::goals::{goals, Goal, PublishersByType},
    tokens::Role,
};

/// Query parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GoalsQuery {
    /// A day (its end in Sweden) or an RFC 3339 moment; default now.
    pub as_of: Option<String>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct GoalsAnswer {
    /// The moment the goals are computed for.
    pub as_of: String,
    /// Every goal.
    pub goals: Vec<Goal>,
}

/// Which principals published each type up to `day`, from the usage counters.
pub async fn publishers_until(state: &ApiState, day: chrono::NaiveDate) -> Result<PublishersByType, ApiError> {
    let model = state.model.clone();
    let cells = tokio::task::spawn_blocking(move || model.usage_between(None, Some(day)))
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))??;
    let mut publishers = PublishersByType::new();
    for cell in cells {
        publishers.entry(cell.event_type).or_default().insert(cell.principal);
    }
    Ok(publishers)
}

/// The handler.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<GoalsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<GoalsAnswer>, ApiError> {
    caller.require(&[Role::Analyst, Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let moment = as_of::parse(query.as_of.as_deref())?;
    let publishers = publishers_until(&state, as_of::swedish_day(moment)).await?;
    let views = state.views.read().await;
    let goals = goals(&views, &publishers, moment, &state.settings.goals, &state.settings.followup);
    Ok(Json(GoalsAnswer { as_of: moment.to_rfc3339(), goals }))
}
