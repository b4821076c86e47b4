//! HL7 FHIR R4 JSON input: a resource or a Bundle of them, split into resources, each mapped by
//! its area's module into catalogue events. A resource that cannot be mapped gives a
//! [`MappingError`] naming the field and why; the rest of the batch still goes through.
//!
//! Only the fields the mappings read are modelled (serde structs below, unknown fields ignored); see
//! `adapters/README.md` for why no FHIR crate is used and for every mapping as a table.
//!
//! Persons: a `subject`/`patient` reference is resolved to a Swedish personal identity number
//! (`Patient.identifier` with system [`PERSONNUMMER`] or [`SAMORDNINGSNUMMER`]) through a contained
//! Patient (`#id`), a Patient elsewhere in the Bundle (`Patient/id` or its `fullUrl`), or a logical
//! reference (`Reference.identifier`), and pseudonymised at once; the number is never kept.

use std::collections::HashMap;

use chrono::{DateTime, FixedOffset};
use serde::Deserialize;
use serde_json::Value;

use sgd_schemas::pii;

use crate::{cloudevent::Draft, pseudonym::Pseudonymiser};

/// The identifier system of Swedish personal identity numbers (personnummer).
pub const PERSONNUMMER: &str = "urn:oid:1.2.752.129.2.1.3.1";
/// The identifier system of Swedish coordination numbers (samordningsnummer).
pub const SAMORDNINGSNUMMER: &str = "urn:oid:1.2.752.129.2.1.3.3";
/// The identifier system of HSA-ids (care units, function addresses).
pub const HSA_ID: &str = "urn:oid:1.2.752.129.2.1.4.1";
/// The identifier system this hub uses for care principals (`12`, `1214`…`1293`).
pub const PRINCIPAL: &str = "urn:sgd:principal";
/// The prefix of this hub's extensions (`urn:sgd:fhir:<name>`), for what R4 has no element for.
pub const EXTENSION_PREFIX: &str = "urn:sgd:fhir:";

/// Why one resource could not be mapped → report it to the source system (which resource, which
/// field, why) and go on with the rest; fix the source and send the resource again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {field}: {reason}")]
pub struct MappingError {
    /// `<resourceType>/<id>` or `entry[<n>]` when it has neither.
    pub resource: String,
    /// The FHIR path of the field, e.g. `Consent.provision.actor`.
    pub field: String,
    /// Why.
    pub reason: String,
}

/// Why a whole input could not be read (nothing in it was mapped) → refuse the file or request.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// Not JSON → refuse (HTTP 400).
    #[error("not JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON without `resourceType` → refuse (HTTP 400).
    #[error("not a FHIR resource: no resourceType")]
    NotFhir,
}

/// The outcome of mapping one input: the events and the per-resource errors.
#[derive(Debug, Default)]
pub struct Mapped {
    /// Events to publish, in input order.
    pub drafts: Vec<Draft>,
    /// Resources that could not be mapped.
    pub errors: Vec<MappingError>,
    /// Resources read (supporting Patients included).
    pub resources: usize,
}

impl Mapped {
    /// Adds another outcome.
    pub fn extend(&mut self, other: Mapped) {
        self.drafts.extend(other.drafts);
        self.errors.extend(other.errors);
        self.resources += other.resources;
    }
}

/// Which resources an adapter maps: one area's, or every area's.
pub type Mapper = fn(&Resource<'_>, &Context<'_>) -> Result<Vec<Draft>, MappingError>;

/// What a mapping needs besides the resource: the pseudonymiser and the Bundle's Patients.
pub struct Context<'a> {
    pseudonymiser: &'a Pseudonymiser,
    /// Patients of the Bundle by `Patient/<id>` and by `fullUrl`: their raw JSON.
    patients: HashMap<String, &'a Value>,
}

impl<'a> Context<'a> {
    /// The pseudonymiser.
    pub fn pseudonymiser(&self) -> &Pseudonymiser {
        self.pseudonymiser
    }
}

/// One resource being mapped.
pub struct Resource<'a> {
    /// Its JSON.
    pub json: &'a Value,
    /// `resourceType`.
    pub resource_type: &'a str,
    /// `id`, if any.
    pub id: Option<&'a str>,
    /// `<resourceType>/<id>` or `entry[<n>]`, for errors.
    pub label: String,
}

impl<'a> Resource<'a> {
    /// A [`MappingError`] about `field` of this resource. A personal identity number in it (an id,
    /// a value quoted in the reason) is redacted: errors are logged and sent back to the source.
    pub fn error(&self, field: &str, reason: impl Into<String>) -> MappingError {
        MappingError {
            resource: pii::redact(&self.label),
            field: pii::redact(&format!("{}.{field}", self.resource_type)),
            reason: pii::redact(&reason.into()),
        }
    }

    /// Reads the resource into `T` (the fields a mapping needs).
    pub fn parse<T: serde::de::DeserializeOwned>(&self) -> Result<T, MappingError> {
        T::deserialize(self.json).map_err(|e| self.error("*", format!("does not fit FHIR R4: {e}")))
    }

    /// The resource id, required for a stable event identity.
    pub fn required_id(&self) -> Result<&'a str, MappingError> {
        self.id.filter(|id| !id.is_empty()).ok_or_else(|| self.error("id", "required: the event ids derive from it"))
    }

    /// The event id `<resourceType>/<id>/<what>`: the same resource sent again gives the same id.
    pub fn event_id(&self, what: &str) -> Result<String, MappingError> {
        Ok(format!("{}/{}/{what}", self.resource_type, self.required_id()?))
    }

    /// The pseudonym of the person `reference` points at.
    pub fn person(
        &self,
        field: &str,
        reference: Option<&Reference>,
        ctx: &Context<'_>,
    ) -> Result<String, MappingError> {
        let reference = reference.ok_or_else(|| self.error(field, "required: the person"))?;
        let number = self.person_number(field, reference, ctx)?;
        ctx.pseudonymiser.pseudonym(&number).map_err(|e| self.error(field, e.to_string()))
    }

    fn person_number(&self, field: &str, reference: &Reference, ctx: &Context<'_>) -> Result<String, MappingError> {
        if let Some(number) = reference.identifier.as_ref().and_then(Identifier::person_number) {
            return Ok(number);
        }
        let Some(target) = reference.reference.as_deref() else {
            return Err(self.error(field, "has neither a reference nor a personal identity number identifier"));
        };
        let patient = if let Some(local) = target.strip_prefix('#') {
            self.json.get("contained").and_then(Value::as_array).and_then(|contained| {
                contained.iter().find(|r| {
                    r.get("resourceType").and_then(Value::as_str) == Some("Patient")
                        && r.get("id").and_then(Value::as_str) == Some(local)
                })
            })
        } else {
            ctx.patients.get(target).copied().or_else(|| {
                // an absolute URL ending in Patient/<id>
                target.rfind("Patient/").and_then(|at| ctx.patients.get(&target[at..]).copied())
            })
        };
        let patient = patient.ok_or_else(|| {
            self.error(field, format!("{target} is not a contained Patient nor a Patient in the Bundle"))
        })?;
        let identifiers: Vec<Identifier> = patient
            .get("identifier")
            .cloned()
            .map(serde_json::from_value)
            .transpose()
            .ok()
            .flatten()
            .unwrap_or_default();
        identifiers.iter().find_map(Identifier::person_number).ok_or_else(|| {
            self.error(
                field,
                format!("Patient {target} has no identifier with system {PERSONNUMMER} or {SAMORDNINGSNUMMER}"),
            )
        })
    }

    /// A required RFC 3339 date-time with offset.
    pub fn time(&self, field: &str, value: Option<&str>) -> Result<DateTime<FixedOffset>, MappingError> {
        let value = value.ok_or_else(|| self.error(field, "required: when it happened"))?;
        DateTime::parse_from_rfc3339(value)
            .map_err(|_| self.error(field, format!("{value:?} is not a date and time with offset")))
    }
}

/// Splits `input` (a resource or a Bundle) and maps each resource with `mapper`. Patients are read
/// as supporting resources; other resources the mapper does not know are errors.
pub fn map_input(input: &[u8], pseudonymiser: &Pseudonymiser, mapper: Mapper) -> Result<Mapped, InputError> {
    let json: Value = serde_json::from_slice(input)?;
    map_value(&json, pseudonymiser, mapper)
}

/// As [`map_input`], for parsed JSON.
pub fn map_value(json: &Value, pseudonymiser: &Pseudonymiser, mapper: Mapper) -> Result<Mapped, InputError> {
    let resource_type = json.get("resourceType").and_then(Value::as_str).ok_or(InputError::NotFhir)?;
    let mut entries: Vec<(String, &Value)> = Vec::new();
    let mut patients = HashMap::new();
    if resource_type == "Bundle" {
        for (n, entry) in json.get("entry").and_then(Value::as_array).into_iter().flatten().enumerate() {
            let Some(resource) = entry.get("resource") else { continue };
            if resource.get("resourceType").and_then(Value::as_str) == Some("Patient") {
                if let Some(id) = resource.get("id").and_then(Value::as_str) {
                    patients.insert(format!("Patient/{id}"), resource);
                }
                if let Some(url) = entry.get("fullUrl").and_then(Value::as_str) {
                    patients.insert(url.to_string(), resource);
                }
            }
            entries.push((format!("entry[{n}]"), resource));
        }
    } else {
        entries.push(("resource".to_string(), json));
    }
    let ctx = Context { pseudonymiser, patients };
    let mut mapped = Mapped::default();
    for (position, json) in entries {
        mapped.resources += 1;
        let resource_type = json.get("resourceType").and_then(Value::as_str).unwrap_or_default();
        let id = json.get("id").and_then(Value::as_str);
        let label = match id {
            Some(id) if !resource_type.is_empty() => format!("{resource_type}/{id}"),
            _ => position,
        };
        let resource = Resource { json, resource_type, id, label };
        if resource_type == "Patient" {
            continue;
        }
        match mapper(&resource, &ctx).and_then(|drafts| without_numbers(&resource, drafts)) {
            Ok(drafts) => mapped.drafts.extend(drafts),
            Err(error) => mapped.errors.push(error),
        }
    }
    Ok(mapped)
}

/// `drafts`, unless one holds a personal identity number (copied from an id or a code where the
/// source put one): then the resource is refused and nothing of it leaves the adapter.
pub fn without_numbers(resource: &Resource<'_>, drafts: Vec<Draft>) -> Result<Vec<Draft>, MappingError> {
    match drafts.iter().find(|d| draft_holds_number(d)) {
        Some(_) => Err(resource.error(
            "*",
            "a personal identity number outside the person reference (in an id or a code); persons are named \
             only through Patient.identifier, which is pseudonymised",
        )),
        None => Ok(drafts),
    }
}

/// Whether a draft's id, subject, trace context or data holds a personal identity number.
pub fn draft_holds_number(draft: &Draft) -> bool {
    pii::contains(&draft.id)
        || draft.subject.as_deref().is_some_and(pii::contains)
        || draft.traceparent.as_deref().is_some_and(pii::contains)
        || !pii::find_in_json(&draft.event.data_json()).is_empty()
}

/// The error for a resource type an area does not map.
pub fn unsupported(resource: &Resource<'_>, area: &str, supported: &str) -> MappingError {
    let what = if resource.resource_type.is_empty() { "(none)" } else { resource.resource_type };
    resource.error("resourceType", format!("{what} is not mapped by the {area} adapter (it maps {supported})"))
}

/// `Reference`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Reference {
    /// `Type/id`, `#id` or a URL.
    pub reference: Option<String>,
    /// A logical reference.
    pub identifier: Option<Identifier>,
    /// Text.
    pub display: Option<String>,
}

impl Reference {
    /// The identifier value when its system is `system`.
    pub fn identifier_in(&self, system: &str) -> Option<&str> {
        self.identifier.as_ref().filter(|i| i.system.as_deref() == Some(system)).and_then(|i| i.value.as_deref())
    }

    /// The id part of `Type/id` (or of a URL ending so).
    pub fn target_id(&self) -> Option<&str> {
        self.reference.as_deref().and_then(|r| r.rsplit('/').next()).filter(|s| !s.is_empty())
    }
}

/// `Identifier`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Identifier {
    /// The namespace.
    pub system: Option<String>,
    /// The value.
    pub value: Option<String>,
}

impl Identifier {
    fn person_number(&self) -> Option<String> {
        matches!(self.system.as_deref(), Some(PERSONNUMMER) | Some(SAMORDNINGSNUMMER))
            .then(|| self.value.clone())
            .flatten()
    }
}

/// `Coding`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Coding {
    /// The code system.
    pub system: Option<String>,
    /// The code.
    pub code: Option<String>,
}

/// `CodeableConcept`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CodeableConcept {
    /// Codings.
    #[serde(default)]
    pub coding: Vec<Coding>,
    /// Text.
    pub text: Option<String>,
}

impl CodeableConcept {
    /// Every code, any system.
    pub fn codes(&self) -> impl Iterator<Item = &str> {
        self.coding.iter().filter_map(|c| c.code.as_deref())
    }

    /// Whether it has `code` in `system`.
    pub fn has(&self, system: &str, code: &str) -> bool {
        self.coding.iter().any(|c| c.system.as_deref() == Some(system) && c.code.as_deref() == Some(code))
    }
}

/// The first code of `concepts` (any system) that `accept` takes.
pub fn first_code<T>(concepts: &[CodeableConcept], accept: impl Fn(&str) -> Option<T>) -> Option<T> {
    concepts.iter().flat_map(CodeableConcept::codes).find_map(accept)
}

/// `Period`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Period {
    /// Start.
    pub start: Option<String>,
    /// End.
    pub end: Option<String>,
}

/// `Extension` (the value types the mappings read).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Extension {
    /// Its URL.
    pub url: String,
    /// `valueString`.
    pub value_string: Option<String>,
    /// `valueCode`.
    pub value_code: Option<String>,
    /// `valueDateTime`.
    pub value_date_time: Option<String>,
    /// `valueInteger`.
    pub value_integer: Option<i64>,
    /// `valueBoolean`.
    pub value_boolean: Option<bool>,
    /// Nested extensions.
    #[serde(default)]
    pub extension: Vec<Extension>,
}

/// The extensions named `urn:sgd:fhir:<name>`.
pub fn extensions<'e>(all: &'e [Extension], name: &str) -> impl Iterator<Item = &'e Extension> {
    let url = format!("{EXTENSION_PREFIX}{name}");
    all.iter().filter(move |e| e.url == url)
}

/// The first extension named `urn:sgd:fhir:<name>`.
pub fn extension<'e>(all: &'e [Extension], name: &str) -> Option<&'e Extension> {
    extensions(all, name).next()
}

/// The principal codes among `references` (identifier system [`PRINCIPAL`]), checked.
pub fn principals(resource: &Resource<'_>, field: &str, references: &[Reference]) -> Result<Vec<String>, MappingError> {
    let mut out: Vec<String> = Vec::new();
    for code in references.iter().filter_map(|r| r.identifier_in(PRINCIPAL)) {
        if !sgd_schemas::principals::is_known(code) {
            return Err(resource.error(field, format!("{code:?} is not one of the 34 principals of Skåne")));
        }
        if !out.iter().any(|c| c == code) {
            out.push(code.to_string());
        }
    }
    Ok(out)
}

/// Every area's mapper, chosen by resource type (for an adapter that takes anything).
pub fn any_area(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    match resource.resource_type {
        "Consent" | "AuditEvent" => crate::npo::map_fhir(resource, ctx),
        "Communication" => crate::sdk::map_fhir(resource, ctx),
        "CarePlan" | "Encounter" => crate::plans::map_fhir(resource, ctx),
        "Observation" | "RiskAssessment" => crate::decision::map_fhir(resource, ctx),
        "AdverseEvent" => crate::deviation::map_fhir(resource, ctx),
        "Appointment" => crate::video::map_fhir(resource, ctx),
        _ => Err(unsupported(
            resource,
            "any-area",
            "Consent, AuditEvent, Communication, CarePlan, Encounter, Observation, RiskAssessment, AdverseEvent, Appointment",
        )),
    }
}
