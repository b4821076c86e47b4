//! `GET /api/v1/adoption`: per principal and area, the events, the units behind them, and the
//! first and last activity. JSON, or CSV with `format=csv` / `Accept: text/csv`.

use std::collections::{BTreeMap, BTreeSet};

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
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdoptionQuery {
    /// `json` (default) or `csv` (as `Accept: text/csv`).
    pub format: Option<super::params::Format>,
}

/// One principal × area.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AreaAdoption {
    /// Events published in the area.
    pub events: u64,
    /// First day with an event.
    pub first_activity: Option<NaiveDate>,
    /// Last day with an event.
    pub last_activity: Option<NaiveDate>,
    /// Care units (HSA-ids) active in the area now (NPÖ roles, SDK addresses).
    pub units: BTreeSet<String>,
}

/// One principal.
#[derive(Debug, Clone, Serialize)]
pub struct PrincipalAdoption {
    /// Code.
    pub principal: String,
    /// Name.
    pub name: String,
    /// By area (all six).
    pub areas: BTreeMap<&'static str, AreaAdoption>,
}

#[utoipa::path(get, path = "/api/v1/adoption", tag = "statistics", params(AdoptionQuery), responses((status = 200, description = "Per principal × area: events, units, first and last activity", content((Object = "application/json"), (String = "text/csv"))), (status = 400, description = "Bad format", body = super::ErrorBody), (status = 401, description = "No token, or an unknown or revoked one", body = super::ErrorBody), (status = 403, description = "The token's role may not do this", body = super::ErrorBody)))]
/// Adoption per principal and area: events, reporting units, first and last activity.
pub async fn adoption(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    query: Result<Query<AdoptionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Analyst, Role::Operator])?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let csv = super::usage::wants_csv(query.format, &headers);
    let cells =
        super::over_views(&state, |views| crate::projections::usage::cells_between(&views.usage, None, None)).await?;
    let mut table: BTreeMap<String, PrincipalAdoption> = principals::all()
        .iter()
        .map(|p| {
            let areas = catalogue::SERVICE_AREAS.iter().map(|a| (*a, AreaAdoption::default())).collect();
            (p.code.to_string(), PrincipalAdoption { principal: p.code.into(), name: p.name.into(), areas })
        })
        .collect();
    for cell in cells {
        let Some(area) = catalogue::TypeName::parse(&cell.event_type).map(|t| t.area) else { continue };
        let Some(entry) = table.get_mut(&cell.principal).and_then(|p| p.areas.get_mut(area)) else { continue };
        entry.events += cell.count;
        entry.first_activity = Some(entry.first_activity.map_or(cell.day, |d| d.min(cell.day)));
        entry.last_activity = Some(entry.last_activity.map_or(cell.day, |d| d.max(cell.day)));
    }
    {
        let now = chrono::Utc::now().fixed_offset();
        let views = state.views.read().await;
        for role in views.npo.roles.values() {
            if role.state_at(now).is_some() {
                if let Some(entry) = table.get_mut(role.principal.as_str()).and_then(|p| p.areas.get_mut("npo")) {
                    entry.units.insert(role.unit.to_string());
                }
            }
        }
        for address in views.sdk.addresses.values() {
            if let Some(entry) = table.get_mut(address.principal.as_str()).and_then(|p| p.areas.get_mut("sdk")) {
                entry.units.insert(address.unit.to_string());
            }
        }
    }
    let principals: Vec<PrincipalAdoption> = table.into_values().collect();
    if !csv {
        return Ok(Json(serde_json::json!({ "principals": principals })).into_response());
    }
    let mut writer = csv::Writer::from_writer(Vec::new());
    let fail = |e: &dyn std::fmt::Display| ApiError::unavailable(e.to_string());
    writer
        .write_record(["principal", "name", "area", "events", "first_activity", "last_activity", "units"])
        .map_err(|e| fail(&e))?;
    for p in &principals {
        for (area, a) in &p.areas {
            let day = |d: Option<NaiveDate>| d.map(|d| d.to_string()).unwrap_or_default();
            writer
                .write_record([
                    p.principal.as_str(),
                    p.name.as_str(),
                    area,
                    &a.events.to_string(),
                    &day(a.first_activity),
                    &day(a.last_activity),
                    &a.units.len().to_string(),
                ])
                .map_err(|e| fail(&e))?;
        }
    }
    let body = writer.into_inner().map_err(|e| fail(&e))?;
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], body).into_response())
}
