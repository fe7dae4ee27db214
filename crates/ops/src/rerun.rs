//! `ferrotype aws rerun`: what redrive is to Standard executions, for Express ones, which cannot be
//! redriven. A failed (or timed-out, or aborted) Express execution is started again with its original
//! input, read from its ExecutionStarted log event. The pipeline is idempotent (every output key is a
//! function of the upload's version; writes are conditional), so a rerun redoes the work and ends with
//! the same outputs; its name is derived from the original's, so a second `rerun` skips what was rerun.

use std::collections::HashSet;
use std::io::Write;

use ferrotype_executor::EventType;

use crate::error::OpsError;
use crate::executions::{ExecutionSummary, ListFilter};
use crate::express::{self, FAILED_STATUSES};
use crate::start::{derived_name, start_execution, StartOutcome};

const RERUN_PREFIX: &str = "rerun-";

/// The name of the rerun of `execution_arn`: its name's end, readable, and a hash of its whole ARN.
pub fn rerun_name(execution_arn: &str) -> String {
    derived_name(
        RERUN_PREFIX,
        express::execution_name(execution_arn),
        &[execution_arn],
    )
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RerunSummary {
    pub rerun: usize,
    /// A rerun of it (by its derived name) is in the logs already, or Step Functions had the name.
    pub already_rerun: usize,
    /// Failed executions found but not rerun: no input in the log (execution data not logged), or the
    /// start failed.
    pub failed: usize,
}

impl RerunSummary {
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }
}

/// One execution to rerun, with its input if the log has it.
#[derive(Debug, Clone)]
pub struct RerunCandidate {
    pub execution_arn: String,
    pub status: String,
    pub input: Option<String>,
}

/// The failed executions of the window (FAILED, TIMED_OUT, ABORTED), newest first, with their inputs, and
/// the names of every execution the window holds (to see what was rerun already).
pub async fn failed_in_window(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    window: &ListFilter,
) -> Result<(Vec<RerunCandidate>, HashSet<String>), OpsError> {
    let all = ListFilter {
        status: None,
        ..window.clone()
    };
    let (executions, _) = express::started_executions(logs, log_group, &all).await?;
    let names: HashSet<String> = executions
        .iter()
        .map(|(summary, _)| summary.name.clone())
        .collect();
    let failed = executions
        .into_iter()
        .filter(|(summary, _)| FAILED_STATUSES.contains(&summary.status.as_str()))
        .take(window.limit)
        .map(
            |(
                ExecutionSummary {
                    execution_arn,
                    status,
                    ..
                },
                input,
            )| RerunCandidate {
                execution_arn,
                status,
                input,
            },
        )
        .collect();
    Ok((failed, names))
}

/// Given executions, by ARN: their inputs from their histories in the log.
pub async fn named_in_log(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    execution_arns: &[String],
) -> Result<Vec<RerunCandidate>, OpsError> {
    let mut found = Vec::new();
    for arn in execution_arns {
        let history = express::history(logs, log_group, arn).await?;
        let input = history
            .iter()
            .find(|event| event.event_type == EventType::ExecutionStarted)
            .and_then(|event| event.execution_started_event_details.as_ref())
            .and_then(|details| details.input.clone());
        let status = history
            .iter()
            .rev()
            .find_map(|event| match event.event_type {
                EventType::ExecutionSucceeded => Some("SUCCEEDED"),
                EventType::ExecutionFailed => Some("FAILED"),
                EventType::ExecutionTimedOut => Some("TIMED_OUT"),
                EventType::ExecutionAborted => Some("ABORTED"),
                _ => None,
            })
            .unwrap_or("RUNNING");
        found.push(RerunCandidate {
            execution_arn: arn.clone(),
            status: status.to_owned(),
            input,
        });
    }
    Ok(found)
}

/// Starts each candidate again on `state_machine_arn` with its original input, one line per execution and
/// a summary. `already_named` holds the execution names the log shows (a rerun found there is skipped).
/// Stops early on errors that would repeat for every execution (access denied, no network).
pub async fn rerun(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    candidates: &[RerunCandidate],
    already_named: &HashSet<String>,
    dry_run: bool,
    out: &mut impl Write,
) -> Result<RerunSummary, OpsError> {
    let mut summary = RerunSummary::default();
    for candidate in candidates {
        let arn = &candidate.execution_arn;
        let name = rerun_name(arn);
        if already_named.contains(&name) {
            summary.already_rerun += 1;
            writeln!(out, "already rerun   {arn} as {name}")?;
            continue;
        }
        if candidate.status == "RUNNING" || candidate.status == "SUCCEEDED" {
            summary.failed += 1;
            writeln!(out, "not failed      {arn}: it is {}", candidate.status)?;
            continue;
        }
        let Some(input) = &candidate.input else {
            summary.failed += 1;
            writeln!(
                out,
                "no input        {arn}: its ExecutionStarted event carries no input (log with execution data to rerun)"
            )?;
            continue;
        };
        if dry_run {
            summary.rerun += 1;
            writeln!(
                out,
                "would rerun     {arn} ({}) as {name}",
                candidate.status
            )?;
            continue;
        }
        match start_execution(sfn, state_machine_arn, &name, input).await {
            Ok(StartOutcome::Started) => {
                summary.rerun += 1;
                writeln!(
                    out,
                    "rerun           {arn} ({}) as {name}",
                    candidate.status
                )?;
            }
            Ok(StartOutcome::AlreadyStarted) => {
                summary.already_rerun += 1;
                writeln!(out, "already rerun   {arn} as {name}")?;
            }
            Err(err) => {
                summary.failed += 1;
                writeln!(out, "failed          {arn}: {err}")?;
                if err.stops_batch() {
                    write_summary(out, &summary, candidates.len(), dry_run)?;
                    return Err(err);
                }
            }
        }
    }
    write_summary(out, &summary, candidates.len(), dry_run)?;
    Ok(summary)
}

fn write_summary(
    out: &mut impl Write,
    summary: &RerunSummary,
    total: usize,
    dry_run: bool,
) -> Result<(), OpsError> {
    let untried = total - summary.rerun - summary.already_rerun - summary.failed;
    let verb = if dry_run { "would be rerun" } else { "rerun" };
    write!(
        out,
        "{} {verb}, {} already rerun, {} failed",
        summary.rerun, summary.already_rerun, summary.failed
    )?;
    if untried > 0 {
        write!(out, ", {untried} not tried")?;
    }
    writeln!(out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rerun_is_named_after_the_execution_it_reruns() {
        let arn =
            "arn:aws:states:eu-west-1:123456789012:express:FerrotypePipeline:7f3e-upload:0a1b";
        let name = rerun_name(arn);
        assert!(name.starts_with("rerun-7f3e-upload-"), "{name}");
        assert_eq!(name, rerun_name(arn));
        assert_ne!(
            name,
            rerun_name(
                "arn:aws:states:eu-west-1:123456789012:express:FerrotypePipeline:7f3e-upload:0a1c"
            )
        );
        assert!(name.len() <= 80);
    }
}
