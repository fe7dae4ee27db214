//! The engine: runs a definition with Step Functions semantics — scheduling states, retries and
//! catchers, time (real or simulated) and the execution timeout, AWS-shaped history — and redrives
//! executions from their checkpoint. Each state type is one file of `states/`; the data flow of both
//! query languages is `flow.rs`; where each scope stands is `progress.rs`.

mod flow;
mod invoker;
mod progress;
mod record;
mod states;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::definition::{Catcher, JitterStrategy, Retrier, State, StateMachine, Transition};
use crate::error::{names, StateError};
use crate::expr::{Env, Rng, Variables};
use crate::history::*;
pub use invoker::{IntegrationPattern, TaskCall, TaskClock, TaskFailure, TaskInvoker, TaskKind};
use progress::Progress;
pub use record::{
    ChildCheckpoint, ExecutionObserver, ExecutionOptions, ExecutionRecord, ExecutionStatus,
    MapRunRecord, RedriveError, ScopeCheckpoint,
};

/// Maximum size of any state's input or output, and of an execution's input (UTF-8 bytes).
pub const PAYLOAD_LIMIT_BYTES: usize = 262_144;
/// A Standard execution's history holds at most this many events; reaching it fails the execution.
pub const HISTORY_EVENT_LIMIT: usize = 25_000;
/// AWS runs at most this many inline Map iterations at once, whatever MaxConcurrency says.
pub const INLINE_MAP_CONCURRENCY_LIMIT: usize = 40;

/// Whether waits and retry intervals really sleep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum TimeMode {
    /// Sleep on tokio's clock (so a paused test clock runs a whole execution deterministically).
    #[default]
    Real,
    /// Record events as if the time elapsed, without sleeping (tests, `statemachine test`).
    Simulated,
}

/// Runs one state machine definition with one invoker.
#[derive(Clone)]
pub struct Executor {
    machine: Arc<StateMachine>,
    invoker: Arc<dyn TaskInvoker>,
    time_mode: TimeMode,
    seed: Option<u64>,
    observer: Option<Arc<dyn ExecutionObserver>>,
}

/// One run (start or redrive) of one execution.
struct Shared {
    invoker: Arc<dyn TaskInvoker>,
    time_mode: TimeMode,
    history: Mutex<Vec<HistoryEvent>>,
    context_base: Value,
    region: String,
    account: String,
    options: ExecutionOptions,
    /// The wall-clock time this run started at, and the same instant on tokio's clock: timestamps
    /// in real time are `clock_origin + elapsed on tokio's clock`.
    clock_origin: OffsetDateTime,
    instant_origin: tokio::time::Instant,
    deadline: Option<OffsetDateTime>,
    timed_out: AtomicBool,
    timeout_signal: tokio::sync::Notify,
    history_full: AtomicBool,
    rng: Rng,
    progress: Progress,
    observer: Option<Arc<dyn ExecutionObserver>>,
    /// The record as it stands apart from history and checkpoint (for the observer).
    record: Mutex<ExecutionRecord>,
}

/// A scope's position: its clock (virtual in Simulated mode) and its last history event.
#[derive(Debug, Clone)]
struct Cursor {
    now: OffsetDateTime,
    last_event: u64,
}

/// What a running scope knows about itself.
#[derive(Debug, Clone)]
struct Scope {
    /// Child indexes from the execution down to this scope (for progress).
    path: Vec<usize>,
    variables: Variables,
}

enum ScopeResult {
    Succeeded(Value),
    Failed(StateError, ScopeCheckpoint),
}

enum StateOutcome {
    Next(String, Value),
    End(Value),
    Failed(StateError),
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
            seed: None,
            observer: None,
        }
    }

    pub fn with_time_mode(mut self, time_mode: TimeMode) -> Self {
        self.time_mode = time_mode;
        self
    }

    /// Draw everything random (retry jitter, `$random`, `$uuid`, `States.UUID`, `States.MathRandom`,
    /// task tokens, request ids, Map Run and child execution ids) from a generator seeded with `seed`,
    /// so one seed reproduces a whole run. Each execution (and each redrive of it) draws from the seed
    /// mixed with its ARN and redrive count: executions of one executor must not draw the same jitter,
    /// or throttled executions would retry in lockstep, a thundering herd AWS's jitter does not have.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Tell `observer` of every change of the execution record while it runs.
    pub fn with_observer(mut self, observer: Arc<dyn ExecutionObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    pub fn machine(&self) -> &StateMachine {
        &self.machine
    }

    fn shared(
        &self,
        record: &ExecutionRecord,
        run_start: OffsetDateTime,
        history: Vec<HistoryEvent>,
    ) -> Shared {
        let options = &record.options;
        let context_base = json!({
            "Execution": {
                "Id": options.execution_arn,
                "Input": record.input,
                "Name": options.name,
                "RoleArn": options.role_arn,
                "StartTime": rfc3339_millis(record.start_date),
                "RedriveCount": record.redrive_count,
            },
            "StateMachine": { "Id": options.state_machine_arn, "Name": options.state_machine_name },
        });
        let arn_part = |i: usize, default: &str| {
            options
                .execution_arn
                .split(':')
                .nth(i)
                .filter(|r| !r.is_empty())
                .unwrap_or(default)
                .to_string()
        };
        let rng = match self.seed {
            Some(seed) => Rng::seeded(execution_seed(
                seed,
                &options.execution_arn,
                record.redrive_count,
            )),
            None => Rng::from_entropy(),
        };
        let mut template = record.clone();
        template.history = Vec::new();
        Shared {
            invoker: self.invoker.clone(),
            time_mode: self.time_mode,
            history: Mutex::new(history),
            context_base,
            region: arn_part(3, "us-east-1"),
            account: arn_part(4, "123456789012"),
            options: options.clone(),
            clock_origin: run_start,
            instant_origin: tokio::time::Instant::now(),
            deadline: self
                .machine
                .timeout_seconds
                .map(|s| run_start + time::Duration::seconds(s as i64)),
            timed_out: AtomicBool::new(false),
            timeout_signal: tokio::sync::Notify::new(),
            history_full: AtomicBool::new(false),
            rng,
            progress: Progress::default(),
            observer: self.observer.clone(),
            record: Mutex::new(template),
        }
    }

    /// Start an execution and run it to completion.
    pub async fn start(&self, options: ExecutionOptions, input: Value) -> ExecutionRecord {
        let start = options.start_time.unwrap_or_else(OffsetDateTime::now_utc);
        let record = ExecutionRecord::started(options, input, start);
        self.run(record, start, None).await
    }

    /// The whole run of a record: a start (no `resume`) or a redrive.
    async fn run(
        &self,
        record: ExecutionRecord,
        run_start: OffsetDateTime,
        resume: Option<ScopeCheckpoint>,
    ) -> ExecutionRecord {
        let mut record = record;
        let history = std::mem::take(&mut record.history);
        let last_event = history.last().map(|e| e.id).unwrap_or(0);
        let shared = self.shared(&record, run_start, history);
        let mut cursor = Cursor {
            now: run_start,
            last_event,
        };
        let input = record.input.clone();
        match &resume {
            None => {
                shared.progress.restart(&self.machine.start_at, &input);
                shared.emit(&mut cursor, EventType::ExecutionStarted, |e| {
                    e.execution_started_event_details = Some(ExecutionStartedDetails {
                        input: Some(json_text(&input)),
                        input_details: Some(DataDetails { truncated: false }),
                        role_arn: Some(record.options.role_arn.clone()),
                    })
                });
            }
            Some(checkpoint) => {
                shared.progress.resume(checkpoint);
                let redrive_count = record.redrive_count;
                shared.emit(&mut cursor, EventType::ExecutionRedriven, |e| {
                    e.execution_redriven_event_details =
                        Some(ExecutionRedrivenDetails { redrive_count })
                });
            }
        }
        let size_error = if resume.is_none() {
            check_size("input", "execution", &input).err()
        } else {
            None
        };
        let result = match size_error {
            Some(e) => ScopeResult::Failed(e, shared.progress.checkpoint(&[])),
            None => {
                let scope = Scope {
                    path: Vec::new(),
                    variables: Variables::default(),
                };
                let mut scope_cursor = cursor.clone();
                let running =
                    shared.run_scope(&self.machine, input, resume, scope, &mut scope_cursor);
                let outcome = tokio::select! {
                    biased;
                    result = running => Some(result),
                    _ = shared.execution_deadline() => None,
                };
                match outcome {
                    Some(result) => {
                        cursor = scope_cursor;
                        result
                    }
                    None => {
                        // The execution's TimeoutSeconds ran out during a state: it stops there.
                        shared.timed_out.store(true, Ordering::SeqCst);
                        cursor.now = shared.deadline.unwrap_or(cursor.now);
                        cursor.last_event = shared.last_event_id();
                        let error = StateError::new(
                            names::TIMEOUT,
                            "The execution exceeded its TimeoutSeconds.",
                        );
                        ScopeResult::Failed(error, shared.progress.checkpoint(&[]))
                    }
                }
            }
        };
        let map_runs = shared.record.lock().expect("record lock").map_runs.clone();
        record.map_runs = map_runs;
        shared.finish(&mut record, result, &mut cursor);
        record
    }

    /// Redrive a FAILED / TIMED_OUT / ABORTED execution: resume at the failed (or interrupted) state
    /// with its recorded input; succeeded states, Map iterations and Parallel branches are not rerun.
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
        let last_time = record
            .history
            .last()
            .map(|e| e.timestamp)
            .unwrap_or(record.start_date);
        let now = match self.time_mode {
            TimeMode::Real => OffsetDateTime::now_utc().max(last_time),
            TimeMode::Simulated => last_time,
        };
        record.redrive_count += 1;
        record.redrive_date = Some(now);
        record.status = ExecutionStatus::Running;
        record.error = None;
        record.cause = None;
        record.stop_date = None;
        Ok(self.run(record, now, Some(checkpoint)).await)
    }
}

impl Shared {
    fn now(&self, cursor: &mut Cursor) -> OffsetDateTime {
        if self.time_mode == TimeMode::Real {
            let elapsed = self.instant_origin.elapsed();
            let real = self.clock_origin + time::Duration::try_from(elapsed).unwrap_or_default();
            cursor.now = cursor.now.max(real);
        }
        cursor.now
    }

    fn last_event_id(&self) -> u64 {
        self.history
            .lock()
            .expect("history lock is never poisoned")
            .last()
            .map(|e| e.id)
            .unwrap_or(0)
    }

    /// Resolves when the execution's TimeoutSeconds has run out (never, without one).
    async fn execution_deadline(&self) {
        let Some(deadline) = self.deadline else {
            return std::future::pending().await;
        };
        match self.time_mode {
            TimeMode::Real => {
                let remaining = (deadline - self.clock_origin).max(time::Duration::ZERO);
                let remaining = std::time::Duration::try_from(remaining).unwrap_or_default();
                tokio::time::sleep_until(self.instant_origin + remaining).await
            }
            TimeMode::Simulated => self.timeout_signal.notified().await,
        }
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
        if let Some(observer) = &self.observer {
            let mut snapshot = self.record.lock().expect("record lock").clone();
            snapshot.history = history.clone();
            snapshot.checkpoint = Some(self.progress.checkpoint(&[]));
            drop(history);
            observer.record_changed(&snapshot);
        }
        id
    }

    /// Let `seconds` pass. In simulated time past the execution's deadline, the execution times out
    /// there: this never returns, and the run stops at the deadline.
    async fn sleep(&self, cursor: &mut Cursor, seconds: f64) {
        if seconds <= 0.0 {
            return;
        }
        match self.time_mode {
            TimeMode::Real => tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await,
            TimeMode::Simulated => {
                let until = cursor.now + time::Duration::seconds_f64(seconds);
                if let Some(deadline) = self.deadline.filter(|d| until > *d) {
                    cursor.now = deadline;
                    self.timeout_signal.notify_one();
                    return std::future::pending().await;
                }
                cursor.now = until;
            }
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
                record.checkpoint = None;
            }
            ScopeResult::Failed(error, checkpoint) => {
                let timed_out = self.timed_out.load(Ordering::SeqCst);
                // A Fail state without Error or Cause leaves them absent, as on AWS.
                let present = |text: &str| (!text.is_empty()).then(|| text.to_string());
                let details = Some(ErrorDetails {
                    error: present(&error.error),
                    cause: present(&error.cause),
                });
                // What the observer sees with the last event is the final checkpoint.
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
                record.error = present(&error.error);
                record.cause = present(&error.cause);
                record.checkpoint = Some(checkpoint);
            }
        }
        record.stop_date = Some(cursor.now);
        record.history = self
            .history
            .lock()
            .expect("history lock is never poisoned")
            .clone();
        if let Some(observer) = &self.observer {
            observer.record_changed(record);
        }
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

    fn env<'a>(&'a self, context: &'a Value, scope: &'a Scope) -> Env<'a> {
        Env {
            context,
            variables: &scope.variables,
            rng: &self.rng,
        }
    }

    fn run_scope<'a>(
        &'a self,
        machine: &'a StateMachine,
        input: Value,
        resume: Option<ScopeCheckpoint>,
        mut scope: Scope,
        cursor: &'a mut Cursor,
    ) -> BoxFuture<'a, ScopeResult> {
        async move {
            let (mut name, mut input, mut children) = match resume {
                Some(c) => {
                    scope.variables = Variables::new(scope.variables.outer().clone(), c.variables);
                    (c.state, c.input, c.children)
                }
                None => (machine.start_at.clone(), input, None),
            };
            loop {
                self.progress
                    .enter(&scope.path, &name, &input, scope.variables.local());
                let failed = |error: StateError| {
                    ScopeResult::Failed(error, self.progress.checkpoint(&scope.path))
                };
                if let Some(deadline) = self.deadline {
                    if self.now(cursor) > deadline {
                        self.timed_out.store(true, Ordering::SeqCst);
                        return failed(StateError::new(
                            names::TIMEOUT,
                            "The execution exceeded its TimeoutSeconds.",
                        ));
                    }
                }
                if self.history_full.load(Ordering::SeqCst) {
                    return failed(StateError::runtime(format!(
                        "The execution reached the limit of {HISTORY_EVENT_LIMIT} history events."
                    )));
                }
                let Some(state) = machine.states.get(&name) else {
                    return failed(StateError::runtime(format!(
                        "State '{name}' does not exist in the definition"
                    )));
                };
                match self
                    .run_state(
                        &name,
                        state,
                        input.clone(),
                        children.take(),
                        &mut scope,
                        cursor,
                    )
                    .await
                {
                    StateOutcome::Next(next, output) => {
                        name = next;
                        input = output;
                    }
                    StateOutcome::End(output) => return ScopeResult::Succeeded(output),
                    StateOutcome::Failed(error) => {
                        return ScopeResult::Failed(error, self.progress.checkpoint(&scope.path))
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

    async fn run_state(
        &self,
        name: &str,
        state: &State,
        raw: Value,
        children: Option<Vec<ChildCheckpoint>>,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        match state {
            State::Task(s) => self.run_task(name, s, raw, scope, cursor).await,
            State::Map(s) => self.run_map(name, s, raw, children, scope, cursor).await,
            State::Parallel(s) => {
                self.run_parallel(name, s, raw, children, scope, cursor)
                    .await
            }
            State::Pass(s) => self.run_pass(name, s, raw, scope, cursor),
            State::Wait(s) => self.run_wait(name, s, raw, scope, cursor).await,
            State::Choice(s) => self.run_choice(name, s, raw, scope, cursor),
            State::Succeed(s) => self.run_succeed(name, s, raw, scope, cursor),
            State::Fail(s) => self.run_fail(name, s, raw, scope, cursor),
        }
    }

    /// Decide what happens after an error: retry (after sleeping), catch, or fail.
    #[allow(clippy::too_many_arguments)]
    async fn handle_error(
        &self,
        name: &str,
        state: (&[Retrier], &[Catcher], &crate::definition::DataFlow),
        counts: &mut [u32],
        error: &StateError,
        raw: &Value,
        context: &Value,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> Handling {
        let (retriers, catchers, flow) = state;
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
                    delay *= self.rng.unit();
                }
                counts[i] += 1;
                self.sleep(cursor, delay).await;
                return Handling::Retry;
            }
        }
        let Some(catcher) = catchers.iter().find(|c| error.matches(&c.error_equals)) else {
            return Handling::Fail(error.clone());
        };
        match self.caught_output(name, catcher, flow, error, raw, context, scope) {
            Ok(output) => Handling::Caught {
                next: catcher.next.clone(),
                output,
            },
            Err(e) => Handling::Fail(e),
        }
    }
}

/// The JSON `Map` type of variables and checkpoints.
pub(crate) type Object = Map<String, Value>;

/// The seed of one execution's generator: the executor's seed mixed (FNV-1a) with the execution's ARN
/// and redrive count.
fn execution_seed(seed: u64, execution_arn: &str, redrive_count: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for byte in execution_arn.bytes().chain(redrive_count.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}
