//! `ferrotype aws backfill`: starts the pipeline for objects already in the input bucket (after a
//! profile was added or changed), with the event the S3 → EventBridge rule would have delivered.
//!
//! Execution names are derived from key and ETag, so running a backfill twice starts nothing twice:
//! Step Functions answers a reused name with ExecutionAlreadyExists, which counts as "already started".

use std::io::Write;
use std::time::Duration;

use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_smithy_types::date_time::Format;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ferrotype_core::config::Config;
use ferrotype_core::event::{NewObject, ObjectEvent};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use tokio::task::JoinSet;
use tokio::time::MissedTickBehavior;

use crate::context::arn_region_and_account;
use crate::error::{is_throttling_code, OpsError};

/// StartExecution names: at most 80 characters of `[A-Za-z0-9-_]`.
pub const MAX_EXECUTION_NAME: usize = 80;
const NAME_PREFIX: &str = "bf-";
/// 16 hex digits (64 bits) of SHA-256 over key and ETag: collisions are not a practical concern.
const NAME_HASH_HEX: usize = 16;

/// Requests in flight at once; the rate limit, not this, sets the pace.
const MAX_IN_FLIGHT: usize = 8;
/// Our own retries of a throttled StartExecution, on top of the SDK's standard retries.
pub const START_ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(16);

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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    AlreadyStarted,
}

/// SHA-256 over key and ETag (quotes removed), as hex.
fn object_digest(key: &str, etag: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(key.as_bytes());
    hasher.update([0]);
    hasher.update(etag.as_bytes());
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A readable, deterministic execution name: `bf-` + the end of the key as a slug + a short hash of
/// key and ETag. The key's end is kept because the file name is more telling than the shared prefix.
pub fn execution_name(key: &str, etag: &str) -> String {
    let digest = object_digest(key, etag);
    let hash = &digest[..NAME_HASH_HEX];
    let mut slug = String::new();
    for c in key.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let room = MAX_EXECUTION_NAME - NAME_PREFIX.len() - 1 - NAME_HASH_HEX;
    let slug = slug.trim_matches('-');
    let tail_start = slug.len().saturating_sub(room);
    let slug = slug[tail_start..].trim_start_matches('-');
    if slug.is_empty() {
        format!("{NAME_PREFIX}{hash}")
    } else {
        format!("{NAME_PREFIX}{slug}-{hash}")
    }
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
    let digest = object_digest(object.key, etag.unwrap_or_default());
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

/// StartExecution, retrying throttling with exponential backoff beyond the SDK's own retries.
pub async fn start_execution(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    candidate: &Candidate,
) -> Result<StartOutcome, OpsError> {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=START_ATTEMPTS {
        let result = sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(&candidate.execution_name)
            .input(&candidate.input)
            .send()
            .await;
        match result {
            Ok(_) => return Ok(StartOutcome::Started),
            Err(err)
                if matches!(
                    err.as_service_error(),
                    Some(StartExecutionError::ExecutionAlreadyExists(_))
                ) =>
            {
                return Ok(StartOutcome::AlreadyStarted)
            }
            Err(err) if is_throttling_code(err.code()) && attempt < START_ATTEMPTS => {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            Err(err) => return Err(OpsError::from_sdk("StartExecution", err)),
        }
    }
    unreachable!("the last attempt returns")
}

/// Lists `bucket` under the prefix and starts an execution for each object of a profile, at most
/// `rate_per_second` a second. Per-object failures are reported and counted; failures that would
/// repeat for every object (access denied, no such state machine) stop the backfill.
pub async fn backfill(
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
            match candidate(config, request.profile_name.as_deref(), &origin, &listed) {
                Some(found) => candidates.push(found),
                None => summary.skipped += 1,
            }
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
                let outcome = start_execution(&sfn, &arn, &found).await;
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
    if dry_run {
        writeln!(
            out,
            "dry run: {} object(s) listed, {} would be started, {} skipped (no matching profile or a folder)",
            summary.listed, summary.started, summary.skipped
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
        assert_eq!(
            execution_name("写真", "etag").len(),
            NAME_PREFIX.len() + NAME_HASH_HEX
        );
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
