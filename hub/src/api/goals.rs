//! `GET /api/v1/goals`: where Skåne stands on each stated goal.

use axum::{
    extract::{Query, State},
    Json,
};
use serde::{Deserialize, Serialize};

use super::{as_of, auth::Caller, ApiError, ApiState};
use crate::{
    projections::goals::{goals, Goal},
    tokens::Role,
};

/// Query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct GoalsQuery {
    /// A day (its end in Sweden) or an RFC 3339 moment; default now.
    #[param(value_type = Option<super::params::AsOf>)]
    pub as_of: Option<String>,
}

/// The stated goals as of a moment.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct GoalsAnswer {
    /// The moment the goals are computed for.
    pub as_of: String,
    /// Every goal.
    pub goals: Vec<PublishedGoal>,
}

/// A goal as published: small counts about persons suppressed.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PublishedGoal {
    /// Stable id.
    #[schema(value_type = String)]
    pub id: &'static str,
    /// The area.
    #[schema(value_type = String)]
    pub area: &'static str,
    /// What it measures.
    #[schema(value_type = String)]
    pub title: &'static str,
    /// How many meet it (`null` when suppressed).
    pub numerator: Option<u64>,
    /// Out of how many (`null` when suppressed).
    pub denominator: Option<u64>,
    /// The share (`null` when suppressed or nothing is due).
    pub value: Option<f64>,
    /// The target.
    pub target: f64,
    /// Present and true when counts were suppressed.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// Suppresses a goal's counts about persons when it or its complement is below `threshold`.
pub fn publish(goal: Goal, threshold: u64) -> PublishedGoal {
    let hide = goal.about_persons && crate::privacy::hide_share(goal.numerator, goal.denominator, threshold);
    let small_denominator = goal.about_persons && goal.denominator > 0 && goal.denominator < threshold;
    PublishedGoal {
        id: goal.id,
        area: goal.area,
        title: goal.title,
        numerator: (!hide).then_some(goal.numerator),
        denominator: (!small_denominator).then_some(goal.denominator),
        value: if hide { None } else { goal.value },
        target: goal.target,
        suppressed: hide || small_denominator,
    }
}

#[utoipa::path(get, path = "/api/v1/goals", tag = "statistics", params(GoalsQuery), responses((status = 200, description = "Each stated goal", body = GoalsAnswer), (status = 400, description = "Bad as_of", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody)))]
/// Each stated goal and how far it is reached, as of a moment.
pub async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<GoalsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<GoalsAnswer>, ApiError> {
    caller.require(&[Role::Analyst, Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let moment = as_of::parse(query.as_of.as_deref())?;
    let settings = &state.settings;
    let goals = super::with_views(&state, |views| {
        let publishers = views.publishers.until(as_of::swedish_day(moment));
        goals(views, &publishers, moment, &settings.goals)
            .into_iter()
            .map(|g| publish(g, settings.privacy_threshold))
            .collect()
    })
    .await;
    Ok(Json(GoalsAnswer { as_of: moment.to_rfc3339(), goals }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn goal(numerator: u64, denominator: u64, about_persons: bool) -> Goal {
        Goal {
            id: "x",
            area: "plans",
            title: "x",
            numerator,
            denominator,
            value: Some(numerator as f64 / denominator as f64),
            target: 1.0,
            about_persons,
        }
    }

    #[test]
    fn small_shares_about_persons_are_suppressed() {
        assert_eq!(publish(goal(3, 20, true), 5).numerator, None);
        assert_eq!(publish(goal(17, 20, true), 5).value, None); // its complement is 3
        assert!(publish(goal(2, 3, true), 5).denominator.is_none());
        let shown = publish(goal(10, 20, true), 5);
        assert_eq!((shown.numerator, shown.denominator, shown.suppressed), (Some(10), Some(20), false));
        // principals are not persons
        assert_eq!(publish(goal(1, 34, false), 5).numerator, Some(1));
    }
}
