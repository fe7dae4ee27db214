//! What the stages pass to each other through the state machine (docs/CONTRACTS.md). Only keys and
//! small facts travel between states, never image bytes: the 256 KiB state payload limit holds whatever
//! the number of variants.

use serde::{Deserialize, Serialize};

use crate::config::SmartCrop;
use crate::faces::FaceDetection;
use crate::spec::{OutputFormat, SourceFormat, VariantSpec};

/// What the definition's `${UncaughtErrors}` placeholder becomes in a Standard workflow: an error name no
/// stage raises, so failures stay uncaught (the execution can be redriven, and record-result records them
/// from the FAILED status-change event). Express workflows substitute `States.ALL` and record inline.
pub const UNCAUGHT_IN_STANDARD: &str = "Ferrotype.LeftForRedrive";

/// The uploaded object as validate found it. Later stages read exactly this version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub bucket: String,
    /// The real (decoded) key.
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    pub etag: String,
    /// The event's sequencer, when it had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    pub size: u64,
    pub format: SourceFormat,
    /// Stored pixels, before EXIF orientation.
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1..=8.
    pub orientation: u8,
    pub upright_width: u32,
    pub upright_height: u32,
}

/// Where validate stored the working copy (the upload decoded once), and its size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkingCopyRef {
    pub bucket: String,
    pub key: String,
    /// The working copy's pixels (the source's upright size, or a reduced scale of it).
    pub width: u32,
    pub height: u32,
    /// The stored object's size.
    pub bytes: u64,
}

/// Output of validate (at `$.image`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatedImage {
    pub source: Source,
    pub profile: String,
    /// The version tag ([`crate::keys::version_tag`]) every output key of this upload carries.
    pub version: String,
    pub smart_crop: SmartCrop,
    pub detect_faces: bool,
    pub max_concurrency: u32,
    pub variants: Vec<VariantSpec>,
    pub working_copy: WorkingCopyRef,
}

/// Input of detect-faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectFacesRequest {
    pub source: Source,
    pub smart_crop: SmartCrop,
    pub version: String,
    pub working_copy: WorkingCopyRef,
}

/// Input of render-variant: one Map iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderRequest {
    pub source: Source,
    pub profile: String,
    pub version: String,
    pub working_copy: WorkingCopyRef,
    /// What detect-faces found (or the centre focus): the focus and the faces steer cover crops.
    pub faces: FaceDetection,
    pub variant: VariantSpec,
}

/// Output of render-variant: one stored variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderedVariant {
    pub name: String,
    pub bucket: String,
    pub key: String,
    pub format: OutputFormat,
    pub content_type: String,
    pub width: u32,
    pub height: u32,
    pub bytes: u64,
    pub duration_ms: u64,
}

/// An error as Step Functions reports it in a Catch's ResultPath (`{"Error", "Cause"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatesError {
    #[serde(rename = "Error")]
    pub error: String,
    #[serde(rename = "Cause", default)]
    pub cause: String,
}

impl StatesError {
    /// A Lambda error's Cause is the function's JSON error (`{"errorType","errorMessage",…}`): the human
    /// message is inside. Any other Cause is the message itself.
    pub fn message(&self) -> String {
        serde_json::from_str::<serde_json::Value>(&self.cause)
            .ok()
            .and_then(|cause| cause.get("errorMessage")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| self.cause.clone())
    }
}

/// What one Map iteration ended with: the stored variant, or why it was not rendered (its version was
/// superseded, or the source turned out corrupt), as the ASL's Catch recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum VariantOutcome {
    Rendered(RenderedVariant),
    #[serde(rename_all = "camelCase")]
    NotRendered {
        name: String,
        not_rendered: StatesError,
    },
}

/// Input of record-result from the state machine (the FAILED path of Standard workflows comes as an
/// EventBridge status-change event and is parsed separately by the function).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum RecordRequest {
    /// Every Map iteration has ended: record `succeeded`, or `rejected` / superseded if an iteration said so.
    #[serde(rename_all = "camelCase")]
    Rendered {
        execution_id: String,
        started_at: String,
        /// Boxed: the largest variant by far.
        image: Box<ValidatedImage>,
        faces: FaceDetection,
        variants: Vec<VariantOutcome>,
    },
    /// Validate refused the upload; `event` is the execution's state (the S3 event and the caught
    /// `rejection`).
    #[serde(rename_all = "camelCase")]
    Rejected {
        execution_id: String,
        started_at: String,
        event: serde_json::Value,
    },
    /// A stage found the version no longer current; `event` is the execution's state.
    #[serde(rename_all = "camelCase")]
    Superseded {
        execution_id: String,
        started_at: String,
        event: serde_json::Value,
    },
    /// An "Object Deleted" event.
    #[serde(rename_all = "camelCase")]
    Deleted {
        execution_id: String,
        started_at: String,
        event: serde_json::Value,
    },
    /// An uncaught failure, caught inline (Express workflows); `event` is the state with the caught
    /// `failure`.
    #[serde(rename_all = "camelCase")]
    Failed {
        execution_id: String,
        started_at: String,
        event: serde_json::Value,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestStatus {
    Succeeded,
    Rejected,
    Failed,
    /// The source was deleted: a tombstone whose outputs are gone.
    Deleted,
}

/// The error a manifest records: its stable name and the human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestError {
    pub name: String,
    pub message: String,
}

/// One JSON document per source key in the output bucket: what happened to its current object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub status: ManifestStatus,
    /// The source bucket and key are always known; the rest of the facts only once validate succeeded.
    pub bucket: String,
    pub key: String,
    /// The version tag of the upload this manifest describes (absent for a deletion tombstone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focus: Option<crate::spec::Focus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faces: Option<FaceDetection>,
    #[serde(default)]
    pub variants: Vec<RenderedVariant>,
    pub execution_id: String,
    pub started_at: String,
    pub recorded_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ManifestError>,
    /// `failed` only: outputs this version already wrote, kept so a redrive can finish without
    /// rendering them again; the next manifest of the key retires them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retained: Vec<String>,
    /// Outputs of the previous manifest that this one no longer uses, deleted when it was recorded
    /// (kept here so an interrupted deletion is finished by whoever records the key next).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<String>,
}

impl Manifest {
    /// Every output key this manifest accounts for: its variants and what it retains.
    pub fn output_keys(&self) -> impl Iterator<Item = &str> {
        self.variants
            .iter()
            .map(|variant| variant.key.as_str())
            .chain(self.retained.iter().map(String::as_str))
    }
}

/// What record-result did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordOutcome {
    /// The manifest was written.
    Recorded,
    /// The version is no longer the key's current object: its outputs were removed, nothing written.
    Superseded,
    /// The stored manifest already says as much (or more: a failure never replaces a success).
    Unchanged,
}

/// Output of record-result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    pub manifest_key: String,
    pub status: ManifestStatus,
    pub outcome: RecordOutcome,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_causes_yield_their_message() {
        let caught = StatesError {
            error: "ImageRejected.TooManyPixels".into(),
            cause: r#"{"errorType":"ImageRejected.TooManyPixels","errorMessage":"20000x14000 is 280 MP, over the 100 MP limit"}"#.into(),
        };
        assert_eq!(
            caught.message(),
            "20000x14000 is 280 MP, over the 100 MP limit"
        );
        let plain = StatesError {
            error: "States.Timeout".into(),
            cause: "Task timed out".into(),
        };
        assert_eq!(plain.message(), "Task timed out");
    }

    #[test]
    fn record_requests_are_tagged_by_status() {
        let rejected: RecordRequest = serde_json::from_value(serde_json::json!({
            "status": "rejected", "executionId": "arn:x", "startedAt": "2026-01-01T00:00:00Z",
            "event": {"detail": {}, "rejection": {"Error": "ImageRejected.Empty", "Cause": "{}"}}
        }))
        .unwrap();
        assert!(matches!(rejected, RecordRequest::Rejected { .. }));
        let outcome: VariantOutcome = serde_json::from_value(serde_json::json!({
            "name": "thumbnail", "notRendered": {"Error": "Ferrotype.Superseded", "Cause": "replaced"}
        }))
        .unwrap();
        assert!(matches!(outcome, VariantOutcome::NotRendered { .. }));
        assert!(
            serde_json::from_value::<RecordRequest>(serde_json::json!({"status": "maybe"}))
                .is_err()
        );
    }
}
