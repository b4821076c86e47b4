//! CSV input for register-like data and back-fill: a documented header per file kind, one event
//! (or a few) per row. A row that cannot be mapped gives a [`MappingError`] naming its line and
//! column; the other rows still go through. A header that is not the documented one refuses the
//! whole file.

use chrono::{DateTime, FixedOffset};
use serde::de::DeserializeOwned;

use sgd_schemas::pii;

use crate::{cloudevent::Draft, fhir::Mapped, fhir::MappingError};

/// Why a whole CSV file was refused → fix the file (HTTP 400 for the webhook).
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The header is not the documented one.
    #[error("the header must be exactly {expected:?}, found {found:?}")]
    Header {
        /// The documented header.
        expected: String,
        /// What the file has.
        found: String,
    },
    /// The file is not CSV (or not UTF-8).
    #[error("not CSV: {0}")]
    Csv(#[from] csv::Error),
}

/// Reads `input` whose header must be `header`, mapping each row with `map`.
pub fn map_csv<Row: DeserializeOwned>(
    input: &[u8],
    header: &[&str],
    map: impl Fn(&Row, usize) -> Result<Vec<Draft>, MappingError>,
) -> Result<Mapped, CsvError> {
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(input);
    let found: Vec<String> = reader.headers()?.iter().map(str::to_string).collect();
    if found != header {
        return Err(CsvError::Header { expected: header.join(","), found: pii::redact(&found.join(",")) });
    }
    let mut mapped = Mapped::default();
    for (n, row) in reader.deserialize::<Row>().enumerate() {
        let line = n + 2;
        mapped.resources += 1;
        let result =
            row.map_err(|e| row_error(line, "*", e.to_string())).and_then(|row| map(&row, line)).and_then(|drafts| {
                if drafts.iter().any(crate::fhir::draft_holds_number) {
                    Err(row_error(line, "*", "a personal identity number in a column that is not a person's; not sent"))
                } else {
                    Ok(drafts)
                }
            });
        match result {
            Ok(drafts) => mapped.drafts.extend(drafts),
            Err(error) => mapped.errors.push(error),
        }
    }
    Ok(mapped)
}

/// A [`MappingError`] about `column` of the row on `line`; a personal identity number quoted in
/// the reason is redacted (errors are logged and sent back to the source).
pub fn row_error(line: usize, column: &str, reason: impl Into<String>) -> MappingError {
    MappingError { resource: format!("line {line}"), field: pii::redact(column), reason: pii::redact(&reason.into()) }
}

/// A required RFC 3339 time in `column`.
pub fn time(line: usize, column: &str, value: &str) -> Result<DateTime<FixedOffset>, MappingError> {
    DateTime::parse_from_rfc3339(value)
        .map_err(|_| row_error(line, column, format!("{value:?} is not a date and time with offset")))
}

/// An optional RFC 3339 time in `column` (empty means none).
pub fn optional_time(line: usize, column: &str, value: &str) -> Result<Option<DateTime<FixedOffset>>, MappingError> {
    if value.is_empty() {
        Ok(None)
    } else {
        time(line, column, value).map(Some)
    }
}

/// A `;`-separated list (empty means none).
pub fn list(value: &str) -> Vec<String> {
    value.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// A snake_case enum value parsed with serde (the catalogue's names), or a row error listing why.
pub fn enum_value<T: DeserializeOwned>(line: usize, column: &str, value: &str) -> Result<T, MappingError> {
    serde_json::from_value(serde_json::Value::String(value.to_string()))
        .map_err(|e| row_error(line, column, e.to_string()))
}
