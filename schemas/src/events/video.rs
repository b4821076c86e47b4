//! Säkra videomöten: secure video meetings and how participants were identified.

use serde::{Deserialize, Serialize};

use super::PrincipalCode;

/// Why the meeting is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeetingPurpose {
    /// A SIP meeting.
    Sip,
    /// Discharge coordination.
    Svu,
    /// A consultation.
    Consultation,
    /// Anything else.
    Other,
}

/// How a participant was identified.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdentificationMethod {
    /// BankID.
    Bankid,
    /// SITHS card.
    Siths,
    /// Freja eID.
    Freja,
    /// Not identified.
    None,
}

impl IdentificationMethod {
    /// BankID, SITHS and Freja are strong identification.
    pub fn is_strong(self) -> bool {
        !matches!(self, Self::None)
    }
}

/// `se.sgd.video.meeting.booked`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingBooked {
    /// The meeting id.
    pub meeting_id: String,
    /// Why.
    pub purpose: MeetingPurpose,
    /// Principals taking part.
    pub principals: Vec<PrincipalCode>,
    /// The plan it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
}

/// `se.sgd.video.participant.admitted`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParticipantAdmitted {
    /// The meeting id.
    pub meeting_id: String,
    /// How the participant was identified.
    pub method: IdentificationMethod,
    /// Their role in the meeting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// `se.sgd.video.meeting.held`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeetingHeld {
    /// The meeting id.
    pub meeting_id: String,
    /// Its length in seconds.
    pub duration_s: u64,
    /// How many took part.
    pub participants: u32,
}
