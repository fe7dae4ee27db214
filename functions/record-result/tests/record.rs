//! record-result against a real S3-compatible server, fed by the real validate and render-variant
//! stages: every input, the compare-and-swap rule (a stale execution never overwrites a newer upload's
//! manifest), clean-up of superseded and retired outputs, precedence within one upload, deletions.

use ferrotype_aws::bootstrap::parse_input;
use ferrotype_aws::StageError;
use ferrotype_core::keys::working_copy_key;
use ferrotype_core::pipeline::{
    Manifest, ManifestStatus, RecordOutcome, Recorded, RenderRequest, ValidatedImage,
};
use ferrotype_core::{DetectorKind, FaceDetection, Focus};
use ferrotype_local_s3::testing::{self, INPUT_BUCKET, OUTPUT_BUCKET};
use ferrotype_local_s3::{Fault, FaultRule, LocalS3, S3Op};
use record_result::{handler, RecordInput, RecordResult};
use serde_json::{json, Value};

const EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:ferrotype:0f6c";
const LATER_EXECUTION: &str = "arn:aws:states:us-east-1:123456789012:execution:ferrotype:7a1e";
const STARTED: &str = "2026-11-28T04:00:00.123Z";
const KEY: &str = "uploads/café (1).jpg";
const MANIFEST_KEY: &str = "manifests/uploads/café (1).jpg.json";

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

async fn stored_manifest(server: &LocalS3) -> Manifest {
    let (bytes, content_type, cache_control) =
        testing::download(&server.client(), OUTPUT_BUCKET, MANIFEST_KEY).await;
    assert_eq!(content_type.as_deref(), Some("application/json"));
    assert_eq!(cache_control.as_deref(), Some("no-cache"));
    serde_json::from_slice(&bytes).unwrap()
}

async fn output_keys(server: &LocalS3) -> Vec<String> {
    testing::keys(&server.client(), OUTPUT_BUCKET).await
}

/// One upload of KEY through the real validate stage: its event and what validate said.
struct Upload {
    event: Value,
    image: ValidatedImage,
}

async fn upload(server: &LocalS3, width: u32) -> Upload {
    let event = testing::upload_with_event(&server.client(), KEY, &testing::jpeg(width, 30)).await;
    let deps = validate::Validate::new(server.client(), testing::test_config(), OUTPUT_BUCKET);
    let image = validate::handler(&deps, testing::lambda_event(event.clone()))
        .await
        .unwrap();
    Upload { event, image }
}

fn faces() -> FaceDetection {
    FaceDetection {
        detector: DetectorKind::Builtin,
        faces: Vec::new(),
        focus: Focus { x: 0.2, y: 0.3 },
        saliency: None,
    }
}

/// Every variant of the upload through the real render-variant stage, as the Map's results.
async fn render_all(server: &LocalS3, upload: &Upload) -> Vec<Value> {
    let deps =
        render_variant::RenderVariant::new(server.client(), testing::test_config(), OUTPUT_BUCKET);
    let mut results = Vec::new();
    for variant in &upload.image.variants {
        let request = RenderRequest {
            source: upload.image.source.clone(),
            profile: upload.image.profile.clone(),
            version: upload.image.version.clone(),
            working_copy: upload.image.working_copy.clone(),
            faces: faces(),
            variant: variant.clone(),
        };
        let rendered = render_variant::handler(&deps, testing::lambda_event(request))
            .await
            .unwrap();
        results.push(serde_json::to_value(rendered).unwrap());
    }
    results
}

/// What the RecordResult state passes (its Parameters block).
fn rendered_input(execution: &str, upload: &Upload, variants: Vec<Value>) -> Value {
    json!({
        "status": "rendered",
        "executionId": execution,
        "startedAt": STARTED,
        "image": upload.image,
        "faces": faces(),
        "variants": variants,
    })
}

/// What the RecordRejection / RecordSuperseded / RecordFailure states pass: the execution's state.
fn state_input(status: &str, state: Value) -> Value {
    json!({ "status": status, "executionId": EXECUTION, "startedAt": STARTED, "event": state })
}

fn rejected_state(event: &Value) -> Value {
    let mut state = event.clone();
    state["rejection"] = json!({
        "Error": "ImageRejected.TooManyPixels",
        "Cause": "{\"errorType\":\"ImageRejected.TooManyPixels\",\"errorMessage\":\"65536x65536 is over the limit\"}"
    });
    state
}

/// EventBridge's "Step Functions Execution Status Change" for an execution of `event`.
fn status_change(event: &Value, status: &str, error: Option<&str>, cause: Option<&str>) -> Value {
    json!({
        "version": "0", "id": "315c1398-40ff-a850-213b-158f73e60175",
        "detail-type": "Step Functions Execution Status Change", "source": "aws.states",
        "account": "123456789012", "time": "2026-11-28T04:00:05Z", "region": "us-east-1",
        "resources": [EXECUTION],
        "detail": {
            "executionArn": EXECUTION,
            "stateMachineArn": "arn:aws:states:us-east-1:123456789012:stateMachine:ferrotype",
            "name": "0f6c", "status": status, "startDate": 1_795_838_400_123_i64, "stopDate": 1_795_838_405_000_i64,
            "input": event.to_string(), "output": null,
            "error": error, "cause": cause
        }
    })
}

fn deletion_event() -> Value {
    let mut event = testing::event_json(&testing::object_created(INPUT_BUCKET, KEY, 0, None));
    event["detail-type"] = json!("Object Deleted");
    event["detail"]["deletion-type"] = json!("Permanently Deleted");
    event
}

async fn delete_source(server: &LocalS3) {
    server
        .client()
        .delete_object()
        .bucket(INPUT_BUCKET)
        .key(KEY)
        .send()
        .await
        .unwrap();
}

fn variant_keys(variants: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = variants
        .iter()
        .map(|v| v["key"].as_str().unwrap().to_owned())
        .collect();
    keys.sort();
    keys
}

#[tokio::test]
async fn a_success_records_everything_the_execution_found() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    let variants = render_all(&server, &upload).await;
    let recorded = record(
        &server,
        rendered_input(EXECUTION, &upload, variants.clone()),
    )
    .await
    .unwrap();
    assert_eq!(
        serde_json::to_value(&recorded).unwrap(),
        json!({"manifestKey": MANIFEST_KEY, "status": "succeeded", "outcome": "recorded"})
    );

    let manifest = stored_manifest(&server).await;
    assert_eq!(manifest.status, ManifestStatus::Succeeded);
    assert_eq!(
        manifest.version.as_deref(),
        Some(upload.image.version.as_str())
    );
    assert_eq!(manifest.source.as_ref(), Some(&upload.image.source));
    assert_eq!(manifest.profile.as_deref(), Some("default"));
    assert_eq!(manifest.focus, Some(Focus { x: 0.2, y: 0.3 }));
    assert_eq!(manifest.execution_id, EXECUTION);
    assert_eq!(manifest.started_at, STARTED);
    assert!(manifest.recorded_at.starts_with("20"));
    assert_eq!(manifest.error, None);
    let mut listed: Vec<String> = manifest.variants.iter().map(|v| v.key.clone()).collect();
    listed.sort();
    assert_eq!(listed, variant_keys(&variants));
    // Exactly the manifest and its variants are in the bucket.
    let mut expected = variant_keys(&variants);
    expected.push(MANIFEST_KEY.to_owned());
    expected.sort();
    assert_eq!(output_keys(&server).await, expected);
}

#[tokio::test]
async fn recording_twice_changes_nothing() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    let variants = render_all(&server, &upload).await;
    let input = rendered_input(EXECUTION, &upload, variants);
    record(&server, input.clone()).await.unwrap();
    let first = stored_manifest(&server).await;
    let again = record(&server, input).await.unwrap();
    assert_eq!(again.outcome, RecordOutcome::Unchanged);
    assert_eq!(stored_manifest(&server).await, first);
}

#[tokio::test]
async fn a_newer_upload_retires_the_older_outputs() {
    let server = testing::start_server().await;
    let old = upload(&server, 40).await;
    let old_variants = render_all(&server, &old).await;
    record(
        &server,
        rendered_input(EXECUTION, &old, old_variants.clone()),
    )
    .await
    .unwrap();

    let new = upload(&server, 50).await;
    let new_variants = render_all(&server, &new).await;
    let recorded = record(
        &server,
        rendered_input(LATER_EXECUTION, &new, new_variants.clone()),
    )
    .await
    .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Recorded);
    let manifest = stored_manifest(&server).await;
    assert_eq!(
        manifest.version.as_deref(),
        Some(new.image.version.as_str())
    );
    let mut retired = manifest.retired.clone();
    retired.sort();
    let mut expected_retired = variant_keys(&old_variants);
    // And its own working copy, done with once the variants are rendered.
    expected_retired.push(working_copy_key(
        &testing::test_config().outputs,
        KEY,
        &new.image.version,
    ));
    expected_retired.sort();
    assert_eq!(retired, expected_retired);
    let mut expected = variant_keys(&new_variants);
    expected.push(MANIFEST_KEY.to_owned());
    expected.sort();
    assert_eq!(
        output_keys(&server).await,
        expected,
        "the old variants are gone"
    );
}

#[tokio::test]
async fn a_stale_execution_never_overwrites_a_newer_upload_and_removes_its_outputs() {
    let server = testing::start_server().await;
    // The old upload renders, then the key is uploaded again and the new upload is recorded first.
    let old = upload(&server, 40).await;
    let old_variants = render_all(&server, &old).await;
    let new = upload(&server, 50).await;
    let new_variants = render_all(&server, &new).await;
    record(
        &server,
        rendered_input(LATER_EXECUTION, &new, new_variants.clone()),
    )
    .await
    .unwrap();

    let late = record(&server, rendered_input(EXECUTION, &old, old_variants))
        .await
        .unwrap();
    assert_eq!(late.outcome, RecordOutcome::Superseded);
    let manifest = stored_manifest(&server).await;
    assert_eq!(manifest.execution_id, LATER_EXECUTION);
    let mut expected = variant_keys(&new_variants);
    expected.push(MANIFEST_KEY.to_owned());
    expected.sort();
    assert_eq!(output_keys(&server).await, expected);
}

#[tokio::test]
async fn a_stale_execution_recorded_before_the_newer_one_writes_nothing() {
    let server = testing::start_server().await;
    let old = upload(&server, 40).await;
    let old_variants = render_all(&server, &old).await;
    // Replaced, but the newer execution has not recorded anything yet.
    let new = upload(&server, 50).await;
    let late = record(&server, rendered_input(EXECUTION, &old, old_variants))
        .await
        .unwrap();
    assert_eq!(late.outcome, RecordOutcome::Superseded);
    assert_eq!(
        output_keys(&server).await,
        std::slice::from_ref(&new.image.working_copy.key),
        "only the newer upload's working copy, for its own execution"
    );
}

#[tokio::test]
async fn an_iteration_that_found_the_upload_superseded_cleans_up_the_others() {
    let server = testing::start_server().await;
    let old = upload(&server, 40).await;
    let mut variants = render_all(&server, &old).await;
    variants[1] = json!({"name": "wide", "notRendered": {"Error": "Ferrotype.Superseded", "Cause": "replaced"}});
    let new = upload(&server, 50).await;
    let recorded = record(&server, rendered_input(EXECUTION, &old, variants))
        .await
        .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Superseded);
    assert_eq!(
        output_keys(&server).await,
        std::slice::from_ref(&new.image.working_copy.key)
    );
}

#[tokio::test]
async fn a_superseded_record_removes_its_version_s_outputs_but_not_the_current_ones() {
    let server = testing::start_server().await;
    let old = upload(&server, 40).await;
    render_all(&server, &old).await;
    let new = upload(&server, 50).await;
    let new_variants = render_all(&server, &new).await;
    record(
        &server,
        rendered_input(LATER_EXECUTION, &new, new_variants.clone()),
    )
    .await
    .unwrap();
    // What RecordSuperseded passes: the state, with `image` as validate left it.
    let mut state = old.event.clone();
    state["image"] = serde_json::to_value(&old.image).unwrap();
    let recorded = record(&server, state_input("superseded", state))
        .await
        .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Superseded);
    let mut expected = variant_keys(&new_variants);
    expected.push(MANIFEST_KEY.to_owned());
    expected.sort();
    assert_eq!(output_keys(&server).await, expected);

    // Validate never got that far: the version is named by the event alone, with the same keys.
    let older = upload(&server, 30).await;
    render_all(&server, &older).await;
    upload(&server, 20).await;
    let recorded = record(&server, state_input("superseded", older.event.clone()))
        .await
        .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Superseded);
    assert!(
        !output_keys(&server)
            .await
            .iter()
            .any(|key| key.contains(&older.image.version)),
        "the event alone names the same version tag"
    );
}

#[tokio::test]
async fn a_rejection_records_its_name_and_message() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    let recorded = record(
        &server,
        state_input("rejected", rejected_state(&upload.event)),
    )
    .await
    .unwrap();
    assert_eq!(recorded.manifest_key, MANIFEST_KEY, "the decoded key");
    assert_eq!(recorded.status, ManifestStatus::Rejected);
    let manifest = stored_manifest(&server).await;
    assert_eq!(manifest.status, ManifestStatus::Rejected);
    assert_eq!(manifest.bucket, INPUT_BUCKET);
    assert_eq!(manifest.key, KEY);
    let error = manifest.error.unwrap();
    assert_eq!(error.name, "ImageRejected.TooManyPixels");
    assert_eq!(error.message, "65536x65536 is over the limit");
    assert_eq!(
        manifest.version.as_deref(),
        Some(upload.image.version.as_str())
    );
    assert!(manifest.source.is_none());
    assert!(manifest.variants.is_empty());
}

#[tokio::test]
async fn corrupt_data_found_by_one_iteration_removes_what_the_others_wrote() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    let mut variants = render_all(&server, &upload).await;
    variants[2] = json!({"name": "centred", "notRendered": {
        "Error": "ImageRejected.Corrupt",
        "Cause": "{\"errorType\":\"ImageRejected.Corrupt\",\"errorMessage\":\"the JPEG data ends early\"}"
    }});
    let recorded = record(&server, rendered_input(EXECUTION, &upload, variants))
        .await
        .unwrap();
    assert_eq!(recorded.status, ManifestStatus::Rejected);
    let manifest = stored_manifest(&server).await;
    assert_eq!(manifest.error.unwrap().message, "the JPEG data ends early");
    assert_eq!(output_keys(&server).await, [MANIFEST_KEY], "no orphans");
}

#[tokio::test]
async fn a_failed_execution_records_its_error_and_keeps_its_outputs_for_the_redrive() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    let variants = render_all(&server, &upload).await;
    let cause = "{\"errorType\":\"Ferrotype.RenderFailed\",\"errorMessage\":\"the encoder ran out of memory\"}";
    let recorded = record(
        &server,
        status_change(
            &upload.event,
            "FAILED",
            Some("Ferrotype.RenderFailed"),
            Some(cause),
        ),
    )
    .await
    .unwrap();
    assert_eq!(recorded.status, ManifestStatus::Failed);
    let manifest = stored_manifest(&server).await;
    assert_eq!(manifest.status, ManifestStatus::Failed);
    assert_eq!(manifest.key, KEY);
    assert_eq!(manifest.execution_id, EXECUTION);
    assert_eq!(manifest.started_at, "2026-11-28T04:00:00.123Z");
    let error = manifest.error.clone().unwrap();
    assert_eq!(error.name, "Ferrotype.RenderFailed");
    assert_eq!(error.message, "the encoder ran out of memory");
    for key in variant_keys(&variants) {
        assert!(manifest.retained.contains(&key), "{key} retained");
    }
    assert!(manifest.retained.contains(&upload.image.working_copy.key));
    assert_eq!(
        output_keys(&server).await.len(),
        variants.len() + 2,
        "the variants, the working copy and the manifest"
    );

    // The redrive finishes: the success replaces the failure and uses what was kept.
    let recorded = record(
        &server,
        rendered_input(EXECUTION, &upload, variants.clone()),
    )
    .await
    .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Recorded);
    let mut expected = variant_keys(&variants);
    expected.push(MANIFEST_KEY.to_owned());
    expected.sort();
    assert_eq!(output_keys(&server).await, expected);
}

#[tokio::test]
async fn a_failure_never_replaces_a_success_of_the_same_upload() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    let variants = render_all(&server, &upload).await;
    record(&server, rendered_input(EXECUTION, &upload, variants))
        .await
        .unwrap();
    let success = stored_manifest(&server).await;
    // A duplicate execution of the same event failed.
    let recorded = record(
        &server,
        status_change(&upload.event, "FAILED", Some("Ferrotype.Transient"), None),
    )
    .await
    .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Unchanged);
    assert_eq!(stored_manifest(&server).await, success);
}

#[tokio::test]
async fn a_failure_of_a_replaced_upload_cleans_up_instead_of_recording() {
    let server = testing::start_server().await;
    let old = upload(&server, 40).await;
    render_all(&server, &old).await;
    let new = upload(&server, 50).await;
    let recorded = record(
        &server,
        status_change(&old.event, "FAILED", Some("Ferrotype.Transient"), None),
    )
    .await
    .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Superseded);
    assert_eq!(
        output_keys(&server).await,
        std::slice::from_ref(&new.image.working_copy.key)
    );
}

#[tokio::test]
async fn timeouts_and_aborts_are_failures_too() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    record(
        &server,
        status_change(&upload.event, "TIMED_OUT", None, None),
    )
    .await
    .unwrap();
    let error = stored_manifest(&server).await.error.unwrap();
    assert_eq!(error.name, "States.Timeout");
    assert!(error.message.contains("TIMED_OUT"));
    record(&server, status_change(&upload.event, "ABORTED", None, None))
        .await
        .unwrap();
    assert_eq!(
        stored_manifest(&server).await.error.unwrap().name,
        "States.Aborted"
    );
}

#[tokio::test]
async fn an_express_failure_caught_inline_is_recorded_like_a_status_change() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    let mut state = upload.event.clone();
    state["image"] = serde_json::to_value(&upload.image).unwrap();
    state["failure"] =
        json!({"Error": "Ferrotype.RenderFailed", "Cause": "{\"errorMessage\":\"boom\"}"});
    let recorded = record(&server, state_input("failed", state)).await.unwrap();
    assert_eq!(recorded.status, ManifestStatus::Failed);
    let manifest = stored_manifest(&server).await;
    assert_eq!(manifest.error.unwrap().message, "boom");
    assert_eq!(manifest.source.as_ref(), Some(&upload.image.source));
}

#[tokio::test]
async fn a_deletion_leaves_a_tombstone_and_no_outputs() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    let variants = render_all(&server, &upload).await;
    record(&server, rendered_input(EXECUTION, &upload, variants))
        .await
        .unwrap();
    delete_source(&server).await;
    let recorded = record(&server, state_input("deleted", deletion_event()))
        .await
        .unwrap();
    assert_eq!(recorded.status, ManifestStatus::Deleted);
    assert_eq!(recorded.outcome, RecordOutcome::Recorded);
    let tombstone = stored_manifest(&server).await;
    assert_eq!(tombstone.status, ManifestStatus::Deleted);
    assert!(tombstone.variants.is_empty() && tombstone.source.is_none());
    assert_eq!(output_keys(&server).await, [MANIFEST_KEY]);
    // Delivered twice: the tombstone is written again (its new ETag fences off any record that read
    // the old one), and nothing else changes.
    let again = record(&server, state_input("deleted", deletion_event()))
        .await
        .unwrap();
    assert_eq!(again.outcome, RecordOutcome::Recorded);
    assert_eq!(
        stored_manifest(&server).await.status,
        ManifestStatus::Deleted
    );
    assert_eq!(output_keys(&server).await, [MANIFEST_KEY]);
}

#[tokio::test]
async fn a_deletion_followed_by_a_new_upload_is_superseded_and_one_before_any_record_wins() {
    let server = testing::start_server().await;
    // Deleted while its execution still renders, before anything was recorded: the deletion writes its
    // tombstone anyway, so the late record of the deleted upload cannot write the key's first manifest.
    let deleted = upload(&server, 40).await;
    let variants = render_all(&server, &deleted).await;
    delete_source(&server).await;
    let recorded = record(&server, state_input("deleted", deletion_event()))
        .await
        .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Recorded);
    assert_eq!(
        stored_manifest(&server).await.status,
        ManifestStatus::Deleted
    );
    let late = record(&server, rendered_input(EXECUTION, &deleted, variants))
        .await
        .unwrap();
    assert_eq!(late.outcome, RecordOutcome::Superseded);
    assert_eq!(
        stored_manifest(&server).await.status,
        ManifestStatus::Deleted
    );
    assert_eq!(
        output_keys(&server).await,
        [MANIFEST_KEY],
        "its variants are gone"
    );

    // Uploaded again before the deletion's execution ran: the new upload wins.
    let new = upload(&server, 50).await;
    let variants = render_all(&server, &new).await;
    record(&server, rendered_input(LATER_EXECUTION, &new, variants))
        .await
        .unwrap();
    let recorded = record(&server, state_input("deleted", deletion_event()))
        .await
        .unwrap();
    assert_eq!(recorded.outcome, RecordOutcome::Superseded);
    assert_eq!(
        stored_manifest(&server).await.status,
        ManifestStatus::Succeeded
    );
}

#[tokio::test]
async fn inputs_that_fit_nothing_are_bad_events() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    assert_eq!(
        error_name(record(&server, json!({"status": "maybe"})).await),
        "Ferrotype.BadEvent"
    );
    assert_eq!(
        error_name(record(&server, json!([1, 2])).await),
        "Ferrotype.BadEvent"
    );
    assert_eq!(
        error_name(
            record(
                &server,
                status_change(&upload.event, "SUCCEEDED", None, None)
            )
            .await
        ),
        "Ferrotype.BadEvent"
    );
    let mut other = status_change(&upload.event, "FAILED", None, None);
    other["detail-type"] = "Object Created".into();
    assert_eq!(
        error_name(record(&server, other).await),
        "Ferrotype.BadEvent"
    );
    let mut no_input = status_change(&upload.event, "FAILED", None, None);
    no_input["detail"]["input"] = "not json".into();
    assert_eq!(
        error_name(record(&server, no_input).await),
        "Ferrotype.BadEvent"
    );
    assert_eq!(
        error_name(record(&server, state_input("rejected", upload.event.clone())).await),
        "Ferrotype.BadEvent",
        "a rejection without its caught error"
    );
    assert_eq!(
        output_keys(&server).await,
        std::slice::from_ref(&upload.image.working_copy.key),
        "no manifest, nothing removed"
    );
}

#[tokio::test]
async fn a_failing_write_is_retried_and_the_retry_finishes_the_job() {
    let server = testing::start_server().await;
    let upload = upload(&server, 40).await;
    server.faults().inject(
        FaultRule::new(S3Op::PutObject, Fault::InternalError)
            .times(3)
            .for_keys_under("manifests/"),
    );
    let input = state_input("rejected", rejected_state(&upload.event));
    assert_eq!(
        error_name(record(&server, input.clone()).await),
        "Ferrotype.Transient"
    );
    record(&server, input).await.unwrap();
    assert_eq!(output_keys(&server).await, [MANIFEST_KEY]);
}
