//! Execution history in the shape of the Step Functions `GetExecutionHistory` API, and a
//! console-like text rendering of it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// `HistoryEventType` of the Step Functions API (the subset this executor emits, plus a catch-all
/// for events converted from AWS that it does not know).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    ExecutionStarted,
    ExecutionSucceeded,
    ExecutionFailed,
    ExecutionTimedOut,
    ExecutionAborted,
    ExecutionRedriven,
    TaskStateEntered,
    TaskStateExited,
    TaskStateAborted,
    ChoiceStateEntered,
    ChoiceStateExited,
    PassStateEntered,
    PassStateExited,
    WaitStateEntered,
    WaitStateExited,
    WaitStateAborted,
    SucceedStateEntered,
    SucceedStateExited,
    FailStateEntered,
    MapStateEntered,
    MapStateExited,
    MapStateStarted,
    MapStateSucceeded,
    MapStateFailed,
    MapStateAborted,
    MapIterationStarted,
    MapIterationSucceeded,
    MapIterationFailed,
    MapIterationAborted,
    ParallelStateEntered,
    ParallelStateExited,
    ParallelStateStarted,
    ParallelStateSucceeded,
    ParallelStateFailed,
    ParallelStateAborted,
    LambdaFunctionScheduled,
    LambdaFunctionScheduleFailed,
    LambdaFunctionStarted,
    LambdaFunctionStartFailed,
    LambdaFunctionSucceeded,
    LambdaFunctionFailed,
    LambdaFunctionTimedOut,
    TaskScheduled,
    TaskStartFailed,
    TaskStarted,
    TaskSubmitted,
    TaskSucceeded,
    TaskFailed,
    TaskTimedOut,
    MapRunStarted,
    MapRunSucceeded,
    MapRunFailed,
    MapRunAborted,
    MapRunRedriven,
    #[serde(other)]
    Unknown,
}

impl EventType {
    /// For `…StateEntered` events: the state type name.
    pub fn entered_state_type(self) -> Option<&'static str> {
        Some(match self {
            EventType::TaskStateEntered => "Task",
            EventType::ChoiceStateEntered => "Choice",
            EventType::PassStateEntered => "Pass",
            EventType::WaitStateEntered => "Wait",
            EventType::SucceedStateEntered => "Succeed",
            EventType::FailStateEntered => "Fail",
            EventType::MapStateEntered => "Map",
            EventType::ParallelStateEntered => "Parallel",
            _ => return None,
        })
    }
    fn is_state_exited(self) -> bool {
        matches!(
            self,
            EventType::TaskStateExited
                | EventType::ChoiceStateExited
                | EventType::PassStateExited
                | EventType::WaitStateExited
                | EventType::SucceedStateExited
                | EventType::MapStateExited
                | EventType::ParallelStateExited
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DataDetails {
    pub truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionStartedDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_details: Option<DataDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// Details carrying an output (`executionSucceeded…`, `lambdaFunctionSucceeded…`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OutputDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_details: Option<DataDetails>,
}

/// Details carrying an error (`executionFailed…`, `lambdaFunctionFailed…`, `…TimedOut…`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRedrivenDetails {
    pub redrive_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateEnteredDetails {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_details: Option<DataDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StateExitedDetails {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_details: Option<DataDetails>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LambdaFunctionScheduledDetails {
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_details: Option<DataDetails>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskScheduledDetails {
    pub resource_type: String,
    pub resource: String,
    pub region: String,
    pub parameters: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_in_seconds: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_in_seconds: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskStartedDetails {
    pub resource_type: String,
    pub resource: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSucceededDetails {
    pub resource_type: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output_details: Option<DataDetails>,
}

/// `taskFailedEventDetails` / `taskTimedOutEventDetails`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFailedDetails {
    pub resource_type: String,
    pub resource: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapStateStartedDetails {
    pub length: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapIterationDetails {
    pub name: String,
    pub index: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapRunStartedDetails {
    pub map_run_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MapRunRedrivenDetails {
    pub map_run_arn: String,
    pub redrive_count: u32,
}

macro_rules! history_event {
    ($($field:ident: $ty:ty),* $(,)?) => {
        /// One event of `GetExecutionHistory`, field for field (camelCase JSON as the API returns).
        #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
        #[serde(rename_all = "camelCase")]
        pub struct HistoryEvent {
            #[serde(with = "time::serde::rfc3339")]
            pub timestamp: OffsetDateTime,
            #[serde(rename = "type")]
            pub event_type: EventType,
            pub id: u64,
            #[serde(default)]
            pub previous_event_id: u64,
            $(
                #[serde(default, skip_serializing_if = "Option::is_none")]
                pub $field: Option<$ty>,
            )*
        }

        impl HistoryEvent {
            pub fn new(event_type: EventType, id: u64, previous_event_id: u64, timestamp: OffsetDateTime) -> Self {
                Self { timestamp, event_type, id, previous_event_id, $($field: None,)* }
            }
        }
    };
}

history_event! {
    execution_started_event_details: ExecutionStartedDetails,
    execution_succeeded_event_details: OutputDetails,
    execution_failed_event_details: ErrorDetails,
    execution_timed_out_event_details: ErrorDetails,
    execution_aborted_event_details: ErrorDetails,
    execution_redriven_event_details: ExecutionRedrivenDetails,
    state_entered_event_details: StateEnteredDetails,
    state_exited_event_details: StateExitedDetails,
    lambda_function_scheduled_event_details: LambdaFunctionScheduledDetails,
    lambda_function_schedule_failed_event_details: ErrorDetails,
    lambda_function_start_failed_event_details: ErrorDetails,
    lambda_function_succeeded_event_details: OutputDetails,
    lambda_function_failed_event_details: ErrorDetails,
    lambda_function_timed_out_event_details: ErrorDetails,
    task_scheduled_event_details: TaskScheduledDetails,
    task_start_failed_event_details: TaskFailedDetails,
    task_started_event_details: TaskStartedDetails,
    task_succeeded_event_details: TaskSucceededDetails,
    task_failed_event_details: TaskFailedDetails,
    task_timed_out_event_details: TaskFailedDetails,
    map_state_started_event_details: MapStateStartedDetails,
    map_iteration_started_event_details: MapIterationDetails,
    map_iteration_succeeded_event_details: MapIterationDetails,
    map_iteration_failed_event_details: MapIterationDetails,
    map_iteration_aborted_event_details: MapIterationDetails,
    task_submitted_event_details: TaskSucceededDetails,
    map_run_started_event_details: MapRunStartedDetails,
    map_run_failed_event_details: ErrorDetails,
    map_run_redriven_event_details: MapRunRedrivenDetails,
}

impl HistoryEvent {
    /// The error and cause this event reports, if it reports one.
    pub fn error(&self) -> Option<(String, String)> {
        let from = |d: &ErrorDetails| {
            (
                d.error.clone().unwrap_or_default(),
                d.cause.clone().unwrap_or_default(),
            )
        };
        let from_task = |d: &TaskFailedDetails| {
            (
                d.error.clone().unwrap_or_default(),
                d.cause.clone().unwrap_or_default(),
            )
        };
        self.execution_failed_event_details
            .as_ref()
            .or(self.execution_timed_out_event_details.as_ref())
            .or(self.execution_aborted_event_details.as_ref())
            .or(self.lambda_function_failed_event_details.as_ref())
            .or(self.lambda_function_timed_out_event_details.as_ref())
            .or(self.lambda_function_schedule_failed_event_details.as_ref())
            .or(self.lambda_function_start_failed_event_details.as_ref())
            .or(self.map_run_failed_event_details.as_ref())
            .map(from)
            .or_else(|| {
                self.task_failed_event_details
                    .as_ref()
                    .or(self.task_timed_out_event_details.as_ref())
                    .or(self.task_start_failed_event_details.as_ref())
                    .map(from_task)
            })
    }
}

/// One row of the rendered history: a state visit.
#[derive(Debug, Clone, PartialEq)]
pub struct StateRow {
    pub name: String,
    pub state_type: String,
    /// SUCCEEDED, CAUGHT (failed, then handled by a Catcher), FAILED or RUNNING.
    pub status: String,
    pub depth: usize,
    pub iteration: Option<usize>,
    pub entered: OffsetDateTime,
    pub exited: Option<OffsetDateTime>,
    pub attempts: u32,
    pub error: Option<(String, String)>,
    pub input: Option<String>,
    pub output: Option<String>,
    parent: Option<usize>,
}

/// Fold a history into state visits, following `previousEventId` chains so concurrent Map
/// iterations and Parallel branches are attributed to the right rows.
pub fn state_rows(events: &[HistoryEvent]) -> Vec<StateRow> {
    use std::collections::HashMap;
    let mut rows: Vec<StateRow> = Vec::new();
    let mut row_of: HashMap<u64, usize> = HashMap::new();
    let mut iteration_of: HashMap<u64, usize> = HashMap::new();
    let mut type_of: HashMap<u64, EventType> = HashMap::new();
    for event in events {
        type_of.insert(event.id, event.event_type);
        let previous_row = row_of.get(&event.previous_event_id).copied();
        let iteration = iteration_of.get(&event.previous_event_id).copied();
        if let Some(state_type) = event.event_type.entered_state_type() {
            let details = event
                .state_entered_event_details
                .clone()
                .unwrap_or_default();
            let starts_scope = matches!(
                type_of.get(&event.previous_event_id),
                Some(EventType::MapIterationStarted | EventType::ParallelStateStarted)
            );
            let (parent, depth) = match previous_row {
                Some(p) if starts_scope => (Some(p), rows[p].depth + 1),
                Some(p) => (rows[p].parent, rows[p].depth),
                None => (None, 0),
            };
            rows.push(StateRow {
                name: details.name,
                state_type: state_type.to_string(),
                status: if state_type == "Fail" {
                    "FAILED".into()
                } else {
                    "RUNNING".into()
                },
                depth,
                iteration: if starts_scope || previous_row.is_some_and(|p| rows[p].parent == parent)
                {
                    iteration
                } else {
                    None
                },
                entered: event.timestamp,
                exited: None,
                attempts: 0,
                error: None,
                input: details.input,
                output: None,
                parent,
            });
            row_of.insert(event.id, rows.len() - 1);
            if let Some(i) = iteration {
                iteration_of.insert(event.id, i);
            }
            continue;
        }
        let Some(mut row) = previous_row else {
            continue;
        };
        if matches!(
            event.event_type,
            EventType::MapIterationSucceeded
                | EventType::MapIterationFailed
                | EventType::MapIterationAborted
        ) && rows[row].state_type != "Map"
        {
            row = rows[row].parent.unwrap_or(row);
        } else if matches!(
            event.event_type,
            EventType::MapIterationSucceeded
                | EventType::MapIterationFailed
                | EventType::MapIterationAborted
        ) {
            // The iteration's last state was itself a Map: its parent is the one this event closes.
            row = rows[row].parent.unwrap_or(row);
        }
        row_of.insert(event.id, row);
        match &event.map_iteration_started_event_details {
            Some(d) => {
                iteration_of.insert(event.id, d.index);
            }
            None => {
                if let Some(i) = rows[row].iteration {
                    iteration_of.insert(event.id, i);
                }
            }
        }
        let r = &mut rows[row];
        match event.event_type {
            EventType::LambdaFunctionScheduled | EventType::TaskScheduled => r.attempts += 1,
            t if t.is_state_exited() => {
                r.exited = Some(event.timestamp);
                r.output = event
                    .state_exited_event_details
                    .as_ref()
                    .and_then(|d| d.output.clone());
                r.status = if r.error.is_some() {
                    "CAUGHT".into()
                } else {
                    "SUCCEEDED".into()
                };
            }
            EventType::MapIterationStarted | EventType::MapIterationSucceeded => {}
            EventType::ExecutionFailed
            | EventType::ExecutionTimedOut
            | EventType::ExecutionAborted => {
                if r.error.is_none() {
                    r.error = event.error();
                }
                if r.exited.is_none() {
                    r.status = "FAILED".into();
                    r.exited = Some(event.timestamp);
                }
            }
            EventType::MapStateFailed
            | EventType::ParallelStateFailed
            | EventType::MapIterationFailed => {
                r.status = "FAILED".into();
            }
            _ => {
                if let Some(error) = event.error() {
                    r.error = Some(error);
                    r.status = "FAILED".into();
                    r.exited = Some(event.timestamp);
                }
            }
        }
        if event.event_type.is_state_exited() && r.error.is_some() && r.attempts > 0 {
            // A Task whose last attempt succeeded after retries is SUCCEEDED, not CAUGHT.
            let last_attempt_failed = events
                .iter()
                .rev()
                .find(|e| {
                    row_of.get(&e.id) == Some(&row)
                        && matches!(
                            e.event_type,
                            EventType::LambdaFunctionSucceeded
                                | EventType::TaskSucceeded
                                | EventType::LambdaFunctionFailed
                                | EventType::TaskFailed
                                | EventType::LambdaFunctionTimedOut
                                | EventType::TaskTimedOut
                        )
                        && e.id < event.id
                })
                .is_some_and(|e| e.error().is_some());
            let r = &mut rows[row];
            if !last_attempt_failed {
                r.status = "SUCCEEDED".into();
            }
        }
    }
    rows
}

fn abbreviate(text: &str, width: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if flat.chars().count() <= width {
        flat
    } else {
        format!(
            "{}…",
            flat.chars()
                .take(width.saturating_sub(1))
                .collect::<String>()
        )
    }
}

fn format_duration(start: OffsetDateTime, end: Option<OffsetDateTime>) -> String {
    match end {
        None => "-".into(),
        Some(end) => {
            let ms = (end - start).whole_milliseconds();
            if ms < 1000 {
                format!("{ms}ms")
            } else {
                format!("{:.1}s", ms as f64 / 1000.0)
            }
        }
    }
}

/// Render a history as a state-by-state table (state, type, status, duration, retries, error,
/// input, output), as the console's "Table view" shows it.
pub fn render_table(events: &[HistoryEvent]) -> String {
    let rows = state_rows(events);
    let header = [
        "STATE", "TYPE", "STATUS", "DURATION", "RETRIES", "ERROR", "INPUT", "OUTPUT",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    for row in &rows {
        let name = match row.iteration {
            Some(i) => format!("{}{} [{}]", "  ".repeat(row.depth), row.name, i),
            None => format!("{}{}", "  ".repeat(row.depth), row.name),
        };
        table.push([
            name,
            row.state_type.clone(),
            row.status.clone(),
            format_duration(row.entered, row.exited),
            row.attempts.saturating_sub(1).to_string(),
            row.error
                .as_ref()
                .map(|(e, c)| {
                    abbreviate(
                        &if c.is_empty() {
                            e.clone()
                        } else {
                            format!("{e}: {c}")
                        },
                        48,
                    )
                })
                .unwrap_or_default(),
            row.input
                .as_deref()
                .map(|t| abbreviate(t, 40))
                .unwrap_or_default(),
            row.output
                .as_deref()
                .map(|t| abbreviate(t, 40))
                .unwrap_or_default(),
        ]);
    }
    let widths: Vec<usize> = (0..8)
        .map(|c| {
            table
                .iter()
                .map(|r| r[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for r in &table {
        let line: Vec<String> = r
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        out.push_str(line.join("  ").trim_end());
        out.push('\n');
    }
    if let Some(last) = events.last() {
        match last.event_type {
            EventType::ExecutionSucceeded => out.push_str("Execution SUCCEEDED\n"),
            EventType::ExecutionFailed
            | EventType::ExecutionTimedOut
            | EventType::ExecutionAborted => {
                let (error, cause) = last.error().unwrap_or_default();
                let status = match last.event_type {
                    EventType::ExecutionFailed => "FAILED",
                    EventType::ExecutionTimedOut => "TIMED_OUT",
                    _ => "ABORTED",
                };
                out.push_str(&format!(
                    "Execution {status}: {error}: {}\n",
                    abbreviate(&cause, 200)
                ));
            }
            _ => out.push_str("Execution RUNNING\n"),
        }
    }
    out
}
