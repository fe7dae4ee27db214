//! `ferrotype aws backfill`: runs the pipeline for objects already in the input bucket (after a profile
//! was added or changed).
//!
//! By default it starts the backfill state machine (statemachine/backfill.asl.json): a Distributed Map
//! that lists the bucket itself and runs the Express pipeline for every object, at AWS's scale and price.
//! `--per-object` keeps the older way, useful without the backfill machine (a stack deployed before it)
//! or for a handful of keys: this command lists the bucket and starts one pipeline execution per object
//! with the event the S3 → EventBridge rule would have delivered, names derived from key and ETag so a
//! second run starts nothing twice (Standard pipelines; Express ones do not check names).

use std::io::Write;
use std::time::Duration;

use aws_smithy_types::date_time::Format;
use ferrotype_core::config::Config;
use ferrotype_core::event::{NewObject, ObjectEvent};
use ferrotype_core::pipeline::{Manifest, ManifestStatus};
use indicatif::{ProgressBar, ProgressStyle};
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::context::arn_region_and_account;
use crate::error::OpsError;
use crate::start::{derived_name, digest, start_execution, StartOutcome};

pub use crate::start::{MAX_EXECUTION_NAME, START_ATTEMPTS};

const NAME_PREFIX: &str = "bf-";

/// Requests in flight at once; the rate limit, not this, sets the pace.
const MAX_IN_FLIGHT: usize = 8;

#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub bucket: String,
    /// Listing prefix; `None` lists the selected profile's prefix, or the whole bucket.
    pub prefix: Option<String>,
    /// Only objects that belong to this profile (by the pipeline's longest-prefix rule).
    pub profile_name: Option<String>,
    pub state_machine_arn: String,
    /// StartExecution calls per second.
    pub rate_per_second: u32,
    pub dry_run: bool,
    /// `reconcile`: start only objects whose manifest in this (output) bucket is missing or describes
    /// another object (a lost event, a failed record); `None` starts every object (backfill).
    pub reconcile_with: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackfillSummary {
    /// Objects listed under the prefix.
    pub listed: usize,
    /// Started now (or, with --dry-run, would be started).
    pub started: usize,
    pub already_started: usize,
    /// Folder markers, and keys outside every profile prefix (or outside --profile-name).
    pub skipped: usize,
    /// `reconcile` only: objects whose manifest already describes them.
    pub up_to_date: usize,
    pub failed: usize,
}

/// One object to start the pipeline for.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub key: String,
    pub profile: String,
    pub execution_name: String,
    /// The state machine input: the Object Created event, as JSON text.
    pub input: String,
}

/// A finished StartExecution: the object's key and what happened.
type Attempt = (String, Result<StartOutcome, OpsError>);

/// The per-object execution name: `bf-` + the end of the key + a short hash of key and ETag.
pub fn execution_name(key: &str, etag: &str) -> String {
    derived_name(NAME_PREFIX, key, &[key, etag])
}

/// The fields ListObjectsV2 gives about one object.
#[derive(Debug, Clone, Default)]
pub struct ListedObject<'a> {
    pub key: &'a str,
    pub size: u64,
    /// As S3 lists it, with its quotes.
    pub etag: Option<&'a str>,
    /// RFC 3339; the event's `time`.
    pub last_modified: Option<String>,
}

/// Where the events claim to come from: the state machine's region and account.
#[derive(Debug, Clone)]
pub struct EventOrigin {
    pub bucket: String,
    pub region: String,
    pub account: String,
}

/// The candidate for a listed object, or `None` when the backfill must skip it.
pub fn candidate(
    config: &Config,
    profile_name: Option<&str>,
    origin: &EventOrigin,
    object: &ListedObject<'_>,
) -> Option<Candidate> {
    if object.key.ends_with('/') {
        return None;
    }
    let profile = config.profile_for_key(object.key)?;
    if profile_name.is_some_and(|wanted| wanted != profile.name) {
        return None;
    }
    // EventBridge delivers the ETag without S3's quotes.
    let etag = object.etag.map(|etag| etag.trim_matches('"'));
    let digest = digest(&[object.key, etag.unwrap_or_default()]);
    let id = format!(
        "{}-{}-{}-{}-{}",
        &digest[0..8],
        &digest[8..12],
        &digest[12..16],
        &digest[16..20],
        &digest[20..32]
    );
    let time = object.last_modified.clone().unwrap_or_else(|| {
        time::OffsetDateTime::now_utc()
            .replace_nanosecond(0)
            .unwrap_or_else(|_| time::OffsetDateTime::now_utc())
            .format(&Rfc3339)
            .unwrap_or_default()
    });
    let event = ObjectEvent::for_object(&NewObject {
        bucket: &origin.bucket,
        key: object.key,
        size: object.size,
        etag,
        version_id: None,
        region: &origin.region,
        account: &origin.account,
        time: &time,
        id: &id,
        reason: "PutObject",
        // A listing does not tell the write's sequencer (docs/CONTRACTS.md: the version is named by its
        // ETag then).
        sequencer: None,
    });
    let input = serde_json::to_string(&event).expect("an ObjectEvent always serialises");
    Some(Candidate {
        key: object.key.to_owned(),
        profile: profile.name.clone(),
        execution_name: execution_name(object.key, etag.unwrap_or_default()),
        input,
    })
}

/// The progress bar of a backfill on stderr (hidden when `visible` is false or stderr is no terminal);
/// its length grows as listing pages arrive.
pub fn progress_bar(visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} started ({per_sec})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// `--per-object`: lists `bucket` under the prefix and starts a pipeline execution for each object of a
/// profile, at most `rate_per_second` a second. Per-object failures are reported and counted; failures
/// that would repeat for every object (access denied, no such state machine) stop the backfill.
pub async fn backfill_per_object(
    s3: &aws_sdk_s3::Client,
    sfn: &aws_sdk_sfn::Client,
    config: &Config,
    request: &BackfillRequest,
    progress: &ProgressBar,
    out: &mut impl Write,
) -> Result<BackfillSummary, OpsError> {
    if request.rate_per_second == 0 {
        return Err(OpsError::Usage("--rate must be at least 1".to_owned()));
    }
    let profile_prefix = match &request.profile_name {
        Some(name) => match config.profile(name) {
            Some(profile) => Some(profile.prefix.clone()),
            None => {
                let known: Vec<&str> = config.profiles.iter().map(|p| p.name.as_str()).collect();
                return Err(OpsError::Usage(format!(
                    "no profile named {name:?} in the configuration (profiles: {})",
                    known.join(", ")
                )));
            }
        },
        None => None,
    };
    let prefix = request
        .prefix
        .clone()
        .or(profile_prefix)
        .unwrap_or_default();
    let (region, account) =
        arn_region_and_account(&request.state_machine_arn).ok_or_else(|| {
            OpsError::Usage(format!(
                "not a Step Functions state machine ARN: {}",
                request.state_machine_arn
            ))
        })?;
    let origin = EventOrigin {
        bucket: request.bucket.clone(),
        region: region.to_owned(),
        account: account.to_owned(),
    };

    let mut ticks = tokio::time::interval(Duration::from_secs_f64(
        1.0 / f64::from(request.rate_per_second),
    ));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut summary = BackfillSummary::default();
    let mut in_flight: JoinSet<Attempt> = JoinSet::new();
    let mut stop: Option<OpsError> = None;
    let mut pages = s3
        .list_objects_v2()
        .bucket(&request.bucket)
        .prefix(&prefix)
        .into_paginator()
        .send();

    'pages: while let Some(page) = pages.next().await {
        let page = match page {
            Ok(page) => page,
            Err(err) => {
                stop = Some(OpsError::from_sdk("ListObjectsV2", err));
                break;
            }
        };
        let mut candidates = Vec::new();
        for object in page.contents() {
            let Some(key) = object.key() else { continue };
            summary.listed += 1;
            let listed = ListedObject {
                key,
                size: object
                    .size()
                    .and_then(|size| u64::try_from(size).ok())
                    .unwrap_or(0),
                etag: object.e_tag(),
                last_modified: object
                    .last_modified()
                    .and_then(|time| time.fmt(Format::DateTime).ok()),
            };
            let Some(found) = candidate(config, request.profile_name.as_deref(), &origin, &listed)
            else {
                summary.skipped += 1;
                continue;
            };
            if let Some(output_bucket) = &request.reconcile_with {
                match manifest_describes(s3, output_bucket, config, &listed).await {
                    Ok(true) => {
                        summary.up_to_date += 1;
                        continue;
                    }
                    Ok(false) => {}
                    Err(error) => {
                        stop = Some(error);
                        break 'pages;
                    }
                }
            }
            candidates.push(found);
        }
        progress.inc_length(candidates.len() as u64);
        for found in candidates {
            if request.dry_run {
                summary.started += 1;
                progress.suspend(|| {
                    writeln!(
                        out,
                        "would start {}  s3://{}/{}  (profile {})",
                        found.execution_name, request.bucket, found.key, found.profile
                    )
                })?;
                progress.inc(1);
                continue;
            }
            while in_flight.len() >= MAX_IN_FLIGHT {
                if let Some(error) =
                    record(in_flight.join_next().await, &mut summary, progress, out)?
                {
                    stop = Some(error);
                    break 'pages;
                }
            }
            ticks.tick().await;
            let sfn = sfn.clone();
            let arn = request.state_machine_arn.clone();
            in_flight.spawn(async move {
                let outcome =
                    start_execution(&sfn, &arn, &found.execution_name, &found.input).await;
                (found.key, outcome)
            });
        }
    }
    while !in_flight.is_empty() {
        if let Some(error) = record(in_flight.join_next().await, &mut summary, progress, out)? {
            stop.get_or_insert(error);
        }
    }
    progress.finish_and_clear();
    write_summary(out, &summary, request.dry_run)?;
    match stop {
        Some(error) => Err(error),
        None => Ok(summary),
    }
}

/// Whether the key's manifest records this very object as done (`succeeded`, or `rejected`): by its
/// ETag when the manifest has the source's facts, else by time (a manifest recorded before the object
/// was written describes an earlier one). A missing, `failed` or `deleted` manifest does not.
async fn manifest_describes(
    s3: &aws_sdk_s3::Client,
    output_bucket: &str,
    config: &Config,
    object: &ListedObject<'_>,
) -> Result<bool, OpsError> {
    let key = ferrotype_core::keys::manifest_key(&config.outputs, object.key);
    let answer = s3.get_object().bucket(output_bucket).key(&key).send().await;
    let body = match answer {
        Ok(answer) => {
            answer.body.collect().await.map_err(|err| {
                OpsError::Usage(format!("reading s3://{output_bucket}/{key}: {err}"))
            })?
        }
        Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(false),
        Err(err) => return Err(OpsError::from_sdk("GetObject", err)),
    };
    let Ok(manifest) = serde_json::from_slice::<Manifest>(&body.into_bytes()) else {
        return Ok(false);
    };
    if !matches!(
        manifest.status,
        ManifestStatus::Succeeded | ManifestStatus::Rejected
    ) {
        return Ok(false);
    }
    let unquoted = |etag: &str| etag.trim_matches('"').to_owned();
    Ok(match (&manifest.source, object.etag) {
        (Some(source), Some(etag)) => unquoted(&source.etag) == unquoted(etag),
        _ => match (
            object
                .last_modified
                .as_deref()
                .and_then(|t| time::OffsetDateTime::parse(t, &Rfc3339).ok()),
            time::OffsetDateTime::parse(&manifest.recorded_at, &Rfc3339).ok(),
        ) {
            (Some(written), Some(recorded)) => written <= recorded,
            _ => false,
        },
    })
}

/// Counts one finished StartExecution; returns the error if it must stop the backfill.
fn record(
    joined: Option<Result<Attempt, tokio::task::JoinError>>,
    summary: &mut BackfillSummary,
    progress: &ProgressBar,
    out: &mut impl Write,
) -> Result<Option<OpsError>, OpsError> {
    let Some(joined) = joined else {
        return Ok(None);
    };
    progress.inc(1);
    let (key, outcome) = match joined {
        Ok(done) => done,
        // A panic in the SDK is a bug, not a per-object failure; surface it as such.
        Err(join_error) => std::panic::resume_unwind(join_error.into_panic()),
    };
    match outcome {
        Ok(StartOutcome::Started) => summary.started += 1,
        Ok(StartOutcome::AlreadyStarted) => summary.already_started += 1,
        Err(error) => {
            summary.failed += 1;
            progress.suspend(|| writeln!(out, "failed {key}: {error}"))?;
            if error.stops_batch() {
                return Ok(Some(error));
            }
        }
    }
    Ok(None)
}

fn write_summary(
    out: &mut impl Write,
    summary: &BackfillSummary,
    dry_run: bool,
) -> Result<(), OpsError> {
    let up_to_date = if summary.up_to_date > 0 {
        format!(", {} up to date", summary.up_to_date)
    } else {
        String::new()
    };
    if dry_run {
        writeln!(
            out,
            "dry run: {} object(s) listed, {} would be started{up_to_date}, {} skipped (no matching profile or a folder)",
            summary.listed, summary.started, summary.skipped
        )?;
    } else if !up_to_date.is_empty() {
        writeln!(
            out,
            "{} object(s) listed: {} started{up_to_date}, {} already started, {} skipped (no matching profile or a folder), {} failed",
            summary.listed, summary.started, summary.already_started, summary.skipped, summary.failed
        )?;
    } else {
        writeln!(
            out,
            "{} object(s) listed: {} started, {} already started, {} skipped (no matching profile or a folder), {} failed",
            summary.listed, summary.started, summary.already_started, summary.skipped, summary.failed
        )?;
    }
    Ok(())
}

/// A backfill on the backfill state machine: one execution per prefix.
#[derive(Debug, Clone)]
pub struct DistributedBackfill {
    pub backfill_state_machine_arn: String,
    pub bucket: String,
    /// Listing prefixes (each a profile prefix or inside one); ignored with an inventory manifest.
    pub prefixes: Vec<String>,
    /// Batches of ten objects run at once (the Distributed Map's MaxConcurrency); the machine's default
    /// (30) when None.
    pub max_concurrency: Option<u32>,
    /// An S3 Inventory manifest (bucket, key) to read instead of listing.
    pub inventory_manifest: Option<(String, String)>,
    pub dry_run: bool,
}

/// The prefixes a backfill lists: `--prefix` (which must lie inside a profile's prefix: the backfill
/// machine may list only those), else the prefix of `--profile-name`, else every profile's.
pub fn listing_prefixes(
    config: &Config,
    prefix: Option<&str>,
    profile_name: Option<&str>,
) -> Result<Vec<String>, OpsError> {
    let profiles: Vec<&ferrotype_core::config::Profile> = match profile_name {
        Some(name) => vec![config.profile(name).ok_or_else(|| {
            let known: Vec<&str> = config.profiles.iter().map(|p| p.name.as_str()).collect();
            OpsError::Usage(format!(
                "no profile named {name:?} in the configuration (profiles: {})",
                known.join(", ")
            ))
        })?],
        None => config.profiles.iter().collect(),
    };
    match prefix {
        None => Ok(profiles
            .iter()
            .map(|profile| profile.prefix.clone())
            .collect()),
        Some(prefix)
            if profiles
                .iter()
                .any(|profile| prefix.starts_with(profile.prefix.as_str())) =>
        {
            Ok(vec![prefix.to_owned()])
        }
        Some(prefix) => {
            let allowed: Vec<&str> = profiles.iter().map(|p| p.prefix.as_str()).collect();
            Err(OpsError::Usage(format!(
                "--prefix {prefix:?} is not inside a profile prefix ({}): the backfill lists only uploads of a profile",
                allowed.join(", ")
            )))
        }
    }
}

/// The backfill machine's input for one prefix (statemachine/backfill.asl.json).
pub fn backfill_input(request: &DistributedBackfill, prefix: &str) -> serde_json::Value {
    let mut input = serde_json::json!({ "bucket": request.bucket, "prefix": prefix });
    if let Some(concurrency) = request.max_concurrency {
        input["maxConcurrency"] = concurrency.into();
    }
    if let Some((bucket, key)) = &request.inventory_manifest {
        input["inventoryManifest"] = serde_json::json!({ "bucket": bucket, "key": key });
    }
    input
}

/// The name of a backfill execution: what it backfills, and when (Standard names are unique for 90
/// days; the second makes each run its own).
pub fn backfill_name(prefix: &str, started: time::OffsetDateTime) -> String {
    let stamp = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        started.year(),
        u8::from(started.month()),
        started.day(),
        started.hour(),
        started.minute(),
        started.second()
    );
    derived_name(&format!("backfill-{stamp}-"), prefix, &[prefix])
}

/// `arn:…:stateMachine:NAME` + execution name → `arn:…:execution:NAME:EXECUTION`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> String {
    format!(
        "{}:{name}",
        state_machine_arn.replacen(":stateMachine:", ":execution:", 1)
    )
}

/// The Step Functions console page of an execution.
pub fn console_url(execution_arn: &str) -> String {
    let region = arn_region_and_account(execution_arn).map_or("us-east-1", |(region, _)| region);
    format!("https://{region}.console.aws.amazon.com/states/home?region={region}#/v2/executions/details/{execution_arn}")
}

/// Objects under `prefix` (folder markers left out), counted with ListObjectsV2: what a dry run reports.
async fn count_objects(
    s3: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<u64, OpsError> {
    let mut pages = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut count = 0;
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| OpsError::from_sdk("ListObjectsV2", err))?;
        count += page
            .contents()
            .iter()
            .filter(|object| object.key().is_some_and(|key| !key.ends_with('/')))
            .count() as u64;
    }
    Ok(count)
}

/// Starts the backfill state machine once per prefix (or once for an inventory manifest), printing each
/// execution and where to follow it; with `dry_run`, counts the objects and starts nothing. Returns the
/// executions started.
pub async fn start_backfill(
    s3: &aws_sdk_s3::Client,
    sfn: &aws_sdk_sfn::Client,
    request: &DistributedBackfill,
    out: &mut impl Write,
) -> Result<Vec<String>, OpsError> {
    if request.max_concurrency == Some(0) {
        return Err(OpsError::Usage(
            "--concurrency must be at least 1".to_owned(),
        ));
    }
    let prefixes: Vec<&str> = match &request.inventory_manifest {
        // One inventory lists the whole bucket (scope it with the inventory's own prefix filter).
        Some(_) => vec![request.prefixes.first().map_or("", String::as_str)],
        None => request.prefixes.iter().map(String::as_str).collect(),
    };
    let mut started = Vec::new();
    for prefix in prefixes {
        let input = backfill_input(request, prefix).to_string();
        let source = match &request.inventory_manifest {
            Some((bucket, key)) => format!("the inventory s3://{bucket}/{key}"),
            None => format!("s3://{}/{prefix}", request.bucket),
        };
        if request.dry_run {
            let count = match request.inventory_manifest {
                Some(_) => None,
                None => Some(count_objects(s3, &request.bucket, prefix).await?),
            };
            match count {
                Some(count) => writeln!(
                    out,
                    "would start {} for {source}: {count} object(s), {} batch(es) of ten; input {input}",
                    request.backfill_state_machine_arn,
                    count.div_ceil(10)
                )?,
                None => writeln!(out, "would start {} for {source}; input {input}", request.backfill_state_machine_arn)?,
            }
            continue;
        }
        let name = backfill_name(prefix, time::OffsetDateTime::now_utc());
        let arn = execution_arn(&request.backfill_state_machine_arn, &name);
        match start_execution(sfn, &request.backfill_state_machine_arn, &name, &input).await? {
            StartOutcome::Started => writeln!(out, "started   {arn}  ({source})")?,
            StartOutcome::AlreadyStarted => writeln!(
                out,
                "running   {arn}  ({source}, started this second already)"
            )?,
        }
        writeln!(out, "          {}", console_url(&arn))?;
        started.push(arn);
    }
    if !request.dry_run && !started.is_empty() {
        writeln!(
            out,
            "Each object runs through the Express pipeline; a failed one fails its batch of ten, and a backfill \
             with more than 5 % failed objects fails (alarm BackfillFailed). Results (SUCCEEDED_*.json, \
             FAILED_*.json) land under backfills/ in the output bucket; redrive a failed backfill with \
             `ferrotype aws redrive ARN` to rerun its failed batches."
        )?;
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_EXECUTION_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn names_are_valid_readable_and_deterministic() {
        let name = execution_name("uploads/red flower.jpg", "9b2cf535f27731c974343645a3985328");
        assert!(name.starts_with("bf-uploads-red-flower-jpg-"), "{name}");
        assert!(is_valid_name(&name), "{name}");
        assert_eq!(
            name,
            execution_name("uploads/red flower.jpg", "9b2cf535f27731c974343645a3985328")
        );
        for key in [
            "uploads/a+b.jpg",
            "uploads/café/naïve 写真 (1).jpeg",
            "写真.jpg",
            "uploads/%%%",
            "/",
            "x",
        ] {
            assert!(
                is_valid_name(&execution_name(key, "etag")),
                "{key}: {}",
                execution_name(key, "etag")
            );
        }
        assert_eq!(execution_name("写真", "etag").len(), NAME_PREFIX.len() + 16);
    }

    #[test]
    fn long_keys_keep_their_end_within_80_characters() {
        let key = format!("uploads/{}/holiday-photo_0042.jpg", "deep/".repeat(60));
        let name = execution_name(&key, "etag");
        assert!(is_valid_name(&name), "{name}");
        assert_eq!(name.len(), MAX_EXECUTION_NAME);
        assert!(name.contains("holiday-photo_0042-jpg-"), "{name}");
    }

    #[test]
    fn a_new_etag_or_a_similar_key_gets_another_name() {
        let base = execution_name("uploads/a b.jpg", "1");
        assert_ne!(
            base,
            execution_name("uploads/a b.jpg", "2"),
            "a re-upload is new work"
        );
        assert_ne!(
            base,
            execution_name("uploads/a+b.jpg", "1"),
            "keys with the same slug differ by hash"
        );
        assert_ne!(base, execution_name("uploads/a-b.jpg", "1"));
    }
}
