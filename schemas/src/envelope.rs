//! The CloudEvents 1.0 envelope as the hub requires it (JSON structured mode).
//!
//! Wire JSON → [`Envelope`] happens in [`crate::validate`], which checks every rule first; an
//! `Envelope` therefore always holds a valid event.

use chrono::{DateTime, FixedOffset};
use serde::{Deserialize, Serialize};

/// A validated event: the CloudEvents attributes we use, and the `data` object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique per `source`; `source` + `id` is the event's identity.
    pub id: String,
    /// `/principals/<principal>/systems/<system>`.
    pub source: String,
    /// `se.sgd.<area>.<entity>.<action>`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it happened in the local system.
    pub time: DateTime<FixedOffset>,
    /// The case the event is about (plan, message, meeting, deviation id or a person pseudonym).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// `urn:sgd:schema:<area>.<entity>.<action>:v<N>`; absent means v1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dataschema: Option<String>,
    /// The principal code (extension attribute).
    pub principal: String,
    /// W3C trace context (extension attribute), carried into logs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// The event's data, as published (not yet upcast).
    pub data: serde_json::Value,
}

impl Envelope {
    /// The event's identity, also its `Nats-Msg-Id`: `<source>/<id>`. Unambiguous because a
    /// source has exactly four segments and a system name holds no `/`.
    pub fn identity(&self) -> String {
        identity(&self.source, &self.id)
    }

    /// The area, e.g. `plans`.
    pub fn area(&self) -> &str {
        crate::catalogue::TypeName::parse(&self.event_type).map(|t| t.area).unwrap_or("unknown")
    }

    /// The data version from `dataschema` (1 when absent).
    pub fn version(&self) -> u32 {
        self.dataschema.as_deref().and_then(crate::catalogue::parse_schema_urn).map(|(_, v)| v).unwrap_or(1)
    }

    /// The system name from `source`.
    pub fn system(&self) -> &str {
        self.source.rsplit('/').next().unwrap_or_default()
    }
}

/// `<source>/<id>`: an event's identity and its `Nats-Msg-Id`.
pub fn identity(source: &str, id: &str) -> String {
    format!("{source}/{id}")
}

/// Splits a source `/principals/<principal>/systems/<system>` into (principal, system).
pub fn parse_source(source: &str) -> Option<(&str, &str)> {
    let rest = source.strip_prefix("/principals/")?;
    let (principal, rest) = rest.split_once('/')?;
    let system = rest.strip_prefix("systems/")?;
    let token =
        |s: &str| !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    (token(principal) && token(system) && principal.bytes().all(|b| b.is_ascii_digit())).then_some((principal, system))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_parse() {
        assert_eq!(parse_source("/principals/1280/systems/treserva"), Some(("1280", "treserva")));
        assert_eq!(parse_source("/principals/1280/systems/a/b"), None);
        assert_eq!(parse_source("/principals/x/systems/a"), None);
        assert_eq!(parse_source("principals/1280/systems/a"), None);
    }
}
