//! What the routing rules remember between events. Every entry belongs to an open case and is
//! removed when the case ends (a plan closed, a deviation closed, a message receipted, a meeting
//! held), except the directory of units, which grows with the units of the region, not with the
//! log. Changed keys are tracked so that a batch writes only what it changed.

use std::collections::{BTreeSet, HashMap};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// An open plan: whose it is and who takes part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenPlan {
    /// The person's pseudonym.
    pub person: String,
    /// The participating principals.
    pub participants: Vec<String>,
}

/// One kind of entry, keyed by a case id, with the keys changed since the last write.
#[derive(Debug, Clone)]
pub struct Tracked<V> {
    entries: HashMap<String, V>,
    changed: BTreeSet<String>,
}

impl<V> Default for Tracked<V> {
    fn default() -> Self {
        Self { entries: HashMap::new(), changed: BTreeSet::new() }
    }
}

impl<V: Clone + Serialize + DeserializeOwned> Tracked<V> {
    /// The entry of `key`.
    pub fn get(&self, key: &str) -> Option<&V> {
        self.entries.get(key)
    }

    /// Sets the entry of `key`.
    pub fn insert(&mut self, key: &str, value: V) {
        self.entries.insert(key.to_string(), value);
        self.changed.insert(key.to_string());
    }

    /// Removes the entry of `key`, returning it.
    pub fn remove(&mut self, key: &str) -> Option<V> {
        let removed = self.entries.remove(key);
        if removed.is_some() {
            self.changed.insert(key.to_string());
        }
        removed
    }

    /// Changes the entry of `key` in place (creating it from `Default` when missing).
    pub fn update(&mut self, key: &str, change: impl FnOnce(&mut V))
    where
        V: Default,
    {
        change(self.entries.entry(key.to_string()).or_default());
        self.changed.insert(key.to_string());
    }

    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The changed keys with their current value (`None`: removed), forgetting them as changed.
    pub fn drain_changed(&mut self) -> Vec<(String, Option<V>)> {
        std::mem::take(&mut self.changed)
            .into_iter()
            .map(|key| {
                let value = self.entries.get(&key).cloned();
                (key, value)
            })
            .collect()
    }

    /// Loads an entry without marking it changed (from the store).
    pub fn load(&mut self, key: String, value: V) {
        self.entries.insert(key, value);
    }
}

/// Everything the rules remember.
#[derive(Debug, Clone, Default)]
pub struct RoutingState {
    /// Care unit (HSA-id) → the principal that introduced it (`npo.role.activated`,
    /// `sdk.address.published`).
    pub units: Tracked<String>,
    /// Open plan id → the plan.
    pub plans: Tracked<OpenPlan>,
    /// Person pseudonym → the ids of their open plans.
    pub person_plans: Tracked<Vec<String>>,
    /// Open deviation id → its concerned principals.
    pub deviations: Tracked<Vec<String>>,
    /// Message id without a receipt → the sending principal.
    pub messages: Tracked<String>,
    /// Meeting id not yet held → its principals.
    pub meetings: Tracked<Vec<String>>,
}

impl RoutingState {
    /// Records `unit` as `principal`'s (written only when that changes).
    pub fn introduce_unit(&mut self, unit: &str, principal: &str) {
        if self.units.get(unit).map(String::as_str) != Some(principal) {
            self.units.insert(unit, principal.to_string());
        }
    }

    /// Entries held, all kinds together (the `sgd_routing_state_entries` gauge).
    pub fn entries(&self) -> usize {
        self.units.len()
            + self.plans.len()
            + self.person_plans.len()
            + self.deviations.len()
            + self.messages.len()
            + self.meetings.len()
    }
}
