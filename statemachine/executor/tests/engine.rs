//! Behaviour of the executor through its public API, in Simulated time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ferrotype_executor::*;
use serde_json::{json, Value};
use time::OffsetDateTime;

type Answer = Box<dyn Fn(&TaskCall, u32) -> Result<Value, TaskFailure> + Send + Sync>;

/// Answers from a closure; records every call and how many ran at once.
struct Scripted {
    answer: Answer,
    calls: Mutex<Vec<TaskCall>>,
    per_state: Mutex<HashMap<String, u32>>,
    running: AtomicUsize,
    max_running: AtomicUsize,
    delay: Option<std::time::Duration>,
}

impl Scripted {
    fn new(
        answer: impl Fn(&TaskCall, u32) -> Result<Value, TaskFailure> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self::build(answer, None))
    }
    fn build(
        answer: impl Fn(&TaskCall, u32) -> Result<Value, TaskFailure> + Send + Sync + 'static,
        delay: Option<std::time::Duration>,
    ) -> Self {
        Self {
            answer: Box::new(answer),
            calls: Mutex::new(Vec::new()),
            per_state: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(0),
            max_running: AtomicUsize::new(0),
            delay,
        }
    }
    fn calls(&self) -> Vec<TaskCall> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl TaskInvoker for Scripted {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let n = {
            let mut per = self.per_state.lock().unwrap();
            let n = per.entry(call.state_name.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        self.calls.lock().unwrap().push(call.clone());
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_running.fetch_max(now, Ordering::SeqCst);
        if let Some(d) = self.delay {
            tokio::time::sleep(d).await;
        }
        self.running.fetch_sub(1, Ordering::SeqCst);
        (self.answer)(&call, n)
    }
}

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:work";

fn start_time() -> OffsetDateTime {
    OffsetDateTime::parse(
        "2026-01-01T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

async fn run(definition: Value, invoker: Arc<dyn TaskInvoker>, input: Value) -> ExecutionRecord {
    let machine = StateMachine::from_value(&definition).expect("definition parses");
    let problems = validate(&machine);
    assert!(problems.is_empty(), "{problems:?}");
    let mut options = ExecutionOptions::local("test", "exec-1");
    options.start_time = Some(start_time());
    Executor::new(machine, invoker)
        .with_time_mode(TimeMode::Simulated)
        .start(options, input)
        .await
}

fn types(record: &ExecutionRecord) -> Vec<EventType> {
    record.history.iter().map(|e| e.event_type).collect()
}

fn task(extra: Value) -> Value {
    let mut t = json!({"Type": "Task", "Resource": FN, "End": true});
    t.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    t
}

#[tokio::test]
async fn a_lambda_task_records_aws_history_events_in_order() {
    let invoker = Scripted::new(|call, _| Ok(json!({"got": call.input.clone()})));
    let record = run(
        json!({"StartAt": "Work", "States": {"Work": task(json!({}))}}),
        invoker.clone(),
        json!({"k": 1}),
    )
    .await;
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    assert_eq!(record.output, Some(json!({"got": {"k": 1}})));
    use EventType::*;
    assert_eq!(
        types(&record),
        vec![
            ExecutionStarted,
            TaskStateEntered,
            LambdaFunctionScheduled,
            LambdaFunctionStarted,
            LambdaFunctionSucceeded,
            TaskStateExited,
            ExecutionSucceeded
        ]
    );
    for (i, e) in record.history.iter().enumerate() {
        assert_eq!(e.id, i as u64 + 1);
        assert_eq!(e.previous_event_id, i as u64);
    }
    let scheduled = record.history[2]
        .lambda_function_scheduled_event_details
        .as_ref()
        .unwrap();
    assert_eq!(scheduled.resource, FN);
    assert_eq!(scheduled.input.as_deref(), Some("{\"k\":1}"));
    let call = &invoker.calls()[0];
    assert_eq!(call.kind, TaskKind::LambdaFunction);
    assert_eq!(call.function_name.as_deref(), Some(FN));
    assert_eq!(call.context["State"]["Name"], "Work");
    assert_eq!(call.context["Execution"]["Name"], "exec-1");
    assert_eq!(
        call.context["Execution"]["StartTime"],
        "2026-01-01T00:00:00.000Z"
    );
    // The history serializes in the API's camelCase shape and reads back identically.
    let text = serde_json::to_string(&record.history).unwrap();
    assert!(
        text.contains("\"lambdaFunctionScheduledEventDetails\"")
            && text.contains("\"previousEventId\""),
        "{text}"
    );
    let back: Vec<HistoryEvent> = serde_json::from_str(&text).unwrap();
    assert_eq!(back, record.history);
}

#[tokio::test]
async fn lambda_invoke_integration_wraps_the_result_and_records_task_events() {
    let invoker = Scripted::new(|call, _| Ok(json!({"echo": call.input.clone()})));
    let definition = json!({"StartAt": "Invoke", "States": {"Invoke": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "my-fn", "Payload": {"x.$": "$.x"}},
        "ResultSelector": {"body.$": "$.Payload", "code.$": "$.StatusCode"}, "End": true}}});
    let record = run(definition, invoker.clone(), json!({"x": 7})).await;
    assert_eq!(
        record.output,
        Some(json!({"body": {"echo": {"x": 7}}, "code": 200}))
    );
    use EventType::*;
    assert_eq!(
        types(&record),
        vec![
            ExecutionStarted,
            TaskStateEntered,
            TaskScheduled,
            TaskStarted,
            TaskSucceeded,
            TaskStateExited,
            ExecutionSucceeded
        ]
    );
    let scheduled = record.history[2]
        .task_scheduled_event_details
        .as_ref()
        .unwrap();
    assert_eq!(
        (
            scheduled.resource_type.as_str(),
            scheduled.resource.as_str()
        ),
        ("lambda", "invoke")
    );
    assert_eq!(invoker.calls()[0].function_name.as_deref(), Some("my-fn"));
    assert_eq!(invoker.calls()[0].kind, TaskKind::LambdaInvoke);
}

#[tokio::test]
async fn retries_count_attempts_and_back_off_in_simulated_time() {
    let invoker = Scripted::new(|_, n| {
        if n < 3 {
            Err(TaskFailure::new("Lambda.ServiceException", "flaky"))
        } else {
            Ok(json!("ok"))
        }
    });
    let definition = json!({"StartAt": "Work", "States": {"Work": task(json!({
        "Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 3, "MaxDelaySeconds": 10}]
    }))}});
    let record = run(definition, invoker.clone(), json!({})).await;
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    let attempts: Vec<u32> = invoker.calls().iter().map(|c| c.attempt).collect();
    assert_eq!(attempts, vec![0, 1, 2, 3]);
    let retry_counts: Vec<Value> = invoker
        .calls()
        .iter()
        .map(|c| c.context["State"]["RetryCount"].clone())
        .collect();
    assert_eq!(retry_counts, vec![json!(0), json!(1), json!(2), json!(3)]);
    // Delays 2, 6, then 18 capped at 10.
    let elapsed = record.stop_date.unwrap() - start_time();
    assert_eq!(elapsed.whole_seconds(), 18);
    let failed = record
        .history
        .iter()
        .filter(|e| e.event_type == EventType::LambdaFunctionFailed)
        .count();
    assert_eq!(failed, 3);
}

#[tokio::test]
async fn retries_run_out_and_max_attempts_zero_never_retries() {
    let invoker = Scripted::new(|_, _| Err(TaskFailure::new("Boom", "always")));
    let definition = json!({"StartAt": "Work", "States": {"Work": task(json!({
        "Retry": [{"ErrorEquals": ["Boom"], "MaxAttempts": 0}, {"ErrorEquals": ["States.ALL"], "MaxAttempts": 2}]
    }))}});
    let record = run(definition, invoker.clone(), json!({})).await;
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_eq!(
        (record.error.as_deref(), record.cause.as_deref()),
        (Some("Boom"), Some("always"))
    );
    assert_eq!(
        invoker.calls().len(),
        1,
        "the first matching retrier has MaxAttempts 0"
    );
}

#[tokio::test]
async fn catch_routes_with_result_path_and_task_failed_skips_timeouts() {
    let invoker = Scripted::new(|_, _| Err(TaskFailure::new("Custom.Error", "bad input")));
    let definition = json!({"StartAt": "Work", "States": {
        "Work": task(json!({"Catch": [
            {"ErrorEquals": ["States.Timeout"], "Next": "Wrong"},
            {"ErrorEquals": ["States.TaskFailed"], "ResultPath": "$.failure", "Next": "Handle"}
        ]})),
        "Wrong": {"Type": "Fail", "Error": "Wrong"},
        "Handle": {"Type": "Pass", "End": true}
    }});
    let record = run(definition, invoker, json!({"key": "a.jpg"})).await;
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    assert_eq!(
        record.output,
        Some(json!({"key": "a.jpg", "failure": {"Error": "Custom.Error", "Cause": "bad input"}}))
    );
}

#[tokio::test]
async fn runtime_errors_are_not_caught_by_states_all() {
    let invoker = Scripted::new(|_, _| Ok(json!({})));
    let definition = json!({"StartAt": "Work", "States": {
        "Work": task(json!({"InputPath": "$.missing", "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle"}],
            "Retry": [{"ErrorEquals": ["States.ALL"]}]})),
        "Handle": {"Type": "Succeed"}
    }});
    let record = run(definition, invoker.clone(), json!({})).await;
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("States.Runtime"));
    assert!(invoker.calls().is_empty());
}

#[tokio::test]
async fn oversized_results_fail_with_data_limit_exceeded_even_with_states_all() {
    let invoker = Scripted::new(|_, _| Ok(json!("x".repeat(PAYLOAD_LIMIT_BYTES))));
    let definition = json!({"StartAt": "Work", "States": {
        "Work": task(json!({"Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handle"}]})),
        "Handle": {"Type": "Succeed"}
    }});
    let record = run(definition.clone(), invoker, json!({})).await;
    assert_eq!(record.error.as_deref(), Some("States.DataLimitExceeded"));
    // Exactly at the limit is fine: the JSON string with quotes is 2 bytes over, so shrink it.
    let invoker = Scripted::new(|_, _| Ok(json!("x".repeat(PAYLOAD_LIMIT_BYTES - 2))));
    let record = run(definition, invoker, json!({})).await;
    assert_eq!(record.status, ExecutionStatus::Succeeded);
}

#[tokio::test(start_paused = true)]
async fn task_timeouts_fail_with_states_timeout() {
    let invoker = Arc::new(Scripted::build(
        |_, _| Ok(json!("late")),
        Some(std::time::Duration::from_secs(30)),
    ));
    let definition = json!({"StartAt": "Work", "States": {
        "Work": task(json!({"TimeoutSeconds": 5, "Catch": [{"ErrorEquals": ["States.TaskFailed"], "Next": "No"}]})),
        "No": {"Type": "Succeed"}
    }});
    let record = run(definition, invoker, json!({})).await;
    assert_eq!(record.error.as_deref(), Some("States.Timeout"));
    assert!(types(&record).contains(&EventType::LambdaFunctionTimedOut));
}

fn map_definition(extra: Value) -> Value {
    let mut map = json!({
        "Type": "Map", "ItemsPath": "$.items", "End": true,
        "ItemSelector": {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "prefix.$": "$.prefix"},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "INLINE"}, "StartAt": "Work", "States": {"Work": task(json!({}))}}
    });
    map.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    json!({"StartAt": "Each", "States": {"Each": map}})
}

#[tokio::test(start_paused = true)]
async fn map_runs_iterations_concurrently_up_to_max_concurrency() {
    for (max, expected) in [(2, 2), (0, 40), (100, 40)] {
        let invoker = Arc::new(Scripted::build(
            |call, _| Ok(call.input["value"].clone()),
            Some(std::time::Duration::from_millis(10)),
        ));
        let items: Vec<u32> = (0..50).collect();
        let record = run(
            map_definition(json!({"MaxConcurrency": max})),
            invoker.clone(),
            json!({"items": items, "prefix": "p"}),
        )
        .await;
        assert_eq!(record.output, Some(json!(items)));
        assert_eq!(
            invoker.max_running.load(Ordering::SeqCst),
            expected,
            "MaxConcurrency {max}"
        );
        assert_eq!(
            invoker.calls()[0].input,
            json!({"value": 0, "index": 0, "prefix": "p"})
        );
    }
}

fn distributed(mut definition: Value) -> Value {
    definition["States"]["Each"]["ItemProcessor"]["ProcessorConfig"] =
        json!({"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"});
    definition
}

#[tokio::test]
async fn an_inline_map_ignores_tolerated_failures_as_aws_does() {
    let fails_on_one = |call: &TaskCall, _| {
        if call.input["value"] == json!(1) {
            Err(TaskFailure::new("Item.Bad", "one"))
        } else {
            Ok(call.input["value"].clone())
        }
    };
    let record = run(
        map_definition(json!({"ToleratedFailureCount": 5, "MaxConcurrency": 1})),
        Scripted::new(fails_on_one),
        json!({"items": [0, 1, 2], "prefix": ""}),
    )
    .await;
    assert_eq!(record.error.as_deref(), Some("Item.Bad"));
}

#[tokio::test]
async fn map_tolerates_failures_up_to_the_threshold() {
    let fails_on_odd = |call: &TaskCall, _| {
        if call.input["value"].as_u64().unwrap() % 5 == 1 {
            Err(TaskFailure::new("Item.Bad", "odd one"))
        } else {
            Ok(call.input["value"].clone())
        }
    };
    let items: Vec<u32> = (0..10).collect();
    let record = run(
        distributed(map_definition(
            json!({"ToleratedFailureCount": 2, "MaxConcurrency": 1}),
        )),
        Scripted::new(fails_on_odd),
        json!({"items": items, "prefix": ""}),
    )
    .await;
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    let output = record.output.unwrap();
    assert_eq!(output[1], json!({"Error": "Item.Bad", "Cause": "odd one"}));
    assert_eq!(output[2], json!(2));

    let record = run(
        distributed(map_definition(
            json!({"ToleratedFailurePercentage": 10, "MaxConcurrency": 1}),
        )),
        Scripted::new(fails_on_odd),
        json!({"items": items, "prefix": ""}),
    )
    .await;
    assert_eq!(
        record.error.as_deref(),
        Some("States.ExceedToleratedFailureThreshold")
    );

    let record = run(
        map_definition(json!({})),
        Scripted::new(fails_on_odd),
        json!({"items": items, "prefix": ""}),
    )
    .await;
    assert_eq!(
        record.error.as_deref(),
        Some("Item.Bad"),
        "without tolerance the iteration's error fails the Map"
    );
}

#[tokio::test]
async fn redrive_resumes_failed_iterations_only_and_across_a_serialized_record() {
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = broken.clone();
    let invoker = Scripted::new(move |call, _| {
        if call.input["value"] == json!(1) && flag.load(Ordering::SeqCst) {
            Err(TaskFailure::new("Render.Failed", "disk full"))
        } else {
            Ok(
                json!({"v": call.input["value"], "redrives": call.context["Execution"]["RedriveCount"]}),
            )
        }
    });
    let definition = map_definition(json!({"MaxConcurrency": 1}));
    let record = run(
        definition.clone(),
        invoker.clone(),
        json!({"items": [0, 1, 2], "prefix": ""}),
    )
    .await;
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_eq!(
        invoker.calls().len(),
        2,
        "with MaxConcurrency 1 the failure stops item 2 from starting"
    );

    // Persist and reload, as the local runner does between processes.
    let saved = serde_json::to_string(&record).unwrap();
    let loaded: ExecutionRecord = serde_json::from_str(&saved).unwrap();
    broken.store(false, Ordering::SeqCst);
    let machine = StateMachine::from_value(&definition).unwrap();
    let executor = Executor::new(machine, invoker.clone()).with_time_mode(TimeMode::Simulated);
    let redriven = executor.redrive(loaded).await.unwrap();
    assert_eq!(redriven.status, ExecutionStatus::Succeeded);
    assert_eq!(redriven.redrive_count, 1);
    let calls = invoker.calls();
    let rerun: Vec<Value> = calls[2..]
        .iter()
        .map(|c| c.input["value"].clone())
        .collect();
    assert_eq!(
        rerun,
        vec![json!(1), json!(2)],
        "the succeeded iteration 0 is not rerun"
    );
    assert_eq!(
        redriven.output,
        Some(json!([{"v": 0, "redrives": 0}, {"v": 1, "redrives": 1}, {"v": 2, "redrives": 1}]))
    );
    assert!(redriven
        .history
        .iter()
        .any(|e| e.event_type == EventType::ExecutionRedriven));
    assert_eq!(
        redriven
            .history
            .iter()
            .filter(|e| e.event_type == EventType::ExecutionStarted)
            .count(),
        1
    );
    assert_eq!(
        redriven.history.last().unwrap().event_type,
        EventType::ExecutionSucceeded
    );
    assert!(
        executor.redrive(redriven).await.is_err(),
        "a succeeded execution cannot be redriven"
    );
}

#[tokio::test]
async fn redrive_does_not_rerun_succeeded_states_before_the_failure() {
    let calls_to_b = Arc::new(AtomicUsize::new(0));
    let counter = calls_to_b.clone();
    let invoker = Scripted::new(move |call, _| match call.state_name.as_str() {
        "B" if counter.fetch_add(1, Ordering::SeqCst) == 0 => {
            Err(TaskFailure::new("Once", "first time"))
        }
        _ => Ok(json!({"from": call.state_name})),
    });
    let definition = json!({"StartAt": "A", "States": {
        "A": task(json!({"End": null, "Next": "B", "ResultPath": "$.a"})),
        "B": task(json!({"ResultPath": "$.b"}))
    }});
    let mut definition = definition;
    definition["States"]["A"]
        .as_object_mut()
        .unwrap()
        .remove("End");
    let record = run(definition.clone(), invoker.clone(), json!({})).await;
    assert_eq!(record.checkpoint.as_ref().unwrap().state, "B");
    let executor = Executor::new(
        StateMachine::from_value(&definition).unwrap(),
        invoker.clone(),
    )
    .with_time_mode(TimeMode::Simulated);
    let redriven = executor.redrive(record).await.unwrap();
    assert_eq!(
        redriven.output,
        Some(json!({"a": {"from": "A"}, "b": {"from": "B"}}))
    );
    let states: Vec<String> = invoker
        .calls()
        .iter()
        .map(|c| c.state_name.clone())
        .collect();
    assert_eq!(states, vec!["A", "B", "B"]);
}

#[tokio::test]
async fn pass_choice_parallel_wait_and_fail_states_follow_aws_semantics() {
    let invoker = Scripted::new(|_, _| Ok(json!(null)));
    let definition = json!({"StartAt": "Shape", "States": {
        "Shape": {"Type": "Pass", "Parameters": {"size.$": "$.size", "name.$": "States.Format('img-{}', $.id)"}, "ResultPath": "$.shaped", "Next": "Pick"},
        "Pick": {"Type": "Choice", "Choices": [
            {"Variable": "$.shaped.size", "NumericGreaterThan": 100, "Next": "Both"}
        ], "Default": "TooSmall"},
        "TooSmall": {"Type": "Fail", "ErrorPath": "$.shaped.name", "Cause": "too small"},
        "Both": {"Type": "Parallel", "Branches": [
            {"StartAt": "One", "States": {"One": {"Type": "Pass", "Result": 1, "End": true}}},
            {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "SecondsPath": "$.size", "OutputPath": "$.id", "End": true}}}
        ], "ResultPath": "$.both", "OutputPath": "$.both", "Next": "Done"},
        "Done": {"Type": "Succeed"}
    }});
    let record = run(
        definition.clone(),
        invoker.clone(),
        json!({"size": 120, "id": "x"}),
    )
    .await;
    assert_eq!(record.output, Some(json!([1, "x"])));
    assert_eq!(
        (record.stop_date.unwrap() - start_time()).whole_seconds(),
        120,
        "the Wait advanced simulated time"
    );
    let record = run(definition, invoker, json!({"size": 5, "id": "y"})).await;
    assert_eq!(
        (record.error.as_deref(), record.cause.as_deref()),
        (Some("img-y"), Some("too small"))
    );
    let table = render_table(&record.history);
    assert!(
        table.contains("TooSmall") && table.contains("FAILED") && table.contains("img-y"),
        "{table}"
    );
}

#[tokio::test]
async fn execution_timeout_times_out_the_execution() {
    let invoker = Scripted::new(|_, _| Ok(json!(null)));
    let definition = json!({"TimeoutSeconds": 10, "StartAt": "Nap", "States": {
        "Nap": {"Type": "Wait", "Seconds": 60, "Next": "After"},
        "After": {"Type": "Succeed"}
    }});
    let record = run(definition, invoker, json!({})).await;
    assert_eq!(record.status, ExecutionStatus::TimedOut);
    assert_eq!(record.error.as_deref(), Some("States.Timeout"));
    assert_eq!(
        record.history.last().unwrap().event_type,
        EventType::ExecutionTimedOut
    );
}

#[tokio::test]
async fn no_choice_matched_is_catchable_only_as_an_error_of_the_execution() {
    let definition = json!({"StartAt": "Pick", "States": {
        "Pick": {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": "x", "Next": "Done"}]},
        "Done": {"Type": "Succeed"}
    }});
    let record = run(
        definition,
        Scripted::new(|_, _| Ok(json!(null))),
        json!({"a": "y"}),
    )
    .await;
    assert_eq!(record.error.as_deref(), Some("States.NoChoiceMatched"));
}

#[tokio::test]
async fn mock_config_answers_by_invocation_number_including_retries() {
    let config = MockConfig::from_json(
        &json!({
            "StateMachines": {"test": {"TestCases": {"Flaky": {"Work": "FailTwiceThenOk"}, "Missing": {}}}},
            "MockedResponses": {"FailTwiceThenOk": {
                "0-1": {"Throw": {"Error": "Lambda.ServiceException", "Cause": "try again"}},
                "2": {"Return": {"StatusCode": 200, "Payload": {"ok": true}}}
            }}
        })
        .to_string(),
    )
    .unwrap();
    let definition = json!({"StartAt": "Work", "States": {"Work": task(json!({"Retry": [{"ErrorEquals": ["Lambda.ServiceException"], "MaxAttempts": 3}]}))}});
    let invoker = Arc::new(config.invoker("test", "Flaky").unwrap());
    let record = run(definition.clone(), invoker.clone(), json!({})).await;
    assert_eq!(
        record.output,
        Some(json!({"ok": true})),
        "plain-ARN Lambda results are the unwrapped Payload"
    );
    assert_eq!(invoker.invocation_counts()["Work"], 3);

    let missing = Arc::new(config.invoker("test", "Missing").unwrap());
    assert_eq!(
        missing.unmocked_tasks(&StateMachine::from_value(&definition).unwrap()),
        vec!["Work".to_string()]
    );
    let record = run(definition, missing, json!({})).await;
    assert_eq!(record.error.as_deref(), Some("States.Runtime"));
    assert!(record.cause.unwrap().contains("no mocked response"));
    assert!(config
        .invoker("test", "Nope")
        .unwrap_err()
        .to_string()
        .contains("Flaky"));
}

#[test]
fn validate_reports_every_problem_with_its_state() {
    let machine = StateMachine::from_value(&json!({"StartAt": "A", "States": {
        "A": {"Type": "Task", "Resource": FN, "Next": "Nowhere",
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "B"}, {"ErrorEquals": ["X"], "Next": "B"}],
              "Parameters": {"k.$": "States.Nope()"}, "ResultPath": "$.a[*]"},
        "B": {"Type": "Pass", "Next": "A"},
        "Lonely": {"Type": "Succeed"},
        "M": {"Type": "Map", "End": true, "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": {"Type": "Pass", "Next": "Gone"}}}}
    }}))
    .unwrap();
    let problems: Vec<String> = validate(&machine).iter().map(ToString::to_string).collect();
    let has = |needle: &str| problems.iter().any(|p| p.contains(needle));
    assert!(
        has("state \"A\": transition to \"Nowhere\""),
        "{problems:#?}"
    );
    assert!(has("States.ALL must be the last"), "{problems:#?}");
    assert!(has("unknown function"), "{problems:#?}");
    assert!(has("ResultPath"), "{problems:#?}");
    assert!(has("state \"Lonely\": unreachable"), "{problems:#?}");
    assert!(
        has("state \"M\" > ItemProcessor > state \"Inner\": transition to \"Gone\""),
        "{problems:#?}"
    );
}

#[test]
fn parsing_errors_name_the_state() {
    let err = StateMachine::from_value(
        &json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B", "End": true}}}),
    )
    .unwrap_err();
    assert!(err.to_string().contains("state \"A\""), "{err}");
    let err = StateMachine::from_value(
        &json!({"StartAt": "A", "States": {"A": {"Type": "Pass", "Resource": "x", "End": true}}}),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("\"Resource\" is not allowed"),
        "{err}"
    );
    let err = StateMachine::from_json("{").unwrap_err();
    assert!(matches!(err, DefinitionError::Json(_)));
}

#[test]
fn substitutions_fill_placeholders_and_reject_unknown_ones() {
    let mut values = std::collections::BTreeMap::new();
    values.insert("ValidateArn".to_string(), FN.to_string());
    let text = substitute(r#"{"Resource": "${ValidateArn}"}"#, &values).unwrap();
    assert_eq!(text, format!(r#"{{"Resource": "{FN}"}}"#));
    assert!(substitute(r#"{"Resource": "${Other}"}"#, &values)
        .unwrap_err()
        .to_string()
        .contains("${Other}"));
}

#[tokio::test]
async fn the_table_view_shows_retries_and_map_iterations() {
    let invoker = Scripted::new(|call, n| {
        if call.input["value"] == json!(1) && n < 2 {
            Err(TaskFailure::new("Flaky", "again"))
        } else {
            Ok(json!(1))
        }
    });
    let mut definition = map_definition(json!({"MaxConcurrency": 1}));
    definition["States"]["Each"]["ItemProcessor"]["States"]["Work"]["Retry"] =
        json!([{"ErrorEquals": ["Flaky"]}]);
    let record = run(definition, invoker, json!({"items": [0, 1], "prefix": ""})).await;
    let table = render_table(&record.history);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("STATE"), "{table}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("Each ") && l.contains("Map") && l.contains("SUCCEEDED")),
        "{table}"
    );
    let retried = lines.iter().find(|l| l.contains("Work [1]")).expect(&table);
    assert!(
        retried.contains("SUCCEEDED") && retried.contains("Flaky"),
        "{table}"
    );
    assert!(table.ends_with("Execution SUCCEEDED\n"), "{table}");
}

#[tokio::test]
async fn redrive_reruns_only_the_failed_parallel_branch() {
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = broken.clone();
    let invoker = Scripted::new(move |call, _| {
        if call.state_name == "Right" && flag.load(Ordering::SeqCst) {
            Err(TaskFailure::new("Right.Broken", "not yet"))
        } else {
            Ok(json!(call.state_name))
        }
    });
    let definition = json!({"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "Left", "States": {"Left": task(json!({}))}},
        {"StartAt": "Right", "States": {"Right": task(json!({}))}}
    ]}}});
    let record = run(definition.clone(), invoker.clone(), json!({})).await;
    assert_eq!(record.error.as_deref(), Some("Right.Broken"));
    broken.store(false, Ordering::SeqCst);
    let executor = Executor::new(
        StateMachine::from_value(&definition).unwrap(),
        invoker.clone(),
    )
    .with_time_mode(TimeMode::Simulated);
    let redriven = executor.redrive(record).await.unwrap();
    assert_eq!(redriven.output, Some(json!(["Left", "Right"])));
    let states: Vec<String> = invoker
        .calls()
        .iter()
        .map(|c| c.state_name.clone())
        .collect();
    assert_eq!(
        states.iter().filter(|s| *s == "Left").count(),
        1,
        "the succeeded branch is not rerun: {states:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn real_time_mode_really_waits() {
    let definition =
        json!({"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 30, "End": true}}});
    let machine = StateMachine::from_value(&definition).unwrap();
    let executor = Executor::new(machine, Scripted::new(|_, _| Ok(json!(null))));
    let before = tokio::time::Instant::now();
    let record = executor
        .start(ExecutionOptions::local("test", "real"), json!({"a": 1}))
        .await;
    assert_eq!(record.output, Some(json!({"a": 1})));
    assert!(tokio::time::Instant::now() - before >= std::time::Duration::from_secs(30));
}

#[tokio::test]
async fn the_data_limit_applies_to_a_maps_whole_collected_output() {
    let invoker = Scripted::new(|_, _| Ok(json!("x".repeat(100_000))));
    let record = run(
        map_definition(json!({})),
        invoker,
        json!({"items": [1, 2, 3], "prefix": ""}),
    )
    .await;
    assert_eq!(record.error.as_deref(), Some("States.DataLimitExceeded"));
    assert!(types(&record).contains(&EventType::MapStateFailed));
    assert_eq!(
        types(&record)
            .iter()
            .filter(|t| **t == EventType::MapIterationSucceeded)
            .count(),
        3,
        "each item alone is within the limit"
    );
}

#[test]
fn mock_configs_with_bad_invocation_keys_are_rejected() {
    let config = |responses: Value| {
        MockConfig::from_json(
            &json!({"StateMachines": {}, "MockedResponses": {"R": responses}}).to_string(),
        )
    };
    assert!(config(json!({"0-1": {"Return": 1}, "1": {"Return": 2}}))
        .unwrap_err()
        .to_string()
        .contains("overlap"));
    assert!(config(json!({"first": {"Return": 1}}))
        .unwrap_err()
        .to_string()
        .contains("invocation number"));
    assert!(config(json!({"0": {"Return": 1, "Throw": {"Error": "E"}}})).is_err());
    assert!(config(json!({"0": {"Throw": {"Cause": "no error name"}}})).is_err());
    assert!(
        config(json!({"0": {"Return": 1}, "1-3": {"Throw": {"Error": "E", "Cause": "c"}}})).is_ok()
    );
}

/// Item 0 fails after a second; item 1 would take a minute; the rest wait for a free slot.
struct SlowSecond {
    fixed: std::sync::atomic::AtomicBool,
    calls: Mutex<Vec<Value>>,
}

#[async_trait::async_trait]
impl TaskInvoker for SlowSecond {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let value = call.input["value"].clone();
        self.calls.lock().unwrap().push(value.clone());
        if self.fixed.load(Ordering::SeqCst) {
            return Ok(value);
        }
        match value.as_u64() {
            Some(0) => {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                Err(TaskFailure::new("Item.Bad", "zero"))
            }
            _ => {
                tokio::time::sleep(std::time::Duration::from_secs(60)).await;
                Ok(value)
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_failed_map_aborts_running_iterations_and_never_starts_the_rest() {
    let invoker = Arc::new(SlowSecond {
        fixed: false.into(),
        calls: Mutex::new(Vec::new()),
    });
    let definition = map_definition(json!({"MaxConcurrency": 2}));
    let record = run(
        definition.clone(),
        invoker.clone(),
        json!({"items": [0, 1, 2, 3], "prefix": ""}),
    )
    .await;
    assert_eq!(record.error.as_deref(), Some("Item.Bad"));
    assert_eq!(*invoker.calls.lock().unwrap(), vec![json!(0), json!(1)]);
    let aborted: Vec<usize> = record
        .history
        .iter()
        .filter_map(|e| {
            e.map_iteration_aborted_event_details
                .as_ref()
                .map(|d| d.index)
        })
        .collect();
    assert_eq!(aborted, vec![1]);

    invoker.fixed.store(true, Ordering::SeqCst);
    let executor = Executor::new(
        StateMachine::from_value(&definition).unwrap(),
        invoker.clone(),
    )
    .with_time_mode(TimeMode::Simulated);
    let redriven = executor.redrive(record).await.unwrap();
    assert_eq!(redriven.output, Some(json!([0, 1, 2, 3])));
    assert_eq!(
        invoker.calls.lock().unwrap().len(),
        6,
        "the failed, the aborted and the never-started iterations run"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_parallel_branch_aborts_its_siblings() {
    let invoker = Scripted::new(|call, _| {
        if call.state_name == "Fast" {
            Err(TaskFailure::new("Fast.Failed", "boom"))
        } else {
            Ok(json!(1))
        }
    });
    let definition = json!({"StartAt": "Both", "States": {"Both": {"Type": "Parallel", "End": true, "Branches": [
        {"StartAt": "Nap", "States": {"Nap": {"Type": "Wait", "Seconds": 60, "Next": "After"}, "After": task(json!({}))}},
        {"StartAt": "Fast", "States": {"Fast": task(json!({}))}}
    ]}}});
    let machine = StateMachine::from_value(&definition).unwrap();
    // Real time (paused clock): the Wait really waits, so the failing branch finishes first.
    let record = Executor::new(machine, invoker.clone())
        .start(ExecutionOptions::local("test", "p"), json!({}))
        .await;
    assert_eq!(record.error.as_deref(), Some("Fast.Failed"));
    let states: Vec<String> = invoker
        .calls()
        .iter()
        .map(|c| c.state_name.clone())
        .collect();
    assert_eq!(
        states,
        vec!["Fast"],
        "the waiting branch was aborted before its Task"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_seconds_path_reads_the_state_input() {
    let invoker = Arc::new(Scripted::build(
        |_, _| Ok(json!("late")),
        Some(std::time::Duration::from_secs(30)),
    ));
    let definition = json!({"StartAt": "Work", "States": {"Work": task(json!({"TimeoutSecondsPath": "$.limit", "Parameters": {"x": 1}}))}});
    let record = run(definition.clone(), invoker.clone(), json!({"limit": 5})).await;
    assert_eq!(record.error.as_deref(), Some("States.Timeout"));
    let record = run(definition, invoker, json!({"limit": 60})).await;
    assert_eq!(record.output, Some(json!("late")));
}

#[tokio::test]
async fn an_execution_fails_when_its_history_reaches_25000_events() {
    // 5 × 1000 iterations of 6 events each: past the limit.
    let inner = json!({"Type": "Map", "End": true, "ItemsPath": "$.items",
        "ItemProcessor": {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "B"}, "B": {"Type": "Pass", "End": true}}}});
    let definition = json!({"StartAt": "Outer", "States": {"Outer": {"Type": "Map", "End": true, "MaxConcurrency": 1,
        "ItemSelector": {"items.$": "States.ArrayRange(1, 1000, 1)"},
        "ItemProcessor": {"StartAt": "Inner", "States": {"Inner": inner}}}}});
    let record = run(
        definition,
        Scripted::new(|_, _| Ok(json!(null))),
        json!([1, 2, 3, 4, 5]),
    )
    .await;
    assert_eq!(record.error.as_deref(), Some("States.Runtime"));
    assert!(record.cause.unwrap().contains("25000"));
    assert!(
        record.history.len() < HISTORY_EVENT_LIMIT + 100,
        "{}",
        record.history.len()
    );
}

#[tokio::test]
async fn mocked_delays_meet_heartbeat_seconds_and_sync_integrations_wait_for_their_result() {
    let definition = json!({"StartAt": "Child", "States": {
        "Child": {"Type": "Task", "Resource": "arn:aws:states:::states:startExecution.sync:2",
            "Parameters": {"StateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:child", "Input": {"n": 1}},
            "ResultSelector": {"out.$": "$.Output"}, "Next": "Callback"},
        "Callback": {"Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {"MessageBody": {"token.$": "$$.Task.Token"}}, "HeartbeatSeconds": 10,
            "Retry": [{"ErrorEquals": ["States.HeartbeatTimeout"], "MaxAttempts": 1, "IntervalSeconds": 1}], "End": true}
    }});
    let config = json!({
        "StateMachines": {"m": {"TestCases": {"Slow": {"Child": "ChildDone", "Callback": "SilentThenAnswers"}}}},
        "MockedResponses": {
            "ChildDone": {"0": {"Return": {"Status": "SUCCEEDED", "Output": {"sum": 3}}, "DelaySeconds": 30}},
            "SilentThenAnswers": {"0": {"Return": {"late": true}, "DelaySeconds": 60}, "1": {"Return": {"approved": true}, "DelaySeconds": 5}}
        }
    });
    let invoker = Arc::new(
        MockConfig::from_json(&config.to_string())
            .unwrap()
            .invoker("m", "Slow")
            .unwrap(),
    );
    let record = run(definition, invoker, json!({})).await;
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{}",
        record.history_table()
    );
    assert_eq!(record.output, Some(json!({"approved": true})));
    let timed_out: Vec<&HistoryEvent> = record
        .history
        .iter()
        .filter(|e| e.event_type == EventType::TaskTimedOut)
        .collect();
    assert_eq!(timed_out.len(), 1);
    assert_eq!(
        timed_out[0]
            .task_timed_out_event_details
            .as_ref()
            .unwrap()
            .error
            .as_deref(),
        Some("States.HeartbeatTimeout")
    );
    // 30 s for the child, 10 s until the missed heartbeat, 1 s retry interval, 5 s for the answer.
    assert_eq!(
        record.stop_date.unwrap() - start_time(),
        time::Duration::seconds(46)
    );
    let submitted = record
        .history
        .iter()
        .filter(|e| e.event_type == EventType::TaskSubmitted)
        .count();
    assert_eq!(
        submitted, 3,
        "every .sync and .waitForTaskToken attempt is submitted"
    );
}
