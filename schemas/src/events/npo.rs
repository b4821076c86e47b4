//! NPÖ – Nationell patientöversikt: roles (producent/konsument), consent (samtycke), record access.

use serde::{Deserialize, Serialize};

use super::{HsaId, PrincipalCode, Pseudonym, Timestamp, UnitKind};

/// A unit's role in NPÖ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Shares its own records (producent).
    Producer,
    /// Reads others' records (konsument).
    Consumer,
}

/// What a consent covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConsentScope {
    /// Care documentation (journal).
    CareDocumentation,
    /// Medication list (läkemedelslista).
    MedicationList,
}

/// The legal basis of a record access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessBasis {
    /// The patient consented (samtycke).
    Consent,
    /// Emergency access (nödåtkomst).
    Emergency,
}

/// `se.sgd.npo.role.activated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleActivated {
    /// The unit's HSA-id.
    pub unit: HsaId,
    /// Producer or consumer.
    pub role: Role,
    /// RIV-TA contracts shared (producers), e.g. `GetCareDocumentation` (informationsmängder).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub information_sets: Vec<String>,
    /// The kind of care actor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit_kind: Option<UnitKind>,
}

/// `se.sgd.npo.role.deactivated`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleDeactivated {
    /// The unit's HSA-id.
    pub unit: HsaId,
    /// Producer or consumer.
    pub role: Role,
    /// The information sets no longer shared (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub information_sets: Vec<String>,
    /// Why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// `se.sgd.npo.consent.given`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentGiven {
    /// The person's pseudonym.
    pub person: Pseudonym,
    /// The consuming unit the consent is given to.
    pub consumer_unit: HsaId,
    /// What it covers.
    pub scope: ConsentScope,
    /// Until when, if limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<Timestamp>,
}

/// `se.sgd.npo.consent.revoked`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentRevoked {
    /// The person's pseudonym.
    pub person: Pseudonym,
    /// The consuming unit.
    pub consumer_unit: HsaId,
    /// What it covered.
    pub scope: ConsentScope,
}

/// `se.sgd.npo.record.accessed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordAccessed {
    /// The person's pseudonym.
    pub person: Pseudonym,
    /// The unit that read.
    pub consumer_unit: HsaId,
    /// The principal whose records were read.
    pub producer_principal: PrincipalCode,
    /// Which information sets were read.
    pub information_sets: Vec<String>,
    /// Consent or emergency.
    pub basis: AccessBasis,
}
