//! The domain error: what went wrong, in terms every API family maps to its own status and body.

use crate::job::JobStatus;

/// Result alias for domain operations.
pub type DomainResult<T> = Result<T, DomainError>;

/// Everything that can go wrong in the domain, classified so that each API style maps it to one
/// HTTP status and body, and so that callers know whether a retry can help.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DomainError {
    /// The input was malformed or out of range; nothing was changed.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The thing asked for does not exist (or belongs to someone else).
    #[error("not found: {0}")]
    NotFound(String),
    /// A conditional write lost: the state changed since it was read.
    #[error("conflict: {0}")]
    Conflict(String),
    /// A state transition that the job state machine forbids.
    #[error("illegal job transition from {from} to {to}")]
    IllegalTransition {
        /// The state the job is in.
        from: JobStatus,
        /// The state that was asked for.
        to: JobStatus,
    },
    /// A dependency (database, queue, object store) is unreachable or throttling; retry later.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected answer from a dependency; not the caller's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl DomainError {
    /// Whether trying the same operation again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::Conflict(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_transient_errors_are_retryable() {
        assert!(DomainError::Unavailable("dynamodb".into()).is_retryable());
        assert!(DomainError::Conflict("version 3".into()).is_retryable());
        assert!(!DomainError::InvalidInput("steps".into()).is_retryable());
        assert!(!DomainError::NotFound("job".into()).is_retryable());
        assert!(!DomainError::Internal("bug".into()).is_retryable());
    }
}
