//! Deviations (avvikelser) across organisations: answers and event analyses.

use serde::{Deserialize, Serialize};

use super::{ids::PrincipalCode, moment::Moment, table::StoredTable, table::Table, ProjectedEvent, View};

/// One deviation.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Deviation {
    /// The principal that logged it.
    pub principal: Option<PrincipalCode>,
    /// When.
    pub logged_at: Option<Moment>,
    /// Principals concerned, who must answer.
    pub concerned: Vec<PrincipalCode>,
    /// Probability × consequence ≥ 8 or consequence ≥ 3.
    pub requires_analysis: bool,
    /// First answer by each principal (a few at most: a list, not a map).
    pub answers: Vec<(PrincipalCode, Moment)>,
    /// First completed analysis.
    pub analysis_at: Option<Moment>,
    /// Closed.
    pub closed_at: Option<Moment>,
}

impl Deviation {
    /// When a concerned principal first answered (any answer counts when none is named concerned).
    pub fn first_concerned_answer(&self) -> Option<Moment> {
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
        Self { deviations: Table::bounded("v/deviation/") }
    }
}

impl View for DeviationView {
    /// Applies one event.
    fn apply(&mut self, e: &ProjectedEvent<'_>) {
        use sgd_schemas::DomainEvent as D;
        let at = e.at;
        let earliest = |slot: &mut Option<Moment>| *slot = Some(slot.map_or(at, |t| t.min(at)));
        match e.event {
            D::DeviationCaseLogged(d) => {
                let v = self.deviations.entry(d.deviation_id.as_str());
                v.principal = PrincipalCode::of(&e.envelope.principal);
                earliest(&mut v.logged_at);
                v.concerned = d.concerned_principals.iter().filter_map(|p| PrincipalCode::of(p)).collect();
                v.requires_analysis = d.requires_analysis();
            }
            D::DeviationCaseAnswered(d) => {
                let Some(by) = PrincipalCode::of(&d.answered_by) else { return };
                let v = self.deviations.entry(d.deviation_id.as_str());
                match v.answers.iter_mut().find(|(answered_by, _)| *answered_by == by) {
                    Some((_, first)) => *first = (*first).min(at),
                    None => super::exact::push(&mut v.answers, (by, at)),
                }
            }
            D::DeviationAnalysisCompleted(d) => {
                earliest(&mut self.deviations.entry(d.deviation_id.as_str()).analysis_at)
            }
            D::DeviationCaseClosed(d) => earliest(&mut self.deviations.entry(d.deviation_id.as_str()).closed_at),
            _ => {}
        }
    }

    fn tables(&self) -> Vec<&dyn StoredTable> {
        vec![&self.deviations]
    }

    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        vec![&mut self.deviations]
    }
}
