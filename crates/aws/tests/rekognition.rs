//! RekognitionDetector against DetectFaces mocked at the SDK boundary.

use std::sync::{Arc, Mutex};

use aws_sdk_rekognition::operation::detect_faces::{DetectFacesError, DetectFacesOutput};
use aws_sdk_rekognition::types::error::{InvalidImageFormatException, ThrottlingException};
use aws_sdk_rekognition::types::{Attribute, BoundingBox, FaceDetail};
use aws_sdk_rekognition::Client;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ferrotype_aws::rekognition::MAX_REQUEST_BYTES;
use ferrotype_aws::RekognitionDetector;
use ferrotype_core::faces::{DetectorKind, FaceDetectionError, FaceDetector};
use image::{Rgb, RgbImage};

fn photo(width: u32, height: u32) -> RgbImage {
    RgbImage::from_fn(width, height, |x, y| {
        Rgb([(x % 251) as u8, (y % 241) as u8, ((x ^ y) % 239) as u8])
    })
}

fn face(left: f32, top: f32, width: f32, height: f32, confidence: f32) -> FaceDetail {
    FaceDetail::builder()
        .bounding_box(
            BoundingBox::builder()
                .left(left)
                .top(top)
                .width(width)
                .height(height)
                .build(),
        )
        .confidence(confidence)
        .build()
}

#[tokio::test]
async fn boxes_become_clamped_fractions() {
    let rule = mock!(Client::detect_faces).then_output(|| {
        DetectFacesOutput::builder()
            .face_details(face(0.25, 0.5, 0.25, 0.25, 99.5))
            // Cut by the left and bottom edges.
            .face_details(face(-0.125, 0.875, 0.25, 0.25, 97.0))
            // Below the minimum confidence.
            .face_details(face(0.5, 0.125, 0.125, 0.125, 40.0))
            // Entirely outside the image.
            .face_details(face(1.25, 0.25, 0.125, 0.125, 99.0))
            // No box at all.
            .face_details(FaceDetail::builder().confidence(99.0).build())
            .build()
    });
    let client = mock_client!(aws_sdk_rekognition, RuleMode::Sequential, [&rule]);
    let detector = RekognitionDetector::new(client, 0.5);
    assert_eq!(detector.kind(), DetectorKind::Rekognition);

    let detection = detector
        .detect_focus(&photo(640, 480))
        .await
        .expect("detects");
    assert_eq!(rule.num_calls(), 1);
    assert_eq!(detection.detector, DetectorKind::Rekognition);
    let boxes: Vec<(f64, f64, f64, f64)> = detection
        .faces
        .iter()
        .map(|face| (face.left, face.top, face.width, face.height))
        .collect();
    assert_eq!(
        boxes,
        vec![(0.25, 0.5, 0.25, 0.25), (0.0, 0.875, 0.125, 0.125)]
    );
    assert!((detection.faces[0].confidence - 0.995).abs() < 1e-6);
    assert!((detection.faces[1].confidence - 0.97).abs() < 1e-6);
    // Area weighted: 0.0625 at (0.375, 0.625) and 0.015625 at (0.0625, 0.9375).
    let weight = 0.0625 + 0.015625;
    assert!((detection.focus.x - (0.0625 * 0.375 + 0.015625 * 0.0625) / weight).abs() < 1e-9);
    assert!((detection.focus.y - (0.0625 * 0.625 + 0.015625 * 0.9375) / weight).abs() < 1e-9);
}

#[tokio::test]
async fn the_request_carries_a_downscaled_jpeg_within_the_limit() {
    let sent: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let seen = sent.clone();
    let rule = mock!(Client::detect_faces)
        .match_requests(move |request| {
            let image_bytes = request
                .image()
                .and_then(|image| image.bytes())
                .map(|blob| blob.as_ref().to_vec());
            let default_attributes = request.attributes() == [Attribute::Default];
            let no_s3_object = request
                .image()
                .is_some_and(|image| image.s3_object().is_none());
            match image_bytes {
                Some(bytes) if default_attributes && no_s3_object => {
                    seen.lock().unwrap().push(bytes);
                    true
                }
                _ => false,
            }
        })
        .then_output(|| DetectFacesOutput::builder().build());
    let client = mock_client!(aws_sdk_rekognition, RuleMode::Sequential, [&rule]);

    let faces = RekognitionDetector::new(client, 0.0)
        .detect(&photo(3000, 2000))
        .await
        .expect("detects");
    assert!(faces.is_empty());
    assert_eq!(rule.num_calls(), 1, "the request did not match");
    let sent = sent.lock().unwrap();
    let jpeg = &sent[0];
    assert!(jpeg.len() <= MAX_REQUEST_BYTES, "{} bytes", jpeg.len());
    let decoded =
        image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg).expect("a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (1920, 1280));
}

#[tokio::test]
async fn images_under_the_minimum_side_are_not_sent() {
    let rule = mock!(Client::detect_faces).then_output(|| DetectFacesOutput::builder().build());
    let client = mock_client!(aws_sdk_rekognition, RuleMode::Sequential, [&rule]);
    let faces = RekognitionDetector::new(client, 0.0)
        .detect(&photo(300, 60))
        .await
        .expect("no error");
    assert!(faces.is_empty());
    assert_eq!(rule.num_calls(), 0);
}

#[tokio::test]
async fn throttling_is_transient() {
    let rule = mock!(Client::detect_faces)
        .sequence()
        .error(|| {
            DetectFacesError::ThrottlingException(
                ThrottlingException::builder().message("slow down").build(),
            )
        })
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_rekognition, RuleMode::Sequential, [&rule]);
    let error = RekognitionDetector::new(client, 0.0)
        .detect(&photo(200, 200))
        .await
        .unwrap_err();
    match &error {
        FaceDetectionError::Transient(message) => {
            assert!(
                message.contains("ThrottlingException") && message.contains("slow down"),
                "{message}"
            )
        }
        other => panic!("expected Transient, got {other:?}"),
    }
    assert_eq!(error.error_name(), "Ferrotype.Transient");
}

#[tokio::test]
async fn an_invalid_image_fails_for_good() {
    let rule = mock!(Client::detect_faces)
        .sequence()
        .error(|| {
            DetectFacesError::InvalidImageFormatException(
                InvalidImageFormatException::builder()
                    .message("Request has invalid image format")
                    .build(),
            )
        })
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_rekognition, RuleMode::Sequential, [&rule]);
    let error = RekognitionDetector::new(client, 0.0)
        .detect(&photo(200, 200))
        .await
        .unwrap_err();
    match &error {
        FaceDetectionError::Failed(message) => {
            assert!(message.contains("InvalidImageFormatException"), "{message}")
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(error.error_name(), "Ferrotype.FaceDetection");
    assert_eq!(rule.num_calls(), 1, "not retried");
}

#[tokio::test]
async fn a_server_error_status_is_transient() {
    let rule = mock!(Client::detect_faces)
        .sequence()
        .http_status(503, None)
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_rekognition, RuleMode::Sequential, [&rule]);
    let error = RekognitionDetector::new(client, 0.0)
        .detect(&photo(200, 200))
        .await
        .unwrap_err();
    assert!(
        matches!(error, FaceDetectionError::Transient(_)),
        "{error:?}"
    );
}
