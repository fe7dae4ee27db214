//! What the stages pass to each other through the state machine (docs/CONTRACTS.md). Only keys and
//! small facts travel between states, never image bytes: the 256 KiB state payload limit holds whatever
//! the number of variants.

use serde::{Deserialize, Serialize};

use crate::config::SmartCrop;
use crate::faces::FaceDetection;
use crate::spec::{Focus, OutputFormat, SourceFormat, VariantSpec};

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

/// Output of validate (at `$.image`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ValidatedImage {
    pub source: Source,
    pub profile: String,
    pub smart_crop: SmartCrop,
    pub detect_faces: bool,
    pub max_concurrency: u32,
    pub variants: Vec<VariantSpec>,
}

/// Input of detect-faces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DetectFacesRequest {
    pub source: Source,
    pub smart_crop: SmartCrop,
}

/// Input of render-variant: one Map iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RenderRequest {
    pub source: Source,
    pub profile: String,
    pub focus: Focus,
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

/// Input of record-result from the state machine (the FAILED path comes as an EventBridge status-change
/// event and is parsed separately by the function).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "camelCase")]
pub enum RecordRequest {
    #[serde(rename_all = "camelCase")]
    Succeeded {
        execution_id: String,
        started_at: String,
        source: Source,
        profile: String,
        faces: FaceDetection,
        variants: Vec<RenderedVariant>,
    },
    #[serde(rename_all = "camelCase")]
    Rejected {
        execution_id: String,
        started_at: String,
        /// The execution's state: the S3 event plus the caught `rejection`.
        event: serde_json::Value,
        rejection: StatesError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ManifestStatus {
    Succeeded,
    Rejected,
    Failed,
}

/// The error a manifest records: its stable name and the human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestError {
    pub name: String,
    pub message: String,
}

/// One JSON document per source image in the output bucket: what happened to it, last execution wins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub status: ManifestStatus,
    /// The source bucket and key are always known; the rest of the facts only once validate succeeded.
    pub bucket: String,
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub focus: Option<Focus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub faces: Option<FaceDetection>,
    #[serde(default)]
    pub variants: Vec<RenderedVariant>,
    pub execution_id: String,
    pub started_at: String,
    pub recorded_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ManifestError>,
}

/// Output of record-result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Recorded {
    pub manifest_key: String,
    pub status: ManifestStatus,
    /// True when nothing was written because a later execution's manifest is already stored.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub superseded: bool,
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
            "event": {"detail": {}}, "rejection": {"Error": "ImageRejected.Empty", "Cause": "{}"}
        }))
        .unwrap();
        assert!(matches!(rejected, RecordRequest::Rejected { .. }));
        assert!(
            serde_json::from_value::<RecordRequest>(serde_json::json!({"status": "maybe"}))
                .is_err()
        );
    }
}
