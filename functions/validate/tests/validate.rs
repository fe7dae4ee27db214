//! validate against a real S3-compatible server: key encodings, pinning, every rejection, S3 failures.

use ferrotype_aws::StageError;
use ferrotype_core::config::SmartCrop;
use ferrotype_core::event::VersionIdentity;
use ferrotype_core::keys::version_tag;
use ferrotype_core::pipeline::ValidatedImage;
use ferrotype_core::SourceFormat;
use ferrotype_local_s3::testing::{self, INPUT_BUCKET, OUTPUT_BUCKET};
use ferrotype_local_s3::{Fault, FaultRule, LocalS3, S3Op};
use validate::{handler, Validate, FIRST_READ_BYTES};

fn deps(server: &LocalS3) -> Validate {
    Validate::new(server.client(), testing::test_config(), OUTPUT_BUCKET)
}

async fn run(server: &LocalS3, event: serde_json::Value) -> Result<ValidatedImage, StageError> {
    handler(&deps(server), testing::lambda_event(event)).await
}

/// The name the state machine sees.
fn error_name(result: Result<ValidatedImage, StageError>) -> String {
    let error = result.expect_err("validate should fail");
    lambda_runtime::Diagnostic::from(error).error_type
}

async fn upload_and_validate(
    server: &LocalS3,
    key: &str,
    body: &[u8],
) -> Result<ValidatedImage, StageError> {
    let event = testing::upload_with_event(&server.client(), key, body).await;
    run(server, event).await
}

#[tokio::test]
async fn describes_the_source_and_its_profile() {
    let server = testing::start_server().await;
    let body = testing::jpeg(120, 80);
    let etag = testing::upload(&server.client(), "uploads/cat.jpg", &body).await;
    let event = testing::event_json(&testing::object_created(
        INPUT_BUCKET,
        "uploads/cat.jpg",
        body.len() as u64,
        Some(&etag),
    ));
    let image = run(&server, event).await.unwrap();

    let source = &image.source;
    assert_eq!(source.bucket, INPUT_BUCKET);
    assert_eq!(source.key, "uploads/cat.jpg");
    assert_eq!(source.etag, etag);
    // The event named no version (an unversioned bucket's event); the HEAD that pins the read tells it.
    assert!(source.version_id.is_some(), "the local bucket is versioned");
    assert_eq!(source.size, body.len() as u64);
    assert_eq!(source.format, SourceFormat::Jpeg);
    assert_eq!((source.width, source.height), (120, 80));
    assert_eq!(source.orientation, 1);
    assert_eq!((source.upright_width, source.upright_height), (120, 80));
    assert_eq!(image.profile, "default");
    assert_eq!(image.version.len(), 16, "{}", image.version);
    assert_eq!(
        image.version,
        version_tag(
            &VersionIdentity::Etag {
                etag: etag.trim_matches('"').to_owned(),
                sequencer: None
            },
            testing::test_config().profile("default").unwrap()
        ),
        "the tag is the event's version and the profile's settings"
    );
    assert_eq!(image.smart_crop, SmartCrop::Builtin);
    assert!(image.detect_faces);
    assert_eq!(image.max_concurrency, 4);
    let names: Vec<_> = image.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["thumb", "wide", "centred"]);

    // The output is the contract's camelCase JSON.
    let json = serde_json::to_value(&image).unwrap();
    assert_eq!(json["source"]["uprightWidth"], 120);
    assert_eq!(json["detectFaces"], true);
    assert!(json["source"]["versionId"].is_string());
}

#[tokio::test]
async fn checks_the_header_before_reading_the_whole_upload() {
    let server = testing::start_server().await;
    // BMP is uncompressed, so this one is surely larger than the first read.
    let body = testing::bmp(200, 120);
    assert!(
        body.len() as u64 > FIRST_READ_BYTES,
        "the fixture must be larger than one read"
    );
    upload_and_validate(&server, "uploads/big.bmp", &body)
        .await
        .unwrap();
    let gets = server.faults().requests_of(S3Op::GetObject);
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[0].range.as_deref(), Some("bytes=0-65535"));
    assert_eq!(gets[1].range, None, "then the whole object, to decode it");

    // Too many pixels: refused from the header alone, nothing more is read.
    let before = server.faults().requests_of(S3Op::GetObject).len();
    let bomb = testing::png_header_claiming(65536, 65536);
    let mut padded = bomb.clone();
    padded.resize(200_000, 0);
    upload_and_validate(&server, "uploads/bomb.png", &padded)
        .await
        .unwrap_err();
    let gets = server.faults().requests_of(S3Op::GetObject);
    assert_eq!(gets.len() - before, 1);
    assert!(gets.last().unwrap().range.is_some());
}

#[tokio::test]
async fn decodes_the_upload_once_into_its_working_copy() {
    let server = testing::start_server().await;
    let image = upload_and_validate(&server, "uploads/cat.jpg", &testing::jpeg(120, 80))
        .await
        .unwrap();
    let copy = &image.working_copy;
    assert_eq!(copy.bucket, OUTPUT_BUCKET);
    assert_eq!(
        copy.key,
        format!("work/uploads/cat.jpg/{}.ftwc", image.version)
    );
    let (bytes, content_type, cache_control) =
        testing::download(&server.client(), OUTPUT_BUCKET, &copy.key).await;
    assert_eq!(copy.bytes, bytes.len() as u64);
    assert_eq!(
        content_type.as_deref(),
        Some("application/vnd.ferrotype.working-copy")
    );
    assert_eq!(cache_control.as_deref(), Some("no-store"));
    let decoded = ferrotype_core::WorkingCopy::decode(
        bytes.clone(),
        &testing::test_config().profiles[0].limits,
    )
    .unwrap();
    assert_eq!(
        (decoded.width(), decoded.height()),
        (copy.width, copy.height)
    );
    assert_eq!(decoded.upright_size(), (120, 80));
    // The largest variant here is 64 px wide: the copy need not be the full size.
    assert!(copy.width <= 120 && copy.width >= 64, "{copy:?}");

    // Validated again (a retry): the same copy, kept.
    let event = testing::event_json(&testing::object_created(
        INPUT_BUCKET,
        "uploads/cat.jpg",
        image.source.size,
        Some(image.source.etag.trim_matches('"')),
    ));
    let again = run(&server, event).await.unwrap();
    assert_eq!(again.working_copy, image.working_copy);
}

#[tokio::test]
async fn pixel_data_cut_short_behind_an_intact_header_is_rejected_before_anything_is_written() {
    let server = testing::start_server().await;
    let result = upload_and_validate(
        &server,
        "uploads/cut.jpg",
        &testing::jpeg_cut_in_data(400, 300),
    )
    .await;
    assert_eq!(error_name(result), "ImageRejected.Corrupt");
    assert!(testing::keys(&server.client(), OUTPUT_BUCKET)
        .await
        .is_empty());
}

/// A JPEG whose APP segments push the frame header past the first read.
fn jpeg_with_large_metadata(segments: usize) -> Vec<u8> {
    let plain = testing::jpeg(40, 30);
    let mut bytes = plain[..2].to_vec();
    for _ in 0..segments {
        let payload = vec![0x20u8; 60_000];
        bytes.extend_from_slice(&[0xFF, 0xE2]);
        bytes.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        bytes.extend_from_slice(&payload);
    }
    bytes.extend_from_slice(&plain[2..]);
    bytes
}

#[tokio::test]
async fn reads_more_while_the_header_continues() {
    let server = testing::start_server().await;
    let body = jpeg_with_large_metadata(4);
    let image = upload_and_validate(&server, "uploads/meta.jpg", &body)
        .await
        .unwrap();
    assert_eq!((image.source.width, image.source.height), (40, 30));
    // Every byte is read once: the header grows the first range, the rest of the object comes in the
    // second read (validate decodes the whole image once).
    let gets = server.faults().requests_of(S3Op::GetObject);
    assert_eq!(gets.len(), 2, "{gets:?}");
    assert_eq!(gets[0].range.as_deref(), Some("bytes=0-65535"));
    // The next read asks for four times as much, up to the end of the object.
    let end = (65536 + 4 * 65536).min(body.len()) - 1;
    assert_eq!(
        gets[1].range.as_deref(),
        Some(format!("bytes=65536-{end}").as_str())
    );
}

#[tokio::test]
async fn odd_keys_encoded_as_s3_encodes_them() {
    let server = testing::start_server().await;
    let body = testing::jpeg(20, 10);
    for key in testing::ODD_KEYS {
        let event = testing::upload_with_event(&server.client(), key, &body).await;
        let delivered = event["detail"]["object"]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(!delivered.contains(' '), "S3 encodes spaces: {delivered}");
        let image = run(&server, event)
            .await
            .unwrap_or_else(|err| panic!("{key}: {err}"));
        assert_eq!(image.source.key, key);
    }
}

#[tokio::test]
async fn odd_keys_delivered_raw() {
    let server = testing::start_server().await;
    let body = testing::jpeg(20, 10);
    for key in testing::ODD_KEYS {
        let etag = testing::upload(&server.client(), key, &body).await;
        let event =
            testing::object_created_raw_key(INPUT_BUCKET, key, body.len() as u64, Some(&etag));
        let image = run(&server, testing::event_json(&event))
            .await
            .unwrap_or_else(|err| panic!("{key}: {err}"));
        assert_eq!(image.source.key, key);
    }
}

#[tokio::test]
async fn a_plus_in_a_raw_key_is_found_even_when_the_decoded_key_exists_too() {
    // Both "a b.jpg" and "a+b.jpg" exist: the event for the '+' one, encoded, must name the '+' one.
    let server = testing::start_server().await;
    testing::upload(&server.client(), "uploads/a b.jpg", &testing::png(10, 10)).await;
    let image = upload_and_validate(&server, "uploads/a+b.jpg", &testing::jpeg(20, 10))
        .await
        .unwrap();
    assert_eq!(image.source.key, "uploads/a+b.jpg");
    assert_eq!(image.source.format, SourceFormat::Jpeg);
}

#[tokio::test]
async fn orientation_swaps_the_upright_size() {
    let server = testing::start_server().await;
    let image = upload_and_validate(
        &server,
        "uploads/rotated.jpg",
        &testing::jpeg_with_orientation(60, 20, 6),
    )
    .await
    .unwrap();
    assert_eq!(image.source.orientation, 6);
    assert_eq!((image.source.width, image.source.height), (60, 20));
    assert_eq!(
        (image.source.upright_width, image.source.upright_height),
        (20, 60)
    );
}

#[tokio::test]
async fn profiles_decide_smart_crop() {
    let server = testing::start_server().await;
    let plain = upload_and_validate(&server, "plain/a.png", &testing::png(10, 10))
        .await
        .unwrap();
    assert_eq!(plain.profile, "plain");
    assert_eq!(plain.smart_crop, SmartCrop::Off);
    assert!(!plain.detect_faces);
    let faces = upload_and_validate(&server, "faces/a.jpg", &testing::jpeg(10, 10))
        .await
        .unwrap();
    assert_eq!(faces.smart_crop, SmartCrop::Rekognition);
    assert!(faces.detect_faces);
}

#[tokio::test]
async fn every_rejection_has_its_name() {
    let server = testing::start_server().await;
    let mut too_large = testing::jpeg(16, 16);
    too_large.resize(1_000_001, 0);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("uploads/empty.jpg", Vec::new(), "ImageRejected.Empty"),
        (
            "uploads/list.jpg",
            testing::text(),
            "ImageRejected.NotAnImage",
        ),
        (
            "uploads/phone.heic",
            testing::heic(),
            "ImageRejected.UnsupportedFormat",
        ),
        (
            "uploads/new.avif",
            testing::avif(),
            "ImageRejected.UnsupportedFormat",
        ),
        // GIF is decodable but the "faces" profile accepts only JPEG and PNG.
        (
            "faces/anim.gif",
            testing::gif(8, 8),
            "ImageRejected.UnsupportedFormat",
        ),
        ("uploads/huge.jpg", too_large, "ImageRejected.TooLarge"),
        (
            "uploads/bomb.png",
            testing::png_header_claiming(65536, 65536),
            "ImageRejected.TooManyPixels",
        ),
        (
            "uploads/cut.jpg",
            testing::jpeg_cut_in_header(64, 64),
            "ImageRejected.Corrupt",
        ),
    ];
    for (key, body, expected) in cases {
        let result = upload_and_validate(&server, key, &body).await;
        assert_eq!(error_name(result), expected, "{key}");
    }
}

#[tokio::test]
async fn rejections_explain_themselves() {
    let server = testing::start_server().await;
    let err = upload_and_validate(
        &server,
        "uploads/bomb.png",
        &testing::png_header_claiming(65536, 65536),
    )
    .await
    .unwrap_err();
    let message = err.message();
    assert!(message.contains("65536"), "{message}");
}

#[tokio::test]
async fn an_event_for_an_upload_that_is_gone_or_replaced_is_superseded() {
    let server = testing::start_server().await;
    // Deleted before validate ran.
    let event = testing::event_json(&testing::object_created(
        INPUT_BUCKET,
        "uploads/gone.jpg",
        100,
        Some("abc"),
    ));
    let err = run(&server, event).await.unwrap_err();
    assert_eq!(err.name(), "Ferrotype.Superseded");
    assert!(err.message().contains("deleted"), "{err}");

    // Replaced before validate ran: the event names the old upload (a redelivered or late event).
    let old =
        testing::upload_with_event(&server.client(), "uploads/a.jpg", &testing::jpeg(20, 20)).await;
    testing::upload(&server.client(), "uploads/a.jpg", &testing::png(30, 30)).await;
    let err = run(&server, old).await.unwrap_err();
    assert_eq!(err.name(), "Ferrotype.Superseded");
    assert!(err.message().contains("uploaded again"), "{err}");

    // Deleted between the HEAD and the read of the header: the pinned read finds nothing.
    let event = testing::upload_with_event(
        &server.client(),
        "uploads/vanishing.jpg",
        &testing::jpeg(20, 20),
    )
    .await;
    server
        .faults()
        .inject(FaultRule::new(S3Op::GetObject, Fault::Vanish));
    assert_eq!(
        error_name(run(&server, event).await),
        "Ferrotype.Superseded"
    );
}

#[tokio::test]
async fn throttling_that_outlasts_the_sdk_retries_is_throttled_and_errors_transient() {
    let server = testing::start_server().await;
    let event =
        testing::upload_with_event(&server.client(), "uploads/a.jpg", &testing::jpeg(20, 20)).await;
    server
        .faults()
        .inject(FaultRule::new(S3Op::HeadObject, Fault::SlowDown).times(3));
    assert_eq!(
        error_name(run(&server, event.clone()).await),
        "Ferrotype.Throttled"
    );

    server
        .faults()
        .inject(FaultRule::new(S3Op::GetObject, Fault::InternalError).times(3));
    assert_eq!(
        error_name(run(&server, event.clone()).await),
        "Ferrotype.Transient"
    );

    // Fewer faults than the SDK's attempts: absorbed.
    server
        .faults()
        .inject(FaultRule::new(S3Op::GetObject, Fault::SlowDown).times(2));
    run(&server, event).await.unwrap();
    assert_eq!(server.faults().pending(), 0);
}

#[tokio::test]
async fn access_denied_is_a_configuration_error_with_a_clear_message() {
    let server = testing::start_server().await;
    let event =
        testing::upload_with_event(&server.client(), "uploads/a.jpg", &testing::jpeg(20, 20)).await;
    let wrong = aws_sdk_s3::Client::from_conf(
        server
            .client_config_builder()
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "someone", "else", None, None, "test",
            ))
            .build(),
    );
    let err = handler(
        &Validate::new(wrong, testing::test_config(), OUTPUT_BUCKET),
        testing::lambda_event(event),
    )
    .await
    .unwrap_err();
    assert_eq!(err.name(), "Ferrotype.Config");
    assert!(err.message().contains("access denied"), "{err}");
    assert!(err.message().contains("uploads/a.jpg"), "{err}");
}

#[tokio::test]
async fn bad_events_are_refused() {
    let server = testing::start_server().await;
    assert_eq!(
        error_name(run(&server, serde_json::json!({"hello": "world"})).await),
        "Ferrotype.BadEvent"
    );

    let mut deleted = testing::event_json(&testing::object_created(
        INPUT_BUCKET,
        "uploads/a.jpg",
        1,
        None,
    ));
    deleted["detail-type"] = "Object Deleted".into();
    assert_eq!(
        error_name(run(&server, deleted).await),
        "Ferrotype.BadEvent"
    );

    // A key under no profile prefix (the event rule should never send it).
    let result = upload_and_validate(&server, "elsewhere/a.jpg", &testing::jpeg(20, 20)).await;
    assert_eq!(error_name(result), "Ferrotype.BadEvent");
}
