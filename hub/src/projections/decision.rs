//! Decision support: raised early-warning scores and risk flags.

use serde::{Deserialize, Serialize};
use sgd_schemas::events::decision::Band;

use super::{
    ids::{PersonId, PrincipalCode, Text},
    moment::Moment,
    table::StoredTable,
    table::Table,
    ProjectedEvent, View,
};

/// A raised NEWS2 score.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Warning {
    /// The principal that raised it.
    pub principal: Text,
    /// The person's pseudonym.
    pub person: PersonId,
    /// When.
    pub raised_at: Option<Moment>,
    /// The band.
    pub band: Option<Band>,
    /// The score.
    pub score: u32,
}

impl Warning {
    /// `medium` or `high`: must be followed by a plan event within the follow-up limit.
    pub fn needs_follow_up(&self) -> bool {
        matches!(self.band, Some(Band::Medium | Band::High))
    }
}

/// A risk-profiling alert to a primary care centre.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RiskFlag {
    /// The principal that raised it.
    pub principal: Option<PrincipalCode>,
    /// When.
    pub flagged_at: Option<Moment>,
    /// When acknowledged.
    pub acknowledged_at: Option<Moment>,
}

/// The decision-support view.
#[derive(Debug, Clone)]
pub struct DecisionView {
    /// Warnings by assessment id.
    pub warnings: Table<Warning>,
    /// Risk flags by flag id.
    pub flags: Table<RiskFlag>,
    /// Assessment ids of the raised scores by person pseudonym (a plan event re-evaluates the
    /// warnings of its person).
    pub by_person: Table<Vec<Text>, PersonId>,
}

impl Default for DecisionView {
    fn default() -> Self {
        Self {
            warnings: Table::bounded("v/decision/warning/"),
            flags: Table::bounded("v/decision/flag/"),
            by_person: Table::bounded("v/decision/person/"),
        }
    }
}

impl View for DecisionView {
    /// Applies one event.
    fn apply(&mut self, e: &ProjectedEvent<'_>) {
        use sgd_schemas::DomainEvent as D;
        let at = e.at;
        match e.event {
            D::DecisionScoreRaised(d) => {
                let Some(person) = PersonId::parse(&d.person) else {
                    tracing::error!(
                        "a raised score's person is not a pseudonym (validation should have refused it); not recorded"
                    );
                    return;
                };
                let w = self.warnings.entry(d.assessment_id.as_str());
                if w.raised_at.is_none_or(|t| at < t) {
                    *w = Warning {
                        principal: e.envelope.principal.as_str().into(),
                        person,
                        raised_at: Some(at),
                        band: Some(d.band),
                        score: d.score,
                    };
                }
                let ids = self.by_person.entry(&person);
                if !ids.iter().any(|id| *id == d.assessment_id) {
                    super::exact::push(ids, d.assessment_id.as_str().into());
                }
            }
            D::DecisionRiskFlagged(d) => {
                let f = self.flags.entry(d.flag_id.as_str());
                f.principal = PrincipalCode::of(&e.envelope.principal);
                f.flagged_at = Some(f.flagged_at.map_or(at, |t| t.min(at)));
            }
            D::DecisionRiskAcknowledged(d) => {
                let f = self.flags.entry(d.flag_id.as_str());
                f.acknowledged_at = Some(f.acknowledged_at.map_or(at, |t| t.min(at)));
            }
            _ => {}
        }
    }

    fn tables(&self) -> Vec<&dyn StoredTable> {
        vec![&self.warnings, &self.flags, &self.by_person]
    }

    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        vec![&mut self.warnings, &mut self.flags, &mut self.by_person]
    }
}
