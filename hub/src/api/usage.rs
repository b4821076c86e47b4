//! `GET /api/v1/usage`: event counts per bucket (day or month) × area × type × principal.

use std::collections::BTreeMap;

use axum::{
    extract::{Query, State},
    http::{header, HeaderMap},
    response::{IntoResponse, Response},
    Json,
};
use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use sgd_schemas::{catalogue, principals};

use super::{auth::Caller, ApiError, ApiState};
use crate::tokens::Role;

/// Query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    /// Only this area.
    #[param(value_type = Option<super::params::AreaName>)]
    pub area: Option<String>,
    /// Only this event type.
    #[serde(rename = "type")]
    #[param(rename = "type", value_type = Option<super::params::EventTypeName>)]
    pub event_type: Option<String>,
    /// Only this principal.
    #[param(value_type = Option<super::params::PrincipalCode>)]
    pub principal: Option<String>,
    /// First day (inclusive), `YYYY-MM-DD`.
    #[param(value_type = Option<String>, format = Date)]
    pub from: Option<NaiveDate>,
    /// Last day (inclusive), `YYYY-MM-DD`; before `from`, the range holds no day and no row.
    #[param(value_type = Option<String>, format = Date)]
    pub to: Option<NaiveDate>,
    /// `day` (default) or `month`.
    pub bucket: Option<Bucket>,
    /// `json` (default) or `csv` (as `Accept: text/csv`).
    pub format: Option<super::params::Format>,
}

/// How usage is counted over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    /// Per day, `YYYY-MM-DD`.
    Day,
    /// Per month, `YYYY-MM`.
    Month,
}

/// One row of the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct UsageRow {
    /// `YYYY-MM-DD` or `YYYY-MM`.
    pub bucket: String,
    /// The area.
    pub area: String,
    /// The event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The principal code.
    pub principal: String,
    /// How many events (`null` when suppressed).
    pub count: Option<u64>,
    /// Present and true when the count is suppressed (a small count about persons, or the cell
    /// that would let one be computed back from the total).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub suppressed: bool,
}

/// Usage rows as JSON, with their total.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UsageAnswer {
    /// Sum of the counts over the rows, suppressed ones included.
    pub total: u64,
    /// The rows, by bucket, area, type, principal.
    pub rows: Vec<UsageRow>,
}

#[utoipa::path(get, path = "/api/v1/usage", tag = "statistics", params(UsageQuery), responses((status = 200, description = "Usage per bucket × area × type × principal (CSV with format=csv or Accept: text/csv; header bucket,area,type,principal,count)", content((UsageAnswer = "application/json"), (String = "text/csv"))), (status = 400, description = "A parameter is invalid", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody)))]
/// Event counts per day or month, area, type and principal, as JSON or CSV.
pub async fn usage(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<UsageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Analyst, Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let by_month = query.bucket == Some(Bucket::Month);
    if let Some(area) = &query.area {
        if !catalogue::AREAS.contains(&area.as_str()) {
            return Err(ApiError::bad_request(format!(
                "unknown area {area:?}; areas: {}",
                catalogue::AREAS.join(", ")
            )));
        }
    }
    if let Some(t) = &query.event_type {
        if !catalogue::Catalogue::get().knows(t) {
            return Err(ApiError::bad_request(format!("unknown event type {t:?}")));
        }
    }
    if let Some(p) = &query.principal {
        if !principals::is_known(p) {
            return Err(ApiError::bad_request(format!("{p:?} is not the code of one of the 34 principals")));
        }
    }
    let csv = wants_csv(query.format, &headers);

    let (from, to) = (query.from, query.to);
    // `to` before `from` is a range without days: no rows (not an error, which no schema could
    // describe).
    let empty = matches!((from, to), (Some(from), Some(to)) if from > to);
    let cells = if empty {
        Vec::new()
    } else {
        super::over_views(&state, move |views| crate::projections::usage::cells_between(&views.usage, from, to)).await?
    };
    let mut rows: BTreeMap<(String, String, String, String), u64> = BTreeMap::new();
    for cell in cells {
        let area = catalogue::TypeName::parse(&cell.event_type).map(|t| t.area).unwrap_or("unknown");
        if query.area.as_deref().is_some_and(|a| a != area)
            || query.event_type.as_deref().is_some_and(|t| t != cell.event_type)
            || query.principal.as_deref().is_some_and(|p| p != cell.principal)
        {
            continue;
        }
        let bucket = if by_month { cell.day.format("%Y-%m").to_string() } else { cell.day.to_string() };
        *rows.entry((bucket, area.to_string(), cell.event_type, cell.principal)).or_default() += cell.count;
    }
    let total = rows.values().sum();
    let cells: Vec<(u64, bool)> = rows
        .iter()
        .map(|((_, _, event_type, _), count)| (*count, crate::privacy::is_person_level(event_type)))
        .collect();
    let hidden = crate::privacy::suppress(&cells, state.settings.privacy_threshold);
    let rows: Vec<UsageRow> = rows
        .into_iter()
        .zip(hidden)
        .map(|(((bucket, area, event_type, principal), count), hide)| UsageRow {
            bucket,
            area,
            event_type,
            principal,
            count: (!hide).then_some(count),
            suppressed: hide,
        })
        .collect();
    if csv {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer
            .write_record(["bucket", "area", "type", "principal", "count"])
            .map_err(|e| ApiError::unavailable(e.to_string()))?;
        let below = format!("<{}", state.settings.privacy_threshold);
        for row in &rows {
            let count = row.count.map(|c| c.to_string()).unwrap_or_else(|| below.clone());
            writer
                .write_record([&row.bucket, &row.area, &row.event_type, &row.principal, &count])
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
        }
        let body = writer.into_inner().map_err(|e| ApiError::unavailable(e.to_string()))?;
        return Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response());
    }
    Ok(Json(UsageAnswer { total, rows }).into_response())
}

/// Whether the caller asked for CSV (`format=csv`, or no `format` and `Accept: text/csv`).
pub fn wants_csv(format: Option<super::params::Format>, headers: &HeaderMap) -> bool {
    match format {
        Some(format) => format == super::params::Format::Csv,
        None => {
            headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).is_some_and(|accept| accept.contains("text/csv"))
        }
    }
}
