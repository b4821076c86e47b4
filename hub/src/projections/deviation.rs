//! Deviations (avvikelser) across organisations: answers and event analyses.

use serde::{Deserialize, Serialize};
use sgd_schemas::events::Timestamp;

use super::{ids::Text, table::Table, ProjectedEvent};

/// One deviation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Deviation {
    /// The principal that logged it.
    pub principal: Option<Text>,
    /// When.
    pub logged_at: Option<Timestamp>,
    /// Principals concerned, who must answer.
    pub concerned: Vec<Text>,
    /// Probability × consequence ≥ 8 or consequence ≥ 3.
    pub requires_analysis: bool,
    /// First answer by each principal (a few at most: a list, not a map).
    pub answers: Vec<(Text, Timestamp)>,
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
                let v = self.deviations.entry(d.deviation_id.as_str());
                v.principal = Some(e.envelope.principal.as_str().into());
                earliest(&mut v.logged_at);
                v.concerned = d.concerned_principals.iter().map(|p| p.as_str().into()).collect();
                v.requires_analysis = d.requires_analysis();
            }
            D::DeviationCaseAnswered(d) => {
                let v = self.deviations.entry(d.deviation_id.as_str());
                match v.answers.iter_mut().find(|(by, _)| *by == d.answered_by) {
                    Some((_, first)) => *first = (*first).min(at),
                    None => super::exact::push(&mut v.answers, (d.answered_by.as_str().into(), at)),
                }
            }
            D::DeviationAnalysisCompleted(d) => {
                earliest(&mut self.deviations.entry(d.deviation_id.as_str()).analysis_at)
            }
            D::DeviationCaseClosed(d) => earliest(&mut self.deviations.entry(d.deviation_id.as_str()).closed_at),
            _ => {}
        }
    }
}
