//! The OpenAPI schemas of parameters whose values come from the catalogue or follow a grammar the
//! handlers check: each says exactly what the handler accepts, so a client (or a fuzzer) reading
//! the document knows which values are refused before sending them.
//!
//! The types hold nothing; they are named in `#[param(value_type = …)]`. Their value lists are
//! made from the same sources the handlers check against (`sgd_schemas::principals`, the
//! catalogue, the follow-up rules).

use std::borrow::Cow;

use sgd_schemas::{catalogue, principals};
use utoipa::openapi::{
    schema::{AnyOfBuilder, KnownFormat, ObjectBuilder, SchemaFormat, Type},
    RefOr, Schema,
};

use crate::projections::followup::RULES;

/// The pattern of a pseudonym: the lowercase hex of 32 bytes.
pub const PSEUDONYM_PATTERN: &str = "^[0-9a-f]{64}$";

/// The pattern of `since` on the live stream: a whole number of seconds, minutes, hours or days,
/// at most six digits (999999 days, well inside the clock's range).
pub const SINCE_PATTERN: &str = "^[0-9]{1,6}[smhd]$";

fn string_enum(description: &str, values: impl IntoIterator<Item = String>) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).description(Some(description)).enum_values(Some(values)).into()
}

macro_rules! schema_type {
    ($(#[$doc:meta])* $name:ident => $schema:expr) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }

        impl utoipa::ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

schema_type!(
    /// One of the 34 principals' codes.
    PrincipalCode => string_enum(
        "A principal's code: 12 for Region Skåne, the municipality code for a municipality.",
        principals::all().iter().map(|p| p.code.to_string()),
    )
);

schema_type!(
    /// An area of the catalogue (the six service areas and `hub`).
    AreaName => string_enum("An area of the event catalogue.", catalogue::AREAS.iter().map(|a| a.to_string()))
);

schema_type!(
    /// An event type of the catalogue.
    EventTypeName => string_enum(
        "A published event type.",
        catalogue::Catalogue::get().types().into_iter().map(str::to_string),
    )
);

schema_type!(
    /// A follow-up rule.
    RuleName => string_enum("A follow-up rule.", RULES.iter().map(|r| r.to_string()))
);

schema_type!(
    /// A moment: a day (its end in Sweden) or an RFC 3339 time.
    AsOf => AnyOfBuilder::new()
        .description(Some("A day `YYYY-MM-DD` (meaning its last instant in Sweden) or an RFC 3339 time; default now."))
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))))
        .item(ObjectBuilder::new().schema_type(Type::String).format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))))
        .into()
);

schema_type!(
    /// A person's pseudonym.
    Pseudonym => ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("A person's pseudonym: 64 lowercase hex digits."))
        .pattern(Some(PSEUDONYM_PATTERN))
        .into()
);

schema_type!(
    /// How long ago the live stream starts.
    SinceDuration => ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some("How long ago to start: a number and s, m, h or d, e.g. `90s`, `15m`, `2h`, `1d`."))
        .pattern(Some(SINCE_PATTERN))
        .into()
);

/// Whether `text` is a `since` value as [`SINCE_PATTERN`] describes it.
pub fn is_since(text: &str) -> bool {
    let Some(digits) = text.strip_suffix(['s', 'm', 'h', 'd']) else { return false };
    (1..=6).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
}

/// `format`: JSON (the default) or CSV.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON.
    Json,
    /// CSV.
    Csv,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_checked_as_its_pattern_says() {
        for good in ["1s", "90s", "15m", "2h", "999999d"] {
            assert!(is_since(good), "{good}");
        }
        for bad in ["", "s", "1", "1w", "1000000d", "2h 30m", "-1h", "1.5h", "１h"] {
            assert!(!is_since(bad), "{bad}");
        }
    }
}
