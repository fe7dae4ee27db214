//! validate: the first stage. Checks that the upload the event announces is still the key's current
//! object (else the execution is superseded: the newer upload has its own), reads its header first (a
//! ranged GET of the first 64 KiB, more while the header continues) to apply the profile's limits before
//! anything large is read or decoded, then decodes the whole image once — corrupt pixel data is rejected
//! here, before any variant exists — and stores the working copy every later stage reads. It describes
//! the source for them, pinned to that version, with the version tag every output key of this upload
//! carries.

use std::sync::Arc;

use ferrotype_aws::{working_copy, ObjectHead, ObjectStore, StageError, WriteCondition};
use ferrotype_core::config::{Config, SmartCrop};
use ferrotype_core::event::{ObjectEvent, VersionIdentity};
use ferrotype_core::keys::version_tag;
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
    /// Where working copies go (under `outputs.workPrefix`).
    pub output_bucket: String,
}

impl Validate {
    pub fn new(
        s3: aws_sdk_s3::Client,
        config: impl Into<Arc<Config>>,
        output_bucket: impl Into<String>,
    ) -> Validate {
        Validate {
            s3: ObjectStore::new(s3),
            config: config.into(),
            output_bucket: output_bucket.into(),
        }
    }
}

/// Input: the EventBridge "Object Created" event, as JSON (checked here, so anything else is
/// `Ferrotype.BadEvent`). Output: the `$.image` of the state machine.
pub async fn handler(
    deps: &Validate,
    event: LambdaEvent<serde_json::Value>,
) -> Result<ValidatedImage, StageError> {
    let event =
        ObjectEvent::created(event.payload).map_err(|err| StageError::BadEvent(err.to_string()))?;
    let bucket = event.bucket();
    let (key, head) = find_current_object(deps, &event).await?;
    let profile = deps.config.profile_for_key(&key).ok_or_else(|| {
        StageError::BadEvent(format!(
            "s3://{bucket}/{key} is under no profile prefix ({}); the event rule should not have sent it",
            deps.config.profiles.iter().map(|p| p.prefix.as_str()).collect::<Vec<_>>().join(", ")
        ))
    })?;
    // The event's own identity, so every stage (and record-result from the event alone) derives the
    // same tag; a hand-made event that names no version gets the stored object's.
    let identity = event
        .version_identity()
        .unwrap_or_else(|| match &head.version_id {
            Some(id) => VersionIdentity::VersionId(id.clone()),
            None => VersionIdentity::Etag {
                etag: head.etag.trim_matches('"').to_owned(),
                sequencer: None,
            },
        });
    let version = version_tag(&identity, profile);
    let (info, mut bytes) = read_header(deps, bucket, &key, &head, &profile.limits).await?;
    if (bytes.len() as u64) < head.size {
        bytes = deps.s3.get(bucket, &key, &head.pin(), head.size).await?;
    }
    let source = Source {
        bucket: bucket.to_owned(),
        key,
        version_id: head.version_id,
        etag: head.etag,
        sequencer: event.detail.object.sequencer.clone(),
        size: head.size,
        format: info.format,
        width: info.width,
        height: info.height,
        orientation: info.orientation,
        upright_width: info.upright_width,
        upright_height: info.upright_height,
    };
    let copy = working_copy::decode(bytes, profile).await?;
    let location =
        working_copy::location(&deps.config.outputs, &deps.output_bucket, &source, &version);
    // Once: a retry finds its own earlier write (the key belongs to this upload and settings).
    let working_copy = working_copy::store(
        &deps.s3,
        location,
        &source,
        &version,
        copy,
        WriteCondition::IfAbsent,
    )
    .await?;
    tracing::info!(
        bucket,
        key = source.key,
        profile = profile.name,
        format = %info.format,
        width = info.width,
        height = info.height,
        size = head.size,
        working_copy_width = working_copy.width,
        working_copy_height = working_copy.height,
        working_copy_bytes = working_copy.bytes,
        "validated"
    );
    Ok(ValidatedImage {
        source,
        profile: profile.name.clone(),
        version,
        smart_crop: profile.smart_crop,
        detect_faces: profile.smart_crop != SmartCrop::Off,
        max_concurrency: deps.config.map_max_concurrency,
        variants: profile.variants.clone(),
        working_copy,
    })
}

/// The object's real key and the HEAD of its current version, which must be the version the event
/// announces: a later upload or a deletion supersedes this execution (their own events take over).
/// Keys are tried decoded first, then raw (FACTS.md: whether EventBridge form-encodes keys is unverified).
async fn find_current_object(
    deps: &Validate,
    event: &ObjectEvent,
) -> Result<(String, ObjectHead), StageError> {
    let bucket = event.bucket();
    let object = &event.detail.object;
    let mut replaced = false;
    for key in event.candidate_keys() {
        let Some(head) = deps.s3.head_if_exists(bucket, &key).await? else {
            continue;
        };
        let announced = match (object.version_id.as_deref(), object.etag.as_deref()) {
            (Some(version_id), _) if version_id != "null" => {
                head.version_id.as_deref() == Some(version_id)
            }
            (_, Some(etag)) => head.etag.trim_matches('"') == etag.trim_matches('"'),
            _ => true,
        };
        if announced {
            return Ok((key, head));
        }
        // Another candidate may be the announced object ("a+b.jpg" beside "a b.jpg").
        replaced = true;
    }
    let key = event.candidate_keys().swap_remove(0);
    Err(StageError::Superseded(if replaced {
        format!(
            "s3://{bucket}/{key} was uploaded again after this event: the newer upload's own \
             execution takes over"
        )
    } else {
        format!("s3://{bucket}/{key} no longer exists: it was deleted after this event")
    }))
}

/// Reads the header from a growing prefix until `probe` can decide; returns what it says and the
/// prefix read (the whole object when it is small). Every read is pinned to the HEAD's
/// ETag, so the prefix pieces belong to one object. Bounded by the object size, which `probe` has
/// already checked against `maxBytes` before asking for more.
async fn read_header(
    deps: &Validate,
    bucket: &str,
    key: &str,
    head: &ObjectHead,
    limits: &ferrotype_core::Limits,
) -> Result<(ImageInfo, Vec<u8>), StageError> {
    let pin = head.pin();
    let mut prefix = Vec::new();
    let mut want = FIRST_READ_BYTES;
    loop {
        let more = (head.size - prefix.len() as u64).min(want);
        let piece = deps
            .s3
            .get_range(bucket, key, &pin, prefix.len() as u64, more)
            .await?;
        let got_nothing = piece.is_empty();
        prefix.extend_from_slice(&piece);
        match probe(&prefix, head.size, limits).map_err(StageError::Rejected)? {
            Probe::Complete(info) => return Ok((info, prefix)),
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
