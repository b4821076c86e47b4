//! `GET /api/v1/followup/summary` and `GET /api/v1/followup/open`: the follow-up rules.

use axum::{
    extract::{Query, State},
    Json,
};
use serde::{Deserialize, Serialize};
use sgd_schemas::principals;

use super::{as_of, auth::Caller, ApiError, ApiState};
use crate::{
    projections::followup::{open_cases, summary, FollowupLimits, OpenCase, PrincipalFollowup, RULES},
    tokens::Role,
};

/// Query of the summary.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SummaryQuery {
    /// A day (its end in Sweden) or an RFC 3339 moment; default now.
    #[param(value_type = Option<super::params::AsOf>)]
    pub as_of: Option<String>,
}

/// Follow-up figures per principal as of a moment, with the limits applied.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SummaryAnswer {
    /// The moment.
    pub as_of: String,
    /// The limits applied.
    pub limits: FollowupLimits,
    /// Every principal.
    pub principals: Vec<PrincipalFollowup>,
}

#[utoipa::path(get, path = "/api/v1/followup/summary", tag = "follow-up", params(SummaryQuery), responses((status = 200, description = "Follow-up figures per principal", body = SummaryAnswer), (status = 400, description = "Bad as_of", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody)))]
/// Follow-up figures per principal, as of a moment.
pub async fn summary_handler(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<SummaryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SummaryAnswer>, ApiError> {
    caller.require(&[Role::Analyst, Role::Operator, Role::Coordinator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let moment = as_of::parse(query.as_of.as_deref())?;
    let principals = super::with_views(&state, |views| {
        let mut principals = summary(views, moment);
        suppress_summary(&mut principals, state.settings.privacy_threshold);
        principals
    })
    .await;
    Ok(Json(SummaryAnswer { as_of: moment.to_rfc3339(), limits: state.settings.followup, principals }))
}

/// Query of the open cases.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OpenQuery {
    /// Only this rule.
    #[param(value_type = Option<super::params::RuleName>)]
    pub rule: Option<String>,
    /// Only this principal.
    #[param(value_type = Option<super::params::PrincipalCode>)]
    pub principal: Option<String>,
    /// A day (its end in Sweden) or an RFC 3339 moment; default now.
    #[param(value_type = Option<super::params::AsOf>)]
    pub as_of: Option<String>,
}

/// The open cases.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct OpenAnswer {
    /// The moment.
    pub as_of: String,
    /// How many.
    pub total: usize,
    /// The cases, by rule, principal and case id.
    pub cases: Vec<OpenCase>,
}

#[utoipa::path(get, path = "/api/v1/followup/open", tag = "follow-up", params(OpenQuery), responses((status = 200, description = "The open cases, by rule, principal and case id", body = OpenAnswer), (status = 400, description = "Unknown rule or principal, bad as_of", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody)))]
/// The open follow-up cases, by rule, principal and case id, as of a moment.
pub async fn open_handler(
    State(state): State<ApiState>,
    caller: Caller,
    query: Result<Query<OpenQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<OpenAnswer>, ApiError> {
    caller.require(&[Role::Analyst, Role::Operator, Role::Coordinator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    if let Some(rule) = &query.rule {
        if !RULES.contains(&rule.as_str()) {
            return Err(ApiError::bad_request(format!("unknown rule {rule:?}; rules: {}", RULES.join(", "))));
        }
    }
    if let Some(p) = &query.principal {
        if !principals::is_known(p) {
            return Err(ApiError::bad_request(format!("{p:?} is not the code of one of the 34 principals")));
        }
    }
    let moment = as_of::parse(query.as_of.as_deref())?;
    let settings = state.settings.clone();
    let (rule, principal) = (query.rule, query.principal);
    let cases: Vec<OpenCase> = super::over_views(&state, move |views| {
        open_cases(views, moment, &settings.followup)
            .into_iter()
            .filter(|c| rule.as_deref().is_none_or(|r| r == c.rule))
            .filter(|c| principal.as_deref().is_none_or(|p| p == c.principal))
            .collect()
    })
    .await?;
    Ok(Json(OpenAnswer { as_of: moment.to_rfc3339(), total: cases.len(), cases }))
}

/// Suppresses small counts in the summary: each rule's column across principals is one published
/// total (the open cases), and a principal's discharge figures rest on its episodes.
pub fn suppress_summary(principals: &mut [PrincipalFollowup], threshold: u64) {
    for rule in RULES {
        let cells: Vec<(u64, bool)> =
            principals.iter().map(|p| (p.cases.get(rule).copied().flatten().unwrap_or(0), true)).collect();
        for (p, hide) in principals.iter_mut().zip(crate::privacy::suppress(&cells, threshold)) {
            if hide {
                p.cases.insert(rule, None);
                p.suppressed = true;
            }
        }
    }
    let episodes: Vec<(u64, bool)> = principals.iter().map(|p| (p.discharge_episodes.unwrap_or(0), true)).collect();
    for (p, hide) in principals.iter_mut().zip(crate::privacy::suppress(&episodes, threshold)) {
        if hide {
            p.discharge_episodes = None;
            p.ready_days_mean = None;
            p.ready_day0_share = None;
            p.days_beyond_threshold = None;
            p.suppressed = true;
        }
    }
}
