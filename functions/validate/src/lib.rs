//! validate: the first stage. Finds the uploaded object the event announces, reads only its header
//! (a ranged GET of the first 64 KiB, more while the header continues), applies the profile's limits and
//! describes the source for the later stages, pinned to the version it saw.

use std::sync::Arc;

use ferrotype_aws::{ObjectHead, ObjectStore, S3ErrorKind, StageError};
use ferrotype_core::config::{Config, SmartCrop};
use ferrotype_core::event::ObjectCreatedEvent;
use ferrotype_core::pipeline::{Source, ValidatedImage};
use ferrotype_core::{probe, ImageInfo, Probe, RejectionCode};
use lambda_runtime::LambdaEvent;

/// The first read: enough for the header of nearly every image; more is fetched only when the header
/// continues (large EXIF/ICC/XMP blocks before a JPEG's frame header).
pub const FIRST_READ_BYTES: u64 = 64 * 1024;

/// What validate needs, built once per container (or once by the local runner).
#[derive(Debug, Clone)]
pub struct Validate {
    pub s3: ObjectStore,
    pub config: Arc<Config>,
}

impl Validate {
    pub fn new(s3: aws_sdk_s3::Client, config: impl Into<Arc<Config>>) -> Validate {
        Validate {
            s3: ObjectStore::new(s3),
            config: config.into(),
        }
    }
}

/// Input: the EventBridge "Object Created" event, as JSON (checked here, so anything else is
/// `Ferrotype.BadEvent`). Output: the `$.image` of the state machine.
pub async fn handler(
    deps: &Validate,
    event: LambdaEvent<serde_json::Value>,
) -> Result<ValidatedImage, StageError> {
    let event = ObjectCreatedEvent::from_value(event.payload)
        .map_err(|err| StageError::BadEvent(err.to_string()))?;
    let bucket = event.bucket();
    let (key, head) = find_object(deps, &event).await?;
    let profile = deps.config.profile_for_key(&key).ok_or_else(|| {
        StageError::BadEvent(format!(
            "s3://{bucket}/{key} is under no profile prefix ({}); the event rule should not have sent it",
            deps.config.profiles.iter().map(|p| p.prefix.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    let info = read_header(deps, bucket, &key, &head, &profile.limits).await?;
    tracing::info!(
        bucket,
        key,
        profile = profile.name,
        format = %info.format,
        width = info.width,
        height = info.height,
        size = head.size,
        "validated"
    );
    Ok(ValidatedImage {
        source: Source {
            bucket: bucket.to_owned(),
            key,
            version_id: head.version_id,
            etag: head.etag,
            size: head.size,
            format: info.format,
            width: info.width,
            height: info.height,
            orientation: info.orientation,
            upright_width: info.upright_width,
            upright_height: info.upright_height,
        },
        profile: profile.name.clone(),
        smart_crop: profile.smart_crop,
        detect_faces: profile.smart_crop != SmartCrop::Off && info.format.is_decodable(),
        max_concurrency: deps.config.map_max_concurrency,
        variants: profile.variants.clone(),
    })
}

/// The object's real key and HEAD. Keys are tried decoded first, then raw (FACTS.md: whether EventBridge
/// form-encodes keys is unverified). A version id in the event pins that version.
async fn find_object(
    deps: &Validate,
    event: &ObjectCreatedEvent,
) -> Result<(String, ObjectHead), StageError> {
    let bucket = event.bucket();
    let version_id = event.detail.object.version_id.as_deref();
    let mut last_missing = None;
    for key in event.candidate_keys() {
        match deps.s3.head(bucket, &key, version_id).await {
            Ok(head) => return Ok((key, head)),
            Err(err) if err.kind == S3ErrorKind::NotFound => last_missing = Some(err),
            Err(err) => return Err(err.into_upload_error()),
        }
    }
    Err(last_missing
        .map(|err| err.into_upload_error())
        .unwrap_or_else(|| StageError::BadEvent("the event names no key".to_owned())))
}

/// Reads the header from a growing prefix until `probe` can decide. Every read is pinned to the HEAD's
/// ETag, so the prefix pieces belong to one object. Bounded by the object size, which `probe` has
/// already checked against `maxBytes` before asking for more.
async fn read_header(
    deps: &Validate,
    bucket: &str,
    key: &str,
    head: &ObjectHead,
    limits: &ferrotype_core::Limits,
) -> Result<ImageInfo, StageError> {
    let pin = head.pin();
    let mut prefix = Vec::new();
    let mut want = FIRST_READ_BYTES;
    loop {
        let more = (head.size - prefix.len() as u64).min(want);
        let piece = deps
            .s3
            .get_range(bucket, key, &pin, prefix.len() as u64, more)
            .await
            .map_err(|err| err.into_upload_error())?;
        let got_nothing = piece.is_empty();
        prefix.extend_from_slice(&piece);
        match probe(&prefix, head.size, limits).map_err(StageError::Rejected)? {
            Probe::Complete(info) => return Ok(info),
            Probe::NeedMoreBytes if got_nothing || prefix.len() as u64 >= head.size => {
                // The object ended before its header did.
                return Err(StageError::rejected(
                    RejectionCode::Corrupt,
                    format!(
                        "the header is truncated: the object ended after {} bytes",
                        prefix.len()
                    ),
                ));
            }
            Probe::NeedMoreBytes => want = want.saturating_mul(4),
        }
    }
}
