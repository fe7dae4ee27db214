//! record-result: writes the manifest of a source image (`<manifestsPrefix><source key>.json` in the output
//! bucket), whatever happened to it. Three inputs: the state machine's `succeeded` and `rejected` calls,
//! and the EventBridge status-change event of an execution that FAILED, TIMED_OUT or was ABORTED.
//! Writing is idempotent: the same input always writes the same document, except `recordedAt`.

use std::collections::HashMap;
use std::sync::Arc;

use ferrotype_aws::s3::metadata_value;
use ferrotype_aws::{ObjectStore, PutObject, StageError};
use ferrotype_core::config::Config;
use ferrotype_core::event::ObjectCreatedEvent;
use ferrotype_core::keys::manifest_key;
use ferrotype_core::pipeline::{
    Manifest, ManifestError, ManifestStatus, RecordRequest, Recorded, StatesError,
};
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Deserializer};

/// The detail-type of Step Functions' execution status events.
pub const STATUS_CHANGE_DETAIL_TYPE: &str = "Step Functions Execution Status Change";
/// Manifests are rewritten by later executions of the same key: caches must revalidate.
pub const MANIFEST_CACHE_CONTROL: &str = "no-cache";

/// What record-result needs, built once per container (or once by the local runner).
#[derive(Debug, Clone)]
pub struct RecordResult {
    pub s3: ObjectStore,
    pub config: Arc<Config>,
    pub output_bucket: String,
}

impl RecordResult {
    pub fn new(
        s3: aws_sdk_s3::Client,
        config: impl Into<Arc<Config>>,
        output_bucket: impl Into<String>,
    ) -> RecordResult {
        RecordResult {
            s3: ObjectStore::new(s3),
            config: config.into(),
            output_bucket: output_bucket.into(),
        }
    }
}

/// One of the three inputs.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordInput {
    /// From the state machine (`status` is `succeeded` or `rejected`).
    Pipeline(RecordRequest),
    /// From EventBridge, for an execution that did not succeed.
    StatusChange(ExecutionStatusChange),
}

impl RecordInput {
    pub fn from_value(value: serde_json::Value) -> Result<RecordInput, String> {
        if value.get("detail-type").is_some() {
            let change: ExecutionStatusChange = serde_json::from_value(value)
                .map_err(|err| format!("not a Step Functions status-change event: {err}"))?;
            if change.detail_type != STATUS_CHANGE_DETAIL_TYPE {
                return Err(format!(
                    "expected detail-type {STATUS_CHANGE_DETAIL_TYPE:?}, got {:?}",
                    change.detail_type
                ));
            }
            Ok(RecordInput::StatusChange(change))
        } else {
            serde_json::from_value(value)
                .map(RecordInput::Pipeline)
                .map_err(|err| format!("not a record request: {err}"))
        }
    }
}

impl<'de> Deserialize<'de> for RecordInput {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        RecordInput::from_value(value).map_err(serde::de::Error::custom)
    }
}

/// EventBridge "Step Functions Execution Status Change" (the fields record-result reads).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ExecutionStatusChange {
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub detail: ExecutionDetail,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionDetail {
    pub execution_arn: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED, PENDING_REDRIVE.
    pub status: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub start_date: Option<i64>,
    /// The execution input (the S3 event) as a JSON string.
    #[serde(default)]
    pub input: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
}

pub async fn handler(
    deps: &RecordResult,
    event: LambdaEvent<RecordInput>,
) -> Result<Recorded, StageError> {
    let manifest = match event.payload {
        RecordInput::Pipeline(request) => from_pipeline(request)?,
        RecordInput::StatusChange(change) => match from_status_change(change)? {
            FailedExecution::Record(manifest) => *manifest,
            FailedExecution::AlreadyRecorded { key, rejection } => {
                // A rejection also ends the execution as FAILED, after RecordRejection wrote its manifest.
                tracing::info!(
                    key,
                    rejection,
                    "rejection already recorded by the state machine"
                );
                return Ok(Recorded {
                    manifest_key: manifest_key(&deps.config.outputs, &key),
                    status: ManifestStatus::Rejected,
                    superseded: false,
                });
            }
        },
    };
    write(deps, &manifest).await
}

/// Manifests are small; a stored object larger than this is not one of ours and is replaced.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;

async fn write(deps: &RecordResult, manifest: &Manifest) -> Result<Recorded, StageError> {
    let key = manifest_key(&deps.config.outputs, &manifest.key);
    // Executions for the same key can finish out of order (a replaced upload fails its older execution
    // with SourceChanged after the newer one succeeded; status-change events arrive late): the
    // manifest of the execution that started last wins.
    if let Some(newer) = newer_stored_manifest(deps, &key, manifest).await? {
        tracing::info!(
            key,
            status = ?manifest.status,
            execution = manifest.execution_id,
            newer_execution = newer.execution_id,
            "a later execution's manifest is already recorded; keeping it"
        );
        return Ok(Recorded {
            manifest_key: key,
            status: manifest.status,
            superseded: true,
        });
    }
    let body = serde_json::to_vec_pretty(manifest).map_err(|err| {
        StageError::RenderFailed(format!("the manifest does not serialise: {err}"))
    })?;
    let metadata = HashMap::from([
        ("source-bucket".to_owned(), metadata_value(&manifest.bucket)),
        ("source-key".to_owned(), metadata_value(&manifest.key)),
    ]);
    deps.s3
        .put(PutObject {
            bucket: &deps.output_bucket,
            key: &key,
            body,
            content_type: "application/json",
            cache_control: MANIFEST_CACHE_CONTROL,
            metadata,
        })
        .await?;
    tracing::info!(key, status = ?manifest.status, execution = manifest.execution_id, "manifest recorded");
    Ok(Recorded {
        manifest_key: key,
        status: manifest.status,
        superseded: false,
    })
}

/// The stored manifest at `key` when it comes from an execution that started after this one's.
async fn newer_stored_manifest(
    deps: &RecordResult,
    key: &str,
    manifest: &Manifest,
) -> Result<Option<Manifest>, StageError> {
    let Some(ours) = parse_rfc3339(&manifest.started_at) else {
        return Ok(None);
    };
    let Some(bytes) = deps
        .s3
        .get_if_exists(&deps.output_bucket, key, MAX_MANIFEST_BYTES)
        .await?
    else {
        return Ok(None);
    };
    let Ok(stored) = serde_json::from_slice::<Manifest>(&bytes) else {
        return Ok(None);
    };
    let newer = stored.execution_id != manifest.execution_id
        && parse_rfc3339(&stored.started_at).is_some_and(|theirs| theirs > ours);
    Ok(newer.then_some(stored))
}

fn parse_rfc3339(text: &str) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current time formats as RFC 3339")
}

fn from_pipeline(request: RecordRequest) -> Result<Manifest, StageError> {
    Ok(match request {
        RecordRequest::Succeeded {
            execution_id,
            started_at,
            source,
            profile,
            faces,
            variants,
        } => Manifest {
            status: ManifestStatus::Succeeded,
            bucket: source.bucket.clone(),
            key: source.key.clone(),
            source: Some(source),
            profile: Some(profile),
            focus: Some(faces.focus),
            faces: Some(faces),
            variants,
            execution_id,
            started_at,
            recorded_at: now(),
            error: None,
        },
        RecordRequest::Rejected {
            execution_id,
            started_at,
            event,
            rejection,
        } => {
            let event = ObjectCreatedEvent::from_value(event)
                .map_err(|err| StageError::BadEvent(err.to_string()))?;
            Manifest {
                status: ManifestStatus::Rejected,
                bucket: event.bucket().to_owned(),
                key: source_key(&event),
                source: None,
                profile: None,
                focus: None,
                faces: None,
                variants: Vec::new(),
                execution_id,
                started_at,
                recorded_at: now(),
                error: Some(ManifestError {
                    message: rejection.message(),
                    name: rejection.error,
                }),
            }
        }
    })
}

/// The source key of an event: the decoded candidate (for a rejected or failed upload the object may not
/// exist any more, so there is nothing to try the candidates against).
fn source_key(event: &ObjectCreatedEvent) -> String {
    event.candidate_keys().swap_remove(0)
}

/// What a non-successful execution means for the manifest.
enum FailedExecution {
    Record(Box<Manifest>),
    /// The execution failed because its upload was rejected, which the state machine recorded already.
    AlreadyRecorded {
        key: String,
        rejection: String,
    },
}

fn from_status_change(change: ExecutionStatusChange) -> Result<FailedExecution, StageError> {
    let detail = change.detail;
    let fallback_error = match detail.status.as_str() {
        "FAILED" => "States.Failed",
        "TIMED_OUT" => "States.Timeout",
        "ABORTED" => "States.Aborted",
        other => {
            return Err(StageError::BadEvent(format!(
                "execution status {other:?} is not a failure (the rule should send FAILED, TIMED_OUT and ABORTED only)"
            )))
        }
    };
    let input = detail.input.as_deref().ok_or_else(|| {
        StageError::BadEvent("the status-change event carries no execution input".to_owned())
    })?;
    let input: serde_json::Value = serde_json::from_str(input)
        .map_err(|err| StageError::BadEvent(format!("the execution input is not JSON: {err}")))?;
    let event = ObjectCreatedEvent::from_value(input)
        .map_err(|err| StageError::BadEvent(format!("the execution input: {err}")))?;
    let key = source_key(&event);
    let caught = StatesError {
        error: detail
            .error
            .clone()
            .unwrap_or_else(|| fallback_error.to_owned()),
        cause: detail
            .cause
            .clone()
            .unwrap_or_else(|| format!("the execution ended with status {}", detail.status)),
    };
    if caught.error.starts_with("ImageRejected.") {
        return Ok(FailedExecution::AlreadyRecorded {
            key,
            rejection: caught.error,
        });
    }
    let started_at = match detail.start_date {
        Some(millis) => rfc3339_from_millis(millis)?,
        None => String::new(),
    };
    Ok(FailedExecution::Record(Box::new(Manifest {
        status: ManifestStatus::Failed,
        bucket: event.bucket().to_owned(),
        key,
        source: None,
        profile: None,
        focus: None,
        faces: None,
        variants: Vec::new(),
        execution_id: detail.execution_arn,
        started_at,
        recorded_at: now(),
        error: Some(ManifestError {
            message: caught.message(),
            name: caught.error,
        }),
    })))
}

fn rfc3339_from_millis(millis: i64) -> Result<String, StageError> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|at| {
            at.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .ok_or_else(|| StageError::BadEvent(format!("startDate {millis} is not a time")))
}
