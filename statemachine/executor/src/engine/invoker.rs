//! What a Task state calls: the [`TaskInvoker`] answers a [`TaskCall`] (a Lambda function, a service
//! integration, or the S3 reads and writes of a Distributed Map's ItemReader and ResultWriter).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::TimeMode;

/// How a Task resource is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// `Resource` is a Lambda function ARN: the result is the function's return value.
    LambdaFunction,
    /// `arn:aws:states:::lambda:invoke`: the result is wrapped as the Lambda Invoke API response.
    LambdaInvoke,
    /// Any other resource (service integration, activity): the result is used as returned.
    Service,
    /// A Distributed Map's ItemReader: `s3:listObjectsV2` answers `{"Contents": [...], "NextContinuationToken"?}`
    /// for `input` `{Bucket, Prefix, ContinuationToken?}`; `s3:getObject` answers the object's text as a
    /// JSON string for `{Bucket, Key}`.
    ItemReader,
    /// A Distributed Map's ResultWriter: `s3:putObject` of `input` `{Bucket, Key, Body}` (Body a string).
    ResultWriter,
}

/// The integration pattern of a service integration, from the resource's suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum IntegrationPattern {
    /// Call and take the response.
    #[default]
    RequestResponse,
    /// `.sync` / `.sync:2`: wait for the job (e.g. a child execution) to finish; the answer is its result.
    Sync,
    /// `.waitForTaskToken`: the call carries `task_token`; the answer is what `SendTaskSuccess` sends
    /// (a failure is `SendTaskFailure`).
    WaitForTaskToken,
}

impl IntegrationPattern {
    pub fn of(resource: &str) -> Self {
        if resource.ends_with(".waitForTaskToken") {
            Self::WaitForTaskToken
        } else if resource.ends_with(".sync") || resource.ends_with(".sync:2") {
            Self::Sync
        } else {
            Self::RequestResponse
        }
    }
}

/// One call of a Task's resource.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    pub state_name: String,
    /// The state's `Resource` as written.
    pub resource: String,
    pub kind: TaskKind,
    pub pattern: IntegrationPattern,
    /// The Lambda function to call (the ARN, or `Parameters.FunctionName` for `lambda:invoke`).
    pub function_name: Option<String>,
    /// What the resource receives: the effective input (or `Parameters.Payload` for `lambda:invoke`).
    pub input: Value,
    /// The context object (`$$`) as the state sees it.
    pub context: Value,
    /// 0-based attempt number of this state visit, counting retries.
    pub attempt: u32,
    /// `$$.Task.Token` of a `.waitForTaskToken` call.
    pub task_token: Option<String>,
    /// The task's time: sleep on it and send heartbeats (simulated time counts without sleeping).
    pub clock: TaskClock,
}

/// A failed Task call: `error` is what Retry/Catch `ErrorEquals` match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    pub error: String,
    pub cause: String,
}

impl TaskFailure {
    pub fn new(error: impl Into<String>, cause: impl Into<String>) -> Self {
        Self {
            error: error.into(),
            cause: cause.into(),
        }
    }
}

/// Answers Task states. For Lambda resources return the function's own result (the executor wraps
/// it for `lambda:invoke`); for other resources return the service response.
#[async_trait::async_trait]
pub trait TaskInvoker: Send + Sync {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure>;
}

#[derive(Debug, Default)]
struct ClockState {
    /// Seconds the task has taken so far (simulated time).
    elapsed: f64,
    /// When heartbeats were sent, in seconds since the task started.
    heartbeats: Vec<f64>,
}

/// The time of one task invocation, shared by the invoker and the executor: a task that takes time
/// says so with [`TaskClock::sleep`], a task that reports progress with [`TaskClock::heartbeat`]
/// (`SendTaskHeartbeat`). In simulated time nothing sleeps; the executor reads the elapsed time and
/// the heartbeats afterwards to apply TimeoutSeconds and HeartbeatSeconds.
#[derive(Debug, Clone)]
pub struct TaskClock {
    mode: TimeMode,
    started: tokio::time::Instant,
    state: Arc<Mutex<ClockState>>,
}

impl PartialEq for TaskClock {
    /// A clock is not part of what a call is: two calls with equal fields are equal.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl TaskClock {
    pub fn new(mode: TimeMode) -> Self {
        Self {
            mode,
            started: tokio::time::Instant::now(),
            state: Arc::new(Mutex::new(ClockState::default())),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        self.state.lock().expect("clock lock is never poisoned")
    }

    /// Seconds since the task started.
    pub fn elapsed(&self) -> f64 {
        match self.mode {
            TimeMode::Real => self.started.elapsed().as_secs_f64(),
            TimeMode::Simulated => self.lock().elapsed,
        }
    }

    /// Take `seconds` of the task's time.
    pub async fn sleep(&self, seconds: f64) {
        if seconds <= 0.0 {
            return;
        }
        match self.mode {
            TimeMode::Real => tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await,
            TimeMode::Simulated => self.lock().elapsed += seconds,
        }
    }

    /// Report progress (`SendTaskHeartbeat`): restarts the HeartbeatSeconds count.
    pub fn heartbeat(&self) {
        let at = self.elapsed();
        self.lock().heartbeats.push(at);
    }

    pub(crate) fn heartbeats(&self) -> Vec<f64> {
        self.lock().heartbeats.clone()
    }
}
