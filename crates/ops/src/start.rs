//! Starting executions by name, for the commands that start them (backfill, rerun, reconcile).
//!
//! Names are derived from what the execution is about, so running a command twice starts nothing twice:
//! Step Functions answers a Standard execution name used in the last 90 days with ExecutionAlreadyExists,
//! which counts as "already started". (Express workflows do not check names; the commands that start
//! them look for the name themselves, or rely on the pipeline being idempotent.)

use std::time::Duration;

use aws_sdk_sfn::operation::start_execution::StartExecutionError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use sha2::{Digest, Sha256};

use crate::error::{is_throttling_code, OpsError};

/// StartExecution names: at most 80 characters of `[A-Za-z0-9-_]`.
pub const MAX_EXECUTION_NAME: usize = 80;
/// 16 hex digits (64 bits) of SHA-256: collisions are not a practical concern.
const NAME_HASH_HEX: usize = 16;

/// Our own retries of a throttled StartExecution, on top of the SDK's standard retries.
pub const START_ATTEMPTS: u32 = 6;
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(16);

/// SHA-256 over the parts, each followed by a NUL, as hex.
pub fn digest(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            hasher.update([0]);
        }
        hasher.update(part.as_bytes());
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A readable, deterministic execution name: `prefix` + the end of `readable` as a slug + 16 hex digits of
/// the digest of `parts`. The end of a key is kept because the file name tells more than a shared prefix.
pub fn derived_name(prefix: &str, readable: &str, parts: &[&str]) -> String {
    let digest = digest(parts);
    let hash = &digest[..NAME_HASH_HEX];
    let mut slug = String::new();
    for c in readable.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            slug.push(c);
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let room = MAX_EXECUTION_NAME - prefix.len() - 1 - NAME_HASH_HEX;
    let slug = slug.trim_matches('-');
    let tail_start = slug.len().saturating_sub(room);
    let slug = slug[tail_start..].trim_start_matches('-');
    if slug.is_empty() {
        format!("{prefix}{hash}")
    } else {
        format!("{prefix}{slug}-{hash}")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartOutcome {
    Started,
    AlreadyStarted,
}

/// StartExecution, retrying throttling with exponential backoff beyond the SDK's own retries.
pub async fn start_execution(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    name: &str,
    input: &str,
) -> Result<StartOutcome, OpsError> {
    let mut backoff = FIRST_BACKOFF;
    for attempt in 1..=START_ATTEMPTS {
        let result = sfn
            .start_execution()
            .state_machine_arn(state_machine_arn)
            .name(name)
            .input(input)
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

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn is_valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= MAX_EXECUTION_NAME
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    }

    #[test]
    fn names_are_valid_readable_and_deterministic() {
        let name = derived_name(
            "rc-",
            "uploads/red flower.jpg",
            &["uploads/red flower.jpg", "v1"],
        );
        assert!(name.starts_with("rc-uploads-red-flower-jpg-"), "{name}");
        assert!(is_valid_name(&name));
        assert_eq!(
            name,
            derived_name(
                "rc-",
                "uploads/red flower.jpg",
                &["uploads/red flower.jpg", "v1"]
            )
        );
        assert_ne!(
            name,
            derived_name(
                "rc-",
                "uploads/red flower.jpg",
                &["uploads/red flower.jpg", "v2"]
            )
        );
        for readable in ["写真", "", "/", "%%%"] {
            let name = derived_name("x-", readable, &[readable]);
            assert!(is_valid_name(&name), "{name}");
            assert_eq!(name.len(), 2 + NAME_HASH_HEX);
        }
        let long = format!("uploads/{}/photo_0042.jpg", "deep/".repeat(60));
        let name = derived_name("rerun-", &long, &[&long]);
        assert_eq!(name.len(), MAX_EXECUTION_NAME);
        assert!(name.contains("photo_0042-jpg-"), "{name}");
    }

    #[test]
    fn parts_are_kept_apart() {
        assert_ne!(digest(&["ab", "c"]), digest(&["a", "bc"]));
        assert_eq!(digest(&["a"]).len(), 64);
    }
}
