//! S3's rules, through the real SDK, on both backends (disk over HTTP, memory in-process): versions and
//! delete markers, conditional writes, deletes and reads, listings, metadata, copies, multipart uploads,
//! odd and long keys, and the change notifications.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_s3::primitives::{ByteStream, DateTime};
use aws_sdk_s3::types::{
    BucketVersioningStatus, CompletedMultipartUpload, CompletedPart, Delete, EncodingType,
    MetadataDirective, ObjectIdentifier,
};
use common::*;
use ferrotype_local_s3::{compare_sequencers, ChangeKind, CreatedReason, DeletionType};

#[tokio::test]
async fn every_put_is_a_version_readable_by_its_id() {
    for store in harnesses().await {
        let client = store.client();
        let (etag1, v1) = put(&client, "k.jpg", b"first").await;
        let (etag2, v2) = put(&client, "k.jpg", b"second").await;
        assert_ne!(v1, v2, "{}", store.name());
        assert_eq!(etag1, format!("\"{}\"", md5_hex(b"first")));
        assert_eq!(etag2, format!("\"{}\"", md5_hex(b"second")));

        let current = client
            .get_object()
            .bucket(BUCKET)
            .key("k.jpg")
            .send()
            .await
            .unwrap();
        assert_eq!(current.version_id(), Some(v2.as_str()));
        assert_eq!(body(current).await, b"second");
        let old = client
            .get_object()
            .bucket(BUCKET)
            .key("k.jpg")
            .version_id(&v1)
            .send()
            .await
            .unwrap();
        assert_eq!(old.e_tag(), Some(etag1.as_str()));
        assert_eq!(body(old).await, b"first");
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key("k.jpg")
            .version_id(&v1)
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_length(), Some(5));

        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k.jpg")
            .version_id("0000000000000000ffffffffffffffff")
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&err), (Some(404), Some("NoSuchVersion".into())));

        let versioning = client
            .get_bucket_versioning()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_eq!(versioning.status(), Some(&BucketVersioningStatus::Enabled));
    }
}

#[tokio::test]
async fn a_delete_adds_a_marker_and_a_versioned_delete_is_permanent() {
    for store in harnesses().await {
        let client = store.client();
        let (_, v1) = put(&client, "k", b"data").await;
        let deleted = client
            .delete_object()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap();
        assert_eq!(deleted.delete_marker(), Some(true));
        let marker = deleted.version_id().unwrap().to_owned();

        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&err), (Some(404), Some("NoSuchKey".into())));
        assert_eq!(header(&err, "x-amz-delete-marker").as_deref(), Some("true"));
        assert_eq!(header(&err, "x-amz-version-id"), Some(marker.clone()));
        let err = client
            .head_object()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(404));
        assert_eq!(header(&err, "x-amz-delete-marker").as_deref(), Some("true"));
        // The marker addressed by its id: 405.
        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .version_id(&marker)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(405), "{}", store.name());
        // The old version is still there, and listed among the versions; the key is not listed.
        let old = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .version_id(&v1)
            .send()
            .await
            .unwrap();
        assert_eq!(body(old).await, b"data");
        assert!(list_keys(&client, "").await.is_empty());
        let versions = client
            .list_object_versions()
            .bucket(BUCKET)
            .send()
            .await
            .unwrap();
        assert_eq!(versions.versions().len(), 1);
        assert_eq!(versions.versions()[0].is_latest(), Some(false));
        assert_eq!(versions.delete_markers().len(), 1);
        assert_eq!(versions.delete_markers()[0].is_latest(), Some(true));

        // Removing the marker brings the object back; removing the version deletes it for good.
        let removed = client
            .delete_object()
            .bucket(BUCKET)
            .key("k")
            .version_id(&marker)
            .send()
            .await
            .unwrap();
        assert_eq!(removed.delete_marker(), Some(true));
        assert_eq!(get(&client, "k").await, b"data");
        client
            .delete_object()
            .bucket(BUCKET)
            .key("k")
            .version_id(&v1)
            .send()
            .await
            .unwrap();
        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&err), (Some(404), Some("NoSuchKey".into())));
        assert_eq!(header(&err, "x-amz-delete-marker"), None);

        // A DELETE of a key that never existed still leaves a marker, as S3 does.
        let never = client
            .delete_object()
            .bucket(BUCKET)
            .key("never")
            .send()
            .await
            .unwrap();
        assert_eq!(never.delete_marker(), Some(true));
    }
}

#[tokio::test]
async fn create_only_puts_fail_with_412_while_a_current_object_exists() {
    for store in harnesses().await {
        let client = store.client();
        let create = |body: &'static [u8]| {
            client
                .put_object()
                .bucket(BUCKET)
                .key("once")
                .if_none_match("*")
                .body(ByteStream::from_static(body))
                .send()
        };
        create(b"first").await.unwrap();
        let err = create(b"second").await.unwrap_err();
        assert_eq!(
            failure(&err),
            (Some(412), Some("PreconditionFailed".into()))
        );
        assert_eq!(get(&client, "once").await, b"first");
        // A delete marker is no current object: creating succeeds again.
        client
            .delete_object()
            .bucket(BUCKET)
            .key("once")
            .send()
            .await
            .unwrap();
        create(b"third").await.unwrap();
        assert_eq!(get(&client, "once").await, b"third");
    }
}

#[tokio::test]
async fn compare_and_swap_puts_need_the_current_etag() {
    for store in harnesses().await {
        let client = store.client();
        let swap = |etag: &str, body: &'static [u8]| {
            client
                .put_object()
                .bucket(BUCKET)
                .key("manifest.json")
                .if_match(etag)
                .body(ByteStream::from_static(body))
                .send()
        };
        // No object: S3 answers 404 NoSuchKey.
        let err = swap("\"0123456789abcdef0123456789abcdef\"", b"x")
            .await
            .unwrap_err();
        assert_eq!(
            failure(&err),
            (Some(404), Some("NoSuchKey".into())),
            "{}",
            store.name()
        );

        let (etag1, _) = put(&client, "manifest.json", b"one").await;
        let etag2 = swap(&etag1, b"two")
            .await
            .unwrap()
            .e_tag()
            .unwrap()
            .to_owned();
        let err = swap(&etag1, b"stale").await.unwrap_err();
        assert_eq!(
            failure(&err),
            (Some(412), Some("PreconditionFailed".into()))
        );
        // Unquoted ETags are accepted too.
        swap(etag2.trim_matches('"'), b"three").await.unwrap();
        assert_eq!(get(&client, "manifest.json").await, b"three");
    }
}

#[tokio::test]
async fn conditional_deletes_check_the_current_version() {
    for store in harnesses().await {
        let client = store.client();
        let (etag, _) = put(&client, "k", b"data").await;
        let err = client
            .delete_object()
            .bucket(BUCKET)
            .key("k")
            .if_match("\"ffffffffffffffffffffffffffffffff\"")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            failure(&err),
            (Some(412), Some("PreconditionFailed".into()))
        );
        assert_eq!(get(&client, "k").await, b"data");
        client
            .delete_object()
            .bucket(BUCKET)
            .key("k")
            .if_match(&etag)
            .send()
            .await
            .unwrap();
        // Deleted (a marker on top): If-Match, even `*`, finds no current object.
        let err = client
            .delete_object()
            .bucket(BUCKET)
            .key("k")
            .if_match("*")
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&err), (Some(404), Some("NoSuchKey".into())));
        put(&client, "k", b"again").await;
        client
            .delete_object()
            .bucket(BUCKET)
            .key("k")
            .if_match("*")
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn conditional_and_ranged_reads() {
    for store in harnesses().await {
        let client = store.client();
        let (etag, _) = put(&client, "k", b"0123456789").await;
        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .if_none_match(&etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(304), "{}", store.name());
        let err = client
            .head_object()
            .bucket(BUCKET)
            .key("k")
            .if_none_match(&etag)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(304));
        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .if_match("\"ffffffffffffffffffffffffffffffff\"")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(412));
        let future = DateTime::from(SystemTime::now() + Duration::from_secs(3600));
        let past = DateTime::from(SystemTime::now() - Duration::from_secs(3600));
        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .if_modified_since(future)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(304));
        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .if_unmodified_since(past)
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(412));
        // A true If-Match wins over a false If-Unmodified-Since.
        client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .if_match(&etag)
            .if_unmodified_since(past)
            .send()
            .await
            .unwrap();

        let part = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .range("bytes=2-5")
            .send()
            .await
            .unwrap();
        assert_eq!(part.content_range(), Some("bytes 2-5/10"));
        assert_eq!(part.content_length(), Some(4));
        assert_eq!(body(part).await, b"2345");
        let tail = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .range("bytes=-3")
            .send()
            .await
            .unwrap();
        assert_eq!(body(tail).await, b"789");
        let err = client
            .get_object()
            .bucket(BUCKET)
            .key("k")
            .range("bytes=10-")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(416));
    }
}

#[tokio::test]
async fn headers_and_metadata_are_stored_and_returned() {
    for store in harnesses().await {
        let client = store.client();
        let before = SystemTime::now() - Duration::from_secs(2);
        client
            .put_object()
            .bucket(BUCKET)
            .key("a.webp")
            .body(ByteStream::from_static(b"RIFF....WEBP"))
            .content_type("image/webp")
            .cache_control("public, max-age=31536000, immutable")
            .content_disposition("inline; filename=\"a.webp\"")
            .content_language("en")
            .metadata("source-key", "uploads/a.jpg")
            .metadata("Source-Version", "v1")
            .send()
            .await
            .unwrap();
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key("a.webp")
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some("image/webp"));
        assert_eq!(
            head.cache_control(),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(
            head.content_disposition(),
            Some("inline; filename=\"a.webp\"")
        );
        assert_eq!(head.content_language(), Some("en"));
        assert_eq!(head.content_length(), Some(12));
        let metadata = head.metadata().unwrap();
        assert_eq!(metadata["source-key"], "uploads/a.jpg");
        assert_eq!(metadata["source-version"], "v1");
        let modified = SystemTime::try_from(*head.last_modified().unwrap()).unwrap();
        assert!(modified >= before && modified <= SystemTime::now() + Duration::from_secs(2));
    }
}

#[tokio::test]
async fn a_body_that_does_not_match_its_digest_is_refused() {
    for store in harnesses().await {
        let client = store.client();
        // Content-MD5 of "something else" (base64).
        let err = client
            .put_object()
            .bucket(BUCKET)
            .key("k")
            .content_md5("bxa6n3cQYSKlmoTQDz4R0g==")
            .body(ByteStream::from_static(b"the body"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            failure(&err),
            (Some(400), Some("BadDigest".into())),
            "{}",
            store.name()
        );
        let err = client
            .head_object()
            .bucket(BUCKET)
            .key("k")
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(404));
    }
}

#[tokio::test]
async fn listings_are_in_utf8_byte_order_with_prefixes_delimiters_and_pages() {
    for store in harnesses().await {
        let client = store.client();
        let keys = [
            "z.jpg",
            "é.jpg",
            "a/b/c.jpg",
            "a/b.jpg",
            "a.jpg",
            "a/c.jpg",
            "Z.jpg",
            "b",
            "a/",
        ];
        for key in keys {
            put(&client, key, key.as_bytes()).await;
        }
        put(&client, "gone.jpg", b"x").await;
        client
            .delete_object()
            .bucket(BUCKET)
            .key("gone.jpg")
            .send()
            .await
            .unwrap();
        let mut expected: Vec<&str> = keys.to_vec();
        expected.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(list_keys(&client, "").await, expected, "{}", store.name());

        // Pages of two, through continuation tokens.
        let mut paged = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = client
                .list_objects_v2()
                .bucket(BUCKET)
                .max_keys(2)
                .set_continuation_token(token.clone())
                .send()
                .await
                .unwrap();
            assert!(page.key_count().unwrap() <= 2);
            paged.extend(page.contents().iter().map(|o| o.key().unwrap().to_owned()));
            match page.next_continuation_token() {
                Some(next) => {
                    assert_eq!(page.is_truncated(), Some(true));
                    token = Some(next.to_owned());
                }
                None => break,
            }
        }
        assert_eq!(paged, expected);

        let grouped = client
            .list_objects_v2()
            .bucket(BUCKET)
            .delimiter("/")
            .send()
            .await
            .unwrap();
        let top: Vec<&str> = grouped.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(top, ["Z.jpg", "a.jpg", "b", "z.jpg", "é.jpg"]);
        let prefixes: Vec<&str> = grouped
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!(prefixes, ["a/"]);
        assert_eq!(grouped.key_count(), Some(6));

        let under_a = client
            .list_objects_v2()
            .bucket(BUCKET)
            .prefix("a/")
            .delimiter("/")
            .send()
            .await
            .unwrap();
        let keys_under_a: Vec<&str> = under_a.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys_under_a, ["a/", "a/b.jpg", "a/c.jpg"]);
        let prefixes: Vec<&str> = under_a
            .common_prefixes()
            .iter()
            .filter_map(|p| p.prefix())
            .collect();
        assert_eq!(prefixes, ["a/b/"]);

        let after = client
            .list_objects_v2()
            .bucket(BUCKET)
            .start_after("a/c.jpg")
            .send()
            .await
            .unwrap();
        let keys_after: Vec<&str> = after.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys_after, ["b", "z.jpg", "é.jpg"]);
        let listed = &after.contents()[0];
        assert_eq!(listed.size(), Some(1));
        assert_eq!(
            listed.e_tag(),
            Some(format!("\"{}\"", md5_hex(b"b")).as_str())
        );

        // ListObjects (v1) with a marker.
        let v1 = client
            .list_objects()
            .bucket(BUCKET)
            .marker("b")
            .send()
            .await
            .unwrap();
        let keys_v1: Vec<&str> = v1.contents().iter().filter_map(|o| o.key()).collect();
        assert_eq!(keys_v1, ["z.jpg", "é.jpg"]);
    }
}

#[tokio::test]
async fn object_versions_are_listed_newest_first_across_pages() {
    for store in harnesses().await {
        let client = store.client();
        let mut expected = Vec::new();
        for key in ["a", "b"] {
            let mut ids = Vec::new();
            for round in 0..3 {
                ids.push(
                    put(&client, key, format!("{key}{round}").as_bytes())
                        .await
                        .1,
                );
            }
            ids.reverse();
            expected.extend(ids.into_iter().map(|id| (key.to_owned(), id)));
        }
        let mut listed = Vec::new();
        let (mut key_marker, mut version_marker) = (None, None);
        loop {
            let page = client
                .list_object_versions()
                .bucket(BUCKET)
                .max_keys(2)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .unwrap();
            listed.extend(page.versions().iter().map(|v| {
                (
                    v.key().unwrap().to_owned(),
                    v.version_id().unwrap().to_owned(),
                )
            }));
            if page.is_truncated() != Some(true) {
                break;
            }
            key_marker = page.next_key_marker().map(str::to_owned);
            version_marker = page.next_version_id_marker().map(str::to_owned);
        }
        assert_eq!(listed, expected, "{}", store.name());
    }
}

#[tokio::test]
async fn keys_are_anything_s3_accepts_up_to_1024_bytes() {
    for store in harnesses().await {
        let client = store.client();
        // 1,024 bytes of UTF-8: two-byte letters.
        let long = format!("uploads/{}", "é".repeat(508));
        assert_eq!(long.len(), 1024);
        let odd = [
            long.as_str(),
            "a",
            "a/b",
            "a/b/c",
            "x/../y",
            "x//y",
            "dir/",
            "./dot",
            "sp ace+plus%percent",
            "tab\tand\u{1}control",
            "(1) [2] {3} #4 ?5 &6 =7 ;8 @9 !10 $11 '12 ,13",
            "日本語/写真.jpg",
        ];
        for key in odd {
            put(&client, key, key.as_bytes()).await;
        }
        for key in odd {
            assert_eq!(
                get(&client, key).await,
                key.as_bytes(),
                "{} {key:?}",
                store.name()
            );
        }
        let err = client
            .put_object()
            .bucket(BUCKET)
            .key(format!("{long}x"))
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        assert_eq!(status(&err), Some(400), "{}", store.name());

        // Control characters cannot travel in XML 1.0: listed with encoding-type=url, then decoded.
        let listed = client
            .list_objects_v2()
            .bucket(BUCKET)
            .encoding_type(EncodingType::Url)
            .send()
            .await
            .unwrap();
        let mut decoded: Vec<String> = listed
            .contents()
            .iter()
            .map(|o| percent_decode(o.key().unwrap()))
            .collect();
        let mut expected: Vec<String> = odd.iter().map(|k| k.to_string()).collect();
        expected.sort();
        decoded.sort();
        assert_eq!(decoded, expected);
    }
}

fn percent_decode(text: &str) -> String {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            out.push(u8::from_str_radix(&text[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn copies_keep_or_replace_metadata_and_honour_conditions() {
    for store in harnesses().await {
        let client = store.client();
        client
            .put_object()
            .bucket(BUCKET)
            .key("src.jpg")
            .content_type("image/jpeg")
            .metadata("m", "1")
            .body(ByteStream::from_static(b"old"))
            .send()
            .await
            .unwrap();
        let (_, old_version) = {
            let head = client
                .head_object()
                .bucket(BUCKET)
                .key("src.jpg")
                .send()
                .await
                .unwrap();
            (
                head.e_tag().unwrap().to_owned(),
                head.version_id().unwrap().to_owned(),
            )
        };
        put(&client, "src.jpg", b"new").await;

        let copied = client
            .copy_object()
            .bucket(BUCKET)
            .key("dst.jpg")
            .copy_source(format!("{BUCKET}/src.jpg?versionId={old_version}"))
            .send()
            .await
            .unwrap();
        assert_eq!(copied.copy_source_version_id(), Some(old_version.as_str()));
        assert_eq!(get(&client, "dst.jpg").await, b"old");
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key("dst.jpg")
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some("image/jpeg"));
        assert_eq!(head.metadata().unwrap()["m"], "1");

        client
            .copy_object()
            .bucket(BUCKET)
            .key("dst.jpg")
            .copy_source(format!("{BUCKET}/src.jpg"))
            .metadata_directive(MetadataDirective::Replace)
            .content_type("text/plain")
            .send()
            .await
            .unwrap();
        let head = client
            .head_object()
            .bucket(BUCKET)
            .key("dst.jpg")
            .send()
            .await
            .unwrap();
        assert_eq!(head.content_type(), Some("text/plain"));
        assert!(head.metadata().is_none_or(|m| m.is_empty()));
        assert_eq!(get(&client, "dst.jpg").await, b"new");

        let err = client
            .copy_object()
            .bucket(BUCKET)
            .key("dst.jpg")
            .copy_source(format!("{BUCKET}/src.jpg"))
            .customize()
            .mutate_request(|request| {
                request.headers_mut().insert("if-none-match", "*");
            })
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            failure(&err),
            (Some(412), Some("PreconditionFailed".into())),
            "{}",
            store.name()
        );
    }
}

#[tokio::test]
async fn multipart_uploads_assemble_their_parts() {
    for store in harnesses().await {
        let client = store.client();
        let first: Vec<u8> = (0..5 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
        let second = b"the small last part".to_vec();
        let upload = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("big.bin")
            .content_type("application/octet-stream")
            .send()
            .await
            .unwrap();
        let upload_id = upload.upload_id().unwrap();
        let mut parts = Vec::new();
        for (number, bytes) in [(1, &first), (2, &second)] {
            let part = client
                .upload_part()
                .bucket(BUCKET)
                .key("big.bin")
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(bytes.clone()))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(part.e_tag().unwrap())
                    .build(),
            );
        }
        let listed = client
            .list_parts()
            .bucket(BUCKET)
            .key("big.bin")
            .upload_id(upload_id)
            .send()
            .await
            .unwrap();
        assert_eq!(listed.parts().len(), 2);
        // Out of order: refused.
        let err = client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("big.bin")
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .parts(parts[1].clone())
                    .parts(parts[0].clone())
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&err).1.as_deref(), Some("InvalidPartOrder"));
        let done = client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("big.bin")
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        assert!(
            done.e_tag().unwrap().ends_with("-2\""),
            "{:?}",
            done.e_tag()
        );
        assert!(done.version_id().is_some());
        let mut whole = first.clone();
        whole.extend_from_slice(&second);
        assert_eq!(get(&client, "big.bin").await, whole, "{}", store.name());

        // A part smaller than 5 MiB that is not the last: EntityTooSmall. An aborted upload is gone.
        let upload = client
            .create_multipart_upload()
            .bucket(BUCKET)
            .key("small.bin")
            .send()
            .await
            .unwrap();
        let upload_id = upload.upload_id().unwrap();
        let mut parts = Vec::new();
        for number in [1, 2] {
            let part = client
                .upload_part()
                .bucket(BUCKET)
                .key("small.bin")
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from_static(b"tiny"))
                .send()
                .await
                .unwrap();
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .e_tag(part.e_tag().unwrap())
                    .build(),
            );
        }
        let err = client
            .complete_multipart_upload()
            .bucket(BUCKET)
            .key("small.bin")
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&err).1.as_deref(), Some("EntityTooSmall"));
        client
            .abort_multipart_upload()
            .bucket(BUCKET)
            .key("small.bin")
            .upload_id(upload_id)
            .send()
            .await
            .unwrap();
        let err = client
            .list_parts()
            .bucket(BUCKET)
            .key("small.bin")
            .upload_id(upload_id)
            .send()
            .await
            .unwrap_err();
        assert_eq!(failure(&err), (Some(404), Some("NoSuchUpload".into())));
    }
}

#[tokio::test]
async fn batch_deletes_report_each_key() {
    for store in harnesses().await {
        let client = store.client();
        put(&client, "a", b"a").await;
        let (_, b_version) = put(&client, "b", b"b").await;
        put(&client, "c", b"c").await;
        let out = client
            .delete_objects()
            .bucket(BUCKET)
            .delete(
                Delete::builder()
                    .objects(ObjectIdentifier::builder().key("a").build().unwrap())
                    .objects(
                        ObjectIdentifier::builder()
                            .key("b")
                            .version_id(&b_version)
                            .build()
                            .unwrap(),
                    )
                    .objects(
                        ObjectIdentifier::builder()
                            .key("c")
                            .e_tag("\"ffffffffffffffffffffffffffffffff\"")
                            .build()
                            .unwrap(),
                    )
                    .build()
                    .unwrap(),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(out.deleted().len(), 2, "{}", store.name());
        assert_eq!(out.errors().len(), 1);
        assert_eq!(out.errors()[0].key(), Some("c"));
        assert_eq!(out.errors()[0].code(), Some("PreconditionFailed"));
        assert_eq!(list_keys(&client, "").await, ["c"]);
    }
}

#[tokio::test]
async fn racing_create_only_puts_have_exactly_one_winner() {
    for store in harnesses().await {
        let client = store.client();
        for round in 0..20 {
            let key = format!("race/{round}");
            let attempts = (0..6).map(|writer| {
                let client = client.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    client
                        .put_object()
                        .bucket(BUCKET)
                        .key(&key)
                        .if_none_match("*")
                        .body(ByteStream::from(format!("writer {writer}").into_bytes()))
                        .send()
                        .await
                        .map(|_| writer)
                        .map_err(|err| failure(&err))
                })
            });
            let results = futures::future::join_all(attempts).await;
            let winners: Vec<usize> = results
                .iter()
                .filter_map(|r| r.as_ref().unwrap().as_ref().ok().copied())
                .collect();
            assert_eq!(
                winners.len(),
                1,
                "{} round {round}: {results:?}",
                store.name()
            );
            for result in &results {
                if let Err(failed) = result.as_ref().unwrap() {
                    assert_eq!(failed, &(Some(412), Some("PreconditionFailed".to_owned())));
                }
            }
            assert_eq!(
                get(&client, &key).await,
                format!("writer {}", winners[0]).as_bytes()
            );
        }
    }
}

#[tokio::test]
async fn committed_changes_are_published_in_order_with_growing_sequencers() {
    for store in harnesses().await {
        let mut changes = store.subscribe();
        let client = store.client();
        let (etag1, v1) = put(&client, "k.jpg", b"one").await;
        let (_, v2) = put(&client, "k.jpg", b"second").await;
        // A refused write commits nothing and publishes nothing.
        client
            .put_object()
            .bucket(BUCKET)
            .key("k.jpg")
            .if_none_match("*")
            .body(ByteStream::from_static(b"x"))
            .send()
            .await
            .unwrap_err();
        let marker = client
            .delete_object()
            .bucket(BUCKET)
            .key("k.jpg")
            .send()
            .await
            .unwrap()
            .version_id()
            .unwrap()
            .to_owned();
        client
            .delete_object()
            .bucket(BUCKET)
            .key("k.jpg")
            .version_id(&v1)
            .send()
            .await
            .unwrap();

        let mut received = Vec::new();
        while let Some(change) = changes.try_recv().unwrap() {
            received.push(change);
        }
        assert_eq!(received.len(), 4, "{}: {received:#?}", store.name());
        assert!(received
            .iter()
            .all(|c| c.bucket == BUCKET && c.key == "k.jpg"));
        assert_eq!(
            received[0].kind,
            ChangeKind::ObjectCreated {
                size: 3,
                etag: etag1.trim_matches('"').to_owned(),
                version_id: v1.clone(),
                reason: CreatedReason::PutObject,
            }
        );
        assert!(
            matches!(&received[1].kind, ChangeKind::ObjectCreated { version_id, size: 6, .. } if *version_id == v2)
        );
        assert_eq!(
            received[2].kind,
            ChangeKind::ObjectDeleted {
                version_id: marker,
                deletion_type: DeletionType::DeleteMarkerCreated,
            }
        );
        assert_eq!(
            received[3].kind,
            ChangeKind::ObjectDeleted {
                version_id: v1,
                deletion_type: DeletionType::PermanentlyDeleted,
            }
        );
        assert_eq!(
            DeletionType::DeleteMarkerCreated.as_str(),
            "Delete Marker Created"
        );
        for pair in received.windows(2) {
            assert_eq!(
                compare_sequencers(&pair[1].sequencer, &pair[0].sequencer),
                std::cmp::Ordering::Greater,
                "{pair:?}"
            );
            assert!(pair[1].time >= pair[0].time);
        }
    }
}
