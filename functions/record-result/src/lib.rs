//! record-result: keeps the manifest of a source key (`<manifestsPrefix><source key>.json` in the output
//! bucket) true to the key's current object, whatever order executions end in (docs/CONTRACTS.md, "The
//! integrity rule").
//!
//! Every record is a compare-and-swap: read the stored manifest and its ETag, check that this record's
//! version is still the key's current object (or, for a deletion, that the key is still empty), write with
//! `If-Match` / `If-None-Match: *`, and start over when someone wrote in between. A version that is no
//! longer current writes nothing and removes what it rendered. The previous manifest's outputs that the
//! new one does not use are listed in it as `retired` and deleted after the write.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use ferrotype_aws::s3::metadata_value;
use ferrotype_aws::{
    Currency, ObjectStore, PutObject, StageError, VersionRef, WriteCondition, Written,
};
use ferrotype_core::config::{Config, Profile};
use ferrotype_core::event::ObjectEvent;
use ferrotype_core::keys::{manifest_key, owned_keys, version_tag};
use ferrotype_core::pipeline::{
    Manifest, ManifestError, ManifestStatus, RecordOutcome, RecordRequest, Recorded,
    RenderedVariant, StatesError, ValidatedImage, VariantOutcome,
};
use ferrotype_core::FaceDetection;
use lambda_runtime::LambdaEvent;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// The detail-type of Step Functions' execution status events.
pub const STATUS_CHANGE_DETAIL_TYPE: &str = "Step Functions Execution Status Change";
/// Manifests are rewritten by later uploads of the same key: caches must revalidate.
pub const MANIFEST_CACHE_CONTROL: &str = "no-cache";
/// Manifests are small; a stored object larger than this is not one of ours and is replaced.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Compare-and-swap rounds before giving up with `Ferrotype.Transient` (the ASL retries the task). Each
/// round that fails saw another record of the key land, so many in a row means a storm of uploads.
const MAX_ROUNDS: usize = 8;

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

/// One of the two kinds of input.
#[derive(Debug, Clone, PartialEq)]
pub enum RecordInput {
    /// From the state machine.
    Pipeline(RecordRequest),
    /// From EventBridge, for a Standard execution that did not succeed.
    StatusChange(ExecutionStatusChange),
}

impl RecordInput {
    pub fn from_value(value: Value) -> Result<RecordInput, String> {
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
        let value = Value::deserialize(deserializer)?;
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
    let record = match event.payload {
        RecordInput::Pipeline(request) => match request {
            RecordRequest::Rendered {
                execution_id,
                started_at,
                image,
                faces,
                variants,
            } => rendered(deps, execution_id, started_at, *image, faces, variants)?,
            RecordRequest::Rejected {
                execution_id,
                started_at,
                event,
            } => rejected(deps, execution_id, started_at, &event)?,
            RecordRequest::Superseded {
                execution_id,
                started_at,
                event,
            } => superseded(deps, execution_id, started_at, &event)?,
            RecordRequest::Deleted {
                execution_id,
                started_at,
                event,
            } => deleted(deps, execution_id, started_at, event)?,
            RecordRequest::Failed {
                execution_id,
                started_at,
                event,
            } => {
                let caught: StatesError =
                    serde_json::from_value(event.get("failure").cloned().unwrap_or(Value::Null))
                        .map_err(|err| {
                            StageError::BadEvent(format!("no caught `failure`: {err}"))
                        })?;
                failed(deps, execution_id, started_at, &event, caught)?
            }
        },
        RecordInput::StatusChange(change) => from_status_change(deps, change)?,
    };
    let key = manifest_key(&deps.config.outputs, &record.manifest.key);
    let status = record.manifest.status;
    let outcome = match record.plan {
        Plan::Commit {
            requirement,
            own_keys,
        } => commit(deps, &key, record.manifest, requirement, &own_keys).await?,
        Plan::CleanUp { own_keys } => {
            clean_up_superseded(deps, &key, &own_keys).await?;
            RecordOutcome::Superseded
        }
        Plan::Nothing => RecordOutcome::Unchanged,
    };
    tracing::info!(key, ?status, ?outcome, "recorded");
    Ok(Recorded {
        manifest_key: key,
        status,
        outcome,
    })
}

/// What an input asks for: the manifest it would write, and how.
struct Record {
    manifest: Manifest,
    plan: Plan,
}

enum Plan {
    /// Write `manifest` if `requirement` holds when it is written; `own_keys` are every output key this
    /// version may have written (removed unless the manifest keeps them).
    Commit {
        requirement: Requirement,
        own_keys: Vec<String>,
    },
    /// The version is not current (a stage said so): remove its outputs, write nothing.
    CleanUp { own_keys: Vec<String> },
    /// Nothing to do (e.g. a failed deletion: there is no upload to record).
    Nothing,
}

/// What must be true of the source key for a record to be written.
enum Requirement {
    /// This version is the key's current object.
    Current {
        version_id: Option<String>,
        etag: Option<String>,
    },
    /// The key has no object (a deletion).
    Absent,
}

fn rendered(
    deps: &RecordResult,
    execution_id: String,
    started_at: String,
    image: ValidatedImage,
    faces: FaceDetection,
    outcomes: Vec<VariantOutcome>,
) -> Result<Record, StageError> {
    let profile = profile_as_validated(deps, &image)?;
    let own_keys = owned_keys(
        &deps.config.outputs,
        &profile,
        &image.source.key,
        &image.version,
    );
    let mut variants = Vec::new();
    let mut rejection = None;
    for outcome in outcomes {
        match outcome {
            VariantOutcome::Rendered(variant) => variants.push(variant),
            VariantOutcome::NotRendered { name, not_rendered } => {
                if not_rendered.error == StageError::SUPERSEDED {
                    tracing::info!(variant = name, "an iteration found the upload superseded");
                    return Ok(Record {
                        manifest: base_manifest(
                            ManifestStatus::Succeeded,
                            &image.source.bucket,
                            &image.source.key,
                            execution_id,
                            started_at,
                        ),
                        plan: Plan::CleanUp { own_keys },
                    });
                }
                rejection.get_or_insert(not_rendered);
            }
        }
    }
    let requirement = Requirement::Current {
        version_id: image.source.version_id.clone(),
        etag: Some(image.source.etag.clone()),
    };
    let mut manifest = base_manifest(
        ManifestStatus::Succeeded,
        &image.source.bucket,
        &image.source.key,
        execution_id,
        started_at,
    );
    manifest.version = Some(image.version.clone());
    manifest.profile = Some(image.profile.clone());
    match rejection {
        // The pixel data behind an intact header was found corrupt: the upload is refused, and what the
        // other iterations wrote goes.
        Some(rejection) => {
            manifest.status = ManifestStatus::Rejected;
            manifest.error = Some(ManifestError {
                message: rejection.message(),
                name: rejection.error,
            });
            manifest.source = Some(image.source);
        }
        None => {
            manifest.focus = Some(faces.focus);
            manifest.faces = Some(faces);
            manifest.variants = variants;
            manifest.source = Some(image.source);
        }
    }
    Ok(Record {
        manifest,
        plan: Plan::Commit {
            requirement,
            own_keys,
        },
    })
}

/// The profile the execution ran with: the current profile of that name, with the variants validate
/// handed on (the configuration may have changed since; the keys must be the ones rendered).
fn profile_as_validated(
    deps: &RecordResult,
    image: &ValidatedImage,
) -> Result<Profile, StageError> {
    let mut profile = deps
        .config
        .profile(&image.profile)
        .ok_or_else(|| StageError::BadEvent(format!("unknown profile {:?}", image.profile)))?
        .clone();
    profile.variants = image.variants.clone();
    Ok(profile)
}

/// The upload an execution's state is about: its S3 event, and what validate said if it got that far.
struct ExecutionState {
    event: ObjectEvent,
    image: Option<ValidatedImage>,
}

impl ExecutionState {
    fn parse(state: &Value) -> Result<ExecutionState, StageError> {
        let event = ObjectEvent::created(state.clone())
            .map_err(|err| StageError::BadEvent(format!("the execution's state: {err}")))?;
        let image = state
            .get("image")
            .map(|image| serde_json::from_value::<ValidatedImage>(image.clone()))
            .transpose()
            .map_err(|err| StageError::BadEvent(format!("the execution's `image`: {err}")))?;
        Ok(ExecutionState { event, image })
    }

    /// The source key: validate's answer, else the decoded key of the event (the object may not exist
    /// any more, so there is nothing to try the candidates against).
    fn key(&self) -> String {
        match &self.image {
            Some(image) => image.source.key.clone(),
            None => self.event.candidate_keys().swap_remove(0),
        }
    }

    fn requirement(&self) -> Requirement {
        match &self.image {
            Some(image) => Requirement::Current {
                version_id: image.source.version_id.clone(),
                etag: Some(image.source.etag.clone()),
            },
            None => Requirement::Current {
                version_id: self.event.detail.object.version_id.clone(),
                etag: self.event.detail.object.etag.clone(),
            },
        }
    }

    /// The version tag and every key this version may have written (none when the event names no
    /// version and validate never got far enough to say).
    fn version_and_own_keys(
        &self,
        deps: &RecordResult,
    ) -> Result<(Option<String>, Vec<String>), StageError> {
        if let Some(image) = &self.image {
            let profile = profile_as_validated(deps, image)?;
            let own = owned_keys(
                &deps.config.outputs,
                &profile,
                &image.source.key,
                &image.version,
            );
            return Ok((Some(image.version.clone()), own));
        }
        let key = self.key();
        let (Some(profile), Some(identity)) = (
            deps.config.profile_for_key(&key),
            self.event.version_identity(),
        ) else {
            return Ok((None, Vec::new()));
        };
        let tag = version_tag(&identity, profile);
        let own = owned_keys(&deps.config.outputs, profile, &key, &tag);
        Ok((Some(tag), own))
    }
}

fn rejected(
    deps: &RecordResult,
    execution_id: String,
    started_at: String,
    state: &Value,
) -> Result<Record, StageError> {
    let parsed = ExecutionState::parse(state)?;
    let rejection: StatesError =
        serde_json::from_value(state.get("rejection").cloned().unwrap_or(Value::Null))
            .map_err(|err| StageError::BadEvent(format!("no caught `rejection`: {err}")))?;
    let (version, own_keys) = parsed.version_and_own_keys(deps)?;
    let mut manifest = base_manifest(
        ManifestStatus::Rejected,
        parsed.event.bucket(),
        &parsed.key(),
        execution_id,
        started_at,
    );
    manifest.version = version;
    manifest.error = Some(ManifestError {
        message: rejection.message(),
        name: rejection.error,
    });
    Ok(Record {
        manifest,
        plan: Plan::Commit {
            requirement: parsed.requirement(),
            own_keys,
        },
    })
}

fn superseded(
    deps: &RecordResult,
    execution_id: String,
    started_at: String,
    state: &Value,
) -> Result<Record, StageError> {
    let parsed = ExecutionState::parse(state)?;
    let (_, own_keys) = parsed.version_and_own_keys(deps)?;
    Ok(Record {
        manifest: base_manifest(
            ManifestStatus::Succeeded,
            parsed.event.bucket(),
            &parsed.key(),
            execution_id,
            started_at,
        ),
        plan: Plan::CleanUp { own_keys },
    })
}

fn deleted(
    deps: &RecordResult,
    execution_id: String,
    started_at: String,
    event: Value,
) -> Result<Record, StageError> {
    let event = ObjectEvent::deleted(event).map_err(|err| StageError::BadEvent(err.to_string()))?;
    let key = event.candidate_keys().swap_remove(0);
    if deps.config.profile_for_key(&key).is_none() {
        return Err(StageError::BadEvent(format!(
            "s3://{}/{key} is under no profile prefix; the event rule should not have sent it",
            event.bucket()
        )));
    }
    Ok(Record {
        manifest: base_manifest(
            ManifestStatus::Deleted,
            event.bucket(),
            &key,
            execution_id,
            started_at,
        ),
        plan: Plan::Commit {
            requirement: Requirement::Absent,
            own_keys: Vec::new(),
        },
    })
}

/// An execution that failed for a reason other than its upload: the manifest says `failed` and keeps what
/// the version already wrote, for a redrive.
fn failed(
    deps: &RecordResult,
    execution_id: String,
    started_at: String,
    state: &Value,
    caught: StatesError,
) -> Result<Record, StageError> {
    if ObjectEvent::deleted(state.clone()).is_ok() {
        // A deletion that could not be recorded: there is no upload to describe. The failed execution
        // (and its alarm) is the record; reconcile finds the stale manifest.
        tracing::warn!(error = caught.error, "a deletion failed to be recorded");
        let event = ObjectEvent::deleted(state.clone())
            .map_err(|err| StageError::BadEvent(err.to_string()))?;
        return Ok(Record {
            manifest: base_manifest(
                ManifestStatus::Failed,
                event.bucket(),
                &event.candidate_keys().swap_remove(0),
                execution_id,
                started_at,
            ),
            plan: Plan::Nothing,
        });
    }
    let parsed = ExecutionState::parse(state)?;
    let (version, own_keys) = parsed.version_and_own_keys(deps)?;
    let mut manifest = base_manifest(
        ManifestStatus::Failed,
        parsed.event.bucket(),
        &parsed.key(),
        execution_id,
        started_at,
    );
    manifest.version = version;
    manifest.source = parsed.image.as_ref().map(|image| image.source.clone());
    manifest.profile = parsed.image.as_ref().map(|image| image.profile.clone());
    manifest.retained = own_keys.clone();
    manifest.error = Some(ManifestError {
        message: caught.message(),
        name: caught.error,
    });
    Ok(Record {
        manifest,
        plan: Plan::Commit {
            requirement: parsed.requirement(),
            own_keys,
        },
    })
}

fn from_status_change(
    deps: &RecordResult,
    change: ExecutionStatusChange,
) -> Result<Record, StageError> {
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
    let input: Value = serde_json::from_str(input)
        .map_err(|err| StageError::BadEvent(format!("the execution input is not JSON: {err}")))?;
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
    let started_at = match detail.start_date {
        Some(millis) => rfc3339_from_millis(millis)?,
        None => String::new(),
    };
    failed(deps, detail.execution_arn, started_at, &input, caught)
}

fn base_manifest(
    status: ManifestStatus,
    bucket: &str,
    key: &str,
    execution_id: String,
    started_at: String,
) -> Manifest {
    Manifest {
        status,
        bucket: bucket.to_owned(),
        key: key.to_owned(),
        version: None,
        source: None,
        profile: None,
        focus: None,
        faces: None,
        variants: Vec::<RenderedVariant>::new(),
        execution_id,
        started_at,
        recorded_at: now(),
        error: None,
        retained: Vec::new(),
        retired: Vec::new(),
    }
}

/// A stored manifest, as far as it can be read.
struct Stored {
    etag: String,
    /// None when the object at the manifest's key is not a manifest of ours (it is replaced).
    manifest: Option<Manifest>,
}

async fn read_stored(deps: &RecordResult, key: &str) -> Result<Option<Stored>, StageError> {
    let Some((bytes, etag)) = deps
        .s3
        .get_if_exists(&deps.output_bucket, key, MAX_MANIFEST_BYTES)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(Stored {
        etag,
        manifest: serde_json::from_slice(&bytes).ok(),
    }))
}

/// Whether the stored manifest of the same version already says all this record would: a record
/// never replaces one of its own version with the same status, and a failure never replaces a success
/// or a rejection (a duplicate execution that failed must not undo a good result). A deletion always
/// writes its tombstone, even over a tombstone: an execution of an upload made and deleted since the
/// stored tombstone may have read that tombstone and found its version current before the deletion;
/// only a new ETag makes its `If-Match` write fail, so that it decides again and cleans up
/// (tests/simulation.rs, seeds 2319, 3606, 4584, 9614, 9857 and 9971 of 10,000).
fn already_recorded(stored: &Manifest, new: &Manifest) -> bool {
    let same_version = match new.status {
        ManifestStatus::Deleted => false,
        _ => new.version.is_some() && stored.version == new.version,
    };
    if !same_version {
        return false;
    }
    match (stored.status, new.status) {
        (ManifestStatus::Succeeded | ManifestStatus::Rejected, ManifestStatus::Failed) => true,
        (stored, new) => stored == new && new != ManifestStatus::Failed,
    }
}

/// The compare-and-swap loop of the integrity rule.
async fn commit(
    deps: &RecordResult,
    key: &str,
    mut manifest: Manifest,
    requirement: Requirement,
    own_keys: &[String],
) -> Result<RecordOutcome, StageError> {
    let bucket = manifest.bucket.clone();
    let source_key = manifest.key.clone();
    for _ in 0..MAX_ROUNDS {
        let stored = read_stored(deps, key).await?;
        let previous = stored.as_ref().and_then(|s| s.manifest.as_ref());
        if let Some(previous) = previous.filter(|previous| already_recorded(previous, &manifest)) {
            // Finish what the stored record may have left undone (its deletions, and this version's
            // leftovers it does not use), then stop.
            delete_all(deps, &previous.retired).await?;
            let keep: BTreeSet<&str> = previous.output_keys().collect();
            let leftovers: Vec<String> = leftovers_of(&manifest, own_keys)
                .into_iter()
                .filter(|key| !keep.contains(key.as_str()))
                .collect();
            delete_all(deps, &leftovers).await?;
            return Ok(RecordOutcome::Unchanged);
        }
        let current = match &requirement {
            Requirement::Current { version_id, etag } => {
                let version = VersionRef {
                    bucket: &bucket,
                    key: &source_key,
                    version_id: version_id.as_deref().filter(|id| *id != "null"),
                    etag: etag.as_deref(),
                };
                deps.s3.currency(&version).await? == Currency::Current
            }
            Requirement::Absent => deps
                .s3
                .head_if_exists(&bucket, &source_key)
                .await?
                .is_none(),
        };
        if !current {
            if matches!(requirement, Requirement::Current { .. }) {
                clean_up_superseded(deps, key, own_keys).await?;
            }
            return Ok(RecordOutcome::Superseded);
        }
        // A deletion records its tombstone even when nothing was recorded for the key yet: an execution
        // of the deleted upload may still be about to write the key's first manifest, having found its
        // version current before the deletion. Its write (If-None-Match: *) must then fail, so that it
        // decides again, finds the key deleted and cleans up as superseded (tests/simulation.rs, seed 418).
        // The previous record's own deletions may not have finished: they are garbage either way.
        if let Some(previous) = previous {
            delete_all(deps, &previous.retired).await?;
        }
        let live: BTreeSet<&str> = manifest.output_keys().collect();
        let retired: BTreeSet<String> = previous
            .into_iter()
            .flat_map(Manifest::output_keys)
            .map(str::to_owned)
            .chain(leftovers_of(&manifest, own_keys))
            .filter(|key| !live.contains(key.as_str()))
            .collect();
        manifest.retired = retired.into_iter().collect();
        let condition = match &stored {
            Some(stored) => WriteCondition::IfMatch(stored.etag.clone()),
            None => WriteCondition::IfAbsent,
        };
        match write_manifest(deps, key, &manifest, condition).await? {
            Written::Stored(_) => {
                delete_all(deps, &manifest.retired).await?;
                return Ok(RecordOutcome::Recorded);
            }
            Written::ConditionFailed => {
                tracing::info!(
                    key,
                    "another record of the key landed first; deciding again"
                );
            }
        }
    }
    Err(StageError::Transient(format!(
        "{key} changed {MAX_ROUNDS} times while this record was being written"
    )))
}

/// The keys of this version a record does not use once written: everything but the variants of a
/// success (its working copy), and nothing of a failure (kept for the redrive).
fn leftovers_of(manifest: &Manifest, own_keys: &[String]) -> Vec<String> {
    if manifest.status == ManifestStatus::Failed {
        return Vec::new();
    }
    let live: BTreeSet<&str> = manifest.output_keys().collect();
    own_keys
        .iter()
        .filter(|key| !live.contains(key.as_str()))
        .cloned()
        .collect()
}

/// A version that is no longer current removes every output it may have written, except what the
/// stored manifest references (in an unversioned bucket, identical uploads share keys).
async fn clean_up_superseded(
    deps: &RecordResult,
    manifest_key: &str,
    own_keys: &[String],
) -> Result<(), StageError> {
    let stored = read_stored(deps, manifest_key).await?;
    let keep: BTreeSet<&str> = stored
        .as_ref()
        .and_then(|stored| stored.manifest.as_ref())
        .map(|manifest| manifest.output_keys().collect())
        .unwrap_or_default();
    let doomed: Vec<String> = own_keys
        .iter()
        .filter(|key| !keep.contains(key.as_str()))
        .cloned()
        .collect();
    tracing::info!(
        manifest_key,
        removed = doomed.len(),
        "superseded: removing this version's outputs"
    );
    delete_all(deps, &doomed).await
}

async fn delete_all(deps: &RecordResult, keys: &[String]) -> Result<(), StageError> {
    for key in keys {
        deps.s3.delete(&deps.output_bucket, key).await?;
    }
    Ok(())
}

async fn write_manifest(
    deps: &RecordResult,
    key: &str,
    manifest: &Manifest,
    condition: WriteCondition,
) -> Result<Written, StageError> {
    let body = serde_json::to_vec_pretty(manifest).map_err(|err| {
        StageError::RenderFailed(format!("the manifest does not serialise: {err}"))
    })?;
    let metadata = HashMap::from([
        ("source-bucket".to_owned(), metadata_value(&manifest.bucket)),
        ("source-key".to_owned(), metadata_value(&manifest.key)),
    ]);
    Ok(deps
        .s3
        .put(PutObject {
            bucket: &deps.output_bucket,
            key,
            body,
            content_type: "application/json",
            cache_control: MANIFEST_CACHE_CONTROL,
            metadata,
            condition,
        })
        .await?)
}

fn now() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the current time formats as RFC 3339")
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

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(status: ManifestStatus, version: Option<&str>) -> Manifest {
        let mut manifest = base_manifest(status, "in", "uploads/a.jpg", "x".into(), "t".into());
        manifest.version = version.map(str::to_owned);
        manifest
    }

    #[test]
    fn a_failure_never_replaces_a_result_of_its_own_version() {
        use ManifestStatus::*;
        let v1 = Some("v1");
        assert!(already_recorded(
            &manifest(Succeeded, v1),
            &manifest(Failed, v1)
        ));
        assert!(already_recorded(
            &manifest(Rejected, v1),
            &manifest(Failed, v1)
        ));
        assert!(already_recorded(
            &manifest(Succeeded, v1),
            &manifest(Succeeded, v1)
        ));
        assert!(!already_recorded(
            &manifest(Failed, v1),
            &manifest(Failed, v1)
        ));
        assert!(!already_recorded(
            &manifest(Failed, v1),
            &manifest(Succeeded, v1)
        ));
        assert!(!already_recorded(
            &manifest(Succeeded, v1),
            &manifest(Failed, Some("v2"))
        ));
        assert!(!already_recorded(
            &manifest(Succeeded, None),
            &manifest(Succeeded, None)
        ));
        assert!(!already_recorded(
            &manifest(Deleted, None),
            &manifest(Deleted, None)
        ));
        assert!(!already_recorded(
            &manifest(Succeeded, v1),
            &manifest(Deleted, None)
        ));
    }

    #[test]
    fn a_success_leaves_only_its_variants_and_a_failure_keeps_everything() {
        let own = vec!["variants/a".to_owned(), "work/a".to_owned()];
        let mut success = manifest(ManifestStatus::Succeeded, Some("v1"));
        success.variants.push(RenderedVariant {
            name: "a".into(),
            bucket: "out".into(),
            key: "variants/a".into(),
            format: ferrotype_core::OutputFormat::Jpeg,
            content_type: "image/jpeg".into(),
            width: 1,
            height: 1,
            bytes: 1,
            duration_ms: 1,
        });
        assert_eq!(leftovers_of(&success, &own), vec!["work/a".to_owned()]);
        let rejection = manifest(ManifestStatus::Rejected, Some("v1"));
        assert_eq!(leftovers_of(&rejection, &own), own);
        let failure = manifest(ManifestStatus::Failed, Some("v1"));
        assert!(leftovers_of(&failure, &own).is_empty());
    }
}
