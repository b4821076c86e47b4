//! [`Moment`]: an instant as the views keep it, in 8 bytes.
//!
//! An event's [`Timestamp`] is 16 bytes (the instant and the offset the local system wrote it
//! with), and an `Option` of one as many. The views hold ~1.5 million of them at a million events,
//! and only ever compare them, add durations to them and show them: a `Moment` is the instant
//! alone, as nanoseconds since 1970 UTC, and `Option<Moment>` is 8 bytes too. Shown (in JSON, and
//! in the answers that carry a view's time), it is written in Swedish time (Europe/Stockholm),
//! whatever offset the event was written with: the same instant, to the nanosecond.
//!
//! Nanoseconds in 64 bits span the years 1677 to 2262; a time outside them (no care process has
//! one, but the schemas do not forbid it) is held as the nearest one inside, and compares and
//! shows as that.
//!
//! In the views' files (postcard) a moment is its nanoseconds, a signed varint.

use std::{
    fmt,
    num::NonZeroU64,
    ops::{Add, Sub},
};

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use chrono_tz::Europe::Stockholm;
use serde::{de, Deserialize, Deserializer, Serialize, Serializer};
use sgd_schemas::events::Timestamp;

/// An instant to the nanosecond, 1677–2262 (see the module's documentation).
///
/// Held as the nanoseconds with their sign bit flipped, so that the unsigned order is the order
/// of time and zero (the nanosecond `i64::MIN`, which is never held) leaves `Option` its niche.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Moment(NonZeroU64);

const SIGN: u64 = 1 << 63;

impl Moment {
    /// The instant `nanos` nanoseconds after 1970-01-01T00:00:00Z (`i64::MIN` is held as one
    /// nanosecond later).
    pub fn from_nanos(nanos: i64) -> Self {
        let flipped = (nanos.max(i64::MIN + 1) as u64) ^ SIGN;
        // Never zero: only `i64::MIN` flips to zero, and it was raised above.
        Self(NonZeroU64::new(flipped).unwrap_or(NonZeroU64::MIN))
    }

    /// Nanoseconds since 1970-01-01T00:00:00Z.
    pub fn nanos(self) -> i64 {
        (self.0.get() ^ SIGN) as i64
    }

    /// The instant as a time in Sweden (Europe/Stockholm), with that offset.
    pub fn to_timestamp(self) -> Timestamp {
        DateTime::<Utc>::from_timestamp_nanos(self.nanos()).with_timezone(&Stockholm).fixed_offset()
    }

    /// The calendar day in Sweden.
    pub fn swedish_day(self) -> chrono::NaiveDate {
        self.to_timestamp().date_naive()
    }
}

impl From<Timestamp> for Moment {
    fn from(time: Timestamp) -> Self {
        match time.timestamp_nanos_opt() {
            Some(nanos) => Self::from_nanos(nanos),
            None if time.timestamp() < 0 => Self::from_nanos(i64::MIN),
            None => Self::from_nanos(i64::MAX),
        }
    }
}

impl PartialEq<Timestamp> for Moment {
    fn eq(&self, other: &Timestamp) -> bool {
        *self == Moment::from(*other)
    }
}

impl PartialOrd<Timestamp> for Moment {
    fn partial_cmp(&self, other: &Timestamp) -> Option<std::cmp::Ordering> {
        Some(self.cmp(&Moment::from(*other)))
    }
}

impl Add<Duration> for Moment {
    type Output = Moment;
    fn add(self, duration: Duration) -> Moment {
        match duration.num_nanoseconds() {
            Some(nanos) => Self::from_nanos(self.nanos().saturating_add(nanos)),
            // Beyond ±292 years a duration has no nanosecond count: past either end of the range.
            None if duration < Duration::zero() => Self::from_nanos(i64::MIN),
            None => Self::from_nanos(i64::MAX),
        }
    }
}

impl Sub for Moment {
    type Output = Duration;
    fn sub(self, earlier: Moment) -> Duration {
        Duration::nanoseconds(self.nanos().saturating_sub(earlier.nanos()))
    }
}

impl fmt::Display for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_timestamp().to_rfc3339_opts(SecondsFormat::AutoSi, true))
    }
}

impl fmt::Debug for Moment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for Moment {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.collect_str(self)
        } else {
            serializer.serialize_i64(self.nanos())
        }
    }
}

impl<'de> Deserialize<'de> for Moment {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            DateTime::parse_from_rfc3339(&text)
                .map(Moment::from)
                .map_err(|_| de::Error::invalid_value(de::Unexpected::Str(&text), &"an RFC 3339 time"))
        } else {
            i64::deserialize(deserializer).map(Moment::from_nanos)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    #[test]
    fn a_moment_is_the_instant_of_a_timestamp_shown_in_swedish_time() {
        let written = at("2026-03-02T09:15:00.123456789Z");
        let moment = Moment::from(written);
        assert_eq!(std::mem::size_of::<Option<Moment>>(), 8);
        assert_eq!(moment.to_timestamp(), written);
        assert_eq!(moment.to_string(), "2026-03-02T10:15:00.123456789+01:00");
        assert_eq!(Moment::from(at("2026-07-01T00:30:00+02:00")).swedish_day().to_string(), "2026-07-01");
        assert_eq!(serde_json::to_string(&moment).unwrap(), "\"2026-03-02T10:15:00.123456789+01:00\"");
        assert_eq!(serde_json::from_str::<Moment>("\"2026-03-02T09:15:00.123456789Z\"").unwrap(), moment);
        assert_eq!(postcard::from_bytes::<Moment>(&postcard::to_stdvec(&moment).unwrap()).unwrap(), moment);
        assert!(serde_json::from_str::<Moment>("\"yesterday\"").is_err());
    }

    #[test]
    fn moments_order_add_and_subtract_as_their_instants() {
        let times = [
            "1677-09-22T00:00:00Z",
            "1969-12-31T23:59:59.999999999Z",
            "1970-01-01T00:00:00Z",
            "2026-03-02T10:15:00+01:00",
        ];
        let moments: Vec<Moment> = times.iter().map(|t| Moment::from(at(t))).collect();
        assert!(moments.windows(2).all(|pair| pair[0] < pair[1]));
        assert!(moments[3] <= at("2026-03-02T09:15:00Z") && moments[3] >= at("2026-03-02T09:15:00Z"));
        assert!(moments[3] < at("2026-03-02T09:15:00.000000001Z"));
        assert_eq!(moments[3] + Duration::hours(48) - moments[3], Duration::hours(48));
        assert_eq!(moments[2].nanos(), 0);
        // Outside 1677–2262: held as the nearest instant inside.
        assert_eq!(Moment::from(at("1500-01-01T00:00:00Z")).nanos(), i64::MIN + 1);
        assert_eq!(Moment::from(at("9999-01-01T00:00:00Z")).nanos(), i64::MAX);
        assert_eq!(Moment::from(at("9999-01-01T00:00:00Z")) + Duration::days(3), Moment::from_nanos(i64::MAX));
        assert_eq!(moments[3] + Duration::days(-400 * 365), Moment::from_nanos(i64::MIN));
        assert_eq!(moments[3] + Duration::days(400 * 365), Moment::from_nanos(i64::MAX));
        assert_eq!(moments[1] - moments[3], -(moments[3] - moments[1]));
    }
}
