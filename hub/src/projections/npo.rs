//! NPÖ: which units are producers and consumers (with their information sets), and consents.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sgd_schemas::events::{npo, Timestamp, UnitKind};

use super::{
    ids::{PersonId, Text},
    moment::Moment,
    table::Table,
    ProjectedEvent,
};

/// One unit's role (producer or consumer) over time.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UnitRole {
    /// The principal the unit belongs to (who published).
    pub principal: Text,
    /// The unit's HSA-id.
    pub unit: Text,
    /// `producer` or `consumer`.
    pub role: Text,
    /// The kind of care actor, when told.
    pub unit_kind: Option<UnitKind>,
    /// Every activation and deactivation, sorted by time (ties: in arrival order).
    pub changes: Vec<RoleChange>,
}

/// An activation or a deactivation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RoleChange {
    /// When.
    pub at: Timestamp,
    /// Activated (true) or deactivated.
    pub active: bool,
    /// The information sets named (deactivation: those no longer shared; all when empty).
    pub information_sets: Vec<String>,
}

impl UnitRole {
    /// Whether the role is active at `as_of`, and the information sets shared then.
    pub fn state_at(&self, as_of: Timestamp) -> Option<BTreeSet<String>> {
        let mut state: Option<BTreeSet<String>> = None;
        for change in self.changes.iter().filter(|c| c.at <= as_of) {
            if change.active {
                let sets = state.get_or_insert_with(BTreeSet::new);
                sets.extend(change.information_sets.iter().cloned());
            } else if change.information_sets.is_empty() {
                state = None;
            } else if let Some(sets) = state.as_mut() {
                for s in &change.information_sets {
                    sets.remove(s);
                }
                if sets.is_empty() {
                    state = None;
                }
            }
        }
        state
    }

    fn record(&mut self, change: RoleChange) {
        let at = self.changes.partition_point(|c| c.at <= change.at);
        super::exact::insert(&mut self.changes, at, change);
    }
}

/// A consent given or revoked: one key of the read model (in sled, by person, not in memory:
/// consents are read one person at a time, when a coordinator asks for a timeline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentChange {
    /// The person.
    pub person: PersonId,
    /// The consuming unit.
    pub consumer_unit: Text,
    /// The scope.
    pub scope: npo::ConsentScope,
    /// When.
    pub at: Moment,
    /// The log sequence of the event (orders changes made at the same moment as they arrived).
    pub sequence: u64,
    /// Given (true) or revoked.
    pub given: bool,
    /// Until when a given consent holds.
    pub valid_until: Option<Moment>,
}

/// The change a consent event makes, if it is one (a `person` that is not a pseudonym, which
/// validation rules out, records nothing).
pub fn consent_change(e: &ProjectedEvent<'_>, sequence: u64) -> Option<ConsentChange> {
    use sgd_schemas::DomainEvent as D;
    let (person, consumer_unit, scope, given, valid_until) = match e.event {
        D::NpoConsentGiven(d) => (&d.person, &d.consumer_unit, d.scope, true, d.valid_until.map(Moment::from)),
        D::NpoConsentRevoked(d) => (&d.person, &d.consumer_unit, d.scope, false, None),
        _ => return None,
    };
    let Some(person) = PersonId::parse(person) else {
        tracing::error!("a consent's person is not a pseudonym (validation should have refused it); not recorded");
        return None;
    };
    Some(ConsentChange {
        person,
        consumer_unit: consumer_unit.as_str().into(),
        scope,
        at: e.at,
        sequence,
        given,
        valid_until,
    })
}

/// Whether any of a person's consents (one per consuming unit and scope) holds at `as_of`: its
/// latest change at or before `as_of` (by time, then log position) gave it, and it has not expired.
pub fn any_consent_valid<'a>(changes: impl IntoIterator<Item = &'a ConsentChange>, as_of: Timestamp) -> bool {
    let as_of = Moment::from(as_of);
    let mut latest: std::collections::HashMap<(&str, &str), &ConsentChange> = Default::default();
    for change in changes.into_iter().filter(|c| c.at <= as_of) {
        let slot = latest.entry((change.consumer_unit.as_str(), scope_name(change.scope))).or_insert(change);
        if (change.at, change.sequence) > (slot.at, slot.sequence) {
            *slot = change;
        }
    }
    latest.values().any(|c| c.given && c.valid_until.is_none_or(|until| until > as_of))
}

/// The NPÖ view (consents are kept by the read model, see [`consent_change`]).
#[derive(Debug, Clone)]
pub struct NpoView {
    /// Unit roles by `<principal>/<unit>/<role>`.
    pub roles: Table<UnitRole>,
}

impl Default for NpoView {
    fn default() -> Self {
        Self { roles: Table::new("v/npo/role/") }
    }
}

fn role_name(role: npo::Role) -> &'static str {
    match role {
        npo::Role::Producer => "producer",
        npo::Role::Consumer => "consumer",
    }
}

/// A consent scope as the events name it.
pub fn scope_name(scope: npo::ConsentScope) -> &'static str {
    match scope {
        npo::ConsentScope::CareDocumentation => "care_documentation",
        npo::ConsentScope::MedicationList => "medication_list",
    }
}

impl NpoView {
    /// Applies one event.
    pub fn apply(&mut self, e: &ProjectedEvent<'_>) {
        use sgd_schemas::DomainEvent as D;
        let principal = &e.envelope.principal;
        let at = e.envelope.time;
        match e.event {
            D::NpoRoleActivated(d) => {
                let role = self.role(principal, &d.unit, d.role);
                if d.unit_kind.is_some() {
                    role.unit_kind = d.unit_kind;
                }
                role.record(RoleChange { at, active: true, information_sets: d.information_sets.clone() });
            }
            D::NpoRoleDeactivated(d) => {
                self.role(principal, &d.unit, d.role).record(RoleChange {
                    at,
                    active: false,
                    information_sets: d.information_sets.clone(),
                });
            }
            _ => {}
        }
    }

    fn role(&mut self, principal: &str, unit: &str, role: npo::Role) -> &mut UnitRole {
        let name = role_name(role);
        let entry = self.roles.entry(format!("{principal}/{unit}/{name}").as_str());
        if entry.unit.is_empty() {
            entry.principal = principal.into();
            entry.unit = unit.into();
            entry.role = name.into();
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sgd_schemas::{DomainEvent, Envelope};

    use super::{any_consent_valid, consent_change, ConsentChange};
    use crate::projections::{
        ids::PersonId,
        testing::{at, event, person},
        ProjectedEvent,
    };

    /// The consent changes of `events`, at log sequences 1, 2, …
    fn changes(events: &[(Envelope, DomainEvent)]) -> Vec<ConsentChange> {
        let logged = events.iter().zip(1..);
        logged
            .filter_map(|((envelope, event), sequence)| consent_change(&ProjectedEvent::new(envelope, event), sequence))
            .collect()
    }

    fn has_valid_consent(changes: &[ConsentChange], person: &PersonId, as_of: sgd_schemas::events::Timestamp) -> bool {
        any_consent_valid(changes.iter().filter(|c| c.person == *person), as_of)
    }

    #[test]
    fn consent_holds_until_revoked_or_expired() {
        let p = person('a');
        let q = person('b');
        let views = changes(&[
            event(
                "se.sgd.npo.consent.given",
                "1280",
                "2026-03-01T00:00:00Z",
                json!({"person": p, "consumer_unit": "SE2120001124-A", "scope": "care_documentation"}),
            ),
            event(
                "se.sgd.npo.consent.revoked",
                "1280",
                "2026-03-10T00:00:00Z",
                json!({"person": p, "consumer_unit": "SE2120001124-A", "scope": "care_documentation"}),
            ),
            event(
                "se.sgd.npo.consent.given",
                "1280",
                "2026-03-01T00:00:00Z",
                json!({"person": q, "consumer_unit": "SE2120001124-A", "scope": "medication_list", "valid_until": "2026-03-05T00:00:00Z"}),
            ),
        ]);
        let (p, q) = (PersonId::parse(&p).unwrap(), PersonId::parse(&q).unwrap());
        assert!(!has_valid_consent(&views, &p, at("2026-02-28T00:00:00Z")));
        assert!(has_valid_consent(&views, &p, at("2026-03-09T23:59:59Z")));
        assert!(!has_valid_consent(&views, &p, at("2026-03-10T00:00:00Z")));
        assert!(has_valid_consent(&views, &q, at("2026-03-04T23:59:59Z")));
        assert!(!has_valid_consent(&views, &q, at("2026-03-05T00:00:00Z")));
    }

    #[test]
    fn a_persons_consents_to_several_units_and_scopes_are_kept_apart() {
        let p = person('c');
        let consent = |action: &str, unit: &str, scope: &str, time: &str| {
            event(
                &format!("se.sgd.npo.consent.{action}"),
                "1280",
                time,
                json!({"person": p, "consumer_unit": unit, "scope": scope}),
            )
        };
        let views = changes(&[
            consent("given", "SE2120001124-A", "care_documentation", "2026-03-01T00:00:00Z"),
            consent("given", "SE2120001124-B", "care_documentation", "2026-03-02T00:00:00Z"),
            consent("given", "SE2120001124-A", "medication_list", "2026-03-03T00:00:00Z"),
            consent("revoked", "SE2120001124-A", "care_documentation", "2026-03-04T00:00:00Z"),
            consent("revoked", "SE2120001124-B", "care_documentation", "2026-03-05T00:00:00Z"),
        ]);
        let id = PersonId::parse(&p).unwrap();
        assert_eq!(views.len(), 5);
        // Medication list at unit A is still given after both care-documentation revocations.
        assert!(has_valid_consent(&views, &id, at("2026-03-06T00:00:00Z")));
        assert!(!has_valid_consent(&views, &id, at("2026-02-28T00:00:00Z")));
        let someone_else = PersonId::parse(&person('d')).unwrap();
        assert!(!has_valid_consent(&views, &someone_else, at("2026-03-06T00:00:00Z")));
    }
}
