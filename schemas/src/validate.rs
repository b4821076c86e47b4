//! The one validation function every entry point uses (NATS validator, HTTP ingest, `hub validate`).
//!
//! Checks, in order: size, UTF-8 and JSON, the personal-identity-number guard, the CloudEvents
//! envelope, that the type and version are published, that `principal`, the code in `source` and
//! the principal of the transport (NATS subject or integrator token) agree, and the data schema.
//! Every problem found is reported, each with a JSON path, not only the first.

use std::fmt;

use serde_json::{Map, Value};

use crate::{
    catalogue::{self, Catalogue, TypeName},
    envelope::{self, Envelope},
    pii, principals, subjects,
};

/// Default upper limit of an event's size in bytes.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 256 * 1024;

/// How far after the validator's clock an event's `time` may be, in days. `time` is when the
/// event happened, so a later one is a wrong clock or a sentinel date (9999-12-31, 2099-…) that
/// would sit in the statistics' future and keep follow-up rules from ever firing. The margin is
/// wide: a clock or offset that is wrong by hours must not lose an event, and the demo's sample
/// and the simulator publish follow-ups up to some weeks ahead. Far-past times are accepted
/// (back-fill of history).
pub const MAX_FUTURE_DAYS: i64 = 366;

/// What the transport tells the validator about where an event came from.
#[derive(Debug, Clone, Copy)]
pub struct ValidationContext<'a> {
    /// The principal the transport vouches for: the `<principal>` of `sgd.in.<principal>.<area>`,
    /// or the principal an integrator token is bound to. `None` offline (`hub validate`).
    pub transport_principal: Option<&'a str>,
    /// The `<area>` of the ingress subject, when the event came over NATS.
    pub transport_area: Option<&'a str>,
    /// Events larger than this are refused (`too_large`).
    pub max_bytes: usize,
}

impl Default for ValidationContext<'_> {
    fn default() -> Self {
        Self { transport_principal: None, transport_area: None, max_bytes: DEFAULT_MAX_EVENT_BYTES }
    }
}

impl<'a> ValidationContext<'a> {
    /// The context of a message received on a NATS ingress subject. An ingress subject that is
    /// not `sgd.in.<principal>.<area>` vouches for nothing, and the event is refused as a mismatch.
    pub fn from_ingress_subject(subject: &'a str, max_bytes: usize) -> Self {
        match subjects::parse_ingress(subject) {
            Some((principal, area)) => {
                Self { transport_principal: Some(principal), transport_area: Some(area), max_bytes }
            }
            None => Self { transport_principal: Some(subject), transport_area: None, max_bytes },
        }
    }
}

/// Why an event was refused. The code ([`RejectReason::as_str`]) is what the DLQ, the metrics and
/// the HTTP API show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// A personal identity or coordination number somewhere in the event → remove it (pseudonymise
    /// persons with the adapter SDK) and publish again. Never stored unredacted.
    Pii,
    /// Larger than the configured limit → split or shrink the event.
    TooLarge,
    /// Not UTF-8, not JSON, or not a JSON object → fix the producer's serialisation.
    Malformed,
    /// The `type` is not in the catalogue → use a published type (see `schemas/`).
    UnknownType,
    /// The `dataschema` names a version that is not published → use a published version.
    UnknownVersion,
    /// `principal`, the code in `source` and the transport's principal disagree → publish as
    /// (and for) your own principal only.
    PrincipalMismatch,
    /// The ingress subject's area is not the type's area → publish to `sgd.in.<principal>.<area>`.
    AreaMismatch,
    /// A CloudEvents envelope rule is broken (missing or malformed attribute).
    Envelope,
    /// `data` does not match the type's JSON Schema.
    Schema,
}

impl RejectReason {
    /// The reason's code: `pii`, `too_large`, `malformed`, `unknown_type`, `unknown_version`,
    /// `principal_mismatch`, `area_mismatch`, `envelope`, `schema`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pii => "pii",
            Self::TooLarge => "too_large",
            Self::Malformed => "malformed",
            Self::UnknownType => "unknown_type",
            Self::UnknownVersion => "unknown_version",
            Self::PrincipalMismatch => "principal_mismatch",
            Self::AreaMismatch => "area_mismatch",
            Self::Envelope => "envelope",
            Self::Schema => "schema",
        }
    }

    /// Every reason, most severe first.
    pub const ALL: [RejectReason; 9] = [
        Self::Pii,
        Self::TooLarge,
        Self::Malformed,
        Self::UnknownType,
        Self::UnknownVersion,
        Self::PrincipalMismatch,
        Self::AreaMismatch,
        Self::Envelope,
        Self::Schema,
    ];
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with an event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The kind of problem.
    pub reason: RejectReason,
    /// Where: an RFC 6901 JSON pointer into the event (`""` for the whole event).
    pub path: String,
    /// What is wrong, for a person to act on. Never holds a personal identity number.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() { "/" } else { &self.path };
        write!(f, "{} at {}: {}", self.reason, path, self.message)
    }
}

/// A refused event: every problem, and what may be kept of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Every problem found, most severe first.
    pub problems: Vec<Problem>,
    /// The event's `id`, when it could be read.
    pub event_id: Option<String>,
    /// The event's `type`, when it could be read.
    pub event_type: Option<String>,
    /// The body with every personal identity number redacted (lossy UTF-8 if it was not UTF-8).
    pub redacted_body: String,
}

impl Rejection {
    /// The most severe reason, used for the DLQ subject's header and the metrics.
    pub fn reason(&self) -> RejectReason {
        self.problems.first().map(|p| p.reason).unwrap_or(RejectReason::Malformed)
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all: Vec<String> = self.problems.iter().map(ToString::to_string).collect();
        f.write_str(&all.join("; "))
    }
}

impl std::error::Error for Rejection {}

/// An accepted event and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedEvent {
    /// The event.
    pub envelope: Envelope,
    /// Its data version (from `dataschema`, 1 when absent).
    pub version: u32,
    /// The log subject: `sgd.events.<principal>.<area>.<entity>.<action>`.
    pub events_subject: String,
    /// `Nats-Msg-Id` on the log: `<source>/<id>`.
    pub msg_id: String,
}

/// The CloudEvents attributes (and the hub's extensions) an event may carry; anything else is
/// refused as `envelope`.
pub const KNOWN_ATTRIBUTES: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "time",
    "subject",
    "dataschema",
    "datacontenttype",
    "data",
    "data_base64",
    "principal",
    "traceparent",
    "tracestate",
];

/// Validates one event in CloudEvents JSON structured mode.
///
/// ```
/// use sgd_schemas::{validate, ValidationContext, RejectReason};
/// let body = br#"{"specversion":"1.0","id":"1","source":"/principals/1280/systems/x",
///   "type":"se.sgd.sdk.address.published","time":"2026-03-02T10:15:00+01:00","principal":"1281",
///   "data":{"unit":"SE2120001124-HT1","function_address":"SE2120001124-FA1"}}"#;
/// let rejection = validate(body, &ValidationContext::default()).unwrap_err();
/// assert_eq!(rejection.reason(), RejectReason::PrincipalMismatch);
/// ```
pub fn validate(bytes: &[u8], ctx: &ValidationContext<'_>) -> Result<ValidatedEvent, Rejection> {
    let mut problems = Vec::new();
    let reject = |mut problems: Vec<Problem>, value: Option<&Value>| {
        problems.sort_by_key(|p| p.reason);
        for p in &mut problems {
            // A path names keys, and a key may be a number too.
            p.path = pii::redact(&p.path);
            p.message = pii::redact(&p.message);
        }
        let field = |name: &str| value.and_then(|v| v.get(name)).and_then(Value::as_str).map(pii::redact);
        let redacted_body = match value {
            Some(v) => pii::redact_json(v).to_string(),
            None => pii::redact_raw(&String::from_utf8_lossy(bytes)),
        };
        Rejection { problems, event_id: field("id"), event_type: field("type"), redacted_body }
    };

    if bytes.len() > ctx.max_bytes {
        problems.push(problem(
            RejectReason::TooLarge,
            "",
            format!("the event is {} bytes; the limit is {} bytes", bytes.len(), ctx.max_bytes),
        ));
        // Still look for personal identity numbers, so the DLQ copy is redacted; but do not parse.
        if raw_holds_pii(&String::from_utf8_lossy(bytes)) {
            problems.push(problem(RejectReason::Pii, "", "the event holds a personal identity number"));
        }
        let mut rejection = reject(problems, None);
        rejection.redacted_body.truncate(floor_char_boundary(&rejection.redacted_body, 4096));
        return Err(rejection);
    }
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            problems.push(problem(
                RejectReason::Malformed,
                "",
                format!("the body is not UTF-8 (invalid byte at offset {})", e.valid_up_to()),
            ));
            if raw_holds_pii(&String::from_utf8_lossy(bytes)) {
                problems.push(problem(RejectReason::Pii, "", "the event holds a personal identity number"));
            }
            return Err(reject(problems, None));
        }
    };
    let value: Value = match serde_json::from_str(text) {
        Ok(value) => value,
        Err(e) => {
            problems.push(problem(RejectReason::Malformed, "", format!("the body is not JSON: {e}")));
            if raw_holds_pii(text) {
                problems.push(problem(RejectReason::Pii, "", "the event holds a personal identity number"));
            }
            return Err(reject(problems, None));
        }
    };
    for path in pii::find_in_json(&value) {
        problems.push(problem(
            RejectReason::Pii,
            &path,
            "a Swedish personal identity or coordination number; refer to persons by their pseudonym only",
        ));
    }
    // The log keeps the body byte for byte, so the text must be clean too, not only the parsed
    // value: with a repeated key the parser keeps the last value and drops the others.
    if problems.is_empty() && raw_holds_pii(text) {
        problems.push(problem(
            RejectReason::Pii,
            "",
            "a personal identity number in the body outside the event's values (a repeated key?)",
        ));
    }
    let Some(object) = value.as_object() else {
        problems.push(problem(RejectReason::Malformed, "", "a CloudEvent in structured mode is a JSON object"));
        return Err(reject(problems, Some(&value)));
    };

    let checked = check_envelope(object, ctx, &mut problems);
    if let Some(checked) = &checked {
        if let Some(data) = object.get("data") {
            check_data(checked, data, &mut problems);
        }
    }
    match checked {
        Some(checked) if problems.is_empty() => {
            let envelope: Envelope = match serde_json::from_value(value.clone()) {
                Ok(envelope) => envelope,
                Err(e) => {
                    problems.push(problem(RejectReason::Envelope, "", format!("unreadable envelope: {e}")));
                    return Err(reject(problems, Some(&value)));
                }
            };
            Ok(ValidatedEvent {
                events_subject: subjects::events(&envelope.principal, &envelope.event_type),
                msg_id: envelope.identity(),
                version: checked.version,
                envelope,
            })
        }
        _ => Err(reject(problems, Some(&value))),
    }
}

/// What the envelope check learnt, for the data check.
struct CheckedEnvelope {
    event_type: String,
    version: u32,
}

fn check_envelope(
    object: &Map<String, Value>,
    ctx: &ValidationContext<'_>,
    problems: &mut Vec<Problem>,
) -> Option<CheckedEnvelope> {
    let string = |name: &str, required: bool, problems: &mut Vec<Problem>| -> Option<String> {
        match object.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            Some(Value::String(_)) => {
                problems.push(problem(RejectReason::Envelope, &format!("/{name}"), format!("`{name}` is empty")));
                None
            }
            Some(_) => {
                problems.push(problem(
                    RejectReason::Envelope,
                    &format!("/{name}"),
                    format!("`{name}` must be a string"),
                ));
                None
            }
            None if required => {
                problems.push(problem(RejectReason::Envelope, &format!("/{name}"), format!("`{name}` is required")));
                None
            }
            None => None,
        }
    };

    match string("specversion", true, problems).as_deref() {
        Some("1.0") | None => {}
        Some(other) => problems.push(problem(
            RejectReason::Envelope,
            "/specversion",
            format!("`specversion` must be \"1.0\", not {other:?}"),
        )),
    }
    if let Some(id) = string("id", true, problems) {
        if id.len() > 256 {
            problems.push(problem(RejectReason::Envelope, "/id", "`id` is longer than 256 characters"));
        }
    }
    if let Some(time) = string("time", true, problems) {
        match chrono::DateTime::parse_from_rfc3339(&time) {
            Err(_) => problems.push(problem(
                RejectReason::Envelope,
                "/time",
                format!(
                    "`time` must be an RFC 3339 timestamp with offset, e.g. 2026-03-02T10:15:00+01:00, not {time:?}"
                ),
            )),
            Ok(at) if at.to_utc() > chrono::Utc::now() + chrono::Duration::days(MAX_FUTURE_DAYS) => {
                problems.push(problem(
                    RejectReason::Envelope,
                    "/time",
                    format!(
                        "`time` {time:?} is more than {MAX_FUTURE_DAYS} days after the hub's clock; `time` is when it \
                         happened in your system (a date such as 9999-12-31 meaning \"no end\" does not belong here)"
                    ),
                ));
            }
            Ok(_) => {}
        }
    }
    string("subject", false, problems);
    if let Some(content_type) = string("datacontenttype", false, problems) {
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        if media != "application/json" {
            problems.push(problem(
                RejectReason::Envelope,
                "/datacontenttype",
                format!("`datacontenttype` must be application/json, not {content_type:?}"),
            ));
        }
    }
    if object.contains_key("data_base64") {
        problems.push(problem(RejectReason::Envelope, "/data_base64", "data must be JSON (`data`), not `data_base64`"));
    }
    match object.get("data") {
        Some(Value::Object(_)) => {}
        Some(_) => problems.push(problem(RejectReason::Envelope, "/data", "`data` must be a JSON object")),
        None => problems.push(problem(RejectReason::Envelope, "/data", "`data` is required")),
    }
    if let Some(traceparent) = string("traceparent", false, problems) {
        if !is_traceparent(&traceparent) {
            problems.push(problem(
                RejectReason::Envelope,
                "/traceparent",
                "`traceparent` must be W3C trace context: 00-<32 hex>-<16 hex>-<2 hex>",
            ));
        }
    }
    for (name, value) in object {
        if KNOWN_ATTRIBUTES.contains(&name.as_str()) {
            continue;
        }
        if name.is_empty() || name.len() > 20 || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()) {
            problems.push(problem(
                RejectReason::Envelope,
                &format!("/{}", name.replace('~', "~0").replace('/', "~1")),
                "extension attribute names are 1–20 lower-case letters or digits (CloudEvents 1.0)",
            ));
        } else if value.is_object() || value.is_array() || value.is_null() {
            problems.push(problem(
                RejectReason::Envelope,
                &format!("/{name}"),
                "extension attributes must be a string, number or boolean",
            ));
        }
    }

    // Principal: the attribute, the code in `source` and the transport must agree.
    let principal = string("principal", true, problems);
    if let Some(p) = &principal {
        if !principals::is_known(p) {
            problems.push(problem(
                RejectReason::Envelope,
                "/principal",
                format!("`principal` {p:?} is not the code of one of the 34 principals of Skåne"),
            ));
        }
    }
    if let Some(source) = string("source", true, problems) {
        match envelope::parse_source(&source) {
            None => problems.push(problem(
                RejectReason::Envelope,
                "/source",
                format!("`source` must be /principals/<principal>/systems/<system>, not {source:?}"),
            )),
            Some((source_principal, _)) => {
                if let Some(p) = &principal {
                    if p != source_principal {
                        problems.push(problem(
                            RejectReason::PrincipalMismatch,
                            "/principal",
                            format!("`principal` is {p} but `source` names principal {source_principal}"),
                        ));
                    }
                }
            }
        }
    }
    if let (Some(p), Some(transport)) = (&principal, ctx.transport_principal) {
        if p != transport {
            problems.push(problem(
                RejectReason::PrincipalMismatch,
                "/principal",
                format!("`principal` is {p} but the event was sent for principal {transport}; each principal publishes its own events only"),
            ));
        }
    }

    // Type and version.
    let event_type = string("type", true, problems)?;
    let Some(type_name) = TypeName::parse(&event_type) else {
        problems.push(problem(
            RejectReason::UnknownType,
            "/type",
            format!("`type` must be se.sgd.<area>.<entity>.<action> from the catalogue, not {event_type:?}"),
        ));
        return None;
    };
    let catalogue = Catalogue::get();
    if !catalogue.knows(&event_type) {
        problems.push(problem(
            RejectReason::UnknownType,
            "/type",
            format!("unknown type {event_type:?}; published types are listed in schemas/README.md"),
        ));
        return None;
    }
    if let Some(area) = ctx.transport_area {
        if area != type_name.area {
            problems.push(problem(
                RejectReason::AreaMismatch,
                "/type",
                format!(
                    "a {} event was published to the {area} ingress subject; use sgd.in.<principal>.{}",
                    type_name.area, type_name.area
                ),
            ));
        }
    }
    let version = match string("dataschema", false, problems) {
        None => 1,
        Some(urn) => match catalogue::parse_schema_urn(&urn) {
            Some((name, version)) if Some(name) == event_type.strip_prefix(catalogue::TYPE_PREFIX) => version,
            _ => {
                problems.push(problem(
                    RejectReason::Envelope,
                    "/dataschema",
                    format!(
                        "`dataschema` must be {} (or another published version), not {urn:?}",
                        type_name.schema_urn(1)
                    ),
                ));
                return None;
            }
        },
    };
    if catalogue.schema(&event_type, version).is_none() {
        problems.push(problem(
            RejectReason::UnknownVersion,
            "/dataschema",
            format!(
                "version {version} of {event_type} is not published; published: {:?}",
                catalogue.versions(&event_type)
            ),
        ));
        return None;
    }
    Some(CheckedEnvelope { event_type, version })
}

fn check_data(checked: &CheckedEnvelope, data: &Value, problems: &mut Vec<Problem>) {
    if !data.is_object() {
        return; // already reported as an envelope problem
    }
    let Some(schema) = Catalogue::get().schema(&checked.event_type, checked.version) else { return };
    for error in schema.validator.iter_errors(data) {
        problems.push(problem(RejectReason::Schema, &format!("/data{}", error.instance_path()), error.to_string()));
    }
}

/// Whether unparsed text holds a personal identity number (JSON escapes of digits decoded).
fn raw_holds_pii(text: &str) -> bool {
    if text.contains("\\u00") {
        // (a body may quote the redaction marker itself, e.g. a dead letter sent back)
        pii::redact_raw(text).matches(pii::REDACTED).count() > text.matches(pii::REDACTED).count()
    } else {
        pii::contains(text)
    }
}

fn problem(reason: RejectReason, path: &str, message: impl Into<String>) -> Problem {
    Problem { reason, path: path.to_string(), message: message.into() }
}

fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    parts.len() == 4 && hex(parts[0], 2) && hex(parts[1], 32) && hex(parts[2], 16) && hex(parts[3], 2)
}

fn floor_char_boundary(s: &str, max: usize) -> usize {
    if s.len() <= max {
        return s.len();
    }
    (0..=max).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0)
}
