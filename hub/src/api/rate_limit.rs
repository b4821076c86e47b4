//! Per-token rate limiting of the API: a keyed GCRA limiter (the `governor` crate) per token id,
//! checked when the token is authenticated. A token over its rate gets 429 `rate_limited`; other
//! tokens are not affected.

use std::num::NonZeroU32;

use axum::http::StatusCode;
use governor::{clock::Clock, DefaultKeyedRateLimiter, Quota, RateLimiter};

use super::ApiError;

/// The limiter of every token.
pub struct TokenRateLimit {
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    per_second: u32,
}

impl TokenRateLimit {
    /// `per_second` requests per token, `burst` at once above it; 0 per second: no limit.
    pub fn new(per_second: u32, burst: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter, per_second }
    }

    /// Counts one request of the token `id`; 429 when it is over its rate.
    pub fn check(&self, id: &str) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else { return Ok(()) };
        limiter.check_key(&id.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                code: "rate_limited",
                message: format!(
                    "this token made more than {} requests per second; retry in {} ms",
                    self.per_second,
                    wait.as_millis().max(1)
                ),
                details: None,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_over_its_rate_is_refused_and_others_are_not() {
        let limit = TokenRateLimit::new(1, 3);
        for _ in 0..3 {
            limit.check("a").unwrap();
        }
        let refused = limit.check("a").unwrap_err();
        assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.message.contains("retry in"), "{}", refused.message);
        limit.check("b").unwrap();
        let unlimited = TokenRateLimit::new(0, 0);
        for _ in 0..1000 {
            unlimited.check("a").unwrap();
        }
    }
}
