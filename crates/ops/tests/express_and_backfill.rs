//! The Express side of `ferrotype aws` (executions from CloudWatch Logs, rerun) and the backfill on the
//! Distributed Map machine, against CloudWatch Logs, Step Functions and S3 mocked at the SDK boundary
//! (aws-smithy-mocks), with responses shaped like the real ones.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use aws_sdk_cloudwatchlogs::operation::filter_log_events::FilterLogEventsOutput;
use aws_sdk_cloudwatchlogs::types::FilteredLogEvent;
use aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output;
use aws_sdk_s3::types::Object;
use aws_sdk_sfn::operation::describe_state_machine::DescribeStateMachineOutput;
use aws_sdk_sfn::operation::start_execution::{StartExecutionError, StartExecutionOutput};
use aws_sdk_sfn::types::error::ExecutionAlreadyExists;
use aws_sdk_sfn::types::{
    CloudWatchLogsLogGroup, ExecutionStatus, LogDestination, LogLevel, LoggingConfiguration,
    StateMachineType,
};
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use aws_smithy_types::DateTime;
use ferrotype_core::config::Config;
use ferrotype_ops::{DistributedBackfill, ListFilter, OpsError, RerunSummary, WorkflowType};

const MACHINE: &str = "arn:aws:states:eu-west-1:123456789012:stateMachine:FerrotypePipeline";
const BACKFILL: &str = "arn:aws:states:eu-west-1:123456789012:stateMachine:FerrotypeBackfill";
const LOG_GROUP: &str = "/aws/vendedlogs/states/Ferrotype-pipeline";
const NOW: i64 = 1_795_000_000; // 2026-11-18T11:06:40Z

fn express_arn(name: &str) -> String {
    format!(
        "arn:aws:states:eu-west-1:123456789012:express:FerrotypePipeline:{name}:0f6e3c2a-{name}"
    )
}

fn text(out: Vec<u8>) -> String {
    String::from_utf8(out).unwrap()
}

fn meta(code: &str, message: &str) -> ErrorMetadata {
    ErrorMetadata::builder().code(code).message(message).build()
}

fn window(seconds_back: i64) -> ListFilter {
    ListFilter {
        status: None,
        started_after: Some(time::OffsetDateTime::from_unix_timestamp(NOW - seconds_back).unwrap()),
        limit: 1000,
    }
}

/// One log event as Step Functions writes it for an Express execution (ids and timestamps as strings).
fn log_line(
    arn: &str,
    id: u64,
    event_type: &str,
    second: i64,
    details: serde_json::Value,
) -> FilteredLogEvent {
    let message = serde_json::json!({
        "id": id.to_string(),
        "type": event_type,
        "details": details,
        "previous_event_id": (id - 1).to_string(),
        "event_timestamp": ((NOW + second) * 1000).to_string(),
        "execution_arn": arn,
    });
    FilteredLogEvent::builder()
        .log_stream_name("states/FerrotypePipeline/2026-11-18/0f6e3c2a")
        .timestamp((NOW + second) * 1000)
        .message(message.to_string())
        .build()
}

fn started(arn: &str, second: i64, input: Option<&str>) -> FilteredLogEvent {
    let details = match input {
        Some(input) => {
            serde_json::json!({"input": input, "inputDetails": {"truncated": false}, "roleArn": "arn:aws:iam::123456789012:role/sfn"})
        }
        None => serde_json::json!({"roleArn": "arn:aws:iam::123456789012:role/sfn"}),
    };
    log_line(arn, 1, "ExecutionStarted", second, details)
}

fn ended(arn: &str, event_type: &str, second: i64) -> FilteredLogEvent {
    let details = if event_type == "ExecutionSucceeded" {
        serde_json::json!({"output": "{\"status\":\"succeeded\"}"})
    } else {
        serde_json::json!({"error": "Lambda.Unknown", "cause": "Runtime exited: signal: killed"})
    };
    log_line(arn, 40, event_type, second, details)
}

/// The (filter pattern, start time) of each FilterLogEvents request.
type SeenRequests = Arc<Mutex<Vec<(String, Option<i64>)>>>;

/// FilterLogEvents answering the listing pattern with these events over two pages, and recording the
/// requests' patterns and start times.
fn listing_logs(events: Vec<FilteredLogEvent>, seen: SeenRequests) -> aws_smithy_mocks::Rule {
    let half = events.len() / 2;
    let (first, second) = (events[..half].to_vec(), events[half..].to_vec());
    mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events).then_compute_response(move |req| {
        seen.lock().unwrap().push((
            req.filter_pattern().unwrap_or_default().to_owned(),
            req.start_time(),
        ));
        assert_eq!(req.log_group_name(), Some(LOG_GROUP));
        let page = match req.next_token() {
            None => FilterLogEventsOutput::builder()
                .set_events(Some(first.clone()))
                .next_token("p2")
                .build(),
            Some("p2") => FilterLogEventsOutput::builder()
                .set_events(Some(second.clone()))
                .build(),
            Some(other) => panic!("unexpected token {other}"),
        };
        MockResponse::Output(page)
    })
}

/// The window's executions: one succeeded, one failed, one timed out, one still running, one started
/// before the window (its end is in it), and a line that is no Step Functions event.
fn window_events() -> Vec<FilteredLogEvent> {
    let old = express_arn("old");
    vec![
        started(
            &express_arn("ok"),
            -500,
            Some(r#"{"detail":{"object":{"key":"uploads/ok.jpg"}}}"#),
        ),
        started(
            &express_arn("bad"),
            -400,
            Some(r#"{"detail":{"object":{"key":"uploads/bad.jpg"}}}"#),
        ),
        ended(&express_arn("ok"), "ExecutionSucceeded", -498),
        started(
            &express_arn("slow"),
            -350,
            Some(r#"{"detail":{"object":{"key":"uploads/slow.jpg"}}}"#),
        ),
        FilteredLogEvent::builder()
            .message("not json")
            .timestamp(NOW * 1000)
            .build(),
        ended(&express_arn("bad"), "ExecutionFailed", -395),
        ended(&express_arn("slow"), "ExecutionTimedOut", -50),
        started(&express_arn("running"), -10, Some("{}")),
        ended(&old, "ExecutionFailed", -100),
    ]
}

#[tokio::test]
async fn express_executions_are_listed_from_their_start_and_end_log_events() {
    let seen = Arc::default();
    let logs_rule = listing_logs(window_events(), Arc::clone(&seen));
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&logs_rule]);

    let (executions, truncated) =
        ferrotype_ops::express::list_executions(&logs, LOG_GROUP, &window(3600))
            .await
            .unwrap();
    let listed: Vec<(&str, &str)> = executions
        .iter()
        .map(|e| (e.name.as_str(), e.status.as_str()))
        .collect();
    // Newest first; "old" started before the window, so only its end is seen: not listed.
    assert_eq!(
        listed,
        [
            ("running", "RUNNING"),
            ("slow", "TIMED_OUT"),
            ("bad", "FAILED"),
            ("ok", "SUCCEEDED")
        ]
    );
    assert!(!truncated);
    let bad = &executions[2];
    assert_eq!(bad.execution_arn, express_arn("bad"));
    assert_eq!(bad.start.unix_timestamp(), NOW - 400);
    assert_eq!((bad.stop.unwrap() - bad.start).whole_seconds(), 5);

    let requests = seen.lock().unwrap().clone();
    assert_eq!(requests.len(), 2, "both pages read");
    let (pattern, start) = &requests[0];
    assert_eq!(
        *start,
        Some((NOW - 3600) * 1000),
        "the window goes to CloudWatch"
    );
    for event_type in [
        "ExecutionStarted",
        "ExecutionSucceeded",
        "ExecutionFailed",
        "ExecutionTimedOut",
        "ExecutionAborted",
    ] {
        assert!(
            pattern.contains(&format!("($.type = \"{event_type}\")")),
            "{pattern}"
        );
    }

    let mut out = Vec::new();
    ferrotype_ops::write_execution_list(&mut out, &executions, truncated).unwrap();
    let out = text(out);
    assert!(out.contains("TIMED_OUT") && out.contains("5m00s"), "{out}");
    assert!(out.ends_with("4 execution(s)\n"), "{out}");

    // A status filter and a limit.
    let failed = ListFilter {
        status: Some(ExecutionStatus::Failed),
        ..window(3600)
    };
    let (executions, _) = ferrotype_ops::express::list_executions(&logs, LOG_GROUP, &failed)
        .await
        .unwrap();
    assert_eq!(
        executions
            .iter()
            .map(|e| e.name.as_str())
            .collect::<Vec<_>>(),
        ["bad"]
    );
    let limited = ListFilter {
        limit: 1,
        ..window(3600)
    };
    let (executions, truncated) =
        ferrotype_ops::express::list_executions(&logs, LOG_GROUP, &limited)
            .await
            .unwrap();
    assert_eq!((executions.len(), truncated), (1, true));
}

#[tokio::test]
async fn an_express_execution_is_shown_from_its_log_events_with_the_executor_viewer() {
    let arn = express_arn("cat");
    let other = express_arn("dog");
    let events = vec![
        started(&arn, 0, Some(r#"{"detail":{}}"#)),
        log_line(
            &arn,
            2,
            "TaskStateEntered",
            0,
            serde_json::json!({"name": "Validate", "input": "{\"detail\":{}}"}),
        ),
        log_line(
            &arn,
            3,
            "LambdaFunctionScheduled",
            0,
            serde_json::json!({"resource": "arn:aws:lambda:eu-west-1:123456789012:function:validate", "input": "{}", "timeoutInSeconds": 120}),
        ),
        log_line(&arn, 4, "LambdaFunctionStarted", 0, serde_json::json!({})),
        log_line(
            &arn,
            6,
            "TaskStateExited",
            1,
            serde_json::json!({"name": "Validate", "output": "{}"}),
        ),
        // Out of order and repeated, as FilterLogEvents may interleave streams.
        log_line(
            &arn,
            5,
            "LambdaFunctionSucceeded",
            1,
            serde_json::json!({"output": "{}"}),
        ),
        log_line(
            &arn,
            5,
            "LambdaFunctionSucceeded",
            1,
            serde_json::json!({"output": "{}"}),
        ),
        // A pattern match on another ARN that shares a prefix is not this execution's.
        log_line(
            &other,
            2,
            "TaskStateEntered",
            0,
            serde_json::json!({"name": "Validate", "input": "{}"}),
        ),
        ended(&arn, "ExecutionFailed", 4),
    ];
    let wanted = arn.clone();
    let rule = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .match_requests(move |req| {
            req.filter_pattern() == Some(&format!("{{ $.execution_arn = \"{wanted}\" }}"))
        })
        .then_output(move || {
            FilterLogEventsOutput::builder()
                .set_events(Some(events.clone()))
                .build()
        });
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&rule]);

    let history = ferrotype_ops::express::history(&logs, LOG_GROUP, &arn)
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|e| e.id).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5, 6, 40]
    );
    let mut out = Vec::new();
    ferrotype_ops::executions::show_express_execution(&logs, LOG_GROUP, &arn, &mut out)
        .await
        .unwrap();
    let out = text(out);
    assert_eq!(
        out,
        format!("{arn}\n{}", ferrotype_executor::render_table(&history))
    );
    let validate = out.lines().find(|l| l.starts_with("Validate")).expect(&out);
    assert!(validate.contains("SUCCEEDED"), "{validate}");
    assert!(
        out.lines().last().unwrap().contains("Lambda.Unknown"),
        "{out}"
    );
}

#[tokio::test]
async fn an_execution_with_no_log_events_is_one_not_found_line() {
    let rule = mock!(aws_sdk_cloudwatchlogs::Client::filter_log_events)
        .then_output(|| FilterLogEventsOutput::builder().build());
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&rule]);
    let err = ferrotype_ops::express::history(&logs, LOG_GROUP, &express_arn("gone"))
        .await
        .unwrap_err();
    assert!(matches!(err, OpsError::NotFound { .. }), "{err:?}");
    assert!(!err.to_string().contains('\n'));
    assert!(err.to_string().contains("log retention"), "{err}");
}

fn described(kind: StateMachineType, log_group_arn: Option<&str>) -> DescribeStateMachineOutput {
    let mut builder = DescribeStateMachineOutput::builder()
        .state_machine_arn(MACHINE)
        .name("FerrotypePipeline")
        .definition("{}")
        .role_arn("arn:aws:iam::123456789012:role/sfn")
        .r#type(kind)
        .creation_date(DateTime::from_secs(NOW));
    if let Some(arn) = log_group_arn {
        builder = builder.logging_configuration(
            LoggingConfiguration::builder()
                .level(LogLevel::All)
                .include_execution_data(true)
                .destinations(
                    LogDestination::builder()
                        .cloud_watch_logs_log_group(
                            CloudWatchLogsLogGroup::builder().log_group_arn(arn).build(),
                        )
                        .build(),
                )
                .build(),
        );
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn the_machine_says_whether_it_is_express_and_where_it_logs() {
    let express = mock!(aws_sdk_sfn::Client::describe_state_machine).then_output(|| {
        described(
            StateMachineType::Express,
            Some("arn:aws:logs:eu-west-1:123456789012:log-group:/aws/vendedlogs/states/Ferrotype-pipeline:*"),
        )
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&express]);
    let machine = ferrotype_ops::machine::describe(&sfn, MACHINE)
        .await
        .unwrap();
    assert_eq!(machine.workflow, WorkflowType::Express);
    assert_eq!(machine.express_log_group().unwrap(), LOG_GROUP);

    let silent = mock!(aws_sdk_sfn::Client::describe_state_machine)
        .then_output(|| described(StateMachineType::Express, None));
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&silent]);
    let machine = ferrotype_ops::machine::describe(&sfn, MACHINE)
        .await
        .unwrap();
    let err = machine.express_log_group().unwrap_err().to_string();
    assert!(err.contains("without logging"), "{err}");

    let standard = mock!(aws_sdk_sfn::Client::describe_state_machine)
        .then_output(|| described(StateMachineType::Standard, None));
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&standard]);
    assert_eq!(
        ferrotype_ops::machine::describe(&sfn, MACHINE)
            .await
            .unwrap()
            .workflow,
        WorkflowType::Standard
    );
}

type Started = Arc<Mutex<Vec<(String, String, String)>>>;

/// StartExecution that records (machine, name, input), succeeding once per name and answering
/// ExecutionAlreadyExists after, as Step Functions does for a name it has seen.
fn recording_start(started: &Started) -> aws_smithy_mocks::Rule {
    let started = started.clone();
    mock!(aws_sdk_sfn::Client::start_execution).then_compute_response(move |req| {
        let mut started = started.lock().unwrap();
        let name = req.name().unwrap().to_owned();
        if started.iter().any(|(_, seen, _)| *seen == name) {
            return MockResponse::Error(StartExecutionError::ExecutionAlreadyExists({
                let message = format!("Execution Already Exists: '{name}'");
                ExecutionAlreadyExists::builder()
                    .message(&message)
                    .meta(meta("ExecutionAlreadyExists", &message))
                    .build()
            }));
        }
        started.push((
            req.state_machine_arn().unwrap().to_owned(),
            name.clone(),
            req.input().unwrap().to_owned(),
        ));
        MockResponse::Output(
            StartExecutionOutput::builder()
                .execution_arn(format!(
                    "arn:aws:states:eu-west-1:123456789012:execution:X:{name}"
                ))
                .start_date(DateTime::from_secs(NOW))
                .build()
                .unwrap(),
        )
    })
}

#[tokio::test]
async fn rerun_all_failed_starts_failed_and_timed_out_executions_again_with_their_input_once() {
    let mut events = window_events();
    // A failure whose input was not logged (logging without execution data) cannot be rerun.
    events.push(started(&express_arn("blind"), -300, None));
    events.push(ended(&express_arn("blind"), "ExecutionFailed", -299));
    let seen = Arc::default();
    let logs_rule = listing_logs(events.clone(), seen);
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&logs_rule]);
    let started_calls: Started = Arc::default();
    let start = recording_start(&started_calls);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);

    let (candidates, names) =
        ferrotype_ops::rerun::failed_in_window(&logs, LOG_GROUP, &window(3600))
            .await
            .unwrap();
    assert_eq!(
        candidates
            .iter()
            .map(|c| (
                ferrotype_ops::express::execution_name(&c.execution_arn),
                c.status.as_str()
            ))
            .collect::<Vec<_>>(),
        [
            ("blind", "FAILED"),
            ("slow", "TIMED_OUT"),
            ("bad", "FAILED")
        ]
    );
    let mut out = Vec::new();
    let summary = ferrotype_ops::rerun(&sfn, MACHINE, &candidates, &names, false, &mut out)
        .await
        .unwrap();
    assert_eq!(
        summary,
        RerunSummary {
            rerun: 2,
            already_rerun: 0,
            failed: 1
        }
    );
    let out = text(out);
    assert!(
        out.contains(&format!("no input        {}", express_arn("blind"))),
        "{out}"
    );
    assert!(
        out.ends_with("2 rerun, 0 already rerun, 1 failed\n"),
        "{out}"
    );
    let calls = started_calls.lock().unwrap().clone();
    assert_eq!(
        calls,
        [
            (
                MACHINE.to_owned(),
                ferrotype_ops::rerun_name(&express_arn("slow")),
                r#"{"detail":{"object":{"key":"uploads/slow.jpg"}}}"#.to_owned()
            ),
            (
                MACHINE.to_owned(),
                ferrotype_ops::rerun_name(&express_arn("bad")),
                r#"{"detail":{"object":{"key":"uploads/bad.jpg"}}}"#.to_owned()
            ),
        ]
    );

    // The reruns show up in the log; a second `rerun --all-failed` finds them by name and starts nothing.
    let rerun_arn = |name: &str| {
        format!(
            "arn:aws:states:eu-west-1:123456789012:express:FerrotypePipeline:{}:1a2b",
            ferrotype_ops::rerun_name(&express_arn(name))
        )
    };
    events.push(started(&rerun_arn("slow"), -20, Some("{}")));
    events.push(started(&rerun_arn("bad"), -20, Some("{}")));
    events.push(ended(&rerun_arn("bad"), "ExecutionSucceeded", -15));
    let logs_rule = listing_logs(events, Arc::default());
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&logs_rule]);
    let (candidates, names) =
        ferrotype_ops::rerun::failed_in_window(&logs, LOG_GROUP, &window(3600))
            .await
            .unwrap();
    let mut out = Vec::new();
    let summary = ferrotype_ops::rerun(&sfn, MACHINE, &candidates, &names, false, &mut out)
        .await
        .unwrap();
    assert_eq!(
        (summary.rerun, summary.already_rerun),
        (0, 2),
        "{}",
        text(out)
    );
    assert_eq!(started_calls.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn rerun_dry_run_starts_nothing_and_a_succeeded_execution_is_not_rerun() {
    let logs_rule = listing_logs(window_events(), Arc::default());
    let logs = mock_client!(aws_sdk_cloudwatchlogs, RuleMode::MatchAny, [&logs_rule]);
    let start = mock!(aws_sdk_sfn::Client::start_execution).then_output(|| {
        StartExecutionOutput::builder()
            .execution_arn("x")
            .start_date(DateTime::from_secs(NOW))
            .build()
            .unwrap()
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);
    let (candidates, names) =
        ferrotype_ops::rerun::failed_in_window(&logs, LOG_GROUP, &window(3600))
            .await
            .unwrap();
    let mut out = Vec::new();
    let summary = ferrotype_ops::rerun(&sfn, MACHINE, &candidates, &names, true, &mut out)
        .await
        .unwrap();
    assert_eq!(summary.rerun, 2);
    assert_eq!(start.num_calls(), 0);
    assert!(text(out).ends_with("2 would be rerun, 0 already rerun, 0 failed\n"));

    // Named explicitly, a succeeded execution is refused.
    let ok = ferrotype_ops::rerun::RerunCandidate {
        execution_arn: express_arn("ok"),
        status: "SUCCEEDED".into(),
        input: Some("{}".into()),
    };
    let mut out = Vec::new();
    let summary = ferrotype_ops::rerun(&sfn, MACHINE, &[ok], &HashSet::new(), false, &mut out)
        .await
        .unwrap();
    assert!(!summary.is_success());
    assert!(text(out).contains("it is SUCCEEDED"));
    assert_eq!(start.num_calls(), 0);
}

fn config() -> Config {
    let mut value: serde_json::Value =
        serde_json::from_str(include_str!("../../../ferrotype.json")).unwrap();
    let mut avatars = value["profiles"][0].clone();
    avatars["name"] = "avatars".into();
    avatars["prefix"] = "avatars/".into();
    value["profiles"].as_array_mut().unwrap().push(avatars);
    Config::from_json(&value.to_string()).unwrap()
}

fn distributed(prefixes: &[&str], dry_run: bool) -> DistributedBackfill {
    DistributedBackfill {
        backfill_state_machine_arn: BACKFILL.to_owned(),
        bucket: "ferrotype-input".to_owned(),
        prefixes: prefixes.iter().map(|p| (*p).to_owned()).collect(),
        max_concurrency: None,
        inventory_manifest: None,
        dry_run,
    }
}

#[tokio::test]
async fn backfill_starts_the_backfill_machine_once_per_prefix_with_its_input() {
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        Vec::<&aws_smithy_mocks::Rule>::new()
    );
    let started: Started = Arc::default();
    let start = recording_start(&started);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);
    let prefixes = ferrotype_ops::backfill::listing_prefixes(&config(), None, None).unwrap();
    assert_eq!(prefixes, ["uploads/", "avatars/"]);
    let request = DistributedBackfill {
        max_concurrency: Some(12),
        ..distributed(&["uploads/", "avatars/"], false)
    };
    let mut out = Vec::new();
    let arns = ferrotype_ops::start_backfill(&s3, &sfn, &request, &mut out)
        .await
        .unwrap();
    let calls = started.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    for ((machine, name, input), prefix) in calls.iter().zip(["uploads/", "avatars/"]) {
        assert_eq!(machine, BACKFILL);
        assert!(name.starts_with("backfill-") && name.len() <= 80, "{name}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
            "{name}"
        );
        let input: serde_json::Value = serde_json::from_str(input).unwrap();
        assert_eq!(
            input,
            serde_json::json!({"bucket": "ferrotype-input", "prefix": prefix, "maxConcurrency": 12})
        );
    }
    assert_eq!(
        arns[0],
        format!(
            "arn:aws:states:eu-west-1:123456789012:execution:FerrotypeBackfill:{}",
            calls[0].1
        )
    );
    let out = text(out);
    assert!(out.contains("https://eu-west-1.console.aws.amazon.com/states/home?region=eu-west-1#/v2/executions/details/"), "{out}");
    assert!(out.contains("backfills/"), "{out}");
}

#[tokio::test]
async fn backfill_from_an_inventory_starts_once_and_says_so() {
    let s3 = mock_client!(
        aws_sdk_s3,
        RuleMode::MatchAny,
        Vec::<&aws_smithy_mocks::Rule>::new()
    );
    let started: Started = Arc::default();
    let start = recording_start(&started);
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);
    let request = DistributedBackfill {
        inventory_manifest: Some((
            "inventory".to_owned(),
            "ferrotype-input/daily/2026-11-18T01-00Z/manifest.json".to_owned(),
        )),
        ..distributed(&["uploads/", "avatars/"], false)
    };
    let mut out = Vec::new();
    ferrotype_ops::start_backfill(&s3, &sfn, &request, &mut out)
        .await
        .unwrap();
    let calls = started.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    let input: serde_json::Value = serde_json::from_str(&calls[0].2).unwrap();
    assert_eq!(
        input["inventoryManifest"],
        serde_json::json!({"bucket": "inventory", "key": "ferrotype-input/daily/2026-11-18T01-00Z/manifest.json"})
    );
    assert!(text(out).contains("the inventory s3://inventory/"));
}

#[tokio::test]
async fn backfill_dry_run_counts_the_objects_and_starts_nothing() {
    let listing = mock!(aws_sdk_s3::Client::list_objects_v2)
        .match_requests(|req| req.prefix() == Some("uploads/2024/"))
        .then_compute_response(|req| {
            let object = |key: &str| Object::builder().key(key).size(1).build();
            MockResponse::Output(match req.continuation_token() {
                None => ListObjectsV2Output::builder()
                    .contents(object("uploads/2024/"))
                    .contents(object("uploads/2024/a.jpg"))
                    .next_continuation_token("n")
                    .is_truncated(true)
                    .build(),
                Some(_) => ListObjectsV2Output::builder()
                    .contents(object("uploads/2024/b.jpg"))
                    .contents(object("uploads/2024/c d.jpg"))
                    .build(),
            })
        });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&listing]);
    let start = mock!(aws_sdk_sfn::Client::start_execution).then_output(|| {
        StartExecutionOutput::builder()
            .execution_arn("x")
            .start_date(DateTime::from_secs(NOW))
            .build()
            .unwrap()
    });
    let sfn = mock_client!(aws_sdk_sfn, RuleMode::MatchAny, [&start]);
    let prefixes =
        ferrotype_ops::backfill::listing_prefixes(&config(), Some("uploads/2024/"), None).unwrap();
    let mut out = Vec::new();
    let started = ferrotype_ops::start_backfill(
        &s3,
        &sfn,
        &distributed(
            &prefixes.iter().map(String::as_str).collect::<Vec<_>>(),
            true,
        ),
        &mut out,
    )
    .await
    .unwrap();
    assert!(started.is_empty());
    assert_eq!(start.num_calls(), 0);
    let out = text(out);
    assert!(out.starts_with(&format!("would start {BACKFILL} for s3://ferrotype-input/uploads/2024/: 3 object(s), 1 batch(es) of ten")), "{out}");
}

#[test]
fn a_backfill_lists_only_inside_profile_prefixes() {
    let config = config();
    assert_eq!(
        ferrotype_ops::backfill::listing_prefixes(&config, None, Some("avatars")).unwrap(),
        ["avatars/"]
    );
    assert_eq!(
        ferrotype_ops::backfill::listing_prefixes(&config, Some("avatars/2024/"), None).unwrap(),
        ["avatars/2024/"]
    );
    for (prefix, profile) in [
        (Some(""), None),
        (Some("up"), None),
        (Some("other/"), None),
        (Some("uploads/x"), Some("avatars")),
    ] {
        let err = ferrotype_ops::backfill::listing_prefixes(&config, prefix, profile)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not inside a profile prefix"),
            "{prefix:?}: {err}"
        );
    }
    let err = ferrotype_ops::backfill::listing_prefixes(&config, None, Some("banners"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("no profile named \"banners\""), "{err}");
}
