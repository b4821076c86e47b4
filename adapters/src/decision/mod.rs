//! Beslutsstöd (ViSam and risk profiling) inputs: a FHIR vital-signs panel `Observation` →
//! `decision.assessment.completed` (when it carries ViSam's recommendation) and
//! `decision.score.raised` (when its NEWS2 band is `low_medium` or worse); FHIR `RiskAssessment` →
//! `decision.risk.flagged` and, once acknowledged, `decision.risk.acknowledged`.
//!
//! - [`news2`]: the NEWS2 score and band (RCP 2017), both SpO₂ scales.

pub mod news2;

use serde::Deserialize;
use sgd_schemas::events::decision::{
    AssessmentCompleted, Consciousness, Recommendation, RiskAcknowledged, RiskFlagged, Vitals,
};

use crate::{
    cloudevent::Draft,
    fhir::{self, CodeableConcept, Context, Extension, MappingError, Reference, Resource},
};

/// LOINC of the vital signs panel.
pub const VITAL_SIGNS_PANEL: &str = "85353-1";

/// Maps an `Observation` (vital signs panel) or a `RiskAssessment`.
pub fn map_fhir(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    match resource.resource_type {
        "Observation" => observation(resource, ctx),
        "RiskAssessment" => risk_assessment(resource, ctx),
        _ => Err(fhir::unsupported(resource, "decision", "Observation (vital signs panel), RiskAssessment")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Observation {
    #[serde(default)]
    extension: Vec<Extension>,
    code: Option<CodeableConcept>,
    subject: Option<Reference>,
    effective_date_time: Option<String>,
    #[serde(default)]
    component: Vec<Component>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Component {
    code: CodeableConcept,
    value_quantity: Option<Quantity>,
    value_codeable_concept: Option<CodeableConcept>,
}

#[derive(Deserialize)]
struct Quantity {
    value: Option<f64>,
}

fn observation(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    let o: Observation = resource.parse()?;
    if !o.code.as_ref().is_some_and(|c| c.codes().any(|code| code == VITAL_SIGNS_PANEL)) {
        return Err(resource.error("code", format!("only the vital signs panel (LOINC {VITAL_SIGNS_PANEL}) is mapped")));
    }
    let number = |codes: &[&str]| -> Option<f64> {
        o.component
            .iter()
            .find(|c| c.code.codes().any(|code| codes.contains(&code)))
            .and_then(|c| c.value_quantity.as_ref()?.value)
    };
    let whole =
        |codes: &[&str], field: &str| -> Result<Option<u32>, MappingError> {
            match number(codes) {
                None => Ok(None),
                Some(v) if v.is_finite() && (0.0..=1000.0).contains(&v) => Ok(Some(v.round() as u32)),
                Some(v) => Err(resource
                    .error(&format!("component[{field}].valueQuantity"), format!("{v} is not a possible value"))),
            }
        };
    let consciousness = o
        .component
        .iter()
        .find(|c| c.code.codes().any(|code| code == "67775-7"))
        .and_then(|c| c.value_codeable_concept.as_ref())
        .map(|v| {
            v.codes()
                .chain(v.text.as_deref())
                .find_map(|code| match code {
                    "A" => Some(Consciousness::A),
                    "C" => Some(Consciousness::C),
                    "V" => Some(Consciousness::V),
                    "P" => Some(Consciousness::P),
                    "U" => Some(Consciousness::U),
                    _ => None,
                })
                .ok_or_else(|| {
                    resource.error("component[67775-7].valueCodeableConcept", "expected code A, C, V, P or U (ACVPU)")
                })
        })
        .transpose()?;
    let flow = number(&["3151-8"]);
    let fio2 = number(&["3150-0"]);
    let vitals = Vitals {
        respiration_rate: whole(&["9279-1"], "9279-1")?,
        spo2: whole(&["59408-5", "2708-6"], "59408-5")?,
        // No inhaled-oxygen component means room air.
        supplemental_oxygen: Some(flow.is_some_and(|f| f > 0.0) || fio2.is_some_and(|f| f > 21.0)),
        systolic_bp: whole(&["8480-6"], "8480-6")?,
        pulse: whole(&["8867-4"], "8867-4")?,
        consciousness,
        temperature: number(&["8310-5"]),
    };
    let scale = match fhir::extension(&o.extension, "news2-spo2-scale").and_then(|e| e.value_integer) {
        None | Some(1) => news2::SpO2Scale::Scale1,
        Some(2) => news2::SpO2Scale::Scale2,
        Some(other) => {
            return Err(resource.error("extension[urn:sgd:fhir:news2-spo2-scale]", format!("{other}: expected 1 or 2")))
        }
    };
    let recommendation = fhir::extension(&o.extension, "visam-recommendation")
        .map(|e| match e.value_code.as_deref() {
            Some("stay_home") => Ok(Recommendation::StayHome),
            Some("emergency_department") => Ok(Recommendation::EmergencyDepartment),
            Some("direct_admission") => Ok(Recommendation::DirectAdmission),
            other => Err(resource.error(
                "extension[urn:sgd:fhir:visam-recommendation]",
                format!("{other:?}: expected stay_home, emergency_department or direct_admission"),
            )),
        })
        .transpose()?;
    let person = resource.person("subject", o.subject.as_ref(), ctx)?;
    let time = resource.time("effectiveDateTime", o.effective_date_time.as_deref())?;
    let assessment_id = resource.required_id()?.to_string();
    let score = news2::score(&vitals, scale);
    let mut drafts = Vec::new();
    if let Some(recommendation) = recommendation {
        let event = AssessmentCompleted {
            person: person.clone(),
            assessment_id: assessment_id.clone(),
            vitals: Some(vitals),
            recommendation,
        };
        drafts.push(Draft::at(resource.event_id("assessment")?, time, event.into()));
    }
    match score {
        Ok(score) => {
            if let Some(event) = score.score_raised(&person, &assessment_id) {
                drafts.push(Draft::at(resource.event_id("news2")?, time, event.into()));
            }
        }
        Err(e) if drafts.is_empty() => return Err(resource.error("component", e.to_string())),
        Err(_) => {}
    }
    Ok(drafts)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RiskAssessment {
    #[serde(default)]
    extension: Vec<Extension>,
    status: Option<String>,
    subject: Option<Reference>,
    encounter: Option<Reference>,
    occurrence_date_time: Option<String>,
    performer: Option<Reference>,
}

fn risk_assessment(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    let r: RiskAssessment = resource.parse()?;
    if !matches!(r.status.as_deref(), Some("preliminary" | "final" | "amended" | "corrected")) {
        return Err(
            resource.error("status", format!("{:?}: expected preliminary, final, amended or corrected", r.status))
        );
    }
    let flag_id = resource.required_id()?.to_string();
    let person = resource.person("subject", r.subject.as_ref(), ctx)?;
    let primary_care_unit = r
        .performer
        .as_ref()
        .and_then(|p| p.identifier_in(fhir::HSA_ID))
        .ok_or_else(|| {
            resource.error(
                "performer",
                format!("required: the primary care unit alerted, as an identifier in {}", fhir::HSA_ID),
            )
        })?
        .to_string();
    let setting = r.encounter.as_ref().and_then(|e| e.display.clone());
    let time = resource.time("occurrenceDateTime", r.occurrence_date_time.as_deref())?;
    let mut drafts = vec![Draft::at(
        resource.event_id("flagged")?,
        time,
        RiskFlagged { person, flag_id: flag_id.clone(), primary_care_unit, setting }.into(),
    )];
    if let Some(ack) = fhir::extension(&r.extension, "risk-acknowledged") {
        let at = resource.time("extension[urn:sgd:fhir:risk-acknowledged]", ack.value_date_time.as_deref())?;
        drafts.push(Draft::at(resource.event_id("acknowledged")?, at, RiskAcknowledged { flag_id }.into()));
    }
    Ok(drafts)
}
