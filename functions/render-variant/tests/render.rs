//! render-variant against a real S3-compatible server, fed by the real validate stage.

use ferrotype_aws::StageError;
use ferrotype_core::pipeline::{RenderRequest, RenderedVariant, ValidatedImage};
use ferrotype_core::{DetectorKind, FaceDetection, Focus, OutputFormat};
use ferrotype_local_s3::testing::{self, OUTPUT_BUCKET};
use ferrotype_local_s3::{Fault, FaultRule, LocalS3, S3Op};
use render_variant::{handler, RenderVariant};

async fn validated(server: &LocalS3, key: &str, body: &[u8]) -> ValidatedImage {
    let event = testing::upload_with_event(&server.client(), key, body).await;
    let deps = validate::Validate::new(server.client(), testing::test_config(), OUTPUT_BUCKET);
    validate::handler(&deps, testing::lambda_event(event))
        .await
        .expect("the fixture validates")
}

/// The Map iteration for variant `name` of a validated image.
fn request(image: &ValidatedImage, name: &str, focus: Focus) -> RenderRequest {
    RenderRequest {
        source: image.source.clone(),
        profile: image.profile.clone(),
        version: image.version.clone(),
        working_copy: image.working_copy.clone(),
        faces: FaceDetection {
            detector: DetectorKind::None,
            faces: Vec::new(),
            focus,
            saliency: None,
        },
        variant: image
            .variants
            .iter()
            .find(|v| v.name == name)
            .expect("the variant exists")
            .clone(),
    }
}

fn deps(server: &LocalS3) -> RenderVariant {
    RenderVariant::new(server.client(), testing::test_config(), OUTPUT_BUCKET)
}

async fn render(server: &LocalS3, request: RenderRequest) -> Result<RenderedVariant, StageError> {
    handler(&deps(server), testing::lambda_event(request)).await
}

fn error_name(result: Result<RenderedVariant, StageError>) -> String {
    lambda_runtime::Diagnostic::from(result.expect_err("render should fail")).error_type
}

/// The variants in the output bucket (validate also wrote each upload's working copy there).
async fn output_keys(server: &LocalS3) -> Vec<String> {
    let mut keys = testing::keys(&server.client(), OUTPUT_BUCKET).await;
    keys.retain(|key| key.starts_with("variants/"));
    keys
}

#[tokio::test]
async fn renders_every_variant_to_its_own_immutable_key() {
    let server = testing::start_server().await;
    let image = validated(
        &server,
        "uploads/2024/red flower.jpg",
        &testing::jpeg(120, 80),
    )
    .await;
    let key = |file: &str| {
        format!(
            "variants/default/2024/red flower.jpg/{}/{file}",
            image.version
        )
    };
    let expected = [
        (
            "thumb",
            key("thumb.jpg"),
            OutputFormat::Jpeg,
            "image/jpeg",
            (32, 32),
        ),
        (
            "wide",
            key("wide.png"),
            OutputFormat::Png,
            "image/png",
            (64, 43),
        ),
        (
            "centred",
            key("centred.webp"),
            OutputFormat::Webp,
            "image/webp",
            (24, 48),
        ),
    ];
    for (name, key, format, content_type, (width, height)) in expected {
        let rendered = render(&server, request(&image, name, Focus::CENTRE))
            .await
            .unwrap();
        assert_eq!(rendered.name, name);
        assert_eq!(rendered.bucket, OUTPUT_BUCKET);
        assert_eq!(rendered.key, key);
        assert_eq!(rendered.format, format);
        assert_eq!(rendered.content_type, content_type);
        assert_eq!((rendered.width, rendered.height), (width, height), "{name}");

        let (bytes, stored_type, cache_control) =
            testing::download(&server.client(), OUTPUT_BUCKET, &key).await;
        assert_eq!(rendered.bytes, bytes.len() as u64);
        assert_eq!(stored_type.as_deref(), Some(content_type));
        assert_eq!(cache_control.as_deref(), Some("public, max-age=60"));
        let decoded = image::load_from_memory(&bytes).unwrap();
        assert_eq!(
            (decoded.width(), decoded.height()),
            (width, height),
            "{name}"
        );

        let head = server
            .client()
            .head_object()
            .bucket(OUTPUT_BUCKET)
            .key(&key)
            .send()
            .await
            .unwrap();
        let metadata = head.metadata().unwrap();
        assert_eq!(
            metadata["source-key"], "uploads/2024/red+flower.jpg",
            "percent-encoded, ASCII"
        );
        assert_eq!(metadata["source-bucket"], "input");
        assert_eq!(metadata["variant"], name);
        assert_eq!(metadata["profile"], "default");
        assert_eq!(metadata["version"], image.version);
    }
    let json = serde_json::to_value(
        render(&server, request(&image, "thumb", Focus::CENTRE))
            .await
            .unwrap(),
    )
    .unwrap();
    for field in [
        "name",
        "bucket",
        "key",
        "format",
        "contentType",
        "width",
        "height",
        "bytes",
        "durationMs",
    ] {
        assert!(json.get(field).is_some(), "{field} missing from {json}");
    }
    assert_eq!(json["format"], "jpeg");
}

#[tokio::test]
async fn a_retried_render_keeps_its_earlier_write() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/cat.png", &testing::png(90, 60)).await;
    let first = render(&server, request(&image, "thumb", Focus::CENTRE))
        .await
        .unwrap();
    let (first_bytes, _, _) = testing::download(&server.client(), OUTPUT_BUCKET, &first.key).await;
    let again = render(&server, request(&image, "thumb", Focus::CENTRE))
        .await
        .unwrap();
    assert_eq!(again.key, first.key);
    let (again_bytes, _, _) = testing::download(&server.client(), OUTPUT_BUCKET, &again.key).await;
    assert_eq!(again_bytes, first_bytes, "rendering is deterministic");
    assert_eq!(output_keys(&server).await, std::slice::from_ref(&first.key));
    let puts = server.faults().requests_of(S3Op::PutObject);
    let variant_puts = puts.iter().filter(|p| p.key == first.key).count();
    assert_eq!(variant_puts, 2, "both attempts tried to write");
}

#[tokio::test]
async fn uploads_of_one_key_never_share_an_output() {
    let server = testing::start_server().await;
    let first = validated(&server, "uploads/cat.png", &testing::png(90, 60)).await;
    let first = render(&server, request(&first, "thumb", Focus::CENTRE))
        .await
        .unwrap();
    let second = validated(&server, "uploads/cat.png", &testing::png(60, 90)).await;
    let second = render(&server, request(&second, "thumb", Focus::CENTRE))
        .await
        .unwrap();
    assert_ne!(first.key, second.key);
    // Neither a .jpg nor a .png with the same stem shares them either.
    let other = validated(&server, "uploads/cat.jpg", &testing::jpeg(60, 90)).await;
    let other = render(&server, request(&other, "thumb", Focus::CENTRE))
        .await
        .unwrap();
    assert_ne!(other.key, second.key);
    assert_eq!(output_keys(&server).await.len(), 3);
}

#[tokio::test]
async fn focus_steers_cover_crops_only_where_the_variant_follows_it() {
    let server = testing::start_server().await;
    // Red, green, blue bands; a focus on the far left.
    let image = validated(
        &server,
        "uploads/bands.png",
        &testing::three_bands_png(300, 100),
    )
    .await;
    let left = Focus { x: 0.05, y: 0.5 };

    let thumb = render(&server, request(&image, "thumb", left))
        .await
        .unwrap();
    let (bytes, _, _) = testing::download(&server.client(), OUTPUT_BUCKET, &thumb.key).await;
    let pixel = image::load_from_memory(&bytes)
        .unwrap()
        .to_rgb8()
        .get_pixel(16, 16)
        .0;
    assert!(
        pixel[0] > 200 && pixel[1] < 60,
        "the thumb follows the focus to the red band: {pixel:?}"
    );

    // "centred" has followFocus: false: the same focus is ignored.
    let centred = render(&server, request(&image, "centred", left))
        .await
        .unwrap();
    let (bytes, _, _) = testing::download(&server.client(), OUTPUT_BUCKET, &centred.key).await;
    let pixel = image::load_from_memory(&bytes)
        .unwrap()
        .to_rgb8()
        .get_pixel(12, 24)
        .0;
    assert!(
        pixel[1] > 200 && pixel[0] < 60,
        "the centred crop stays on the green band: {pixel:?}"
    );
}

#[tokio::test]
async fn faults_that_outlast_the_sdk_retries_are_transient_and_a_retry_succeeds() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/cat.jpg", &testing::jpeg(50, 50)).await;

    server
        .faults()
        .inject(FaultRule::new(S3Op::GetObject, Fault::SlowDown).times(3));
    assert_eq!(
        error_name(render(&server, request(&image, "thumb", Focus::CENTRE)).await),
        "Ferrotype.Throttled"
    );

    server.faults().inject(
        FaultRule::new(S3Op::PutObject, Fault::InternalError)
            .times(3)
            .for_keys_under("variants/"),
    );
    assert_eq!(
        error_name(render(&server, request(&image, "thumb", Focus::CENTRE)).await),
        "Ferrotype.Transient"
    );
    assert!(output_keys(&server).await.is_empty());

    // What the state machine's retry does: the same input again.
    let rendered = render(&server, request(&image, "thumb", Focus::CENTRE))
        .await
        .unwrap();
    assert_eq!(output_keys(&server).await, [rendered.key]);
}

#[tokio::test]
async fn a_source_replaced_or_deleted_after_validation_supersedes_the_render() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/cat.jpg", &testing::jpeg(50, 50)).await;
    // Same key, new bytes.
    testing::upload(&server.client(), "uploads/cat.jpg", &testing::jpeg(60, 40)).await;
    let result = render(&server, request(&image, "thumb", Focus::CENTRE)).await;
    let err = result.as_ref().unwrap_err();
    assert!(err.message().contains("uploaded again"), "{err}");
    assert_eq!(error_name(result), "Ferrotype.Superseded");

    server
        .client()
        .delete_object()
        .bucket("input")
        .key("uploads/cat.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_name(render(&server, request(&image, "thumb", Focus::CENTRE)).await),
        "Ferrotype.Superseded"
    );
    assert!(output_keys(&server).await.is_empty());
}

#[tokio::test]
async fn an_unknown_profile_is_a_bad_event() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/cat.jpg", &testing::jpeg(50, 50)).await;
    let mut bad = request(&image, "thumb", Focus::CENTRE);
    bad.profile = "nope".into();
    assert_eq!(error_name(render(&server, bad).await), "Ferrotype.BadEvent");
}

#[tokio::test]
async fn renders_from_the_working_copy_without_reading_the_upload() {
    let server = testing::start_server().await;
    let image = validated(&server, "uploads/cat.jpg", &testing::jpeg(120, 80)).await;
    let before = server.faults().requests_of(S3Op::GetObject);
    render(&server, request(&image, "thumb", Focus::CENTRE))
        .await
        .unwrap();
    let reads: Vec<_> = server.faults().requests_of(S3Op::GetObject)[before.len()..].to_vec();
    assert_eq!(reads.len(), 1, "{reads:?}");
    assert_eq!(reads[0].key, image.working_copy.key);
}

#[tokio::test]
async fn a_cover_crop_keeps_the_larger_of_two_faces_that_cannot_both_fit() {
    let server = testing::start_server().await;
    // Red, green, blue bands; a small "face" on the red band, a larger one on the blue band.
    let image = validated(
        &server,
        "uploads/two.png",
        &testing::three_bands_png(300, 100),
    )
    .await;
    let face = |left: f64, width: f64| ferrotype_core::FaceBox {
        left,
        top: 0.25,
        width,
        height: 0.5,
        confidence: 0.9,
    };
    let faces = FaceDetection::new(DetectorKind::Builtin, vec![face(0.0, 0.15), face(0.8, 0.2)]);
    // Their area-weighted centre is on the green band, which would cut both faces.
    assert!((0.34..0.66).contains(&faces.focus.x), "{:?}", faces.focus);
    let mut request = request(&image, "thumb", faces.focus);
    request.faces = faces;
    let thumb = render(&server, request).await.unwrap();
    let (bytes, _, _) = testing::download(&server.client(), OUTPUT_BUCKET, &thumb.key).await;
    let pixels = image::load_from_memory(&bytes).unwrap().to_rgb8();
    let centre = pixels.get_pixel(pixels.width() / 2, pixels.height() / 2).0;
    assert!(
        centre[2] > 200 && centre[0] < 60 && centre[1] < 60,
        "the square crop keeps the larger face (blue band) whole: {centre:?}"
    );
}
