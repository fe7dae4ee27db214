//! Face detection with Amazon Rekognition DetectFaces (FACTS.md "Amazon Rekognition DetectFaces").
//!
//! The upright preview is sent as bytes: a downscaled, EXIF-free JPEG. Boxes then refer to exactly the
//! pixels we sent (no orientation ambiguity), and since they are ratios they apply to the full image.

use std::io::Cursor;

use async_trait::async_trait;
use aws_sdk_rekognition::config::http::HttpResponse;
use aws_sdk_rekognition::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_rekognition::operation::detect_faces::DetectFacesError;
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::{Attribute, FaceDetail, Image};
use ferrotype_core::faces::{clamp_box, DetectorKind, FaceBox, FaceDetectionError, FaceDetector};
use image::codecs::jpeg::JpegEncoder;
use image::RgbImage;

/// DetectFaces refuses images with a side under 80 px.
pub const MIN_SIDE: u32 = 80;
/// Longest side sent: Rekognition finds faces of 40 px in a 1920×1080 image, so more pixels only
/// cost upload time.
pub const MAX_SIDE: u32 = 1920;
/// The limit on image bytes in a DetectFaces request.
pub const MAX_REQUEST_BYTES: usize = 5 * 1024 * 1024;

/// Quality of the first encoding; the lower ones are tried only when the image does not fit.
const QUALITIES: [u8; 3] = [85, 70, 50];

/// [`FaceDetector`] backed by DetectFaces (Attributes DEFAULT).
#[derive(Debug, Clone)]
pub struct RekognitionDetector {
    client: aws_sdk_rekognition::Client,
    /// Faces below this confidence (0..=1) are dropped.
    min_confidence: f64,
}

impl RekognitionDetector {
    /// `min_confidence` is a fraction (0..=1), like [`FaceBox::confidence`]; Rekognition's own
    /// percentages are divided by 100.
    pub fn new(client: aws_sdk_rekognition::Client, min_confidence: f64) -> Self {
        let min_confidence = if min_confidence.is_nan() {
            0.0
        } else {
            min_confidence.clamp(0.0, 1.0)
        };
        RekognitionDetector {
            client,
            min_confidence,
        }
    }
}

#[async_trait]
impl FaceDetector for RekognitionDetector {
    async fn detect(&self, upright: &RgbImage) -> Result<Vec<FaceBox>, FaceDetectionError> {
        let Some(jpeg) = request_jpeg(upright)? else {
            // Too small for DetectFaces, and too small to hold a face worth cropping to.
            return Ok(Vec::new());
        };
        let output = self
            .client
            .detect_faces()
            .image(Image::builder().bytes(Blob::new(jpeg)).build())
            .attributes(Attribute::Default)
            .send()
            .await
            .map_err(classify)?;
        Ok(output
            .face_details()
            .iter()
            .filter_map(face_box)
            .filter(|face| face.confidence >= self.min_confidence)
            .collect())
    }

    fn kind(&self) -> DetectorKind {
        DetectorKind::Rekognition
    }
}

/// A face's box as clamped fractions; `None` when Rekognition left the box out or it lies outside.
fn face_box(detail: &FaceDetail) -> Option<FaceBox> {
    let bbox = detail.bounding_box()?;
    clamp_box(
        f64::from(bbox.left()?),
        f64::from(bbox.top()?),
        f64::from(bbox.width()?),
        f64::from(bbox.height()?),
        f64::from(detail.confidence().unwrap_or(0.0)) / 100.0,
    )
}

/// The JPEG sent to DetectFaces: at most [`MAX_SIDE`] on its longest side and [`MAX_REQUEST_BYTES`]
/// long, without metadata. `None` when a side is (or would become) shorter than [`MIN_SIDE`].
pub fn request_jpeg(upright: &RgbImage) -> Result<Option<Vec<u8>>, FaceDetectionError> {
    let mut image = fit_within(upright, MAX_SIDE);
    loop {
        if image.width().min(image.height()) < MIN_SIDE {
            return Ok(None);
        }
        for quality in QUALITIES {
            let jpeg = encode_jpeg(&image, quality)?;
            if jpeg.len() <= MAX_REQUEST_BYTES {
                return Ok(Some(jpeg));
            }
        }
        // Only pathological content (noise) gets here: halve the size; the loop ends at MIN_SIDE.
        let longest = image.width().max(image.height());
        image = fit_within(&image, longest / 2);
    }
}

/// `image` scaled down so its longest side is at most `max_side` (never enlarged).
fn fit_within(image: &RgbImage, max_side: u32) -> RgbImage {
    let (width, height) = image.dimensions();
    let longest = width.max(height);
    if longest <= max_side {
        return image.clone();
    }
    let scale = f64::from(max_side) / f64::from(longest);
    let scaled = |side: u32| ((f64::from(side) * scale).round() as u32).max(1);
    image::imageops::resize(
        image,
        scaled(width),
        scaled(height),
        image::imageops::FilterType::Triangle,
    )
}

fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, FaceDetectionError> {
    let mut jpeg = Cursor::new(Vec::new());
    JpegEncoder::new_with_quality(&mut jpeg, quality)
        .encode_image(image)
        .map_err(|error| {
            FaceDetectionError::Failed(format!(
                "encoding the image for Rekognition failed: {error}"
            ))
        })?;
    Ok(jpeg.into_inner())
}

/// Throttling, service faults and network trouble are worth a retry; everything else (a refused image,
/// missing permission, a bad request) is not, and the pipeline falls back to a centred crop.
fn classify(error: SdkError<DetectFacesError, HttpResponse>) -> FaceDetectionError {
    let transient = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(service) => {
            matches!(
                service.err(),
                DetectFacesError::ThrottlingException(_)
                    | DetectFacesError::ProvisionedThroughputExceededException(_)
                    | DetectFacesError::InternalServerError(_)
            ) || service.raw().status().is_server_error()
        }
        _ => false,
    };
    let message = match error.code() {
        Some(code) => format!(
            "Rekognition DetectFaces failed with {code}: {}",
            error.message().unwrap_or("no message")
        ),
        None => format!(
            "Rekognition DetectFaces failed: {}",
            crate::describe_sdk_error(&error)
        ),
    };
    if transient {
        FaceDetectionError::Transient(message)
    } else {
        FaceDetectionError::Failed(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(width: u32, height: u32) -> RgbImage {
        // A xorshift generator: incompressible content, the worst case for the size limit.
        let mut state: u32 = 0x9E37_79B9;
        RgbImage::from_fn(width, height, |_, _| {
            let mut channel = || {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                state as u8
            };
            image::Rgb([channel(), channel(), channel()])
        })
    }

    #[test]
    fn large_images_are_sent_downscaled_as_plain_jpeg() {
        let image = RgbImage::from_fn(4000, 3000, |x, y| {
            image::Rgb([(x / 16) as u8, (y / 12) as u8, 90])
        });
        let jpeg = request_jpeg(&image).unwrap().expect("large enough");
        let decoded = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (1920, 1440));
        assert!(jpeg.len() <= MAX_REQUEST_BYTES);
        // SOI immediately followed by the JFIF APP0 segment: no EXIF (APP1) segment anywhere.
        assert_eq!(&jpeg[..4], &[0xFF, 0xD8, 0xFF, 0xE0]);
        assert!(!jpeg.windows(6).any(|window| window == b"Exif\0\0"));
    }

    #[test]
    fn small_images_are_not_sent() {
        for (width, height) in [(79, 500), (500, 79), (0, 0)] {
            assert_eq!(
                request_jpeg(&RgbImage::new(width, height)).unwrap(),
                None,
                "{width}x{height}"
            );
        }
        // A strip that would fall under the minimum once downscaled is not sent either.
        assert_eq!(request_jpeg(&RgbImage::new(8000, 100)).unwrap(), None);
        assert!(request_jpeg(&RgbImage::new(80, 80)).unwrap().is_some());
    }

    #[test]
    fn incompressible_images_still_fit_the_request_limit() {
        let image = noise(1920, 1920);
        assert!(
            encode_jpeg(&image, QUALITIES[0]).unwrap().len() > MAX_REQUEST_BYTES,
            "the test needs a JPEG over the limit"
        );
        let jpeg = request_jpeg(&image).unwrap().expect("large enough");
        assert!(jpeg.len() <= MAX_REQUEST_BYTES, "{} bytes", jpeg.len());
        image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
    }
}
