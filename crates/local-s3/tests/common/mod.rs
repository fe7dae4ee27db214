//! Shared by the integration tests: the two ways to reach a store (the disk store over HTTP, the memory
//! store in-process), and small helpers around the SDK.
#![allow(dead_code)]

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use ferrotype_local_s3::{ChangeStream, InProcessS3, LocalS3};

pub const BUCKET: &str = "input";

/// A store and how the test reaches it.
pub enum Harness {
    Disk(LocalS3),
    Memory(InProcessS3),
}

impl Harness {
    pub fn client(&self) -> Client {
        match self {
            Harness::Disk(server) => server.client(),
            Harness::Memory(store) => store.client(),
        }
    }

    pub fn subscribe(&self) -> ChangeStream {
        match self {
            Harness::Disk(server) => server.subscribe(),
            Harness::Memory(store) => store.subscribe(),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Harness::Disk(_) => "disk over HTTP",
            Harness::Memory(_) => "memory in-process",
        }
    }
}

/// Both backends, fresh, each holding [`BUCKET`]: every S3 rule is checked on both.
pub async fn harnesses() -> Vec<Harness> {
    vec![
        Harness::Disk(LocalS3::start_temporary(&[BUCKET]).await.unwrap()),
        Harness::Memory(InProcessS3::in_memory(&[BUCKET]).unwrap()),
    ]
}

pub async fn put(client: &Client, key: &str, body: &[u8]) -> (String, String) {
    let out = client
        .put_object()
        .bucket(BUCKET)
        .key(key)
        .body(ByteStream::from(body.to_vec()))
        .send()
        .await
        .unwrap_or_else(|err| panic!("PUT {key}: {err:?}"));
    (
        out.e_tag().expect("an ETag").to_owned(),
        out.version_id().expect("a version id").to_owned(),
    )
}

pub async fn get(client: &Client, key: &str) -> Vec<u8> {
    let out = client
        .get_object()
        .bucket(BUCKET)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|err| panic!("GET {key}: {err:?}"));
    body(out).await
}

pub async fn body(output: aws_sdk_s3::operation::get_object::GetObjectOutput) -> Vec<u8> {
    output.body.collect().await.unwrap().into_bytes().to_vec()
}

pub fn status<E>(err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> Option<u16> {
    err.raw_response()
        .map(|response| response.status().as_u16())
}

pub fn header<E>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    name: &str,
) -> Option<String> {
    err.raw_response()
        .and_then(|response| response.headers().get(name))
        .map(str::to_owned)
}

/// Status and S3 error code of a failed call.
pub fn failure<E: ProvideErrorMetadata>(
    err: &SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> (Option<u16>, Option<String>) {
    (status(err), err.code().map(str::to_owned))
}

pub fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(bytes))
}

/// Every key listed by ListObjectsV2 (all pages), in the order the store gives them.
pub async fn list_keys(client: &Client, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(BUCKET)
        .prefix(prefix)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.unwrap();
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
    }
    keys
}
