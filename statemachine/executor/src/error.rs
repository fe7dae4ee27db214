//! Error names of the Amazon States Language and the error value a state fails with.

use serde::{Deserialize, Serialize};

/// Well-known error names (`States.*`), as AWS Step Functions reports and matches them.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
    pub const RUNTIME: &str = "States.Runtime";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    pub const PERMISSIONS: &str = "States.Permissions";
    pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";

    /// Every `States.*` name that may appear in `ErrorEquals`.
    pub const KNOWN: &[&str] = &[
        ALL,
        TASK_FAILED,
        TIMEOUT,
        HEARTBEAT_TIMEOUT,
        DATA_LIMIT_EXCEEDED,
        RUNTIME,
        BRANCH_FAILED,
        NO_CHOICE_MATCHED,
        INTRINSIC_FAILURE,
        RESULT_PATH_MATCH_FAILURE,
        PARAMETER_PATH_FAILURE,
        EXCEED_TOLERATED_FAILURE_THRESHOLD,
        ITEM_READER_FAILED,
        RESULT_WRITER_FAILED,
        PERMISSIONS,
        QUERY_EVALUATION_ERROR,
    ];
}

/// The error a state (or a whole execution) failed with: what `ErrorEquals` matches and what
/// a Catch hands on as `{"Error": …, "Cause": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateError {
    pub error: String,
    pub cause: String,
}

impl StateError {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }

    /// The error of a Fail state: without `Error` or `Cause`, AWS leaves them absent (kept here as
    /// empty strings, which records and history show as absent).
    pub fn from_fail_state(error: Option<String>, cause: Option<String>) -> Self {
        Self::new(error.unwrap_or_default(), cause.unwrap_or_default())
    }

    /// A `States.Runtime` error: bad paths and other data problems. AWS never retries or catches
    /// these, not even with `States.ALL`.
    pub fn runtime(cause: impl Into<String>) -> Self {
        Self::new(names::RUNTIME, cause)
    }

    /// Terminal errors fail the execution unless a Retrier/Catcher names them explicitly;
    /// `States.ALL` and `States.TaskFailed` never match them (AWS "Error names").
    pub fn is_terminal(&self) -> bool {
        self.error == names::RUNTIME || self.error == names::DATA_LIMIT_EXCEEDED
    }

    /// Whether an `ErrorEquals` list matches this error, with AWS's wildcard rules.
    pub fn matches(&self, error_equals: &[String]) -> bool {
        if self.error == names::RUNTIME {
            return false;
        }
        error_equals.iter().any(|name| match name.as_str() {
            names::ALL => !self.is_terminal(),
            names::TASK_FAILED => !self.is_terminal() && self.error != names::TIMEOUT,
            other => other == self.error,
        })
    }

    /// The `{"Error", "Cause"}` object a Catcher passes to its `Next` state.
    pub fn to_output(&self) -> serde_json::Value {
        let mut output = serde_json::Map::new();
        if !self.error.is_empty() {
            output.insert("Error".into(), self.error.clone().into());
        }
        if !self.cause.is_empty() {
            output.insert("Cause".into(), self.cause.clone().into());
        }
        serde_json::Value::Object(output)
    }
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.cause.is_empty() {
            write!(f, "{}", self.error)
        } else {
            write!(f, "{}: {}", self.error, self.cause)
        }
    }
}

/// A definition that cannot be parsed or is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefinitionError {
    #[error("definition is not valid JSON: {0}")]
    Json(String),
    #[error("{location}: {message}")]
    Invalid { location: String, message: String },
    #[error("definition has {} problem(s):\n{}", .0.len(), .0.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Problems(Vec<Problem>),
}

/// One problem `validate` found, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `state "Name"`, nested as `state "Map" > ItemProcessor > state "Inner"`, or `definition`.
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

impl DefinitionError {
    pub fn invalid(location: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            location: location.into(),
            message: message.into(),
        }
    }
}
