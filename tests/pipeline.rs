//! End to end through the real state machine definition (statemachine/pipeline.asl.json), the real
//! handlers and a real S3-compatible server on 127.0.0.1: what `ferrotype run` does, asserted.

use ferrotype::local::{LocalPipeline, LocalSettings, OUTPUT_BUCKET};
use ferrotype_core::event::ObjectEvent;
use ferrotype_core::keys;
use ferrotype_core::pipeline::ManifestStatus;
use ferrotype_executor::history::EventType;
use ferrotype_executor::{ExecutionRecord, ExecutionStatus, TimeMode};
use ferrotype_local_s3::testing;
use ferrotype_local_s3::{Fault, FaultRule, S3Op};

async fn pipeline(data_dir: &std::path::Path) -> LocalPipeline {
    let mut settings = LocalSettings::new(data_dir).unwrap();
    settings.time_mode = TimeMode::Simulated;
    LocalPipeline::start(settings).await.unwrap()
}

async fn puts_of(pipeline: &LocalPipeline, key: &str) -> usize {
    pipeline
        .server()
        .faults()
        .requests_of(S3Op::PutObject)
        .iter()
        .filter(|r| r.key == key && r.fault.is_none())
        .count()
}

/// The Map iterations (variant indexes) that succeeded in an execution.
fn succeeded_iterations(record: &ExecutionRecord) -> Vec<usize> {
    record
        .history
        .iter()
        .filter(|event| event.event_type == EventType::MapIterationSucceeded)
        .filter_map(|event| event.map_iteration_succeeded_event_details.as_ref())
        .map(|iteration| iteration.index)
        .collect()
}

/// The key a variant of this upload is written at (the version tag comes from the event).
fn variant_key(pipeline: &LocalPipeline, event: &ObjectEvent, variant: &str) -> String {
    let config = pipeline.config();
    let profile = &config.profiles[0];
    let identity = event
        .version_identity()
        .expect("an upload event names its version");
    let tag = keys::version_tag(&identity, profile);
    let spec = profile.variants.iter().find(|v| v.name == variant).unwrap();
    let source_key = event.candidate_keys().remove(0);
    keys::variant_key(&config.outputs, profile, spec, &source_key, &tag)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_jpeg_yields_every_variant_and_a_succeeded_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path()).await;
    let event = pipeline
        .upload(
            "uploads/holiday/red flower (1).jpg",
            testing::jpeg(1200, 900),
        )
        .await
        .unwrap();
    let record = pipeline.execute(&event).await.unwrap();
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        record.error,
        record.cause
    );

    let manifest = pipeline
        .manifest("uploads/holiday/red flower (1).jpg")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.status, ManifestStatus::Succeeded);
    let mut sizes: Vec<_> = manifest
        .variants
        .iter()
        .map(|v| (v.name.as_str(), v.width, v.height, v.content_type.as_str()))
        .collect();
    sizes.sort();
    assert_eq!(
        sizes,
        vec![
            ("coverphoto", 800, 800, "image/jpeg"),
            ("thumbnail", 300, 300, "image/jpeg"),
            ("thumbnail-webp", 300, 300, "image/webp"),
        ]
    );
    // The outputs are real files in the local output bucket, at the deterministic keys, of the right size.
    for variant in &manifest.variants {
        let bytes = std::fs::read(pipeline.object_path(OUTPUT_BUCKET, &variant.key)).unwrap();
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (variant.width, variant.height)
        );
    }
    // Keys name the profile, the source key and its version, so distinct sources and versions never share one.
    let version = manifest
        .version
        .clone()
        .expect("a rendered manifest names its version");
    let thumbnail = format!("variants/default/holiday/red flower (1).jpg/{version}/thumbnail.jpg");
    assert!(
        manifest.variants.iter().any(|v| v.key == thumbnail),
        "{thumbnail} not in {:?}",
        manifest.variants
    );
    // The history is AWS-shaped and stored for `executions show`.
    let stored = pipeline.store().load(&record.options.name).unwrap();
    assert_eq!(stored.status, ExecutionStatus::Succeeded);
    let table = stored.history_table();
    for state in [
        "Validate",
        "FacesWanted",
        "DetectFaces",
        "RenderVariants",
        "RecordResult",
    ] {
        assert!(table.contains(state), "{state} missing from\n{table}");
    }
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_file_is_rejected_recorded_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path()).await;
    for (key, body, reason) in [
        (
            "uploads/bomb.png",
            testing::png_header_claiming(65_536, 65_536),
            "ImageRejected.TooManyPixels",
        ),
        (
            "uploads/notes.jpg",
            testing::text(),
            "ImageRejected.NotAnImage",
        ),
        ("uploads/empty.jpg", Vec::new(), "ImageRejected.Empty"),
        (
            "uploads/phone.heic",
            testing::heic(),
            "ImageRejected.UnsupportedFormat",
        ),
        // An intact header over pixel data cut short: validate decodes the whole image once, and finds it.
        (
            "uploads/cut.jpg",
            testing::jpeg_cut_in_data(1200, 900),
            "ImageRejected.Corrupt",
        ),
    ] {
        let event = pipeline.upload(key, body).await.unwrap();
        let record = pipeline.execute(&event).await.unwrap();
        // A rejection is the pipeline working as designed: recorded, and the execution succeeds.
        assert_eq!(record.status, ExecutionStatus::Succeeded, "{key}");
        assert!(
            record
                .output
                .as_ref()
                .unwrap()
                .to_string()
                .contains("rejected"),
            "{key}: {:?}",
            record.output
        );
        let manifest = pipeline.manifest(key).await.unwrap().unwrap();
        assert_eq!(manifest.status, ManifestStatus::Rejected, "{key}");
        assert_eq!(manifest.error.unwrap().name, reason, "{key}");
        assert!(manifest.variants.is_empty());
    }
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_that_fails_once_is_retried_and_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path()).await;
    let event = pipeline
        .upload("uploads/retry.jpg", testing::jpeg(1000, 700))
        .await
        .unwrap();
    let key = variant_key(&pipeline, &event, "coverphoto");
    // Enough 503s to exhaust the SDK's own attempts once, so the state machine's Retry has to act.
    pipeline.server().faults().inject(
        FaultRule::new(S3Op::PutObject, Fault::SlowDown)
            .times(3)
            .for_keys_under(&key),
    );
    let record = pipeline.execute(&event).await.unwrap();
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        record.error,
        record.cause
    );
    assert_eq!(pipeline.server().faults().pending(), 0);
    let retried = record.history.iter().any(|e| {
        serde_json::to_value(e)
            .unwrap()
            .to_string()
            .contains("Ferrotype.Throttled")
    });
    assert!(
        retried,
        "the history shows the transient failure that was retried"
    );
    assert_eq!(puts_of(&pipeline, &key).await, 1);
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_render_that_keeps_failing_fails_and_a_redrive_completes_without_rerendering() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline(dir.path()).await;
    let event = pipeline
        .upload("uploads/stubborn.jpg", testing::jpeg(1000, 700))
        .await
        .unwrap();
    let failing = &variant_key(&pipeline, &event, "coverphoto");
    let fine = &variant_key(&pipeline, &event, "thumbnail");
    pipeline.server().faults().inject(
        FaultRule::new(S3Op::PutObject, Fault::InternalError)
            .times(10_000)
            .for_keys_under(failing),
    );
    let record = pipeline.execute(&event).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("Ferrotype.Transient"));
    // record-result wrote the `failed` manifest from the status-change event.
    let manifest = pipeline
        .manifest("uploads/stubborn.jpg")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.status, ManifestStatus::Failed);
    assert_eq!(manifest.error.as_ref().unwrap().name, "Ferrotype.Transient");
    // When the failing iteration gave up, iterations still running were aborted, as on AWS (usually
    // none: the others render faster than it exhausts its retries, but a loaded machine may reorder
    // them). A redrive runs the failed and the aborted ones again, never one that succeeded.
    let variants = &pipeline.config().profiles[0].variants;
    let index_of = |name: &str| variants.iter().position(|v| v.name == name).unwrap();
    let succeeded = succeeded_iterations(&record);
    assert!(!succeeded.contains(&index_of("coverphoto")));
    let fine_succeeded = succeeded.contains(&index_of("thumbnail"));
    let fine_puts = puts_of(&pipeline, fine).await;
    assert!(
        fine_puts == 1 || !fine_succeeded,
        "a succeeded render wrote its variant"
    );

    pipeline.server().faults().clear();
    let invocations_before = pipeline.invocations();
    let redriven = pipeline.redrive(&record.options.name).await.unwrap();
    assert_eq!(
        redriven.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        redriven.error,
        redriven.cause
    );
    assert_eq!(redriven.redrive_count, 1);
    // Only the iterations that had not succeeded and the record step ran again.
    let rerun_fine = usize::from(!fine_succeeded);
    assert_eq!(puts_of(&pipeline, fine).await, fine_puts + rerun_fine);
    assert_eq!(puts_of(&pipeline, failing).await, 1);
    let not_succeeded = variants.len() - succeeded.len();
    assert_eq!(
        pipeline.invocations() - invocations_before,
        not_succeeded as u64 + 1
    );
    let manifest = pipeline
        .manifest("uploads/stubborn.jpg")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(manifest.status, ManifestStatus::Succeeded);
    assert_eq!(manifest.variants.len(), 3);
    pipeline.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_payload_raises_data_limit_exceeded() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = LocalSettings::new(dir.path()).unwrap();
    settings.time_mode = TimeMode::Simulated;
    // A profile so large that validate's output (which lists the variants) passes the 256 KiB state limit.
    let template = settings.config.profiles[0].variants[0].clone();
    settings.config.profiles[0].variants = (0..1500)
        .map(|i| {
            let mut variant = template.clone();
            variant.name = format!("size-{i:04}-with-a-long-descriptive-name-for-the-cdn-team");
            variant
        })
        .collect();
    let pipeline = LocalPipeline::start(settings).await.unwrap();
    let event = pipeline
        .upload("uploads/big-profile.jpg", testing::jpeg(64, 64))
        .await
        .unwrap();
    let record = pipeline.execute(&event).await.unwrap();
    assert_eq!(record.status, ExecutionStatus::Failed);
    assert_eq!(record.error.as_deref(), Some("States.DataLimitExceeded"));
    pipeline.shutdown().await;
}

/// Issue 13's local backfill: 30 uploads processed, their outputs deleted, and
/// statemachine/backfill.asl.json (Distributed Map, ItemReader over the input bucket, batches, child
/// pipeline executions, ResultWriter) recreates every manifest and variant.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backfill_recreates_every_manifest_and_variant() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = std::sync::Arc::new(pipeline(dir.path()).await);
    for i in 0..30 {
        let event = pipeline
            .upload(
                &format!("uploads/bf/{i:02} photo.jpg"),
                testing::jpeg(120 + i, 90),
            )
            .await
            .unwrap();
        assert_eq!(
            pipeline.execute(&event).await.unwrap().status,
            ExecutionStatus::Succeeded
        );
    }
    let s3 = pipeline.s3();
    let outputs = testing::keys(s3, OUTPUT_BUCKET).await;
    assert!(outputs.len() >= 30 * 4, "{}", outputs.len());
    for key in &outputs {
        s3.delete_object()
            .bucket(OUTPUT_BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
    }
    assert!(testing::keys(s3, OUTPUT_BUCKET).await.is_empty());

    let record = ferrotype::backfill::backfill(pipeline.clone(), "uploads/")
        .await
        .unwrap();
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{:?} {:?}",
        record.error,
        record.cause
    );
    assert_eq!(record.map_runs.len(), 1);
    assert_eq!(record.map_runs[0].items, 3, "30 objects in batches of 10");
    for i in 0..30 {
        let manifest = pipeline
            .manifest(&format!("uploads/bf/{i:02} photo.jpg"))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no manifest for {i:02}"));
        assert_eq!(manifest.status, ManifestStatus::Succeeded);
        assert_eq!(manifest.source.as_ref().unwrap().width, 120 + i);
        for variant in &manifest.variants {
            assert!(
                pipeline.object_path(OUTPUT_BUCKET, &variant.key).is_file(),
                "{}",
                variant.key
            );
        }
    }
    // The Map Run's result files, as AWS writes them.
    let results = testing::keys(s3, OUTPUT_BUCKET).await;
    assert!(
        results
            .iter()
            .any(|key| key.starts_with("backfills/") && key.ends_with("manifest.json")),
        "{results:?}"
    );
}
