//! detect-faces: finds the faces in the validated source to centre smart crops on them. Reads the source
//! (pinned), decodes an upright preview and runs the detector the profile chose. Any failure is caught
//! by the state machine, which falls back to a centred focus.

use std::sync::Arc;

use ferrotype_aws::{ObjectStore, Pin, StageError};
use ferrotype_core::config::{Config, SmartCrop};
use ferrotype_core::faces::{FaceDetection, FaceDetector};
use ferrotype_core::pipeline::DetectFacesRequest;
use ferrotype_core::{decode_preview, RenderError};
use lambda_runtime::LambdaEvent;

/// Longest side of the preview the built-in detector gets: faces stay large enough to find, and the
/// detector's time stays bounded whatever the upload's size.
pub const BUILTIN_PREVIEW_SIDE: u32 = 1600;
/// Rekognition finds faces of at least 40×40 px in a 1920×1080 image; a larger preview gains nothing.
pub const REKOGNITION_PREVIEW_SIDE: u32 = 1920;

/// Faces Rekognition is less sure of are ignored (it reports >99 % for clear faces).
pub const REKOGNITION_MIN_CONFIDENCE: f64 = 0.9;

/// What detect-faces needs, built once per container (or once by the local runner).
#[derive(Clone)]
pub struct DetectFaces {
    pub s3: ObjectStore,
    pub config: Arc<Config>,
    /// For `smartCrop: "builtin"`.
    pub builtin: Arc<dyn FaceDetector>,
    /// For `smartCrop: "rekognition"`; absent where Rekognition cannot be reached (the local runner).
    pub rekognition: Option<Arc<dyn FaceDetector>>,
}

impl DetectFaces {
    pub fn new(
        s3: aws_sdk_s3::Client,
        config: impl Into<Arc<Config>>,
        builtin: Arc<dyn FaceDetector>,
    ) -> DetectFaces {
        DetectFaces {
            s3: ObjectStore::new(s3),
            config: config.into(),
            builtin,
            rekognition: None,
        }
    }

    pub fn with_rekognition(mut self, rekognition: Arc<dyn FaceDetector>) -> DetectFaces {
        self.rekognition = Some(rekognition);
        self
    }

    fn detector(
        &self,
        smart_crop: SmartCrop,
    ) -> Result<Option<(&dyn FaceDetector, u32)>, StageError> {
        Ok(match smart_crop {
            SmartCrop::Off => None,
            SmartCrop::Builtin => Some((self.builtin.as_ref(), BUILTIN_PREVIEW_SIDE)),
            SmartCrop::Rekognition => {
                let rekognition = self.rekognition.as_deref().ok_or_else(|| {
                    StageError::Config(
                        "smartCrop is \"rekognition\" but no Rekognition client is configured here"
                            .to_owned(),
                    )
                })?;
                Some((rekognition, REKOGNITION_PREVIEW_SIDE))
            }
        })
    }
}

impl std::fmt::Debug for DetectFaces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DetectFaces")
            .field("s3", &self.s3)
            .field("builtin", &self.builtin.kind())
            .field(
                "rekognition",
                &self.rekognition.as_ref().map(|detector| detector.kind()),
            )
            .finish_non_exhaustive()
    }
}

pub async fn handler(
    deps: &DetectFaces,
    event: LambdaEvent<DetectFacesRequest>,
) -> Result<FaceDetection, StageError> {
    let DetectFacesRequest { source, smart_crop } = event.payload;
    let Some((detector, preview_side)) = deps.detector(smart_crop)? else {
        return Ok(FaceDetection::none());
    };
    let limits = deps
        .config
        .profile_for_key(&source.key)
        .map(|profile| profile.limits.clone())
        .ok_or_else(|| {
            StageError::BadEvent(format!(
                "s3://{}/{} is under no profile prefix",
                source.bucket, source.key
            ))
        })?;
    let pin = Pin {
        etag: source.etag.clone(),
        version_id: source.version_id.clone(),
    };
    let bytes = deps
        .s3
        .get(&source.bucket, &source.key, &pin, source.size)
        .await?;
    let preview = ferrotype_aws::run_cpu(move || decode_preview(&bytes, preview_side, &limits))
        .await
        .map_err(|err| StageError::FaceDetection(format!("the preview task failed: {err}")))?
        .map_err(|err| match err {
            RenderError::Rejected(rejection) => StageError::FaceDetection(format!(
                "the source cannot be decoded for face detection: {}: {}",
                rejection.error_name(),
                rejection.message
            )),
            other => StageError::FaceDetection(format!("the preview could not be made: {other}")),
        })?;
    let detection = detector.detect_focus(&preview).await?;
    tracing::info!(
        key = source.key,
        detector = ?detection.detector,
        faces = detection.faces.len(),
        focus_x = detection.focus.x,
        focus_y = detection.focus.y,
        "faces detected"
    );
    Ok(detection)
}
