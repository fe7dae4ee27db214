//! render-variant: one Map iteration. Reads the working copy validate made (the upload decoded once),
//! renders one variant around the focus point and stores it at its key, which belongs to this upload
//! alone. Before writing it checks the upload is still the key's current object (else the execution is
//! superseded), and it writes with `If-None-Match: *`: the key's bytes never change, so a retry or a
//! redrive that finds its own earlier write keeps it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ferrotype_aws::s3::metadata_value;
use ferrotype_aws::{
    working_copy, ObjectStore, PutObject, StageError, VersionRef, WriteCondition, Written,
};
use ferrotype_core::config::Config;
use ferrotype_core::keys::variant_key;
use ferrotype_core::pipeline::{RenderRequest, RenderedVariant};
use ferrotype_core::render_working;
use lambda_runtime::LambdaEvent;

/// What render-variant needs, built once per container (or once by the local runner).
#[derive(Debug, Clone)]
pub struct RenderVariant {
    pub s3: ObjectStore,
    pub config: Arc<Config>,
    pub output_bucket: String,
}

impl RenderVariant {
    pub fn new(
        s3: aws_sdk_s3::Client,
        config: impl Into<Arc<Config>>,
        output_bucket: impl Into<String>,
    ) -> RenderVariant {
        RenderVariant {
            s3: ObjectStore::new(s3),
            config: config.into(),
            output_bucket: output_bucket.into(),
        }
    }
}

pub async fn handler(
    deps: &RenderVariant,
    event: LambdaEvent<RenderRequest>,
) -> Result<RenderedVariant, StageError> {
    let started = Instant::now();
    let RenderRequest {
        source,
        profile,
        version,
        working_copy,
        faces,
        variant,
    } = event.payload;
    let profile = deps
        .config
        .profile(&profile)
        .ok_or_else(|| StageError::BadEvent(format!("unknown profile {profile:?}")))?;
    let copy = working_copy::load(&deps.s3, &working_copy, &source, profile, &version).await?;
    // Each cover crop keeps the faces that fit its own window (two people far apart: the larger one).
    let focus = variant
        .follow_focus
        .then(|| ferrotype_core::variant_focus(&faces, copy.upright_size(), &variant));
    let spec = variant.clone();
    let rendered = ferrotype_aws::run_cpu(move || render_working(&copy, &spec, focus))
        .await?
        .map_err(StageError::from)?;

    let key = variant_key(
        &deps.config.outputs,
        profile,
        &variant,
        &source.key,
        &version,
    );
    let content_type = rendered.format.content_type();
    let size = rendered.bytes.len() as u64;
    let mut metadata = HashMap::from([
        ("source-bucket".to_owned(), metadata_value(&source.bucket)),
        ("source-key".to_owned(), metadata_value(&source.key)),
        (
            "source-etag".to_owned(),
            source.etag.trim_matches('"').to_owned(),
        ),
        ("profile".to_owned(), profile.name.clone()),
        ("variant".to_owned(), variant.name.clone()),
    ]);
    if let Some(version_id) = &source.version_id {
        metadata.insert("source-version-id".to_owned(), metadata_value(version_id));
    }
    metadata.insert("version".to_owned(), version.clone());
    // The last moment to find out cheaply that a newer upload (or a deletion) took over; a write after
    // this that loses the race anyway is removed by this execution's superseded clean-up.
    deps.s3
        .ensure_current(&VersionRef::of_source(&source))
        .await?;
    let written = deps
        .s3
        .put(PutObject {
            bucket: &deps.output_bucket,
            key: &key,
            body: rendered.bytes,
            content_type,
            cache_control: &deps.config.outputs.cache_control,
            metadata,
            condition: WriteCondition::IfAbsent,
        })
        .await?;
    if written == Written::ConditionFailed {
        // An earlier attempt of this very iteration (or a duplicate execution of this upload) stored
        // the same bytes under this key: keys are unique to an upload and its settings.
        tracing::info!(key, "already stored by an earlier attempt; kept");
    }
    let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    tracing::info!(
        source = source.key,
        variant = variant.name,
        key,
        width = rendered.width,
        height = rendered.height,
        bytes = size,
        duration_ms,
        "rendered"
    );
    Ok(RenderedVariant {
        name: variant.name,
        bucket: deps.output_bucket.clone(),
        key,
        format: rendered.format,
        content_type: content_type.to_owned(),
        width: rendered.width,
        height: rendered.height,
        bytes: size,
        duration_ms,
    })
}
