//! `ferrotype aws executions list|show`: the executions of the deployed state machine.

use std::io::Write;
use std::time::Duration;

use aws_sdk_sfn::types::ExecutionStatus;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::error::OpsError;
use crate::history::{fetch_history, timestamp};

/// What `executions list` shows and `redrive --all-failed` acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionSummary {
    pub execution_arn: String,
    pub name: String,
    pub status: String,
    pub start: OffsetDateTime,
    pub stop: Option<OffsetDateTime>,
    pub redrive_count: u32,
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE (filtered by AWS).
    pub status: Option<ExecutionStatus>,
    /// Only executions started at or after this instant (filtered here; AWS lists newest first, so
    /// paging stops at the first older one).
    pub started_after: Option<OffsetDateTime>,
    /// Stop after this many executions, so a busy state machine cannot fill memory.
    pub limit: usize,
}

/// The statuses ListExecutions accepts as a filter, case-insensitively.
pub fn parse_status(text: &str) -> Result<ExecutionStatus, OpsError> {
    let upper = text.trim().to_ascii_uppercase().replace('-', "_");
    let known = ExecutionStatus::values();
    if known.contains(&upper.as_str()) {
        Ok(ExecutionStatus::from(upper.as_str()))
    } else {
        Err(OpsError::Usage(format!(
            "unknown execution status {text:?}: expected one of {}",
            known.join(", ")
        )))
    }
}

/// Parses a look-back window such as `90s`, `30m`, `24h` or `7d`.
pub fn parse_since(text: &str) -> Result<Duration, OpsError> {
    let invalid = || {
        OpsError::Usage(format!(
            "invalid duration {text:?}: expected e.g. 30m, 24h or 7d"
        ))
    };
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(invalid)?;
    let (number, unit) = text.split_at(split);
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let seconds_per_unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => return Err(invalid()),
    };
    number
        .checked_mul(seconds_per_unit)
        .map(Duration::from_secs)
        .ok_or_else(invalid)
}

/// The start of a `--since` window ending now, if one is given.
pub fn started_within(since: Option<&str>) -> Result<Option<OffsetDateTime>, OpsError> {
    since
        .map(|text| Ok(OffsetDateTime::now_utc() - parse_since(text)?))
        .transpose()
}

/// ListExecutions, page by page, newest first, until the window or the limit is reached.
/// Returns the executions and whether the limit cut the list short.
pub async fn list_executions(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
    filter: &ListFilter,
) -> Result<(Vec<ExecutionSummary>, bool), OpsError> {
    let mut pages = sfn
        .list_executions()
        .state_machine_arn(state_machine_arn)
        .set_status_filter(filter.status.clone())
        .max_results(1000)
        .into_paginator()
        .send();
    let mut found = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|err| OpsError::from_sdk("ListExecutions", err))?;
        for item in page.executions() {
            let start = timestamp(item.start_date());
            if filter.started_after.is_some_and(|after| start < after) {
                return Ok((found, false));
            }
            if found.len() == filter.limit {
                return Ok((found, true));
            }
            found.push(ExecutionSummary {
                execution_arn: item.execution_arn().to_owned(),
                name: item.name().to_owned(),
                status: item.status().as_str().to_owned(),
                start,
                stop: item.stop_date().map(timestamp),
                redrive_count: item
                    .redrive_count()
                    .map_or(0, |count| u32::try_from(count).unwrap_or(0)),
            });
        }
    }
    Ok((found, false))
}

/// One execution per line: status, start, duration, redrives, name, ARN.
pub fn write_execution_list(
    out: &mut impl Write,
    executions: &[ExecutionSummary],
    truncated: bool,
) -> Result<(), OpsError> {
    if executions.is_empty() {
        writeln!(out, "no executions")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<15}  {:<20}  {:>9}  {:>8}  {:<40}  ARN",
        "STATUS", "STARTED", "DURATION", "REDRIVES", "NAME"
    )?;
    for execution in executions {
        let started = execution
            .start
            .replace_nanosecond(0)
            .unwrap_or(execution.start)
            .format(&Rfc3339)
            .unwrap_or_default();
        let duration = execution.stop.map_or_else(
            || "-".to_owned(),
            |stop| format_seconds((stop - execution.start).whole_seconds()),
        );
        writeln!(
            out,
            "{:<15}  {:<20}  {:>9}  {:>8}  {:<40}  {}",
            execution.status,
            started,
            duration,
            execution.redrive_count,
            execution.name,
            execution.execution_arn
        )?;
    }
    writeln!(out, "{} execution(s)", executions.len())?;
    if truncated {
        writeln!(
            out,
            "(stopped at --limit {}; there are more)",
            executions.len()
        )?;
    }
    Ok(())
}

fn format_seconds(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m{:02}s", s / 60, s % 60),
        s => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `executions show ARN`: the state-by-state table of the executor's viewer, from the AWS history.
pub async fn show_execution(
    sfn: &aws_sdk_sfn::Client,
    execution_arn: &str,
    out: &mut impl Write,
) -> Result<(), OpsError> {
    let events = fetch_history(sfn, execution_arn).await?;
    writeln!(out, "{execution_arn}")?;
    out.write_all(ferrotype_executor::render_table(&events).as_bytes())?;
    Ok(())
}

/// `executions show ARN` of an Express execution: the same table, from its log events.
pub async fn show_express_execution(
    logs: &aws_sdk_cloudwatchlogs::Client,
    log_group: &str,
    execution_arn: &str,
    out: &mut impl Write,
) -> Result<(), OpsError> {
    let events = crate::express::history(logs, log_group, execution_arn).await?;
    writeln!(out, "{execution_arn}")?;
    out.write_all(ferrotype_executor::render_table(&events).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_windows() {
        assert_eq!(parse_since("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_since("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_since("24h").unwrap(), Duration::from_secs(86_400));
        assert_eq!(parse_since(" 7d ").unwrap(), Duration::from_secs(604_800));
        assert_eq!(parse_since("2w").unwrap(), Duration::from_secs(1_209_600));
        for bad in [
            "",
            "h",
            "24",
            "24x",
            "-1h",
            "1.5h",
            "99999999999999999999d",
            "18446744073709551615w",
        ] {
            let err = parse_since(bad).unwrap_err();
            assert!(
                err.to_string().starts_with("invalid duration"),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn statuses() {
        assert_eq!(parse_status("failed").unwrap(), ExecutionStatus::Failed);
        assert_eq!(
            parse_status("timed-out").unwrap(),
            ExecutionStatus::TimedOut
        );
        assert_eq!(
            parse_status("PENDING_REDRIVE").unwrap(),
            ExecutionStatus::PendingRedrive
        );
        let err = parse_status("broken").unwrap_err().to_string();
        assert!(err.contains("FAILED") && err.contains("RUNNING"), "{err}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(format_seconds(5), "5s");
        assert_eq!(format_seconds(95), "1m35s");
        assert_eq!(format_seconds(7_380), "2h03m");
    }
}
