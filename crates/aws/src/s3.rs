//! The S3 calls the stages make, and what their failures mean.
//!
//! Sources are read pinned: by version id when the bucket is versioned, and always with `If-Match` on the
//! ETag validate saw (S3 answers 412 when the object was replaced). The ETag of the answer is checked
//! too, so a server that ignores `If-Match` still cannot hand back other bytes unnoticed.
//!
//! Outputs are written conditionally (S3 conditional writes): variants with `If-None-Match: *` (their keys
//! belong to one version and never change content), manifests with `If-Match` on the ETag read just
//! before, so that a write lands only if nobody wrote in between (docs/CONTRACTS.md).

use std::collections::HashMap;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use ferrotype_core::pipeline::Source;

use crate::error::describe_sdk_error;
use crate::StageError;

/// What went wrong with an S3 call, as far as the pipeline cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorKind {
    /// 404: no such key (or version).
    NotFound,
    /// 412, or an answer for another ETag than the pinned one: the object was replaced (or, for a
    /// conditional write, the condition did not hold).
    Changed,
    /// 409 ConditionalRequestConflict: a conflicting write raced a conditional one; read and decide again.
    Conflict,
    /// 503 SlowDown and the other throttling answers: retried by the ASL's throttling retrier.
    Throttled,
    /// Other 5xx, timeouts, connection failures, a body cut short: worth retrying.
    Transient,
    /// 403: the function may not do this (IAM role, bucket policy, KMS key).
    AccessDenied,
    /// Anything else: a missing bucket, a wrong region, a request S3 refuses as invalid.
    Setup,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct S3Error {
    pub kind: S3ErrorKind,
    /// Names the operation and the object, e.g. `GetObject s3://in/uploads/a.jpg: 503 SlowDown …`.
    pub message: String,
}

impl S3Error {
    fn new(
        kind: S3ErrorKind,
        operation: &str,
        bucket: &str,
        key: &str,
        detail: impl std::fmt::Display,
    ) -> S3Error {
        S3Error {
            kind,
            message: format!("{operation} s3://{bucket}/{key}: {detail}"),
        }
    }
}

/// For reads of the pinned source: a version that is gone or different is no longer the key's current
/// object, so this execution is superseded; permissions and setup problems are configuration errors.
impl From<S3Error> for StageError {
    fn from(error: S3Error) -> StageError {
        match error.kind {
            S3ErrorKind::NotFound => {
                StageError::Superseded(format!("the upload was deleted ({})", error.message))
            }
            S3ErrorKind::Changed => {
                StageError::Superseded(format!("the upload was replaced ({})", error.message))
            }
            S3ErrorKind::Conflict | S3ErrorKind::Transient => StageError::Transient(error.message),
            S3ErrorKind::Throttled => StageError::Throttled(error.message),
            S3ErrorKind::AccessDenied => StageError::Config(format!(
                "access denied; check the function's IAM role and the bucket policy ({})",
                error.message
            )),
            S3ErrorKind::Setup => StageError::Config(error.message),
        }
    }
}

/// S3's answers to too many requests: waited out with the throttling retrier.
const THROTTLING_CODES: [&str; 5] = [
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

/// Other S3 error codes worth retrying whatever their status says (RequestTimeout is a 400).
const TRANSIENT_CODES: [&str; 3] = ["RequestTimeout", "InternalError", "ServiceUnavailable"];

fn classify<E>(
    operation: &str,
    bucket: &str,
    key: &str,
    error: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> S3Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let kind = match &error {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            S3ErrorKind::Transient
        }
        SdkError::ServiceError(service) => {
            let status = service.raw().status().as_u16();
            let code = service.err().code().unwrap_or_default();
            // S3 answers 503 only to say "slow down"; a HEAD's 503 has no body to name the code.
            if THROTTLING_CODES.contains(&code) || status == 429 || status == 503 {
                S3ErrorKind::Throttled
            } else if TRANSIENT_CODES.contains(&code) || status >= 500 {
                S3ErrorKind::Transient
            } else if status == 409 {
                S3ErrorKind::Conflict
            } else if code == "NoSuchBucket" {
                S3ErrorKind::Setup
            } else if status == 404 {
                S3ErrorKind::NotFound
            } else if status == 412 {
                S3ErrorKind::Changed
            } else if status == 403 {
                S3ErrorKind::AccessDenied
            } else {
                S3ErrorKind::Setup
            }
        }
        _ => S3ErrorKind::Setup,
    };
    tracing::debug!(operation, bucket, key, error = %DisplayErrorContext(&error), "S3 call failed");
    S3Error::new(kind, operation, bucket, key, describe_sdk_error(&error))
}

/// Which version of an object to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// As S3 returns it, quotes included.
    pub etag: String,
    pub version_id: Option<String>,
}

/// What a HEAD tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectHead {
    pub size: u64,
    pub etag: String,
    pub version_id: Option<String>,
    pub content_type: Option<String>,
}

impl ObjectHead {
    pub fn pin(&self) -> Pin {
        Pin {
            etag: self.etag.clone(),
            version_id: self.version_id.clone(),
        }
    }
}

/// When a write may land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteCondition {
    /// Whatever is there (objects only this execution's version writes, e.g. the working copy).
    Always,
    /// Only if the key holds no object (`If-None-Match: *`): immutable keys.
    IfAbsent,
    /// Only if the key still holds the object with this ETag (`If-Match`): compare-and-swap.
    IfMatch(String),
}

/// What to store with an output object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutObject<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub body: Vec<u8>,
    pub content_type: &'a str,
    pub cache_control: &'a str,
    /// User metadata (`x-amz-meta-*`); values must be ASCII (use [`metadata_value`]).
    pub metadata: HashMap<String, String>,
    pub condition: WriteCondition,
}

/// How a conditional write ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// Stored; the new ETag.
    Stored(String),
    /// The condition did not hold (412, or 409 for a write that raced it): nothing was written.
    ConditionFailed,
}

/// One upload of a key, as far as telling it from the others goes: by version id (versioned buckets),
/// else by ETag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRef<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    pub version_id: Option<&'a str>,
    pub etag: Option<&'a str>,
}

impl<'a> VersionRef<'a> {
    /// The version validate pinned.
    pub fn of_source(source: &'a Source) -> VersionRef<'a> {
        VersionRef {
            bucket: &source.bucket,
            key: &source.key,
            version_id: source.version_id.as_deref().filter(|id| *id != "null"),
            etag: Some(&source.etag),
        }
    }
}

/// Whether a version is its key's current object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Currency {
    Current,
    /// Another upload replaced it (or, unversioned, another ETag is stored).
    Replaced,
    /// The key has no object (404, or a delete marker).
    Deleted,
}

/// Percent-encodes a metadata value (e.g. a source key with non-ASCII letters), as S3 notifications encode
/// keys; header values must be ASCII.
pub fn metadata_value(value: &str) -> String {
    ferrotype_core::event::encode_key(value)
}

/// The S3 operations of the stages over one SDK client (built once per Lambda container).
#[derive(Debug, Clone)]
pub struct ObjectStore {
    client: Client,
}

impl ObjectStore {
    pub fn new(client: Client) -> ObjectStore {
        ObjectStore { client }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether `version` is still its key's current object: a HEAD of the key without a version id,
    /// compared by version id when known, else by ETag. The single arbiter of "newest" (S3 is strongly
    /// consistent, so the answer reflects every write that completed before the call).
    pub async fn currency(&self, version: &VersionRef<'_>) -> Result<Currency, S3Error> {
        let Some(head) = self.head_if_exists(version.bucket, version.key).await? else {
            return Ok(Currency::Deleted);
        };
        let same = match (version.version_id, version.etag) {
            (Some(version_id), _) => head.version_id.as_deref() == Some(version_id),
            (None, Some(etag)) => head.etag.trim_matches('"') == etag.trim_matches('"'),
            (None, None) => true,
        };
        Ok(if same {
            Currency::Current
        } else {
            Currency::Replaced
        })
    }

    /// [`ObjectStore::currency`] as a stage needs it: Ok when current, else `Ferrotype.Superseded`.
    pub async fn ensure_current(&self, version: &VersionRef<'_>) -> Result<(), StageError> {
        match self.currency(version).await? {
            Currency::Current => Ok(()),
            Currency::Replaced => Err(StageError::Superseded(format!(
                "s3://{}/{} was uploaded again: this execution's version is no longer current",
                version.bucket, version.key
            ))),
            Currency::Deleted => Err(StageError::Superseded(format!(
                "s3://{}/{} was deleted",
                version.bucket, version.key
            ))),
        }
    }

    /// HEAD of the key's current object, or None when the key has none (404, or a delete marker).
    pub async fn head_if_exists(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<ObjectHead>, S3Error> {
        match self.head(bucket, key, None).await {
            Ok(head) => Ok(Some(head)),
            Err(err) if err.kind == S3ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// HEAD of the current object, or of `version_id`.
    pub async fn head(
        &self,
        bucket: &str,
        key: &str,
        version_id: Option<&str>,
    ) -> Result<ObjectHead, S3Error> {
        let output = self
            .client
            .head_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(version_id.map(str::to_owned))
            .send()
            .await
            .map_err(|err| classify("HeadObject", bucket, key, err))?;
        let malformed = |what: &str| {
            S3Error::new(
                S3ErrorKind::Transient,
                "HeadObject",
                bucket,
                key,
                format!("the answer has no {what}"),
            )
        };
        let size = output
            .content_length()
            .ok_or_else(|| malformed("Content-Length"))?;
        Ok(ObjectHead {
            size: u64::try_from(size).map_err(|_| malformed("valid Content-Length"))?,
            etag: output.e_tag().ok_or_else(|| malformed("ETag"))?.to_owned(),
            version_id: output.version_id().map(str::to_owned),
            content_type: output.content_type().map(str::to_owned),
        })
    }

    /// Bytes `start..start + len` of the pinned object (fewer at its end). Never reads more than `len`
    /// bytes, even from a server that ignores the Range header.
    pub async fn get_range(
        &self,
        bucket: &str,
        key: &str,
        pin: &Pin,
        start: u64,
        len: u64,
    ) -> Result<Vec<u8>, S3Error> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let range = format!("bytes={start}-{}", start + len - 1);
        let (body, size) = self.get_pinned(bucket, key, pin, Some(range)).await?;
        read_body(body, size, len, bucket, key, Excess::Truncate).await
    }

    /// The whole pinned object, refusing to read more than `max_bytes` (what validate found it to be).
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        pin: &Pin,
        max_bytes: u64,
    ) -> Result<Vec<u8>, S3Error> {
        let (body, size) = self.get_pinned(bucket, key, pin, None).await?;
        read_body(body, size, max_bytes, bucket, key, Excess::Changed).await
    }

    async fn get_pinned(
        &self,
        bucket: &str,
        key: &str,
        pin: &Pin,
        range: Option<String>,
    ) -> Result<(ByteStream, Option<i64>), S3Error> {
        let output = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .set_version_id(pin.version_id.clone())
            .if_match(&pin.etag)
            .set_range(range)
            .send()
            .await
            .map_err(|err| classify("GetObject", bucket, key, err))?;
        if let Some(etag) = output.e_tag() {
            if etag != pin.etag {
                return Err(S3Error::new(
                    S3ErrorKind::Changed,
                    "GetObject",
                    bucket,
                    key,
                    format!("expected ETag {} but got {etag}", pin.etag),
                ));
            }
        }
        let size = output.content_length();
        Ok((output.body, size))
    }

    /// The current object and its ETag, or None when there is none; at most `max_bytes` of it (a small
    /// document of our own, such as a manifest).
    pub async fn get_if_exists(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<(Vec<u8>, String)>, S3Error> {
        let output = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(err) => {
                let error = classify("GetObject", bucket, key, err);
                return match error.kind {
                    S3ErrorKind::NotFound => Ok(None),
                    _ => Err(error),
                };
            }
        };
        let etag = output.e_tag().unwrap_or_default().to_owned();
        let size = output.content_length();
        read_body(output.body, size, max_bytes, bucket, key, Excess::Truncate)
            .await
            .map(|bytes| Some((bytes, etag)))
    }

    /// Stores an object if its condition holds.
    pub async fn put(&self, object: PutObject<'_>) -> Result<Written, S3Error> {
        let PutObject {
            bucket,
            key,
            body,
            content_type,
            cache_control,
            metadata,
            condition,
        } = object;
        let request = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .content_type(content_type)
            .cache_control(cache_control)
            .set_metadata(Some(metadata));
        let request = match condition {
            WriteCondition::Always => request,
            WriteCondition::IfAbsent => request.if_none_match("*"),
            WriteCondition::IfMatch(etag) => request.if_match(etag),
        };
        // The CRC-32 the SDK sends with every body already lets S3 refuse a damaged one; signing the
        // payload too would hash every working copy twice more (SigV4's SHA-256 here and at the store).
        match request.customize().disable_payload_signing().send().await {
            Ok(output) => Ok(Written::Stored(
                output.e_tag().unwrap_or_default().to_owned(),
            )),
            Err(err) => {
                let error = classify("PutObject", bucket, key, err);
                match error.kind {
                    // 404: If-Match on a key that has no object any more.
                    S3ErrorKind::Changed | S3ErrorKind::Conflict | S3ErrorKind::NotFound => {
                        Ok(Written::ConditionFailed)
                    }
                    _ => Err(error),
                }
            }
        }
    }

    /// Deletes the key's current object (a delete marker in a versioned bucket); a key that has none
    /// is fine: deleting is idempotent.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        match self
            .client
            .delete_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(err) => {
                let error = classify("DeleteObject", bucket, key, err);
                match error.kind {
                    S3ErrorKind::NotFound => Ok(()),
                    _ => Err(error),
                }
            }
        }
    }
}

/// What to do with bytes past the limit of a read.
enum Excess {
    /// Stop reading: only a prefix was wanted.
    Truncate,
    /// The object is larger than the pinned one was: it changed.
    Changed,
}

async fn read_body(
    mut body: ByteStream,
    content_length: Option<i64>,
    limit: u64,
    bucket: &str,
    key: &str,
    excess: Excess,
) -> Result<Vec<u8>, S3Error> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    // The announced length sizes the buffer (one allocation, no copies as it grows), never beyond
    // the limit: a server's header is not trusted with memory. Without one, up to 8 MiB at first.
    let expected = content_length
        .and_then(|length| usize::try_from(length).ok())
        .unwrap_or(8 * 1024 * 1024);
    let mut bytes = Vec::with_capacity(limit.min(expected));
    loop {
        let chunk = body.try_next().await.map_err(|err| {
            S3Error::new(
                S3ErrorKind::Transient,
                "GetObject",
                bucket,
                key,
                format!("reading the body failed: {err}"),
            )
        })?;
        let Some(chunk) = chunk else { break };
        if bytes.len() + chunk.len() > limit {
            match excess {
                Excess::Truncate => {
                    bytes.extend_from_slice(&chunk[..limit - bytes.len()]);
                    break;
                }
                Excess::Changed => {
                    return Err(S3Error::new(
                        S3ErrorKind::Changed,
                        "GetObject",
                        bucket,
                        key,
                        format!("the object has more than the {limit} bytes validated"),
                    ))
                }
            }
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
