//! Conformance: every case in statemachine/conformance/cases runs through this executor and through
//! aws-local-stepfunctions (Node); results must agree. A case whose `aws` field is set documents a
//! place where aws-local-stepfunctions differs from AWS: there we compare with `aws` instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferrotype_executor::*;
use serde_json::{json, Value};

/// Answers Task states from a case's `tasks` list (answer i for invocation i; the last repeats).
struct CaseInvoker {
    tasks: Value,
    counts: Mutex<HashMap<String, usize>>,
}

#[async_trait::async_trait]
impl TaskInvoker for CaseInvoker {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
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
        counts: Mutex::new(HashMap::new()),
    });
    let record = Executor::new(machine, invoker)
        .with_time_mode(TimeMode::Simulated)
        .start(
            ExecutionOptions::local("conformance", "case"),
            case["input"].clone(),
        )
        .await;
    match record.status {
        ExecutionStatus::Succeeded => json!({"status": "SUCCEEDED", "output": record.output}),
        other => json!({"status": other, "error": record.error, "cause": record.cause}),
    }
}

fn agree(ours: &Value, reference: &Value) -> bool {
    if ours["status"] != reference["status"] {
        return false;
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
    for file in &files {
        let name = file.file_stem().unwrap().to_str().unwrap();
        let case: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let ours = run_ours(&case).await;
        let expected = case
            .get("aws")
            .cloned()
            .unwrap_or_else(|| reference[name].clone());
        if !agree(&ours, &expected) {
            disagreements.push(format!(
                "{name}:\n  ours:      {ours}\n  reference: {expected}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} case(s) disagree:\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
}
