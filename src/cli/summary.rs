//! What `run`, `watch`, `executions` and `redrive` show: progress, the table or one JSON line per
//! execution as it ends, the closing summary, and the contact sheets they write. The commands' control
//! flow lives in `local.rs`; everything a user reads is here.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use ferrotype::local::{INPUT_BUCKET, OUTPUT_BUCKET};
use ferrotype::report::{write_contact_sheet, ReportRow};
use ferrotype::text::count;
use ferrotype_core::config::Config;
use ferrotype_core::pipeline::{Manifest, ManifestStatus, StatesError};
use ferrotype_executor::{ExecutionRecord, ExecutionStatus};
use indicatif::{ProgressBar, ProgressStyle};

use super::config::ConfigOrigin;

/// How one source ended, for the table, the JSON lines and the report.
pub struct Outcome {
    pub file: String,
    pub key: String,
    pub record: Option<ExecutionRecord>,
    pub manifest: Option<Manifest>,
    /// Why the runner could not execute it at all (the file could not be read, the store failed).
    pub error: Option<String>,
    pub duration: Duration,
    /// The file was the key's current object already, and its execution had ended: nothing ran.
    pub unchanged: bool,
}

impl Outcome {
    /// succeeded, rejected (ended as designed: the execution succeeds and the manifest says why) or
    /// failed.
    pub fn status(&self) -> &'static str {
        match (&self.record, self.manifest.as_ref().map(|m| m.status)) {
            (Some(record), _)
                if record.status == ExecutionStatus::Succeeded
                    && record.input["detail-type"] == "Object Deleted" =>
            {
                "deleted"
            }
            // A newer upload (or deletion) of the key took over while it ran: its own execution
            // records the key, this one removed what it had written.
            (Some(record), _)
                if record.status == ExecutionStatus::Succeeded
                    && record
                        .output
                        .as_ref()
                        .is_some_and(|output| output["outcome"] == "superseded") =>
            {
                "superseded"
            }
            (Some(_), Some(ManifestStatus::Rejected)) => "rejected",
            (Some(record), _) if record.status == ExecutionStatus::Succeeded => "succeeded",
            (None, Some(ManifestStatus::Rejected)) if self.unchanged => "rejected",
            (None, Some(ManifestStatus::Succeeded)) if self.unchanged => "succeeded",
            _ => "failed",
        }
    }

    /// Why it was rejected or failed, in one line: the manifest's error, else the execution's (its
    /// Lambda cause unwrapped to the message), else the runner's.
    pub fn reason(&self) -> String {
        if self.status() == "superseded" {
            return "the key was uploaded again or deleted while it ran; that execution records it"
                .to_owned();
        }
        let text = if let Some(error) = self.manifest.as_ref().and_then(|m| m.error.as_ref()) {
            format!("{}: {}", error.name, error.message)
        } else if let Some((record, error)) = self
            .record
            .as_ref()
            .and_then(|r| Some((r, r.error.as_ref()?)))
        {
            let cause = StatesError {
                error: error.clone(),
                cause: record.cause.clone().unwrap_or_default(),
            };
            format!("{error}: {}", cause.message())
        } else {
            self.error.clone().unwrap_or_default()
        };
        one_line(&text)
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "file": self.file,
            "key": self.key,
            "status": self.status(),
            "execution": self.record.as_ref().map(|r| r.options.execution_arn.clone()),
            "executionStatus": self.record.as_ref().map(|r| status_text(r.status)),
            "error": self.record.as_ref().and_then(|r| r.error.clone()),
            "reason": self.reason(),
            "manifest": self.manifest,
            "durationMs": self.duration.as_millis() as u64,
        })
    }

    fn report_row(&self) -> ReportRow<'_> {
        ReportRow {
            file: &self.file,
            input_bucket: INPUT_BUCKET,
            key: &self.key,
            manifest: self.manifest.as_ref(),
            error: (self.status() != "succeeded").then(|| self.reason()),
            duration_ms: self.duration.as_millis(),
        }
    }
}

/// AWS messages and error chains can span lines; a table row and a terminal want one.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Progress while `run` executes: a bar on the terminal, or with `--json` one line per execution as it
/// ends (in the order they end), so a consumer can follow a long run.
#[derive(Clone)]
pub struct RunProgress {
    json: bool,
    bar: ProgressBar,
}

impl RunProgress {
    pub fn new(total: usize, json: bool) -> RunProgress {
        let bar = if json {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(total as u64).with_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
                )
                .expect("a valid template"),
            )
        };
        RunProgress { json, bar }
    }

    /// One execution ended.
    pub fn ended(&self, outcome: &Outcome) {
        if self.json {
            println!("{}", outcome.json());
        } else {
            self.bar
                .set_message(format!("{} {}", outcome.status(), outcome.file));
            self.bar.inc(1);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// The line that says which configuration a command runs with.
pub fn print_configuration(origin: &ConfigOrigin) {
    println!("Configuration: {origin}");
}

/// Files a run did not upload, said once: hidden files and folders, and the text files that travel with
/// image folders.
pub fn skipped_note(skipped: &[PathBuf]) -> Option<String> {
    const SHOWN: usize = 5;
    if skipped.is_empty() {
        return None;
    }
    let mut names: Vec<String> = skipped
        .iter()
        .take(SHOWN)
        .map(|p| p.display().to_string())
        .collect();
    if skipped.len() > SHOWN {
        names.push(format!("and {} more", skipped.len() - SHOWN));
    }
    Some(format!(
        "Skipped {}: {} (hidden files and folders, .txt and .md files and names that are not UTF-8 are not uploaded).",
        count(skipped.len(), "file"),
        names.join(", ")
    ))
}

/// The end of `run` on a terminal: the table, the tally, what was skipped, where everything is, and
/// what to do about failures.
pub struct RunSummary<'a> {
    pub outcomes: &'a [Outcome],
    pub elapsed: Duration,
    pub skipped: &'a [PathBuf],
    pub data_dir: &'a Path,
    pub report: &'a Path,
}

impl RunSummary<'_> {
    pub fn print(&self) {
        print_table(self.outcomes);
        let seconds = self.elapsed.as_secs_f64();
        let tally = |status: &str| {
            self.outcomes
                .iter()
                .filter(|o| o.status() == status)
                .count()
        };
        let failed = tally("failed");
        // Only another process uploading the same keys meanwhile makes a run's execution superseded.
        let superseded = match tally("superseded") {
            0 => String::new(),
            n => format!(", {n} superseded"),
        };
        println!(
            "\n{} in {seconds:.1} s ({:.0} per minute): {} succeeded, {} rejected{superseded}, {failed} failed.",
            count(self.outcomes.len(), "image"),
            self.outcomes.len() as f64 / seconds.max(0.001) * 60.0,
            tally("succeeded"),
            tally("rejected"),
        );
        if let Some(note) = skipped_note(self.skipped) {
            println!("{note}");
        }
        println!(
            "Outputs:  {}",
            self.data_dir.join("buckets").join(OUTPUT_BUCKET).display()
        );
        println!("Report:   {}", self.report.display());
        println!("Inspect:  ferrotype executions show <execution>   (ferrotype executions list)");
        if failed > 0 {
            println!(
                "{} failed: `ferrotype executions show <execution>` shows where; \
                 `ferrotype redrive --all-failed` resumes them from the failed state.",
                count(failed, "execution")
            );
        }
    }
}

fn print_table(outcomes: &[Outcome]) {
    let width = outcomes
        .iter()
        .map(|o| o.file.chars().count())
        .max()
        .unwrap_or(4)
        .clamp(4, 60);
    println!(
        "{:<width$}  {:<9}  {:>8}  {:>7}  details",
        "file", "status", "variants", "ms"
    );
    for outcome in outcomes {
        let variants = outcome.manifest.as_ref().map_or(0, |m| m.variants.len());
        let details = match outcome.status() {
            "succeeded" if outcome.unchanged => {
                "unchanged since the last run (not run again)".to_owned()
            }
            "succeeded" => outcome
                .manifest
                .as_ref()
                .map(|m| {
                    m.variants
                        .iter()
                        .map(|v| format!("{} {}×{}", v.name, v.width, v.height))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default(),
            _ => outcome.reason(),
        };
        println!(
            "{:<width$}  {:<9}  {:>8}  {:>7}  {}",
            outcome.file,
            outcome.status(),
            variants,
            outcome.duration.as_millis(),
            details
        );
    }
}

/// One line per execution `watch` ran.
pub fn print_watch_line(outcome: &Outcome) {
    let status = outcome.status();
    let reason = outcome.reason();
    let detail = if status == "succeeded" || reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    println!(
        "{status:<9} {} ({} ms){detail}",
        outcome.file,
        outcome.duration.as_millis()
    );
}

/// A contact sheet under `<data dir>/reports/`, with a name no other report has (UTC time to the
/// millisecond, then a counter if another run took it in the same millisecond), and `latest.html`
/// refreshed beside it whenever it is written.
pub struct ReportFile {
    path: PathBuf,
    latest: PathBuf,
    title: String,
}

impl ReportFile {
    /// Reserves the name (`run-2026-11-28T23-15-01.123Z.html`) by creating the file.
    pub fn create(data_dir: &Path, kind: &str, title: &str) -> anyhow::Result<ReportFile> {
        let dir = data_dir.join("reports");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let now = time::OffsetDateTime::now_utc();
        let stamp = format!(
            "{:04}-{:02}-{:02}T{:02}-{:02}-{:02}.{:03}Z",
            now.year(),
            u8::from(now.month()),
            now.day(),
            now.hour(),
            now.minute(),
            now.second(),
            now.millisecond()
        );
        for attempt in 1u32.. {
            let name = match attempt {
                1 => format!("{kind}-{stamp}.html"),
                n => format!("{kind}-{stamp}-{n}.html"),
            };
            let path = dir.join(name);
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(_) => {
                    return Ok(ReportFile {
                        path: std::path::absolute(&path).unwrap_or(path),
                        latest: dir.join("latest.html"),
                        title: title.to_owned(),
                    })
                }
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => {
                    return Err(err).with_context(|| format!("cannot create {}", path.display()))
                }
            }
        }
        unreachable!("the counter is unbounded")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// (Re)writes the sheet and `latest.html`.
    pub fn write(&self, config: &Config, outcomes: &[Outcome]) -> anyhow::Result<()> {
        let rows: Vec<ReportRow<'_>> = outcomes.iter().map(Outcome::report_row).collect();
        for path in [&self.path, &self.latest] {
            write_contact_sheet(path, &self.title, config, &rows)
                .with_context(|| format!("cannot write the report {}", path.display()))?;
        }
        Ok(())
    }
}

pub fn status_text(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Running => "RUNNING",
        ExecutionStatus::Succeeded => "SUCCEEDED",
        ExecutionStatus::Failed => "FAILED",
        ExecutionStatus::TimedOut => "TIMED_OUT",
        ExecutionStatus::Aborted => "ABORTED",
    }
}

/// `2026-11-28 23:15:01`: fixed width, so the column lines up.
fn started_text(record: &ExecutionRecord) -> String {
    let date = record.start_date.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        date.hour(),
        date.minute(),
        date.second()
    )
}

/// `executions list`: aligned columns, newest first.
pub fn print_execution_list(records: &[ExecutionRecord], dir: &Path) {
    if records.is_empty() {
        println!("No executions in {}.", dir.display());
        return;
    }
    let name_width = records
        .iter()
        .map(|r| r.options.name.chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    println!(
        "{:<9}  {:<19}  {:>8}  {:<name_width$}  error",
        "status", "started (UTC)", "redrives", "name"
    );
    for record in records {
        println!(
            "{:<9}  {:<19}  {:>8}  {:<name_width$}  {}",
            status_text(record.status),
            started_text(record),
            record.redrive_count,
            record.options.name,
            record.error.as_deref().unwrap_or("")
        );
    }
}

/// `executions show`: the console's view, or the AWS-format history as JSON.
pub fn print_execution(record: &ExecutionRecord, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "events": record.history }))?
        );
        return Ok(());
    }
    println!(
        "{}  {}",
        status_text(record.status),
        record.options.execution_arn
    );
    println!("{}", record.history_table());
    if let Some(error) = &record.error {
        let cause = StatesError {
            error: error.clone(),
            cause: record.cause.clone().unwrap_or_default(),
        };
        println!("Error: {error}\nCause: {}", cause.message());
    }
    Ok(())
}

/// One line per redriven execution.
pub fn print_redrive_line(outcome: &Outcome) {
    match &outcome.record {
        Some(record) => {
            let detail = if record.status == ExecutionStatus::Succeeded {
                String::new()
            } else {
                format!(": {}", outcome.reason())
            };
            println!(
                "{:<9}  {} (redrive {}){detail}",
                status_text(record.status),
                record.options.name,
                record.redrive_count,
            );
        }
        None => println!("{:<9}  {}: {}", "refused", outcome.file, outcome.reason()),
    }
}

pub fn print_redrive_summary(outcomes: &[Outcome], report: &Path) {
    let succeeded = outcomes
        .iter()
        .filter(|o| {
            o.record
                .as_ref()
                .is_some_and(|r| r.status == ExecutionStatus::Succeeded)
        })
        .count();
    if outcomes.len() > 1 {
        println!(
            "{} redriven: {succeeded} succeeded, {} did not.",
            count(outcomes.len(), "execution"),
            outcomes.len() - succeeded
        );
    }
    println!("Report:   {}", report.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipped_files_are_listed_once_and_briefly() {
        assert_eq!(skipped_note(&[]), None);
        let note = skipped_note(&[PathBuf::from("s/README.txt")]).unwrap();
        assert!(note.starts_with("Skipped 1 file: s/README.txt ("), "{note}");
        let many: Vec<PathBuf> = (0..7).map(|i| PathBuf::from(format!(".{i}"))).collect();
        let note = skipped_note(&many).unwrap();
        assert!(
            note.contains("7 files: .0, .1, .2, .3, .4, and 2 more"),
            "{note}"
        );
    }

    #[test]
    fn reasons_are_one_line_and_unwrap_the_lambda_cause() {
        let outcome = Outcome {
            file: "a.jpg".into(),
            key: "uploads/a.jpg".into(),
            record: None,
            manifest: None,
            error: Some("cannot read a.jpg:\n  permission denied".into()),
            duration: Duration::ZERO,
            unchanged: false,
        };
        assert_eq!(outcome.reason(), "cannot read a.jpg: permission denied");
        assert_eq!(outcome.status(), "failed");
    }

    #[test]
    fn an_execution_a_newer_upload_took_over_is_superseded_not_succeeded() {
        let record = |outcome: &str| ExecutionRecord {
            status: ExecutionStatus::Succeeded,
            output: Some(serde_json::json!({"status": "succeeded", "outcome": outcome})),
            stop_date: Some(time::OffsetDateTime::UNIX_EPOCH),
            ..ExecutionRecord::started(
                ferrotype_executor::ExecutionOptions::local("Pipeline", "a"),
                serde_json::json!({"detail-type": "Object Created"}),
                time::OffsetDateTime::UNIX_EPOCH,
            )
        };
        let outcome = |record| Outcome {
            file: "a.jpg".into(),
            key: "uploads/a.jpg".into(),
            record: Some(record),
            manifest: None,
            error: None,
            duration: Duration::ZERO,
            unchanged: false,
        };
        let superseded = outcome(record("superseded"));
        assert_eq!(superseded.status(), "superseded");
        assert!(superseded.reason().contains("uploaded again or deleted"));
        assert_eq!(outcome(record("recorded")).status(), "succeeded");
    }
}
