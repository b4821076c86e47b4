//! Where a webhook may point. A subscriber names a URL and the hub calls it from inside the
//! region's network, so a URL to the hub's own host or to a private network would let an
//! integrator reach services it should not (server-side request forgery). Unless the
//! configuration allows them, URLs to loopback, link-local, private, shared, unique-local,
//! unspecified, multicast and documentation ranges are refused when a subscription is made, and
//! every connection is checked again at delivery, after name resolution, by [`GuardedResolver`],
//! so a name that later resolves to such an address is not called either.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

/// Why a URL is refused → 400 on `POST /api/v1/subscriptions`; at delivery, a failed attempt.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not a URL.
    #[error("not a URL: {0}")]
    Unparsable(url::ParseError),
    /// Not https (and plain http is not allowed).
    #[error(
        "the URL must be https (plain http is allowed only where the hub's configuration says webhook.allow_http)"
    )]
    NotHttps,
    /// Credentials in the URL.
    #[error("the URL must not hold a user name or password (the signature authenticates the hub)")]
    Credentials,
    /// No host.
    #[error("the URL has no host")]
    NoHost,
    /// A forbidden address.
    #[error("{0} is a loopback, link-local, private or otherwise internal address, which webhooks may not call (see webhook.allow_private_targets)")]
    Internal(IpAddr),
}

/// The pattern of a receiver's URL: https, a host name whose last label starts with a letter (so
/// that it is not read as an IPv4 address), an optional port and path. Hosts that are internal
/// (`localhost`) are refused all the same (see the route's description).
pub const URL_PATTERN: &str = "^https://(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?[.])*[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?(?::[1-9][0-9]{0,3})?(?:/[A-Za-z0-9._~-]*)*$";

/// [`URL_PATTERN`], compiled once.
static URL_FORM: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(URL_PATTERN).expect("the URL pattern is a valid regex"));

/// What the configuration allows.
#[derive(Debug, Clone, Copy, Default)]
pub struct TargetPolicy {
    /// Plain http as well as https.
    pub allow_http: bool,
    /// Internal addresses (tests, a receiver on the hub's own network).
    pub allow_private: bool,
}

impl TargetPolicy {
    /// Checks a URL's form and, for an address literal, the address (names are checked when
    /// they are resolved, by [`GuardedResolver`]).
    pub fn check_url(&self, url: &str) -> Result<reqwest::Url, TargetError> {
        let parsed = reqwest::Url::parse(url).map_err(TargetError::Unparsable)?;
        match parsed.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return Err(TargetError::NotHttps),
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(TargetError::Credentials);
        }
        match parsed.host() {
            None => return Err(TargetError::NoHost),
            Some(url::Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
            Some(url::Host::Domain(name)) => {
                if !self.allow_private && (name.eq_ignore_ascii_case("localhost") || name.ends_with(".localhost")) {
                    return Err(TargetError::Internal(IpAddr::from([127, 0, 0, 1])));
                }
            }
        }
        Ok(parsed)
    }

    /// Whether a new subscription's `url` has the form the API describes ([`URL_PATTERN`]: a host
    /// name, no query), not only one `url` can parse. A policy that allows plain http or internal
    /// targets accepts every form [`Self::check_url`] accepts.
    pub fn has_described_form(&self, url: &str) -> bool {
        self.allow_http || self.allow_private || URL_FORM.is_match(url)
    }

    /// Refuses an internal address unless allowed.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), TargetError> {
        if self.allow_private || !is_internal(ip) {
            Ok(())
        } else {
            Err(TargetError::Internal(ip))
        }
    }
}

/// Whether `ip` is an address a webhook must not reach by default.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space (carrier-grade NAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
                || (first == 0x0064 && v6.segments()[1] == 0xff9b) // NAT64, may map to internal v4
        }
    }
}

/// A resolver for the webhook client that drops internal addresses (unless allowed), so a
/// delivery never connects to one whatever the name resolves to when it is called.
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    policy: TargetPolicy,
}

impl GuardedResolver {
    /// The resolver for `policy`.
    pub fn new(policy: TargetPolicy) -> Arc<Self> {
        Arc::new(Self { policy })
    }
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found.iter().copied().filter(|a| policy.check_ip(a.ip()).is_ok()).collect();
            if allowed.is_empty() {
                let refused = found.first().map(|a| a.ip().to_string()).unwrap_or_else(|| "no address".into());
                return Err(format!("{host} resolves to {refused}: an internal address webhooks may not call").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_by_default_and_allowed_by_config() {
        let strict = TargetPolicy::default();
        for url in [
            "https://127.0.0.1/hook",
            "https://10.1.2.3/hook",
            "https://172.16.0.1/hook",
            "https://192.168.1.1/hook",
            "https://169.254.169.254/latest/meta-data",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/hook",
            "https://[fd00::1]/hook",
            "https://[fe80::1]/hook",
            "https://[::ffff:127.0.0.1]/hook",
            "https://localhost:8443/hook",
        ] {
            assert!(matches!(strict.check_url(url), Err(TargetError::Internal(_))), "{url} must be refused");
        }
        assert!(strict.check_url("https://receiver.example.se/hook").is_ok());
        assert!(strict.check_url("https://8.8.8.8/hook").is_ok());
        let open = TargetPolicy { allow_http: false, allow_private: true };
        assert!(open.check_url("https://127.0.0.1:9000/hook").is_ok());
    }

    #[test]
    fn only_https_without_credentials_unless_http_is_allowed() {
        let strict = TargetPolicy::default();
        assert_eq!(strict.check_url("http://receiver.example.se/"), Err(TargetError::NotHttps));
        assert_eq!(strict.check_url("ftp://receiver.example.se/"), Err(TargetError::NotHttps));
        assert_eq!(strict.check_url("https://user:pw@receiver.example.se/"), Err(TargetError::Credentials));
        assert!(matches!(strict.check_url("not a url"), Err(TargetError::Unparsable(_))));
        let http = TargetPolicy { allow_http: true, allow_private: false };
        assert!(http.check_url("http://receiver.example.se/").is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_internal_addresses_of_a_name() {
        use reqwest::dns::Resolve;
        let strict = GuardedResolver::new(TargetPolicy::default());
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(strict.resolve(name).await.is_err(), "localhost resolves to loopback only");
        let open = GuardedResolver::new(TargetPolicy { allow_http: false, allow_private: true });
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        assert!(open.resolve(name).await.is_ok());
    }
}
