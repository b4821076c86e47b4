//! Pure projections: functions of (view, event) with no I/O, tested given/when/then.
//!
//! The [`crate::projector`] feeds them from `SGD_EVENTS` and commits what they change to the read
//! model. Every projection sees events in the newest shape of their type (see
//! [`sgd_schemas::upcast`]).

pub mod usage;

use chrono::NaiveDate;
use chrono_tz::Europe::Stockholm;
use sgd_schemas::{DomainEvent, Envelope};

/// An event as projections see it.
pub struct ProjectedEvent<'a> {
    /// The envelope (attributes and data as published).
    pub envelope: &'a Envelope,
    /// The data in the newest shape, typed.
    pub event: &'a DomainEvent,
    /// The calendar day in Sweden (Europe/Stockholm) when it happened.
    pub day: NaiveDate,
}

impl<'a> ProjectedEvent<'a> {
    /// Wraps an event, computing its Swedish calendar day.
    pub fn new(envelope: &'a Envelope, event: &'a DomainEvent) -> Self {
        Self { envelope, event, day: swedish_day(envelope) }
    }
}

/// The calendar day in Sweden when the event happened: statistics follow the Swedish day whatever
/// offset the local system wrote.
pub fn swedish_day(envelope: &Envelope) -> NaiveDate {
    envelope.time.with_timezone(&Stockholm).date_naive()
}
