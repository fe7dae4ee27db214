//! The `ferrotype aws` commands against Step Functions, S3 and CloudFormation mocked at the SDK
//! boundary (aws-smithy-mocks), with responses shaped like the real ones.

use std::sync::{Arc, Mutex};

use aws_sdk_cloudformation::operation::describe_stacks::{
    DescribeStacksError, DescribeStacksOutput,
};
use aws_sdk_cloudformation::types::{Output, Stack, StackStatus};
use aws_sdk_s3::operation::list_objects_v2::{ListObjectsV2Error, ListObjectsV2Output};
use aws_sdk_s3::types::Object;
use aws_sdk_sfn::operation::describe_execution::{DescribeExecutionError, DescribeExecutionOutput};
use aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryOutput;
use aws_sdk_sfn::operation::list_executions::ListExecutionsOutput;
use aws_sdk_sfn::operation::redrive_execution::{RedriveExecutionError, RedriveExecutionOutput};
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::types::error::{
    ExecutionAlreadyExists, ExecutionDoesNotExist, ExecutionNotRedrivable,
};
use aws_sdk_sfn::types::{
    ExecutionListItem, ExecutionRedriveStatus, ExecutionStatus, HistoryEvent, HistoryEventType,
    LambdaFunctionFailedEventDetails, LambdaFunctionScheduledEventDetails,
    StateEnteredEventDetails, StateExitedEventDetails,
};
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::DateTime;
use ferrotype_core::config::Config;
use ferrotype_core::event::ObjectEvent;
use ferrotype_ops::backfill::START_ATTEMPTS;
use ferrotype_ops::{BackfillRequest, BackfillSummary, ListFilter, OpsError, RedriveSummary};
use indicatif::ProgressBar;

const STATE_MACHINE: &str = "arn:aws:states:eu-west-1:123456789012:stateMachine:FerrotypePipeline";
const NOW: i64 = 1_795_000_000; // 2026-11-18T11:06:40Z

fn execution_arn(name: &str) -> String {
    format!("arn:aws:states:eu-west-1:123456789012:execution:FerrotypePipeline:{name}")
}

fn access_denied(action: &str) -> ErrorMetadata {
    ErrorMetadata::builder()
        .code("AccessDeniedException")
        .message(format!(
            "User: arn:aws:sts::123456789012:assumed-role/operator/me is not authorized to perform: {action} \
             on resource: {STATE_MACHINE} because no identity-based policy allows the {action} action"
        ))
        .build()
}

/// The metadata the SDK's deserializer attaches to every error response: code and message.
fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn throttling() -> ErrorMetadata {
    meta("ThrottlingException", "Rate exceeded")
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

// ---------------------------------------------------------------------------------------------
// executions list

fn listed(name: &str, status: ExecutionStatus, start: i64) -> ExecutionListItem {
    ExecutionListItem::builder()
        .execution_arn(execution_arn(name))
        .state_machine_arn(STATE_MACHINE)
        .name(name)
        .status(status.clone())
        .start_date(DateTime::from_secs(start))
        .set_stop_date(
            (status != ExecutionStatus::Running).then(|| DateTime::from_secs(start + 95)),
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn list_follows_next_token_and_stops_paging_past_since() {
    let first = mock!(aws_sdk_sfn::Client::list_executions)
        .match_requests(|req| req.next_token().is_none())
        .then_output(|| {
            ListExecutionsOutput::builder()
                .executions(listed("newest", ExecutionStatus::Failed, NOW - 60))
                .executions(listed("second", ExecutionStatus::Failed, NOW - 3_600))
                .next_token("page-2")
                .build()
                .unwrap()
        });
    let second = mock!(aws_sdk_sfn::Client::list_executions)
        .match_requests(|req| req.next_token() == Some("page-2"))
        .then_output(|| {
            ListExecutionsOutput::builder()
                .executions(listed("third", ExecutionStatus::Failed, NOW - 7_200))
                .executions(listed("too-old", ExecutionStatus::Failed, NOW - 90_000))
                .next_token("page-3")
                .build()
                .unwrap()
        });
    let third = mock!(aws_sdk_sfn::Client::list_executions)
        .match_requests(|req| req.next_token() == Some("page-3"))
        .then_output(|| {
            ListExecutionsOutput::builder()
                .executions(listed("ancient", ExecutionStatus::Failed, NOW - 900_000))
                .build()
                .unwrap()
        });
    let status_filtered = mock!(aws_sdk_sfn::Client::list_executions)
        .match_requests(|req| req.status_filter() != Some(&ExecutionStatus::Failed))
        .then_output(|| ListExecutionsOutput::builder().build().unwrap());
    let sfn = mock_client!(
        aws_sdk_sfn,
        RuleMode::MatchAny,
        [&status_filtered, &first, &second, &third]
    );

    let filter = ListFilter {
        status: Some(ferrotype_ops::parse_status("failed").unwrap()),
        started_after: Some(time::OffsetDateTime::from_unix_timestamp(NOW - 86_400).unwrap()),
        limit: 1000,
    };
    let (executions, truncated) = ferrotype_ops::list_executions(&sfn, STATE_MACHINE, &filter)
        .await
        .unwrap();
    let names: Vec<&str> = executions.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["newest", "second", "third"]);
    assert!(!truncated);
    assert_eq!(
        status_filtered.num_calls(),
        0,
        "the status filter goes to AWS"
    );
    assert_eq!((first.num_calls(), second.num_calls()), (1, 1));
    assert_eq!(
        third.num_calls(),
        0,
        "paging stops at the first execution older than --since"
    );

    let mut out = Vec::new();
    ferrotype_ops::write_execution_list(&mut out, &executions, truncated).unwrap();
    let out = text(out);
    assert!(out.lines().next().unwrap().starts_with("STATUS"), "{out}");
    assert!(out.contains("FAILED"), "{out}");
    assert!(out.contains("1m35s"), "{out}");
    assert!(out.contains(&execution_arn("third")), "{out}");
    assert!(out.ends_with("3 execution(s)\n"), "{out}");
}

#[tokio::test]
async fn list_stops_at_the_limit_and_says_so() {
    let page = mock!(aws_sdk_sfn::Client::list_executions).then_output(|| {
        ListExecutionsOutput::builder()
            .executions(listed("a", ExecutionStatus::Running, NOW - 1))
            .executions(listed("b", ExecutionStatus::Succeeded, NOW - 2))
            .executions(listed("c", ExecutionStatus::Succeeded, NOW - 3))
            .next_token("more")
            .build()
            .unwrap()
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&page]);
    let filter = ListFilter {
        status: None,
        started_after: None,
        limit: 2,
    };
    let (executions, truncated) = ferrotype_ops::list_executions(&sfn, STATE_MACHINE, &filter)
        .await
        .unwrap();
    assert_eq!(executions.len(), 2);
    assert!(truncated);
    assert_eq!(page.num_calls(), 1);
    let mut out = Vec::new();
    ferrotype_ops::write_execution_list(&mut out, &executions, truncated).unwrap();
    let out = text(out);
    assert!(out.contains("--limit 2"), "{out}");
    assert!(
        out.contains("RUNNING") && out.contains(" - "),
        "a running execution has no duration: {out}"
    );
}

#[tokio::test]
async fn list_reports_access_denied_in_one_line() {
    let denied = mock!(aws_sdk_sfn::Client::list_executions).then_error(|| {
        aws_sdk_sfn::operation::list_executions::ListExecutionsError::generic(access_denied(
            "states:ListExecutions",
        ))
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&denied]);
    let filter = ListFilter {
        status: None,
        started_after: None,
        limit: 10,
    };
    let err = ferrotype_ops::list_executions(&sfn, STATE_MACHINE, &filter)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            OpsError::AccessDenied {
                operation: "ListExecutions",
                ..
            }
        ),
        "{err:?}"
    );
    let line = err.to_string();
    assert!(!line.contains('\n'));
    assert!(
        line.starts_with(
            "ListExecutions: access denied (AccessDeniedException): User: arn:aws:sts"
        ),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------------
// executions show

fn event(
    id: i64,
    previous: i64,
    kind: HistoryEventType,
    second: i64,
) -> aws_sdk_sfn::types::builders::HistoryEventBuilder {
    HistoryEvent::builder()
        .id(id)
        .previous_event_id(previous)
        .r#type(kind)
        .timestamp(DateTime::from_secs_and_nanos(NOW + second, 250_000_000))
}

const VALIDATE_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:ferrotype-validate";
const FACES_ARN: &str = "arn:aws:lambda:eu-west-1:123456789012:function:ferrotype-detect-faces";

/// A pipeline run whose face detection ran out of memory, as GetExecutionHistory returns it (two pages).
fn failed_run_pages() -> (Vec<HistoryEvent>, Vec<HistoryEvent>) {
    let entered = |id, previous, name: &str, input: &str, second| {
        event(id, previous, HistoryEventType::TaskStateEntered, second)
            .state_entered_event_details(
                StateEnteredEventDetails::builder()
                    .name(name)
                    .input(input)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let scheduled = |id, previous, resource: &str, second| {
        event(
            id,
            previous,
            HistoryEventType::LambdaFunctionScheduled,
            second,
        )
        .lambda_function_scheduled_event_details(
            LambdaFunctionScheduledEventDetails::builder()
                .resource(resource)
                .input("{}")
                .timeout_in_seconds(60)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap()
    };
    let page_one = vec![
        event(1, 0, HistoryEventType::ExecutionStarted, 0)
            .execution_started_event_details(
                aws_sdk_sfn::types::ExecutionStartedEventDetails::builder()
                    .input(r#"{"detail":{}}"#)
                    .role_arn("arn:aws:iam::123456789012:role/sfn")
                    .build(),
            )
            .build()
            .unwrap(),
        entered(2, 1, "Validate", r#"{"detail":{}}"#, 0),
        scheduled(3, 2, VALIDATE_ARN, 0),
        event(4, 3, HistoryEventType::LambdaFunctionStarted, 0)
            .build()
            .unwrap(),
        event(5, 4, HistoryEventType::LambdaFunctionSucceeded, 1)
            .lambda_function_succeeded_event_details(
                aws_sdk_sfn::types::LambdaFunctionSucceededEventDetails::builder()
                    .output(r#"{"key":"uploads/cat.jpg"}"#)
                    .build(),
            )
            .build()
            .unwrap(),
        event(6, 5, HistoryEventType::TaskStateExited, 1)
            .state_exited_event_details(
                StateExitedEventDetails::builder()
                    .name("Validate")
                    .output(r#"{"key":"uploads/cat.jpg"}"#)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap(),
    ];
    let page_two = vec![
        entered(7, 6, "DetectFaces", r#"{"key":"uploads/cat.jpg"}"#, 1),
        scheduled(8, 7, FACES_ARN, 1),
        event(9, 8, HistoryEventType::LambdaFunctionStarted, 1)
            .build()
            .unwrap(),
        event(10, 9, HistoryEventType::LambdaFunctionFailed, 4)
            .lambda_function_failed_event_details(
                LambdaFunctionFailedEventDetails::builder()
                    .error("Lambda.Unknown")
                    .cause("Runtime exited: signal: killed")
                    .build(),
            )
            .build()
            .unwrap(),
        event(11, 10, HistoryEventType::ExecutionFailed, 4)
            .execution_failed_event_details(
                aws_sdk_sfn::types::ExecutionFailedEventDetails::builder()
                    .error("Lambda.Unknown")
                    .cause("Runtime exited: signal: killed")
                    .build(),
            )
            .build()
            .unwrap(),
    ];
    (page_one, page_two)
}

#[tokio::test]
async fn show_reads_every_history_page_and_renders_with_the_executor_viewer() {
    let (page_one, page_two) = failed_run_pages();
    let arn = execution_arn("cat");
    let expected_arn = arn.clone();
    let first = {
        let page_one = page_one.clone();
        mock!(aws_sdk_sfn::Client::get_execution_history)
            .match_requests(move |req| {
                req.next_token().is_none() && req.execution_arn() == Some(expected_arn.as_str())
            })
            .then_output(move || {
                GetExecutionHistoryOutput::builder()
                    .set_events(Some(page_one.clone()))
                    .next_token("h2")
                    .build()
                    .unwrap()
            })
    };
    let second = {
        let page_two = page_two.clone();
        mock!(aws_sdk_sfn::Client::get_execution_history)
            .match_requests(|req| req.next_token() == Some("h2"))
            .then_output(move || {
                GetExecutionHistoryOutput::builder()
                    .set_events(Some(page_two.clone()))
                    .build()
                    .unwrap()
            })
    };
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&first, &second]);

    let mut out = Vec::new();
    ferrotype_ops::show_execution(&sfn, &arn, &mut out)
        .await
        .unwrap();
    let out = text(out);

    // Exactly what the executor's viewer renders for the same history.
    let converted: Vec<_> = page_one
        .iter()
        .chain(&page_two)
        .map(ferrotype_ops::history::convert_event)
        .collect();
    assert_eq!(
        out,
        format!("{arn}\n{}", ferrotype_executor::render_table(&converted))
    );
    let validate = out.lines().find(|l| l.starts_with("Validate")).expect(&out);
    assert!(
        validate.contains("SUCCEEDED") && validate.contains("1.0s"),
        "{validate}"
    );
    let faces = out
        .lines()
        .find(|l| l.starts_with("DetectFaces"))
        .expect(&out);
    assert!(
        faces.contains("FAILED") && faces.contains("Lambda.Unknown: Runtime exited"),
        "{faces}"
    );
    assert!(
        out.lines().last().unwrap().contains("Lambda.Unknown"),
        "{out}"
    );
}

#[tokio::test]
async fn show_of_a_missing_execution_is_one_not_found_line() {
    let missing = mock!(aws_sdk_sfn::Client::get_execution_history).then_error(|| {
        aws_sdk_sfn::operation::get_execution_history::GetExecutionHistoryError::ExecutionDoesNotExist(
            {
                let message = "Execution Does Not Exist: 'arn:aws:states:…:nope'";
                ExecutionDoesNotExist::builder().message(message).meta(meta("ExecutionDoesNotExist", message)).build()
            },
        )
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&missing]);
    let mut out = Vec::new();
    let err = ferrotype_ops::show_execution(&sfn, &execution_arn("nope"), &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, OpsError::NotFound { .. }), "{err:?}");
    assert_eq!(err.to_string(), "GetExecutionHistory: not found (ExecutionDoesNotExist): Execution Does Not Exist: 'arn:aws:states:…:nope'");
    assert!(out.is_empty());
}

/// The conversion gives the same value the executor's type reads from the API's JSON: one type for
/// both histories.
#[test]
fn converted_events_equal_the_api_json_read_by_the_executor_type() {
    let (page_one, page_two) = failed_run_pages();
    let api_json = serde_json::json!([
        {"timestamp": "2026-11-18T11:06:40.25Z", "type": "ExecutionStarted", "id": 1, "previousEventId": 0,
         "executionStartedEventDetails": {"input": "{\"detail\":{}}", "roleArn": "arn:aws:iam::123456789012:role/sfn"}},
        {"timestamp": "2026-11-18T11:06:40.25Z", "type": "TaskStateEntered", "id": 2, "previousEventId": 1,
         "stateEnteredEventDetails": {"name": "Validate", "input": "{\"detail\":{}}"}},
        {"timestamp": "2026-11-18T11:06:40.25Z", "type": "LambdaFunctionScheduled", "id": 3, "previousEventId": 2,
         "lambdaFunctionScheduledEventDetails": {"resource": VALIDATE_ARN, "input": "{}", "timeoutInSeconds": 60}},
        {"timestamp": "2026-11-18T11:06:40.25Z", "type": "LambdaFunctionStarted", "id": 4, "previousEventId": 3},
        {"timestamp": "2026-11-18T11:06:41.25Z", "type": "LambdaFunctionSucceeded", "id": 5, "previousEventId": 4,
         "lambdaFunctionSucceededEventDetails": {"output": "{\"key\":\"uploads/cat.jpg\"}"}},
        {"timestamp": "2026-11-18T11:06:41.25Z", "type": "TaskStateExited", "id": 6, "previousEventId": 5,
         "stateExitedEventDetails": {"name": "Validate", "output": "{\"key\":\"uploads/cat.jpg\"}"}},
        {"timestamp": "2026-11-18T11:06:41.25Z", "type": "TaskStateEntered", "id": 7, "previousEventId": 6,
         "stateEnteredEventDetails": {"name": "DetectFaces", "input": "{\"key\":\"uploads/cat.jpg\"}"}},
        {"timestamp": "2026-11-18T11:06:41.25Z", "type": "LambdaFunctionScheduled", "id": 8, "previousEventId": 7,
         "lambdaFunctionScheduledEventDetails": {"resource": FACES_ARN, "input": "{}", "timeoutInSeconds": 60}},
        {"timestamp": "2026-11-18T11:06:41.25Z", "type": "LambdaFunctionStarted", "id": 9, "previousEventId": 8},
        {"timestamp": "2026-11-18T11:06:44.25Z", "type": "LambdaFunctionFailed", "id": 10, "previousEventId": 9,
         "lambdaFunctionFailedEventDetails": {"error": "Lambda.Unknown", "cause": "Runtime exited: signal: killed"}},
        {"timestamp": "2026-11-18T11:06:44.25Z", "type": "ExecutionFailed", "id": 11, "previousEventId": 10,
         "executionFailedEventDetails": {"error": "Lambda.Unknown", "cause": "Runtime exited: signal: killed"}}
    ]);
    let from_json: Vec<ferrotype_executor::HistoryEvent> =
        serde_json::from_value(api_json).unwrap();
    let converted: Vec<_> = page_one
        .iter()
        .chain(&page_two)
        .map(ferrotype_ops::history::convert_event)
        .collect();
    assert_eq!(converted, from_json);
}

#[test]
fn event_types_the_executor_does_not_model_are_kept_as_unknown() {
    let activity = event(5, 4, HistoryEventType::ActivityScheduled, 0)
        .build()
        .unwrap();
    let converted = ferrotype_ops::history::convert_event(&activity);
    assert_eq!(converted.event_type, ferrotype_executor::EventType::Unknown);
    assert_eq!((converted.id, converted.previous_event_id), (5, 4));
    // The Distributed Map's events are modelled (the executor runs Map Runs).
    let map_run = event(6, 5, HistoryEventType::MapRunStarted, 0)
        .build()
        .unwrap();
    assert_eq!(
        ferrotype_ops::history::convert_event(&map_run).event_type,
        ferrotype_executor::EventType::MapRunStarted
    );
}

// ---------------------------------------------------------------------------------------------
// redrive

fn described(
    arn: &str,
    status: ExecutionStatus,
    redrive: ExecutionRedriveStatus,
    reason: Option<&str>,
) -> DescribeExecutionOutput {
    DescribeExecutionOutput::builder()
        .execution_arn(arn)
        .state_machine_arn(STATE_MACHINE)
        .status(status)
        .start_date(DateTime::from_secs(NOW))
        .redrive_status(redrive)
        .set_redrive_status_reason(reason.map(str::to_owned))
        .build()
        .unwrap()
}

#[tokio::test]
async fn redrive_skips_what_aws_will_not_redrive_and_says_why() {
    let failed = execution_arn("failed");
    let succeeded = execution_arn("succeeded");
    let raced = execution_arn("raced");
    let missing = execution_arn("missing");
    let describe = {
        let (failed, succeeded, raced) = (failed.clone(), succeeded.clone(), raced.clone());
        mock!(aws_sdk_sfn::Client::describe_execution).then_compute_response(move |req| {
            use aws_smithy_mocks::MockResponse;
            let arn = req.execution_arn().unwrap();
            if arn == succeeded {
                MockResponse::Output(described(
                    arn,
                    ExecutionStatus::Succeeded,
                    ExecutionRedriveStatus::NotRedrivable,
                    Some("Execution is SUCCEEDED and cannot be redriven"),
                ))
            } else if arn == failed || arn == raced {
                MockResponse::Output(described(
                    arn,
                    ExecutionStatus::Failed,
                    ExecutionRedriveStatus::Redrivable,
                    None,
                ))
            } else {
                MockResponse::Error(DescribeExecutionError::ExecutionDoesNotExist({
                    let message = format!("Execution Does Not Exist: '{arn}'");
                    ExecutionDoesNotExist::builder()
                        .message(&message)
                        .meta(meta("ExecutionDoesNotExist", &message))
                        .build()
                }))
            }
        })
    };
    let redrive_ok = {
        let failed = failed.clone();
        mock!(aws_sdk_sfn::Client::redrive_execution)
            .match_requests(move |req| req.execution_arn() == Some(failed.as_str()))
            .then_output(|| {
                RedriveExecutionOutput::builder()
                    .redrive_date(DateTime::from_secs(NOW + 10))
                    .build()
                    .unwrap()
            })
    };
    let redrive_refused = {
        let raced = raced.clone();
        mock!(aws_sdk_sfn::Client::redrive_execution)
            .match_requests(move |req| req.execution_arn() == Some(raced.as_str()))
            .then_error(|| {
                RedriveExecutionError::ExecutionNotRedrivable({
                    let message = "Execution is RUNNING and cannot be redriven";
                    ExecutionNotRedrivable::builder()
                        .message(message)
                        .meta(meta("ExecutionNotRedrivable", message))
                        .build()
                })
            })
    };
    let sfn = mock_client!(
        aws_sdk_sfn,
        RuleMode::MatchAny,
        [&describe, &redrive_ok, &redrive_refused]
    );

    let arns = vec![
        failed.clone(),
        succeeded.clone(),
        raced.clone(),
        missing.clone(),
    ];
    let mut out = Vec::new();
    let summary = ferrotype_ops::redrive_executions(&sfn, &arns, &mut out)
        .await
        .unwrap();
    let out = text(out);
    assert_eq!(
        summary,
        RedriveSummary {
            redriven: 1,
            not_redrivable: 2,
            failed: 1
        }
    );
    assert!(!summary.is_success());
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(lines[0], format!("redriven        {failed}"));
    assert_eq!(
        lines[1],
        format!("not redrivable  {succeeded}: Execution is SUCCEEDED and cannot be redriven")
    );
    assert_eq!(
        lines[2],
        format!("not redrivable  {raced}: Execution is RUNNING and cannot be redriven")
    );
    assert!(
        lines[3].starts_with(&format!(
            "failed          {missing}: DescribeExecution: not found (ExecutionDoesNotExist)"
        )),
        "{out}"
    );
    assert_eq!(lines[4], "1 redriven, 2 not redrivable, 1 failed");
    assert_eq!(redrive_ok.num_calls(), 1);
    assert_eq!(redrive_refused.num_calls(), 1);
}

#[tokio::test]
async fn redrive_stops_at_access_denied_instead_of_repeating_it() {
    let denied = mock!(aws_sdk_sfn::Client::describe_execution)
        .then_error(|| DescribeExecutionError::generic(access_denied("states:DescribeExecution")));
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&denied]);
    let arns: Vec<String> = (0..3).map(|i| execution_arn(&format!("e{i}"))).collect();
    let mut out = Vec::new();
    let err = ferrotype_ops::redrive_executions(&sfn, &arns, &mut out)
        .await
        .unwrap_err();
    assert!(matches!(err, OpsError::AccessDenied { .. }));
    assert_eq!(denied.num_calls(), 1);
    let out = text(out);
    assert!(
        out.ends_with("0 redriven, 0 not redrivable, 1 failed, 2 not tried\n"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------------------------
// backfill

const CONFIG: &str = r#"{
  "outputs": { "variantsPrefix": "variants/", "manifestsPrefix": "manifests/" },
  "profiles": [
    { "name": "default", "prefix": "uploads/",
      "variants": [ { "name": "thumbnail", "width": 300, "height": 300, "fit": "cover", "format": "jpeg", "quality": 80 } ] },
    { "name": "avatars", "prefix": "uploads/avatars/",
      "variants": [ { "name": "small", "width": 64, "height": 64, "fit": "cover", "format": "webp", "quality": 75 } ] }
  ]
}"#;

fn config() -> Config {
    Config::from_json(CONFIG).unwrap()
}

fn object(key: &str, etag: &str) -> Object {
    Object::builder()
        .key(key)
        .size(48_213)
        .e_tag(format!("\"{etag}\""))
        .last_modified(DateTime::from_secs(NOW - 86_400))
        .build()
}

/// The input bucket as ListObjectsV2 returns it, in two pages.
fn bucket_listing() -> (aws_smithy_mocks::Rule, aws_smithy_mocks::Rule) {
    let first = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(|req| {
            req.bucket() == Some("ferrotype-input") && req.continuation_token().is_none()
        })
        .then_output(|| {
            ListObjectsV2Output::builder()
                .contents(object("uploads/", "d41d8cd98f00b204e9800998ecf8427e"))
                .contents(object(
                    "uploads/red flower.jpg",
                    "9b2cf535f27731c974343645a3985328",
                ))
                .contents(object(
                    "uploads/a+b.jpg",
                    "5d41402abc4b2a76b9719d911017c592",
                ))
                .is_truncated(true)
                .next_continuation_token("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
                .key_count(3)
                .build()
        });
    let second = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(|req| {
            req.continuation_token() == Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        })
        .then_output(|| {
            ListObjectsV2Output::builder()
                .contents(object(
                    "uploads/café/naïve 写真 (1).jpeg",
                    "7d793037a0760186574b0282f2f435e7-12",
                ))
                .contents(object(
                    "uploads/avatars/me.png",
                    "e2fc714c4727ee9395f324cd2e7f331f",
                ))
                .is_truncated(false)
                .key_count(2)
                .build()
        });
    (first, second)
}

fn request(dry_run: bool) -> BackfillRequest {
    BackfillRequest {
        bucket: "ferrotype-input".to_owned(),
        prefix: None,
        profile_name: Some("default".to_owned()),
        state_machine_arn: STATE_MACHINE.to_owned(),
        rate_per_second: 20,
        dry_run,
        reconcile_with: None,
    }
}

type Started = Arc<Mutex<Vec<(String, String)>>>;

/// StartExecution that records (name, input) and succeeds once per name, then answers
/// ExecutionAlreadyExists like Step Functions does for a reused name.
fn recording_start(started: &Started) -> aws_smithy_mocks::Rule {
    let started = started.clone();
    mock!(aws_sdk_sfn::Client::start_execution).then_compute_response(move |req| {
        use aws_smithy_mocks::MockResponse;
        let mut started = started.lock().unwrap();
        let name = req.name().unwrap().to_owned();
        if started.iter().any(|(seen, _)| *seen == name) {
            return MockResponse::Error(StartExecutionError::ExecutionAlreadyExists({
                let message = format!("Execution Already Exists: '{}'", execution_arn(&name));
                ExecutionAlreadyExists::builder()
                    .message(&message)
                    .meta(meta("ExecutionAlreadyExists", &message))
                    .build()
            }));
        }
        started.push((name.clone(), req.input().unwrap().to_owned()));
        MockResponse::Output(
            StartExecutionOutput::builder()
                .execution_arn(execution_arn(&name))
                .start_date(DateTime::from_secs(NOW))
                .build()
                .unwrap(),
        )
    })
}

#[tokio::test(start_paused = true)]
async fn backfill_starts_each_profile_object_once_with_the_rule_event_shape() {
    let (first, second) = bucket_listing();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&first, &second]);
    let started: Started = Arc::default();
    let start = recording_start(&started);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);

    let mut out = Vec::new();
    let summary = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request(false),
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(
        summary,
        BackfillSummary {
            listed: 5,
            started: 3,
            already_started: 0,
            skipped: 2,
            up_to_date: 0,
            failed: 0
        },
        "the folder marker and the avatars object (another profile) are skipped"
    );
    assert_eq!(
        text(out),
        "5 object(s) listed: 3 started, 0 already started, 2 skipped (no matching profile or a folder), 0 failed\n"
    );

    let mut started_keys = Vec::new();
    for (name, input) in started.lock().unwrap().iter() {
        assert!(
            name.len() <= 80
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{name}"
        );
        let event = ObjectEvent::created(serde_json::from_str(input).unwrap()).unwrap();
        assert_eq!(event.bucket(), "ferrotype-input");
        assert_eq!(event.resources, ["arn:aws:s3:::ferrotype-input"]);
        assert_eq!(
            (event.region.as_str(), event.account.as_str()),
            ("eu-west-1", "123456789012")
        );
        assert_eq!(event.time, "2026-11-17T11:06:40Z");
        assert_eq!(event.detail.reason.as_deref(), Some("PutObject"));
        assert_eq!(event.detail.object.size, Some(48_213));
        let etag = event.detail.object.etag.clone().unwrap();
        assert!(
            !etag.contains('"'),
            "EventBridge etags carry no quotes: {etag}"
        );
        let key = event.candidate_keys().remove(0);
        assert_eq!(*name, ferrotype_ops::execution_name(&key, &etag));
        started_keys.push(key);
    }
    started_keys.sort();
    assert_eq!(
        started_keys,
        [
            "uploads/a+b.jpg",
            "uploads/café/naïve 写真 (1).jpeg",
            "uploads/red flower.jpg"
        ]
    );

    // A second backfill of the same objects starts nothing new.
    let mut out = Vec::new();
    let again = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request(false),
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(
        again,
        BackfillSummary {
            listed: 5,
            started: 0,
            already_started: 3,
            skipped: 2,
            up_to_date: 0,
            failed: 0
        }
    );
    assert_eq!(started.lock().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn backfill_without_a_profile_name_takes_every_profile_and_an_explicit_prefix() {
    let (first, second) = bucket_listing();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&first, &second]);
    let started: Started = Arc::default();
    let start = recording_start(&started);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);
    let request = BackfillRequest {
        profile_name: None,
        prefix: Some("uploads/".to_owned()),
        ..request(false)
    };
    let mut out = Vec::new();
    let summary = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request,
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!((summary.started, summary.skipped), (4, 1));
}

#[tokio::test(start_paused = true)]
async fn backfill_dry_run_lists_and_starts_nothing() {
    let (first, second) = bucket_listing();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&first, &second]);
    let start = mock!(aws_sdk_sfn::Client::start_execution).then_output(|| {
        StartExecutionOutput::builder()
            .execution_arn("x")
            .start_date(DateTime::from_secs(NOW))
            .build()
            .unwrap()
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);
    let mut out = Vec::new();
    let summary = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request(true),
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(start.num_calls(), 0);
    assert_eq!(summary.started, 3);
    let out = text(out);
    let expected_name =
        ferrotype_ops::execution_name("uploads/red flower.jpg", "9b2cf535f27731c974343645a3985328");
    assert!(out.contains(&format!("would start {expected_name}  s3://ferrotype-input/uploads/red flower.jpg  (profile default)")), "{out}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("would start")).count(),
        3,
        "{out}"
    );
    assert!(out.ends_with("dry run: 5 object(s) listed, 3 would be started, 2 skipped (no matching profile or a folder)\n"), "{out}");
}

fn single_object_listing() -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_s3::Client::list_objects_v2).then_output(|| {
        ListObjectsV2Output::builder()
            .contents(object(
                "uploads/cat.jpg",
                "0cc175b9c0f1b6a831c399e269772661",
            ))
            .key_count(1)
            .build()
    })
}

#[tokio::test(start_paused = true)]
async fn backfill_retries_throttled_starts_with_backoff() {
    let listing = single_object_listing();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&listing]);
    let start = mock!(aws_sdk_sfn::Client::start_execution)
        .sequence()
        .error(|| StartExecutionError::generic(throttling()))
        .times(3)
        .output(|| {
            StartExecutionOutput::builder()
                .execution_arn(execution_arn("cat"))
                .start_date(DateTime::from_secs(NOW))
                .build()
                .unwrap()
        })
        .build();
    // The SDK's own retries are off here, so the retries counted are the backfill's.
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::Sequential, [&start], |c| c
        .retry_config(RetryConfig::disabled()));
    let mut out = Vec::new();
    let summary = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request(false),
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(summary.started, 1);
    assert_eq!(summary.failed, 0);
    assert_eq!(start.num_calls(), 4);
}

#[tokio::test(start_paused = true)]
async fn backfill_reports_an_object_still_throttled_after_every_retry_and_goes_on() {
    let listing = single_object_listing();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&listing]);
    let start = mock!(aws_sdk_sfn::Client::start_execution)
        .then_error(|| StartExecutionError::generic(throttling()));
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start], |c| c
        .retry_config(RetryConfig::disabled()));
    let mut out = Vec::new();
    let summary = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request(false),
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(summary.failed, 1);
    assert_eq!(start.num_calls(), START_ATTEMPTS as usize);
    let out = text(out);
    assert!(
        out.starts_with("failed uploads/cat.jpg: StartExecution: throttled by AWS after retries (ThrottlingException): Rate exceeded\n"),
        "{out}"
    );
}

#[tokio::test(start_paused = true)]
async fn backfill_stops_at_access_denied() {
    let (first, second) = bucket_listing();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&first, &second]);
    let start = mock!(aws_sdk_sfn::Client::start_execution)
        .then_error(|| StartExecutionError::generic(access_denied("states:StartExecution")));
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);
    let mut out = Vec::new();
    let err = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request(false),
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            OpsError::AccessDenied {
                operation: "StartExecution",
                ..
            }
        ),
        "{err:?}"
    );
    let out = text(out);
    assert!(
        out.lines()
            .any(|l| l.contains("StartExecution: access denied (AccessDeniedException)")),
        "{out}"
    );
    assert!(
        out.lines().last().unwrap().contains("started"),
        "a summary ends the output: {out}"
    );
}

#[tokio::test]
async fn backfill_reports_a_missing_bucket_and_an_unknown_profile() {
    let missing = mock!(aws_sdk_s3::Client::list_objects_v2).then_error(|| {
        ListObjectsV2Error::NoSuchBucket({
            let message = "The specified bucket does not exist";
            aws_sdk_s3::types::error::NoSuchBucket::builder()
                .message(message)
                .meta(meta("NoSuchBucket", message))
                .build()
        })
    });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&missing]);
    let sfn = mock_client!(
        aws_sdk_sfn,
        RuleMode::MatchAny,
        Vec::<&aws_smithy_mocks::Rule>::new()
    );
    let mut out = Vec::new();
    let err = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request(false),
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ListObjectsV2: not found (NoSuchBucket): The specified bucket does not exist"
    );

    let unknown = BackfillRequest {
        profile_name: Some("banners".to_owned()),
        ..request(false)
    };
    let err = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &unknown,
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no profile named \"banners\" in the configuration (profiles: default, avatars)"
    );
    assert_eq!(
        missing.num_calls(),
        1,
        "an unknown profile is refused before listing"
    );
}

// ---------------------------------------------------------------------------------------------
// the stack

#[tokio::test]
async fn the_stack_outputs_name_the_state_machine_and_the_input_bucket() {
    let stack = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(|req| req.stack_name() == Some("Ferrotype"))
        .then_output(|| {
            DescribeStacksOutput::builder()
                .stacks(
                    Stack::builder()
                        .stack_name("Ferrotype")
                        .stack_status(StackStatus::UpdateComplete)
                        .creation_time(DateTime::from_secs(NOW))
                        .outputs(
                            Output::builder()
                                .output_key("InputBucketName")
                                .output_value("ferrotype-input-1a2b")
                                .build(),
                        )
                        .outputs(
                            Output::builder()
                                .output_key("StateMachineArn")
                                .output_value(STATE_MACHINE)
                                .build(),
                        )
                        .outputs(
                            Output::builder()
                                .output_key("OutputBucketName")
                                .output_value("ferrotype-output-3c4d")
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let missing = mock!(aws_sdk_cloudformation::Client::describe_stacks)
        .match_requests(|req| req.stack_name() == Some("Nope"))
        .then_error(|| {
            DescribeStacksError::generic(meta(
                "ValidationError",
                "Stack with id Nope does not exist",
            ))
        });
    let cloudformation = mock_client!(
        aws_sdk_cloudformation,
        RuleMode::MatchAny,
        [&stack, &missing]
    );

    let pipeline = ferrotype_ops::resolve_pipeline(&cloudformation, Some("Ferrotype"), None, None)
        .await
        .unwrap();
    assert_eq!(pipeline.state_machine_arn().unwrap(), STATE_MACHINE);
    assert_eq!(pipeline.input_bucket().unwrap(), "ferrotype-input-1a2b");

    // Explicit values win, and need no stack call.
    let given = ferrotype_ops::resolve_pipeline(
        &cloudformation,
        Some("Ferrotype"),
        Some("arn:given"),
        Some("b"),
    )
    .await
    .unwrap();
    assert_eq!(
        (
            given.state_machine_arn().unwrap(),
            given.input_bucket().unwrap()
        ),
        ("arn:given", "b")
    );
    assert_eq!(stack.num_calls(), 1);

    let err = ferrotype_ops::resolve_pipeline(&cloudformation, Some("Nope"), None, None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "DescribeStacks: not found (ValidationError): Stack with id Nope does not exist"
    );

    let none = ferrotype_ops::resolve_pipeline(&cloudformation, None, None, None)
        .await
        .unwrap();
    assert_eq!(
        none.state_machine_arn().unwrap_err().to_string(),
        "no state machine: pass --state-machine ARN or --stack NAME"
    );
}

// ---------------------------------------------------------------------------------------------
// reconcile

/// A manifest of `key` with this status whose source had this ETag.
fn stored_manifest(key: &str, status: &str, etag: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "status": status, "bucket": "ferrotype-input", "key": key, "version": "0123456789abcdef",
        "source": { "bucket": "ferrotype-input", "key": key, "etag": format!("\"{etag}\""), "size": 48213,
                    "format": "jpeg", "width": 10, "height": 10, "orientation": 1,
                    "uprightWidth": 10, "uprightHeight": 10 },
        "variants": [], "executionId": "x", "startedAt": "2026-11-17T11:06:41Z",
        "recordedAt": "2026-11-17T11:06:45Z"
    }))
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn reconcile_starts_only_the_objects_whose_manifest_is_missing_or_stale() {
    use aws_sdk_s3::operation::get_object::{GetObjectError, GetObjectOutput};
    use aws_sdk_s3::primitives::ByteStream;
    let (first, second) = bucket_listing();
    let done = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|req| {
            req.bucket() == Some("ferrotype-output")
                && req.key() == Some("manifests/uploads/red flower.jpg.json")
        })
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from(stored_manifest(
                    "uploads/red flower.jpg",
                    "succeeded",
                    "9b2cf535f27731c974343645a3985328",
                )))
                .build()
        });
    let failed = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|req| req.key() == Some("manifests/uploads/a+b.jpg.json"))
        .then_output(|| {
            GetObjectOutput::builder()
                .body(ByteStream::from(stored_manifest(
                    "uploads/a+b.jpg",
                    "failed",
                    "5d41402abc4b2a76b9719d911017c592",
                )))
                .build()
        });
    let missing = mock!(aws_sdk_s3::Client::get_object)
        .match_requests(|req| req.key() == Some("manifests/uploads/café/naïve 写真 (1).jpeg.json"))
        .then_error(|| {
            GetObjectError::NoSuchKey(aws_sdk_s3::types::error::NoSuchKey::builder().build())
        });
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        [&first, &second, &done, &failed, &missing]
    );
    let started: Started = Arc::default();
    let start = recording_start(&started);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);
    let request = BackfillRequest {
        reconcile_with: Some("ferrotype-output".to_owned()),
        ..request(false)
    };
    let mut out = Vec::new();
    let summary = ferrotype_ops::backfill_per_object(
        &s3,
        &sfn,
        &config(),
        &request,
        &ProgressBar::hidden(),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(
        (summary.started, summary.up_to_date, summary.skipped),
        (2, 1, 2),
        "{}",
        text(out.clone())
    );
    assert_eq!(
        text(out),
        "5 object(s) listed: 2 started, 1 up to date, 0 already started, 2 skipped (no matching profile or a folder), 0 failed\n"
    );
    let mut keys: Vec<String> = started
        .lock()
        .unwrap()
        .iter()
        .map(|(_, input)| {
            ObjectEvent::created(serde_json::from_str(input).unwrap())
                .unwrap()
                .candidate_keys()
                .remove(0)
        })
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        ["uploads/a+b.jpg", "uploads/café/naïve 写真 (1).jpeg"]
    );
}
