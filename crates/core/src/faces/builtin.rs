//! The offline detector: SeetaFace's frontal model (BSD-2-Clause, models/LICENSE-SeetaFace.txt) run by
//! our cascade ([`super::seeta`]) on a grey downscale of the upright preview.

use std::sync::OnceLock;

use async_trait::async_trait;
use image::{GrayImage, RgbImage};

use super::seeta::{Detector, Model, Scan};
use super::{clamp_box, DetectorKind, FaceBox, FaceDetectionError, FaceDetector};

static MODEL_BYTES: &[u8] = include_bytes!("../../models/seeta_fd_frontal_v1.0.bin");

/// How the cascade scans; [`DetectorSettings::DEFAULT`] is what the pipeline uses (the bench's `faces`
/// command measures others against it).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DetectorSettings {
    /// Longest side of the grey image the cascade scans (larger images are downscaled first). Faces
    /// smaller than `min_face_px` at this scale are ignored, and the scan time grows with its area.
    pub scan_max_side: u32,
    /// The smallest face searched for, in pixels of the scanned image (the model's window is 40 px).
    pub min_face_px: u32,
    /// Each pyramid level is this fraction of the previous one's side.
    pub pyramid_scale: f32,
    /// Pixels the first-stage window moves by.
    pub window_step: u32,
}

impl DetectorSettings {
    /// Measured on the corpus' face and photo sets (`ferrotype-bench faces`): every face that 1280 px
    /// with a 0.8 pyramid found is still found (5 faces in 4 photos, none in 7 photos without faces),
    /// at a seventh of the CPU time (35 against 250 ms per image). The price: faces smaller than
    /// 40 / 640 = 6 % of the longest side (3 % before) are not looked for. (Since measured again with
    /// our own cascade: median 11.7 ms per photo on 124 photos, see README "Faces".)
    pub const DEFAULT: DetectorSettings = DetectorSettings {
        scan_max_side: 640,
        min_face_px: 40,
        pyramid_scale: 0.7,
        window_step: 4,
    };
}

impl Default for DetectorSettings {
    fn default() -> Self {
        DetectorSettings::DEFAULT
    }
}

/// rustface's own example uses 2.0; faces in real photos score 10–30 and none of the face-free test
/// photos produced a window above it.
const SCORE_THRESHOLD: f64 = 2.0;
/// Scale of the score-to-confidence mapping, see [`confidence_from_score`].
const CONFIDENCE_SCALE: f64 = 8.0;

/// Finds frontal faces offline with the embedded SeetaFace model.
///
/// Detection is CPU-bound (2–40 ms on a photo): [`FaceDetector::detect`] runs it on Tokio's
/// blocking pool, so it must be awaited inside a Tokio runtime; [`BuiltinDetector::detect_blocking`]
/// is the same work for synchronous callers.
#[derive(Debug, Clone, Copy, Default)]
pub struct BuiltinDetector {
    settings: DetectorSettings,
}

impl BuiltinDetector {
    /// The longest side of the preview worth giving the detector: it scans nothing larger.
    pub const PREVIEW_SIDE: u32 = DetectorSettings::DEFAULT.scan_max_side;

    pub fn new() -> Self {
        BuiltinDetector::default()
    }

    /// A detector scanning with other settings (for measurements).
    pub fn with_settings(settings: DetectorSettings) -> Self {
        BuiltinDetector { settings }
    }

    /// Detects faces on the calling thread.
    pub fn detect_blocking(&self, upright: &RgbImage) -> Result<Vec<FaceBox>, FaceDetectionError> {
        let grey = detection_image(upright, self.settings.scan_max_side);
        detect_in_grey(&grey, &self.settings)
    }
}

#[async_trait]
impl FaceDetector for BuiltinDetector {
    async fn detect(&self, upright: &RgbImage) -> Result<Vec<FaceBox>, FaceDetectionError> {
        // The (small) grey copy is what moves to the blocking thread, not the caller's image.
        let grey = detection_image(upright, self.settings.scan_max_side);
        let settings = self.settings;
        crate::cpu::run(move || detect_in_grey(&grey, &settings))
            .await
            .map_err(|error| FaceDetectionError::Failed(format!("builtin detector: {error}")))?
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::Builtin
    }
}

/// The parsed model, shared by every call (parsing takes a few milliseconds).
fn model() -> Result<&'static Model, FaceDetectionError> {
    static MODEL: OnceLock<Result<Model, String>> = OnceLock::new();
    MODEL
        .get_or_init(|| Model::parse(MODEL_BYTES))
        .as_ref()
        .map_err(|error| {
            FaceDetectionError::Failed(format!("builtin face model unreadable: {error}"))
        })
}

/// A grey copy no longer than `max_side` (never enlarged). Fractions are scale-invariant, so boxes
/// found here apply to the upright image as they are.
fn detection_image(upright: &RgbImage, max_side: u32) -> GrayImage {
    let grey = grey_of(upright);
    let (width, height) = grey.dimensions();
    let longest = width.max(height);
    if longest <= max_side {
        return grey;
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let scaled = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
    image::imageops::thumbnail(&grey, scaled(width), scaled(height))
}

/// `image::imageops::grayscale` to the bit, (2126 R + 7152 G + 722 B) / 10000 in integers, but a
/// loop over the raw bytes: several times faster than its generic pixel-by-pixel one.
fn grey_of(rgb: &RgbImage) -> GrayImage {
    let luma = |pixel: &[u8]| {
        let weighted =
            2126 * u32::from(pixel[0]) + 7152 * u32::from(pixel[1]) + 722 * u32::from(pixel[2]);
        (weighted / 10_000) as u8
    };
    let pixels = rgb.as_raw().chunks_exact(3).map(luma).collect();
    let (width, height) = rgb.dimensions();
    GrayImage::from_raw(width, height, pixels).unwrap_or_else(|| image::imageops::grayscale(rgb))
}

fn detect_in_grey(
    grey: &GrayImage,
    settings: &DetectorSettings,
) -> Result<Vec<FaceBox>, FaceDetectionError> {
    let (width, height) = grey.dimensions();
    let scan = Scan {
        min_face: settings.min_face_px.max(20),
        pyramid_scale: settings.pyramid_scale.clamp(0.5, 0.95),
        step: settings.window_step.clamp(1, 16),
        min_score: SCORE_THRESHOLD,
    };
    if width.min(height) < scan.min_face {
        return Ok(Vec::new());
    }
    let found = Detector::new(model()?).detect(grey.as_raw(), width, height, &scan);
    let (width, height) = (f64::from(width), f64::from(height));
    Ok(found
        .iter()
        .filter_map(|face| {
            clamp_box(
                f64::from(face.x) / width,
                f64::from(face.y) / height,
                f64::from(face.side) / width,
                f64::from(face.side) / height,
                confidence_from_score(face.score),
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
    fn grey_is_images_own_conversion() {
        // Every value of each channel against the others' extremes and noise.
        let mut rgb = RgbImage::new(256, 5);
        let mut state = 7u32;
        let noise: Vec<u8> = (0..256 * 5 * 3)
            .map(|_| {
                state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (state >> 24) as u8
            })
            .collect();
        for (x, y, pixel) in rgb.enumerate_pixels_mut() {
            let value = x as u8;
            let i = (y * 256 + x) as usize * 3;
            *pixel = image::Rgb(match y {
                0 => [value, 255, 255],
                1 => [255, value, 0],
                2 => [0, 255, value],
                3 => [value, value, value],
                _ => [noise[i], noise[i + 1], noise[i + 2]],
            });
        }
        assert_eq!(grey_of(&rgb), image::imageops::grayscale(&rgb));
    }

    #[test]
    fn large_images_are_scanned_downscaled_and_small_ones_as_they_are() {
        let side = DetectorSettings::DEFAULT.scan_max_side;
        let scanned = |w, h| detection_image(&RgbImage::new(w, h), side).dimensions();
        assert_eq!(scanned(side * 2, side), (side, side / 2));
        assert_eq!(scanned(side / 2, side * 4), (side / 8, side));
        assert_eq!(scanned(side / 2, side / 3), (side / 2, side / 3));
    }

    #[test]
    fn images_too_small_for_a_face_find_none() {
        for (width, height) in [(0, 0), (1, 1), (39, 400), (400, 39)] {
            let image = RgbImage::from_pixel(width, height, image::Rgb([128, 128, 128]));
            assert_eq!(
                BuiltinDetector::new().detect_blocking(&image),
                Ok(Vec::new()),
                "{width}x{height}"
            );
        }
    }
}
