//! Compact forms of the names view records hold, so that a million events' views fit in less
//! memory (see docs/performance.md, "Memory").
//!
//! - [`Text`]: HSA-ids, case ids and the like, held inline up to 24 bytes (no allocation for
//!   `SE2120012800-AB12` or `svu-7-1234`), on the heap beyond.
//! - [`PrincipalCode`]: a principal's code (`12`, `1280`) in one byte.
//! - [`PersonId`]: a person pseudonym (64 lowercase hex characters, as every schema requires) held
//!   as its 32 bytes.
//!
//! Each is written in JSON as the same text as the `String` it replaces; in the views' postcard
//! records, a principal code is its byte.

use std::{fmt, num::NonZeroU8, sync::LazyLock};

use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

/// Short text, inline up to 24 bytes.
pub type Text = compact_str::CompactString;

/// A person pseudonym: HMAC-SHA256 as 32 bytes, written as 64 lowercase hex characters.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PersonId([u8; 32]);

impl PersonId {
    /// The pseudonym's bytes, when `text` is 64 lowercase hex characters (what every schema with a
    /// person requires, so a validated event's person always is).
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
            return None;
        }
        let mut bytes = [0u8; 32];
        hex::decode_to_slice(text, &mut bytes).ok()?;
        Some(Self(bytes))
    }

    /// The pseudonym of these bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Its bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<&PersonId> for PersonId {
    fn from(id: &PersonId) -> Self {
        *id
    }
}

impl fmt::Display for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; 64];
        // 32 bytes always fit 64 hex characters, which are ASCII.
        hex::encode_to_slice(self.0, &mut text).map_err(|_| fmt::Error)?;
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for PersonId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for PersonId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PersonId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = PersonId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pseudonym of 64 lowercase hex characters")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<PersonId, E> {
                PersonId::parse(text).ok_or_else(|| E::invalid_value(de::Unexpected::Str(text), &self))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

/// A principal's code in one byte: `12` (Region Skåne) or `12` and two digits (a municipality),
/// the only codes the schemas accept (`^12([0-9]{2})?$`). Written as that text in JSON, as the
/// byte in the views' files; ordered as the text.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PrincipalCode(NonZeroU8);

/// Every code's text, by byte: 1 is `12`, 2 + n is `12` followed by n in two digits.
static CODE_TEXTS: LazyLock<Vec<String>> =
    LazyLock::new(|| std::iter::once("12".to_string()).chain((0..100).map(|n| format!("12{n:02}"))).collect());

impl PrincipalCode {
    /// The code, when `text` is `12` or `12` and two digits.
    pub fn parse(text: &str) -> Option<Self> {
        let byte = match text.as_bytes() {
            [b'1', b'2'] => 1,
            [b'1', b'2', tens @ b'0'..=b'9', ones @ b'0'..=b'9'] => 2 + (tens - b'0') * 10 + (ones - b'0'),
            _ => return None,
        };
        NonZeroU8::new(byte).map(Self)
    }

    /// The code's byte (never 0).
    pub fn byte(self) -> u8 {
        self.0.get()
    }

    /// The code's text.
    pub fn as_str(&self) -> &'static str {
        CODE_TEXTS.get(usize::from(self.0.get()) - 1).map_or("", String::as_str)
    }

    /// The code of an event's `principal` (the envelope's, which validation requires to be one
    /// of the 34); `None`, with an error logged, for anything else.
    pub fn of(principal: &str) -> Option<Self> {
        let code = Self::parse(principal);
        if code.is_none() {
            tracing::error!(principal, "not a principal code (validation should have refused it); not recorded");
        }
        code
    }
}

/// A set of principals, one bit per code's byte (no allocation: the goals' sets of publishers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Principals(u128);

impl Principals {
    /// Adds `code`.
    pub fn insert(&mut self, code: PrincipalCode) {
        self.0 |= 1 << code.byte();
    }

    /// Those in `self` or `other`.
    pub fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    /// The codes, in their order.
    pub fn iter(&self) -> impl Iterator<Item = PrincipalCode> + '_ {
        (1..128u8).filter(|b| self.0 & (1 << b) != 0).filter_map(|b| NonZeroU8::new(b).map(PrincipalCode))
    }
}

impl FromIterator<PrincipalCode> for Principals {
    fn from_iter<I: IntoIterator<Item = PrincipalCode>>(codes: I) -> Self {
        let mut set = Self::default();
        codes.into_iter().for_each(|code| set.insert(code));
        set
    }
}

impl std::ops::Deref for PrincipalCode {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq<&str> for PrincipalCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl fmt::Display for PrincipalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for PrincipalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl Serialize for PrincipalCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            serializer.serialize_str(self.as_str())
        } else {
            serializer.serialize_u8(self.0.get())
        }
    }
}

impl<'de> Deserialize<'de> for PrincipalCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
            Self::parse(&text).ok_or_else(|| de::Error::invalid_value(de::Unexpected::Str(&text), &"a principal code"))
        } else {
            let byte = u8::deserialize(deserializer)?;
            NonZeroU8::new(byte).filter(|b| usize::from(b.get()) <= CODE_TEXTS.len()).map(Self).ok_or_else(|| {
                de::Error::invalid_value(de::Unexpected::Unsigned(byte.into()), &"a principal code's byte")
            })
        }
    }
}

/// A table key: hashed and compared as itself, stored as its text.
pub trait TableKey: std::hash::Hash + Eq + Clone + fmt::Display {
    /// The key a stored text names, if it is one.
    fn parse_key(text: &str) -> Option<Self>;
}

impl TableKey for Text {
    fn parse_key(text: &str) -> Option<Self> {
        Some(Text::from(text))
    }
}

impl TableKey for PersonId {
    fn parse_key(text: &str) -> Option<Self> {
        PersonId::parse(text)
    }
}

/// A Swedish calendar day as a table key, stored as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Day(pub chrono::NaiveDate);

impl From<&Day> for Day {
    fn from(day: &Day) -> Self {
        *day
    }
}

impl fmt::Display for Day {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TableKey for Day {
    fn parse_key(text: &str) -> Option<Self> {
        text.parse().ok().map(Day)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pseudonym_round_trips_through_its_text_and_anything_else_is_refused() {
        let text = "0123456789abcdef".repeat(4);
        let id = PersonId::parse(&text).unwrap();
        assert_eq!(id.to_string(), text);
        assert_eq!(serde_json::to_string(&id).unwrap(), format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<PersonId>(&format!("\"{text}\"")).unwrap(), id);
        assert_eq!(postcard::from_bytes::<PersonId>(&postcard::to_stdvec(&id).unwrap()).unwrap(), id);
        // The same bytes as the String it replaces.
        assert_eq!(postcard::to_stdvec(&id).unwrap(), postcard::to_stdvec(&text).unwrap());
        for bad in ["", "0123", &text.to_uppercase(), &format!("{}g", &text[..63]), &format!("{text}0")] {
            assert_eq!(PersonId::parse(bad), None, "{bad}");
        }
        assert!(serde_json::from_str::<PersonId>("\"19121212-1212\"").is_err());
    }

    #[test]
    fn a_principal_code_is_one_byte_written_as_its_text_and_ordered_as_it() {
        assert_eq!(std::mem::size_of::<Option<PrincipalCode>>(), 1);
        let texts: Vec<String> =
            std::iter::once("12".to_string()).chain((0..100).map(|n| format!("12{n:02}"))).collect();
        let codes: Vec<PrincipalCode> = texts.iter().map(|t| PrincipalCode::parse(t).unwrap()).collect();
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]));
        for (code, text) in codes.iter().zip(&texts) {
            assert_eq!(code.as_str(), text);
            assert_eq!(serde_json::to_string(code).unwrap(), format!("\"{text}\""));
            assert_eq!(postcard::from_bytes::<PrincipalCode>(&postcard::to_stdvec(code).unwrap()).unwrap(), *code);
        }
        for bad in ["", "1", "121", "13", "12345", "1a80", "0012", "1280 "] {
            assert_eq!(PrincipalCode::parse(bad), None, "{bad}");
        }
        assert!(serde_json::from_str::<PrincipalCode>("\"1300\"").is_err());
        assert!(postcard::from_bytes::<PrincipalCode>(&[0]).is_err());
        assert!(postcard::from_bytes::<PrincipalCode>(&[102]).is_err());
    }
}
