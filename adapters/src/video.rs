//! Video inputs: FHIR `Appointment` → `video.meeting.booked`, `video.participant.admitted` (per
//! participant with an identification method) and, once fulfilled, `video.meeting.held`.

use serde::Deserialize;
use sgd_schemas::events::video::{
    IdentificationMethod, MeetingBooked, MeetingHeld, MeetingPurpose, ParticipantAdmitted,
};

use crate::{
    cloudevent::Draft,
    fhir::{self, CodeableConcept, Context, Extension, MappingError, Reference, Resource},
};

/// Maps an `Appointment`.
pub fn map_fhir(resource: &Resource<'_>, _ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    match resource.resource_type {
        "Appointment" => appointment(resource),
        _ => Err(fhir::unsupported(resource, "video", "Appointment")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Appointment {
    status: Option<String>,
    #[serde(default)]
    service_type: Vec<CodeableConcept>,
    appointment_type: Option<CodeableConcept>,
    start: Option<String>,
    end: Option<String>,
    minutes_duration: Option<u64>,
    created: Option<String>,
    #[serde(default)]
    supporting_information: Vec<Reference>,
    #[serde(default)]
    participant: Vec<Participant>,
}

#[derive(Deserialize)]
struct Participant {
    #[serde(default)]
    extension: Vec<Extension>,
    #[serde(default, rename = "type")]
    kind: Vec<CodeableConcept>,
    actor: Option<Reference>,
    status: Option<String>,
}

fn appointment(resource: &Resource<'_>) -> Result<Vec<Draft>, MappingError> {
    let a: Appointment = resource.parse()?;
    let status = a.status.as_deref().unwrap_or_default();
    if !matches!(status, "booked" | "arrived" | "checked-in" | "fulfilled") {
        return Err(resource.error(
            "status",
            format!("{status:?}: only booked, arrived, checked-in and fulfilled meetings are events"),
        ));
    }
    let meeting_id = resource.required_id()?.to_string();
    let purpose = a
        .service_type
        .iter()
        .chain(a.appointment_type.as_ref())
        .flat_map(CodeableConcept::codes)
        .find_map(|code| match code {
            "sip" => Some(MeetingPurpose::Sip),
            "svu" => Some(MeetingPurpose::Svu),
            "consultation" => Some(MeetingPurpose::Consultation),
            _ => None,
        })
        .unwrap_or(MeetingPurpose::Other);
    let actors: Vec<Reference> = a.participant.iter().filter_map(|p| p.actor.clone()).collect();
    let principals = fhir::principals(resource, "participant.actor", &actors)?;
    if principals.is_empty() {
        return Err(resource.error(
            "participant.actor",
            format!("required: at least one principal as an identifier in {}", fhir::PRINCIPAL),
        ));
    }
    let plan_id = a
        .supporting_information
        .iter()
        .find(|r| r.reference.as_deref().is_some_and(|t| t.contains("CarePlan/")))
        .and_then(Reference::target_id)
        .map(str::to_string);
    let booked_at = resource.time("created", a.created.as_deref())?;
    let mut drafts = vec![Draft::at(
        resource.event_id("booked")?,
        booked_at,
        MeetingBooked { meeting_id: meeting_id.clone(), purpose, principals, plan_id }.into(),
    )];
    let start = a.start.as_deref().map(|s| resource.time("start", Some(s))).transpose()?;
    for (n, participant) in a.participant.iter().enumerate() {
        let Some(method) = fhir::extension(&participant.extension, "identification-method") else { continue };
        let method = match method.value_code.as_deref() {
            Some("bankid") => IdentificationMethod::Bankid,
            Some("siths") => IdentificationMethod::Siths,
            Some("freja") => IdentificationMethod::Freja,
            Some("none") => IdentificationMethod::None,
            other => {
                return Err(resource.error(
                    &format!("participant[{n}].extension[urn:sgd:fhir:identification-method]"),
                    format!("{other:?}: expected bankid, siths, freja or none"),
                ))
            }
        };
        let at = start.ok_or_else(|| resource.error("start", "required when participants were admitted"))?;
        let role = participant.kind.iter().flat_map(CodeableConcept::codes).next().map(str::to_string);
        let event = ParticipantAdmitted { meeting_id: meeting_id.clone(), method, role };
        drafts.push(Draft::at(resource.event_id(&format!("admitted/{n}"))?, at, event.into()));
    }
    if status == "fulfilled" {
        let start = start.ok_or_else(|| resource.error("start", "required for a meeting held"))?;
        let end = a.end.as_deref().map(|e| resource.time("end", Some(e))).transpose()?;
        let duration_s = match (end, a.minutes_duration) {
            (Some(end), _) => {
                u64::try_from((end - start).num_seconds()).map_err(|_| resource.error("end", "before start"))?
            }
            (None, Some(minutes)) => minutes * 60,
            (None, None) => return Err(resource.error("end", "required for a meeting held (or minutesDuration)")),
        };
        let held_at = end.unwrap_or(start + chrono::Duration::seconds(duration_s as i64));
        let participants = a.participant.iter().filter(|p| p.status.as_deref() == Some("accepted")).count() as u32;
        let event = MeetingHeld { meeting_id, duration_s, participants };
        drafts.push(Draft::at(resource.event_id("held")?, held_at, event.into()));
    }
    Ok(drafts)
}
