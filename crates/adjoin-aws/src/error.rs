//! Mapping SDK errors onto `adjoin_core::Error`, and this crate's own setup error.

use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

/// What can go wrong while building the adapters from the environment. Permanent:
/// the process cannot start until the setting is fixed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("environment variable {0} is not set")]
    MissingSetting(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    InvalidSetting { name: &'static str, reason: String },
}

/// Error codes that mean "slow down": the SDK's own list, which its retry classifier uses.
use aws_runtime::retries::classifiers::{THROTTLING_ERRORS as THROTTLING, TRANSIENT_ERRORS};

const ACCESS_DENIED: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "AuthFailure",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "KMSAccessDeniedException",
];
const NOT_FOUND: &[&str] = &[
    "ResourceNotFoundException",
    "AWS.SimpleQueueService.NonExistentQueue",
    "QueueDoesNotExist",
    "ParameterNotFound",
    "InvalidDocument",
    "NoSuchEntity",
];
/// Server-side codes the SDK classifies by HTTP status (5xx) rather than by code, and
/// `ExpiredToken` (the next attempt gets fresh credentials); the SDK's transient codes
/// ([`TRANSIENT_ERRORS`]) count too.
const UNAVAILABLE: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "InternalServerException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "ExpiredToken",
    "ExpiredTokenException",
];

/// Maps any SDK error to the core error for `operation`.
pub(crate) fn map_sdk_error<E>(
    operation: &'static str,
    err: SdkError<E, HttpResponse>,
) -> adjoin_core::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    use adjoin_core::Error as E2;
    let message = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            E2::Unavailable { operation, message }
        }
        SdkError::ConstructionFailure(_) => E2::Invalid { operation, message },
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or_default();
            let message = service
                .err()
                .message()
                .map(|m| format!("{code}: {m}"))
                .unwrap_or_else(|| code.to_owned());
            match (
                classify(operation, code, message),
                service.raw().status().as_u16(),
            ) {
                // Codes we do not know: the HTTP status still says "slow down" or "try again".
                (E2::Invalid { operation, message }, 429) => E2::Throttled { operation, message },
                (E2::Invalid { operation, message }, 500..=599) => {
                    E2::Unavailable { operation, message }
                }
                (mapped, _) => mapped,
            }
        }
        _ => E2::Unavailable { operation, message },
    }
}

/// [`map_sdk_error`] for a call on the DynamoDB table `table`, which the error names.
pub(crate) fn table_error<E>(
    operation: &'static str,
    table: &str,
    err: SdkError<E, HttpResponse>,
) -> adjoin_core::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    map_sdk_error(operation, err).about(&format!("table {table}"))
}

/// Classifies a service error code.
pub(crate) fn classify(operation: &'static str, code: &str, message: String) -> adjoin_core::Error {
    use adjoin_core::Error as E2;
    if THROTTLING.contains(&code) {
        E2::Throttled { operation, message }
    } else if code == "InvalidInstanceId" {
        // SSM: the instance's agent is not registered (yet), or is offline.
        E2::AgentNotReady { operation, message }
    } else if ACCESS_DENIED.contains(&code) {
        E2::AccessDenied { operation, message }
    } else if NOT_FOUND.contains(&code) {
        E2::NotFound { operation, message }
    } else if UNAVAILABLE.contains(&code) || TRANSIENT_ERRORS.contains(&code) || code.is_empty() {
        E2::Unavailable { operation, message }
    } else {
        E2::Invalid { operation, message }
    }
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn codes_map_to_the_right_kind() {
        use adjoin_core::Error as E;
        let m = String::new;
        for (code, expected) in [
            (
                "ThrottlingException",
                E::Throttled {
                    operation: "op",
                    message: m(),
                },
            ),
            (
                "InvalidInstanceId",
                E::AgentNotReady {
                    operation: "op",
                    message: m(),
                },
            ),
            (
                "AccessDenied",
                E::AccessDenied {
                    operation: "op",
                    message: m(),
                },
            ),
            (
                "ResourceNotFoundException",
                E::NotFound {
                    operation: "op",
                    message: m(),
                },
            ),
            (
                "InternalServerError",
                E::Unavailable {
                    operation: "op",
                    message: m(),
                },
            ),
            (
                "ValidationException",
                E::Invalid {
                    operation: "op",
                    message: m(),
                },
            ),
        ] {
            assert_eq!(classify("op", code, String::new()), expected, "{code}");
        }
    }
}
