//! An execution as it is persisted, shown and redriven: its record, where it stands (checkpoints),
//! and the observer told of every change.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::history::{ErrorDetails, EventType, HistoryEvent};

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

/// Where a scope (the execution, a Map iteration, a Parallel branch) stands or stopped: the state it
/// is in, that state's raw input, the scope's own variables, and for Map/Parallel which children
/// already succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeCheckpoint {
    pub state: String,
    pub input: Value,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub variables: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub children: Option<Vec<ChildCheckpoint>>,
}

/// A Map iteration, Parallel branch or Distributed Map child as a redrive finds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum ChildCheckpoint {
    /// Not rerun on redrive: its recorded output is reused.
    Succeeded { output: Value },
    /// Resumed from the state where it failed (or was running when the execution stopped).
    Failed { checkpoint: ScopeCheckpoint },
    /// Never started, or aborted: runs from the beginning.
    NotStarted,
}

/// A Distributed Map's run, as the parent execution lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapRunRecord {
    pub map_run_arn: String,
    /// The Map state's name.
    pub state_name: String,
    pub status: ExecutionStatus,
    pub items: usize,
    pub succeeded: usize,
    pub failed: usize,
    pub pending: usize,
    /// The child executions' ARNs, by item (or batch) index.
    pub executions: Vec<String>,
    /// The child executions' inputs, by index: what a redrive of the Map Run runs again (AWS does
    /// not read the items a second time).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Value>,
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
    /// Where a redrive resumes: kept up to date while RUNNING (so an interrupted execution can be
    /// resumed), final on FAILED / TIMED_OUT / ABORTED executions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<ScopeCheckpoint>,
    /// The Map Runs of this execution's Distributed Map states.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub map_runs: Vec<MapRunRecord>,
    /// For a Distributed Map's child execution: the Map Run it belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub map_run_arn: Option<String>,
}

impl ExecutionRecord {
    /// A record of an execution that starts at `start_date`: RUNNING, nothing run yet.
    pub fn started(options: ExecutionOptions, input: Value, start_date: OffsetDateTime) -> Self {
        ExecutionRecord {
            options,
            status: ExecutionStatus::Running,
            input,
            output: None,
            error: None,
            cause: None,
            start_date,
            stop_date: None,
            redrive_count: 0,
            redrive_date: None,
            history: Vec::new(),
            checkpoint: None,
            map_runs: Vec::new(),
            map_run_arn: None,
        }
    }

    /// The console-like state-by-state table of this execution's history.
    pub fn history_table(&self) -> String {
        crate::history::render_table(&self.history)
    }

    /// Turn a RUNNING record that nobody runs any more (its process was killed) into an ABORTED one,
    /// as AWS shows an execution whose service stopped: an `ExecutionAborted` event at `at`. The
    /// checkpoint kept while it ran stays, so [`super::Executor::redrive`] resumes at the interrupted
    /// state without rerunning what had succeeded. Returns false (and changes nothing) unless RUNNING.
    pub fn mark_interrupted(&mut self, at: OffsetDateTime) -> bool {
        if self.status != ExecutionStatus::Running {
            return false;
        }
        let last = self.history.last().map(|e| e.id).unwrap_or(0);
        let at = self.history.last().map_or(at, |e| at.max(e.timestamp));
        let mut event = HistoryEvent::new(EventType::ExecutionAborted, last + 1, last, at);
        let error = "States.Runtime".to_string();
        let cause = "The execution was interrupted: the process running it stopped.".to_string();
        event.execution_aborted_event_details = Some(ErrorDetails {
            error: Some(error.clone()),
            cause: Some(cause.clone()),
        });
        self.history.push(event);
        self.status = ExecutionStatus::Aborted;
        self.error = Some(error);
        self.cause = Some(cause);
        self.stop_date = Some(at);
        for run in &mut self.map_runs {
            if run.status == ExecutionStatus::Running {
                run.status = ExecutionStatus::Aborted;
            }
        }
        true
    }
}

/// Told every time an execution record changes (an event is appended, a state entered or exited),
/// with the record as it stands: the local runner persists it. Child executions of a Distributed Map
/// are reported too (their `map_run_arn` is set). Called while the executor waits: keep it quick.
pub trait ExecutionObserver: Send + Sync {
    fn record_changed(&self, record: &ExecutionRecord);
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedriveError {
    #[error("only FAILED, TIMED_OUT or ABORTED executions can be redriven; this one is {0:?}")]
    NotRedrivable(ExecutionStatus),
    #[error("the execution record has no checkpoint to resume from")]
    NoCheckpoint,
}
