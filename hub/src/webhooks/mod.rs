//! Webhooks: each principal's local systems receive the events routed to that principal over
//! HTTPS, in the CloudEvents HTTP binding (structured mode), signed as Standard Webhooks sign.
//!
//! # Layout
//! - [`subscription`]: a subscription (URL, filters, secret) and the checks a new one passes.
//! - [`target`]: which URLs and addresses a webhook may call (no internal ones: SSRF).
//! - [`signature`]: `webhook-id`, `webhook-timestamp`, `webhook-signature` (HMAC-SHA256).
//! - [`store`]: subscriptions in the JetStream key-value bucket `SGD_SUBSCRIPTIONS`, shared by
//!   every hub and the CLI, and each subscription's durable consumer on `SGD_ROUTED`.
//! - [`delivery`]: one deliverer per subscription: in order, retried with growing delays and
//!   jitter, parked after the last attempt.
//! - [`parked`]: parked deliveries in `SGD_PARKED`: listed, replayed.
//! - [`supervisor`]: starts, updates and stops the deliverers as subscriptions come and go.

pub mod delivery;
pub mod parked;
pub mod signature;
pub mod store;
pub mod subscription;
pub mod supervisor;
pub mod target;

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// How webhooks are delivered (`[webhook]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebhookSettings {
    /// Attempts per event before it is parked. Default 10.
    pub attempts: u32,
    /// Delay before the second attempt, in milliseconds; each further one doubles it, up to
    /// `max_delay_ms`, and takes a random 50–100 % of it (jitter). Default 1000.
    pub initial_delay_ms: u64,
    /// Longest delay between two attempts, in milliseconds. Default 300000 (5 min).
    pub max_delay_ms: u64,
    /// An attempt counts when the receiver answers 2xx within this many milliseconds. Default 10000.
    pub timeout_ms: u64,
    /// Events a deliverer takes at a time (and at most this many may be delivered twice after
    /// the hub is killed: those delivered whose acknowledgement JetStream had not stored). Default 100.
    pub window: usize,
    /// Allow plain http URLs (tests, a receiver behind a TLS-terminating proxy). Default false.
    pub allow_http: bool,
    /// Allow URLs to loopback, link-local and private addresses (tests; a receiver on the hub's
    /// own network). Default false.
    pub allow_private_targets: bool,
    /// Extra CA certificate (PEM) trusted for receivers, besides the system's. Default none.
    pub ca_file: Option<PathBuf>,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            attempts: 10,
            initial_delay_ms: 1000,
            max_delay_ms: 300_000,
            timeout_ms: 10_000,
            window: 100,
            allow_http: false,
            allow_private_targets: false,
            ca_file: None,
        }
    }
}

impl WebhookSettings {
    /// The target policy these settings give.
    pub fn policy(&self) -> target::TargetPolicy {
        target::TargetPolicy { allow_http: self.allow_http, allow_private: self.allow_private_targets }
    }

    /// The delay after failed attempt number `attempt` (1-based), before jitter.
    pub fn delay_after(&self, attempt: u32) -> Duration {
        let doubled = self.initial_delay_ms.saturating_mul(1u64 << attempt.saturating_sub(1).min(32));
        Duration::from_millis(doubled.min(self.max_delay_ms.max(1)))
    }
}

/// Why the webhook client could not be built → fix `webhook.ca_file`.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The CA file could not be read.
    #[error("webhook.ca_file {path}: {source}")]
    CaRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The CA file is not PEM certificates.
    #[error("webhook.ca_file {path}: {source}")]
    CaPem {
        /// The file.
        path: PathBuf,
        /// What reqwest said.
        source: reqwest::Error,
    },
    /// The CA file holds no certificate.
    #[error("webhook.ca_file {path}: no certificate in the file")]
    CaEmpty {
        /// The file.
        path: PathBuf,
    },
    /// reqwest refused the settings.
    #[error("webhook client: {0}")]
    Build(#[from] reqwest::Error),
}

/// The HTTP client deliveries use: TLS verified (the system's roots and `ca_file`), no
/// redirects (a redirect could lead anywhere), no proxy, every connection through the
/// [`target`] guard.
pub fn client(settings: &WebhookSettings) -> Result<reqwest::Client, ClientError> {
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
        .connect_timeout(Duration::from_millis(settings.timeout_ms.clamp(1, 5000)))
        .redirect(reqwest::redirect::Policy::none())
        // A proxy from the environment would resolve and reach the receiver itself, past the
        // guard: deliveries connect directly.
        .no_proxy()
        .dns_resolver(target::GuardedResolver::new(settings.policy()))
        .https_only(!settings.allow_http)
        .user_agent(concat!("sgd-hub/", env!("CARGO_PKG_VERSION")));
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|source| ClientError::CaRead { path: path.clone(), source })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|source| ClientError::CaPem { path: path.clone(), source })?;
        if certificates.is_empty() {
            return Err(ClientError::CaEmpty { path: path.clone() });
        }
        for certificate in certificates {
            builder = builder.add_root_certificate(certificate);
        }
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_limit() {
        let settings = WebhookSettings { initial_delay_ms: 100, max_delay_ms: 1000, ..Default::default() };
        let delays: Vec<u128> = (1..=6).map(|a| settings.delay_after(a).as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(settings.delay_after(200).as_millis(), 1000, "no overflow");
    }
}
