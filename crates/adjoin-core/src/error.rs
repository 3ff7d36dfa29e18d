//! The one error type of `adjoin-core`: what a port call can fail with.
//!
//! Every variant says whether trying again later can help ([`Error::is_transient`]);
//! the worker turns transient errors into `deferred`/`failed` outcomes (SQS delivers
//! the message again) and permanent ones into `rejected` (the message goes to the DLQ
//! with the error as its reason).

use std::time::Duration;

/// An error reported by a port (an AWS call, or its in-memory fake).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The service asked us to slow down. Transient.
    #[error("{operation}: throttled: {message}")]
    Throttled {
        operation: &'static str,
        message: String,
    },
    /// 5xx, time-out, connection failure. Transient.
    #[error("{operation}: service unavailable: {message}")]
    Unavailable {
        operation: &'static str,
        message: String,
    },
    /// The instance cannot take commands yet (SSM agent not registered). Transient.
    #[error("{operation}: instance not ready for commands: {message}")]
    AgentNotReady {
        operation: &'static str,
        message: String,
    },
    /// IAM refused the call (missing permission, untrusted role, wrong external id). Permanent.
    #[error("{operation}: access denied: {message}")]
    AccessDenied {
        operation: &'static str,
        message: String,
    },
    /// A named resource does not exist (table, queue, parameter). Permanent.
    #[error("{operation}: not found: {message}")]
    NotFound {
        operation: &'static str,
        message: String,
    },
    /// The request or the data that came back is invalid. Permanent.
    #[error("{operation}: invalid: {message}")]
    Invalid {
        operation: &'static str,
        message: String,
    },
}

impl Error {
    /// Whether the same call may succeed later without anybody changing anything.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::Throttled { .. } | Error::Unavailable { .. } | Error::AgentNotReady { .. }
        )
    }

    /// Whether the message should come back after a back-off rather than at once:
    /// throttling and agents that are not registered yet need time, not a retry storm.
    pub fn wants_backoff(&self) -> bool {
        matches!(self, Error::Throttled { .. } | Error::AgentNotReady { .. })
    }

    /// The same error, its message naming the resource the call was about (`table
    /// adjoin-config`, `queue https://…`), so that "not found" says what is missing.
    pub fn about(mut self, resource: &str) -> Self {
        let message = self.message_mut();
        *message = format!("{resource}: {message}");
        self
    }

    fn message_mut(&mut self) -> &mut String {
        match self {
            Error::Throttled { message, .. }
            | Error::Unavailable { message, .. }
            | Error::AgentNotReady { message, .. }
            | Error::AccessDenied { message, .. }
            | Error::NotFound { message, .. }
            | Error::Invalid { message, .. } => message,
        }
    }

    /// The operation that failed, e.g. `ssm:SendCommand`.
    pub fn operation(&self) -> &'static str {
        match self {
            Error::Throttled { operation, .. }
            | Error::Unavailable { operation, .. }
            | Error::AgentNotReady { operation, .. }
            | Error::AccessDenied { operation, .. }
            | Error::NotFound { operation, .. }
            | Error::Invalid { operation, .. } => operation,
        }
    }
}

/// Exponential back-off for the n-th delivery of a message (1-based), capped.
///
/// 30 s, 60 s, 120 s, … up to `cap`.
pub fn backoff(receive_count: u32, cap: Duration) -> Duration {
    let exponent = receive_count.saturating_sub(1).min(16);
    Duration::from_secs(30u64.saturating_mul(1 << exponent)).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_unready_agents_back_off_other_errors_do_not() {
        let e = |m: &str| m.to_string();
        assert!(
            Error::Throttled {
                operation: "x",
                message: e("m")
            }
            .wants_backoff()
        );
        assert!(
            Error::AgentNotReady {
                operation: "x",
                message: e("m")
            }
            .wants_backoff()
        );
        assert!(
            !Error::Unavailable {
                operation: "x",
                message: e("m")
            }
            .wants_backoff()
        );
        assert!(
            Error::Unavailable {
                operation: "x",
                message: e("m")
            }
            .is_transient()
        );
        assert!(
            !Error::AccessDenied {
                operation: "x",
                message: e("m")
            }
            .is_transient()
        );
        assert!(
            !Error::NotFound {
                operation: "x",
                message: e("m")
            }
            .is_transient()
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let cap = Duration::from_secs(900);
        assert_eq!(backoff(1, cap), Duration::from_secs(30));
        assert_eq!(backoff(2, cap), Duration::from_secs(60));
        assert_eq!(backoff(3, cap), Duration::from_secs(120));
        assert_eq!(backoff(10, cap), cap);
        assert_eq!(backoff(u32::MAX, cap), cap);
        assert_eq!(backoff(0, cap), Duration::from_secs(30));
    }
}
