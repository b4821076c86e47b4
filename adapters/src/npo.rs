//! NPÖ inputs: FHIR `Consent` → `npo.consent.given`/`revoked`, FHIR `AuditEvent` →
//! `npo.record.accessed`, and the CSV of role activations per unit → `npo.role.activated`/
//! `deactivated`.

use serde::Deserialize;
use sgd_schemas::events::{
    npo::{
        AccessBasis, ConsentGiven, ConsentRevoked, ConsentScope, RecordAccessed, Role, RoleActivated, RoleDeactivated,
    },
    UnitKind,
};

use crate::{
    cloudevent::Draft,
    fhir::{self, CodeableConcept, Context, MappingError, Period, Reference, Resource},
    tabular::{self, row_error},
};

/// The v3-ActReason code of emergency treatment (nödåtkomst).
pub const EMERGENCY: &str = "ETREAT";

/// Maps a `Consent` or an `AuditEvent`.
pub fn map_fhir(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    match resource.resource_type {
        "Consent" => consent(resource, ctx),
        "AuditEvent" => audit_event(resource, ctx),
        _ => Err(fhir::unsupported(resource, "npo", "Consent, AuditEvent")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Consent {
    status: Option<String>,
    patient: Option<Reference>,
    date_time: Option<String>,
    #[serde(default)]
    category: Vec<CodeableConcept>,
    provision: Option<Provision>,
}

#[derive(Deserialize)]
struct Provision {
    period: Option<Period>,
    #[serde(default)]
    actor: Vec<ProvisionActor>,
}

#[derive(Deserialize)]
struct ProvisionActor {
    reference: Option<Reference>,
}

fn consent(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    let consent: Consent = resource.parse()?;
    let given = match consent.status.as_deref() {
        Some("active") => true,
        Some("inactive" | "rejected") => false,
        other => {
            return Err(resource
                .error("status", format!("{other:?}: only active (given) and inactive/rejected (revoked) are events")))
        }
    };
    let person = resource.person("patient", consent.patient.as_ref(), ctx)?;
    let consumer_unit = consent
        .provision
        .as_ref()
        .and_then(|p| p.actor.iter().find_map(|a| a.reference.as_ref()?.identifier_in(fhir::HSA_ID)))
        .ok_or_else(|| {
            resource.error(
                "provision.actor",
                format!("required: the consuming unit as a reference with an identifier in {}", fhir::HSA_ID),
            )
        })?
        .to_string();
    let scope = fhir::first_code(&consent.category, |code| match code {
        "care_documentation" => Some(ConsentScope::CareDocumentation),
        "medication_list" => Some(ConsentScope::MedicationList),
        _ => None,
    })
    .ok_or_else(|| resource.error("category", "required: a coding with code care_documentation or medication_list"))?;
    let time = resource.time("dateTime", consent.date_time.as_deref())?;
    let event = if given {
        let valid_until = consent
            .provision
            .as_ref()
            .and_then(|p| p.period.as_ref())
            .and_then(|p| p.end.as_deref())
            .map(|end| resource.time("provision.period.end", Some(end)))
            .transpose()?;
        ConsentGiven { person, consumer_unit, scope, valid_until }.into()
    } else {
        ConsentRevoked { person, consumer_unit, scope }.into()
    };
    Ok(vec![Draft::at(resource.event_id(if given { "given" } else { "revoked" })?, time, event)])
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuditEvent {
    recorded: Option<String>,
    #[serde(default)]
    purpose_of_event: Vec<CodeableConcept>,
    #[serde(default)]
    agent: Vec<Agent>,
    source: Option<AuditSource>,
    #[serde(default)]
    entity: Vec<Entity>,
}

#[derive(Deserialize)]
struct Agent {
    who: Option<Reference>,
    requestor: Option<bool>,
}

#[derive(Deserialize)]
struct AuditSource {
    observer: Option<Reference>,
}

#[derive(Deserialize)]
struct Entity {
    what: Option<Reference>,
    #[serde(default)]
    detail: Vec<EntityDetail>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntityDetail {
    #[serde(rename = "type")]
    kind: Option<String>,
    value_string: Option<String>,
}

fn audit_event(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    let audit: AuditEvent = resource.parse()?;
    // The entity that is the patient: the first `what` that resolves to a person (a contained or
    // Bundle Patient, by reference or fullUrl, or a personnummer identifier).
    let mut first_error = None;
    let mut person = None;
    for what in audit.entity.iter().filter_map(|e| e.what.as_ref()) {
        match resource.person("entity.what", Some(what), ctx) {
            Ok(p) => {
                person = Some(p);
                break;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    let person = match (person, first_error) {
        (Some(p), _) => p,
        (None, Some(e)) => return Err(e),
        (None, None) => return Err(resource.error("entity.what", "required: the patient whose record was read")),
    };
    let consumer_unit = audit
        .agent
        .iter()
        .filter(|a| a.requestor.unwrap_or(false))
        .find_map(|a| a.who.as_ref()?.identifier_in(fhir::HSA_ID))
        .ok_or_else(|| {
            resource.error(
                "agent.who",
                format!("required: the requesting agent (requestor true) with an identifier in {}", fhir::HSA_ID),
            )
        })?
        .to_string();
    let producer_principal = audit
        .source
        .as_ref()
        .and_then(|s| s.observer.as_ref())
        .and_then(|o| o.identifier_in(fhir::PRINCIPAL))
        .ok_or_else(|| {
            resource.error(
                "source.observer",
                format!("required: the producing principal as an identifier in {}", fhir::PRINCIPAL),
            )
        })?;
    if !sgd_schemas::principals::is_known(producer_principal) {
        return Err(
            resource.error("source.observer", format!("{producer_principal:?} is not one of the 34 principals"))
        );
    }
    let information_sets: Vec<String> = audit
        .entity
        .iter()
        .flat_map(|e| &e.detail)
        .filter(|d| d.kind.as_deref() == Some("information_set"))
        .filter_map(|d| d.value_string.clone())
        .collect();
    if information_sets.is_empty() {
        return Err(resource.error(
            "entity.detail",
            "required: at least one detail of type information_set (e.g. GetCareDocumentation)",
        ));
    }
    let basis = if audit.purpose_of_event.iter().any(|c| c.codes().any(|code| code == EMERGENCY)) {
        AccessBasis::Emergency
    } else {
        AccessBasis::Consent
    };
    let time = resource.time("recorded", audit.recorded.as_deref())?;
    let event = RecordAccessed {
        person,
        consumer_unit,
        producer_principal: producer_principal.to_string(),
        information_sets,
        basis,
    };
    Ok(vec![Draft::at(resource.event_id("accessed")?, time, event.into())])
}

/// The header of the role-activations CSV.
pub const ROLES_HEADER: &[&str] = &["time", "unit", "role", "action", "information_sets", "unit_kind", "reason"];

#[derive(Deserialize)]
struct RoleRow {
    time: String,
    unit: String,
    role: String,
    action: String,
    information_sets: String,
    unit_kind: String,
    reason: String,
}

/// Maps the CSV of NPÖ role activations per unit (header [`ROLES_HEADER`]): `action` is `activated`
/// or `deactivated`, `information_sets` is `;`-separated, `unit_kind` and `reason` may be empty.
pub fn map_roles_csv(input: &[u8]) -> Result<fhir::Mapped, tabular::CsvError> {
    tabular::map_csv(input, ROLES_HEADER, |row: &RoleRow, line| {
        let time = tabular::time(line, "time", &row.time)?;
        let role: Role = tabular::enum_value(line, "role", &row.role)?;
        let information_sets = tabular::list(&row.information_sets);
        let id = format!("npo-role/{}/{}/{}/{}", row.unit, row.role, row.action, row.time);
        let event = match row.action.as_str() {
            "activated" => {
                let unit_kind: Option<UnitKind> = (!row.unit_kind.is_empty())
                    .then(|| tabular::enum_value(line, "unit_kind", &row.unit_kind))
                    .transpose()?;
                RoleActivated { unit: row.unit.clone(), role, information_sets, unit_kind }.into()
            }
            "deactivated" => {
                let reason = (!row.reason.is_empty()).then(|| row.reason.clone());
                RoleDeactivated { unit: row.unit.clone(), role, information_sets, reason }.into()
            }
            other => return Err(row_error(line, "action", format!("{other:?}: expected activated or deactivated"))),
        };
        Ok(vec![Draft::at(id, time, event)])
    })
}
