//! NPÖ: which units are producers and consumers (with their information sets), and consents.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sgd_schemas::events::{npo, Timestamp, UnitKind};

use super::{
    ids::{PersonId, PrincipalCode, Text},
    moment::Moment,
    table::StoredTable,
    table::Table,
    ProjectedEvent, View,
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

/// A person's consent to one consuming unit for one scope, over time (one of the person's
/// consents, kept under the person).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Consent {
    /// The consuming unit.
    pub consumer_unit: Text,
    /// The scope.
    pub scope: Text,
    /// The principal that recorded it (the first to).
    pub principal: PrincipalCode,
    /// Given and revoked, sorted by time.
    pub changes: Vec<ConsentChange>,
}

/// A consent given or revoked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConsentChange {
    /// When.
    pub at: Moment,
    /// Given (true) or revoked.
    pub given: bool,
    /// Until when a given consent holds.
    pub valid_until: Option<Moment>,
}

impl Consent {
    /// Whether the consent holds at `as_of`: given, not revoked since, not expired.
    pub fn valid_at(&self, as_of: Timestamp) -> bool {
        match self.changes.iter().rfind(|c| c.at <= as_of) {
            Some(c) if c.given => c.valid_until.is_none_or(|until| until > as_of),
            _ => false,
        }
    }

    fn record(&mut self, change: ConsentChange) {
        let at = self.changes.partition_point(|c| c.at <= change.at);
        super::exact::insert(&mut self.changes, at, change);
    }
}

/// The NPÖ view.
#[derive(Debug, Clone)]
pub struct NpoView {
    /// Unit roles by `<principal>/<unit>/<role>`.
    pub roles: Table<UnitRole>,
    /// Each person's consents (one per consuming unit and scope), by pseudonym.
    pub consents: Table<Vec<Consent>, PersonId>,
}

impl Default for NpoView {
    fn default() -> Self {
        Self { roles: Table::new("v/npo/role/"), consents: Table::bounded("v/npo/consent/") }
    }
}

fn role_name(role: npo::Role) -> &'static str {
    match role {
        npo::Role::Producer => "producer",
        npo::Role::Consumer => "consumer",
    }
}

fn scope_name(scope: npo::ConsentScope) -> &'static str {
    match scope {
        npo::ConsentScope::CareDocumentation => "care_documentation",
        npo::ConsentScope::MedicationList => "medication_list",
    }
}

impl View for NpoView {
    /// Applies one event.
    fn apply(&mut self, e: &ProjectedEvent<'_>) {
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
            D::NpoConsentGiven(d) => {
                let change = ConsentChange { at: e.at, given: true, valid_until: d.valid_until.map(Moment::from) };
                if let Some(consent) = self.consent(principal, &d.person, &d.consumer_unit, d.scope) {
                    consent.record(change);
                }
            }
            D::NpoConsentRevoked(d) => {
                let change = ConsentChange { at: e.at, given: false, valid_until: None };
                if let Some(consent) = self.consent(principal, &d.person, &d.consumer_unit, d.scope) {
                    consent.record(change);
                }
            }
            _ => {}
        }
    }

    fn tables(&self) -> Vec<&dyn StoredTable> {
        vec![&self.roles, &self.consents]
    }

    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        vec![&mut self.roles, &mut self.consents]
    }
}

impl NpoView {
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

    /// The person's consent to `unit` for `scope`; `None` (nothing recorded) when `person` is not
    /// a pseudonym, which validation rules out.
    fn consent(&mut self, principal: &str, person: &str, unit: &str, scope: npo::ConsentScope) -> Option<&mut Consent> {
        let scope = scope_name(scope);
        let Some(person) = PersonId::parse(person) else {
            tracing::error!("a consent's person is not a pseudonym (validation should have refused it); not recorded");
            return None;
        };
        let principal = PrincipalCode::of(principal)?;
        let consents = self.consents.entry(&person);
        let index = match consents.iter().position(|c| c.consumer_unit == unit && c.scope == scope) {
            Some(index) => index,
            None => {
                super::exact::push(
                    consents,
                    Consent { consumer_unit: unit.into(), scope: scope.into(), principal, changes: Vec::new() },
                );
                consents.len() - 1
            }
        };
        consents.get_mut(index)
    }

    /// Whether `person` has a consent that holds at `as_of` (any unit, any scope).
    pub fn has_valid_consent(&self, person: &PersonId, as_of: Timestamp) -> bool {
        self.consents.get(person).is_some_and(|consents| consents.iter().any(|c| c.valid_at(as_of)))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::projections::{
        ids::PersonId,
        testing::{at, event, given, person},
    };

    #[test]
    fn consent_holds_until_revoked_or_expired() {
        let p = person('a');
        let q = person('b');
        let views = given(&[
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
        assert!(!views.npo.has_valid_consent(&p, at("2026-02-28T00:00:00Z")));
        assert!(views.npo.has_valid_consent(&p, at("2026-03-09T23:59:59Z")));
        assert!(!views.npo.has_valid_consent(&p, at("2026-03-10T00:00:00Z")));
        assert!(views.npo.has_valid_consent(&q, at("2026-03-04T23:59:59Z")));
        assert!(!views.npo.has_valid_consent(&q, at("2026-03-05T00:00:00Z")));
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
        let views = given(&[
            consent("given", "SE2120001124-A", "care_documentation", "2026-03-01T00:00:00Z"),
            consent("given", "SE2120001124-B", "care_documentation", "2026-03-02T00:00:00Z"),
            consent("given", "SE2120001124-A", "medication_list", "2026-03-03T00:00:00Z"),
            consent("revoked", "SE2120001124-A", "care_documentation", "2026-03-04T00:00:00Z"),
            consent("revoked", "SE2120001124-B", "care_documentation", "2026-03-05T00:00:00Z"),
        ]);
        let id = PersonId::parse(&p).unwrap();
        let kept = views.npo.consents.get(&id).unwrap();
        assert_eq!(kept.len(), 3, "one per unit and scope: {kept:?}");
        assert!(kept.iter().all(|c| c.principal == "1280"));
        // Medication list at unit A is still given after both care-documentation revocations.
        assert!(views.npo.has_valid_consent(&id, at("2026-03-06T00:00:00Z")));
        assert!(!views.npo.has_valid_consent(&id, at("2026-02-28T00:00:00Z")));
        let someone_else = PersonId::parse(&person('d')).unwrap();
        assert!(!views.npo.has_valid_consent(&someone_else, at("2026-03-06T00:00:00Z")));
    }
}
