//! The errors the Lambdas return, under the stable names the state machine matches (docs/CONTRACTS.md).

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ferrotype_core::{Rejection, RejectionCode};

/// A stage's failure. The name ([`StageError::name`]) is the Lambda `errorType` and never changes; the
/// message is for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StageError {
    /// `ImageRejected.<code>`: the upload is refused for good and recorded as `rejected`.
    #[error("{}", .0.message)]
    Rejected(Rejection),
    /// `Ferrotype.Superseded`: the version this execution works on is no longer the key's current object
    /// (replaced or deleted). Not a fault: the ASL removes the version's outputs and succeeds.
    #[error("{0}")]
    Superseded(String),
    /// `Ferrotype.Throttled`: S3 kept answering 503 SlowDown (or another throttling code); the ASL
    /// retries it with the throttling retrier, like Lambda's own throttling.
    #[error("{0}")]
    Throttled(String),
    /// `Ferrotype.Transient`: S3 5xx, timeouts, connection failures; retried by the ASL.
    #[error("{0}")]
    Transient(String),
    /// `Ferrotype.Config`: bad configuration or environment (including missing permissions).
    #[error("{0}")]
    Config(String),
    /// `Ferrotype.BadEvent`: the input is not what the stage accepts.
    #[error("{0}")]
    BadEvent(String),
    /// `Ferrotype.FaceDetection`: the face detector failed (the ASL falls back to a centred focus).
    #[error("{0}")]
    FaceDetection(String),
    /// `Ferrotype.RenderFailed`: rendering or encoding failed for a reason other than the input's fault.
    #[error("{0}")]
    RenderFailed(String),
}

impl StageError {
    pub const SUPERSEDED: &'static str = "Ferrotype.Superseded";
    pub const THROTTLED: &'static str = "Ferrotype.Throttled";
    pub const TRANSIENT: &'static str = "Ferrotype.Transient";
    pub const CONFIG: &'static str = "Ferrotype.Config";
    pub const BAD_EVENT: &'static str = "Ferrotype.BadEvent";
    pub const FACE_DETECTION: &'static str = "Ferrotype.FaceDetection";
    pub const RENDER_FAILED: &'static str = "Ferrotype.RenderFailed";

    pub fn rejected(code: RejectionCode, message: impl Into<String>) -> StageError {
        StageError::Rejected(Rejection::new(code, message))
    }

    /// The stable error name (`ImageRejected.TooLarge`, `Ferrotype.Transient`, …).
    pub fn name(&self) -> &'static str {
        match self {
            StageError::Rejected(rejection) => rejection.error_name(),
            StageError::Superseded(_) => Self::SUPERSEDED,
            StageError::Throttled(_) => Self::THROTTLED,
            StageError::Transient(_) => Self::TRANSIENT,
            StageError::Config(_) => Self::CONFIG,
            StageError::BadEvent(_) => Self::BAD_EVENT,
            StageError::FaceDetection(_) => Self::FACE_DETECTION,
            StageError::RenderFailed(_) => Self::RENDER_FAILED,
        }
    }

    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl From<StageError> for lambda_runtime::Diagnostic {
    fn from(error: StageError) -> Self {
        lambda_runtime::Diagnostic {
            error_type: error.name().to_owned(),
            error_message: error.message(),
        }
    }
}

/// What a decode or a render refused: the upload's fault is a rejection, a spec that cannot be rendered a
/// configuration error, anything else a render failure.
impl From<ferrotype_core::RenderError> for StageError {
    fn from(error: ferrotype_core::RenderError) -> Self {
        match error {
            ferrotype_core::RenderError::Rejected(rejection) => StageError::Rejected(rejection),
            ferrotype_core::RenderError::InvalidSpec(spec) => StageError::Config(spec.to_string()),
            ferrotype_core::RenderError::Encode(message) => StageError::RenderFailed(message),
        }
    }
}

impl From<ferrotype_core::config::ConfigError> for StageError {
    fn from(error: ferrotype_core::config::ConfigError) -> Self {
        StageError::Config(error.to_string())
    }
}

impl From<ferrotype_core::faces::FaceDetectionError> for StageError {
    fn from(error: ferrotype_core::faces::FaceDetectionError) -> Self {
        match error {
            ferrotype_core::faces::FaceDetectionError::Transient(message) => {
                StageError::Transient(message)
            }
            ferrotype_core::faces::FaceDetectionError::Failed(message) => {
                StageError::FaceDetection(message)
            }
        }
    }
}

/// An SDK error as one line for people, logs and manifests: `503 SlowDown: Please reduce your request
/// rate.` when S3 answered, else what became of the request (`no answer: connection refused`). The
/// SDK's full context (every source, the raw response) is logged at debug level only, never put here.
pub fn describe_sdk_error<E>(error: &SdkError<E, HttpResponse>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let innermost = || {
        let mut cause: &(dyn std::error::Error + 'static) = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        one_line(&cause.to_string())
    };
    match error {
        SdkError::ServiceError(_) | SdkError::ResponseError(_) => {
            let status = error
                .raw_response()
                .map(|response| response.status().as_u16());
            let answer = match (status, error.code()) {
                (Some(status), Some(code)) => format!("{status} {code}"),
                (Some(status), None) => match reason_phrase(status) {
                    Some(reason) => format!("{status} {reason}"),
                    None => format!("HTTP {status}"),
                },
                (None, Some(code)) => code.to_owned(),
                (None, None) => "an unreadable answer".to_owned(),
            };
            // A modeled error made without a response's metadata (an SDK-boundary mock) names itself
            // only in its Display text.
            if error.code().is_none() {
                if let Some(service) = error.as_service_error() {
                    let text = one_line(&service.to_string());
                    if !text.starts_with("unhandled error") {
                        return format!("{answer}: {text}");
                    }
                }
            }
            match error.message().map(one_line) {
                Some(message) if !message.is_empty() => format!("{answer}: {message}"),
                _ if matches!(error, SdkError::ResponseError(_)) => {
                    format!("{answer}: {}", innermost())
                }
                _ => answer,
            }
        }
        SdkError::TimeoutError(_) => "no answer: the request timed out".to_owned(),
        SdkError::DispatchFailure(_) => format!("no answer: {}", innermost()),
        SdkError::ConstructionFailure(_) => {
            format!("the request could not be made: {}", innermost())
        }
        _ => innermost(),
    }
}

/// What the statuses S3 answers without a body (HEAD requests) mean.
fn reason_phrase(status: u16) -> Option<&'static str> {
    Some(match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => return None,
    })
}

/// Error texts can span lines; a log line, a table cell or a manifest field wants one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_contract_names() {
        let cases = [
            (
                StageError::rejected(RejectionCode::TooManyPixels, "big"),
                "ImageRejected.TooManyPixels",
            ),
            (StageError::Transient("500".into()), "Ferrotype.Transient"),
            (StageError::Throttled("503".into()), "Ferrotype.Throttled"),
            (
                StageError::Superseded("replaced".into()),
                "Ferrotype.Superseded",
            ),
            (StageError::Config("env".into()), "Ferrotype.Config"),
            (StageError::BadEvent("json".into()), "Ferrotype.BadEvent"),
            (
                StageError::FaceDetection("model".into()),
                "Ferrotype.FaceDetection",
            ),
            (
                StageError::RenderFailed("encode".into()),
                "Ferrotype.RenderFailed",
            ),
        ];
        for (error, name) in cases {
            let message = error.message();
            let diagnostic = lambda_runtime::Diagnostic::from(error);
            assert_eq!(diagnostic.error_type, name);
            assert_eq!(diagnostic.error_message, message);
        }
        for code in RejectionCode::ALL {
            assert_eq!(StageError::rejected(code, "x").name(), code.error_name());
        }
    }

    #[test]
    fn sdk_errors_read_as_one_short_line() {
        use aws_sdk_s3::operation::get_object::GetObjectError;
        use aws_smithy_runtime_api::client::result::ConnectorError;
        use aws_smithy_types::body::SdkBody;
        use aws_smithy_types::error::ErrorMetadata;

        let raw = || {
            HttpResponse::new(
                503.try_into().unwrap(),
                SdkBody::from("<Error><Code>SlowDown</Code><RequestId>R</RequestId></Error>"),
            )
        };
        let throttled: SdkError<GetObjectError, HttpResponse> = SdkError::service_error(
            GetObjectError::generic(
                ErrorMetadata::builder()
                    .code("SlowDown")
                    .message("Please reduce your request rate.")
                    .build(),
            ),
            raw(),
        );
        assert_eq!(
            describe_sdk_error(&throttled),
            "503 SlowDown: Please reduce your request rate."
        );
        let bare: SdkError<GetObjectError, HttpResponse> = SdkError::service_error(
            GetObjectError::generic(ErrorMetadata::builder().build()),
            HttpResponse::new(404.try_into().unwrap(), SdkBody::empty()),
        );
        assert_eq!(describe_sdk_error(&bare), "404 Not Found");
        let refused: SdkError<GetObjectError, HttpResponse> =
            SdkError::dispatch_failure(ConnectorError::io(Box::new(std::io::Error::new(
                std::io::ErrorKind::ConnectionRefused,
                "Connection refused (os error 111)",
            ))));
        assert_eq!(
            describe_sdk_error(&refused),
            "no answer: Connection refused (os error 111)"
        );
    }

    #[test]
    fn messages_are_the_human_text_without_the_name() {
        let error = StageError::rejected(RejectionCode::Empty, "the object is empty (0 bytes)");
        assert_eq!(error.message(), "the object is empty (0 bytes)");
        let error: StageError =
            ferrotype_core::faces::FaceDetectionError::Transient("throttled".into()).into();
        assert_eq!(error.name(), "Ferrotype.Transient");
        let error: StageError =
            ferrotype_core::faces::FaceDetectionError::Failed("bad image".into()).into();
        assert_eq!(error.name(), "Ferrotype.FaceDetection");
    }
}
