//! Bearer-token authentication and role checks.

use axum::{extract::FromRequestParts, http::request::Parts, http::StatusCode};

use super::{ApiError, ApiState};
use crate::tokens::{Role, TokenRecord};

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller(pub TokenRecord);

impl Caller {
    /// 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.0.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(ApiError::forbidden(format!(
            "a {} token may not do this; allowed: {}",
            self.0.role.as_str(),
            allowed.join(", ")
        )))
    }
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, Self::Rejection> {
        // Authenticated already by a middleware of this server (the answer cache).
        if let Some(caller) = parts.extensions.get::<Caller>() {
            return Ok(caller.clone());
        }
        let unauthorized = |message: &str| ApiError {
            status: StatusCode::UNAUTHORIZED,
            code: "unauthorized",
            message: message.into(),
            details: None,
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("send Authorization: Bearer <token>"))?;
        let secret = header
            .to_str()
            .ok()
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("the Authorization header must be: Bearer <token>"))?;
        let record = state.tokens.authenticate(secret).ok_or_else(|| unauthorized("unknown or revoked token"))?;
        state.rate_limit.check(&record.id)?;
        Ok(Caller(record))
    }
}
