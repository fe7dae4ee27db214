//! The errors the Lambdas return, under the stable names the state machine matches (docs/CONTRACTS.md).

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
