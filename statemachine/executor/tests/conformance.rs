//! Conformance: every case in statemachine/conformance/cases runs through this executor and through
//! aws-local-stepfunctions (Node); results must agree. A case whose `aws` field is set documents a
//! place where aws-local-stepfunctions differs from AWS: there we compare with `aws` instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferrotype_executor::*;
use serde_json::{json, Value};

/// Answers Task states from a case's `tasks` list (answer i for invocation i; the last repeats), and
/// a Distributed Map's S3 reads from its `s3` buckets (`{"bucket": {"key": "text"}}`).
struct CaseInvoker {
    tasks: Value,
    s3: Value,
    counts: Mutex<HashMap<String, usize>>,
}

impl CaseInvoker {
    fn read_s3(&self, call: &TaskCall) -> Result<Value, TaskFailure> {
        let bucket = call.input["Bucket"].as_str().unwrap_or_default();
        let objects = self.s3[bucket].as_object().cloned().unwrap_or_default();
        if call.resource.ends_with("listObjectsV2") {
            let prefix = call.input["Prefix"].as_str().unwrap_or_default();
            let contents: Vec<Value> = objects
                .iter()
                .filter(|(key, _)| key.starts_with(prefix))
                .map(|(key, body)| json!({"Key": key, "Size": body.as_str().unwrap_or_default().len(), "ETag": "\"e\"", "LastModified": 0, "StorageClass": "STANDARD"}))
                .collect();
            return Ok(json!({ "Contents": contents }));
        }
        let key = call.input["Key"].as_str().unwrap_or_default();
        objects.get(key).cloned().ok_or_else(|| {
            TaskFailure::new(
                "S3.NoSuchKey",
                format!("no s3://{bucket}/{key} in the case"),
            )
        })
    }
}

#[async_trait::async_trait]
impl TaskInvoker for CaseInvoker {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        if call.kind == TaskKind::ItemReader {
            return self.read_s3(&call);
        }
        let n = {
            let mut counts = self.counts.lock().unwrap();
            let n = counts.entry(call.state_name.clone()).or_insert(0);
            *n += 1;
            *n - 1
        };
        let answers = self
            .tasks
            .get(&call.state_name)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let Some(answer) = answers.get(n.min(answers.len().saturating_sub(1))) else {
            return Err(TaskFailure::new(
                "Conformance.NoAnswer",
                format!("no answer for {}", call.state_name),
            ));
        };
        if let Some(throw) = answer.get("throw") {
            return Err(TaskFailure::new(
                throw["error"].as_str().unwrap(),
                throw["cause"].as_str().unwrap(),
            ));
        }
        let value = answer["return"].clone();
        Ok(if answer.get("echo") == Some(&json!(true)) {
            json!({"echo": call.input, "value": value})
        } else {
            value
        })
    }
}

fn conformance_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../conformance")
}

async fn run_ours(case: &Value) -> Value {
    let machine = StateMachine::from_value(&case["definition"]).expect("case definition parses");
    let problems = validate(&machine);
    assert!(problems.is_empty(), "{problems:?}");
    let invoker = Arc::new(CaseInvoker {
        tasks: case["tasks"].clone(),
        s3: case["s3"].clone(),
        counts: Mutex::new(HashMap::new()),
    });
    let record = Executor::new(machine, invoker.clone())
        .with_time_mode(TimeMode::Simulated)
        .with_seed(1)
        .start(
            ExecutionOptions::local("conformance", "case"),
            case["input"].clone(),
        )
        .await;
    let invocations: serde_json::Map<String, Value> = invoker
        .counts
        .lock()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    match record.status {
        ExecutionStatus::Succeeded => {
            json!({"status": "SUCCEEDED", "output": record.output, "invocations": invocations})
        }
        other => {
            json!({"status": other, "error": record.error, "cause": record.cause, "invocations": invocations})
        }
    }
}

/// Whether a result agrees with an expectation. An `aws` expectation may also count Task calls
/// (`invocations`); results of aws-local-stepfunctions carry counts that are not compared.
fn agree(ours: &Value, reference: &Value, count_calls: bool) -> bool {
    if ours["status"] != reference["status"] {
        return false;
    }
    if let Some(expected) = reference.get("invocations").and_then(Value::as_object) {
        if count_calls
            && expected
                .iter()
                .any(|(state, n)| ours["invocations"].get(state) != Some(n))
        {
            return false;
        }
    }
    if ours["status"] == "SUCCEEDED" {
        return ours["output"] == reference["output"];
    }
    // Causes of States.* errors are prose that differs between implementations; compare names.
    let error = ours["error"].as_str().unwrap_or_default();
    ours["error"] == reference["error"]
        && (error.starts_with("States.") || ours["cause"] == reference["cause"])
}

#[tokio::test]
async fn executor_agrees_with_aws_local_stepfunctions_on_every_case() {
    if std::env::var("FERROTYPE_SKIP_CONFORMANCE").as_deref() == Ok("1") {
        eprintln!("conformance skipped: FERROTYPE_SKIP_CONFORMANCE=1");
        return;
    }
    let dir = conformance_dir();
    assert!(
        dir.join("node_modules/aws-local-stepfunctions").is_dir(),
        "statemachine/conformance/node_modules is missing: run `npm ci --prefix statemachine/conformance` first \
         (or set FERROTYPE_SKIP_CONFORMANCE=1 to skip this comparison)"
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir.join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "expected the conformance cases, found {}",
        files.len()
    );
    let output = std::process::Command::new("node")
        .current_dir(&dir)
        .arg("run-cases.mjs")
        .args(&files)
        .output()
        .expect("node runs (Node.js >= 20 is needed for the conformance check)");
    assert!(
        output.status.success(),
        "run-cases.mjs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reference: Value =
        serde_json::from_slice(&output.stdout).expect("run-cases.mjs prints JSON");
    let mut disagreements = Vec::new();
    let (mut against_library, mut against_aws, mut library_agrees_with_aws) = (0, 0, 0);
    for file in &files {
        let name = file.file_stem().unwrap().to_str().unwrap();
        let case: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let ours = run_ours(&case).await;
        let library = &reference[name];
        let count_calls = case.get("aws").is_some();
        let expected = match case.get("aws") {
            Some(aws) => {
                against_aws += 1;
                if library.get("skipped").is_none() && agree(library, aws, true) {
                    library_agrees_with_aws += 1;
                }
                aws.clone()
            }
            None => {
                against_library += 1;
                library.clone()
            }
        };
        if !agree(&ours, &expected, count_calls) {
            disagreements.push(format!(
                "{name}:\n  ours:      {ours}\n  reference: {expected}"
            ));
        }
    }
    eprintln!(
        "conformance: {} cases; {against_library} compared with aws-local-stepfunctions, {against_aws} with the \
         AWS documentation (aws-local-stepfunctions agrees with AWS on {library_agrees_with_aws} of those); \
         {} disagree",
        files.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} case(s) disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
