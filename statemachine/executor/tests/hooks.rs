//! What the local runner and the simulations build on: seeded runs, the observer, interrupted
//! executions resumed by redrive, and time limits enforced while a state runs.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ferrotype_executor::*;
use serde_json::{json, Value};
use time::OffsetDateTime;

const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:work";

fn start_time() -> OffsetDateTime {
    OffsetDateTime::parse(
        "2026-01-01T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap()
}

fn options(name: &str) -> ExecutionOptions {
    let mut options = ExecutionOptions::local("hooks", name);
    options.start_time = Some(start_time());
    options
}

fn machine(definition: Value) -> StateMachine {
    let machine = StateMachine::from_value(&definition).expect("definition parses");
    assert!(validate(&machine).is_empty(), "{:?}", validate(&machine));
    machine
}

type Answer = Box<dyn Fn(&TaskCall, u32) -> Option<Result<Value, TaskFailure>> + Send + Sync>;

/// Answers by closure; `None` means the call never returns (a process killed mid-task).
struct Scripted {
    answer: Answer,
    calls: Mutex<Vec<TaskCall>>,
    per_state: Mutex<HashMap<String, u32>>,
}

impl Scripted {
    fn new(
        answer: impl Fn(&TaskCall, u32) -> Option<Result<Value, TaskFailure>> + Send + Sync + 'static,
    ) -> Arc<Self> {
        Arc::new(Self {
            answer: Box::new(answer),
            calls: Mutex::new(Vec::new()),
            per_state: Mutex::new(HashMap::new()),
        })
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
        match (self.answer)(&call, n) {
            Some(answer) => answer,
            None => std::future::pending().await,
        }
    }
}

/// Keeps every record the executor reports.
#[derive(Default)]
struct Journal(Mutex<Vec<ExecutionRecord>>);

impl ExecutionObserver for Journal {
    fn record_changed(&self, record: &ExecutionRecord) {
        self.0.lock().unwrap().push(record.clone());
    }
}

impl Journal {
    fn last(&self) -> ExecutionRecord {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("at least one record")
    }
    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

fn random_machine() -> StateMachine {
    machine(json!({"StartAt": "Ids", "States": {
        "Ids": {"Type": "Pass", "Parameters": {"a.$": "States.UUID()", "r.$": "States.MathRandom(0, 1000000)"}, "Next": "More"},
        "More": {"Type": "Pass", "QueryLanguage": "JSONata", "Output": {"ids": "{% $states.input %}", "u": "{% $uuid() %}", "x": "{% $random() %}"}, "Next": "Work"},
        "Work": {"Type": "Task", "Resource": FN, "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 2, "MaxAttempts": 3, "JitterStrategy": "FULL"}], "End": true}
    }}))
}

fn flaky() -> Arc<Scripted> {
    Scripted::new(|call, n| {
        Some(if n < 2 {
            Err(TaskFailure::new("Flaky", "again"))
        } else {
            Ok(call.input.clone())
        })
    })
}

#[tokio::test(start_paused = true)]
async fn one_seed_reproduces_a_whole_run_on_a_paused_clock() {
    let run = |seed: u64| async move {
        Executor::new(random_machine(), flaky())
            .with_seed(seed)
            .start(options("seeded"), json!({}))
            .await
    };
    let (first, again, other) = (run(7).await, run(7).await, run(8).await);
    assert_eq!(first.status, ExecutionStatus::Succeeded);
    assert_eq!(
        serde_json::to_string(&first).unwrap(),
        serde_json::to_string(&again).unwrap(),
        "same seed, same record: ids, random numbers, jitter and every timestamp"
    );
    assert_ne!(first.output, other.output);
    // Full jitter: the retries waited less than the 2 s and 4 s without it, and time is tokio's.
    let stop = first.stop_date.unwrap();
    assert!(stop - start_time() < time::Duration::seconds(6), "{stop}");
}

#[tokio::test]
async fn the_observer_sees_every_change_with_a_checkpoint_while_running() {
    let journal = Arc::new(Journal::default());
    let record = Executor::new(random_machine(), flaky())
        .with_time_mode(TimeMode::Simulated)
        .with_observer(journal.clone())
        .start(options("observed"), json!({}))
        .await;
    assert_eq!(
        journal.len(),
        record.history.len() + 1,
        "one report per event, and the final record"
    );
    assert_eq!(journal.last(), record);
    let running = journal.0.lock().unwrap()[3].clone();
    assert_eq!(running.status, ExecutionStatus::Running);
    assert_eq!(running.history.len(), 4);
    assert!(running.checkpoint.is_some());
}

fn pipeline_like() -> StateMachine {
    machine(json!({"StartAt": "Prepare", "States": {
        "Prepare": {"Type": "Task", "Resource": FN, "ResultPath": "$.prepared", "Assign": {"who.$": "$states.input.name"}, "Next": "Each"},
        "Each": {"Type": "Map", "ItemsPath": "$.items", "MaxConcurrency": 1,
            "ItemSelector": {"n.$": "$$.Map.Item.Value", "who.$": "$who"},
            "ItemProcessor": {"StartAt": "Render", "States": {"Render": {"Type": "Task", "Resource": FN, "End": true}}},
            "ResultPath": "$.rendered", "Next": "Record"},
        "Record": {"Type": "Task", "Resource": FN, "End": true}
    }}))
}

#[tokio::test]
async fn an_interrupted_execution_is_aborted_then_redriven_from_where_it_stopped() {
    // The process "dies" while item 2 renders: that call never returns.
    let first = Scripted::new(|call, _| match call.state_name.as_str() {
        "Prepare" => Some(Ok(json!("ok"))),
        "Render" if call.input["n"] == json!(2) => None,
        _ => Some(Ok(call.input.clone())),
    });
    let journal = Arc::new(Journal::default());
    let executor = Executor::new(pipeline_like(), first.clone())
        .with_time_mode(TimeMode::Simulated)
        .with_observer(journal.clone());
    let running = executor.start(
        options("interrupted"),
        json!({"name": "ann", "items": [0, 1, 2, 3]}),
    );
    let outcome = tokio::time::timeout(std::time::Duration::from_millis(200), running).await;
    assert!(
        outcome.is_err(),
        "the run hangs on item 2 until it is dropped"
    );
    let mut on_disk: ExecutionRecord =
        serde_json::from_str(&serde_json::to_string(&journal.last()).unwrap()).unwrap();
    assert_eq!(on_disk.status, ExecutionStatus::Running);

    let at = start_time() + time::Duration::minutes(5);
    assert!(on_disk.mark_interrupted(at));
    assert!(
        !on_disk.mark_interrupted(at),
        "only a RUNNING record is interrupted"
    );
    assert_eq!(on_disk.status, ExecutionStatus::Aborted);
    let aborted = on_disk.history.last().unwrap();
    assert_eq!(aborted.event_type, EventType::ExecutionAborted);
    assert!(on_disk.history_table().contains("ABORTED"));

    let second = Scripted::new(|call, _| Some(Ok(call.input.clone())));
    let redriven = Executor::new(pipeline_like(), second.clone())
        .with_time_mode(TimeMode::Simulated)
        .redrive(on_disk)
        .await
        .unwrap();
    assert_eq!(
        redriven.status,
        ExecutionStatus::Succeeded,
        "{}",
        redriven.history_table()
    );
    assert_eq!(redriven.redrive_count, 1);
    let rerun: Vec<(String, Value)> = second
        .calls()
        .iter()
        .map(|c| {
            (
                c.state_name.clone(),
                c.input.get("n").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    assert_eq!(
        rerun,
        vec![
            ("Render".into(), json!(2)),
            ("Render".into(), json!(3)),
            ("Record".into(), Value::Null)
        ],
        "Prepare and items 0 and 1 had succeeded: not rerun"
    );
    let output = redriven.output.unwrap();
    assert_eq!(
        output["rendered"],
        json!([{"n": 0, "who": "ann"}, {"n": 1, "who": "ann"}, {"n": 2, "who": "ann"}, {"n": 3, "who": "ann"}])
    );
    assert_eq!(first.calls().len(), 4, "Prepare, items 0, 1 and the hung 2");
}

#[tokio::test]
async fn the_execution_timeout_stops_a_state_that_is_still_running() {
    let definition = json!({"TimeoutSeconds": 1, "StartAt": "Long", "States": {"Long": {"Type": "Wait", "Seconds": 3, "End": true}}});
    let record = Executor::new(machine(definition.clone()), Scripted::new(|_, _| None))
        .with_time_mode(TimeMode::Simulated)
        .start(options("timeout"), json!({}))
        .await;
    assert_eq!(record.status, ExecutionStatus::TimedOut);
    assert_eq!(record.error.as_deref(), Some("States.Timeout"));
    assert_eq!(
        record.stop_date,
        Some(start_time() + time::Duration::seconds(1))
    );
    assert_eq!(
        record.history.last().unwrap().event_type,
        EventType::ExecutionTimedOut
    );
    assert_eq!(record.checkpoint.as_ref().unwrap().state, "Long");
}

#[tokio::test(start_paused = true)]
async fn the_execution_timeout_stops_a_task_in_real_time_on_a_paused_clock() {
    let definition = json!({"TimeoutSeconds": 2, "StartAt": "Hang", "States": {"Hang": {"Type": "Task", "Resource": FN, "End": true}}});
    let record = Executor::new(machine(definition), Scripted::new(|_, _| None))
        .start(options("timeout-real"), json!({}))
        .await;
    assert_eq!(record.status, ExecutionStatus::TimedOut);
    assert_eq!(
        record.stop_date,
        Some(start_time() + time::Duration::seconds(2))
    );
}

/// A task that takes `seconds` (on the task clock), beating every `beat` seconds if given.
struct Slow {
    seconds: f64,
    beat: Option<f64>,
    tokens: Mutex<Vec<Option<String>>>,
}

#[async_trait::async_trait]
impl TaskInvoker for Slow {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        self.tokens.lock().unwrap().push(call.task_token.clone());
        let mut left = self.seconds;
        while left > 0.0 {
            let step = self.beat.unwrap_or(left).min(left);
            call.clock.sleep(step).await;
            left -= step;
            if self.beat.is_some() {
                call.clock.heartbeat();
            }
        }
        Ok(json!({"token": call.input["token"]}))
    }
}

#[tokio::test]
async fn heartbeats_keep_a_callback_task_alive_and_their_absence_times_it_out() {
    let definition = json!({"StartAt": "Approve", "States": {"Approve": {
        "Type": "Task", "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
        "Parameters": {"token.$": "$$.Task.Token"}, "HeartbeatSeconds": 5, "TimeoutSeconds": 60, "End": true}}});
    let run = |beat: Option<f64>| {
        let definition = definition.clone();
        async move {
            let slow = Arc::new(Slow {
                seconds: 12.0,
                beat,
                tokens: Mutex::new(Vec::new()),
            });
            let record = Executor::new(machine(definition), slow.clone())
                .with_time_mode(TimeMode::Simulated)
                .start(options("callback"), json!({}))
                .await;
            (record, slow)
        }
    };
    let (record, slow) = run(Some(3.0)).await;
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{}",
        record.history_table()
    );
    let token = slow.tokens.lock().unwrap()[0].clone().expect("a token");
    assert_eq!(
        record.output,
        Some(json!({"token": token})),
        "the task got $$.Task.Token"
    );
    assert!(record
        .history
        .iter()
        .any(|e| e.event_type == EventType::TaskSubmitted));

    let (record, _) = run(None).await;
    assert_eq!(record.error.as_deref(), Some("States.HeartbeatTimeout"));
    let timed_out = record
        .history
        .iter()
        .find(|e| e.event_type == EventType::TaskTimedOut)
        .unwrap();
    assert_eq!(
        timed_out.timestamp,
        start_time() + time::Duration::seconds(5)
    );
}
