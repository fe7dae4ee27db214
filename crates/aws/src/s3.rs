//! The S3 calls the stages make, and what their failures mean.
//!
//! Sources are read pinned: by version id when the bucket is versioned, and always with `If-Match` on the
//! ETag validate saw (S3 answers 412 when the object was replaced). The ETag of the answer is checked
//! too, so a server that ignores `If-Match` still cannot hand back other bytes unnoticed.

use std::collections::HashMap;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use ferrotype_core::RejectionCode;

use crate::error::describe_sdk_error;
use crate::StageError;

/// What went wrong with an S3 call, as far as the pipeline cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorKind {
    /// 404: no such key (or version).
    NotFound,
    /// 412, or an answer for another ETag than the pinned one: the object was replaced.
    Changed,
    /// 5xx, throttling, timeouts, connection failures, a body cut short: worth retrying.
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

    /// For the upload an event announced (validate): missing means it was deleted before we got to it,
    /// which refuses the upload for good.
    pub fn into_upload_error(self) -> StageError {
        match self.kind {
            S3ErrorKind::NotFound => StageError::rejected(
                RejectionCode::SourceMissing,
                format!("the object no longer exists ({})", self.message),
            ),
            _ => self.into(),
        }
    }
}

/// For the validated source (detect-faces, render-variant) and for outputs: a source that is gone or
/// different is a changed source; permissions and setup problems are configuration errors.
impl From<S3Error> for StageError {
    fn from(error: S3Error) -> StageError {
        match error.kind {
            S3ErrorKind::NotFound => StageError::SourceChanged(format!(
                "the object was deleted after validation ({})",
                error.message
            )),
            S3ErrorKind::Changed => StageError::SourceChanged(format!(
                "the object was replaced after validation ({})",
                error.message
            )),
            S3ErrorKind::Transient => StageError::Transient(error.message),
            S3ErrorKind::AccessDenied => StageError::Config(format!(
                "access denied; check the function's IAM role and the bucket policy ({})",
                error.message
            )),
            S3ErrorKind::Setup => StageError::Config(error.message),
        }
    }
}

/// S3 error codes worth retrying whatever their status says (RequestTimeout is a 400).
const TRANSIENT_CODES: [&str; 8] = [
    "SlowDown",
    "Throttling",
    "ThrottlingException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "RequestTimeout",
    "InternalError",
    "ServiceUnavailable",
];

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
            if TRANSIENT_CODES.contains(&code) || status == 429 || status >= 500 {
                S3ErrorKind::Transient
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
        let body = self.get_pinned(bucket, key, pin, Some(range)).await?;
        read_body(body, len, bucket, key, Excess::Truncate).await
    }

    /// The whole pinned object, refusing to read more than `max_bytes` (what validate found it to be).
    pub async fn get(
        &self,
        bucket: &str,
        key: &str,
        pin: &Pin,
        max_bytes: u64,
    ) -> Result<Vec<u8>, S3Error> {
        let body = self.get_pinned(bucket, key, pin, None).await?;
        read_body(body, max_bytes, bucket, key, Excess::Changed).await
    }

    async fn get_pinned(
        &self,
        bucket: &str,
        key: &str,
        pin: &Pin,
        range: Option<String>,
    ) -> Result<ByteStream, S3Error> {
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
        Ok(output.body)
    }

    /// The current object, or None when there is none; at most `max_bytes` of it (a small document of
    /// our own, such as a manifest).
    pub async fn get_if_exists(
        &self,
        bucket: &str,
        key: &str,
        max_bytes: u64,
    ) -> Result<Option<Vec<u8>>, S3Error> {
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
        read_body(output.body, max_bytes, bucket, key, Excess::Truncate)
            .await
            .map(Some)
    }

    /// Stores an object; returns its ETag.
    pub async fn put(&self, object: PutObject<'_>) -> Result<String, S3Error> {
        let PutObject {
            bucket,
            key,
            body,
            content_type,
            cache_control,
            metadata,
        } = object;
        let output = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(ByteStream::from(body))
            .content_type(content_type)
            .cache_control(cache_control)
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(|err| classify("PutObject", bucket, key, err))?;
        Ok(output.e_tag().unwrap_or_default().to_owned())
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
    limit: u64,
    bucket: &str,
    key: &str,
    excess: Excess,
) -> Result<Vec<u8>, S3Error> {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let mut bytes = Vec::with_capacity(limit.min(8 * 1024 * 1024));
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
