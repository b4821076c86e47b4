//! Deviations (avvikelser) across organisations: answers and event analyses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sgd_schemas::events::Timestamp;

use super::{table::Table, ProjectedEvent};

/// One deviation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Deviation {
    /// The principal that logged it.
    pub principal: Option<String>,
    /// When.
    pub logged_at: Option<Timestamp>,
    /// Principals concerned, who must answer.
    pub concerned: Vec<String>,
    /// Probability × consequence ≥ 8 or consequence ≥ 3.
    pub requires_analysis: bool,
    /// First answer by each principal.
    pub answers: BTreeMap<String, Timestamp>,
    /// First completed analysis.
    pub analysis_at: Option<Timestamp>,
    /// Closed.
    pub closed_at: Option<Timestamp>,
}

impl Deviation {
    /// When a concerned principal first answered (any answer counts when none is named concerned).
    pub fn first_concerned_answer(&self) -> Option<Timestamp> {
        self.answers
            .iter()
            .filter(|(p, _)| self.concerned.is_empty() || self.concerned.contains(p))
            .map(|(_, t)| *t)
            .min()
    }
}

/// The deviation view.
#[derive(Debug, Clone)]
pub struct DeviationView {
    /// Deviations by id.
    pub deviations: Table<Deviation>,
}

impl Default for DeviationView {
    fn default() -> Self {
        Self { deviations: Table::new("v/deviation/") }
    }
}

impl DeviationView {
    /// Applies one event.
    pub fn apply(&mut self, e: &ProjectedEvent<'_>) {
        use sgd_schemas::DomainEvent as D;
        let at = e.envelope.time;
        let earliest = |slot: &mut Option<Timestamp>| *slot = Some(slot.map_or(at, |t| t.min(at)));
        match e.event {
            D::DeviationCaseLogged(d) => {
                let v = self.deviations.entry(&d.deviation_id);
                v.principal = Some(e.envelope.principal.clone());
                earliest(&mut v.logged_at);
                v.concerned = d.concerned_principals.clone();
                v.requires_analysis = d.requires_analysis();
            }
            D::DeviationCaseAnswered(d) => {
                let v = self.deviations.entry(&d.deviation_id);
                let slot = v.answers.entry(d.answered_by.clone()).or_insert(at);
                *slot = (*slot).min(at);
            }
            D::DeviationAnalysisCompleted(d) => earliest(&mut self.deviations.entry(&d.deviation_id).analysis_at),
            D::DeviationCaseClosed(d) => earliest(&mut self.deviations.entry(&d.deviation_id).closed_at),
            _ => {}
        }
    }
}
