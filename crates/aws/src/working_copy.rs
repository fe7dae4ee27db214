//! The working copy between the stages (docs/CONTRACTS.md): validate decodes the upload once and stores
//! it; detect-faces and every render-variant iteration load it instead of decoding the original. When it
//! is gone (lifecycle-expired before a late redrive, or removed) or damaged, and the upload is still
//! current, the loader makes it again from the source and restores it: it is a cache, never the truth.

use std::collections::HashMap;

use ferrotype_core::config::{Outputs, Profile};
use ferrotype_core::keys::working_copy_key;
use ferrotype_core::pipeline::{Source, WorkingCopyRef};
use ferrotype_core::{decode_working_copy, WorkingCopy};

use crate::s3::metadata_value;
use crate::{ObjectStore, Pin, PutObject, StageError, VersionRef, WriteCondition};

/// Working copies are never served; nothing should keep one.
const CACHE_CONTROL: &str = "no-store";
/// What a stored working copy may add to its pixels: the header and the EXIF.
const MAX_OVERHEAD_BYTES: u64 = 2 << 20;

/// Decodes the pinned source once, at the smallest scale that serves every variant of `profile` and its
/// face detector's preview. Corrupt pixel data is an `ImageRejected.*` here.
pub async fn make(
    s3: &ObjectStore,
    source: &Source,
    profile: &Profile,
) -> Result<WorkingCopy, StageError> {
    let pin = Pin {
        etag: source.etag.clone(),
        version_id: source.version_id.clone(),
    };
    let bytes = s3
        .get(&source.bucket, &source.key, &pin, source.size)
        .await?;
    decode(bytes, profile).await
}

/// [`make`] for bytes already read.
pub async fn decode(bytes: Vec<u8>, profile: &Profile) -> Result<WorkingCopy, StageError> {
    let limits = profile.limits.clone();
    let variants = profile.variants.clone();
    let preview_side = profile.smart_crop.preview_side();
    crate::run_cpu(move || decode_working_copy(&bytes, &limits, &variants, preview_side))
        .await?
        .map_err(StageError::from)
}

/// Where validate stores the working copy of `source`'s version `tag`.
pub fn location(
    outputs: &Outputs,
    output_bucket: &str,
    source: &Source,
    tag: &str,
) -> (String, String) {
    (
        output_bucket.to_owned(),
        working_copy_key(outputs, &source.key, tag),
    )
}

/// Stores `copy` at `(bucket, key)` as the working copy of `source`'s version `tag`.
pub async fn store(
    s3: &ObjectStore,
    (bucket, key): (String, String),
    source: &Source,
    tag: &str,
    copy: WorkingCopy,
    condition: WriteCondition,
) -> Result<WorkingCopyRef, StageError> {
    let (width, height) = (copy.width(), copy.height());
    let body = crate::run_cpu(move || copy.encode()).await?;
    let bytes = body.len() as u64;
    let metadata = HashMap::from([
        ("source-bucket".to_owned(), metadata_value(&source.bucket)),
        ("source-key".to_owned(), metadata_value(&source.key)),
        ("version".to_owned(), tag.to_owned()),
    ]);
    s3.put(PutObject {
        bucket: &bucket,
        key: &key,
        body,
        content_type: WorkingCopy::CONTENT_TYPE,
        cache_control: CACHE_CONTROL,
        metadata,
        condition,
    })
    .await?;
    Ok(WorkingCopyRef {
        bucket,
        key,
        width,
        height,
        bytes,
    })
}

/// The working copy validate stored for `source` (its version tag is in `reference.key`), restored from
/// the source when it is missing or unreadable and the upload is still current.
pub async fn load(
    s3: &ObjectStore,
    reference: &WorkingCopyRef,
    source: &Source,
    profile: &Profile,
    tag: &str,
) -> Result<WorkingCopy, StageError> {
    let max_bytes =
        u64::from(reference.width) * u64::from(reference.height) * 4 + MAX_OVERHEAD_BYTES;
    let stored = s3
        .get_if_exists(&reference.bucket, &reference.key, max_bytes)
        .await?;
    let problem = match stored {
        Some((bytes, _)) => {
            let limits = profile.limits.clone();
            match crate::run_cpu(move || WorkingCopy::decode(bytes, &limits)).await? {
                Ok(copy) => return Ok(copy),
                Err(damage) => damage.to_string(),
            }
        }
        None => "it is gone".to_owned(),
    };
    // Only a current upload is worth decoding again; a superseded one stops here.
    s3.ensure_current(&VersionRef::of_source(source)).await?;
    tracing::warn!(
        key = reference.key,
        problem,
        "the working copy is unusable; decoding the source again"
    );
    let copy = make(s3, source, profile).await?;
    let location = (reference.bucket.clone(), reference.key.clone());
    // Always: a damaged copy is replaced.
    store(
        s3,
        location,
        source,
        tag,
        copy.clone(),
        WriteCondition::Always,
    )
    .await?;
    Ok(copy)
}
