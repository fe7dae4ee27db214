//! Face detection for smart crop: the shape detect-faces returns (docs/CONTRACTS.md), the focus point
//! derived from the faces, and the detectors behind one trait (the built-in SeetaFace model, no
//! detection; Amazon Rekognition lives in ferrotype-aws).

mod builtin;
mod seeta;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use crate::saliency::SaliencyGrid;
pub use crate::spec::Focus;
pub use builtin::{BuiltinDetector, DetectorSettings};

/// One face, in fractions of the upright image (origin top left), always inside 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaceBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
    /// 0..=1; how each detector maps its own score is documented on the detector.
    pub confidence: f64,
}

impl FaceBox {
    fn area(&self) -> f64 {
        self.width * self.height
    }
}

/// Which detector produced a [`FaceDetection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    Builtin,
    Rekognition,
    /// Detection was off (or skipped): no faces, centred focus.
    None,
}

/// The output of detect-faces (`$.faces`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaceDetection {
    pub detector: DetectorKind,
    pub faces: Vec<FaceBox>,
    pub focus: Focus,
    /// Where the eye goes, for cover crops when no face was found (`smartCrop: attention`, and the
    /// face detectors' fallback); absent when faces were found or smart crop is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saliency: Option<SaliencyGrid>,
}

impl FaceDetection {
    /// The result of `detector` finding `faces`, with the focus derived from them.
    pub fn new(detector: DetectorKind, faces: Vec<FaceBox>) -> Self {
        let focus = focus_from_faces(&faces);
        FaceDetection {
            detector,
            faces,
            focus,
            saliency: None,
        }
    }

    /// This detection, with attention on `preview` to fall back on when it found no face. The focus
    /// becomes the centre of attention (crops of other shapes choose their own window from the grid).
    pub fn or_attention(self, preview: &image::RgbImage) -> Self {
        if !self.faces.is_empty() {
            return self;
        }
        match SaliencyGrid::of(preview) {
            Some(grid) => FaceDetection {
                focus: grid.centroid(),
                saliency: Some(grid),
                ..self
            },
            None => self,
        }
    }

    /// No detection at all: centred focus.
    pub fn none() -> Self {
        FaceDetection::new(DetectorKind::None, Vec::new())
    }
}

/// A face box from raw fractions that may lie partly outside the image (faces cut by an edge come back
/// with a negative origin or an extent past 1): the part inside the image, or `None` when nothing of it
/// is inside or a value is not a number. The confidence is clamped into 0..=1.
pub fn clamp_box(left: f64, top: f64, width: f64, height: f64, confidence: f64) -> Option<FaceBox> {
    let (left, width) = clamp_span(left, width)?;
    let (top, height) = clamp_span(top, height)?;
    let confidence = if confidence.is_nan() {
        0.0
    } else {
        confidence.clamp(0.0, 1.0)
    };
    Some(FaceBox {
        left,
        top,
        width,
        height,
        confidence,
    })
}

/// The part of `[start, start + length]` inside `[0, 1]` as (start, length); `None` when empty.
fn clamp_span(start: f64, length: f64) -> Option<(f64, f64)> {
    let end = start + length;
    if !start.is_finite() || !end.is_finite() {
        return None;
    }
    let (start, end) = (start.clamp(0.0, 1.0), end.clamp(0.0, 1.0));
    (end > start).then_some((start, end - start))
}

/// The area-weighted centre of the faces, so one large face outweighs a few small ones in the
/// background; the image centre when there are none.
pub fn focus_from_faces(faces: &[FaceBox]) -> Focus {
    let (mut weight, mut x, mut y) = (0.0, 0.0, 0.0);
    for face in faces {
        let area = face.area();
        if !(area.is_finite() && area > 0.0) {
            continue;
        }
        weight += area;
        x += area * (face.left + face.width / 2.0);
        y += area * (face.top + face.height / 2.0);
    }
    if weight > 0.0 {
        Focus::new(x / weight, y / weight)
    } else {
        Focus::CENTRE
    }
}

/// The focus of one cover crop whose window is `window` (width, height as fractions of the upright
/// image): the centre of as many whole faces as fit in the window together, the largest first. When even
/// the largest does not fit, its centre. Never a point between faces that cannot both be kept (the
/// area-weighted centre of two people far apart cuts both in half). Without faces, the centre of the
/// window holding the most attention when there is a saliency grid; else the detection's focus.
pub fn crop_focus(detection: &FaceDetection, window: (f64, f64)) -> Focus {
    let mut faces: Vec<&FaceBox> = detection
        .faces
        .iter()
        .filter(|face| face.area().is_finite() && face.area() > 0.0)
        .collect();
    faces.sort_by(|a, b| b.area().total_cmp(&a.area()));
    let Some(largest) = faces.first() else {
        return detection
            .saliency
            .as_ref()
            .and_then(|grid| grid.window_focus(window))
            .unwrap_or(detection.focus);
    };
    let (window_w, window_h) = window;
    let mut kept = Span::of(largest);
    if kept.fits(window_w, window_h) {
        for face in &faces[1..] {
            let wider = kept.with(face);
            if wider.fits(window_w, window_h) {
                kept = wider;
            }
        }
    }
    Focus::new(
        (kept.left + kept.right) / 2.0,
        (kept.top + kept.bottom) / 2.0,
    )
}

/// The bounding box of faces kept together in one crop.
#[derive(Debug, Clone, Copy)]
struct Span {
    left: f64,
    top: f64,
    right: f64,
    bottom: f64,
}

impl Span {
    fn of(face: &FaceBox) -> Span {
        Span {
            left: face.left,
            top: face.top,
            right: face.left + face.width,
            bottom: face.top + face.height,
        }
    }

    fn with(self, face: &FaceBox) -> Span {
        let other = Span::of(face);
        Span {
            left: self.left.min(other.left),
            top: self.top.min(other.top),
            right: self.right.max(other.right),
            bottom: self.bottom.max(other.bottom),
        }
    }

    fn fits(&self, width: f64, height: f64) -> bool {
        self.right - self.left <= width && self.bottom - self.top <= height
    }
}

/// Why a detector could not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaceDetectionError {
    /// Worth retrying later (throttling, a 5xx, a timeout).
    #[error("face detection temporarily unavailable: {0}")]
    Transient(String),
    /// Retrying will not help; the pipeline falls back to a centred crop.
    #[error("face detection failed: {0}")]
    Failed(String),
}

impl FaceDetectionError {
    /// The error name the Lambda reports and the state machine matches (docs/CONTRACTS.md).
    pub fn error_name(&self) -> &'static str {
        match self {
            FaceDetectionError::Transient(_) => "Ferrotype.Transient",
            FaceDetectionError::Failed(_) => "Ferrotype.FaceDetection",
        }
    }
}

/// Finds faces in an upright image (the decoded preview, orientation already applied).
#[async_trait]
pub trait FaceDetector: Send + Sync {
    /// The faces, as fractions of `upright`, clamped into the image.
    async fn detect(&self, upright: &image::RgbImage) -> Result<Vec<FaceBox>, FaceDetectionError>;

    fn kind(&self) -> DetectorKind;

    /// Runs the detector and derives the focus: the whole detect-faces output.
    async fn detect_focus(
        &self,
        upright: &image::RgbImage,
    ) -> Result<FaceDetection, FaceDetectionError> {
        let faces = self.detect(upright).await?;
        Ok(FaceDetection::new(self.kind(), faces))
    }
}

/// Smart crop "off": finds nothing, so the focus stays centred.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDetector;

#[async_trait]
impl FaceDetector for NoDetector {
    async fn detect(&self, _upright: &image::RgbImage) -> Result<Vec<FaceBox>, FaceDetectionError> {
        Ok(Vec::new())
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(left: f64, top: f64, width: f64, height: f64) -> FaceBox {
        clamp_box(left, top, width, height, 0.9).expect("box inside the image")
    }

    fn assert_close(actual: Focus, x: f64, y: f64) {
        assert!(
            (actual.x - x).abs() < 1e-9 && (actual.y - y).abs() < 1e-9,
            "focus {actual:?}, expected ({x}, {y})"
        );
    }

    #[test]
    fn no_faces_focus_on_the_centre() {
        assert_eq!(focus_from_faces(&[]), Focus::CENTRE);
        assert_eq!(FaceDetection::none().focus, Focus::CENTRE);
    }

    #[test]
    fn one_face_is_the_focus() {
        assert_close(focus_from_faces(&[face(0.1, 0.2, 0.2, 0.4)]), 0.2, 0.4);
    }

    #[test]
    fn larger_faces_weigh_more() {
        // A 0.4×0.4 face centred at (0.3, 0.3) and a 0.2×0.2 one centred at (0.9, 0.9): areas 0.16 and
        // 0.04, so the focus lies four fifths of the way towards the large face.
        let faces = [face(0.1, 0.1, 0.4, 0.4), face(0.8, 0.8, 0.2, 0.2)];
        let expected = (0.16 * 0.3 + 0.04 * 0.9) / 0.2;
        assert_close(focus_from_faces(&faces), expected, expected);
        // Equal faces: the plain midpoint, whatever the order.
        let equal = [face(0.0, 0.0, 0.2, 0.2), face(0.6, 0.4, 0.2, 0.2)];
        assert_close(focus_from_faces(&equal), 0.4, 0.3);
    }

    #[test]
    fn boxes_cut_by_the_edges_are_clamped() {
        let cut = clamp_box(-0.1, 0.8, 0.3, 0.4, 0.99).unwrap();
        assert!(
            (cut.left - 0.0).abs() < 1e-12 && (cut.width - 0.2).abs() < 1e-12,
            "{cut:?}"
        );
        assert!(
            (cut.top - 0.8).abs() < 1e-12 && (cut.height - 0.2).abs() < 1e-12,
            "{cut:?}"
        );
        // The focus uses the visible part only.
        assert_close(focus_from_faces(&[cut]), 0.1, 0.9);
        let wider_than_image = clamp_box(-0.5, -0.5, 2.0, 2.0, 1.0).unwrap();
        assert_eq!((wider_than_image.left, wider_than_image.width), (0.0, 1.0));
        assert_eq!((wider_than_image.top, wider_than_image.height), (0.0, 1.0));
    }

    #[test]
    fn empty_or_outside_or_nonsense_boxes_are_dropped() {
        assert_eq!(
            clamp_box(1.2, 0.1, 0.1, 0.1, 0.9),
            None,
            "right of the image"
        );
        assert_eq!(clamp_box(0.1, -0.5, 0.1, 0.4, 0.9), None, "above the image");
        assert_eq!(clamp_box(0.1, 0.1, 0.0, 0.1, 0.9), None, "zero width");
        assert_eq!(clamp_box(0.1, 0.1, -0.1, 0.1, 0.9), None, "negative width");
        assert_eq!(clamp_box(f64::NAN, 0.1, 0.1, 0.1, 0.9), None);
        assert_eq!(clamp_box(0.1, 0.1, f64::INFINITY, 0.1, 0.9), None);
    }

    #[test]
    fn confidence_is_clamped() {
        assert_eq!(clamp_box(0.1, 0.1, 0.1, 0.1, 1.7).unwrap().confidence, 1.0);
        assert_eq!(clamp_box(0.1, 0.1, 0.1, 0.1, -0.2).unwrap().confidence, 0.0);
        assert_eq!(
            clamp_box(0.1, 0.1, 0.1, 0.1, f64::NAN).unwrap().confidence,
            0.0
        );
    }

    #[test]
    fn serialises_as_the_contract_says() {
        let detection = FaceDetection::new(DetectorKind::Builtin, vec![face(0.25, 0.5, 0.5, 0.25)]);
        let json = serde_json::to_value(&detection).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "detector": "builtin",
                "faces": [{ "left": 0.25, "top": 0.5, "width": 0.5, "height": 0.25, "confidence": 0.9 }],
                "focus": { "x": 0.5, "y": 0.625 }
            })
        );
        let back: FaceDetection = serde_json::from_value(json).unwrap();
        assert_eq!(back, detection);
        for (kind, name) in [
            (DetectorKind::Builtin, "builtin"),
            (DetectorKind::Rekognition, "rekognition"),
            (DetectorKind::None, "none"),
        ] {
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
    }

    #[test]
    fn error_names_match_the_contract() {
        assert_eq!(
            FaceDetectionError::Transient("x".into()).error_name(),
            "Ferrotype.Transient"
        );
        assert_eq!(
            FaceDetectionError::Failed("x".into()).error_name(),
            "Ferrotype.FaceDetection"
        );
    }

    #[tokio::test]
    async fn no_detector_finds_nothing() {
        let image = image::RgbImage::from_pixel(64, 48, image::Rgb([200, 180, 160]));
        let detection = NoDetector.detect_focus(&image).await.unwrap();
        assert_eq!(detection, FaceDetection::none());
    }
}

#[cfg(test)]
mod crop_focus_tests {
    use super::*;

    fn face(left: f64, top: f64, width: f64, height: f64) -> FaceBox {
        FaceBox {
            left,
            top,
            width,
            height,
            confidence: 0.9,
        }
    }

    /// samples/two-people.jpg as the built-in detector sees it: two faces 0.5 apart in a 16:9 photo.
    fn two_people() -> FaceDetection {
        FaceDetection::new(
            DetectorKind::Builtin,
            vec![face(0.21, 0.08, 0.14, 0.24), face(0.69, 0.09, 0.16, 0.26)],
        )
    }

    #[test]
    fn a_square_crop_of_two_people_far_apart_keeps_the_larger_face_whole() {
        let detection = two_people();
        // The area-weighted focus falls between them: a square window (0.5625 of the width) centred
        // there spans 0.27–0.83 and cuts both faces.
        assert!(
            (detection.focus.x - 0.54).abs() < 0.02,
            "{:?}",
            detection.focus
        );
        let focus = crop_focus(&detection, (0.5625, 1.0));
        assert!((focus.x - 0.77).abs() < 1e-9, "{focus:?}");
        let (left, right) = (focus.x - 0.5625 / 2.0, focus.x + 0.5625 / 2.0);
        assert!(left <= 0.69 && 0.85 <= right, "the larger face is whole");
    }

    #[test]
    fn a_window_wide_enough_for_both_keeps_both_whole() {
        let focus = crop_focus(&two_people(), (0.8, 1.0));
        // The centre of their bounding box (0.21..0.85), not the area-weighted point.
        assert!((focus.x - 0.53).abs() < 1e-9, "{focus:?}");
    }

    #[test]
    fn a_face_larger_than_the_window_is_centred_and_no_faces_keep_the_focus() {
        let big = FaceDetection::new(DetectorKind::Builtin, vec![face(0.1, 0.1, 0.6, 0.6)]);
        let focus = crop_focus(&big, (0.3, 0.3));
        assert!((focus.x - 0.4).abs() < 1e-9 && (focus.y - 0.4).abs() < 1e-9);
        let none = FaceDetection::none();
        assert_eq!(crop_focus(&none, (0.5, 0.5)), none.focus);
    }

    #[test]
    fn without_faces_each_crop_keeps_the_most_attention_and_faces_win_over_it() {
        // A plain picture with a busy patch at its right edge.
        let preview = image::RgbImage::from_fn(800, 400, |x, y| {
            if x > 680 && (x / 2 + y / 2) % 2 == 0 {
                image::Rgb([250, 20, 20])
            } else {
                image::Rgb([120, 120, 120])
            }
        });
        let attention = FaceDetection::none().or_attention(&preview);
        assert!(attention.saliency.is_some() && attention.focus.x > 0.8);
        let square = crop_focus(&attention, (0.5, 1.0));
        assert!((square.x - 0.75).abs() < 1e-9, "flush right: {square:?}");
        // A detection with a face keeps following the face; no grid is added to it.
        let with_face = FaceDetection::new(DetectorKind::Builtin, vec![face(0.1, 0.4, 0.1, 0.1)])
            .or_attention(&preview);
        assert_eq!(with_face.saliency, None);
        assert!((crop_focus(&with_face, (0.5, 1.0)).x - 0.15).abs() < 1e-9);
    }
}
