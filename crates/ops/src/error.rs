//! Errors of the operator commands. Each one prints as a single line that says what failed and what
//! AWS answered, so a batch over many executions stays readable.

use aws_credential_types::provider::error::CredentialsError;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::display::DisplayErrorContext;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The caller's credentials are missing, invalid or lack a permission.
    #[error("{operation}: access denied ({code}): {message}")]
    AccessDenied {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// AWS kept throttling after every retry.
    #[error("{operation}: throttled by AWS after retries ({code}): {message}")]
    Throttled {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// The execution, state machine, stack or bucket does not exist.
    #[error("{operation}: not found ({code}): {message}")]
    NotFound {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// Any other error AWS answered with.
    #[error("{operation}: {code}: {message}")]
    Service {
        operation: &'static str,
        code: String,
        message: String,
    },
    /// No credentials could be found or loaded: nothing was asked of AWS.
    #[error(
        "{operation}: {problem}: set AWS_PROFILE (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), \
         or run `aws configure` or `aws sso login` (-v shows why)"
    )]
    NoCredentials {
        operation: &'static str,
        /// "no AWS credentials found", or why loading them failed.
        problem: String,
    },
    /// No answer from AWS: network, timeout, missing region.
    #[error("{operation}: request failed: {message}")]
    Request {
        operation: &'static str,
        message: String,
    },
    /// The command line or the stack does not give what the command needs.
    #[error("{0}")]
    Usage(String),
    #[error("writing output: {0}")]
    Output(#[from] std::io::Error),
}

const ACCESS_DENIED_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "InvalidSignatureException",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "KmsAccessDeniedException",
];

const THROTTLING_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "TooManyRequestsException",
    "RequestLimitExceeded",
    "SlowDown",
    "KmsThrottlingException",
];

const NOT_FOUND_CODES: &[&str] = &[
    "ExecutionDoesNotExist",
    "StateMachineDoesNotExist",
    "NoSuchBucket",
    "NoSuchKey",
    "NotFound",
    "ResourceNotFound",
    "ResourceNotFoundException",
];

/// Whether an error code means "slow down" (AWS uses several names for it).
pub fn is_throttling_code(code: Option<&str>) -> bool {
    code.is_some_and(|code| THROTTLING_CODES.contains(&code))
}

impl OpsError {
    /// Classifies an SDK error of `operation` (e.g. `"StartExecution"`).
    pub fn from_sdk<E, R>(operation: &'static str, err: SdkError<E, R>) -> OpsError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        R: std::fmt::Debug + Send + Sync + 'static,
    {
        let Some(code) = err.code().map(str::to_owned) else {
            // The SDK's full context (every source, the raw response) is a detail for -v.
            tracing::debug!(operation, error = %DisplayErrorContext(&err), "AWS request failed");
            if let Some(problem) = credentials_problem(&err) {
                return OpsError::NoCredentials { operation, problem };
            }
            return OpsError::Request {
                operation,
                message: innermost_cause(&err),
            };
        };
        let message = one_line(err.message().unwrap_or("(no message)"));
        // CloudFormation answers a missing stack with a generic ValidationError.
        let missing_stack = code == "ValidationError" && message.contains("does not exist");
        if ACCESS_DENIED_CODES.contains(&code.as_str()) {
            OpsError::AccessDenied {
                operation,
                code,
                message,
            }
        } else if is_throttling_code(Some(&code)) {
            OpsError::Throttled {
                operation,
                code,
                message,
            }
        } else if NOT_FOUND_CODES.contains(&code.as_str()) || missing_stack {
            OpsError::NotFound {
                operation,
                code,
                message,
            }
        } else {
            OpsError::Service {
                operation,
                code,
                message,
            }
        }
    }

    /// Errors after which the next item of a batch would fail the same way (no permission, no state
    /// machine): the batch stops instead of printing the same line a thousand times.
    pub fn stops_batch(&self) -> bool {
        match self {
            OpsError::AccessDenied { .. }
            | OpsError::NoCredentials { .. }
            | OpsError::Usage(_)
            | OpsError::Output(_)
            | OpsError::Request { .. } => true,
            OpsError::NotFound { code, .. } => {
                code == "StateMachineDoesNotExist" || code == "NoSuchBucket"
            }
            OpsError::Throttled { .. } | OpsError::Service { .. } => false,
        }
    }
}

/// Why no credentials were there to sign with, when that is what stopped the request.
fn credentials_problem(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut cause = Some(err);
    while let Some(current) = cause {
        if let Some(credentials) = current.downcast_ref::<CredentialsError>() {
            return Some(match credentials {
                CredentialsError::CredentialsNotLoaded(_) => "no AWS credentials found".to_owned(),
                // The default chain stops at the first provider that fails rather than finds nothing.
                other => format!(
                    "no usable AWS credentials (the credential chain stopped at: {})",
                    innermost_cause(other)
                ),
            });
        }
        cause = current.source();
    }
    None
}

/// The last error of a chain: the one that says what actually happened ("Connection refused").
fn innermost_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = err;
    while let Some(source) = cause.source() {
        cause = source;
    }
    one_line(&cause.to_string())
}

/// AWS messages and error chains can span lines; an operator's terminal wants one line per failure.
pub(crate) fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_sfn::operation::list_executions::ListExecutionsError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::ConnectorError;

    fn failed_dispatch(
        cause: Box<dyn std::error::Error + Send + Sync>,
    ) -> SdkError<ListExecutionsError, HttpResponse> {
        SdkError::dispatch_failure(ConnectorError::other(cause, None))
    }

    #[test]
    fn missing_credentials_are_said_in_one_line_with_what_to_do() {
        let err = OpsError::from_sdk(
            "ListExecutions",
            failed_dispatch(Box::new(CredentialsError::not_loaded(
                "no providers in chain provided credentials",
            ))),
        );
        let text = err.to_string();
        assert!(matches!(err, OpsError::NoCredentials { .. }), "{err:?}");
        assert!(
            text.starts_with("ListExecutions: no AWS credentials found: set AWS_PROFILE"),
            "{text}"
        );
        assert!(text.contains("aws sso login"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn other_request_failures_name_what_happened_not_the_whole_chain() {
        let err = OpsError::from_sdk(
            "DescribeStacks",
            failed_dispatch(Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused (os error 111)",
            ))),
        );
        assert_eq!(
            err.to_string(),
            "DescribeStacks: request failed: Connection refused (os error 111)"
        );
    }
}
