//! SDK inputs: FHIR `Communication` → `sdk.message.sent` (a message) or `sdk.message.delivered`
//! (a receipt: a Communication `inResponseTo` the message), and the CSV of function addresses →
//! `sdk.address.published`.

use serde::Deserialize;
use sgd_schemas::events::{
    sdk::{AddressPublished, DeliveryError, DeliveryStatus, MessageDelivered, MessageSent},
    UnitKind,
};

use crate::{
    cloudevent::Draft,
    fhir::{self, CodeableConcept, Context, Identifier, MappingError, Reference, Resource},
    tabular,
};

/// Maps a `Communication`.
pub fn map_fhir(resource: &Resource<'_>, ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    match resource.resource_type {
        "Communication" => communication(resource, ctx),
        _ => Err(fhir::unsupported(resource, "sdk", "Communication")),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Communication {
    #[serde(default)]
    identifier: Vec<Identifier>,
    status: Option<String>,
    status_reason: Option<CodeableConcept>,
    #[serde(default)]
    in_response_to: Vec<Reference>,
    #[serde(default)]
    recipient: Vec<Reference>,
    topic: Option<CodeableConcept>,
    sent: Option<String>,
    received: Option<String>,
}

fn communication(resource: &Resource<'_>, _ctx: &Context<'_>) -> Result<Vec<Draft>, MappingError> {
    let c: Communication = resource.parse()?;
    if let Some(original) = c.in_response_to.first() {
        // A receipt (meddelandekvittens) for the message it answers.
        let message_id = original
            .identifier
            .as_ref()
            .and_then(|i| i.value.clone())
            .or_else(|| original.target_id().map(str::to_string))
            .ok_or_else(|| resource.error("inResponseTo", "required: the message as a reference or an identifier"))?;
        let status = match c.status.as_deref() {
            Some("completed") => DeliveryStatus::Accepted,
            Some("not-done") => DeliveryStatus::Rejected,
            other => {
                return Err(resource
                    .error("status", format!("{other:?}: a receipt is completed (accepted) or not-done (rejected)")))
            }
        };
        let error = match status {
            DeliveryStatus::Accepted => None,
            DeliveryStatus::Rejected => {
                let reason = c.status_reason.as_ref();
                let code = reason.and_then(|r| r.codes().next()).map(str::to_string).ok_or_else(|| {
                    resource.error("statusReason", "required for a rejection: the receiver's error code as a coding")
                })?;
                Some(DeliveryError { code, description: reason.and_then(|r| r.text.clone()) })
            }
        };
        let received_at = resource.time("received", c.received.as_deref().or(c.sent.as_deref()))?;
        let event = MessageDelivered { message_id, status, received_at, error };
        return Ok(vec![Draft::at(resource.event_id("delivered")?, received_at, event.into())]);
    }
    if !matches!(c.status.as_deref(), Some("completed" | "in-progress")) {
        return Err(resource.error("status", format!("{:?}: a sent message is in-progress or completed", c.status)));
    }
    let message_id = c
        .identifier
        .iter()
        .find_map(|i| i.value.clone())
        .or_else(|| resource.id.map(str::to_string))
        .ok_or_else(|| resource.error("identifier", "required: the message id"))?;
    let principals = fhir::principals(resource, "recipient", &c.recipient)?;
    let recipient_principal = principals.first().cloned().ok_or_else(|| {
        resource
            .error("recipient", format!("required: the receiving principal as an identifier in {}", fhir::PRINCIPAL))
    })?;
    let recipient_address = c.recipient.iter().find_map(|r| r.identifier_in(fhir::HSA_ID)).map(str::to_string);
    let conversation_id =
        c.topic.as_ref().and_then(|t| t.codes().next().map(str::to_string).or_else(|| t.text.clone()));
    let time = resource.time("sent", c.sent.as_deref())?;
    let event = MessageSent { message_id, recipient_principal, recipient_address, conversation_id };
    Ok(vec![Draft::at(resource.event_id("sent")?, time, event.into())])
}

/// The header of the function-address CSV.
pub const ADDRESSES_HEADER: &[&str] = &["time", "unit", "function_address", "unit_kind"];

#[derive(Deserialize)]
struct AddressRow {
    time: String,
    unit: String,
    function_address: String,
    unit_kind: String,
}

/// Maps the CSV of SDK function addresses (header [`ADDRESSES_HEADER`]; `unit_kind` may be empty).
pub fn map_addresses_csv(input: &[u8]) -> Result<fhir::Mapped, tabular::CsvError> {
    tabular::map_csv(input, ADDRESSES_HEADER, |row: &AddressRow, line| {
        let time = tabular::time(line, "time", &row.time)?;
        if row.unit.is_empty() || row.function_address.is_empty() {
            return Err(tabular::row_error(line, "unit/function_address", "both are required"));
        }
        let unit_kind: Option<UnitKind> =
            (!row.unit_kind.is_empty()).then(|| tabular::enum_value(line, "unit_kind", &row.unit_kind)).transpose()?;
        let id = format!("sdk-address/{}/{}", row.unit, row.function_address);
        let event =
            AddressPublished { unit: row.unit.clone(), function_address: row.function_address.clone(), unit_kind };
        Ok(vec![Draft::at(id, time, event.into())])
    })
}
