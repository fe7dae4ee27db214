//! The offline detector: SeetaFace's frontal model (BSD-2-Clause, models/LICENSE-SeetaFace.txt) run by
//! the rustface crate on a grey downscale of the upright preview.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::OnceLock;

use async_trait::async_trait;
use image::{GrayImage, RgbImage};
use rustface::{ImageData, Model};

use super::{clamp_box, DetectorKind, FaceBox, FaceDetectionError, FaceDetector};

static MODEL_BYTES: &[u8] = include_bytes!("../../models/seeta_fd_frontal_v1.0.bin");

/// Longest side of the image the cascade scans. Faces smaller than [`MIN_FACE_PX`] at this scale (about
/// 3 % of the longest side) are ignored: they would not steer a crop anyway, and the scan time grows
/// with the pixel count.
const DETECTION_MAX_SIDE: u32 = 1280;
/// The smallest face searched for, in pixels of the scanned image (the model's window is 40 px).
const MIN_FACE_PX: u32 = 40;
/// rustface's own example uses 2.0; faces in real photos score 10–30 and none of the face-free test
/// photos produced a window above it.
const SCORE_THRESHOLD: f64 = 2.0;
/// Scale of the score-to-confidence mapping, see [`confidence_from_score`].
const CONFIDENCE_SCALE: f64 = 8.0;

/// Finds frontal faces offline with the embedded SeetaFace model.
///
/// Detection is CPU-bound (hundreds of milliseconds): [`FaceDetector::detect`] runs it on Tokio's
/// blocking pool, so it must be awaited inside a Tokio runtime; [`BuiltinDetector::detect_blocking`]
/// is the same work for synchronous callers.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinDetector;

impl BuiltinDetector {
    pub fn new() -> Self {
        BuiltinDetector
    }

    /// Detects faces on the calling thread.
    pub fn detect_blocking(&self, upright: &RgbImage) -> Result<Vec<FaceBox>, FaceDetectionError> {
        let grey = detection_image(upright);
        detect_in_grey(&grey)
    }
}

#[async_trait]
impl FaceDetector for BuiltinDetector {
    async fn detect(&self, upright: &RgbImage) -> Result<Vec<FaceBox>, FaceDetectionError> {
        // The (small) grey copy is what moves to the blocking thread, not the caller's image.
        let grey = detection_image(upright);
        crate::cpu::run(move || detect_in_grey(&grey))
            .await
            .map_err(|error| FaceDetectionError::Failed(format!("builtin detector: {error}")))?
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::Builtin
    }
}

/// The parsed model, shared by every call (parsing takes a few milliseconds; each call clones it
/// because rustface's detector owns its model and is not `Send`).
fn model() -> Result<&'static Model, FaceDetectionError> {
    static MODEL: OnceLock<Result<Model, String>> = OnceLock::new();
    MODEL
        .get_or_init(|| rustface::read_model(MODEL_BYTES).map_err(|error| error.to_string()))
        .as_ref()
        .map_err(|error| {
            FaceDetectionError::Failed(format!("builtin face model unreadable: {error}"))
        })
}

/// A grey copy no longer than [`DETECTION_MAX_SIDE`] (never enlarged). Fractions are scale-invariant,
/// so boxes found here apply to the upright image as they are.
fn detection_image(upright: &RgbImage) -> GrayImage {
    let grey = image::imageops::grayscale(upright);
    let (width, height) = grey.dimensions();
    let longest = width.max(height);
    if longest <= DETECTION_MAX_SIDE {
        return grey;
    }
    let scale = f64::from(DETECTION_MAX_SIDE) / f64::from(longest);
    let scaled = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
    image::imageops::thumbnail(&grey, scaled(width), scaled(height))
}

fn detect_in_grey(grey: &GrayImage) -> Result<Vec<FaceBox>, FaceDetectionError> {
    let (width, height) = grey.dimensions();
    if width.min(height) < MIN_FACE_PX {
        // No face of the minimum size fits (and rustface refers to empty images with a panic).
        return Ok(Vec::new());
    }
    let model = model()?.clone();
    // rustface indexes with raw pointers and asserts on its inputs: a panic in it must become a
    // detection failure (centred crop), never a crashed stage.
    let found = catch_unwind(AssertUnwindSafe(|| {
        let mut detector = rustface::create_detector_with_model(model);
        detector.set_min_face_size(MIN_FACE_PX);
        detector.set_score_thresh(SCORE_THRESHOLD);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        detector.detect(&ImageData::new(grey.as_raw(), width, height))
    }))
    .map_err(|_| FaceDetectionError::Failed("builtin detector panicked".to_string()))?;

    let (width, height) = (f64::from(width), f64::from(height));
    Ok(found
        .iter()
        .filter_map(|face| {
            let bbox = face.bbox();
            clamp_box(
                f64::from(bbox.x()) / width,
                f64::from(bbox.y()) / height,
                f64::from(bbox.width()) / width,
                f64::from(bbox.height()) / height,
                confidence_from_score(face.score()),
            )
        })
        .collect())
}

/// SeetaFace scores are unbounded cascade sums (about 2 for a doubtful window, 10–30 for a clear
/// face). `1 - e^(-score / 8)` maps them monotonically into 0..1: 2 → 0.22, 8 → 0.63, 15 → 0.85,
/// 25 → 0.96. Only the order matters to smart crop; the value is informational.
fn confidence_from_score(score: f64) -> f64 {
    if score.is_nan() || score <= 0.0 {
        return 0.0;
    }
    1.0 - (-score / CONFIDENCE_SCALE).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_model_parses() {
        assert!(model().is_ok());
    }

    #[test]
    fn confidence_rises_with_the_score_and_stays_in_range() {
        let values: Vec<f64> = [-3.0, 0.0, 2.0, 8.0, 15.0, 25.0, 1e9]
            .map(confidence_from_score)
            .to_vec();
        assert_eq!(values[0], 0.0);
        assert_eq!(values[1], 0.0);
        assert!(
            values.windows(2).skip(1).all(|pair| pair[0] < pair[1]),
            "{values:?}"
        );
        assert!(
            values.iter().all(|value| (0.0..=1.0).contains(value)),
            "{values:?}"
        );
        assert!((values[3] - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        assert_eq!(confidence_from_score(f64::NAN), 0.0);
    }

    #[test]
    fn large_images_are_scanned_downscaled_and_small_ones_as_they_are() {
        let large = RgbImage::new(3000, 1500);
        assert_eq!(detection_image(&large).dimensions(), (1280, 640));
        let tall = RgbImage::new(900, 4000);
        assert_eq!(detection_image(&tall).dimensions(), (288, 1280));
        let small = RgbImage::new(640, 480);
        assert_eq!(detection_image(&small).dimensions(), (640, 480));
    }

    #[test]
    fn images_too_small_for_a_face_find_none() {
        for (width, height) in [(0, 0), (1, 1), (39, 400), (400, 39)] {
            let image = RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
            assert_eq!(
                BuiltinDetector.detect_blocking(&image),
                Ok(Vec::new()),
                "{width}x{height}"
            );
        }
    }
}
