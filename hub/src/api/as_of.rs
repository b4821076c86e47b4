//! The `as_of` parameter: a day (the end of that day in Sweden) or an RFC 3339 moment; now when
//! absent.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use chrono_tz::Europe::Stockholm;

use super::ApiError;

/// The moment `as_of` names.
pub fn parse(as_of: Option<&str>) -> Result<DateTime<FixedOffset>, ApiError> {
    let Some(text) = as_of else { return Ok(Utc::now().fixed_offset()) };
    if let Ok(moment) = DateTime::parse_from_rfc3339(text) {
        return Ok(moment);
    }
    let day: NaiveDate = text
        .parse()
        .map_err(|_| ApiError::bad_request(format!("as_of must be YYYY-MM-DD or an RFC 3339 time, not {text:?}")))?;
    let next = day.succ_opt().ok_or_else(|| ApiError::bad_request("as_of is out of range"))?;
    let midnight = Stockholm
        .from_local_datetime(&next.and_hms_opt(0, 0, 0).unwrap_or_default())
        .earliest()
        .ok_or_else(|| ApiError::bad_request("as_of is out of range"))?;
    Ok((midnight - Duration::nanoseconds(1)).fixed_offset())
}

/// The Swedish calendar day of a moment.
pub fn swedish_day(moment: DateTime<FixedOffset>) -> NaiveDate {
    moment.with_timezone(&Stockholm).date_naive()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_means_its_last_instant_in_sweden() {
        let t = parse(Some("2026-03-31")).unwrap();
        assert_eq!(t.with_timezone(&Utc).to_rfc3339(), "2026-03-31T21:59:59.999999999+00:00");
        assert_eq!(swedish_day(t), NaiveDate::from_ymd_opt(2026, 3, 31).unwrap());
        assert!(parse(Some("2026-03-31T10:00:00+02:00")).is_ok());
        assert!(parse(Some("yesterday")).is_err());
    }
}
