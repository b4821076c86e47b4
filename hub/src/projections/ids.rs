//! Compact forms of the names view records hold, so that a million events' views fit in less
//! memory (see docs/performance.md, "Memory").
//!
//! - [`Text`]: principal codes, HSA-ids, case ids and the like, held inline up to 24 bytes (no
//!   allocation for `1280`, `SE2120012800-AB12` or `svu-7-1234`), on the heap beyond.
//! - [`PersonId`]: a person pseudonym (64 lowercase hex characters, as every schema requires) held
//!   as its 32 bytes.
//!
//! Both are written as the same text as the `String`s they replace (in JSON and in the views'
//! postcard records).

use std::fmt;

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
}
