//! Express executions. Step Functions keeps no history of them: the only record is what the state
//! machine logs to CloudWatch Logs (the stack sets level ALL with execution data), one JSON log event per
//! history event:
//!
//! ```json
//! {"id":"7","type":"TaskStateEntered","details":{"name":"Validate","input":"{…}"},
//!  "previous_event_id":"6","event_timestamp":"1795000000250",
//!  "execution_arn":"arn:aws:states:eu-west-1:123456789012:express:Pipeline:name:uuid"}
//! ```
//!
//! `details` is the API's `…EventDetails` object of that event type, so a log event becomes the same
//! [`HistoryEvent`] as `GetExecutionHistory` gives for a Standard execution, and the same viewer renders it.

use std::collections::HashMap;

use ferrotype_executor::{EventType, HistoryEvent};
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::error::OpsError;
use crate::executions::{ExecutionSummary, ListFilter};

/// How an Express execution ended, from the event that ended it: its type, its name in the log, the status.
const ENDINGS: [(EventType, &str, &str); 4] = [
    (
        EventType::ExecutionSucceeded,
        "ExecutionSucceeded",
        "SUCCEEDED",
    ),
    (EventType::ExecutionFailed, "ExecutionFailed", "FAILED"),
    (
        EventType::ExecutionTimedOut,
        "ExecutionTimedOut",
        "TIMED_OUT",
    ),
    (EventType::ExecutionAborted, "ExecutionAborted", "ABORTED"),
];

/// Log events one command reads at most: a window of a busy state machine can hold millions, which
/// would fill memory; the command asks for a narrower `--since` instead.
pub const MAX_LOG_EVENTS: usize = 500_000;

/// The window `executions list` and `rerun --all-failed` read for Express executions when `--since` is not
/// given: FilterLogEvents reads oldest first, so an open window means the whole log group.
pub const DEFAULT_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

/// The statuses `rerun --all-failed` restarts: every way an execution can end without its result.
pub const FAILED_STATUSES: [&str; 3] = ["FAILED", "TIMED_OUT", "ABORTED"];

/// One log event as Step Functions writes it.
#[derive(Debug, Deserialize)]
struct LogEvent {
    #[serde(deserialize_with = "number_or_string")]
    id: u64,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    details: Option<Value>,
    #[serde(default, deserialize_with = "optional_number_or_string")]
    previous_event_id: Option<u64>,
    #[serde(default, deserialize_with = "optional_number_or_string")]
    event_timestamp: Option<u64>,
    execution_arn: String,
}

/// Numbers that the logs write as strings (`"id":"7"`); accepted either way.
fn number_or_string<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    optional_number_or_string(deserializer)?
        .ok_or_else(|| serde::de::Error::custom("a number is missing"))
}

fn optional_number_or_string<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<u64>, D::Error> {
    match Option::<Value>::deserialize(deserializer)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| serde::de::Error::custom("not a whole number")),
        Some(Value::String(s)) => s.parse().map(Some).map_err(serde::de::Error::custom),
        Some(other) => Err(serde::de::Error::custom(format!("not a number: {other}"))),
    }
}

/// The history field an event type's `details` belong in: `stateEnteredEventDetails` and
/// `stateExitedEventDetails` for every kind of state, else the type's own `…EventDetails`.
fn details_field(event_type: &str) -> String {
    if event_type.ends_with("StateEntered") {
        return "stateEnteredEventDetails".to_owned();
    }
    if event_type.ends_with("StateExited") {
        return "stateExitedEventDetails".to_owned();
    }
    let mut chars = event_type.chars();
    let first = chars.next().map(|c| c.to_ascii_lowercase()).into_iter();
    first.chain(chars).collect::<String>() + "EventDetails"
}

/// One log event of an Express execution: its execution ARN and the history event it records.
/// `fallback_timestamp_ms` is CloudWatch's own timestamp of the log event, used when the message has none.
pub fn parse_log_event(
    message: &str,
    fallback_timestamp_ms: Option<i64>,
) -> Result<(String, HistoryEvent), String> {
    let event: LogEvent = serde_json::from_str(message)
        .map_err(|err| format!("not a Step Functions log event: {err}"))?;
    let millis = event
        .event_timestamp
        .map(i128::from)
        .or_else(|| fallback_timestamp_ms.map(i128::from))
        .unwrap_or(0);
    let timestamp = OffsetDateTime::from_unix_timestamp_nanos(millis * 1_000_000)
        .map_err(|err| format!("event {} has an impossible timestamp: {err}", event.id))?;
    let event_type: EventType = serde_json::from_value(Value::String(event.event_type.clone()))
        .unwrap_or(EventType::Unknown);
    let mut history = HistoryEvent::new(
        event_type,
        event.id,
        event.previous_event_id.unwrap_or(0),
        timestamp,
    );
    if let Some(details) = event
        .details
        .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
    {
        // Read through the API's JSON shape, so the details land exactly where GetExecutionHistory puts them;
        // details of a shape the executor does not model are left out rather than failing the whole event.
        let mut api = serde_json::to_value(&history).map_err(|err| err.to_string())?;
        api[details_field(&event.event_type)] = details;
        if let Ok(with_details) = serde_json::from_value::<HistoryEvent>(api) {
            history = with_details;
        }
    }
    Ok((event.execution_arn, history))
}

/// The execution's name, the part of an Express execution ARN after the state machine's name
/// (`arn:aws:states:REGION:ACCOUNT:express:MACHINE:NAME:ID`); a Standard ARN has no ID part.
pub fn execution_name(execution_arn: &str) -> &str {
    execution_arn.split(':').nth(7).unwrap_or(execution_arn)
}

/// The state machine an Express execution belongs to (`…:express:MACHINE:…` → `…:stateMachine:MACHINE`).
pub fn state_machine_of(execution_arn: &str) -> Option<String> {
    let parts: Vec<&str> = execution_arn.split(':').collect();
    (parts.len() >= 8 && parts[0] == "arn" && parts[2] == "states" && parts[5] == "express")
        .then(|| format!("{}:stateMachine:{}", parts[..5].join(":"), parts[6]))
}

/// Every log message of `log_group` matching `pattern` from `start_ms` on (FilterLogEvents, all pages,
/// all streams), with CloudWatch's timestamp.
async fn filter_log_events(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    pattern: &str,
    start_ms: Option<i64>,
) -> Result<Vec<(String, Option<i64>)>, OpsError> {
    let mut pages = logs
        .filter_log_events()
        .log_group_name(log_group)
        .filter_pattern(pattern)
        .set_start_time(start_ms)
        .into_paginator()
        .send();
    let mut messages = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| OpsError::from_sdk("FilterLogEvents", err))?;
        for event in page.events() {
            if let Some(message) = event.message() {
                messages.push((message.to_owned(), event.timestamp()));
            }
        }
        if messages.len() > MAX_LOG_EVENTS {
            return Err(OpsError::Usage(format!(
                "more than {MAX_LOG_EVENTS} log events of {log_group} match: narrow the window (--since)"
            )));
        }
    }
    Ok(messages)
}

/// A CloudWatch Logs filter pattern matching log events whose `type` is one of `types`.
fn type_pattern(types: &[&str]) -> String {
    let terms: Vec<String> = types
        .iter()
        .map(|t| format!("($.type = \"{t}\")"))
        .collect();
    format!("{{ {} }}", terms.join(" || "))
}

/// What the log says about one execution: when it started (with its input), how it ended.
#[derive(Debug, Clone, Default)]
struct Seen {
    start: Option<OffsetDateTime>,
    input: Option<String>,
    end: Option<(OffsetDateTime, &'static str)>,
}

/// The Express executions of the window, newest first, as `executions list` shows them: from their
/// ExecutionStarted and ending events. An execution with a start and no ending is RUNNING (or was lost:
/// an Express execution that ended without logging, which `reconcile` catches by its missing manifest).
pub async fn list_executions(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    filter: &ListFilter,
) -> Result<(Vec<ExecutionSummary>, bool), OpsError> {
    let (executions, truncated) = started_executions(logs, log_group, filter).await?;
    Ok((
        executions.into_iter().map(|(summary, _)| summary).collect(),
        truncated,
    ))
}

/// As [`list_executions`], with each execution's input (the ExecutionStarted event's, present when the
/// state machine logs execution data).
pub async fn started_executions(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    filter: &ListFilter,
) -> Result<(Vec<(ExecutionSummary, Option<String>)>, bool), OpsError> {
    let mut types = vec!["ExecutionStarted"];
    types.extend(ENDINGS.iter().map(|(_, name, _)| *name));
    let after = filter
        .started_after
        .unwrap_or_else(|| OffsetDateTime::now_utc() - DEFAULT_WINDOW);
    let start_ms = i64::try_from(after.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    let messages =
        filter_log_events(logs, log_group, &type_pattern(&types), Some(start_ms)).await?;
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for (message, timestamp) in &messages {
        // A line that is no Step Functions event (another writer to the group) is not an execution.
        let Ok((arn, event)) = parse_log_event(message, *timestamp) else {
            continue;
        };
        let entry = seen.entry(arn).or_default();
        if event.event_type == EventType::ExecutionStarted {
            entry.start = Some(event.timestamp);
            entry.input = event.execution_started_event_details.and_then(|d| d.input);
        } else if let Some((_, _, status)) = ENDINGS.iter().find(|(t, _, _)| *t == event.event_type)
        {
            entry.end = Some((event.timestamp, status));
        }
    }
    let wanted = filter
        .status
        .as_ref()
        .map(|status| status.as_str().to_owned());
    let mut found: Vec<(ExecutionSummary, Option<String>)> = seen
        .into_iter()
        .filter_map(|(arn, seen)| {
            let start = seen.start?;
            if start < after {
                return None;
            }
            let status = seen.end.map_or("RUNNING", |(_, status)| status);
            if wanted.as_deref().is_some_and(|wanted| wanted != status) {
                return None;
            }
            let summary = ExecutionSummary {
                name: execution_name(&arn).to_owned(),
                execution_arn: arn,
                status: status.to_owned(),
                start,
                stop: seen.end.map(|(stop, _)| stop),
                redrive_count: 0,
            };
            Some((summary, seen.input))
        })
        .collect();
    found.sort_by(|a, b| {
        b.0.start
            .cmp(&a.0.start)
            .then_with(|| a.0.execution_arn.cmp(&b.0.execution_arn))
    });
    let truncated = found.len() > filter.limit;
    found.truncate(filter.limit);
    Ok((found, truncated))
}

/// The whole history of one Express execution, in event order.
pub async fn history(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    execution_arn: &str,
) -> Result<Vec<HistoryEvent>, OpsError> {
    let pattern = format!("{{ $.execution_arn = {} }}", json!(execution_arn));
    let mut events = Vec::new();
    for (message, timestamp) in filter_log_events(logs, log_group, &pattern, None).await? {
        let (arn, event) = parse_log_event(&message, timestamp)
            .map_err(|err| OpsError::Usage(format!("{log_group}: {err}")))?;
        if arn == execution_arn {
            events.push(event);
        }
    }
    if events.is_empty() {
        return Err(OpsError::NotFound {
            operation: "FilterLogEvents",
            code: "NoLogEvents".to_owned(),
            message: format!(
                "no log events of {execution_arn} in {log_group} (older than the log retention, or the state machine does not log at level ALL)"
            ),
        });
    }
    events.sort_by_key(|event| event.id);
    events.dedup_by_key(|event| event.id);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_go_where_the_api_puts_them() {
        assert_eq!(
            details_field("TaskStateEntered"),
            "stateEnteredEventDetails"
        );
        assert_eq!(details_field("MapStateExited"), "stateExitedEventDetails");
        assert_eq!(
            details_field("ExecutionStarted"),
            "executionStartedEventDetails"
        );
        assert_eq!(
            details_field("LambdaFunctionScheduled"),
            "lambdaFunctionScheduledEventDetails"
        );
        assert_eq!(
            details_field("MapIterationFailed"),
            "mapIterationFailedEventDetails"
        );
    }

    #[test]
    fn names_and_machines_come_from_express_arns() {
        let arn =
            "arn:aws:states:eu-west-1:123456789012:express:FerrotypePipeline:bf-cat-1a2b:4f2c-9e";
        assert_eq!(execution_name(arn), "bf-cat-1a2b");
        assert_eq!(
            state_machine_of(arn).as_deref(),
            Some("arn:aws:states:eu-west-1:123456789012:stateMachine:FerrotypePipeline")
        );
        assert_eq!(
            state_machine_of("arn:aws:states:eu-west-1:1:execution:P:n"),
            None
        );
    }

    #[test]
    fn a_log_event_becomes_a_history_event() {
        let (arn, event) = parse_log_event(
            r#"{"id":"2","type":"TaskStateEntered","details":{"name":"Validate","input":"{}","inputDetails":{"truncated":false}},
                "previous_event_id":"1","event_timestamp":"1795000000250","execution_arn":"arn:x"}"#,
            None,
        )
        .unwrap();
        assert_eq!(arn, "arn:x");
        assert_eq!((event.id, event.previous_event_id), (2, 1));
        assert_eq!(event.event_type, EventType::TaskStateEntered);
        assert_eq!(event.state_entered_event_details.unwrap().name, "Validate");
        assert_eq!(
            event.timestamp.unix_timestamp_nanos(),
            1_795_000_000_250_000_000
        );
    }

    #[test]
    fn unknown_types_and_odd_details_are_kept_without_them() {
        let (_, event) = parse_log_event(
            r#"{"id":5,"type":"ActivityScheduled","details":{"resource":"arn:a"},"previous_event_id":4,"execution_arn":"arn:x"}"#,
            Some(1_000),
        )
        .unwrap();
        assert_eq!(event.event_type, EventType::Unknown);
        assert_eq!(event.timestamp.unix_timestamp(), 1);
        assert!(parse_log_event("START RequestId: 1", None).is_err());
        assert!(parse_log_event(
            r#"{"id":"x","type":"ExecutionStarted","execution_arn":"a"}"#,
            None
        )
        .is_err());
    }
}
