//! The shipped definition's main paths, through `ferrotype statemachine test` with the mock
//! configuration statemachine/pipeline.mocks.json (AWS Step Functions Local's format): what someone who
//! edits the definition runs before deploying, asserted.

use std::process::Command;

use serde_json::Value;

/// Runs one test case of the shipped mock config on the upload event, as a Standard workflow; returns the
/// `--json` result and whether the command exited successfully.
fn run_case(case: &str, expect: &[&str]) -> (Value, bool) {
    run_case_with(
        case,
        "@statemachine/pipeline.test-event.json",
        "Standard",
        expect,
    )
}

/// The same with another input and workflow type (`Express` catches failures inline).
fn run_case_with(case: &str, input: &str, workflow: &str, expect: &[&str]) -> (Value, bool) {
    let uncaught = match workflow {
        "Express" => "States.ALL",
        _ => "Ferrotype.LeftForRedrive",
    };
    let output = Command::new(env!("CARGO_BIN_EXE_ferrotype"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args([
            "statemachine",
            "test",
            "statemachine/pipeline.asl.json",
            "--mock-config",
            "statemachine/pipeline.mocks.json",
            "--test-case",
            case,
            "--input",
            input,
            "--json",
            "--substitute",
            &format!("UncaughtErrors={uncaught}"),
        ])
        // The deployed stack's substitutions, so the Tasks are Lambda functions (whose mocked
        // `{StatusCode, Payload}` returns are unwrapped as AWS unwraps a function's response).
        .args(
            [
                ("ValidateFunctionArn", "validate"),
                ("DetectFacesFunctionArn", "detect-faces"),
                ("RenderVariantFunctionArn", "render-variant"),
                ("RecordResultFunctionArn", "record-result"),
            ]
            .iter()
            .flat_map(|(placeholder, name)| {
                [
                    "--substitute".to_owned(),
                    format!("{placeholder}={}", function_arn(name)),
                ]
            }),
        )
        .args(expect)
        .output()
        .expect("the ferrotype binary runs");
    let result: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "{case}: not JSON ({err}): {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (result, output.status.success())
}

/// The parsed inputs of every entry into the state `name` (Task, Pass, …).
fn entered(result: &Value, name: &str) -> Vec<Value> {
    result["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["type"]
                .as_str()
                .is_some_and(|t| t.ends_with("StateEntered"))
        })
        .filter(|e| e["stateEnteredEventDetails"]["name"] == name)
        .map(|e| {
            serde_json::from_str(e["stateEnteredEventDetails"]["input"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// The parsed payloads the Lambda function `name` was invoked with (after Parameters), in order.
fn invoked(result: &Value, name: &str) -> Vec<Value> {
    result["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "LambdaFunctionScheduled")
        .map(|e| &e["lambdaFunctionScheduledEventDetails"])
        .filter(|d| d["resource"] == function_arn(name))
        .map(|d| serde_json::from_str(d["input"].as_str().unwrap()).unwrap())
        .collect()
}

/// How many times the Lambda function `name` was scheduled (retries included).
fn attempts(result: &Value, name: &str) -> usize {
    result["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "LambdaFunctionScheduled")
        .filter(|e| e["lambdaFunctionScheduledEventDetails"]["resource"] == function_arn(name))
        .count()
}

fn function_arn(name: &str) -> String {
    format!("arn:aws:lambda:us-east-1:123456789012:function:ferrotype-{name}")
}

#[test]
fn happy_path_renders_every_variant_at_the_faces_focus_and_records() {
    let (result, ok) = run_case("HappyPath", &["--expect-status", "SUCCEEDED"]);
    assert!(ok, "{result}");
    let renders = entered(&result, "RenderVariant");
    assert_eq!(renders.len(), 3);
    for render in &renders {
        assert_eq!(
            render["faces"]["focus"],
            serde_json::json!({"x": 0.65, "y": 0.315})
        );
        assert_eq!(render["profile"], "default");
        assert_eq!(render["version"], "3f9a1c2b7d4e5f60");
        assert_eq!(
            render["workingCopy"]["key"],
            "work/uploads/holiday/beach.jpg/3f9a1c2b7d4e5f60.ftwc"
        );
    }
    let names: Vec<&str> = renders
        .iter()
        .map(|r| r["variant"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["thumbnail", "coverphoto", "thumbnail-webp"]);
    assert_eq!(entered(&result, "RecordResult").len(), 1);
    let record = invoked(&result, "record-result");
    assert_eq!(record[0]["status"], "rendered");
    assert_eq!(record[0]["image"]["version"], "3f9a1c2b7d4e5f60");
    assert_eq!(record[0]["variants"].as_array().unwrap().len(), 3);
    assert_eq!(result["output"]["outcome"], "recorded");
}

#[test]
fn a_rejected_upload_is_recorded_and_ends_as_designed() {
    let (result, ok) = run_case("RejectedUpload", &["--expect-status", "SUCCEEDED"]);
    assert!(ok, "{result}");
    assert_eq!(entered(&result, "RecordRejection").len(), 1);
    let recorded = invoked(&result, "record-result");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["status"], "rejected");
    assert_eq!(
        recorded[0]["event"]["rejection"]["Error"],
        "ImageRejected.TooManyPixels"
    );
    assert_eq!(
        recorded[0]["event"]["detail"]["object"]["key"],
        "uploads/holiday/beach.jpg"
    );
    assert!(entered(&result, "RenderVariant").is_empty());
    assert_eq!(result["output"]["status"], "rejected");
}

#[test]
fn face_detection_failing_falls_back_to_the_centre() {
    let (result, ok) = run_case("FaceDetectionFails", &["--expect-status", "SUCCEEDED"]);
    assert!(ok, "{result}");
    for render in entered(&result, "RenderVariant") {
        assert_eq!(
            render["faces"]["focus"],
            serde_json::json!({"x": 0.5, "y": 0.5})
        );
    }
}

#[test]
fn a_throttled_render_is_retried_and_the_execution_succeeds() {
    let (result, ok) = run_case("RenderRetried", &["--expect-status", "SUCCEEDED"]);
    assert!(ok, "{result}");
    assert_eq!(entered(&result, "RenderVariant").len(), 3);
    assert_eq!(attempts(&result, "render-variant"), 4, "one retry");
}

#[test]
fn a_burst_of_lambda_throttling_is_waited_out() {
    // Eight throttles in a row: more than the Lambda service retrier's six, within the throttling one's.
    let (result, ok) = run_case("LambdaThrottledInABurst", &["--expect-status", "SUCCEEDED"]);
    assert!(ok, "{result}");
    assert_eq!(
        attempts(&result, "render-variant"),
        11,
        "8 throttled, 3 rendered"
    );
}

#[test]
fn a_crashed_render_is_retried() {
    let (result, ok) = run_case("RenderCrashesOnce", &["--expect-status", "SUCCEEDED"]);
    assert!(ok, "{result}");
    assert_eq!(attempts(&result, "render-variant"), 4);
}

#[test]
fn a_render_failing_for_good_fails_a_standard_execution_unrecorded_for_its_redrive() {
    let (result, ok) = run_case(
        "RenderFailsForGood",
        &["--expect-error", "Ferrotype.RenderFailed"],
    );
    assert!(ok, "{result}");
    // Not retried, not caught: the execution fails at the Map, where a redrive resumes; record-result
    // writes `failed` from the FAILED status-change event.
    assert!(entered(&result, "RecordResult").is_empty());
    assert!(entered(&result, "RecordFailure").is_empty());
}

#[test]
fn an_express_execution_records_its_failure_inline_and_still_fails() {
    let (result, ok) = run_case_with(
        "RenderFailsForGood",
        "@statemachine/pipeline.test-event.json",
        "Express",
        &["--expect-error", "Ferrotype.RenderFailed"],
    );
    assert!(ok, "{result}");
    let failure = entered(&result, "RecordFailure");
    assert_eq!(failure.len(), 1);
    let recorded = invoked(&result, "record-result");
    assert_eq!(recorded[0]["status"], "failed");
    assert_eq!(
        recorded[0]["event"]["failure"]["Error"],
        "Ferrotype.RenderFailed"
    );
    assert_eq!(recorded[0]["event"]["image"]["version"], "3f9a1c2b7d4e5f60");
}

#[test]
fn pixel_data_found_corrupt_at_render_reaches_record_result_after_every_iteration() {
    let (result, ok) = run_case("CorruptPixelData", &["--expect-status", "SUCCEEDED"]);
    assert!(ok, "{result}");
    assert_eq!(entered(&result, "VariantNotRendered").len(), 3);
    let recorded = invoked(&result, "record-result");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["status"], "rendered");
    for outcome in recorded[0]["variants"].as_array().unwrap() {
        assert_eq!(outcome["notRendered"]["Error"], "ImageRejected.Corrupt");
    }
    assert_eq!(result["output"]["status"], "rejected");
}

#[test]
fn a_superseded_upload_cleans_up_and_succeeds() {
    let (result, ok) = run_case("SupersededAtValidate", &["--expect-status", "SUCCEEDED"]);
    assert!(ok, "{result}");
    let recorded = invoked(&result, "record-result");
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0]["status"], "superseded");
    assert_eq!(
        recorded[0]["event"]["superseded"]["Error"],
        "Ferrotype.Superseded"
    );
    assert_eq!(result["output"]["outcome"], "superseded");

    // Found out by one render: the other iterations finish first, then record-result decides.
    let (result, ok) = run_case(
        "SupersededDuringTheRenders",
        &["--expect-status", "SUCCEEDED"],
    );
    assert!(ok, "{result}");
    assert_eq!(entered(&result, "VariantNotRendered").len(), 1);
    let recorded = invoked(&result, "record-result");
    let outcomes = recorded[0]["variants"].as_array().unwrap();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| o["notRendered"]["Error"] == "Ferrotype.Superseded")
            .count(),
        1
    );
}

#[test]
fn a_deletion_is_routed_to_record_result() {
    let (result, ok) = run_case_with(
        "Deletion",
        "@statemachine/pipeline.test-deletion-event.json",
        "Standard",
        &["--expect-status", "SUCCEEDED"],
    );
    assert!(ok, "{result}");
    assert!(entered(&result, "Validate").is_empty());
    let recorded = invoked(&result, "record-result");
    assert_eq!(recorded[0]["status"], "deleted");
    assert_eq!(recorded[0]["event"]["detail-type"], "Object Deleted");
    assert_eq!(result["output"]["status"], "deleted");
}

#[test]
fn an_expectation_that_does_not_hold_fails_the_command() {
    let (result, ok) = run_case("RenderFailsForGood", &["--expect-status", "SUCCEEDED"]);
    assert_eq!(result["status"], "FAILED");
    assert!(!ok);
}

/// Runs `ferrotype statemachine ARGS…` from the repository root: (stdout, stderr, success).
fn statemachine(args: &[&str]) -> (String, String, bool) {
    let output = Command::new(env!("CARGO_BIN_EXE_ferrotype"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("statemachine")
        .args(args)
        .output()
        .expect("the ferrotype binary runs");
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        output.status.success(),
    )
}

#[test]
fn open_placeholders_are_fine_where_a_mock_answers() {
    let (stdout, stderr, ok) = statemachine(&[
        "test",
        "statemachine/pipeline.asl.json",
        "--mock-config",
        "statemachine/pipeline.mocks.json",
        "--test-case",
        "HappyPath",
        "--input",
        "@statemachine/pipeline.test-event.json",
        "--json",
    ]);
    assert!(ok, "{stdout}{stderr}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["status"], "SUCCEEDED");
    assert_eq!(result["output"]["status"], "succeeded");
}

#[test]
fn reaching_an_unmocked_task_with_an_open_placeholder_says_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let mocks = dir.path().join("mocks.json");
    // The shipped responses, in a test case that mocks Validate only: DetectFaces comes next.
    let mut config: Value = serde_json::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("statemachine/pipeline.mocks.json"),
        )
        .unwrap(),
    )
    .unwrap();
    config["StateMachines"]["ferrotype-pipeline"]["TestCases"] =
        serde_json::json!({"OnlyValidate": {"Validate": "ValidateAccepts"}});
    std::fs::write(&mocks, config.to_string()).unwrap();
    let (stdout, stderr, _) = statemachine(&[
        "test",
        "statemachine/pipeline.asl.json",
        "--mock-config",
        mocks.to_str().unwrap(),
        "--test-case",
        "OnlyValidate",
        "--input",
        "@statemachine/pipeline.test-event.json",
        "--json",
    ]);
    let result: Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"));
    assert_eq!(result["error"], "States.Runtime", "{result}");
    let cause = result["cause"].as_str().unwrap();
    assert!(
        cause.contains("no mocked response for Task state"),
        "{cause}"
    );
    assert!(cause.contains("${"), "names the open placeholder: {cause}");
}

/// The JSONata workflow of issue 14's "Done when", run through the command with mocked Tasks.
fn jsonata_case(case: &str, input: Value) -> Value {
    let input = input.to_string();
    let (stdout, stderr, _) = statemachine(&[
        "test",
        "statemachine/conformance/examples/jsonata-workflow.asl.json",
        "--mock-config",
        "statemachine/conformance/examples/jsonata-workflow.mocks.json",
        "--test-case",
        case,
        "--input",
        &input,
        "--json",
    ]);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}{stderr}"))
}

#[test]
fn a_jsonata_workflow_runs_with_aws_results() {
    let input =
        serde_json::json!({"bucket": "photos", "keys": ["a.jpg", "b.jpg", "c.jpg"], "size": 1200});
    let result = jsonata_case("AllResized", input.clone());
    assert_eq!(result["status"], "SUCCEEDED", "{result}");
    assert_eq!(
        result["output"],
        serde_json::json!({"batches": [{"done": 2, "by": "w1"}, {"done": 2, "by": "w1"}], "bucket": "photos"})
    );
    let result = jsonata_case("SecondBatchFails", input.clone());
    assert_eq!(
        result["output"]["batches"][1],
        serde_json::json!({"failed": "Resize.Failed", "keys": ["c.jpg"]}),
        "the Catch Output over $states.errorOutput and $states.input"
    );
    let mut big = input;
    big["size"] = serde_json::json!(200_000_000);
    let result = jsonata_case("TooBig", big);
    assert_eq!(result["error"], "Upload.TooBig");
    assert_eq!(result["cause"], "size 200000000 in photos");
}

#[test]
fn validate_reports_jsonata_errors_with_the_state_name() {
    let dir = tempfile::tempdir().unwrap();
    let definition = dir.path().join("broken.asl.json");
    std::fs::write(
        &definition,
        serde_json::json!({"QueryLanguage": "JSONata", "StartAt": "Broken", "States": {
            "Broken": {"Type": "Pass", "Output": {"x": "{% $states.input.a + %}"}, "Next": "Reads"},
            "Reads": {"Type": "Pass", "Output": "{% $never %}", "End": true}}})
        .to_string(),
    )
    .unwrap();
    let (stdout, _, ok) = statemachine(&["validate", definition.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        stdout.contains("state \"Broken\": Output: invalid JSONata expression"),
        "{stdout}"
    );
    assert!(
        stdout.contains("state \"Reads\": reads the variable $never"),
        "{stdout}"
    );
    assert!(stdout.contains("2 problem(s)"), "{stdout}");
}
