//! `ferrotype aws redrive`: RedriveExecution for many failed executions, skipping the ones Step
//! Functions will not redrive and saying why (FACTS.md: Standard workflows, within 14 days, resumes
//! from the failed state).

use std::io::Write;

use aws_sdk_sfn::operation::redrive_execution::RedriveExecutionError;
use aws_sdk_sfn::types::ExecutionRedriveStatus;

use crate::error::{one_line, OpsError};

/// What happened to one execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedriveOutcome {
    Redriven,
    /// Step Functions says it cannot be redriven (still running, succeeded, older than 14 days,
    /// an Express workflow…), with its reason.
    NotRedrivable(String),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveSummary {
    pub redriven: usize,
    pub not_redrivable: usize,
    pub failed: usize,
}

impl RedriveSummary {
    pub fn is_success(&self) -> bool {
        self.failed == 0
    }
}

/// Redrives one execution: DescribeExecution first, so the ones AWS marks not redrivable are skipped
/// with AWS's own reason instead of an error.
pub async fn redrive_one(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
) -> Result<RedriveOutcome, OpsError> {
    let described = sfn
        .describe_execution()
        .execution_arn(execution_arn)
        .send()
        .await
        .map_err(|err| OpsError::from_sdk("DescribeExecution", err))?;
    if described.redrive_status() == Some(&ExecutionRedriveStatus::NotRedrivable) {
        let reason = described.redrive_status_reason().map_or_else(
            || format!("status is {}", described.status().as_str()),
            one_line,
        );
        return Ok(RedriveOutcome::NotRedrivable(reason));
    }
    match sfn
        .redrive_execution()
        .execution_arn(execution_arn)
        .send()
        .await
    {
        Ok(_) => Ok(RedriveOutcome::Redriven),
        Err(err) => match err.as_service_error() {
            // Its state changed between the two calls (e.g. someone else redrove it).
            Some(RedriveExecutionError::ExecutionNotRedrivable(refusal)) => {
                Ok(RedriveOutcome::NotRedrivable(
                    refusal
                        .message()
                        .map_or_else(|| "Step Functions refused the redrive".to_owned(), one_line),
                ))
            }
            _ => Err(OpsError::from_sdk("RedriveExecution", err)),
        },
    }
}

/// Redrives each execution in turn, one line per execution and a summary. Stops early on errors
/// that would repeat for every execution (access denied, no network).
pub async fn redrive_executions(
    sfn: &aws_sdk_sfn::Client,
    execution_arns: &[String],
    out: &mut impl Write,
) -> Result<RedriveSummary, OpsError> {
    let mut summary = RedriveSummary::default();
    for arn in execution_arns {
        match redrive_one(sfn, arn).await {
            Ok(RedriveOutcome::Redriven) => {
                summary.redriven += 1;
                writeln!(out, "redriven        {arn}")?;
            }
            Ok(RedriveOutcome::NotRedrivable(reason)) => {
                summary.not_redrivable += 1;
                writeln!(out, "not redrivable  {arn}: {reason}")?;
            }
            Err(err) => {
                summary.failed += 1;
                writeln!(out, "failed          {arn}: {err}")?;
                if err.stops_batch() {
                    write_summary(out, &summary, execution_arns.len())?;
                    return Err(err);
                }
            }
        }
    }
    write_summary(out, &summary, execution_arns.len())?;
    Ok(summary)
}

fn write_summary(
    out: &mut impl Write,
    summary: &RedriveSummary,
    total: usize,
) -> Result<(), OpsError> {
    let untried = total - summary.redriven - summary.not_redrivable - summary.failed;
    write!(
        out,
        "{} redriven, {} not redrivable, {} failed",
        summary.redriven, summary.not_redrivable, summary.failed
    )?;
    if untried > 0 {
        write!(out, ", {untried} not tried")?;
    }
    writeln!(out)?;
    Ok(())
}
