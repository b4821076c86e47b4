//! Mina Planer: plans and their SVU/SIP milestones, and which persons had plan activity when.

use serde::{Deserialize, Serialize};
use sgd_schemas::events::plans::PlanKind;

use super::{
    ids::{PersonId, PrincipalCode, Text},
    moment::Moment,
    table::StoredTable,
    table::Table,
    ProjectedEvent, View,
};

/// One plan as its events describe it (earliest time of each milestone).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Plan {
    /// The principal that created it.
    pub principal: Option<PrincipalCode>,
    /// Its process.
    pub kind: Option<PlanKind>,
    /// The person's pseudonym.
    pub person: Option<PersonId>,
    /// Principals taking part.
    pub participants: Vec<PrincipalCode>,
    /// Created.
    pub created_at: Option<Moment>,
    /// Need for support assessed (admission notice).
    pub need_assessed_at: Option<Moment>,
    /// Admission notice sent (inskrivningsmeddelande).
    pub notice_sent_at: Option<Moment>,
    /// The principal that sent the notice.
    pub notice_principal: Option<PrincipalCode>,
    /// Ready for discharge (utskrivningsklar).
    pub ready_at: Option<Moment>,
    /// Ready-for-discharge withdrawn.
    pub withdrawn_at: Option<Moment>,
    /// Discharged.
    pub discharged_at: Option<Moment>,
    /// The principal that reported the discharge.
    pub discharge_principal: Option<PrincipalCode>,
    /// First SIP meeting held.
    pub sip_held_at: Option<Moment>,
    /// Closed.
    pub closed_at: Option<Moment>,
    /// Times of every event about the plan (for "followed by a plan event").
    pub event_times: Vec<Moment>,
}

impl Plan {
    /// The principals a discharge episode is attributed to: the participants, or the creator.
    pub fn accountable_principals(&self) -> Vec<PrincipalCode> {
        if self.participants.is_empty() {
            self.principal.iter().copied().collect()
        } else {
            let mut p = self.participants.clone();
            p.sort();
            p.dedup();
            p
        }
    }
}

/// The plans view.
#[derive(Debug, Clone)]
pub struct PlansView {
    /// Plans by plan id (boxed: a plan is 152 bytes, and a hash table keeps room for more
    /// entries than it holds; boxed, the spare room is a pointer each).
    pub plans: Table<Box<Plan>>,
    /// Plan ids by person pseudonym.
    pub by_person: Table<Vec<Text>, PersonId>,
}

impl Default for PlansView {
    fn default() -> Self {
        Self { plans: Table::bounded("v/plans/plan/"), by_person: Table::bounded("v/plans/person/") }
    }
}

fn earliest(slot: &mut Option<Moment>, at: Moment) {
    *slot = Some(slot.map_or(at, |t| t.min(at)));
}

/// The plan id of a Mina Planer event.
pub fn plan_event_id(event: &sgd_schemas::DomainEvent) -> Option<&String> {
    use sgd_schemas::DomainEvent as D;
    match event {
        D::PlansPlanCreated(d) => Some(&d.plan_id),
        D::PlansAdmissionNotified(d) => Some(&d.plan_id),
        D::PlansDischargeReady(d) => Some(&d.plan_id),
        D::PlansDischargeWithdrawn(d) => Some(&d.plan_id),
        D::PlansPatientDischarged(d) => Some(&d.plan_id),
        D::PlansSipHeld(d) => Some(&d.plan_id),
        D::PlansPlanClosed(d) => Some(&d.plan_id),
        _ => None,
    }
}

impl View for PlansView {
    /// Applies one event.
    fn apply(&mut self, e: &ProjectedEvent<'_>) {
        use sgd_schemas::DomainEvent as D;
        let principal = &e.envelope.principal;
        let at = e.at;
        let Some(plan_id) = plan_event_id(e.event) else { return };
        let plan = self.plans.entry(plan_id.as_str());
        let at_index = plan.event_times.partition_point(|t| *t <= at);
        super::exact::insert(&mut plan.event_times, at_index, at);
        let mut new_person = None;
        match e.event {
            D::PlansPlanCreated(d) => {
                plan.principal = PrincipalCode::of(principal);
                plan.kind = Some(d.kind);
                let person = PersonId::parse(&d.person);
                if person.is_none() {
                    tracing::error!(
                        "a plan's person is not a pseudonym (validation should have refused it); plan kept without one"
                    );
                }
                if plan.person.is_none() {
                    new_person = person;
                }
                plan.person = person;
                plan.participants = d.participants.iter().filter_map(|p| PrincipalCode::of(p)).collect();
                earliest(&mut plan.created_at, at);
            }
            D::PlansAdmissionNotified(d) if plan.notice_sent_at.is_none_or(|t| t > d.sent_at) => {
                plan.notice_sent_at = Some(d.sent_at.into());
                plan.need_assessed_at = Some(d.need_assessed_at.into());
                plan.notice_principal = PrincipalCode::of(principal);
            }
            D::PlansDischargeReady(d) => earliest(&mut plan.ready_at, d.ready_at.into()),
            D::PlansDischargeWithdrawn(_) => earliest(&mut plan.withdrawn_at, at),
            D::PlansPatientDischarged(d) => {
                earliest(&mut plan.discharged_at, d.discharged_at.into());
                plan.discharge_principal = PrincipalCode::of(principal);
            }
            D::PlansSipHeld(d) => earliest(&mut plan.sip_held_at, d.held_at.into()),
            D::PlansPlanClosed(_) => earliest(&mut plan.closed_at, at),
            _ => {}
        }
        if let Some(person) = new_person {
            let ids = self.by_person.entry(&person);
            if !ids.iter().any(|id| id == plan_id) {
                super::exact::push(ids, plan_id.as_str().into());
            }
        }
    }

    fn tables(&self) -> Vec<&dyn StoredTable> {
        vec![&self.plans, &self.by_person]
    }

    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        vec![&mut self.plans, &mut self.by_person]
    }
}

impl PlansView {
    /// Whether `person` had any plan event in `(after, until]` (in a plan that is theirs now: a
    /// plan created again for someone else counts for that person only).
    pub fn person_active_between(&self, person: &PersonId, after: Moment, until: Moment) -> bool {
        let Some(ids) = self.by_person.get(person) else { return false };
        let plans = ids.iter().filter_map(|id| self.plans.get(id.as_str()));
        plans.filter(|plan| plan.person.as_ref() == Some(person)).any(|plan| {
            let from = plan.event_times.partition_point(|t| *t <= after);
            plan.event_times.get(from).is_some_and(|t| *t <= until)
        })
    }
}
