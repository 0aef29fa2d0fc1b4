//! The storage error: every backend turns its own failures into these, so callers never parse
//! an SDK's message.

use tessera_core::DomainError;

/// Result alias for port operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// What a port operation can fail with, whatever the backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// A write's condition did not hold (DynamoDB's `ConditionalCheckFailedException`, a
    /// cancelled transaction); nothing was written.
    #[error("condition failed: {0}")]
    Conflict(String),
    /// The request is malformed for this port (bad key, oversized item, bad cursor, ...).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// The table, queue, bucket or message does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The backend is unreachable, throttling or timing out; retrying later may succeed.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
    /// The backend answered something this code does not understand.
    #[error("backend error: {0}")]
    Internal(String),
}

impl From<StoreError> for DomainError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(what) => DomainError::Conflict(what),
            StoreError::InvalidInput(what) => DomainError::InvalidInput(what),
            StoreError::NotFound(what) => DomainError::NotFound(what),
            StoreError::Unavailable(what) => DomainError::Unavailable(what),
            StoreError::Internal(what) => DomainError::Internal(what),
        }
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        match &error {
            rusqlite::Error::SqliteFailure(code, _)
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) =>
            {
                StoreError::Unavailable(format!("sqlite: {error}"))
            }
            _ => StoreError::Internal(format!("sqlite: {error}")),
        }
    }
}

impl From<std::io::Error> for StoreError {
    fn from(error: std::io::Error) -> Self {
        StoreError::Internal(format!("i/o: {error}"))
    }
}
