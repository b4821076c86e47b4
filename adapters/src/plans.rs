//! Mina Planer inputs: FHIR `CarePlan` → `plans.plan.created`/`plan.closed`; FHIR `Encounter` of
//! an SVU episode → `plans.admission.notified`, `discharge.ready`, `discharge.withdrawn`,
//! `patient.discharged`, and a SIP meeting `Encounter` → `plans.sip.held`.

use serde::Deserialize;
use sgd_schemas::events::plans::{
    AdmissionNotified, DischargeReady, DischargeWithdrawn, MeetingMode, PatientDischarged, PlanClosed, PlanCreated,
    PlanKind, SipHeld,
};

use crate::{
    cloudevent::Draft,
    fhir::{self, CodeableConcept, Coding, Context, Extension, Identifier, MappingError, Period, Reference, Resource},
};

/// Maps a `CarePlan` or an `Encounter`.
pub fn map_fhir(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    match resource.resource_type {
        "CarePlan" => care_plan(resource, ctx),
        "Encounter" => encounter(resource),
        _ => Err(fhir::unsupported(resource, "plans", "CarePlan, Encounter")),
    }
}

#[derive(Deserialize, Default)]
struct Meta {
    #[serde(rename = "lastUpdated")]
    last_updated: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CarePlan {
    #[serde(default)]
    meta: Meta,
    status: Option<String>,
    #[serde(default)]
    category: Vec<CodeableConcept>,
    subject: Option<Reference>,
    period: Option<Period>,
    created: Option<String>,
    #[serde(default)]
    contributor: Vec<Reference>,
}

fn plan_kind(code: &str) -> Option<PlanKind> {
    Some(match code {
        "svu" => PlanKind::Svu,
        "sip" => PlanKind::Sip,
        "lpt" => PlanKind::Lpt,
        "lrv" => PlanKind::Lrv,
        "akutblad" => PlanKind::Akutblad,
        _ => return None,
    })
}

fn care_plan(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    let plan: CarePlan = resource.parse()?;
    let closed = match plan.status.as_deref() {
        Some("draft" | "active" | "on-hold") => false,
        Some("completed" | "revoked") => true,
        other => {
            return Err(
                resource.error("status", format!("{other:?}: expected draft, active, on-hold, completed or revoked"))
            )
        }
    };
    let plan_id = resource.required_id()?.to_string();
    let kind = fhir::first_code(&plan.category, plan_kind).unwrap_or(PlanKind::Other);
    let person = resource.person("subject", plan.subject.as_ref(), ctx)?;
    let participants = fhir::principals(resource, "contributor", &plan.contributor)?;
    let created_at = resource.time("created", plan.created.as_deref())?;
    let mut drafts = vec![Draft::at(
        resource.event_id("created")?,
        created_at,
        PlanCreated { plan_id: plan_id.clone(), kind, person, participants }.into(),
    )];
    if closed {
        let end = plan.period.as_ref().and_then(|p| p.end.as_deref()).or(plan.meta.last_updated.as_deref());
        let closed_at = resource.time("period.end", end)?;
        drafts.push(Draft::at(resource.event_id("closed")?, closed_at, PlanClosed { plan_id }.into()));
    }
    Ok(drafts)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Encounter {
    #[serde(default)]
    extension: Vec<Extension>,
    status: Option<String>,
    class: Option<Coding>,
    #[serde(default, rename = "type")]
    kind: Vec<CodeableConcept>,
    #[serde(default)]
    episode_of_care: Vec<Reference>,
    period: Option<Period>,
}

fn encounter(resource: &Resource<'_>) -> Result<Vec<Draft>, MappingError> {
    let e: Encounter = resource.parse()?;
    let plan_id = e
        .episode_of_care
        .first()
        .and_then(|r| {
            r.identifier
                .as_ref()
                .and_then(|i: &Identifier| i.value.clone())
                .or_else(|| r.target_id().map(str::to_string))
        })
        .ok_or_else(|| {
            resource.error("episodeOfCare", "required: the plan (the SVU or SIP episode) as a reference or identifier")
        })?;
    let ext_time = |name: &str| -> Result<Option<_>, MappingError> {
        fhir::extension(&e.extension, name)
            .map(|x| {
                resource.time(&format!("extension[{}{name}]", fhir::EXTENSION_PREFIX), x.value_date_time.as_deref())
            })
            .transpose()
    };
    let mut drafts = Vec::new();
    let is_sip = e.kind.iter().any(|k| k.codes().any(|c| c == "sip"));
    let finished = e.status.as_deref() == Some("finished");
    if is_sip {
        if !finished {
            return Err(resource.error("status", "a SIP meeting is an event once finished"));
        }
        let held_at = resource.time("period.start", e.period.as_ref().and_then(|p| p.start.as_deref()))?;
        let mode = if e.class.as_ref().and_then(|c| c.code.as_deref()) == Some("VR") {
            MeetingMode::Video
        } else {
            MeetingMode::Physical
        };
        drafts.push(Draft::at(resource.event_id("sip-held")?, held_at, SipHeld { plan_id, held_at, mode }.into()));
        return Ok(drafts);
    }
    if let Some(need_assessed_at) = ext_time("need-assessed")? {
        let sent_at = ext_time("admission-notice-sent")?.ok_or_else(|| {
            resource.error(
                &format!("extension[{}admission-notice-sent]", fhir::EXTENSION_PREFIX),
                "required with need-assessed: when the notice was sent",
            )
        })?;
        let event = AdmissionNotified { plan_id: plan_id.clone(), need_assessed_at, sent_at };
        drafts.push(Draft::at(resource.event_id("admission-notified")?, sent_at, event.into()));
    }
    if let Some(ready_at) = ext_time("ready-for-discharge")? {
        let event = DischargeReady { plan_id: plan_id.clone(), ready_at };
        drafts.push(Draft::at(resource.event_id("discharge-ready")?, ready_at, event.into()));
    }
    if let Some(withdrawn_at) = ext_time("discharge-withdrawn")? {
        let event = DischargeWithdrawn { plan_id: plan_id.clone() };
        drafts.push(Draft::at(resource.event_id("discharge-withdrawn")?, withdrawn_at, event.into()));
    }
    if finished {
        let discharged_at = resource.time("period.end", e.period.as_ref().and_then(|p| p.end.as_deref()))?;
        let event = PatientDischarged { plan_id, discharged_at };
        drafts.push(Draft::at(resource.event_id("discharged")?, discharged_at, event.into()));
    }
    if drafts.is_empty() {
        return Err(resource.error("extension", "nothing to report: no need-assessed, ready-for-discharge or discharge-withdrawn extension and not finished"));
    }
    Ok(drafts)
}
