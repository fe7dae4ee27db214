//! detect-faces: finds the faces in the validated source to centre smart crops on them. Reads the
//! working copy validate made (the upload decoded once, upright), scales it to the preview the profile's
//! detector looks at and runs that detector; when it finds no face (or `smartCrop` is `attention`), it
//! scores where the eye goes instead. A superseded upload ends here as `Ferrotype.Superseded`;
//! any other failure is caught by the state machine, which falls back to a centred focus.

use std::sync::Arc;

use ferrotype_aws::{working_copy, ObjectStore, StageError};
use ferrotype_core::config::{Config, SmartCrop};
use ferrotype_core::face_preview;
use ferrotype_core::faces::{FaceDetection, FaceDetector};
use ferrotype_core::pipeline::DetectFacesRequest;
use lambda_runtime::LambdaEvent;

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

    fn detector(&self, smart_crop: SmartCrop) -> Result<Option<&dyn FaceDetector>, StageError> {
        Ok(match smart_crop {
            SmartCrop::Off | SmartCrop::Attention => None,
            SmartCrop::Builtin => Some(self.builtin.as_ref()),
            SmartCrop::Rekognition => Some(self.rekognition.as_deref().ok_or_else(|| {
                StageError::Config(
                    "smartCrop is \"rekognition\" but no Rekognition client is configured here"
                        .to_owned(),
                )
            })?),
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
    let DetectFacesRequest {
        source,
        smart_crop,
        version,
        working_copy,
    } = event.payload;
    let Some(preview_side) = smart_crop.preview_side() else {
        return Ok(FaceDetection::none());
    };
    let detector = deps.detector(smart_crop)?;
    let profile = deps.config.profile_for_key(&source.key).ok_or_else(|| {
        StageError::BadEvent(format!(
            "s3://{}/{} is under no profile prefix",
            source.bucket, source.key
        ))
    })?;
    let copy = working_copy::load(&deps.s3, &working_copy, &source, profile, &version).await?;
    let preview = ferrotype_aws::run_cpu(move || face_preview(&copy, preview_side))
        .await?
        .map_err(|err| {
            StageError::FaceDetection(format!("the preview could not be made: {err}"))
        })?;
    let detection = match detector {
        Some(detector) => detector.detect_focus(&preview).await?,
        None => FaceDetection::none(),
    };
    // Without a face, cover crops keep what draws the eye (scored on the same preview, ~1 ms).
    let detection = ferrotype_aws::run_cpu(move || detection.or_attention(&preview)).await?;
    tracing::info!(
        key = source.key,
        detector = ?detection.detector,
        faces = detection.faces.len(),
        attention = detection.saliency.is_some(),
        focus_x = detection.focus.x,
        focus_y = detection.focus.y,
        "faces detected"
    );
    Ok(detection)
}
