//! The local server through the real AWS SDK: what the adapters rely on, and the injected faults.

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::ProvideErrorMetadata;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use ferrotype_local_s3::{Fault, FaultRule, LocalS3, S3Op};

const BUCKET: &str = "input";

async fn put(client: &Client, key: &str, body: &[u8]) -> String {
    let out = client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .content_type("image/jpeg")
        .cache_control("public, max-age=60")
        .metadata("source-key", "uploads/a.jpg")
        .send()
        .await
        .unwrap();
    out.e_tag().unwrap().to_owned()
}

async fn get_body(output: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    output.body.collect().await.unwrap().into_bytes().to_vec()
}

fn status<E>(
    err: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> Option<u16> {
    err.raw_response()
        .map(|response| response.status().as_u16())
}

#[tokio::test]
async fn objects_round_trip_with_their_headers_and_odd_keys() {
    let server = LocalS3::start_temporary(&[BUCKET, "output"]).await.unwrap();
    let client = server.client();
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    for key in [
        "uploads/a.jpg",
        "uploads/red flower.jpg",
        "uploads/a+b (1).jpg",
        "uploads/café/写真 100%.jpg",
    ] {
        let etag = put(&client, key, &body).await;

        let head = client
            .head_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(100_000));
        assert_eq!(head.e_tag(), Some(etag.as_str()));
        assert_eq!(head.content_type(), Some("image/jpeg"));
        assert_eq!(head.cache_control(), Some("public, max-age=60"));
        assert_eq!(head.metadata().unwrap()["source-key"], "uploads/a.jpg");
        assert!(head.version_id().is_some(), "buckets are versioned");

        let whole = client
            .get_object()
            .bucket(BUCKET)
            .key(key)
            .send()
            .await
            .unwrap();
        assert_eq!(get_body(whole).await, body);
    }
    // Each bucket is mirrored as a folder of the root, for browsing.
    assert!(server.root().join("output").is_dir());
    assert!(server
        .root()
        .join(BUCKET)
        .join("uploads/red flower.jpg")
        .is_file());
    server.shutdown().await;
}

#[tokio::test]
async fn range_gets_return_the_requested_bytes() {
    let server = LocalS3::start_temporary(&[BUCKET]).await.unwrap();
    let client = server.client();
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    put(&client, "k", &body).await;

    let first = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .range("bytes=0-65535")
        .send()
        .await
        .unwrap();
    assert_eq!(first.content_range(), Some("bytes 0-65535/70000"));
    assert_eq!(get_body(first).await, body[..65536]);

    // A range past the end is clipped to the object, as S3 does.
    let tail = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .range("bytes=65536-200000")
        .send()
        .await
        .unwrap();
    assert_eq!(get_body(tail).await, body[65536..]);

    let requests = server.faults().requests_of(S3Op::GetObject);
    assert_eq!(requests[0].range.as_deref(), Some("bytes=0-65535"));
}

#[tokio::test]
async fn if_match_pins_the_etag_on_get_and_head() {
    let server = LocalS3::start_temporary(&[BUCKET]).await.unwrap();
    let client = server.client();
    let old = put(&client, "k", b"first version").await;
    let got = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&old)
        .send()
        .await
        .unwrap();
    assert_eq!(get_body(got).await, b"first version");

    let new = put(&client, "k", b"second version").await;
    assert_ne!(old, new);
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&old)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(412));
    assert_eq!(err.code(), Some("PreconditionFailed"));
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&old)
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(412));
    client
        .head_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&new)
        .send()
        .await
        .unwrap();

    // A PUT pinned to a stale ETag is refused.
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .if_match(&old)
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(412));
}

#[tokio::test]
async fn missing_objects_are_404_no_such_key() {
    let server = LocalS3::start_temporary(&[BUCKET]).await.unwrap();
    let client = server.client();
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(404));
    assert!(err.into_service_error().is_no_such_key());
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(404));
}

#[tokio::test]
async fn injected_faults_are_http_errors_the_sdk_retries() {
    let server = LocalS3::start_temporary(&[BUCKET]).await.unwrap();
    let client = server.client();
    put(&client, "uploads/a.jpg", b"data").await;
    put(&client, "other/b.jpg", b"data").await;

    // Two 503s: the SDK's standard retries (3 attempts) absorb them.
    server.faults().inject(
        FaultRule::new(S3Op::GetObject, Fault::SlowDown)
            .times(2)
            .for_keys_under("uploads/"),
    );
    // Keys outside the prefix are not affected.
    client
        .get_object()
        .bucket(BUCKET)
        .key("other/b.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(server.faults().pending(), 2);
    let got = client
        .get_object()
        .bucket(BUCKET)
        .key("uploads/a.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(get_body(got).await, b"data");
    assert_eq!(server.faults().pending(), 0);
    let faults: Vec<_> = server
        .faults()
        .requests()
        .into_iter()
        .filter_map(|r| r.fault)
        .collect();
    assert_eq!(faults, [Fault::SlowDown, Fault::SlowDown]);

    // Without retries the first fault surfaces, with its status and code.
    let no_retries = Client::from_conf(
        server
            .client_config_builder()
            .retry_config(RetryConfig::disabled())
            .build(),
    );
    server
        .faults()
        .inject(FaultRule::new(S3Op::PutObject, Fault::InternalError));
    let err = no_retries
        .put_object()
        .bucket(BUCKET)
        .key("uploads/c.jpg")
        .body(ByteStream::from_static(b"c"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(500));
    assert_eq!(err.code(), Some("InternalError"));

    server
        .faults()
        .inject(FaultRule::new(S3Op::HeadObject, Fault::SlowDown));
    let err = no_retries
        .head_object()
        .bucket(BUCKET)
        .key("uploads/a.jpg")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(503));
}

#[tokio::test]
async fn a_vanishing_object_is_really_gone() {
    let server = LocalS3::start_temporary(&[BUCKET]).await.unwrap();
    let client = server.client();
    put(&client, "uploads/a.jpg", b"data").await;
    client
        .head_object()
        .bucket(BUCKET)
        .key("uploads/a.jpg")
        .send()
        .await
        .unwrap();
    server
        .faults()
        .inject(FaultRule::new(S3Op::GetObject, Fault::Vanish));
    let err = client
        .get_object()
        .bucket(BUCKET)
        .key("uploads/a.jpg")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(404));
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key("uploads/a.jpg")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(404));
}

#[tokio::test]
async fn requests_must_be_signed_with_the_test_credentials() {
    let server = LocalS3::start_temporary(&[BUCKET]).await.unwrap();
    let wrong = Client::from_conf(
        server
            .client_config_builder()
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "ferrotype-local",
                "wrong",
                None,
                None,
                "test",
            ))
            .build(),
    );
    let err = wrong
        .head_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(403));
}

#[tokio::test]
async fn a_persistent_root_keeps_objects_across_servers() {
    let dir = tempfile::tempdir().unwrap();
    let server = LocalS3::start(dir.path(), &[BUCKET]).await.unwrap();
    put(&server.client(), "kept.jpg", b"kept").await;
    server.shutdown().await;

    let again = LocalS3::start(dir.path(), &[BUCKET]).await.unwrap();
    let got = again
        .client()
        .get_object()
        .bucket(BUCKET)
        .key("kept.jpg")
        .send()
        .await
        .unwrap();
    assert_eq!(get_body(got).await, b"kept");
}
