//! Secure video meetings and how their participants were identified.

use super::{ids::PrincipalCode, moment::Moment, table::StoredTable, table::Table, ProjectedEvent, View};
use serde::{Deserialize, Serialize};

/// One meeting.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Meeting {
    /// The principal that booked it.
    pub principal: Option<PrincipalCode>,
    /// Booked.
    pub booked_at: Option<Moment>,
    /// Participants admitted.
    pub admitted: u32,
    /// Participants admitted without strong identification (`none`).
    pub admitted_weak: u32,
    /// Held.
    pub held_at: Option<Moment>,
}

/// The video view.
#[derive(Debug, Clone)]
pub struct VideoView {
    /// Meetings by id.
    pub meetings: Table<Meeting>,
}

impl Default for VideoView {
    fn default() -> Self {
        Self { meetings: Table::bounded("v/video/meeting/") }
    }
}

impl View for VideoView {
    /// Applies one event.
    fn apply(&mut self, e: &ProjectedEvent<'_>) {
        use sgd_schemas::DomainEvent as D;
        let at = e.at;
        match e.event {
            D::VideoMeetingBooked(d) => {
                let m = self.meetings.entry(d.meeting_id.as_str());
                m.principal = PrincipalCode::of(&e.envelope.principal);
                m.booked_at = Some(m.booked_at.map_or(at, |t| t.min(at)));
            }
            D::VideoParticipantAdmitted(d) => {
                let m = self.meetings.entry(d.meeting_id.as_str());
                m.admitted += 1;
                if !d.method.is_strong() {
                    m.admitted_weak += 1;
                }
            }
            D::VideoMeetingHeld(d) => {
                let m = self.meetings.entry(d.meeting_id.as_str());
                m.held_at = Some(m.held_at.map_or(at, |t| t.min(at)));
                if m.principal.is_none() {
                    m.principal = PrincipalCode::of(&e.envelope.principal);
                }
            }
            _ => {}
        }
    }

    fn tables(&self) -> Vec<&dyn StoredTable> {
        vec![&self.meetings]
    }

    fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
        vec![&mut self.meetings]
    }
}
