//! record-result against a real S3-compatible server: the three inputs, idempotence, failures.

use ferrotype_aws::bootstrap::parse_input;
use ferrotype_aws::StageError;
use ferrotype_core::pipeline::{ManifestStatus, Recorded, ValidatedImage};
use ferrotype_local_s3::testing::{self, INPUT_BUCKET, OUTPUT_BUCKET};
use ferrotype_local_s3::{Fault, FaultRule, LocalS3, S3Op};
use record_result::{handler, RecordInput, RecordResult};
use serde_json::{json, Value};

const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:ferrotype:0f6c";
const STARTED: &str = "2026-11-28T04:00:00.123Z";
const KEY: &str = "uploads/café (1).jpg";

fn deps(server: &LocalS3) -> RecordResult {
    RecordResult::new(server.client(), testing::test_config(), OUTPUT_BUCKET)
}

/// Parses like the Lambda runtime does (so a bad input is `Ferrotype.BadEvent`) and runs the handler.
async fn record(server: &LocalS3, input: Value) -> Result<Recorded, StageError> {
    let input: RecordInput = parse_input(input)?;
    handler(&deps(server), testing::lambda_event(input)).await
}

fn error_name(result: Result<Recorded, StageError>) -> String {
    lambda_runtime::Diagnostic::from(result.expect_err("record should fail")).error_type
}

async fn manifest(server: &LocalS3, key: &str) -> Value {
    let (bytes, content_type, cache_control) =
        testing::download(&server.client(), OUTPUT_BUCKET, key).await;
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(cache_control.as_deref(), Some("no-cache"));
    serde_json::from_slice(&bytes).unwrap()
}

async fn manifest_keys(server: &LocalS3) -> Vec<String> {
    testing::keys(&server.client(), OUTPUT_BUCKET).await
}

async fn validated(server: &LocalS3) -> ValidatedImage {
    let event = testing::upload_with_event(&server.client(), KEY, &testing::jpeg(40, 30)).await;
    let deps = validate::Validate::new(server.client(), testing::test_config());
    validate::handler(&deps, testing::lambda_event(event))
        .await
        .unwrap()
}

/// What the RecordResult state passes (its Parameters block).
fn succeeded_input(image: &ValidatedImage) -> Value {
    json!({
        "status": "succeeded",
        "executionId": EXECUTION,
        "startedAt": STARTED,
        "source": image.source,
        "profile": image.profile,
        "faces": { "detector": "builtin", "faces": [{ "left": 0.1, "top": 0.2, "width": 0.2, "height": 0.2, "confidence": 0.9 }],
                   "focus": { "x": 0.2, "y": 0.3 } },
        "variants": [{ "name": "thumb", "bucket": OUTPUT_BUCKET, "key": "variants/default/thumb/café (1).jpg",
                       "format": "jpeg", "contentType": "image/jpeg", "width": 32, "height": 32, "bytes": 900, "durationMs": 12 }]
    })
}

/// The S3 event the execution started with.
fn upload_event() -> Value {
    testing::event_json(&testing::object_created(
        INPUT_BUCKET,
        KEY,
        100,
        Some("abc"),
    ))
}

/// What the RecordRejection state passes: the whole state (the event plus the caught error) and the error.
fn rejected_input() -> Value {
    let rejection = json!({
        "Error": "ImageRejected.TooManyPixels",
        "Cause": "{\"errorType\":\"ImageRejected.TooManyPixels\",\"errorMessage\":\"65536x65536 is over the limit\"}"
    });
    let mut state = upload_event();
    state["rejection"] = rejection.clone();
    json!({ "status": "rejected", "executionId": EXECUTION, "startedAt": STARTED, "event": state, "rejection": rejection })
}

/// EventBridge's "Step Functions Execution Status Change" for this execution.
fn status_change(status: &str, error: Option<&str>, cause: Option<&str>) -> Value {
    json!({
        "version": "0", "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "account": "123456789012", "time": "2026-11-28T04:00:05Z", "region": "us-east-1",
        "resources": [EXECUTION],
        "detail": {
            "executionArn": EXECUTION,
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:ferrotype",
            "name": "0f6c", "status": status, "startDate": 1_795_838_400_123_i64, "stopDate": 1_795_838_405_000_i64,
            "input": upload_event().to_string(), "output": null,
            "error": error, "cause": cause
        }
    })
}

const MANIFEST_KEY: &str = "manifests/uploads/café (1).jpg.json";

#[tokio::test]
async fn a_success_records_everything_the_execution_found() {
    let server = testing::start_server().await;
    let image = validated(&server).await;
    let recorded = record(&server, succeeded_input(&image)).await.unwrap();
    assert_eq!(recorded.manifest_key, MANIFEST_KEY);
    assert_eq!(recorded.status, ManifestStatus::Succeeded);
    assert_eq!(
        serde_json::to_value(&recorded).unwrap(),
        json!({"manifestKey": MANIFEST_KEY, "status": "succeeded"})
    );

    let doc = manifest(&server, MANIFEST_KEY).await;
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["source"], serde_json::to_value(&image.source).unwrap());
    assert_eq!(doc["profile"], "default");
    assert_eq!(doc["focus"], json!({"x": 0.2, "y": 0.3}));
    assert_eq!(doc["faces"]["detector"], "builtin");
    assert_eq!(
        doc["variants"][0]["key"],
        "variants/default/thumb/café (1).jpg"
    );
    assert_eq!(doc["executionId"], EXECUTION);
    assert_eq!(doc["startedAt"], STARTED);
    assert!(
        doc["recordedAt"].as_str().unwrap().starts_with("20"),
        "{doc}"
    );
    assert!(doc.get("error").is_none());
}

#[tokio::test]
async fn recording_twice_writes_the_same_document() {
    let server = testing::start_server().await;
    let image = validated(&server).await;
    record(&server, succeeded_input(&image)).await.unwrap();
    let mut first = manifest(&server, MANIFEST_KEY).await;
    record(&server, succeeded_input(&image)).await.unwrap();
    let mut second = manifest(&server, MANIFEST_KEY).await;
    first.as_object_mut().unwrap().remove("recordedAt");
    second.as_object_mut().unwrap().remove("recordedAt");
    assert_eq!(first, second);
    assert_eq!(manifest_keys(&server).await, [MANIFEST_KEY]);
}

#[tokio::test]
async fn a_rejection_records_its_name_and_message() {
    let server = testing::start_server().await;
    let recorded = record(&server, rejected_input()).await.unwrap();
    assert_eq!(recorded.manifest_key, MANIFEST_KEY, "the decoded key");
    assert_eq!(recorded.status, ManifestStatus::Rejected);
    let doc = manifest(&server, MANIFEST_KEY).await;
    assert_eq!(doc["status"], "rejected");
    assert_eq!(doc["bucket"], INPUT_BUCKET);
    assert_eq!(doc["key"], KEY);
    assert_eq!(
        doc["error"],
        json!({"name": "ImageRejected.TooManyPixels", "message": "65536x65536 is over the limit"})
    );
    assert!(doc.get("source").is_none());
    assert_eq!(doc["variants"], json!([]));
}

#[tokio::test]
async fn a_failed_execution_records_its_error() {
    let server = testing::start_server().await;
    let cause = "{\"errorType\":\"Ferrotype.RenderFailed\",\"errorMessage\":\"the encoder ran out of memory\"}";
    let recorded = record(
        &server,
        status_change("FAILED", Some("Ferrotype.RenderFailed"), Some(cause)),
    )
    .await
    .unwrap();
    assert_eq!(recorded.status, ManifestStatus::Failed);
    let doc = manifest(&server, &recorded.manifest_key).await;
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["key"], KEY);
    assert_eq!(doc["executionId"], EXECUTION);
    assert_eq!(doc["startedAt"], "2026-11-28T04:00:00.123Z");
    assert_eq!(
        doc["error"],
        json!({"name": "Ferrotype.RenderFailed", "message": "the encoder ran out of memory"})
    );
}

#[tokio::test]
async fn timeouts_and_aborts_are_failures_too() {
    let server = testing::start_server().await;
    record(&server, status_change("TIMED_OUT", None, None))
        .await
        .unwrap();
    let doc = manifest(&server, MANIFEST_KEY).await;
    assert_eq!(doc["status"], "failed");
    assert_eq!(doc["error"]["name"], "States.Timeout");
    assert!(doc["error"]["message"]
        .as_str()
        .unwrap()
        .contains("TIMED_OUT"));

    record(&server, status_change("ABORTED", None, None))
        .await
        .unwrap();
    assert_eq!(
        manifest(&server, MANIFEST_KEY).await["error"]["name"],
        "States.Aborted"
    );
}

#[tokio::test]
async fn a_rejected_execution_is_not_recorded_twice() {
    let server = testing::start_server().await;
    let recorded = record(
        &server,
        status_change(
            "FAILED",
            Some("ImageRejected.Corrupt"),
            Some("the header is truncated"),
        ),
    )
    .await
    .unwrap();
    assert_eq!(recorded.status, ManifestStatus::Rejected);
    assert_eq!(recorded.manifest_key, MANIFEST_KEY);
    assert!(
        manifest_keys(&server).await.is_empty(),
        "RecordRejection wrote it already"
    );
    assert!(server.faults().requests_of(S3Op::PutObject).is_empty());
}

#[tokio::test]
async fn inputs_that_fit_none_of_the_three_are_bad_events() {
    let server = testing::start_server().await;
    assert_eq!(
        error_name(record(&server, json!({"status": "maybe"})).await),
        "Ferrotype.BadEvent"
    );
    assert_eq!(
        error_name(record(&server, json!([1, 2])).await),
        "Ferrotype.BadEvent"
    );
    assert_eq!(
        error_name(record(&server, status_change("SUCCEEDED", None, None)).await),
        "Ferrotype.BadEvent"
    );
    let mut other = status_change("FAILED", None, None);
    other["detail-type"] = "Object Created".into();
    assert_eq!(
        error_name(record(&server, other).await),
        "Ferrotype.BadEvent"
    );
    let mut no_input = status_change("FAILED", None, None);
    no_input["detail"]["input"] = "not json".into();
    assert_eq!(
        error_name(record(&server, no_input).await),
        "Ferrotype.BadEvent"
    );
    assert!(manifest_keys(&server).await.is_empty());
}

#[tokio::test]
async fn a_failing_write_is_transient() {
    let server = testing::start_server().await;
    server.faults().inject(
        FaultRule::new(S3Op::PutObject, Fault::SlowDown)
            .times(3)
            .for_keys_under("manifests/"),
    );
    assert_eq!(
        error_name(record(&server, rejected_input()).await),
        "Ferrotype.Transient"
    );
    record(&server, rejected_input()).await.unwrap();
    assert_eq!(manifest_keys(&server).await, [MANIFEST_KEY]);
}

#[tokio::test]
async fn a_late_failure_of_an_older_execution_keeps_the_newer_manifest() {
    let server = testing::start_server().await;
    let image = validated(&server).await;
    // The upload was replaced: the newer execution (started 3 s later) succeeded first, then the older
    // one failed (SourceChanged) and its status-change event arrives.
    let newer = "arn:aws:states:us-east-1:123456789012:execution:ferrotype:7a1e";
    let mut succeeded = succeeded_input(&image);
    succeeded["executionId"] = json!(newer);
    succeeded["startedAt"] = json!("2026-11-28T04:00:03Z");
    let written = record(&server, succeeded).await.unwrap();
    assert!(!written.superseded);

    let cause =
        "{\"errorType\":\"Ferrotype.SourceChanged\",\"errorMessage\":\"the object was replaced\"}";
    let late = record(
        &server,
        status_change("FAILED", Some("Ferrotype.SourceChanged"), Some(cause)),
    )
    .await
    .unwrap();
    assert!(late.superseded);
    assert_eq!(late.manifest_key, MANIFEST_KEY);
    let doc = manifest(&server, MANIFEST_KEY).await;
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["executionId"], newer);
}

#[tokio::test]
async fn a_newer_execution_replaces_an_older_manifest() {
    let server = testing::start_server().await;
    let image = validated(&server).await;
    let cause = "{\"errorType\":\"Ferrotype.Transient\",\"errorMessage\":\"S3 kept failing\"}";
    record(
        &server,
        status_change("FAILED", Some("Ferrotype.Transient"), Some(cause)),
    )
    .await
    .unwrap();
    assert_eq!(manifest(&server, MANIFEST_KEY).await["status"], "failed");

    let newer = "arn:aws:states:us-east-1:123456789012:execution:ferrotype:7a1e";
    let mut succeeded = succeeded_input(&image);
    succeeded["executionId"] = json!(newer);
    succeeded["startedAt"] = json!("2026-11-28T04:10:00Z");
    let written = record(&server, succeeded).await.unwrap();
    assert!(!written.superseded);
    let doc = manifest(&server, MANIFEST_KEY).await;
    assert_eq!(doc["status"], "succeeded");
    assert_eq!(doc["executionId"], newer);
}
