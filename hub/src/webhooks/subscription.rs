//! A webhook subscription: a principal's URL that receives the events routed to that principal,
//! filtered by area and type, signed with the subscription's secret.

use serde::{Deserialize, Serialize};

use super::{
    signature::{self, SecretError},
    target::{TargetError, TargetPolicy},
};

/// A subscription as stored (the secret included: the hub signs with it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Its id (`wh-` + 16 hex digits).
    pub id: String,
    /// The principal whose routed events it receives.
    pub principal: String,
    /// Where they are sent.
    pub url: String,
    /// Only these areas (none: every area).
    #[serde(default)]
    pub areas: Vec<String>,
    /// Only these event types (none: every type of those areas).
    #[serde(default)]
    pub types: Vec<String>,
    /// `whsec_` + base64 of the signing key.
    pub secret: String,
    /// Paused: nothing is delivered; events wait in `SGD_ROUTED` at its position.
    #[serde(default)]
    pub paused: bool,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Who made it (a token id).
    pub created_by: String,
}

impl Subscription {
    /// Whether an event of `event_type` passes the filters.
    pub fn wants(&self, event_type: &str) -> bool {
        let area = event_type.strip_prefix("se.sgd.").and_then(|t| t.split('.').next()).unwrap_or_default();
        (self.areas.is_empty() || self.areas.iter().any(|a| a == area))
            && (self.types.is_empty() || self.types.iter().any(|t| t == event_type))
    }

    /// The JetStream filter of its consumer: one area's subjects when it has exactly one area,
    /// else all of the principal's (the rest of the filter is applied by the deliverer).
    pub fn filter_subject(&self) -> String {
        match self.areas.as_slice() {
            [area] => format!("sgd.to.{}.{area}.>", self.principal),
            _ => format!("sgd.to.{}.>", self.principal),
        }
    }

    /// The name of its durable consumer on `SGD_ROUTED`.
    pub fn consumer_name(&self) -> String {
        format!("webhook_{}", self.id)
    }

    /// What is shown of it (the secret never, after it was made).
    pub fn public(&self) -> SubscriptionView {
        SubscriptionView {
            id: self.id.clone(),
            principal: self.principal.clone(),
            url: self.url.clone(),
            areas: self.areas.clone(),
            types: self.types.clone(),
            paused: self.paused,
            created_at: self.created_at,
        }
    }
}

/// A subscription as listed.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SubscriptionView {
    /// Its id.
    pub id: String,
    /// Its principal.
    pub principal: String,
    /// Its URL.
    pub url: String,
    /// Its areas (empty: all).
    pub areas: Vec<String>,
    /// Its event types (empty: all).
    pub types: Vec<String>,
    /// Whether delivery is paused.
    pub paused: bool,
    /// When it was made.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A request for a new subscription.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSubscription {
    /// The receiver's URL: https (plain http only where the configuration allows it), not to an
    /// internal address unless the configuration allows that.
    pub url: String,
    /// Only these areas: `npo`, `sdk`, `plans`, `decision`, `deviation`, `video` (default all).
    #[serde(default)]
    pub areas: Vec<String>,
    /// Only these event types, e.g. `se.sgd.decision.risk.flagged` (default all).
    #[serde(default)]
    pub types: Vec<String>,
    /// The signing secret, `whsec_` + base64 of 24–64 bytes; made by the hub when absent (and
    /// then shown once, in the answer).
    pub secret: Option<String>,
    /// The principal (operators only; an integrator's is its token's).
    pub principal: Option<String>,
}

/// Why a subscription request is refused → 400 with this message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubscriptionError {
    /// The URL.
    #[error("url: {0}")]
    Url(#[from] TargetError),
    /// A URL outside the described form.
    #[error("url: not of the form {}", super::target::URL_PATTERN)]
    Form,
    /// The secret.
    #[error("secret: {0}")]
    Secret(#[from] SecretError),
    /// An unknown area.
    #[error("areas: unknown area {0:?} (npo, sdk, plans, decision, deviation, video)")]
    Area(String),
    /// An unknown event type.
    #[error("types: unknown event type {0:?}")]
    Type(String),
    /// An unknown principal.
    #[error("principal: unknown principal {0:?}")]
    Principal(String),
}

/// The areas events are routed in.
pub const AREAS: [&str; 6] = ["npo", "sdk", "plans", "decision", "deviation", "video"];

impl NewSubscription {
    /// Checks the request and makes the subscription for `principal`, by `created_by`.
    pub fn into_subscription(
        self,
        principal: &str,
        created_by: &str,
        policy: &TargetPolicy,
    ) -> Result<Subscription, SubscriptionError> {
        if !sgd_schemas::principals::is_known(principal) {
            return Err(SubscriptionError::Principal(principal.into()));
        }
        let url = policy.check_url(&self.url)?.to_string();
        if !policy.has_described_form(&self.url) {
            return Err(SubscriptionError::Form);
        }
        if let Some(area) = self.areas.iter().find(|a| !AREAS.contains(&a.as_str())) {
            return Err(SubscriptionError::Area(area.clone()));
        }
        if let Some(t) = self.types.iter().find(|t| !sgd_schemas::events::DomainEvent::TYPES.contains(&t.as_str())) {
            return Err(SubscriptionError::Type(t.clone()));
        }
        let secret = match self.secret {
            Some(secret) => {
                signature::key(&secret)?;
                secret
            }
            None => signature::new_secret(),
        };
        let mut areas = self.areas;
        areas.sort();
        areas.dedup();
        Ok(Subscription {
            id: format!("wh-{:016x}", rand::random::<u64>()),
            principal: principal.into(),
            url,
            areas,
            types: self.types,
            secret,
            paused: false,
            created_at: chrono::Utc::now(),
            created_by: created_by.into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(url: &str) -> NewSubscription {
        NewSubscription { url: url.into(), ..Default::default() }
    }

    #[test]
    fn a_request_is_checked_and_gets_a_secret() {
        let policy = TargetPolicy::default();
        let made = request("https://receiver.example.se/hook").into_subscription("1280", "tok", &policy).unwrap();
        assert!(made.secret.starts_with("whsec_") && made.id.starts_with("wh-"));
        assert_eq!(made.filter_subject(), "sgd.to.1280.>");
        assert!(matches!(
            request("https://127.0.0.1/").into_subscription("1280", "tok", &policy),
            Err(SubscriptionError::Url(TargetError::Internal(_)))
        ));
        let bad_area = NewSubscription { areas: vec!["fax".into()], ..request("https://r.example.se/") };
        assert_eq!(bad_area.into_subscription("1280", "t", &policy), Err(SubscriptionError::Area("fax".into())));
        let bad_type = NewSubscription { types: vec!["se.sgd.x.y.z".into()], ..request("https://r.example.se/") };
        assert!(matches!(bad_type.into_subscription("1280", "t", &policy), Err(SubscriptionError::Type(_))));
        let bad_secret = NewSubscription { secret: Some("hunter2".into()), ..request("https://r.example.se/") };
        assert!(matches!(bad_secret.into_subscription("1280", "t", &policy), Err(SubscriptionError::Secret(_))));
        for outside in
            ["https://r.example.se/x/*", "https://R.example.se/", "https://8.8.8.8/hook", "https://r.example.se/?q=1"]
        {
            assert_eq!(
                request(outside).into_subscription("1280", "t", &policy),
                Err(SubscriptionError::Form),
                "{outside}"
            );
        }
        assert!(matches!(
            request("https://r.example.se/").into_subscription("9999", "t", &policy),
            Err(SubscriptionError::Principal(_))
        ));
    }

    #[test]
    fn filters_by_area_and_type() {
        let policy = TargetPolicy::default();
        let one_area = NewSubscription { areas: vec!["decision".into()], ..request("https://r.example.se/") }
            .into_subscription("1283", "t", &policy)
            .unwrap();
        assert_eq!(one_area.filter_subject(), "sgd.to.1283.decision.>");
        assert!(one_area.wants("se.sgd.decision.risk.flagged"));
        assert!(!one_area.wants("se.sgd.plans.plan.created"));
        let one_type =
            NewSubscription { types: vec!["se.sgd.plans.plan.closed".into()], ..request("https://r.example.se/") }
                .into_subscription("1283", "t", &policy)
                .unwrap();
        assert!(one_type.wants("se.sgd.plans.plan.closed") && !one_type.wants("se.sgd.plans.plan.created"));
    }
}
