//! Mina Planer: discharge coordination (SVU, samverkan vid utskrivning), SIP and other plans.

use serde::{Deserialize, Serialize};

use super::{PrincipalCode, Pseudonym, Timestamp};

/// The process a plan belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Samverkan vid utskrivning (discharge coordination).
    Svu,
    /// Samordnad individuell plan.
    Sip,
    /// Psykiatrisk tvångsvård (LPT).
    Lpt,
    /// Rättspsykiatrisk vård (LRV).
    Lrv,
    /// Akutblad for municipal patients needing acute care.
    Akutblad,
    /// Any other plan.
    Other,
}

/// How a SIP meeting was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingMode {
    /// In person.
    Physical,
    /// Over video.
    Video,
}

/// `se.sgd.plans.plan.created`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanCreated {
    /// The plan id.
    pub plan_id: String,
    /// Its process.
    pub kind: PlanKind,
    /// The person's pseudonym.
    pub person: Pseudonym,
    /// Principals taking part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub participants: Vec<PrincipalCode>,
}

/// `se.sgd.plans.admission.notified` (inskrivningsmeddelande)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdmissionNotified {
    /// The plan id.
    pub plan_id: String,
    /// When the need for post-discharge support was assessed.
    pub need_assessed_at: Timestamp,
    /// When the notice was sent.
    pub sent_at: Timestamp,
}

/// `se.sgd.plans.discharge.ready` (utskrivningsklar)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DischargeReady {
    /// The plan id.
    pub plan_id: String,
    /// When the patient was judged ready for discharge.
    pub ready_at: Timestamp,
}

/// `se.sgd.plans.discharge.withdrawn`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DischargeWithdrawn {
    /// The plan id.
    pub plan_id: String,
}

/// `se.sgd.plans.patient.discharged`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PatientDischarged {
    /// The plan id.
    pub plan_id: String,
    /// When the patient left.
    pub discharged_at: Timestamp,
}

/// `se.sgd.plans.sip.held`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SipHeld {
    /// The plan id.
    pub plan_id: String,
    /// When the SIP meeting was held.
    pub held_at: Timestamp,
    /// In person or over video.
    pub mode: MeetingMode,
}

/// `se.sgd.plans.plan.closed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanClosed {
    /// The plan id.
    pub plan_id: String,
}
