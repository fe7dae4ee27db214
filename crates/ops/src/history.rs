//! GetExecutionHistory events from AWS, converted into the executor's history type, so that
//! `ferrotype aws executions show` and the local `executions show` render with the same viewer.

use aws_sdk_sfn::types as sfn;
use ferrotype_executor::history::{
    DataDetails, ErrorDetails, EventType, ExecutionRedrivenDetails, ExecutionStartedDetails,
    HistoryEvent, LambdaFunctionScheduledDetails, MapIterationDetails, MapStateStartedDetails,
    OutputDetails, StateEnteredDetails, StateExitedDetails, TaskFailedDetails,
    TaskScheduledDetails, TaskStartedDetails, TaskSucceededDetails,
};
use time::OffsetDateTime;

use crate::error::OpsError;

/// Converts one AWS history event. Event types the executor does not model (activities, Map Runs,
/// evaluation failures) become [`EventType::Unknown`] and keep their id links, so the rows around
/// them still fold correctly.
pub fn convert_event(event: &sfn::HistoryEvent) -> HistoryEvent {
    let event_type: EventType = serde_json::from_value(serde_json::Value::String(
        event.r#type().as_str().to_owned(),
    ))
    .unwrap_or(EventType::Unknown);
    let mut converted = HistoryEvent::new(
        event_type,
        non_negative(event.id()),
        non_negative(event.previous_event_id()),
        timestamp(event.timestamp()),
    );

    converted.execution_started_event_details =
        event
            .execution_started_event_details()
            .map(|d| ExecutionStartedDetails {
                input: d.input().map(str::to_owned),
                input_details: data_details(d.input_details()),
                role_arn: d.role_arn().map(str::to_owned),
            });
    converted.execution_succeeded_event_details = event
        .execution_succeeded_event_details()
        .map(|d| output_details(d.output(), d.output_details()));
    converted.execution_failed_event_details = event
        .execution_failed_event_details()
        .map(|d| error_details(d.error(), d.cause()));
    converted.execution_timed_out_event_details = event
        .execution_timed_out_event_details()
        .map(|d| error_details(d.error(), d.cause()));
    converted.execution_aborted_event_details = event
        .execution_aborted_event_details()
        .map(|d| error_details(d.error(), d.cause()));
    converted.execution_redriven_event_details =
        event
            .execution_redriven_event_details()
            .map(|d| ExecutionRedrivenDetails {
                redrive_count: d
                    .redrive_count()
                    .map_or(0, |count| u32::try_from(count).unwrap_or(0)),
            });

    converted.state_entered_event_details =
        event
            .state_entered_event_details()
            .map(|d| StateEnteredDetails {
                name: d.name().to_owned(),
                input: d.input().map(str::to_owned),
                input_details: data_details(d.input_details()),
            });
    converted.state_exited_event_details =
        event
            .state_exited_event_details()
            .map(|d| StateExitedDetails {
                name: d.name().to_owned(),
                output: d.output().map(str::to_owned),
                output_details: data_details(d.output_details()),
            });

    converted.lambda_function_scheduled_event_details = event
        .lambda_function_scheduled_event_details()
        .map(|d| LambdaFunctionScheduledDetails {
            resource: d.resource().to_owned(),
            input: d.input().map(str::to_owned),
            input_details: data_details(d.input_details()),
            timeout_in_seconds: d.timeout_in_seconds().and_then(|s| u64::try_from(s).ok()),
        });
    converted.lambda_function_schedule_failed_event_details = event
        .lambda_function_schedule_failed_event_details()
        .map(|d| error_details(d.error(), d.cause()));
    converted.lambda_function_start_failed_event_details = event
        .lambda_function_start_failed_event_details()
        .map(|d| error_details(d.error(), d.cause()));
    converted.lambda_function_succeeded_event_details = event
        .lambda_function_succeeded_event_details()
        .map(|d| output_details(d.output(), d.output_details()));
    converted.lambda_function_failed_event_details = event
        .lambda_function_failed_event_details()
        .map(|d| error_details(d.error(), d.cause()));
    converted.lambda_function_timed_out_event_details = event
        .lambda_function_timed_out_event_details()
        .map(|d| error_details(d.error(), d.cause()));

    converted.task_scheduled_event_details =
        event
            .task_scheduled_event_details()
            .map(|d| TaskScheduledDetails {
                resource_type: d.resource_type().to_owned(),
                resource: d.resource().to_owned(),
                region: d.region().to_owned(),
                parameters: d.parameters().to_owned(),
                timeout_in_seconds: d.timeout_in_seconds().and_then(|s| u64::try_from(s).ok()),
                heartbeat_in_seconds: d.heartbeat_in_seconds().and_then(|s| u64::try_from(s).ok()),
            });
    converted.task_start_failed_event_details =
        event
            .task_start_failed_event_details()
            .map(|d| TaskFailedDetails {
                resource_type: d.resource_type().to_owned(),
                resource: d.resource().to_owned(),
                error: d.error().map(str::to_owned),
                cause: d.cause().map(str::to_owned),
            });
    converted.task_started_event_details =
        event
            .task_started_event_details()
            .map(|d| TaskStartedDetails {
                resource_type: d.resource_type().to_owned(),
                resource: d.resource().to_owned(),
            });
    converted.task_succeeded_event_details =
        event
            .task_succeeded_event_details()
            .map(|d| TaskSucceededDetails {
                resource_type: d.resource_type().to_owned(),
                resource: d.resource().to_owned(),
                output: d.output().map(str::to_owned),
                output_details: data_details(d.output_details()),
            });
    converted.task_failed_event_details =
        event
            .task_failed_event_details()
            .map(|d| TaskFailedDetails {
                resource_type: d.resource_type().to_owned(),
                resource: d.resource().to_owned(),
                error: d.error().map(str::to_owned),
                cause: d.cause().map(str::to_owned),
            });
    converted.task_timed_out_event_details =
        event
            .task_timed_out_event_details()
            .map(|d| TaskFailedDetails {
                resource_type: d.resource_type().to_owned(),
                resource: d.resource().to_owned(),
                error: d.error().map(str::to_owned),
                cause: d.cause().map(str::to_owned),
            });

    converted.map_state_started_event_details =
        event
            .map_state_started_event_details()
            .map(|d| MapStateStartedDetails {
                length: usize::try_from(d.length()).unwrap_or(0),
            });
    converted.map_iteration_started_event_details =
        event.map_iteration_started_event_details().map(iteration);
    converted.map_iteration_succeeded_event_details =
        event.map_iteration_succeeded_event_details().map(iteration);
    converted.map_iteration_failed_event_details =
        event.map_iteration_failed_event_details().map(iteration);
    converted.map_iteration_aborted_event_details =
        event.map_iteration_aborted_event_details().map(iteration);
    converted
}

/// Reads the whole history of an execution (GetExecutionHistory, every page, oldest first).
pub async fn fetch_history(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Result<Vec<HistoryEvent>, OpsError> {
    let mut pages = sfn
        .get_execution_history()
        .execution_arn(execution_arn)
        .max_results(1000)
        .into_paginator()
        .send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| OpsError::from_sdk("GetExecutionHistory", err))?;
        events.extend(page.events().iter().map(convert_event));
    }
    Ok(events)
}

pub(crate) fn timestamp(time: &aws_smithy_types::DateTime) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(time.as_nanos()).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn non_negative(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

fn data_details(details: Option<&sfn::HistoryEventExecutionDataDetails>) -> Option<DataDetails> {
    details.map(|d| DataDetails {
        truncated: d.truncated(),
    })
}

fn output_details(
    output: Option<&str>,
    details: Option<&sfn::HistoryEventExecutionDataDetails>,
) -> OutputDetails {
    OutputDetails {
        output: output.map(str::to_owned),
        output_details: data_details(details),
    }
}

fn error_details(error: Option<&str>, cause: Option<&str>) -> ErrorDetails {
    ErrorDetails {
        error: error.map(str::to_owned),
        cause: cause.map(str::to_owned),
    }
}

fn iteration(details: &sfn::MapIterationEventDetails) -> MapIterationDetails {
    MapIterationDetails {
        name: details.name().unwrap_or_default().to_owned(),
        index: usize::try_from(details.index()).unwrap_or(0),
    }
}
