//! Every published event type and version, with its compiled JSON Schema.
//!
//! The schema files live in `schemas/json/<area>/<entity>.<action>.v<N>.json` and are embedded at
//! build time; each describes the event's `data` object.

use std::{collections::HashMap, sync::OnceLock};

include!(concat!(env!("OUT_DIR"), "/schema_files.rs"));

/// The six service areas (insatsområden), plus `hub` for the hub's own events.
pub const AREAS: &[&str] = &["npo", "sdk", "plans", "decision", "deviation", "video", "hub"];

/// The six service areas whose usage the hub follows.
pub const SERVICE_AREAS: &[&str] = &["npo", "sdk", "plans", "decision", "deviation", "video"];

/// Prefix of every event type.
pub const TYPE_PREFIX: &str = "se.sgd.";

/// An event type split into its parts: `se.sgd.<area>.<entity>.<action>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TypeName<'a> {
    /// The area, e.g. `plans`.
    pub area: &'a str,
    /// The entity, e.g. `plan`.
    pub entity: &'a str,
    /// The action, e.g. `created`.
    pub action: &'a str,
}

impl<'a> TypeName<'a> {
    /// Splits a type string; `None` if it is not of the form `se.sgd.<area>.<entity>.<action>`.
    pub fn parse(event_type: &'a str) -> Option<Self> {
        let rest = event_type.strip_prefix(TYPE_PREFIX)?;
        let mut parts = rest.split('.');
        let (area, entity, action) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || [area, entity, action].iter().any(|p| !is_token(p)) {
            return None;
        }
        Some(Self { area, entity, action })
    }

    /// The schema URN of version `version`: `urn:sgd:schema:<area>.<entity>.<action>:v<N>`.
    pub fn schema_urn(&self, version: u32) -> String {
        format!("urn:sgd:schema:{}.{}.{}:v{version}", self.area, self.entity, self.action)
    }
}

fn is_token(part: &str) -> bool {
    !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Parses a `dataschema` URN into (type without prefix, version), e.g.
/// `urn:sgd:schema:sdk.message.delivered:v2` → (`sdk.message.delivered`, 2).
pub fn parse_schema_urn(urn: &str) -> Option<(&str, u32)> {
    let rest = urn.strip_prefix("urn:sgd:schema:")?;
    let (name, version) = rest.rsplit_once(":v")?;
    let version: u32 = version.parse().ok()?;
    (version >= 1).then_some((name, version))
}

/// One published (type, version) with its schema.
pub struct PublishedSchema {
    /// The full event type, e.g. `se.sgd.npo.consent.given`.
    pub event_type: &'static str,
    /// Its version, from 1.
    pub version: u32,
    /// The schema text as published.
    pub text: &'static str,
    /// The compiled schema.
    pub validator: jsonschema::Validator,
}

/// All published schemas, compiled once.
pub struct Catalogue {
    by_type: HashMap<&'static str, Vec<PublishedSchema>>,
}

impl Catalogue {
    /// The process-wide catalogue. Panics only if a schema file shipped in this crate is not a valid
    /// JSON Schema, which the crate's own tests rule out.
    pub fn get() -> &'static Catalogue {
        static CATALOGUE: OnceLock<Catalogue> = OnceLock::new();
        CATALOGUE.get_or_init(|| {
            let mut by_type: HashMap<&'static str, Vec<PublishedSchema>> = HashMap::new();
            for (event_type, version, text) in SCHEMA_FILES {
                let schema: serde_json::Value = serde_json::from_str(text)
                    .unwrap_or_else(|e| panic!("schema {event_type} v{version} is not JSON: {e}"));
                let validator = jsonschema::options()
                    .should_validate_formats(true)
                    .build(&schema)
                    .unwrap_or_else(|e| panic!("schema {event_type} v{version} does not compile: {e}"));
                by_type.entry(event_type).or_default().push(PublishedSchema {
                    event_type,
                    version: *version,
                    text,
                    validator,
                });
            }
            for versions in by_type.values_mut() {
                versions.sort_by_key(|s| s.version);
            }
            Catalogue { by_type }
        })
    }

    /// The published schema of `event_type` at `version`.
    pub fn schema(&self, event_type: &str, version: u32) -> Option<&PublishedSchema> {
        self.by_type.get(event_type)?.iter().find(|s| s.version == version)
    }

    /// Whether any version of `event_type` is published.
    pub fn knows(&self, event_type: &str) -> bool {
        self.by_type.contains_key(event_type)
    }

    /// The newest published version of `event_type`.
    pub fn newest_version(&self, event_type: &str) -> Option<u32> {
        self.by_type.get(event_type)?.last().map(|s| s.version)
    }

    /// The published versions of `event_type`, oldest first.
    pub fn versions(&self, event_type: &str) -> Vec<u32> {
        self.by_type.get(event_type).map(|v| v.iter().map(|s| s.version).collect()).unwrap_or_default()
    }

    /// Every published event type, sorted.
    pub fn types(&self) -> Vec<&'static str> {
        let mut types: Vec<_> = self.by_type.keys().copied().collect();
        types.sort_unstable();
        types
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_names_parse() {
        let t = TypeName::parse("se.sgd.plans.plan.created").unwrap();
        assert_eq!((t.area, t.entity, t.action), ("plans", "plan", "created"));
        assert_eq!(t.schema_urn(1), "urn:sgd:schema:plans.plan.created:v1");
        assert!(TypeName::parse("se.sgd.plans.plan").is_none());
        assert!(TypeName::parse("com.example.x.y.z").is_none());
        assert!(TypeName::parse("se.sgd.plans.plan.created.extra").is_none());
        assert!(TypeName::parse("se.sgd.Plans.plan.created").is_none());
    }

    #[test]
    fn schema_urns_parse() {
        assert_eq!(parse_schema_urn("urn:sgd:schema:sdk.message.delivered:v2"), Some(("sdk.message.delivered", 2)));
        assert_eq!(parse_schema_urn("urn:sgd:schema:sdk.message.delivered:v0"), None);
        assert_eq!(parse_schema_urn("https://example.org/x"), None);
    }

    #[test]
    fn every_shipped_schema_compiles_and_every_area_has_types() {
        let catalogue = Catalogue::get();
        assert!(catalogue.types().len() >= 27, "{:?}", catalogue.types());
        for area in AREAS {
            assert!(
                catalogue.types().iter().any(|t| TypeName::parse(t).unwrap().area == *area),
                "no type in area {area}"
            );
        }
        assert_eq!(catalogue.newest_version("se.sgd.sdk.message.delivered"), Some(2));
    }
}
