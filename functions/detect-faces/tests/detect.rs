//! detect-faces against a real S3-compatible server, fed by the real validate stage; the built-in
//! detector runs for real, Rekognition is mocked at the SDK boundary.

use std::sync::Arc;

use aws_sdk_rekognition::operation::detect_faces::{DetectFacesError, DetectFacesOutput};
use aws_sdk_rekognition::types::{BoundingBox, FaceDetail};
use aws_smithy_mocks::{mock, mock_client, Rule, RuleMode};
use detect_faces::{handler, DetectFaces};
use ferrotype_aws::rekognition::RekognitionDetector;
use ferrotype_aws::StageError;
use ferrotype_core::config::SmartCrop;
use ferrotype_core::faces::{BuiltinDetector, DetectorKind, FaceDetection};
use ferrotype_core::pipeline::{DetectFacesRequest, ValidatedImage};
use ferrotype_local_s3::testing::{self, OUTPUT_BUCKET};
use ferrotype_local_s3::{Fault, FaultRule, LocalS3, S3Op};

/// A real portrait (committed with the samples of the local run).
const PORTRAIT: &[u8] = include_bytes!("../../../samples/portrait.jpg");

async fn validated(server: &LocalS3, key: &str, body: &[u8]) -> ValidatedImage {
    let event = testing::upload_with_event(&server.client(), key, body).await;
    let deps = validate::Validate::new(server.client(), testing::test_config(), OUTPUT_BUCKET);
    validate::handler(&deps, testing::lambda_event(event))
        .await
        .expect("the fixture validates")
}

fn request(image: &ValidatedImage) -> DetectFacesRequest {
    DetectFacesRequest {
        source: image.source.clone(),
        smart_crop: image.smart_crop,
        version: image.version.clone(),
        working_copy: image.working_copy.clone(),
    }
}

fn builtin_only(server: &LocalS3) -> DetectFaces {
    DetectFaces::new(
        server.client(),
        testing::test_config(),
        Arc::new(BuiltinDetector::new()),
    )
}

fn with_rekognition(server: &LocalS3, rules: &[&Rule]) -> DetectFaces {
    // No SDK retries: each rule answers once, and the state machine owns retrying.
    let client = mock_client!(aws_sdk_rekognition, RuleMode::MatchAny, rules, |config| {
        config.retry_config(aws_sdk_rekognition::config::retry::RetryConfig::disabled())
    });
    builtin_only(server).with_rekognition(Arc::new(RekognitionDetector::new(
        client,
        detect_faces::REKOGNITION_MIN_CONFIDENCE,
    )))
}

async fn detect(
    deps: &DetectFaces,
    request: DetectFacesRequest,
) -> Result<FaceDetection, StageError> {
    handler(deps, testing::lambda_event(request)).await
}

fn error_name(result: Result<FaceDetection, StageError>) -> String {
    lambda_runtime::Diagnostic::from(result.expect_err("detection should fail")).error_type
}

#[tokio::test]
async fn the_builtin_detector_finds_the_face_of_a_portrait() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/portrait.jpg", PORTRAIT).await;
    assert_eq!(image.smart_crop, SmartCrop::Builtin);
    let detection = detect(&builtin_only(&server), request(&image))
        .await
        .unwrap();
    assert_eq!(detection.detector, DetectorKind::Builtin);
    assert!(!detection.faces.is_empty(), "{detection:?}");
    assert!(
        detection.focus.y < 0.5,
        "the face is in the upper half of a portrait: {detection:?}"
    );
    let json = serde_json::to_value(&detection).unwrap();
    assert_eq!(json["detector"], "builtin");
    assert!(json["faces"][0]["confidence"].is_number());
}

/// A plain grey 3:2 picture with a small, busy, red subject near its right edge and no face.
fn subject_on_the_right() -> Vec<u8> {
    let picture = image::RgbImage::from_fn(600, 400, |x, y| {
        if (500..570).contains(&x) && (150..230).contains(&y) && (x / 3 + y / 3) % 2 == 0 {
            image::Rgb([230, 30, 30])
        } else {
            image::Rgb([130, 130, 130])
        }
    });
    let mut png = Vec::new();
    picture
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png
}

#[tokio::test]
async fn without_a_face_crops_follow_attention_and_attention_alone_runs_no_detector() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/subject.png", &subject_on_the_right()).await;
    let fallback = detect(&builtin_only(&server), request(&image))
        .await
        .unwrap();
    assert_eq!(fallback.detector, DetectorKind::Builtin);
    assert!(fallback.faces.is_empty());
    let mut alone = request(&image);
    alone.smart_crop = SmartCrop::Attention;
    let attention = detect(&builtin_only(&server), alone).await.unwrap();
    // The built-in detector was not asked (it would have named itself).
    assert_eq!(attention.detector, DetectorKind::None);
    for detection in [&fallback, &attention] {
        assert!(detection.saliency.is_some(), "{detection:?}");
        assert!(detection.focus.x > 0.7, "{:?}", detection.focus);
        // A square crop of the 3:2 picture (2/3 of its width) holds the subject (x 500..570 of 600; a
        // centred one would end at 500). Windows within 5 % of the best count as equal and the more
        // central wins, so the subject's last pixels at the edge may go: at least 90 % of it stays.
        let square = ferrotype_core::crop_focus(detection, (2.0 / 3.0, 1.0));
        let right = (square.x + 1.0 / 3.0) * 600.0;
        assert!(right >= 500.0 + 0.9 * 70.0, "{square:?}");
    }
    let json = serde_json::to_value(&attention).unwrap();
    assert_eq!(json["saliency"]["columns"], 16);
    assert_eq!(json["saliency"]["rows"], 11);
}

#[tokio::test]
async fn smart_crop_off_reads_nothing() {
    let server = testing::start_server().await;
    let image = validated(&server, "plain/a.png", &testing::png(20, 20)).await;
    let reads_before = server.faults().requests_of(S3Op::GetObject).len();
    let mut off = request(&image);
    off.smart_crop = SmartCrop::Off;
    let detection = detect(&builtin_only(&server), off).await.unwrap();
    assert_eq!(detection, FaceDetection::none());
    assert_eq!(
        server.faults().requests_of(S3Op::GetObject).len(),
        reads_before
    );
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
async fn rekognition_faces_become_the_focus() {
    let server = testing::start_server().await;
    let image = validated(&server, "faces/portrait.jpg", PORTRAIT).await;
    assert_eq!(image.smart_crop, SmartCrop::Rekognition);
    let faces = mock!(aws_sdk_rekognition::Client::detect_faces).then_output(|| {
        DetectFacesOutput::builder()
            // One face cut by the left edge, confidence in percent as Rekognition reports it.
            .face_details(face(-0.1, 0.2, 0.3, 0.2, 99.5))
            .build()
    });
    let deps = with_rekognition(&server, &[&faces]);
    let detection = detect(&deps, request(&image)).await.unwrap();
    assert_eq!(detection.detector, DetectorKind::Rekognition);
    assert_eq!(detection.faces.len(), 1);
    let found = detection.faces[0];
    assert!(
        found.left.abs() < 1e-6 && (found.width - 0.2).abs() < 1e-6,
        "clamped to the image: {found:?}"
    );
    assert!(
        (detection.focus.x - 0.1).abs() < 1e-6 && (detection.focus.y - 0.3).abs() < 1e-6,
        "{detection:?}"
    );
    assert_eq!(faces.num_calls(), 1);
}

#[tokio::test]
async fn rekognition_errors_keep_their_meaning() {
    use aws_sdk_rekognition::types::error::{InvalidImageFormatException, ThrottlingException};
    let server = testing::start_server().await;
    let image = validated(&server, "faces/portrait.jpg", PORTRAIT).await;

    let throttled = mock!(aws_sdk_rekognition::Client::detect_faces).then_error(|| {
        DetectFacesError::ThrottlingException(
            ThrottlingException::builder().message("slow down").build(),
        )
    });
    let deps = with_rekognition(&server, &[&throttled]);
    assert_eq!(
        error_name(detect(&deps, request(&image)).await),
        "Ferrotype.Transient"
    );

    let refused = mock!(aws_sdk_rekognition::Client::detect_faces).then_error(|| {
        DetectFacesError::InvalidImageFormatException(
            InvalidImageFormatException::builder().message("no").build(),
        )
    });
    let deps = with_rekognition(&server, &[&refused]);
    assert_eq!(
        error_name(detect(&deps, request(&image)).await),
        "Ferrotype.FaceDetection"
    );
}

#[tokio::test]
async fn rekognition_without_a_client_is_a_configuration_error() {
    let server = testing::start_server().await;
    let image = validated(&server, "faces/portrait.jpg", PORTRAIT).await;
    assert_eq!(
        error_name(detect(&builtin_only(&server), request(&image)).await),
        "Ferrotype.Config"
    );
}

#[tokio::test]
async fn s3_failures_keep_their_names() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/a.png", &testing::png(40, 40)).await;
    let deps = builtin_only(&server);

    server
        .faults()
        .inject(FaultRule::new(S3Op::GetObject, Fault::SlowDown).times(3));
    assert_eq!(
        error_name(detect(&deps, request(&image)).await),
        "Ferrotype.Throttled"
    );
}

#[tokio::test]
async fn a_lost_working_copy_is_restored_from_a_current_upload_only() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/a.png", &testing::png(40, 40)).await;
    let deps = builtin_only(&server);
    let remove_copy = || async {
        server
            .client()
            .delete_object()
            .bucket(OUTPUT_BUCKET)
            .key(&image.working_copy.key)
            .send()
            .await
            .unwrap();
    };
    remove_copy().await;
    detect(&deps, request(&image)).await.unwrap();
    assert_eq!(
        testing::keys(&server.client(), OUTPUT_BUCKET).await,
        std::slice::from_ref(&image.working_copy.key),
        "decoded again from the source and stored back"
    );

    remove_copy().await;
    testing::upload(&server.client(), "uploads/a.png", &testing::png(41, 40)).await;
    assert_eq!(
        error_name(detect(&deps, request(&image)).await),
        "Ferrotype.Superseded"
    );
    assert!(testing::keys(&server.client(), OUTPUT_BUCKET)
        .await
        .is_empty());
}
