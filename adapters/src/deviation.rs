//! Deviation inputs: FHIR `AdverseEvent` → `deviation.case.logged` (and `case.answered`,
//! `analysis.completed`, `case.closed` from this hub's extensions, as R4 has no elements for them),
//! and the CSV of historical deviations for back-fill.

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use sgd_schemas::events::deviation::{Actuality, AnalysisCompleted, CaseAnswered, CaseClosed, CaseLogged};

use crate::{
    cloudevent::Draft,
    fhir::{self, CodeableConcept, Context, Extension, Identifier, MappingError, Resource},
    tabular::{self, row_error},
};

/// Maps an `AdverseEvent`.
pub fn map_fhir(resource: &Resource<'_>, _ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    match resource.resource_type {
        "AdverseEvent" => adverse_event(resource),
        _ => Err(fhir::unsupported(resource, "deviation", "AdverseEvent")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AdverseEvent {
    #[serde(default)]
    extension: Vec<Extension>,
    identifier: Option<Identifier>,
    actuality: Option<String>,
    #[serde(default)]
    category: Vec<CodeableConcept>,
    date: Option<String>,
    recorded_date: Option<String>,
    severity: Option<CodeableConcept>,
}

fn ext_field(name: &str) -> String {
    format!("extension[{}{name}]", fhir::EXTENSION_PREFIX)
}

fn adverse_event(resource: &Resource<'_>) -> Result<Vec<Draft>, MappingError> {
    let a: AdverseEvent = resource.parse()?;
    let deviation_id = a
        .identifier
        .as_ref()
        .and_then(|i| i.value.clone())
        .or_else(|| resource.id.map(str::to_string))
        .ok_or_else(|| resource.error("identifier", "required: the deviation id"))?;
    let actuality = match a.actuality.as_deref() {
        Some("actual") => Actuality::Actual,
        Some("potential") => Actuality::NearMiss,
        other => return Err(resource.error("actuality", format!("{other:?}: expected actual or potential"))),
    };
    let category = a
        .category
        .iter()
        .find_map(|c| c.codes().next().map(str::to_string).or_else(|| c.text.clone()))
        .ok_or_else(|| resource.error("category", "required: a coding or text"))?;
    let mut concerned_principals: Vec<String> = Vec::new();
    for e in fhir::extensions(&a.extension, "concerned-principal") {
        let code = e.value_string.as_deref().unwrap_or_default();
        if !sgd_schemas::principals::is_known(code) {
            return Err(
                resource.error(&ext_field("concerned-principal"), format!("{code:?} is not one of the 34 principals"))
            );
        }
        if !concerned_principals.iter().any(|c| c == code) {
            concerned_principals.push(code.to_string());
        }
    }
    if concerned_principals.is_empty() {
        return Err(resource.error(&ext_field("concerned-principal"), "required: the principals who must answer"));
    }
    let grade = |name: &str| -> Result<Option<u8>, MappingError> {
        match fhir::extension(&a.extension, name).map(|e| e.value_integer) {
            None => Ok(None),
            Some(Some(v @ 1..=4)) => Ok(Some(v as u8)),
            Some(v) => Err(resource.error(&ext_field(name), format!("{v:?}: expected valueInteger 1–4"))),
        }
    };
    let probability =
        grade("probability")?.ok_or_else(|| resource.error(&ext_field("probability"), "required: 1–4"))?;
    let consequence = match grade("consequence")? {
        Some(c) => c,
        None => a
            .severity
            .as_ref()
            .and_then(|s| {
                s.codes().find_map(|code| match code {
                    "mild" => Some(1),
                    "moderate" => Some(2),
                    "severe" => Some(3),
                    _ => None,
                })
            })
            .ok_or_else(|| {
                resource.error(&ext_field("consequence"), "required: 1–4 (or severity mild/moderate/severe)")
            })?,
    };
    let plan_id = fhir::extension(&a.extension, "plan-id").and_then(|e| e.value_string.clone());
    let time = resource.time("recordedDate", a.recorded_date.as_deref().or(a.date.as_deref()))?;
    let mut drafts = vec![Draft::at(
        resource.event_id("logged")?,
        time,
        CaseLogged {
            deviation_id: deviation_id.clone(),
            concerned_principals,
            category,
            actuality,
            probability,
            consequence,
            plan_id,
        }
        .into(),
    )];
    for answer in fhir::extensions(&a.extension, "answered") {
        let principal = answer.extension.iter().find(|e| e.url == "principal").and_then(|e| e.value_string.clone());
        let principal = principal.filter(|p| sgd_schemas::principals::is_known(p)).ok_or_else(|| {
            resource.error(&ext_field("answered"), "needs a principal sub-extension with one of the 34 codes")
        })?;
        let at = resource.time(
            &ext_field("answered"),
            answer.extension.iter().find(|e| e.url == "at").and_then(|e| e.value_date_time.as_deref()),
        )?;
        let event = CaseAnswered { deviation_id: deviation_id.clone(), answered_by: principal.clone() };
        drafts.push(Draft::at(resource.event_id(&format!("answered/{principal}"))?, at, event.into()));
    }
    if let Some(analysis) = fhir::extension(&a.extension, "analysis-completed") {
        let lex_maria =
            analysis.extension.iter().find(|e| e.url == "lexMaria").and_then(|e| e.value_boolean).unwrap_or(false);
        let at = resource.time(
            &ext_field("analysis-completed"),
            analysis.extension.iter().find(|e| e.url == "at").and_then(|e| e.value_date_time.as_deref()),
        )?;
        drafts.push(Draft::at(
            resource.event_id("analysis")?,
            at,
            AnalysisCompleted { deviation_id: deviation_id.clone(), lex_maria }.into(),
        ));
    }
    if let Some(closed) = fhir::extension(&a.extension, "closed") {
        let at = resource.time(&ext_field("closed"), closed.value_date_time.as_deref())?;
        drafts.push(Draft::at(resource.event_id("closed")?, at, CaseClosed { deviation_id }.into()));
    }
    Ok(drafts)
}

/// The header of the historical-deviations CSV.
pub const HISTORY_HEADER: &[&str] = &[
    "deviation_id",
    "logged_at",
    "concerned_principals",
    "category",
    "actuality",
    "probability",
    "consequence",
    "plan_id",
    "answered_by",
    "answered_at",
    "analysis_completed_at",
    "lex_maria",
    "closed_at",
];

#[derive(Deserialize)]
struct HistoryRow {
    deviation_id: String,
    logged_at: String,
    concerned_principals: String,
    category: String,
    actuality: String,
    probability: String,
    consequence: String,
    plan_id: String,
    answered_by: String,
    answered_at: String,
    analysis_completed_at: String,
    lex_maria: String,
    closed_at: String,
}

/// Maps the CSV of historical deviations (header [`HISTORY_HEADER`]): one row per deviation;
/// `concerned_principals` and `answered_by` are `;`-separated (answered_by pairs with one
/// `answered_at` for all); empty answer, analysis and close columns mean it has not happened.
pub fn map_history_csv(input: &[u8]) -> Result<fhir::Mapped, tabular::CsvError> {
    tabular::map_csv(input, HISTORY_HEADER, |row: &HistoryRow, line| {
        if row.deviation_id.is_empty() {
            return Err(row_error(line, "deviation_id", "required"));
        }
        if row.category.is_empty() {
            return Err(row_error(line, "category", "required"));
        }
        let logged_at = tabular::time(line, "logged_at", &row.logged_at)?;
        let concerned_principals = tabular::list(&row.concerned_principals);
        if concerned_principals.is_empty() {
            return Err(row_error(line, "concerned_principals", "required"));
        }
        if let Some(bad) = concerned_principals.iter().find(|p| !sgd_schemas::principals::is_known(p)) {
            return Err(row_error(line, "concerned_principals", format!("{bad:?} is not one of the 34 principals")));
        }
        let actuality: Actuality = tabular::enum_value(line, "actuality", &row.actuality)?;
        let grade = |column: &str, value: &str| -> Result<u8, MappingError> {
            value
                .parse::<u8>()
                .ok()
                .filter(|v| (1..=4).contains(v))
                .ok_or_else(|| row_error(line, column, format!("{value:?}: expected 1–4")))
        };
        let id = |what: &str| format!("deviation-history/{}/{what}", row.deviation_id);
        let deviation_id = row.deviation_id.clone();
        let mut drafts = vec![Draft::at(
            id("logged"),
            logged_at,
            CaseLogged {
                deviation_id: deviation_id.clone(),
                concerned_principals,
                category: row.category.clone(),
                actuality,
                probability: grade("probability", &row.probability)?,
                consequence: grade("consequence", &row.consequence)?,
                plan_id: (!row.plan_id.is_empty()).then(|| row.plan_id.clone()),
            }
            .into(),
        )];
        let answered_by = tabular::list(&row.answered_by);
        if !answered_by.is_empty() {
            let at: DateTime<FixedOffset> = tabular::time(line, "answered_at", &row.answered_at)?;
            for principal in answered_by {
                if !sgd_schemas::principals::is_known(&principal) {
                    return Err(row_error(
                        line,
                        "answered_by",
                        format!("{principal:?} is not one of the 34 principals"),
                    ));
                }
                let event = CaseAnswered { deviation_id: deviation_id.clone(), answered_by: principal.clone() };
                drafts.push(Draft::at(id(&format!("answered/{principal}")), at, event.into()));
            }
        }
        if let Some(at) = tabular::optional_time(line, "analysis_completed_at", &row.analysis_completed_at)? {
            let lex_maria = match row.lex_maria.as_str() {
                "true" | "yes" | "1" => true,
                "false" | "no" | "0" | "" => false,
                other => return Err(row_error(line, "lex_maria", format!("{other:?}: expected true or false"))),
            };
            drafts.push(Draft::at(
                id("analysis"),
                at,
                AnalysisCompleted { deviation_id: deviation_id.clone(), lex_maria }.into(),
            ));
        }
        if let Some(at) = tabular::optional_time(line, "closed_at", &row.closed_at)? {
            drafts.push(Draft::at(id("closed"), at, CaseClosed { deviation_id }.into()));
        }
        Ok(drafts)
    })
}
