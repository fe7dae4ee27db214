//! The S3 operations, over any backend: s3s parses and answers HTTP; this decides (with [`crate::rules`])
//! and asks the backend to store. Both backends run exactly this code.

use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, TrailingHeaders, S3};

use crate::backend::{Backend, ByteChunks, CommitError, Decision, StageError, StagedBlob};
use crate::clock::Clock;
use crate::faults::{Fault, Faults, S3Op};
use crate::model::{
    millis_since_epoch, sequencer, Change, ChangeKind, CreatedReason, DeletionType, KeyRecord,
    ObjectHeaders, Part, StoredObject, Upload, Version,
};
use crate::rules::{self, ListEntry, ListShape, ListStart, ReadConditions, ReadRefusal};

/// S3's largest single PUT (5 GiB); also the bound on what one request may make the disk store hold.
pub(crate) const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// The memory store's bound per object: simulations move small images, and memory is shared.
pub(crate) const MAX_MEMORY_OBJECT_SIZE: u64 = 256 * 1024 * 1024;
/// Every part but the last must be at least this large (S3's multipart minimum).
const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
const MAX_PART_NUMBER: i32 = 10_000;
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

pub(crate) struct Engine<B: Backend> {
    pub backend: B,
    pub faults: Arc<Faults>,
    pub clock: Arc<dyn Clock>,
    pub max_object_size: u64,
}

/// An I/O failure as S3 reports its own: 500 InternalError, with the cause (e.g. "No space left on device").
pub(crate) fn storage_error(err: io::Error) -> S3Error {
    let mut error = S3Error::with_message(
        S3ErrorCode::InternalError,
        format!("The local store could not complete the request: {err}"),
    );
    error.set_source(Box::new(err));
    error
}

fn commit_error(err: CommitError) -> S3Error {
    match err {
        CommitError::Refused(error) => error,
        CommitError::Io(err) => storage_error(err),
    }
}

fn no_such_bucket(bucket: &str) -> S3Error {
    s3_error!(
        NoSuchBucket,
        "The specified bucket does not exist: {bucket}"
    )
}

fn no_such_upload() -> S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

/// The digests of a body, filled in while it streams to the backend.
#[derive(Default)]
struct BodyDigest {
    size: u64,
    md5: Md5,
    checksums: s3s::checksum::ChecksumHasher,
}

/// The checksums a request carries (headers, or trailers of an aws-chunked body).
#[derive(Default)]
struct Checksums {
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
    algorithm: Option<String>,
}

impl Checksums {
    fn hasher(&self) -> S3Result<s3s::checksum::ChecksumHasher> {
        let mut hasher = s3s::checksum::ChecksumHasher::default();
        let wanted = |value: &Option<String>, name: &str| {
            value.is_some() || self.algorithm.as_deref() == Some(name)
        };
        if wanted(&self.crc32, ChecksumAlgorithm::CRC32) {
            hasher.crc32 = Some(Default::default());
        }
        if wanted(&self.crc32c, ChecksumAlgorithm::CRC32C) {
            hasher.crc32c = Some(Default::default());
        }
        if wanted(&self.crc64nvme, ChecksumAlgorithm::CRC64NVME) {
            hasher.crc64nvme = Some(Default::default());
        }
        if wanted(&self.sha1, ChecksumAlgorithm::SHA1) {
            hasher.sha1 = Some(Default::default());
        }
        if wanted(&self.sha256, ChecksumAlgorithm::SHA256) {
            hasher.sha256 = Some(Default::default());
        }
        Ok(hasher)
    }

    fn add_trailers(&mut self, trailers: Option<&TrailingHeaders>) {
        let Some(headers) = trailers.and_then(TrailingHeaders::take) else {
            return;
        };
        let get = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned)
        };
        self.crc32 = self.crc32.take().or_else(|| get("x-amz-checksum-crc32"));
        self.crc32c = self.crc32c.take().or_else(|| get("x-amz-checksum-crc32c"));
        self.crc64nvme = self
            .crc64nvme
            .take()
            .or_else(|| get("x-amz-checksum-crc64nvme"));
        self.sha1 = self.sha1.take().or_else(|| get("x-amz-checksum-sha1"));
        self.sha256 = self.sha256.take().or_else(|| get("x-amz-checksum-sha256"));
    }

    /// Every checksum the client sent must match the bytes received (S3: 400 BadDigest).
    fn verify(&self, computed: &Checksum) -> S3Result<()> {
        let pairs = [
            ("CRC32", &self.crc32, &computed.checksum_crc32),
            ("CRC32C", &self.crc32c, &computed.checksum_crc32c),
            ("CRC64NVME", &self.crc64nvme, &computed.checksum_crc64nvme),
            ("SHA1", &self.sha1, &computed.checksum_sha1),
            ("SHA256", &self.sha256, &computed.checksum_sha256),
        ];
        for (name, sent, actual) in pairs {
            if let Some(sent) = sent {
                if Some(sent) != actual.as_ref() {
                    return Err(s3_error!(
                        BadDigest,
                        "The {name} you specified did not match the calculated checksum."
                    ));
                }
            }
        }
        Ok(())
    }
}

/// A body written to the backend, with what was computed on the way.
struct Staged<S> {
    /// The new version's id if the blob is committed as one.
    id: String,
    blob: S,
    size: u64,
    md5: [u8; 16],
}

impl<S> Staged<S> {
    fn etag(&self) -> String {
        hex::encode(self.md5)
    }
}

fn body_error(err: io::Error) -> S3Error {
    if err.kind() == io::ErrorKind::FileTooLarge {
        return s3_error!(
            EntityTooLarge,
            "Your proposed upload exceeds the maximum allowed object size."
        );
    }
    match err.into_inner().map(|inner| inner.downcast::<S3Error>()) {
        Some(Ok(error)) => *error,
        Some(Err(other)) => s3_error!(IncompleteBody, "Reading the request body failed: {other}"),
        None => s3_error!(IncompleteBody, "Reading the request body failed"),
    }
}

fn to_system_time(timestamp: &Timestamp) -> SystemTime {
    time::OffsetDateTime::from(timestamp.clone()).into()
}

fn timestamp(time: SystemTime) -> Timestamp {
    Timestamp::from(time)
}

fn headers_from_input(
    content_type: Option<String>,
    cache_control: Option<String>,
    content_disposition: Option<String>,
    content_encoding: Option<String>,
    content_language: Option<String>,
    expires: Option<Timestamp>,
    metadata: Option<Metadata>,
) -> ObjectHeaders {
    ObjectHeaders {
        content_type,
        cache_control,
        content_disposition,
        content_encoding,
        content_language,
        expires: expires.map(|expires| time::OffsetDateTime::from(expires).unix_timestamp()),
        metadata: metadata
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name.to_ascii_lowercase(), value))
            .collect(),
    }
}

fn metadata_of(headers: &ObjectHeaders) -> Option<Metadata> {
    (!headers.metadata.is_empty()).then(|| {
        headers
            .metadata
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect()
    })
}

fn expires_of(headers: &ObjectHeaders) -> Option<Timestamp> {
    headers
        .expires
        .and_then(|seconds| time::OffsetDateTime::from_unix_timestamp(seconds).ok())
        .map(Timestamp::from)
}

/// A version to create from staged bytes, and the conditions its write must meet.
struct NewVersion<S> {
    staged: Staged<S>,
    etag: String,
    parts: Option<u32>,
    headers: ObjectHeaders,
    if_match: Option<ETagCondition>,
    if_none_match: Option<ETagCondition>,
    reason: CreatedReason,
}

/// What a DELETE did, for DeleteObject's and DeleteObjects' answers.
#[derive(Debug, Clone)]
struct Deleted {
    version_id: Option<String>,
    delete_marker: bool,
}

/// A read of one object version: what it is, which bytes, and (for GET) the bytes.
struct Read {
    version: Version,
    object: StoredObject,
    range: Option<Range<u64>>,
    body: Option<ByteChunks>,
}

impl<B: Backend> Engine<B> {
    async fn require_bucket(&self, bucket: &str) -> S3Result<()> {
        match self.backend.has_bucket(bucket).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(no_such_bucket(bucket)),
            Err(err) => Err(storage_error(err)),
        }
    }

    /// Serves the fault a rule asks for, if any. `Vanish` deletes the object and lets the request go on.
    async fn inject<T>(
        &self,
        op: S3Op,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
    ) -> S3Result<()> {
        let range = req
            .headers
            .get("range")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        match self.faults.take(op, bucket, key, range) {
            None => Ok(()),
            Some(Fault::SlowDown) => Err(s3_error!(
                SlowDown,
                "Please reduce your request rate (injected fault)."
            )),
            Some(Fault::InternalError) => Err(s3_error!(
                InternalError,
                "We encountered an internal error. Please try again (injected fault)."
            )),
            Some(Fault::Vanish) => self.purge(bucket, key).await,
        }
    }

    /// Streams `body` into a staged blob, computing its MD5 and the checksums `checksums` asks for, and
    /// checks them (and `content_md5`) once it is complete.
    async fn stage(
        &self,
        bucket: &str,
        key: &str,
        body: ByteChunks,
        content_md5: Option<&str>,
        mut checksums: Checksums,
        trailers: Option<&TrailingHeaders>,
    ) -> S3Result<Staged<B::Staged>> {
        let digest = Arc::new(Mutex::new(BodyDigest {
            checksums: checksums.hasher()?,
            ..Default::default()
        }));
        let limit = self.max_object_size;
        let counted = {
            let digest = digest.clone();
            body.map(move |chunk| {
                let chunk = chunk?;
                let mut digest = digest.lock().unwrap_or_else(|p| p.into_inner());
                digest.size += chunk.len() as u64;
                if digest.size > limit {
                    return Err(io::Error::new(
                        io::ErrorKind::FileTooLarge,
                        "the body exceeds the maximum object size",
                    ));
                }
                digest.md5.update(&chunk);
                digest.checksums.update(&chunk);
                Ok(chunk)
            })
        };
        let id = self.backend.unique_id();
        let blob = self
            .backend
            .stage(bucket, key, &id, Box::pin(counted))
            .await
            .map_err(|err| match err {
                StageError::Io(err) => storage_error(err),
                StageError::Body(err) => body_error(err),
            })?;
        let digest = std::mem::take(&mut *digest.lock().unwrap_or_else(|p| p.into_inner()));
        let md5: [u8; 16] = digest.md5.finalize().into();
        if let Some(content_md5) = content_md5 {
            let sent = base64_decode(content_md5).ok_or_else(|| {
                s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid.")
            })?;
            if sent != md5 {
                return Err(s3_error!(
                    BadDigest,
                    "The Content-MD5 you specified did not match what we received."
                ));
            }
        }
        checksums.add_trailers(trailers);
        checksums.verify(&digest.checksums.finalize())?;
        Ok(Staged {
            id,
            blob,
            size: digest.size,
            md5,
        })
    }

    /// Commits a new object version at `key` if the write conditions hold.
    async fn create_version(
        &self,
        bucket: &str,
        key: &str,
        new: NewVersion<B::Staged>,
    ) -> S3Result<Version> {
        let NewVersion {
            staged,
            etag,
            parts,
            headers,
            if_match,
            if_none_match,
            reason,
        } = new;
        let clock = self.clock.clone();
        let (bucket_name, key_name) = (bucket.to_owned(), key.to_owned());
        let decide = Box::new(move |record: &KeyRecord| {
            rules::check_write(record, if_match.as_ref(), if_none_match.as_ref())?;
            // Stamped when committed, under the key's lock: a key's versions are in time order.
            let now = clock.now();
            let mut record = record.clone();
            let sequence = record.take_sequence();
            let version = Version {
                version_id: staged.id,
                sequence,
                last_modified_ms: millis_since_epoch(now),
                object: Some(StoredObject {
                    size: staged.size,
                    etag: etag.clone(),
                    blob: staged.blob.blob().to_owned(),
                    parts,
                    headers,
                }),
            };
            record.versions.insert(0, version.clone());
            let change = Change {
                bucket: bucket_name,
                key: key_name,
                sequencer: sequencer(sequence),
                time: now,
                kind: ChangeKind::ObjectCreated {
                    size: staged.size,
                    etag,
                    version_id: version.version_id.clone(),
                    reason,
                },
            };
            Ok(Decision {
                record: Some(record),
                adopt: Some(staged.blob),
                release: Vec::new(),
                changes: vec![change],
                output: version,
            })
        });
        self.backend
            .commit(bucket, key, decide)
            .await
            .map_err(commit_error)
    }

    /// DELETE: of one version by id (permanent), or a new delete marker. `if_match` is checked against
    /// the current version.
    async fn delete(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<String>,
        if_match: Option<ETagCondition>,
    ) -> S3Result<Deleted> {
        let clock = self.clock.clone();
        let marker_id = self.backend.unique_id();
        let (bucket_name, key_name) = (bucket.to_owned(), key.to_owned());
        let decide = Box::new(move |record: &KeyRecord| {
            rules::check_delete(record, if_match.as_ref())?;
            let now = clock.now();
            let mut record = record.clone();
            let change = |sequence: u64, version_id: &str, deletion_type| Change {
                bucket: bucket_name.clone(),
                key: key_name.clone(),
                sequencer: sequencer(sequence),
                time: now,
                kind: ChangeKind::ObjectDeleted {
                    version_id: version_id.to_owned(),
                    deletion_type,
                },
            };
            match version_id {
                Some(version_id) => {
                    let Some(index) = record
                        .versions
                        .iter()
                        .position(|version| version.version_id == version_id)
                    else {
                        // Deleting what is not there changes nothing and succeeds.
                        return Ok(Decision::unchanged(Deleted {
                            version_id: Some(version_id),
                            delete_marker: false,
                        }));
                    };
                    let removed = record.versions.remove(index);
                    let sequence = record.take_sequence();
                    Ok(Decision {
                        release: removed
                            .object
                            .iter()
                            .map(|object| object.blob.clone())
                            .collect(),
                        changes: vec![change(
                            sequence,
                            &version_id,
                            DeletionType::PermanentlyDeleted,
                        )],
                        output: Deleted {
                            version_id: Some(version_id),
                            delete_marker: removed.is_delete_marker(),
                        },
                        record: Some(record),
                        adopt: None,
                    })
                }
                None => {
                    let sequence = record.take_sequence();
                    record.versions.insert(
                        0,
                        Version {
                            version_id: marker_id.clone(),
                            sequence,
                            last_modified_ms: millis_since_epoch(now),
                            object: None,
                        },
                    );
                    Ok(Decision {
                        changes: vec![change(
                            sequence,
                            &marker_id,
                            DeletionType::DeleteMarkerCreated,
                        )],
                        record: Some(record),
                        adopt: None,
                        release: Vec::new(),
                        output: Deleted {
                            version_id: Some(marker_id),
                            delete_marker: true,
                        },
                    })
                }
            }
        });
        self.backend
            .commit(bucket, key, decide)
            .await
            .map_err(commit_error)
    }

    /// Deletes every version of `key` for good (what [`Fault::Vanish`] does: the object is really gone,
    /// also for reads pinned to a version).
    async fn purge(&self, bucket: &str, key: &str) -> S3Result<()> {
        let clock = self.clock.clone();
        let (bucket_name, key_name) = (bucket.to_owned(), key.to_owned());
        let decide = Box::new(move |record: &KeyRecord| {
            if record.versions.is_empty() {
                return Ok(Decision::unchanged(()));
            }
            let now = clock.now();
            let mut record = record.clone();
            let removed = std::mem::take(&mut record.versions);
            let changes = removed
                .iter()
                .map(|version| Change {
                    bucket: bucket_name.clone(),
                    key: key_name.clone(),
                    sequencer: sequencer(record.take_sequence()),
                    time: now,
                    kind: ChangeKind::ObjectDeleted {
                        version_id: version.version_id.clone(),
                        deletion_type: DeletionType::PermanentlyDeleted,
                    },
                })
                .collect();
            Ok(Decision {
                release: removed
                    .iter()
                    .filter_map(|version| version.object.as_ref().map(|o| o.blob.clone()))
                    .collect(),
                changes,
                record: Some(record),
                adopt: None,
                output: (),
            })
        });
        self.backend
            .commit(bucket, key, decide)
            .await
            .map_err(commit_error)
    }

    /// The version a GET or HEAD addresses, if its conditions hold, and for a GET its bytes. A version
    /// deleted between reading the record and opening its bytes is looked up again.
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
        conditions: &ReadConditions<'_>,
        range: Option<&s3s::dto::Range>,
        with_body: bool,
    ) -> S3Result<Read> {
        self.require_bucket(bucket).await?;
        for _ in 0..3 {
            let record = self
                .backend
                .record(bucket, key)
                .await
                .map_err(storage_error)?;
            let (version, object) = rules::select_version(record.as_ref(), version_id)?;
            if let Err(refusal) = rules::check_read(version, object, conditions) {
                return Err(read_refusal(refusal, version, object));
            }
            let range = match range {
                Some(range) => Some(range.check(object.size).map_err(S3Error::from)?),
                None => None,
            };
            let body = if with_body {
                let bytes = range.clone().unwrap_or(0..object.size);
                match self
                    .backend
                    .read(bucket, key, &object.blob, bytes)
                    .await
                    .map_err(storage_error)?
                {
                    Some(body) => Some(body),
                    None => continue,
                }
            } else {
                None
            };
            return Ok(Read {
                version: version.clone(),
                object: object.clone(),
                range,
                body,
            });
        }
        Err(s3_error!(NoSuchKey, "The specified key does not exist."))
    }

    async fn records(&self, bucket: &str, prefix: &str) -> S3Result<Vec<KeyRecord>> {
        self.require_bucket(bucket).await?;
        self.backend
            .records(bucket, prefix)
            .await
            .map_err(storage_error)
    }

    /// The current objects under `prefix`, as (key, (key, object, last modified)) sorted by key.
    async fn current_objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> S3Result<Vec<(String, (String, StoredObject, SystemTime))>> {
        Ok(self
            .records(bucket, prefix)
            .await?
            .into_iter()
            .filter_map(|record| {
                let (version, object) = record.current_object()?;
                let item = (record.key.clone(), object.clone(), version.last_modified());
                Some((record.key.clone(), item))
            })
            .collect())
    }

    async fn upload_of(&self, bucket: &str, key: &str, upload_id: &str) -> S3Result<Upload> {
        self.require_bucket(bucket).await?;
        match self.backend.upload(bucket, upload_id).await {
            Ok(Some(upload)) if upload.key == key => Ok(upload),
            Ok(_) => Err(no_such_upload()),
            Err(err) => Err(storage_error(err)),
        }
    }
}

fn read_refusal(refusal: ReadRefusal, version: &Version, object: &StoredObject) -> S3Error {
    let mut error = match refusal {
        ReadRefusal::PreconditionFailed => s3_error!(
            PreconditionFailed,
            "At least one of the pre-conditions you specified did not hold"
        ),
        ReadRefusal::NotModified => s3_error!(NotModified, "Not Modified"),
    };
    if refusal == ReadRefusal::NotModified {
        let mut headers = http::HeaderMap::new();
        if let Ok(value) = rules::quoted(&object.etag).to_http_header() {
            headers.insert(http::header::ETAG, value);
        }
        if let Ok(value) = http::HeaderValue::from_str(&rules::http_date(version.last_modified())) {
            headers.insert(http::header::LAST_MODIFIED, value);
        }
        error.set_headers(headers);
    }
    error
}

fn condition_header(
    headers: &http::HeaderMap,
    name: http::header::HeaderName,
) -> S3Result<Option<ETagCondition>> {
    headers
        .get(&name)
        .map(|value| {
            ETagCondition::parse_http_header(value.as_bytes())
                .map_err(|_| s3_error!(InvalidArgument, "Invalid {name} header"))
        })
        .transpose()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut count = 0u32;
    let mut out = Vec::new();
    for byte in text.trim_end_matches('=').bytes() {
        let value = ALPHABET.iter().position(|&b| b == byte)? as u32;
        bits = (bits << 6) | value;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

fn into_chunks(body: Option<StreamingBlob>) -> ByteChunks {
    match body {
        Some(body) => Box::pin(body.map(|chunk| chunk.map_err(io::Error::other))),
        None => Box::pin(futures::stream::iter(
            std::iter::empty::<io::Result<Bytes>>(),
        )),
    }
}

fn streaming_blob(body: ByteChunks) -> StreamingBlob {
    StreamingBlob::wrap(body)
}

fn bucket_listing<T>(page_entries: &[ListEntry<T>]) -> Option<CommonPrefixList> {
    let prefixes: Vec<CommonPrefix> = page_entries
        .iter()
        .filter_map(|entry| match entry {
            ListEntry::CommonPrefix(prefix) => Some(CommonPrefix {
                prefix: Some(prefix.clone()),
            }),
            ListEntry::Item(_) => None,
        })
        .collect();
    (!prefixes.is_empty()).then_some(prefixes)
}

/// `encoding-type=url` asks for keys percent-encoded in the answer.
fn encoder(encoding_type: Option<&EncodingType>) -> impl Fn(String) -> String {
    let url = encoding_type.is_some_and(|kind| kind.as_str() == EncodingType::URL);
    move |text: String| if url { rules::url_encode(&text) } else { text }
}

#[async_trait::async_trait]
impl<B: Backend> S3 for Engine<B> {
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let bucket = req.input.bucket;
        // us-east-1 answers 200 to an owner re-creating its bucket.
        self.backend
            .create_bucket(&bucket, self.clock.now())
            .await
            .map_err(storage_error)?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{bucket}")),
        }))
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let bucket = req.input.bucket;
        let records = self.records(&bucket, "").await?;
        let uploads = self.backend.uploads(&bucket).await.map_err(storage_error)?;
        if records.iter().any(|record| !record.versions.is_empty()) || !uploads.is_empty() {
            return Err(s3_error!(
                BucketNotEmpty,
                "The bucket you tried to delete is not empty. You must delete all versions in the bucket."
            ));
        }
        self.backend
            .remove_bucket(&bucket)
            .await
            .map_err(storage_error)?;
        Ok(S3Response::new(DeleteBucketOutput {}))
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(crate::REGION.to_owned()),
            ..Default::default()
        }))
    }

    async fn list_buckets(
        &self,
        _req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let buckets = self.backend.buckets().await.map_err(storage_error)?;
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(
                buckets
                    .into_iter()
                    .map(|(name, created)| Bucket {
                        name: Some(name),
                        creation_date: Some(timestamp(created)),
                        bucket_region: Some(crate::REGION.to_owned()),
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        // us-east-1 is reported as an empty location constraint.
        Ok(S3Response::new(GetBucketLocationOutput::default()))
    }

    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        Ok(S3Response::new(GetBucketVersioningOutput {
            status: Some(BucketVersioningStatus::from_static(
                BucketVersioningStatus::ENABLED,
            )),
            ..Default::default()
        }))
    }

    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        self.require_bucket(&req.input.bucket).await?;
        match req.input.versioning_configuration.status {
            Some(status) if status.as_str() == BucketVersioningStatus::ENABLED => {
                Ok(S3Response::new(PutBucketVersioningOutput {}))
            }
            _ => Err(s3_error!(
                NotImplemented,
                "Buckets of the local store are always versioned; only Status=Enabled is accepted."
            )),
        }
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.inject(S3Op::PutObject, &req, &bucket, &key).await?;
        self.require_bucket(&bucket).await?;
        let input = req.input;
        if let Some(ETagCondition::ETag(_)) = &input.if_none_match {
            return Err(s3_error!(
                NotImplemented,
                "If-None-Match on a write accepts only '*'"
            ));
        }
        let checksums = Checksums {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
            algorithm: input.checksum_algorithm.map(|a| a.as_str().to_owned()),
        };
        let staged = self
            .stage(
                &bucket,
                &key,
                into_chunks(input.body),
                input.content_md5.as_deref(),
                checksums,
                req.trailing_headers.as_ref(),
            )
            .await?;
        let etag = staged.etag();
        let size = staged.size;
        let headers = headers_from_input(
            input.content_type,
            input.cache_control,
            input.content_disposition,
            input.content_encoding,
            input.content_language,
            input.expires,
            input.metadata,
        );
        let version = self
            .create_version(
                &bucket,
                &key,
                NewVersion {
                    staged,
                    etag: etag.clone(),
                    parts: None,
                    headers,
                    if_match: input.if_match,
                    if_none_match: input.if_none_match,
                    reason: CreatedReason::PutObject,
                },
            )
            .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(rules::quoted(&etag)),
            version_id: Some(version.version_id),
            size: Some(size as i64),
            ..Default::default()
        }))
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.inject(S3Op::GetObject, &req, &bucket, &key).await?;
        let input = &req.input;
        if input.part_number.is_some_and(|part| part != 1) {
            return Err(s3_error!(
                NotImplemented,
                "Reading a part of an object by partNumber is not supported by the local store"
            ));
        }
        let conditions = ReadConditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref().map(to_system_time),
            if_unmodified_since: input.if_unmodified_since.as_ref().map(to_system_time),
        };
        let read = self
            .read(
                &bucket,
                &key,
                input.version_id.as_deref(),
                &conditions,
                input.range.as_ref(),
                true,
            )
            .await?;
        let Read {
            version,
            object,
            range,
            body,
        } = read;
        let length = range
            .as_ref()
            .map_or(object.size, |range| range.end - range.start);
        let headers = &object.headers;
        Ok(S3Response::new(GetObjectOutput {
            body: body.map(streaming_blob),
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(length as i64),
            content_range: range
                .map(|range| format!("bytes {}-{}/{}", range.start, range.end - 1, object.size)),
            content_type: Some(
                headers
                    .content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            ),
            cache_control: headers.cache_control.clone(),
            content_disposition: headers.content_disposition.clone(),
            content_encoding: headers.content_encoding.clone(),
            content_language: headers.content_language.clone(),
            expires: expires_of(headers),
            metadata: metadata_of(headers),
            e_tag: Some(rules::quoted(&object.etag)),
            last_modified: Some(timestamp(version.last_modified())),
            version_id: Some(version.version_id.clone()),
            parts_count: object.parts.map(|parts| parts as i32),
            ..Default::default()
        }))
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
        self.inject(S3Op::HeadObject, &req, &bucket, &key).await?;
        let input = &req.input;
        let conditions = ReadConditions {
            if_match: input.if_match.as_ref(),
            if_none_match: input.if_none_match.as_ref(),
            if_modified_since: input.if_modified_since.as_ref().map(to_system_time),
            if_unmodified_since: input.if_unmodified_since.as_ref().map(to_system_time),
        };
        let read = self
            .read(
                &bucket,
                &key,
                input.version_id.as_deref(),
                &conditions,
                input.range.as_ref(),
                false,
            )
            .await?;
        let Read {
            version,
            object,
            range,
            ..
        } = read;
        let length = range
            .as_ref()
            .map_or(object.size, |range| range.end - range.start);
        let headers = &object.headers;
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_owned()),
            content_length: Some(length as i64),
            content_range: range
                .map(|range| format!("bytes {}-{}/{}", range.start, range.end - 1, object.size)),
            content_type: Some(
                headers
                    .content_type
                    .clone()
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            ),
            cache_control: headers.cache_control.clone(),
            content_disposition: headers.content_disposition.clone(),
            content_encoding: headers.content_encoding.clone(),
            content_language: headers.content_language.clone(),
            expires: expires_of(headers),
            metadata: metadata_of(headers),
            e_tag: Some(rules::quoted(&object.etag)),
            last_modified: Some(timestamp(version.last_modified())),
            version_id: Some(version.version_id.clone()),
            parts_count: object.parts.map(|parts| parts as i32),
            ..Default::default()
        }))
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        if input.if_match_size.is_some() || input.if_match_last_modified_time.is_some() {
            // S3 takes these on directory buckets only.
            return Err(s3_error!(
                NotImplemented,
                "x-amz-if-match-size and x-amz-if-match-last-modified-time apply to directory buckets only"
            ));
        }
        let deleted = self
            .delete(&input.bucket, &input.key, input.version_id, input.if_match)
            .await?;
        Ok(S3Response::new(DeleteObjectOutput {
            delete_marker: deleted.delete_marker.then_some(true),
            version_id: deleted.version_id,
            ..Default::default()
        }))
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        let quiet = input.delete.quiet.unwrap_or(false);
        let mut deleted_objects = Vec::new();
        let mut errors = Vec::new();
        for object in input.delete.objects {
            let if_match = object.e_tag.map(ETagCondition::ETag);
            match self
                .delete(
                    &input.bucket,
                    &object.key,
                    object.version_id.clone(),
                    if_match,
                )
                .await
            {
                Ok(deleted) => {
                    if !quiet {
                        deleted_objects.push(DeletedObject {
                            key: Some(object.key),
                            delete_marker: deleted.delete_marker.then_some(true),
                            delete_marker_version_id: if deleted.delete_marker {
                                deleted.version_id.clone()
                            } else {
                                None
                            },
                            version_id: object.version_id,
                        });
                    }
                }
                Err(err) => errors.push(Error {
                    code: Some(err.code().as_str().to_owned()),
                    message: err.message().map(str::to_owned),
                    key: Some(object.key),
                    version_id: object.version_id,
                }),
            }
        }
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: (!deleted_objects.is_empty()).then_some(deleted_objects),
            errors: (!errors.is_empty()).then_some(errors),
            ..Default::default()
        }))
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        // s3s 0.14 does not parse CopyObject's write conditions into the input: read the headers.
        let if_match = condition_header(&req.headers, http::header::IF_MATCH)?;
        let if_none_match = condition_header(&req.headers, http::header::IF_NONE_MATCH)?;
        if let Some(ETagCondition::ETag(_)) = &if_none_match {
            return Err(s3_error!(
                NotImplemented,
                "If-None-Match on a write accepts only '*'"
            ));
        }
        let input = req.input;
        let CopySource::Bucket {
            bucket: source_bucket,
            key: source_key,
            version_id: source_version,
        } = &input.copy_source
        else {
            return Err(s3_error!(
                NotImplemented,
                "The local store copies from buckets only"
            ));
        };
        self.require_bucket(&input.bucket).await?;
        // The copy-source conditions all answer 412 when they fail.
        let conditions = ReadConditions {
            if_match: input.copy_source_if_match.as_ref(),
            if_none_match: input.copy_source_if_none_match.as_ref(),
            if_modified_since: input
                .copy_source_if_modified_since
                .as_ref()
                .map(to_system_time),
            if_unmodified_since: input
                .copy_source_if_unmodified_since
                .as_ref()
                .map(to_system_time),
        };
        let source = self
            .read(
                source_bucket,
                source_key,
                source_version.as_deref(),
                &conditions,
                None,
                true,
            )
            .await
            .map_err(|err| {
                if *err.code() == S3ErrorCode::NotModified {
                    s3_error!(
                        PreconditionFailed,
                        "At least one of the pre-conditions you specified did not hold"
                    )
                } else {
                    err
                }
            })?;
        let replace = input
            .metadata_directive
            .as_ref()
            .is_some_and(|directive| directive.as_str() == MetadataDirective::REPLACE);
        if !replace
            && **source_bucket == *input.bucket
            && **source_key == *input.key
            && source_version.is_none()
        {
            return Err(s3_error!(
                InvalidRequest,
                "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
            ));
        }
        let headers = if replace {
            headers_from_input(
                input.content_type,
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
                input.expires,
                input.metadata,
            )
        } else {
            source.object.headers.clone()
        };
        let body = source.body.ok_or_else(|| s3_error!(InternalError))?;
        let staged = self
            .stage(
                &input.bucket,
                &input.key,
                body,
                None,
                Checksums::default(),
                None,
            )
            .await?;
        // A copy keeps the source's ETag (for a multipart source too).
        let etag = source.object.etag.clone();
        let version = self
            .create_version(
                &input.bucket,
                &input.key,
                NewVersion {
                    staged,
                    etag: etag.clone(),
                    parts: source.object.parts,
                    headers,
                    if_match,
                    if_none_match,
                    reason: CreatedReason::CopyObject,
                },
            )
            .await?;
        Ok(S3Response::new(CopyObjectOutput {
            copy_object_result: Some(CopyObjectResult {
                e_tag: Some(rules::quoted(&etag)),
                last_modified: Some(timestamp(version.last_modified())),
                ..Default::default()
            }),
            copy_source_version_id: Some(source.version.version_id),
            version_id: Some(version.version_id),
            ..Default::default()
        }))
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let max_keys = rules::max_keys(input.max_keys)?;
        let start = match (&input.continuation_token, &input.start_after) {
            (Some(token), _) => rules::parse_continuation_token(token)?,
            (None, Some(after)) => ListStart::AfterKey(after.clone()),
            (None, None) => ListStart::Beginning,
        };
        let items = self.current_objects(&input.bucket, &prefix).await?;
        let page = rules::list_page(
            &items,
            &ListShape {
                prefix: &prefix,
                delimiter: &delimiter,
                start,
                start_after: input.start_after.as_deref(),
                max_keys,
            },
        );
        let encode = encoder(input.encoding_type.as_ref());
        let next = page
            .truncated
            .then(|| page.entries.last())
            .flatten()
            .map(|entry| rules::start_after_entry(entry, |(key, _, _)| key.clone()))
            .and_then(|start| rules::continuation_token(&start));
        let contents: Vec<Object> = page
            .entries
            .iter()
            .filter_map(|entry| match entry {
                ListEntry::Item((key, object, modified)) => Some(Object {
                    key: Some(encode(key.clone())),
                    size: Some(object.size as i64),
                    e_tag: Some(rules::quoted(&object.etag)),
                    last_modified: Some(timestamp(*modified)),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                }),
                ListEntry::CommonPrefix(_) => None,
            })
            .collect();
        let common_prefixes = bucket_listing(&page.entries).map(|prefixes| {
            prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: p.prefix.map(&encode),
                })
                .collect()
        });
        Ok(S3Response::new(ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(encode(prefix)),
            delimiter: input.delimiter.map(&encode),
            max_keys: Some(max_keys as i32),
            key_count: Some(page.entries.len() as i32),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            start_after: input.start_after.map(&encode),
            is_truncated: Some(page.truncated),
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let max_keys = rules::max_keys(input.max_keys)?;
        let start = match &input.marker {
            Some(marker) if !delimiter.is_empty() && marker.ends_with(delimiter.as_str()) => {
                ListStart::AfterPrefix(marker.clone())
            }
            Some(marker) => ListStart::AfterKey(marker.clone()),
            None => ListStart::Beginning,
        };
        let items = self.current_objects(&input.bucket, &prefix).await?;
        let page = rules::list_page(
            &items,
            &ListShape {
                prefix: &prefix,
                delimiter: &delimiter,
                start,
                start_after: None,
                max_keys,
            },
        );
        let encode = encoder(input.encoding_type.as_ref());
        // S3 returns NextMarker only when a delimiter was given; without one the last key is the marker.
        let next_marker = (page.truncated && !delimiter.is_empty())
            .then(|| page.entries.last())
            .flatten()
            .map(|entry| match entry {
                ListEntry::Item((key, _, _)) => encode(key.clone()),
                ListEntry::CommonPrefix(prefix) => encode(prefix.clone()),
            });
        let contents: Vec<Object> = page
            .entries
            .iter()
            .filter_map(|entry| match entry {
                ListEntry::Item((key, object, modified)) => Some(Object {
                    key: Some(encode(key.clone())),
                    size: Some(object.size as i64),
                    e_tag: Some(rules::quoted(&object.etag)),
                    last_modified: Some(timestamp(*modified)),
                    storage_class: Some(ObjectStorageClass::from_static(
                        ObjectStorageClass::STANDARD,
                    )),
                    ..Default::default()
                }),
                ListEntry::CommonPrefix(_) => None,
            })
            .collect();
        let common_prefixes = bucket_listing(&page.entries).map(|prefixes| {
            prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: p.prefix.map(&encode),
                })
                .collect()
        });
        Ok(S3Response::new(ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(prefix)),
            delimiter: input.delimiter.map(&encode),
            marker: input.marker.map(&encode),
            max_keys: Some(max_keys as i32),
            is_truncated: Some(page.truncated),
            next_marker,
            contents: (!contents.is_empty()).then_some(contents),
            common_prefixes,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        let input = req.input;
        let prefix = input.prefix.clone().unwrap_or_default();
        let delimiter = input.delimiter.clone().unwrap_or_default();
        let max_keys = rules::max_keys(input.max_keys)?;
        let records = self.records(&input.bucket, &prefix).await?;
        // Every version, keys in order, each key's versions newest first.
        let mut items: Vec<(String, (String, Version, bool))> = Vec::new();
        for record in records {
            for (index, version) in record.versions.iter().enumerate() {
                items.push((
                    record.key.clone(),
                    (record.key.clone(), version.clone(), index == 0),
                ));
            }
        }
        // Resume after (key-marker, version-id-marker), or after every version of key-marker.
        let start = match (&input.key_marker, &input.version_id_marker) {
            (Some(key), Some(version_id)) => {
                let resume = items
                    .iter()
                    .position(|(_, (k, v, _))| k == key && &v.version_id == version_id)
                    .map_or(0, |at| at + 1);
                items.drain(..resume);
                items.retain(|(k, _)| k.as_str() >= key.as_str());
                ListStart::Beginning
            }
            (Some(key), None) if !delimiter.is_empty() && key.ends_with(delimiter.as_str()) => {
                ListStart::AfterPrefix(key.clone())
            }
            (Some(key), None) => ListStart::AfterKey(key.clone()),
            (None, _) => ListStart::Beginning,
        };
        let page = rules::list_page(
            &items,
            &ListShape {
                prefix: &prefix,
                delimiter: &delimiter,
                start,
                start_after: None,
                max_keys,
            },
        );
        let encode = encoder(input.encoding_type.as_ref());
        let (next_key_marker, next_version_id_marker) =
            match page.truncated.then(|| page.entries.last()).flatten() {
                Some(ListEntry::Item((key, version, _))) => {
                    (Some(encode(key.clone())), Some(version.version_id.clone()))
                }
                Some(ListEntry::CommonPrefix(prefix)) => (Some(encode(prefix.clone())), None),
                None => (None, None),
            };
        let mut versions = Vec::new();
        let mut delete_markers = Vec::new();
        for entry in &page.entries {
            let ListEntry::Item((key, version, is_latest)) = entry else {
                continue;
            };
            match &version.object {
                Some(object) => versions.push(ObjectVersion {
                    key: Some(encode(key.clone())),
                    version_id: Some(version.version_id.clone()),
                    is_latest: Some(*is_latest),
                    e_tag: Some(rules::quoted(&object.etag)),
                    size: Some(object.size as i64),
                    last_modified: Some(timestamp(version.last_modified())),
                    storage_class: Some(ObjectVersionStorageClass::from_static(
                        ObjectVersionStorageClass::STANDARD,
                    )),
                    ..Default::default()
                }),
                None => delete_markers.push(DeleteMarkerEntry {
                    key: Some(encode(key.clone())),
                    version_id: Some(version.version_id.clone()),
                    is_latest: Some(*is_latest),
                    last_modified: Some(timestamp(version.last_modified())),
                    ..Default::default()
                }),
            }
        }
        let common_prefixes = bucket_listing(&page.entries).map(|prefixes| {
            prefixes
                .into_iter()
                .map(|p| CommonPrefix {
                    prefix: p.prefix.map(&encode),
                })
                .collect()
        });
        Ok(S3Response::new(ListObjectVersionsOutput {
            name: Some(input.bucket),
            prefix: Some(encode(prefix)),
            delimiter: input.delimiter.map(&encode),
            key_marker: input.key_marker.map(&encode),
            version_id_marker: input.version_id_marker,
            max_keys: Some(max_keys as i32),
            is_truncated: Some(page.truncated),
            next_key_marker,
            next_version_id_marker,
            versions: (!versions.is_empty()).then_some(versions),
            delete_markers: (!delete_markers.is_empty()).then_some(delete_markers),
            common_prefixes,
            encoding_type: input.encoding_type,
            ..Default::default()
        }))
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        let upload = Upload {
            upload_id: self.backend.unique_id(),
            key: input.key.clone(),
            initiated_ms: millis_since_epoch(self.clock.now()),
            headers: headers_from_input(
                input.content_type,
                input.cache_control,
                input.content_disposition,
                input.content_encoding,
                input.content_language,
                input.expires,
                input.metadata,
            ),
        };
        self.backend
            .save_upload(&input.bucket, &upload)
            .await
            .map_err(storage_error)?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(upload.upload_id),
            ..Default::default()
        }))
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        let input = req.input;
        if !(1..=MAX_PART_NUMBER).contains(&input.part_number) {
            return Err(s3_error!(
                InvalidArgument,
                "Part number must be an integer between 1 and 10000, inclusive"
            ));
        }
        self.upload_of(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let checksums = Checksums {
            crc32: input.checksum_crc32,
            crc32c: input.checksum_crc32c,
            crc64nvme: input.checksum_crc64nvme,
            sha1: input.checksum_sha1,
            sha256: input.checksum_sha256,
            algorithm: input.checksum_algorithm.map(|a| a.as_str().to_owned()),
        };
        let staged = self
            .stage(
                &input.bucket,
                &input.key,
                into_chunks(input.body),
                input.content_md5.as_deref(),
                checksums,
                req.trailing_headers.as_ref(),
            )
            .await?;
        let etag = staged.etag();
        let part = Part {
            part_number: input.part_number as u32,
            size: staged.size,
            etag: etag.clone(),
            last_modified_ms: millis_since_epoch(self.clock.now()),
        };
        self.backend
            .save_part(&input.bucket, &input.upload_id, part, staged.blob)
            .await
            .map_err(|err| {
                if err.kind() == io::ErrorKind::NotFound {
                    no_such_upload()
                } else {
                    storage_error(err)
                }
            })?;
        Ok(S3Response::new(UploadPartOutput {
            e_tag: Some(rules::quoted(&etag)),
            ..Default::default()
        }))
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        let input = req.input;
        self.upload_of(&input.bucket, &input.key, &input.upload_id)
            .await?;
        let marker = input.part_number_marker.unwrap_or(0).max(0) as u32;
        let max_parts = input.max_parts.unwrap_or(1000).clamp(0, 1000) as usize;
        let all: Vec<Part> = self
            .backend
            .parts(&input.bucket, &input.upload_id)
            .await
            .map_err(storage_error)?
            .into_iter()
            .filter(|part| part.part_number > marker)
            .collect();
        let truncated = all.len() > max_parts;
        let parts: Vec<Part> = all.into_iter().take(max_parts).collect();
        Ok(S3Response::new(ListPartsOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(input.upload_id),
            max_parts: Some(max_parts as i32),
            is_truncated: Some(truncated),
            part_number_marker: input.part_number_marker,
            next_part_number_marker: parts.last().map(|part| part.part_number as i32),
            parts: Some(
                parts
                    .into_iter()
                    .map(|part| s3s::dto::Part {
                        part_number: Some(part.part_number as i32),
                        size: Some(part.size as i64),
                        e_tag: Some(rules::quoted(&part.etag)),
                        last_modified: Some(timestamp(
                            std::time::UNIX_EPOCH
                                + std::time::Duration::from_millis(part.last_modified_ms),
                        )),
                        ..Default::default()
                    })
                    .collect(),
            ),
            ..Default::default()
        }))
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        let input = req.input;
        self.require_bucket(&input.bucket).await?;
        let prefix = input.prefix.clone().unwrap_or_default();
        let uploads = self
            .backend
            .uploads(&input.bucket)
            .await
            .map_err(storage_error)?;
        let uploads: Vec<MultipartUpload> = uploads
            .into_iter()
            .filter(|upload| upload.key.starts_with(&prefix))
            .map(|upload| MultipartUpload {
                key: Some(upload.key),
                upload_id: Some(upload.upload_id),
                initiated: Some(timestamp(
                    std::time::UNIX_EPOCH + std::time::Duration::from_millis(upload.initiated_ms),
                )),
                ..Default::default()
            })
            .collect();
        Ok(S3Response::new(ListMultipartUploadsOutput {
            bucket: Some(input.bucket),
            prefix: input.prefix,
            is_truncated: Some(false),
            uploads: (!uploads.is_empty()).then_some(uploads),
            ..Default::default()
        }))
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        let input = req.input;
        let upload = self
            .upload_of(&input.bucket, &input.key, &input.upload_id)
            .await?;
        if let Some(ETagCondition::ETag(_)) = &input.if_none_match {
            return Err(s3_error!(
                NotImplemented,
                "If-None-Match on a write accepts only '*'"
            ));
        }
        let requested = input
            .multipart_upload
            .and_then(|upload| upload.parts)
            .unwrap_or_default();
        if requested.is_empty() {
            return Err(s3_error!(
                MalformedXML,
                "You must specify at least one part"
            ));
        }
        let stored = self
            .backend
            .parts(&input.bucket, &input.upload_id)
            .await
            .map_err(storage_error)?;
        let ascending = requested
            .windows(2)
            .all(|pair| pair[0].part_number.unwrap_or(0) < pair[1].part_number.unwrap_or(0));
        if !ascending {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order. Parts must be ordered by part number."
            ));
        }
        let mut chosen = Vec::with_capacity(requested.len());
        for (index, part) in requested.iter().enumerate() {
            let number = part.part_number.unwrap_or(0);
            let found = stored
                .iter()
                .find(|stored| stored.part_number as i32 == number)
                .filter(|stored| {
                    part.e_tag
                        .as_ref()
                        .is_none_or(|etag| etag.value() == stored.etag)
                })
                .ok_or_else(|| {
                    s3_error!(
                        InvalidPart,
                        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
                    )
                })?;
            if index + 1 < requested.len() && found.size < MIN_PART_SIZE {
                return Err(s3_error!(
                    EntityTooSmall,
                    "Your proposed upload is smaller than the minimum allowed size"
                ));
            }
            chosen.push(found.clone());
        }
        let mut bodies = Vec::with_capacity(chosen.len());
        for part in &chosen {
            let body = self
                .backend
                .read_part(&input.bucket, &input.upload_id, part.part_number)
                .await
                .map_err(storage_error)?
                .ok_or_else(no_such_upload)?;
            bodies.push(body);
        }
        let body: ByteChunks = Box::pin(futures::stream::iter(bodies).flatten());
        let staged = self
            .stage(
                &input.bucket,
                &input.key,
                body,
                None,
                Checksums::default(),
                None,
            )
            .await?;
        let mut md5s = Md5::new();
        for part in &chosen {
            md5s.update(hex::decode(&part.etag).unwrap_or_default());
        }
        let etag = format!("{}-{}", hex::encode(md5s.finalize()), chosen.len());
        let version = self
            .create_version(
                &input.bucket,
                &input.key,
                NewVersion {
                    staged,
                    etag: etag.clone(),
                    parts: Some(chosen.len() as u32),
                    headers: upload.headers,
                    if_match: input.if_match,
                    if_none_match: input.if_none_match,
                    reason: CreatedReason::CompleteMultipartUpload,
                },
            )
            .await?;
        if let Err(err) = self
            .backend
            .remove_upload(&input.bucket, &input.upload_id)
            .await
        {
            tracing::warn!(
                "cannot remove the completed upload {}: {err}",
                input.upload_id
            );
        }
        Ok(S3Response::new(CompleteMultipartUploadOutput {
            bucket: Some(input.bucket.clone()),
            key: Some(input.key.clone()),
            e_tag: Some(rules::quoted(&etag)),
            location: Some(format!("/{}/{}", input.bucket, input.key)),
            version_id: Some(version.version_id),
            ..Default::default()
        }))
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let input = req.input;
        self.upload_of(&input.bucket, &input.key, &input.upload_id)
            .await?;
        self.backend
            .remove_upload(&input.bucket, &input.upload_id)
            .await
            .map_err(storage_error)?;
        Ok(S3Response::new(AbortMultipartUploadOutput::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_content_md5() {
        // MD5("") in base64.
        assert_eq!(
            base64_decode("1B2M2Y8AsgTpgAmY7PhCfg==")
                .map(hex::encode)
                .as_deref(),
            Some("d41d8cd98f00b204e9800998ecf8427e")
        );
        assert_eq!(base64_decode("not*base64"), None);
    }
}
