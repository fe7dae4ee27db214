//! The executor: runs a definition with Step Functions semantics, records AWS-shaped history,
//! and redrives failed executions from a persisted checkpoint.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::definition::{
    Catcher, IoPaths, JitterStrategy, MapState, ParallelState, PathField, Retrier, State,
    StateMachine, TaskState, Transition, WaitFor,
};
use crate::error::{names, StateError};
use crate::history::*;
use crate::paths;

/// Maximum size of any state's input or output, and of an execution's input (UTF-8 bytes).
pub const PAYLOAD_LIMIT_BYTES: usize = 262_144;
/// A Standard execution's history holds at most this many events; reaching it fails the execution.
pub const HISTORY_EVENT_LIMIT: usize = 25_000;
/// AWS runs at most this many inline Map iterations at once, whatever MaxConcurrency says.
pub const INLINE_MAP_CONCURRENCY_LIMIT: usize = 40;

/// How a Task resource is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    /// `Resource` is a Lambda function ARN: the result is the function's return value.
    LambdaFunction,
    /// `arn:aws:states:::lambda:invoke`: the result is wrapped as the Lambda Invoke API response.
    LambdaInvoke,
    /// Any other resource (service integration, activity): the result is used as returned.
    Service,
}

/// One call of a Task's resource.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskCall {
    pub state_name: String,
    /// The state's `Resource` as written.
    pub resource: String,
    pub kind: TaskKind,
    /// The Lambda function to call (the ARN, or `Parameters.FunctionName` for `lambda:invoke`).
    pub function_name: Option<String>,
    /// What the resource receives: the effective input (or `Parameters.Payload` for `lambda:invoke`).
    pub input: Value,
    /// The context object (`$$`) as the state sees it.
    pub context: Value,
    /// 0-based attempt number of this state visit, counting retries.
    pub attempt: u32,
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

/// Whether waits and retry intervals really sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TimeMode {
    #[default]
    Real,
    /// Record events as if the time elapsed, without sleeping (tests, `statemachine test`).
    Simulated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

/// Names and ARNs of an execution (what the context object's `Execution`/`StateMachine` show).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecutionOptions {
    pub state_machine_arn: String,
    pub state_machine_name: String,
    pub execution_arn: String,
    pub name: String,
    pub role_arn: String,
    /// Start time; `None` means now.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub start_time: Option<OffsetDateTime>,
}

impl ExecutionOptions {
    /// Local ARNs in the AWS format (account 123456789012, region us-east-1).
    pub fn local(state_machine_name: &str, execution_name: &str) -> Self {
        let prefix = "arn:aws:states:us-east-1:123456789012";
        Self {
            state_machine_arn: format!("{prefix}:stateMachine:{state_machine_name}"),
            state_machine_name: state_machine_name.to_string(),
            execution_arn: format!("{prefix}:execution:{state_machine_name}:{execution_name}"),
            name: execution_name.to_string(),
            role_arn: "arn:aws:iam::123456789012:role/ferrotype-local".to_string(),
            start_time: None,
        }
    }
}

/// Where a scope (the execution, a Map iteration, a Parallel branch) stopped: the state that
/// failed, its raw input, and for Map/Parallel which children already succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeCheckpoint {
    pub state: String,
    pub input: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<ChildCheckpoint>>,
}

/// A Map iteration or Parallel branch as a redrive finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum ChildCheckpoint {
    /// Not rerun on redrive: its recorded output is reused.
    Succeeded { output: Value },
    /// Resumed from the state where it failed.
    Failed { checkpoint: ScopeCheckpoint },
    /// Never started (aborted before it ran): runs from the beginning.
    NotStarted,
}

/// An execution, complete enough to persist, show, and redrive in another process.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRecord {
    pub options: ExecutionOptions,
    pub status: ExecutionStatus,
    pub input: Value,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub start_date: OffsetDateTime,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub stop_date: Option<OffsetDateTime>,
    pub redrive_count: u32,
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub redrive_date: Option<OffsetDateTime>,
    pub history: Vec<HistoryEvent>,
    /// Present on FAILED / TIMED_OUT executions: where a redrive resumes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<ScopeCheckpoint>,
}

impl ExecutionRecord {
    /// The console-like state-by-state table of this execution's history.
    pub fn history_table(&self) -> String {
        crate::history::render_table(&self.history)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedriveError {
    #[error("only FAILED, TIMED_OUT or ABORTED executions can be redriven; this one is {0:?}")]
    NotRedrivable(ExecutionStatus),
    #[error("the execution record has no checkpoint to resume from")]
    NoCheckpoint,
}

/// Runs one state machine definition with one invoker.
#[derive(Clone)]
pub struct Executor {
    machine: Arc<StateMachine>,
    invoker: Arc<dyn TaskInvoker>,
    time_mode: TimeMode,
}

struct Shared {
    invoker: Arc<dyn TaskInvoker>,
    time_mode: TimeMode,
    history: Mutex<Vec<HistoryEvent>>,
    context_base: Value,
    region: String,
    deadline: Option<OffsetDateTime>,
    timed_out: AtomicBool,
    history_full: AtomicBool,
}

/// A scope's position: its clock (virtual in Simulated mode) and its last history event.
#[derive(Debug, Clone)]
struct Cursor {
    now: OffsetDateTime,
    last_event: u64,
}

enum ScopeResult {
    Succeeded(Value),
    Failed(StateError, ScopeCheckpoint),
}

enum StateOutcome {
    Next(String, Value),
    End(Value),
    Failed(StateError, Option<Vec<ChildCheckpoint>>),
}

struct Tolerance {
    count: Option<f64>,
    percentage: Option<f64>,
    total: usize,
}

impl Tolerance {
    /// Without ToleratedFailure* any failed iteration fails the Map; with them, only more than tolerated.
    fn exceeded(&self, failed: usize) -> bool {
        match (self.count, self.percentage) {
            (None, None) => failed > 0,
            (count, pct) => {
                count.is_some_and(|c| failed as f64 > c)
                    || pct.is_some_and(|p| {
                        self.total > 0 && failed as f64 * 100.0 / self.total as f64 > p
                    })
            }
        }
    }
}

enum Handling {
    Retry,
    Caught { next: String, output: Value },
    Fail(StateError),
}

fn json_text(value: &Value) -> String {
    serde_json::to_string(value).expect("JSON values always serialize")
}

fn check_size(what: &str, state: &str, value: &Value) -> Result<(), StateError> {
    let size = json_text(value).len();
    if size > PAYLOAD_LIMIT_BYTES {
        return Err(StateError::new(
            names::DATA_LIMIT_EXCEEDED,
            format!("The state/task '{state}' {what} has a size of {size} bytes, exceeding the maximum number of bytes service limit ({PAYLOAD_LIMIT_BYTES})."),
        ));
    }
    Ok(())
}

fn rfc3339_millis(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

fn is_lambda_arn(resource: &str) -> bool {
    let parts: Vec<&str> = resource.split(':').collect();
    parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function"
}

/// `arn:<partition>:states:::<service>:<action>` → (service, action).
fn integration(resource: &str) -> Option<(&str, &str)> {
    let rest = resource.strip_prefix("arn:")?;
    let (_, rest) = rest.split_once(":states:::")?;
    rest.split_once(':')
}

fn transition(t: &Transition, output: Value) -> StateOutcome {
    match t {
        Transition::Next(n) => StateOutcome::Next(n.clone(), output),
        Transition::End => StateOutcome::End(output),
    }
}

impl Executor {
    pub fn new(machine: StateMachine, invoker: Arc<dyn TaskInvoker>) -> Self {
        Self {
            machine: Arc::new(machine),
            invoker,
            time_mode: TimeMode::Real,
        }
    }

    pub fn with_time_mode(mut self, time_mode: TimeMode) -> Self {
        self.time_mode = time_mode;
        self
    }

    pub fn machine(&self) -> &StateMachine {
        &self.machine
    }

    fn shared(
        &self,
        options: &ExecutionOptions,
        input: &Value,
        start: OffsetDateTime,
        redrive_count: u32,
        history: Vec<HistoryEvent>,
        run_start: OffsetDateTime,
    ) -> Shared {
        let context_base = json!({
            "Execution": {
                "Id": options.execution_arn,
                "Input": input,
                "Name": options.name,
                "RoleArn": options.role_arn,
                "StartTime": rfc3339_millis(start),
                "RedriveCount": redrive_count,
            },
            "StateMachine": { "Id": options.state_machine_arn, "Name": options.state_machine_name },
        });
        let region = options
            .execution_arn
            .split(':')
            .nth(3)
            .filter(|r| !r.is_empty())
            .unwrap_or("us-east-1")
            .to_string();
        Shared {
            invoker: self.invoker.clone(),
            time_mode: self.time_mode,
            history: Mutex::new(history),
            context_base,
            region,
            deadline: self
                .machine
                .timeout_seconds
                .map(|s| run_start + time::Duration::seconds(s as i64)),
            timed_out: AtomicBool::new(false),
            history_full: AtomicBool::new(false),
        }
    }

    /// Start an execution and run it to completion.
    pub async fn start(&self, options: ExecutionOptions, input: Value) -> ExecutionRecord {
        let start = options.start_time.unwrap_or_else(OffsetDateTime::now_utc);
        let shared = self.shared(&options, &input, start, 0, Vec::new(), start);
        let mut cursor = Cursor {
            now: start,
            last_event: 0,
        };
        shared.emit(&mut cursor, EventType::ExecutionStarted, |e| {
            e.execution_started_event_details = Some(ExecutionStartedDetails {
                input: Some(json_text(&input)),
                input_details: Some(DataDetails { truncated: false }),
                role_arn: Some(options.role_arn.clone()),
            })
        });
        let result = match check_size("input", "execution", &input) {
            Err(e) => ScopeResult::Failed(
                e,
                ScopeCheckpoint {
                    state: self.machine.start_at.clone(),
                    input: input.clone(),
                    children: None,
                },
            ),
            Ok(()) => {
                shared
                    .run_scope(&self.machine, input.clone(), None, &mut cursor)
                    .await
            }
        };
        let mut record = ExecutionRecord {
            options,
            status: ExecutionStatus::Running,
            input,
            output: None,
            error: None,
            cause: None,
            start_date: start,
            stop_date: None,
            redrive_count: 0,
            redrive_date: None,
            history: Vec::new(),
            checkpoint: None,
        };
        shared.finish(&mut record, result, &mut cursor);
        record
    }

    /// Redrive a FAILED / TIMED_OUT / ABORTED execution: resume at the failed state with its
    /// recorded input; succeeded states, Map iterations and Parallel branches are not rerun.
    pub async fn redrive(
        &self,
        mut record: ExecutionRecord,
    ) -> Result<ExecutionRecord, RedriveError> {
        if !matches!(
            record.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
        ) {
            return Err(RedriveError::NotRedrivable(record.status));
        }
        let checkpoint = record.checkpoint.take().ok_or(RedriveError::NoCheckpoint)?;
        let redrive_count = record.redrive_count + 1;
        let last_time = record
            .history
            .last()
            .map(|e| e.timestamp)
            .unwrap_or(record.start_date);
        let now = match self.time_mode {
            TimeMode::Real => OffsetDateTime::now_utc(),
            TimeMode::Simulated => last_time,
        };
        let history = std::mem::take(&mut record.history);
        let last_event = history.last().map(|e| e.id).unwrap_or(0);
        let shared = self.shared(
            &record.options,
            &record.input,
            record.start_date,
            redrive_count,
            history,
            now,
        );
        let mut cursor = Cursor { now, last_event };
        shared.emit(&mut cursor, EventType::ExecutionRedriven, |e| {
            e.execution_redriven_event_details = Some(ExecutionRedrivenDetails { redrive_count })
        });
        record.redrive_count = redrive_count;
        record.redrive_date = Some(now);
        record.status = ExecutionStatus::Running;
        record.error = None;
        record.cause = None;
        record.stop_date = None;
        let result = shared
            .run_scope(&self.machine, Value::Null, Some(checkpoint), &mut cursor)
            .await;
        shared.finish(&mut record, result, &mut cursor);
        Ok(record)
    }
}

impl Shared {
    fn now(&self, cursor: &mut Cursor) -> OffsetDateTime {
        if self.time_mode == TimeMode::Real {
            cursor.now = cursor.now.max(OffsetDateTime::now_utc());
        }
        cursor.now
    }

    fn emit(
        &self,
        cursor: &mut Cursor,
        event_type: EventType,
        fill: impl FnOnce(&mut HistoryEvent),
    ) -> u64 {
        let now = self.now(cursor);
        let mut history = self.history.lock().expect("history lock is never poisoned");
        let id = history.len() as u64 + 1;
        if history.len() + 1 >= HISTORY_EVENT_LIMIT {
            self.history_full.store(true, Ordering::SeqCst);
        }
        let mut event = HistoryEvent::new(event_type, id, cursor.last_event, now);
        fill(&mut event);
        history.push(event);
        cursor.last_event = id;
        id
    }

    async fn sleep(&self, cursor: &mut Cursor, seconds: f64) {
        if seconds <= 0.0 {
            return;
        }
        let duration = std::time::Duration::from_secs_f64(seconds);
        match self.time_mode {
            TimeMode::Real => tokio::time::sleep(duration).await,
            TimeMode::Simulated => cursor.now += time::Duration::seconds_f64(seconds),
        }
    }

    fn finish(&self, record: &mut ExecutionRecord, result: ScopeResult, cursor: &mut Cursor) {
        match result {
            ScopeResult::Succeeded(output) => {
                self.emit(cursor, EventType::ExecutionSucceeded, |e| {
                    e.execution_succeeded_event_details = Some(OutputDetails {
                        output: Some(json_text(&output)),
                        output_details: Some(DataDetails::default()),
                    })
                });
                record.status = ExecutionStatus::Succeeded;
                record.output = Some(output);
            }
            ScopeResult::Failed(error, checkpoint) => {
                let timed_out = self.timed_out.load(Ordering::SeqCst);
                let details = Some(ErrorDetails {
                    error: Some(error.error.clone()),
                    cause: Some(error.cause.clone()),
                });
                if timed_out {
                    self.emit(cursor, EventType::ExecutionTimedOut, |e| {
                        e.execution_timed_out_event_details = details
                    });
                } else {
                    self.emit(cursor, EventType::ExecutionFailed, |e| {
                        e.execution_failed_event_details = details
                    });
                }
                record.status = if timed_out {
                    ExecutionStatus::TimedOut
                } else {
                    ExecutionStatus::Failed
                };
                record.error = Some(error.error);
                record.cause = Some(error.cause);
                record.checkpoint = Some(checkpoint);
            }
        }
        record.stop_date = Some(cursor.now);
        record.history =
            std::mem::take(&mut *self.history.lock().expect("history lock is never poisoned"));
    }

    fn context(
        &self,
        state: &str,
        entered: OffsetDateTime,
        retry_count: u32,
        map_item: Option<&(usize, Value)>,
    ) -> Value {
        let mut context = self.context_base.clone();
        context["State"] = json!({ "EnteredTime": rfc3339_millis(entered), "Name": state, "RetryCount": retry_count });
        if let Some((index, value)) = map_item {
            context["Map"] = json!({ "Item": { "Index": index, "Value": value } });
        }
        context
    }

    fn run_scope<'a>(
        &'a self,
        machine: &'a StateMachine,
        input: Value,
        resume: Option<ScopeCheckpoint>,
        cursor: &'a mut Cursor,
    ) -> BoxFuture<'a, ScopeResult> {
        async move {
            let (mut name, mut input, mut children) = match resume {
                Some(c) => (c.state, c.input, c.children),
                None => (machine.start_at.clone(), input, None),
            };
            loop {
                if let Some(deadline) = self.deadline {
                    if self.now(cursor) > deadline {
                        self.timed_out.store(true, Ordering::SeqCst);
                        let error = StateError::new(
                            names::TIMEOUT,
                            "The execution exceeded its TimeoutSeconds.",
                        );
                        return ScopeResult::Failed(
                            error,
                            ScopeCheckpoint {
                                state: name,
                                input,
                                children,
                            },
                        );
                    }
                }
                if self.history_full.load(Ordering::SeqCst) {
                    let error = StateError::runtime(format!(
                        "The execution reached the limit of {HISTORY_EVENT_LIMIT} history events."
                    ));
                    return ScopeResult::Failed(
                        error,
                        ScopeCheckpoint {
                            state: name,
                            input,
                            children,
                        },
                    );
                }
                let Some(state) = machine.states.get(&name) else {
                    let error = StateError::runtime(format!(
                        "State '{name}' does not exist in the definition"
                    ));
                    return ScopeResult::Failed(
                        error,
                        ScopeCheckpoint {
                            state: name,
                            input,
                            children,
                        },
                    );
                };
                match self
                    .run_state(&name, state, input.clone(), children.take(), cursor)
                    .await
                {
                    StateOutcome::Next(next, output) => {
                        name = next;
                        input = output;
                    }
                    StateOutcome::End(output) => return ScopeResult::Succeeded(output),
                    StateOutcome::Failed(error, children) => {
                        return ScopeResult::Failed(
                            error,
                            ScopeCheckpoint {
                                state: name,
                                input,
                                children,
                            },
                        );
                    }
                }
            }
        }
        .boxed()
    }

    fn entered(
        &self,
        cursor: &mut Cursor,
        event_type: EventType,
        name: &str,
        input: &Value,
    ) -> OffsetDateTime {
        self.emit(cursor, event_type, |e| {
            e.state_entered_event_details = Some(StateEnteredDetails {
                name: name.into(),
                input: Some(json_text(input)),
                input_details: Some(DataDetails::default()),
            })
        });
        cursor.now
    }

    fn exited(&self, cursor: &mut Cursor, event_type: EventType, name: &str, output: &Value) {
        self.emit(cursor, event_type, |e| {
            e.state_exited_event_details = Some(StateExitedDetails {
                name: name.into(),
                output: Some(json_text(output)),
                output_details: Some(DataDetails::default()),
            })
        });
    }

    /// InputPath, then the Parameters template (if any).
    fn effective_input(
        &self,
        io: &IoPaths,
        parameters: Option<&Value>,
        name: &str,
        raw: &Value,
        context: &Value,
    ) -> Result<Value, StateError> {
        let filtered = paths::apply_filter(&io.input_path, raw, context)?;
        let effective = match parameters {
            Some(template) => paths::evaluate_template(template, &filtered, context)?,
            None => filtered,
        };
        check_size("input (after InputPath and Parameters)", name, &effective)?;
        Ok(effective)
    }

    /// ResultSelector, ResultPath, OutputPath.
    fn state_output(
        &self,
        io: &IoPaths,
        result_selector: Option<&Value>,
        name: &str,
        raw: &Value,
        result: Value,
        context: &Value,
    ) -> Result<Value, StateError> {
        let selected = match result_selector {
            Some(template) => paths::evaluate_template(template, &result, context)?,
            None => result,
        };
        let combined = paths::apply_result_path(&io.result_path, raw, selected)?;
        let output = paths::apply_filter(&io.output_path, &combined, context)?;
        check_size("output", name, &output)?;
        Ok(output)
    }

    async fn run_state(
        &self,
        name: &str,
        state: &State,
        raw: Value,
        children: Option<Vec<ChildCheckpoint>>,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        match state {
            State::Task(s) => self.run_task(name, s, raw, cursor).await,
            State::Map(s) => self.run_map(name, s, raw, children, cursor).await,
            State::Parallel(s) => self.run_parallel(name, s, raw, children, cursor).await,
            State::Pass(s) => {
                let entered = self.entered(cursor, EventType::PassStateEntered, name, &raw);
                let context = self.context(name, entered, 0, None);
                let result = (|| {
                    check_size("input", name, &raw)?;
                    let result = match &s.result {
                        Some(result) => result.clone(),
                        None => self.effective_input(
                            &s.io,
                            s.parameters.as_ref(),
                            name,
                            &raw,
                            &context,
                        )?,
                    };
                    self.state_output(&s.io, None, name, &raw, result, &context)
                })();
                match result {
                    Ok(output) => {
                        self.exited(cursor, EventType::PassStateExited, name, &output);
                        transition(&s.transition, output)
                    }
                    Err(e) => StateOutcome::Failed(e, None),
                }
            }
            State::Wait(s) => {
                let entered = self.entered(cursor, EventType::WaitStateEntered, name, &raw);
                let context = self.context(name, entered, 0, None);
                let seconds = (|| -> Result<(Value, f64), StateError> {
                    check_size("input", name, &raw)?;
                    let effective = paths::apply_filter(&s.io.input_path, &raw, &context)?;
                    let until = |text: &str| -> Result<f64, StateError> {
                        let target = crate::choice::parse_timestamp(text).ok_or_else(|| StateError::runtime(format!("The Wait state '{name}' got {text:?}, which is not an RFC 3339 timestamp")))?;
                        Ok(((target - entered).as_seconds_f64()).max(0.0))
                    };
                    let seconds = match &s.wait {
                        WaitFor::Seconds(n) => *n as f64,
                        WaitFor::SecondsPath(p) => match paths::read(p, &effective, &context)? {
                            Value::Number(n) if n.as_u64().is_some() => n.as_u64().unwrap_or(0) as f64,
                            other => return Err(StateError::runtime(format!("The SecondsPath '{p}' of Wait state '{name}' must select a non-negative integer, got {other}"))),
                        },
                        WaitFor::Timestamp(t) => until(t)?,
                        WaitFor::TimestampPath(p) => match paths::read(p, &effective, &context)? {
                            Value::String(t) => until(&t)?,
                            other => return Err(StateError::runtime(format!("The TimestampPath '{p}' of Wait state '{name}' must select a timestamp string, got {other}"))),
                        },
                    };
                    Ok((effective, seconds))
                })();
                match seconds {
                    Ok((effective, seconds)) => {
                        self.sleep(cursor, seconds).await;
                        match paths::apply_filter(&s.io.output_path, &effective, &context)
                            .and_then(|o| check_size("output", name, &o).map(|_| o))
                        {
                            Ok(output) => {
                                self.exited(cursor, EventType::WaitStateExited, name, &output);
                                transition(&s.transition, output)
                            }
                            Err(e) => StateOutcome::Failed(e, None),
                        }
                    }
                    Err(e) => StateOutcome::Failed(e, None),
                }
            }
            State::Choice(s) => {
                let entered = self.entered(cursor, EventType::ChoiceStateEntered, name, &raw);
                let context = self.context(name, entered, 0, None);
                let chosen = (|| -> Result<(String, Value), StateError> {
                    check_size("input", name, &raw)?;
                    let effective = paths::apply_filter(&s.io.input_path, &raw, &context)?;
                    let mut next = None;
                    for rule in &s.choices {
                        if rule.condition.evaluate(&effective, &context)? {
                            next = Some(rule.next.clone());
                            break;
                        }
                    }
                    let next = next.or_else(|| s.default.clone()).ok_or_else(|| {
                        StateError::new(
                            names::NO_CHOICE_MATCHED,
                            format!("No Matches! (state '{name}')"),
                        )
                    })?;
                    let output = paths::apply_filter(&s.io.output_path, &effective, &context)?;
                    check_size("output", name, &output)?;
                    Ok((next, output))
                })();
                match chosen {
                    Ok((next, output)) => {
                        self.exited(cursor, EventType::ChoiceStateExited, name, &output);
                        StateOutcome::Next(next, output)
                    }
                    Err(e) => StateOutcome::Failed(e, None),
                }
            }
            State::Succeed(s) => {
                let entered = self.entered(cursor, EventType::SucceedStateEntered, name, &raw);
                let context = self.context(name, entered, 0, None);
                let output = check_size("input", name, &raw)
                    .and_then(|_| paths::apply_filter(&s.io.input_path, &raw, &context))
                    .and_then(|v| paths::apply_filter(&s.io.output_path, &v, &context));
                match output {
                    Ok(output) => {
                        self.exited(cursor, EventType::SucceedStateExited, name, &output);
                        StateOutcome::End(output)
                    }
                    Err(e) => StateOutcome::Failed(e, None),
                }
            }
            State::Fail(s) => {
                let entered = self.entered(cursor, EventType::FailStateEntered, name, &raw);
                let context = self.context(name, entered, 0, None);
                let text = |literal: &Option<String>,
                            path: &Option<String>,
                            field: &str|
                 -> Result<String, StateError> {
                    match (literal, path) {
                        (Some(l), _) => Ok(l.clone()),
                        (None, Some(p)) => match paths::read(p, &raw, &context)? {
                            Value::String(s) => Ok(s),
                            other => Err(StateError::runtime(format!("The {field}Path '{p}' of Fail state '{name}' must select a string, got {other}"))),
                        },
                        (None, None) => Ok(String::new()),
                    }
                };
                let error = text(&s.error, &s.error_path, "Error")
                    .and_then(|e| Ok(StateError::new(e, text(&s.cause, &s.cause_path, "Cause")?)));
                match error {
                    Ok(e) => StateOutcome::Failed(e, None),
                    Err(e) => StateOutcome::Failed(e, None),
                }
            }
        }
    }

    /// Decide what happens after an error: retry (after sleeping), catch, or fail.
    async fn handle_error(
        &self,
        retriers: &[Retrier],
        catchers: &[Catcher],
        counts: &mut [u32],
        error: &StateError,
        raw: &Value,
        cursor: &mut Cursor,
    ) -> Handling {
        if let Some((i, retrier)) = retriers
            .iter()
            .enumerate()
            .find(|(_, r)| error.matches(&r.error_equals))
        {
            if counts[i] < retrier.max_attempts() {
                let mut delay = retrier.interval() * retrier.backoff().powi(counts[i] as i32);
                if let Some(max) = retrier.max_delay_seconds {
                    delay = delay.min(max);
                }
                if retrier.jitter_strategy == Some(JitterStrategy::Full) {
                    delay *= rand::random::<f64>();
                }
                counts[i] += 1;
                self.sleep(cursor, delay).await;
                return Handling::Retry;
            }
        }
        match catchers.iter().find(|c| error.matches(&c.error_equals)) {
            Some(catcher) => {
                match paths::apply_result_path(&catcher.result_path, raw, error.to_output()) {
                    Ok(output) => match check_size("output", "catcher", &output) {
                        Ok(()) => Handling::Caught {
                            next: catcher.next.clone(),
                            output,
                        },
                        Err(e) => Handling::Fail(e),
                    },
                    Err(e) => Handling::Fail(e),
                }
            }
            None => Handling::Fail(error.clone()),
        }
    }

    async fn run_task(
        &self,
        name: &str,
        s: &TaskState,
        raw: Value,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::TaskStateEntered, name, &raw);
        if let Err(e) = check_size("input", name, &raw) {
            return StateOutcome::Failed(e, None);
        }
        let mut counts = vec![0u32; s.retry.len()];
        let mut attempt = 0u32;
        loop {
            let context = self.context(name, entered, attempt, None);
            let error = match self
                .task_attempt(name, s, &raw, &context, attempt, cursor)
                .await
            {
                Ok(output) => {
                    self.exited(cursor, EventType::TaskStateExited, name, &output);
                    return transition(&s.transition, output);
                }
                Err(e) => e,
            };
            match self
                .handle_error(&s.retry, &s.catch, &mut counts, &error, &raw, cursor)
                .await
            {
                Handling::Retry => attempt += 1,
                Handling::Caught { next, output } => {
                    self.exited(cursor, EventType::TaskStateExited, name, &output);
                    return StateOutcome::Next(next, output);
                }
                Handling::Fail(e) => return StateOutcome::Failed(e, None),
            }
        }
    }

    async fn task_attempt(
        &self,
        name: &str,
        s: &TaskState,
        raw: &Value,
        context: &Value,
        attempt: u32,
        cursor: &mut Cursor,
    ) -> Result<Value, StateError> {
        let effective = self.effective_input(&s.io, s.parameters.as_ref(), name, raw, context)?;
        let timeout = match &s.timeout_seconds_path {
            // A reference path into the state input (after InputPath, before Parameters).
            Some(p) => match paths::read(p, &paths::apply_filter(&s.io.input_path, raw, context)?, context)? {
                Value::Number(n) if n.as_u64().is_some_and(|v| v > 0) => n.as_u64(),
                other => return Err(StateError::runtime(format!("The TimeoutSecondsPath '{p}' of state '{name}' must select a positive integer, got {other}"))),
            },
            None => s.timeout_seconds,
        };
        let (kind, function_name, payload) = if is_lambda_arn(&s.resource) {
            (
                TaskKind::LambdaFunction,
                Some(s.resource.clone()),
                effective.clone(),
            )
        } else if integration(&s.resource) == Some(("lambda", "invoke")) {
            let function = effective.get("FunctionName").and_then(Value::as_str).ok_or_else(|| {
                StateError::runtime(format!("The Task state '{name}' uses lambda:invoke without a string Parameters.FunctionName"))
            })?;
            (
                TaskKind::LambdaInvoke,
                Some(function.to_string()),
                effective
                    .get("Payload")
                    .cloned()
                    .unwrap_or_else(|| json!({})),
            )
        } else {
            (TaskKind::Service, None, effective.clone())
        };
        let (resource_type, resource) = match integration(&s.resource) {
            Some((service, action)) => (service.to_string(), action.to_string()),
            None => ("lambda".to_string(), s.resource.clone()),
        };
        let lambda = kind == TaskKind::LambdaFunction;
        if lambda {
            self.emit(cursor, EventType::LambdaFunctionScheduled, |e| {
                e.lambda_function_scheduled_event_details = Some(LambdaFunctionScheduledDetails {
                    resource: s.resource.clone(),
                    input: Some(json_text(&effective)),
                    input_details: Some(DataDetails::default()),
                    timeout_in_seconds: timeout,
                })
            });
            self.emit(cursor, EventType::LambdaFunctionStarted, |_| {});
        } else {
            self.emit(cursor, EventType::TaskScheduled, |e| {
                e.task_scheduled_event_details = Some(TaskScheduledDetails {
                    resource_type: resource_type.clone(),
                    resource: resource.clone(),
                    region: self.region.clone(),
                    parameters: json_text(&effective),
                    timeout_in_seconds: timeout,
                    heartbeat_in_seconds: s.heartbeat_seconds,
                })
            });
            self.emit(cursor, EventType::TaskStarted, |e| {
                e.task_started_event_details = Some(TaskStartedDetails {
                    resource_type: resource_type.clone(),
                    resource: resource.clone(),
                })
            });
        }
        let call = TaskCall {
            state_name: name.to_string(),
            resource: s.resource.clone(),
            kind,
            function_name,
            input: payload,
            context: context.clone(),
            attempt,
        };
        let invocation = self.invoker.invoke(call);
        let outcome = match timeout {
            Some(seconds) => {
                match tokio::time::timeout(std::time::Duration::from_secs(seconds), invocation)
                    .await
                {
                    Ok(r) => r.map_err(|f| StateError::new(f.error, f.cause)),
                    Err(_) => Err(StateError::new(
                        names::TIMEOUT,
                        format!("The task '{name}' did not finish within {seconds} seconds."),
                    )),
                }
            }
            None => invocation
                .await
                .map_err(|f| StateError::new(f.error, f.cause)),
        };
        let outcome =
            outcome.and_then(|result| check_size("result", name, &result).map(|_| result));
        let result = match outcome {
            Ok(result) => result,
            Err(error) => {
                let timed_out = error.error == names::TIMEOUT;
                let details = ErrorDetails {
                    error: Some(error.error.clone()),
                    cause: Some(error.cause.clone()),
                };
                let task_details = TaskFailedDetails {
                    resource_type,
                    resource,
                    error: details.error.clone(),
                    cause: details.cause.clone(),
                };
                match (lambda, timed_out) {
                    (true, true) => self.emit(cursor, EventType::LambdaFunctionTimedOut, |e| {
                        e.lambda_function_timed_out_event_details = Some(details)
                    }),
                    (true, false) => self.emit(cursor, EventType::LambdaFunctionFailed, |e| {
                        e.lambda_function_failed_event_details = Some(details)
                    }),
                    (false, true) => self.emit(cursor, EventType::TaskTimedOut, |e| {
                        e.task_timed_out_event_details = Some(task_details)
                    }),
                    (false, false) => self.emit(cursor, EventType::TaskFailed, |e| {
                        e.task_failed_event_details = Some(task_details)
                    }),
                };
                return Err(error);
            }
        };
        let result = if kind == TaskKind::LambdaInvoke {
            json!({
                "ExecutedVersion": "$LATEST",
                "Payload": result,
                "SdkHttpMetadata": {
                    "AllHttpHeaders": { "Content-Type": ["application/json"], "X-Amz-Executed-Version": ["$LATEST"] },
                    "HttpHeaders": { "Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST" },
                    "HttpStatusCode": 200
                },
                "SdkResponseMetadata": { "RequestId": uuid::Uuid::new_v4().to_string() },
                "StatusCode": 200
            })
        } else {
            result
        };
        if lambda {
            self.emit(cursor, EventType::LambdaFunctionSucceeded, |e| {
                e.lambda_function_succeeded_event_details = Some(OutputDetails {
                    output: Some(json_text(&result)),
                    output_details: Some(DataDetails::default()),
                })
            });
        } else {
            self.emit(cursor, EventType::TaskSucceeded, |e| {
                e.task_succeeded_event_details = Some(TaskSucceededDetails {
                    resource_type,
                    resource,
                    output: Some(json_text(&result)),
                    output_details: Some(DataDetails::default()),
                })
            });
        }
        self.state_output(
            &s.io,
            s.result_selector.as_ref(),
            name,
            raw,
            result,
            context,
        )
    }

    async fn run_map(
        &self,
        name: &str,
        s: &MapState,
        raw: Value,
        mut children: Option<Vec<ChildCheckpoint>>,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::MapStateEntered, name, &raw);
        if let Err(e) = check_size("input", name, &raw) {
            return StateOutcome::Failed(e, None);
        }
        let mut counts = vec![0u32; s.retry.len()];
        let mut attempt = 0;
        loop {
            let context = self.context(name, entered, attempt, None);
            let (error, checkpoints) = match self
                .map_attempt(name, s, &raw, &context, children.take(), cursor)
                .await
            {
                Ok(output) => {
                    self.exited(cursor, EventType::MapStateExited, name, &output);
                    return transition(&s.transition, output);
                }
                Err(failure) => failure,
            };
            match self
                .handle_error(&s.retry, &s.catch, &mut counts, &error, &raw, cursor)
                .await
            {
                Handling::Retry => attempt += 1,
                Handling::Caught { next, output } => {
                    self.exited(cursor, EventType::MapStateExited, name, &output);
                    return StateOutcome::Next(next, output);
                }
                Handling::Fail(e) => return StateOutcome::Failed(e, checkpoints),
            }
        }
    }

    fn read_count(
        &self,
        path: &Option<String>,
        fixed: Option<f64>,
        effective: &Value,
        context: &Value,
        field: &str,
    ) -> Result<Option<f64>, StateError> {
        match path {
            Some(p) => match paths::read(p, effective, context)? {
                Value::Number(n) if n.as_f64().is_some_and(|v| v >= 0.0) => Ok(n.as_f64()),
                other => Err(StateError::runtime(format!(
                    "{field} '{p}' must select a non-negative number, got {other}"
                ))),
            },
            None => Ok(fixed),
        }
    }

    async fn map_attempt(
        &self,
        name: &str,
        s: &MapState,
        raw: &Value,
        context: &Value,
        prior: Option<Vec<ChildCheckpoint>>,
        cursor: &mut Cursor,
    ) -> Result<Value, (StateError, Option<Vec<ChildCheckpoint>>)> {
        let setup = (|| -> Result<_, StateError> {
            let effective = paths::apply_filter(&s.io.input_path, raw, context)?;
            let items = match &s.items_path {
                PathField::Path(p) => paths::read(p, &effective, context)?,
                _ => effective.clone(),
            };
            let Value::Array(items) = items else {
                return Err(StateError::runtime(format!(
                    "Map state '{name}': the ItemsPath must select an array, got {}",
                    json_text(&items)
                )));
            };
            let max = self
                .read_count(
                    &s.max_concurrency_path,
                    Some(s.max_concurrency as f64),
                    &effective,
                    context,
                    "MaxConcurrencyPath",
                )?
                .unwrap_or(0.0) as usize;
            let limit = if max == 0 {
                INLINE_MAP_CONCURRENCY_LIMIT
            } else {
                max.min(INLINE_MAP_CONCURRENCY_LIMIT)
            };
            let count = self.read_count(
                &s.tolerated_failure_count_path,
                s.tolerated_failure_count.map(|c| c as f64),
                &effective,
                context,
                "ToleratedFailureCountPath",
            )?;
            let percentage = self.read_count(
                &s.tolerated_failure_percentage_path,
                s.tolerated_failure_percentage,
                &effective,
                context,
                "ToleratedFailurePercentagePath",
            )?;
            Ok((effective, items, limit, count, percentage))
        })();
        let (effective, items, limit, tolerated_count, tolerated_percentage) =
            setup.map_err(|e| (e, None))?;
        self.emit(cursor, EventType::MapStateStarted, |e| {
            e.map_state_started_event_details = Some(MapStateStartedDetails {
                length: items.len(),
            })
        });
        let started = cursor.clone();
        let prior = prior.filter(|p| p.len() == items.len());
        let stop = AtomicBool::new(false);
        let failures = std::sync::atomic::AtomicUsize::new(0);
        let total = items.len();
        let tolerance = Tolerance {
            count: tolerated_count,
            percentage: tolerated_percentage,
            total,
        };
        let tolerance = &tolerance;
        let started_ids: Mutex<std::collections::HashMap<usize, u64>> =
            Mutex::new(std::collections::HashMap::new());
        let iterations: Vec<_> = items
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let prior = prior.as_ref().map(|p| p[index].clone());
                let (stop, failures, started, effective, started_ids) =
                    (&stop, &failures, started.clone(), &effective, &started_ids);
                async move {
                    if let Some(ChildCheckpoint::Succeeded { output }) = prior {
                        return (
                            index,
                            ChildCheckpoint::Succeeded { output },
                            None,
                            started.now,
                        );
                    }
                    if stop.load(Ordering::SeqCst) {
                        return (index, ChildCheckpoint::NotStarted, None, started.now);
                    }
                    let mut icursor = started;
                    let iteration = MapIterationDetails {
                        name: name.to_string(),
                        index,
                    };
                    let started_id = self.emit(&mut icursor, EventType::MapIterationStarted, |e| {
                        e.map_iteration_started_event_details = Some(iteration.clone())
                    });
                    started_ids
                        .lock()
                        .expect("started-id lock is never poisoned")
                        .insert(index, started_id);
                    let map_item = (index, item.clone());
                    let item_context = self.context(name, icursor.now, 0, Some(&map_item));
                    let item_input = match &s.item_selector {
                        Some(selector) => {
                            paths::evaluate_template(selector, effective, &item_context)
                        }
                        None => Ok(item.clone()),
                    };
                    let resume = match prior {
                        Some(ChildCheckpoint::Failed { checkpoint }) => Some(checkpoint),
                        _ => None,
                    };
                    // A failed ItemSelector leaves nothing to resume: a redrive reruns the whole iteration.
                    let (result, rerun_from_start) = match item_input {
                        Ok(input) => {
                            let result = self
                                .run_scope(&s.processor, input, resume, &mut icursor)
                                .await;
                            (result, false)
                        }
                        Err(e) => {
                            let checkpoint = ScopeCheckpoint {
                                state: s.processor.start_at.clone(),
                                input: item.clone(),
                                children: None,
                            };
                            (ScopeResult::Failed(e, checkpoint), true)
                        }
                    };
                    match result {
                        ScopeResult::Succeeded(output) => {
                            self.emit(&mut icursor, EventType::MapIterationSucceeded, |e| {
                                e.map_iteration_succeeded_event_details = Some(iteration)
                            });
                            (
                                index,
                                ChildCheckpoint::Succeeded { output },
                                None,
                                icursor.now,
                            )
                        }
                        ScopeResult::Failed(error, checkpoint) => {
                            self.emit(&mut icursor, EventType::MapIterationFailed, |e| {
                                e.map_iteration_failed_event_details = Some(iteration)
                            });
                            let failed = failures.fetch_add(1, Ordering::SeqCst) + 1;
                            if tolerance.exceeded(failed) || error.is_terminal() {
                                stop.store(true, Ordering::SeqCst);
                            }
                            (
                                index,
                                if rerun_from_start {
                                    ChildCheckpoint::NotStarted
                                } else {
                                    ChildCheckpoint::Failed { checkpoint }
                                },
                                Some(error),
                                icursor.now,
                            )
                        }
                    }
                }
            })
            .collect();
        // Run up to `limit` at once. Once the Map has failed, in-flight iterations are aborted
        // (dropped) and the rest never start, as AWS does; a redrive runs both kinds again.
        let mut waiting = iterations.into_iter();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut finished = Vec::with_capacity(total);
        loop {
            while running.len() < limit && !stop.load(Ordering::SeqCst) {
                match waiting.next() {
                    Some(iteration) => running.push(iteration),
                    None => break,
                }
            }
            match running.next().await {
                Some(result) => finished.push(result),
                None => break,
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        drop(running);
        drop(waiting);
        let mut slots: Vec<Option<_>> = (0..total).map(|_| None).collect();
        for result in finished {
            let index = result.0;
            slots[index] = Some(result);
        }
        let started_ids = started_ids
            .into_inner()
            .expect("started-id lock is never poisoned");
        let mut results = Vec::with_capacity(total);
        for (index, slot) in slots.into_iter().enumerate() {
            match slot {
                Some(result) => results.push(result),
                None => {
                    if let Some(&started_id) = started_ids.get(&index) {
                        let mut aborted = Cursor {
                            now: started.now,
                            last_event: started_id,
                        };
                        self.emit(&mut aborted, EventType::MapIterationAborted, |e| {
                            e.map_iteration_aborted_event_details = Some(MapIterationDetails {
                                name: name.to_string(),
                                index,
                            })
                        });
                    }
                    results.push((index, ChildCheckpoint::NotStarted, None, started.now));
                }
            }
        }
        let mut first_error: Option<StateError> = None;
        let mut terminal_error: Option<StateError> = None;
        let mut outputs = Vec::with_capacity(total);
        for (_, child, error, end) in &results {
            cursor.now = cursor.now.max(*end);
            if let Some(e) = error {
                if e.is_terminal() && terminal_error.is_none() {
                    terminal_error = Some(e.clone());
                }
                first_error.get_or_insert_with(|| e.clone());
                outputs.push(e.to_output());
            } else if let ChildCheckpoint::Succeeded { output } = child {
                outputs.push(output.clone());
            }
        }
        cursor.last_event = started.last_event;
        let failed = failures.load(Ordering::SeqCst);
        let checkpoints: Vec<ChildCheckpoint> = results.into_iter().map(|r| r.1).collect();
        let failure = if let Some(e) = terminal_error {
            Some(e)
        } else if tolerance.exceeded(failed) {
            Some(match (tolerated_count, tolerated_percentage) {
                (None, None) => first_error.expect("a failure was counted"),
                _ => StateError::new(names::EXCEED_TOLERATED_FAILURE_THRESHOLD, format!("Map state '{name}': {failed} of {total} iterations failed, more than tolerated.")),
            })
        } else {
            None
        };
        let output = Value::Array(outputs);
        let failure = failure
            .or_else(|| check_size("output (all Map iterations together)", name, &output).err());
        if let Some(error) = failure {
            self.emit(cursor, EventType::MapStateFailed, |_| {});
            return Err((error, Some(checkpoints)));
        }
        self.emit(cursor, EventType::MapStateSucceeded, |_| {});
        self.state_output(
            &s.io,
            s.result_selector.as_ref(),
            name,
            raw,
            output,
            context,
        )
        .map_err(|e| (e, None))
    }

    async fn run_parallel(
        &self,
        name: &str,
        s: &ParallelState,
        raw: Value,
        mut children: Option<Vec<ChildCheckpoint>>,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::ParallelStateEntered, name, &raw);
        if let Err(e) = check_size("input", name, &raw) {
            return StateOutcome::Failed(e, None);
        }
        let mut counts = vec![0u32; s.retry.len()];
        let mut attempt = 0;
        loop {
            let context = self.context(name, entered, attempt, None);
            let (error, checkpoints) = match self
                .parallel_attempt(name, s, &raw, &context, children.take(), cursor)
                .await
            {
                Ok(output) => {
                    self.exited(cursor, EventType::ParallelStateExited, name, &output);
                    return transition(&s.transition, output);
                }
                Err(failure) => failure,
            };
            match self
                .handle_error(&s.retry, &s.catch, &mut counts, &error, &raw, cursor)
                .await
            {
                Handling::Retry => attempt += 1,
                Handling::Caught { next, output } => {
                    self.exited(cursor, EventType::ParallelStateExited, name, &output);
                    return StateOutcome::Next(next, output);
                }
                Handling::Fail(e) => return StateOutcome::Failed(e, checkpoints),
            }
        }
    }

    async fn parallel_attempt(
        &self,
        name: &str,
        s: &ParallelState,
        raw: &Value,
        context: &Value,
        prior: Option<Vec<ChildCheckpoint>>,
        cursor: &mut Cursor,
    ) -> Result<Value, (StateError, Option<Vec<ChildCheckpoint>>)> {
        let effective = self
            .effective_input(&s.io, s.parameters.as_ref(), name, raw, context)
            .map_err(|e| (e, None))?;
        self.emit(cursor, EventType::ParallelStateStarted, |_| {});
        let started = cursor.clone();
        let prior = prior.filter(|p| p.len() == s.branches.len());
        let branches: Vec<_> = s
            .branches
            .iter()
            .enumerate()
            .map(|(index, branch)| {
                let prior = prior.as_ref().map(|p| p[index].clone());
                let (mut bcursor, effective) = (started.clone(), effective.clone());
                async move {
                    let resume = match prior {
                        Some(ChildCheckpoint::Succeeded { output }) => {
                            return (ChildCheckpoint::Succeeded { output }, None, bcursor.now)
                        }
                        Some(ChildCheckpoint::Failed { checkpoint }) => Some(checkpoint),
                        _ => None,
                    };
                    match self
                        .run_scope(branch, effective, resume, &mut bcursor)
                        .await
                    {
                        ScopeResult::Succeeded(output) => {
                            (ChildCheckpoint::Succeeded { output }, None, bcursor.now)
                        }
                        ScopeResult::Failed(error, checkpoint) => (
                            ChildCheckpoint::Failed { checkpoint },
                            Some(error),
                            bcursor.now,
                        ),
                    }
                }
            })
            .collect();
        // The first failed branch fails the state: the others are aborted (dropped), as on AWS,
        // and a redrive runs them again from their start.
        let mut running: futures::stream::FuturesUnordered<_> = branches
            .into_iter()
            .enumerate()
            .map(|(index, branch)| async move { (index, branch.await) })
            .collect();
        let mut slots = vec![None; s.branches.len()];
        while let Some((index, result)) = running.next().await {
            let failed = result.1.is_some();
            slots[index] = Some(result);
            if failed {
                break;
            }
        }
        drop(running);
        let results: Vec<_> = slots
            .into_iter()
            .map(|slot| slot.unwrap_or((ChildCheckpoint::NotStarted, None, started.now)))
            .collect();
        let mut outputs = Vec::new();
        let mut failure = None;
        for (child, error, end) in &results {
            cursor.now = cursor.now.max(*end);
            match (child, error) {
                (_, Some(e)) => {
                    failure.get_or_insert_with(|| e.clone());
                }
                (ChildCheckpoint::Succeeded { output }, None) => outputs.push(output.clone()),
                _ => {}
            }
        }
        cursor.last_event = started.last_event;
        let output = Value::Array(outputs);
        let failure = failure.or_else(|| check_size("output", name, &output).err());
        if let Some(error) = failure {
            self.emit(cursor, EventType::ParallelStateFailed, |_| {});
            return Err((error, Some(results.into_iter().map(|r| r.0).collect())));
        }
        self.emit(cursor, EventType::ParallelStateSucceeded, |_| {});
        self.state_output(
            &s.io,
            s.result_selector.as_ref(),
            name,
            raw,
            output,
            context,
        )
        .map_err(|e| (e, None))
    }
}
