//! The deployed definition (statemachine/pipeline.asl.json) parses, validates and runs here.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ferrotype_executor::*;
use serde_json::{json, Value};

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:ferrotype-";

fn pipeline() -> StateMachine {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../pipeline.asl.json"))
            .expect("pipeline.asl.json exists");
    let mut values = BTreeMap::new();
    for (placeholder, function) in [
        ("ValidateFunctionArn", "validate"),
        ("DetectFacesFunctionArn", "detect-faces"),
        ("RenderVariantFunctionArn", "render-variant"),
        ("RecordResultFunctionArn", "record-result"),
    ] {
        values.insert(placeholder.to_string(), format!("{ARN}{function}"));
    }
    // As a Standard workflow: failures stay uncaught, for redrive.
    values.insert(
        "UncaughtErrors".to_string(),
        "Ferrotype.LeftForRedrive".to_string(),
    );
    StateMachine::from_json(&substitute(&text, &values).expect("every placeholder has a value"))
        .expect("the pipeline parses")
}

type Answer = Box<dyn Fn(&str, &Value) -> Result<Value, TaskFailure> + Send + Sync>;

/// Answers each function by name; records which functions ran with what input.
struct Functions {
    answer: Answer,
    calls: Mutex<Vec<(String, Value)>>,
}

#[async_trait::async_trait]
impl TaskInvoker for Functions {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let function = call
            .function_name
            .as_deref()
            .and_then(|f| f.strip_prefix(ARN))
            .expect("a plain Lambda ARN")
            .to_string();
        self.calls
            .lock()
            .unwrap()
            .push((function.clone(), call.input.clone()));
        (self.answer)(&function, &call.input)
    }
}

fn image(detect_faces: bool) -> Value {
    json!({"source": {"bucket": "in", "key": "a.jpg", "versionId": "v1"}, "profile": "web", "version": "0123456789abcdef",
           "variants": ["small", "large"], "smartCrop": detect_faces, "detectFaces": detect_faces, "maxConcurrency": 2,
           "workingCopy": {"bucket": "out", "key": "work/a.jpg/0123456789abcdef.ftwc"}})
}

#[test]
fn the_pipeline_definition_validates_cleanly() {
    assert_eq!(validate(&pipeline()), Vec::<Problem>::new());
}

#[tokio::test]
async fn a_good_upload_renders_every_variant_and_records_a_manifest() {
    let functions = Arc::new(Functions {
        answer: Box::new(|function, input| match function {
            "validate" => Ok(image(true)),
            "detect-faces" => Err(TaskFailure::new("Rekognition.Throttled", "slow down")),
            "render-variant" => {
                Ok(json!({"variant": input["variant"], "focus": input["faces"]["focus"]}))
            }
            "record-result" => Ok(json!({"manifest": "written", "variants": input["variants"]})),
            other => panic!("unexpected function {other}"),
        }),
        calls: Mutex::new(Vec::new()),
    });
    let executor = Executor::new(pipeline(), functions.clone()).with_time_mode(TimeMode::Simulated);
    let record = executor
        .start(
            ExecutionOptions::local("ferrotype", "ok"),
            json!({"detail-type": "Object Created", "detail": {"object": {"key": "a.jpg"}}}),
        )
        .await;
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{}",
        record.history_table()
    );
    let focus = json!({"x": 0.5, "y": 0.5});
    assert_eq!(
        record.output,
        Some(
            json!({"manifest": "written", "variants": [{"variant": "small", "focus": focus}, {"variant": "large", "focus": focus}]})
        )
    );
    let order: Vec<String> = functions
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|c| c.0.clone())
        .collect();
    assert_eq!(order.iter().filter(|f| *f == "render-variant").count(), 2);
    assert_eq!(order.first().map(String::as_str), Some("validate"));
    assert_eq!(order.last().map(String::as_str), Some("record-result"));
}

#[tokio::test]
async fn a_rejected_upload_is_recorded_and_ends_as_designed() {
    let functions = Arc::new(Functions {
        answer: Box::new(|function, _| match function {
            "validate" => Err(TaskFailure::new(
                "ImageRejected.TooManyPixels",
                "90000 x 90000 is over the limit",
            )),
            "record-result" => Ok(json!({"manifest": "rejected"})),
            other => panic!("unexpected function {other}"),
        }),
        calls: Mutex::new(Vec::new()),
    });
    let executor = Executor::new(pipeline(), functions.clone()).with_time_mode(TimeMode::Simulated);
    let record = executor
        .start(
            ExecutionOptions::local("ferrotype", "rejected"),
            json!({"detail-type": "Object Created", "detail": {}}),
        )
        .await;
    assert_eq!(record.status, ExecutionStatus::Succeeded);
    assert_eq!(record.output, Some(json!({"manifest": "rejected"})));
    let calls = functions.calls.lock().unwrap();
    assert_eq!(calls[1].0, "record-result");
    assert_eq!(calls[1].1["status"], "rejected");
    assert_eq!(
        calls[1].1["event"]["rejection"]["Error"],
        "ImageRejected.TooManyPixels"
    );
}

#[tokio::test]
async fn a_failed_variant_is_the_only_work_a_redrive_repeats() {
    let broken = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = broken.clone();
    let functions = Arc::new(Functions {
        answer: Box::new(move |function, input| match function {
            "validate" => Ok(image(false)),
            "render-variant"
                if input["variant"] == "large"
                    && flag.load(std::sync::atomic::Ordering::SeqCst) =>
            {
                Err(TaskFailure::new("Render.EncodeFailed", "disk full"))
            }
            "render-variant" => Ok(json!({"variant": input["variant"]})),
            "record-result" => Ok(json!({"manifest": "written"})),
            other => panic!("unexpected function {other}"),
        }),
        calls: Mutex::new(Vec::new()),
    });
    let executor = Executor::new(pipeline(), functions.clone()).with_time_mode(TimeMode::Simulated);
    let record = executor
        .start(
            ExecutionOptions::local("ferrotype", "redrive"),
            json!({"detail-type": "Object Created"}),
        )
        .await;
    assert_eq!(record.error.as_deref(), Some("Render.EncodeFailed"));
    let table = record.history_table();
    assert!(
        table.contains("RenderVariant [1]")
            && table.ends_with("Execution FAILED: Render.EncodeFailed: disk full\n"),
        "{table}"
    );
    broken.store(false, std::sync::atomic::Ordering::SeqCst);
    let before = functions.calls.lock().unwrap().len();
    let record = executor.redrive(record).await.unwrap();
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{}",
        record.history_table()
    );
    let rerun: Vec<(String, Value)> = functions.calls.lock().unwrap()[before..].to_vec();
    let names: Vec<&str> = rerun.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(
        names,
        vec!["render-variant", "record-result"],
        "validate and the small variant are not rerun"
    );
    assert_eq!(rerun[0].1["variant"], "large");
}
