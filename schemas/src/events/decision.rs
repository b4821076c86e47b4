//! Beslutsstöd: ViSam assessments, NEWS2 early-warning scores and risk profiling.

use serde::{Deserialize, Serialize};

use super::{HsaId, Pseudonym};

/// ACVPU level of consciousness.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Consciousness {
    /// Alert.
    A,
    /// New confusion.
    C,
    /// Responds to voice.
    V,
    /// Responds to pain.
    P,
    /// Unresponsive.
    U,
}

/// Vital signs measured in an assessment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Vitals {
    /// Breaths per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub respiration_rate: Option<u32>,
    /// Oxygen saturation, %.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spo2: Option<u32>,
    /// On supplemental oxygen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supplemental_oxygen: Option<bool>,
    /// Systolic blood pressure, mmHg.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systolic_bp: Option<u32>,
    /// Heart rate per minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pulse: Option<u32>,
    /// ACVPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consciousness: Option<Consciousness>,
    /// Temperature, °C.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
}

/// What the assessment recommended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Recommendation {
    /// Care at home.
    StayHome,
    /// To the emergency department.
    EmergencyDepartment,
    /// Direct admission to a ward.
    DirectAdmission,
}

/// NEWS2 clinical risk band.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// 0–4.
    Low,
    /// A single parameter scoring 3.
    LowMedium,
    /// 5–6.
    Medium,
    /// 7 or more.
    High,
}

/// The early-warning scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scale {
    /// National Early Warning Score 2 (RCP 2017).
    News2,
}

/// `se.sgd.decision.assessment.completed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssessmentCompleted {
    /// The person's pseudonym.
    pub person: Pseudonym,
    /// The assessment id.
    pub assessment_id: String,
    /// Measured vitals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vitals: Option<Vitals>,
    /// What it recommended.
    pub recommendation: Recommendation,
}

/// `se.sgd.decision.score.raised`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreRaised {
    /// The person's pseudonym.
    pub person: Pseudonym,
    /// The assessment that raised it.
    pub assessment_id: String,
    /// The scale.
    pub scale: Scale,
    /// The score, 0–20.
    pub score: u32,
    /// The band.
    pub band: Band,
}

/// `se.sgd.decision.risk.flagged`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskFlagged {
    /// The person's pseudonym.
    pub person: Pseudonym,
    /// The flag id.
    pub flag_id: String,
    /// The person's primary care centre (vårdcentral), alerted.
    pub primary_care_unit: HsaId,
    /// Where the person sought care.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setting: Option<String>,
}

/// `se.sgd.decision.risk.acknowledged`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RiskAcknowledged {
    /// The flag id.
    pub flag_id: String,
}
