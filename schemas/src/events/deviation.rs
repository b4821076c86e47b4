//! Avvikelsehantering och händelseanalys: cross-organisation deviations and their analyses.

use serde::{Deserialize, Serialize};

use super::PrincipalCode;

/// Whether harm happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actuality {
    /// It happened.
    Actual,
    /// Tillbud: it nearly happened.
    NearMiss,
}

/// `se.sgd.deviation.case.logged`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseLogged {
    /// The deviation id.
    pub deviation_id: String,
    /// The principals concerned, who must answer.
    pub concerned_principals: Vec<PrincipalCode>,
    /// Its category.
    pub category: String,
    /// Actual or near miss.
    pub actuality: Actuality,
    /// Probability, 1–4.
    pub probability: u8,
    /// Consequence, 1–4.
    pub consequence: u8,
    /// The plan it concerns, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_id: Option<String>,
}

impl CaseLogged {
    /// An event analysis (händelseanalys) is required when probability × consequence ≥ 8 or
    /// consequence ≥ 3.
    pub fn requires_analysis(&self) -> bool {
        u32::from(self.probability) * u32::from(self.consequence) >= 8 || self.consequence >= 3
    }
}

/// `se.sgd.deviation.case.answered`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseAnswered {
    /// The deviation id.
    pub deviation_id: String,
    /// The answering principal.
    pub answered_by: PrincipalCode,
}

/// `se.sgd.deviation.analysis.completed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisCompleted {
    /// The deviation id.
    pub deviation_id: String,
    /// Reported under Lex Maria.
    pub lex_maria: bool,
}

/// `se.sgd.deviation.case.closed`
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseClosed {
    /// The deviation id.
    pub deviation_id: String,
}
