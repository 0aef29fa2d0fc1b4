//! What authentication and its routes can answer, and its `{"detail": ...}` rendering.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tessera_core::DomainError;
use tessera_store::StoreError;

use crate::problem::Problem;

/// A refusal or failure of the auth family (and of the auth layer of every family).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Wrong e-mail or password (one answer for both).
    #[error("invalid email or password")]
    BadCredentials,
    /// No credential, or one that does not verify: 401.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// A valid credential without the scope or role needed: 403.
    #[error("{0}")]
    Forbidden(String),
    /// Bad input: 400.
    #[error("{0}")]
    Invalid(String),
    /// Already exists: 409.
    #[error("{0}")]
    Conflict(String),
    /// No such thing (or someone else's): 404.
    #[error("{0}")]
    NotFound(String),
    /// Too many failed logins for the account: 429 for `retry_after` seconds.
    #[error("too many failed logins for this account; try again in {retry_after} seconds")]
    Locked {
        /// Seconds until the lock ends.
        retry_after: i64,
    },
    /// The store is unreachable: 503.
    #[error("{0}")]
    Unavailable(String),
    /// A bug: 500, details only in the log.
    #[error("{0}")]
    Internal(String),
}

impl AuthError {
    /// The HTTP status every API style uses for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadCredentials | Self::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::Invalid(_) => StatusCode::BAD_REQUEST,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Locked { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message a client may see.
    pub fn public_message(&self) -> String {
        match self {
            Self::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                "internal error".into()
            }
            Self::Unavailable(detail) => {
                tracing::warn!(%detail, "store unavailable");
                "service temporarily unavailable; retry later".into()
            }
            other => other.to_string(),
        }
    }
}

impl From<StoreError> for AuthError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(detail) => Self::Unavailable(detail),
            StoreError::NotFound(detail) => Self::NotFound(detail),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<DomainError> for AuthError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::InvalidInput(detail) => Self::Invalid(detail),
            DomainError::NotFound(detail) => Self::NotFound(detail),
            DomainError::Conflict(detail) => Self::Conflict(detail),
            DomainError::Unavailable(detail) => Self::Unavailable(detail),
            other => Self::Internal(other.to_string()),
        }
    }
}

impl IntoResponse for AuthError {
    fn into_response(self) -> Response {
        let mut response = Problem::new(self.status(), self.public_message()).into_response();
        let headers = response.headers_mut();
        match &self {
            Self::Locked { retry_after } => {
                headers.insert("retry-after", HeaderValue::from(*retry_after));
            }
            Self::BadCredentials | Self::Unauthenticated(_) => {
                headers.insert("www-authenticate", HeaderValue::from_static("Bearer"));
            }
            _ => {}
        }
        response
    }
}
