//! Typed domain events, one module per area, in their newest version.
//!
//! [`DomainEvent::decode`] reads a validated event's data after [`crate::upcast`] has brought it
//! to the newest shape, so projections only ever see the newest shape.

pub mod decision;
pub mod deviation;
pub mod hub;
pub mod npo;
pub mod plans;
pub mod sdk;
pub mod video;

use serde::{Deserialize, Serialize};

/// A pseudonym of a person: hex HMAC-SHA256 of the personal identity number (never the number).
pub type Pseudonym = String;
/// A care unit's HSA-id, e.g. `SE2321000255-ABC1`.
pub type HsaId = String;
/// A principal code, e.g. `1280`.
pub type PrincipalCode = String;
/// A timestamp with its offset.
pub type Timestamp = chrono::DateTime<chrono::FixedOffset>;

/// Why typed decoding failed. After validation this means a schema and its Rust type disagree
/// (a bug in this crate); callers dead-letter the event with this message.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The type has no Rust counterpart.
    #[error("no typed event for {0}")]
    UnknownType(String),
    /// The data does not fit the Rust type.
    #[error("data of {event_type} does not fit its typed event: {source}")]
    Data {
        /// The event type.
        event_type: String,
        /// What serde said.
        source: serde_json::Error,
    },
}

macro_rules! domain_events {
    ($( $variant:ident => $type_name:literal, $module:ident :: $data:ident; )*) => {
        /// Every event type of the catalogue, in its newest version.
        #[derive(Debug, Clone, PartialEq)]
        pub enum DomainEvent {
            $(
                #[doc = concat!("`", $type_name, "`")]
                $variant($module::$data),
            )*
        }

        impl DomainEvent {
            /// Every event type with a typed counterpart.
            pub const TYPES: &'static [&'static str] = &[$($type_name),*];

            /// The CloudEvents `type`.
            pub fn event_type(&self) -> &'static str {
                match self { $( Self::$variant(_) => $type_name, )* }
            }

            /// Reads data in the newest shape of `event_type`.
            pub fn decode(event_type: &str, data: serde_json::Value) -> Result<Self, DecodeError> {
                match event_type {
                    $( $type_name => serde_json::from_value(data).map(Self::$variant).map_err(|source| DecodeError::Data { event_type: event_type.to_string(), source }), )*
                    other => Err(DecodeError::UnknownType(other.to_string())),
                }
            }

            /// Reads data in the newest shape of `event_type` straight from its JSON text (no
            /// intermediate [`serde_json::Value`]: what replaying a long log needs).
            pub fn decode_json(event_type: &str, data: &str) -> Result<Self, DecodeError> {
                match event_type {
                    $( $type_name => serde_json::from_str(data).map(Self::$variant).map_err(|source| DecodeError::Data { event_type: event_type.to_string(), source }), )*
                    other => Err(DecodeError::UnknownType(other.to_string())),
                }
            }

            /// The data as JSON (newest shape).
            pub fn data_json(&self) -> serde_json::Value {
                match self { $( Self::$variant(d) => serde_json::to_value(d).unwrap_or_default(), )* }
            }
        }

        $(
            impl From<$module::$data> for DomainEvent {
                fn from(data: $module::$data) -> Self { Self::$variant(data) }
            }
        )*
    };
}

domain_events! {
    NpoRoleActivated => "se.sgd.npo.role.activated", npo::RoleActivated;
    NpoRoleDeactivated => "se.sgd.npo.role.deactivated", npo::RoleDeactivated;
    NpoConsentGiven => "se.sgd.npo.consent.given", npo::ConsentGiven;
    NpoConsentRevoked => "se.sgd.npo.consent.revoked", npo::ConsentRevoked;
    NpoRecordAccessed => "se.sgd.npo.record.accessed", npo::RecordAccessed;
    SdkAddressPublished => "se.sgd.sdk.address.published", sdk::AddressPublished;
    SdkMessageSent => "se.sgd.sdk.message.sent", sdk::MessageSent;
    SdkMessageDelivered => "se.sgd.sdk.message.delivered", sdk::MessageDelivered;
    PlansPlanCreated => "se.sgd.plans.plan.created", plans::PlanCreated;
    PlansAdmissionNotified => "se.sgd.plans.admission.notified", plans::AdmissionNotified;
    PlansDischargeReady => "se.sgd.plans.discharge.ready", plans::DischargeReady;
    PlansDischargeWithdrawn => "se.sgd.plans.discharge.withdrawn", plans::DischargeWithdrawn;
    PlansPatientDischarged => "se.sgd.plans.patient.discharged", plans::PatientDischarged;
    PlansSipHeld => "se.sgd.plans.sip.held", plans::SipHeld;
    PlansPlanClosed => "se.sgd.plans.plan.closed", plans::PlanClosed;
    DecisionAssessmentCompleted => "se.sgd.decision.assessment.completed", decision::AssessmentCompleted;
    DecisionScoreRaised => "se.sgd.decision.score.raised", decision::ScoreRaised;
    DecisionRiskFlagged => "se.sgd.decision.risk.flagged", decision::RiskFlagged;
    DecisionRiskAcknowledged => "se.sgd.decision.risk.acknowledged", decision::RiskAcknowledged;
    DeviationCaseLogged => "se.sgd.deviation.case.logged", deviation::CaseLogged;
    DeviationCaseAnswered => "se.sgd.deviation.case.answered", deviation::CaseAnswered;
    DeviationAnalysisCompleted => "se.sgd.deviation.analysis.completed", deviation::AnalysisCompleted;
    DeviationCaseClosed => "se.sgd.deviation.case.closed", deviation::CaseClosed;
    VideoMeetingBooked => "se.sgd.video.meeting.booked", video::MeetingBooked;
    VideoParticipantAdmitted => "se.sgd.video.participant.admitted", video::ParticipantAdmitted;
    VideoMeetingHeld => "se.sgd.video.meeting.held", video::MeetingHeld;
    HubAdapterHeartbeat => "se.sgd.hub.adapter.heartbeat", hub::AdapterHeartbeat;
}

/// The kind of care actor a unit is (for adoption by kind; school health is followed apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnitKind {
    /// Sjukhus.
    Hospital,
    /// Vårdcentral.
    PrimaryCare,
    /// Psykiatri.
    Psychiatry,
    /// Kommunal hälso- och sjukvård.
    MunicipalHealthCare,
    /// Elevhälsa.
    SchoolHealth,
    /// Socialtjänst.
    SocialServices,
    /// Any other kind.
    Other,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::Catalogue;

    #[test]
    fn every_published_type_has_a_typed_event_and_back() {
        let catalogue = Catalogue::get();
        for t in catalogue.types() {
            assert!(DomainEvent::TYPES.contains(&t), "{t} has no typed event");
        }
        for t in DomainEvent::TYPES {
            assert!(catalogue.knows(t), "{t} has no schema");
        }
    }
}
