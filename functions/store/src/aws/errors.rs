//! AWS SDK failures as [`StoreError`]s, by the service's error code (the same codes DynamoDB,
//! SQS and S3 answer on AWS, LocalStack and moto).

use aws_sdk_dynamodb::error::{BuildError, ProvideErrorMetadata, SdkError};

use crate::error::StoreError;

const CONFLICT: &[&str] = &["ConditionalCheckFailedException"];
const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "TableNotFoundException",
    "NonExistentQueue",
    "QueueDoesNotExist",
    "MessageNotInflight",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
];
const INVALID: &[&str] = &[
    "ValidationException",
    "InvalidParameterValue",
    "InvalidParameterCombination",
    "InvalidAttributeName",
    "InvalidAttributeValue",
    "InvalidMessageContents",
    "MissingParameter",
    "ReceiptHandleIsInvalid",
    "InvalidIdFormat",
    "InvalidArgument",
    "InvalidRequest",
    "InvalidBucketName",
    "KeyTooLongError",
    "EntityTooLarge",
];
const UNAVAILABLE: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "KmsThrottled",
    "OverLimit",
    "SlowDown",
    "ServiceUnavailable",
    "InternalServerError",
    "InternalFailure",
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
    "TransactionConflictException",
    "TransactionInProgressException",
];

/// The service's error code, without SQS's `AWS.SimpleQueueService.` prefix; `None` when the
/// request never got an answer.
pub(crate) fn code<E: ProvideErrorMetadata>(error: &SdkError<E>) -> Option<&str> {
    let code = error.code()?;
    Some(code.strip_prefix("AWS.SimpleQueueService.").unwrap_or(code))
}

/// Whether the service answered with `wanted`.
pub(crate) fn is<E: ProvideErrorMetadata>(error: &SdkError<E>, wanted: &str) -> bool {
    code(error) == Some(wanted)
}

/// The store error of a failed SDK call; `what` names the call, e.g. `PutItem tessera-jobs`.
/// A service's answer is described by its code and message only, as the full SDK error
/// carries the raw HTTP exchange.
pub(crate) fn store_error<E>(what: &str, error: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    match &error {
        SdkError::ServiceError(_) => {
            let status = error.raw_response().map(|response| response.status().as_u16());
            let detail = match error.code() {
                Some(code) => format!("{what}: {code}: {}", error.message().unwrap_or("no message")),
                // S3 answers HEAD requests without a body, so without a code.
                None => format!("{what}: HTTP {}", status.unwrap_or_default()),
            };
            let server_fault = status.is_some_and(|status| status >= 500);
            service_error(code(&error), server_fault, detail)
        }
        SdkError::TimeoutError(_) => StoreError::Unavailable(describe(what, &error)),
        SdkError::DispatchFailure(failure) if failure.is_user() => StoreError::Internal(describe(what, &error)),
        SdkError::DispatchFailure(_) => StoreError::Unavailable(describe(what, &error)),
        _ => StoreError::Internal(describe(what, &error)),
    }
}

/// The error and its causes, without the SDK's debug dump of the HTTP exchange.
fn describe<E>(what: &str, error: &SdkError<E>) -> String
where
    E: std::error::Error + 'static,
{
    let mut text = format!("{what}: {error}");
    let mut cause = std::error::Error::source(error);
    while let Some(current) = cause {
        text.push_str(": ");
        text.push_str(&current.to_string());
        cause = current.source();
    }
    text
}

/// The store error of a service's error code; 5xx answers without a known code are
/// `Unavailable`, as retrying them may succeed.
pub(crate) fn service_error(code: Option<&str>, server_fault: bool, detail: String) -> StoreError {
    let known = |codes: &[&str]| code.is_some_and(|code| codes.contains(&code));
    if known(CONFLICT) {
        StoreError::Conflict(detail)
    } else if known(NOT_FOUND) {
        StoreError::NotFound(detail)
    } else if known(INVALID) {
        StoreError::InvalidInput(detail)
    } else if known(UNAVAILABLE) || server_fault {
        StoreError::Unavailable(detail)
    } else {
        StoreError::Internal(detail)
    }
}

/// An SDK builder that lacked a required field: a bug here, not the caller's.
pub(crate) fn built<T>(result: Result<T, BuildError>) -> Result<T, StoreError> {
    result.map_err(|error| StoreError::Internal(format!("building an AWS request: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(code: &str) -> StoreError {
        service_error(Some(code), false, code.to_owned())
    }

    #[test]
    fn codes_map_to_store_errors() {
        assert_eq!(
            classify("ConditionalCheckFailedException"),
            StoreError::Conflict("ConditionalCheckFailedException".into())
        );
        assert!(matches!(classify("ResourceNotFoundException"), StoreError::NotFound(_)));
        assert!(matches!(classify("NonExistentQueue"), StoreError::NotFound(_)));
        assert!(matches!(classify("NoSuchBucket"), StoreError::NotFound(_)));
        assert!(matches!(classify("ValidationException"), StoreError::InvalidInput(_)));
        assert!(matches!(classify("InvalidParameterValue"), StoreError::InvalidInput(_)));
        assert!(matches!(
            classify("ProvisionedThroughputExceededException"),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(classify("SlowDown"), StoreError::Unavailable(_)));
        assert!(matches!(classify("AccessDeniedException"), StoreError::Internal(_)));
    }

    #[test]
    fn unknown_server_faults_are_worth_a_retry() {
        assert!(matches!(
            service_error(Some("Odd"), true, String::new()),
            StoreError::Unavailable(_)
        ));
        assert!(matches!(
            service_error(None, false, String::new()),
            StoreError::Internal(_)
        ));
    }
}
