//! The routing rules: who an event concerns. One module per area; each takes the event's typed
//! data and the publishing principal, updates what it remembers, and names the recipients.
//! `docs/routing.md` holds the same rules as a table. An event no rule names goes to no one:
//! person-level events go only where a rule says.

mod decision;
mod deviation;
mod npo;
mod plans;
mod sdk;
mod video;

use sgd_schemas::events::DomainEvent;

use super::{store::RouterStoreError, RoutingState};

/// Where an event goes, and by which rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routing {
    /// The rule's name (metrics, logs): e.g. `risk_flag_to_primary_care`.
    pub rule: &'static str,
    /// The recipients' principal codes, sorted, each once. Empty when the rule applies but
    /// names no one it knows (e.g. a unit never introduced): counted as unresolved.
    pub recipients: Vec<String>,
}

impl Routing {
    fn new(rule: &'static str, recipients: impl IntoIterator<Item = String>) -> Self {
        let mut recipients: Vec<String> = recipients.into_iter().collect();
        recipients.sort();
        recipients.dedup();
        Self { rule, recipients }
    }
}

/// Applies `event` (published by `principal`) to `state` and says where it goes; `None` when no
/// rule covers its type. Fails only when the state's store cannot be read.
pub fn route(
    state: &mut RoutingState,
    principal: &str,
    event: &DomainEvent,
) -> Result<Option<Routing>, RouterStoreError> {
    use DomainEvent as E;
    match event {
        E::NpoRoleActivated(data) => npo::role_activated(state, principal, data),
        E::SdkAddressPublished(data) => sdk::address_published(state, principal, data),
        E::SdkMessageSent(data) => sdk::message_sent(state, principal, data),
        E::SdkMessageDelivered(data) => sdk::message_delivered(state, data),
        E::PlansPlanCreated(data) => plans::plan_created(state, data),
        E::PlansAdmissionNotified(data) => plans::to_participants(state, &data.plan_id),
        E::PlansDischargeReady(data) => plans::to_participants(state, &data.plan_id),
        E::PlansDischargeWithdrawn(data) => plans::to_participants(state, &data.plan_id),
        E::PlansPatientDischarged(data) => plans::to_participants(state, &data.plan_id),
        E::PlansSipHeld(data) => plans::to_participants(state, &data.plan_id),
        E::PlansPlanClosed(data) => plans::plan_closed(state, &data.plan_id),
        E::DecisionScoreRaised(data) => decision::score_raised(state, data),
        E::DecisionRiskFlagged(data) => decision::risk_flagged(state, data),
        E::DeviationCaseLogged(data) => deviation::case_logged(state, data),
        E::DeviationCaseAnswered(data) => deviation::to_concerned(state, &data.deviation_id),
        E::DeviationAnalysisCompleted(data) => deviation::to_concerned(state, &data.deviation_id),
        E::DeviationCaseClosed(data) => deviation::case_closed(state, &data.deviation_id),
        E::VideoMeetingBooked(data) => video::meeting_booked(state, data),
        E::VideoMeetingHeld(data) => video::meeting_held(state, &data.meeting_id),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests;
