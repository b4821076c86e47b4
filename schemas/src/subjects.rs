//! NATS subjects of the three streams.
//!
//! - ingress: `sgd.in.<principal>.<area>` (what adapters publish to)
//! - the log: `sgd.events.<principal>.<area>.<entity>.<action>`
//! - dead letters: `sgd.dlq.<principal>.<reason>` (`unknown` for an untrustworthy principal), so
//!   JetStream counts them per principal and reason without reading them
//! - routed events: `sgd.to.<recipient>.<area>.<entity>.<action>` (what the hub delivers to the
//!   principals an event concerns)
//! - ingest requests: `sgd.ingest.<principal>.<area>` (request/reply: the answer says accepted or
//!   refused at once)

/// Subjects of the ingress stream `SGD_INGRESS`.
pub const INGRESS_ALL: &str = "sgd.in.>";
/// Subjects of the log `SGD_EVENTS`.
pub const EVENTS_ALL: &str = "sgd.events.>";
/// Subjects of the dead-letter stream `SGD_DLQ`.
pub const DLQ_ALL: &str = "sgd.dlq.>";

/// Subjects of the routed-events stream `SGD_ROUTED`.
pub const ROUTED_ALL: &str = "sgd.to.>";
/// Subjects of the NATS request/reply ingest.
pub const INGEST_REQUESTS_ALL: &str = "sgd.ingest.>";

/// The subject an event of `event_type` is delivered on to `recipient`.
pub fn routed(recipient: &str, event_type: &str) -> String {
    let tail = event_type.strip_prefix("se.sgd.").unwrap_or(event_type);
    format!("sgd.to.{recipient}.{tail}")
}

/// (recipient, event type) of a routed subject.
pub fn parse_routed(subject: &str) -> Option<(&str, String)> {
    let (recipient, tail) = subject.strip_prefix("sgd.to.")?.split_once('.')?;
    (!recipient.is_empty() && tail.split('.').count() == 3 && tail.split('.').all(|t| !t.is_empty()))
        .then(|| (recipient, format!("se.sgd.{tail}")))
}

/// Principal and area of an ingest request subject `sgd.ingest.<principal>.<area>`.
pub fn parse_ingest_request(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("sgd.ingest.")?;
    let (principal, area) = rest.split_once('.')?;
    (!principal.is_empty() && !area.is_empty() && !area.contains('.')).then_some((principal, area))
}

/// The ingress subject an adapter of `principal` publishes `area` events to.
pub fn ingress(principal: &str, area: &str) -> String {
    format!("sgd.in.{principal}.{area}")
}

/// Principal and area of an ingress subject, if it has the shape `sgd.in.<principal>.<area>`.
pub fn parse_ingress(subject: &str) -> Option<(&str, &str)> {
    let rest = subject.strip_prefix("sgd.in.")?;
    let (principal, area) = rest.split_once('.')?;
    if principal.is_empty() || area.is_empty() || area.contains('.') {
        return None;
    }
    Some((principal, area))
}

/// The log subject of an event of `event_type` (`se.sgd.<area>.<entity>.<action>`) from `principal`.
pub fn events(principal: &str, event_type: &str) -> String {
    let tail = event_type.strip_prefix("se.sgd.").unwrap_or(event_type);
    format!("sgd.events.{principal}.{tail}")
}

/// The dead-letter subject for a refusal with `reason` (a reject reason code); `None` (no
/// trustworthy principal) gives `sgd.dlq.unknown.<reason>`.
pub fn dlq(principal: Option<&str>, reason: &str) -> String {
    format!("sgd.dlq.{}.{reason}", principal.unwrap_or("unknown"))
}

/// (principal, reason) of a dead-letter subject.
pub fn parse_dlq(subject: &str) -> Option<(&str, &str)> {
    let (principal, reason) = subject.strip_prefix("sgd.dlq.")?.split_once('.')?;
    (!principal.is_empty() && !reason.is_empty() && !reason.contains('.')).then_some((principal, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        assert_eq!(parse_ingress(&ingress("1280", "npo")), Some(("1280", "npo")));
        assert_eq!(parse_ingress("sgd.in.1280"), None);
        assert_eq!(parse_ingress("sgd.in.1280.npo.extra"), None);
        assert_eq!(events("12", "se.sgd.plans.plan.created"), "sgd.events.12.plans.plan.created");
        assert_eq!(dlq(None, "schema"), "sgd.dlq.unknown.schema");
        assert_eq!(parse_dlq(&dlq(Some("1280"), "pii")), Some(("1280", "pii")));
        assert_eq!(parse_dlq("sgd.dlq.1280"), None);
        assert_eq!(routed("1283", "se.sgd.decision.risk.flagged"), "sgd.to.1283.decision.risk.flagged");
        assert_eq!(
            parse_routed("sgd.to.1283.decision.risk.flagged"),
            Some(("1283", "se.sgd.decision.risk.flagged".to_string()))
        );
        assert_eq!(parse_routed("sgd.to.1283.decision.risk"), None);
        assert_eq!(parse_ingest_request("sgd.ingest.1280.plans"), Some(("1280", "plans")));
        assert_eq!(parse_ingest_request("sgd.ingest.1280.plans.x"), None);
    }
}
