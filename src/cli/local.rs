//! `ferrotype run`, `watch`, `executions` and `redrive`: the pipeline on this machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use ferrotype::local::{LocalPipeline, LocalSettings, INPUT_BUCKET};
use ferrotype::report::{write_contact_sheet, ReportRow};
use ferrotype_core::config::Config;
use ferrotype_core::pipeline::{Manifest, ManifestStatus};
use ferrotype_executor::{ExecutionRecord, ExecutionStatus};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::Semaphore;

/// Where the local pipeline keeps its buckets, executions and reports, and what it runs.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// The data directory: buckets/ (input, output), executions/, reports/.
    #[arg(
        long,
        default_value = ".ferrotype",
        env = "FERROTYPE_DATA_DIR",
        global = true
    )]
    pub data_dir: PathBuf,
    /// A processing configuration other than the shipped ferrotype.json.
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// A state machine definition other than the shipped statemachine/pipeline.asl.json.
    #[arg(long, global = true)]
    pub definition: Option<PathBuf>,
}

impl LocalArgs {
    async fn start(&self) -> anyhow::Result<LocalPipeline> {
        let mut settings = LocalSettings::new(&self.data_dir)?;
        if let Some(path) = &self.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            settings.config =
                Config::from_json(&text).with_context(|| path.display().to_string())?;
        }
        if let Some(path) = &self.definition {
            settings.definition = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        LocalPipeline::start(settings).await
    }
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Image files or folders (walked recursively); each file is uploaded under the profile prefix,
    /// keeping its path relative to the folder given.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// The key prefix uploads go under (default: the first profile's prefix).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Executions running at once.
    #[arg(long, default_value_t = 2)]
    pub concurrency: usize,
    /// One JSON object per execution instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The folder to watch: new or replaced files start executions.
    pub dir: PathBuf,
    #[arg(long)]
    pub prefix: Option<String>,
    /// How often the folder is scanned.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Stop after this many executions (default: run until interrupted).
    #[arg(long)]
    pub max_executions: Option<usize>,
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Subcommand)]
pub enum ExecutionsCommand {
    /// The stored executions, newest first.
    List {
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// One execution state by state, like the console (name, ARN or a unique name prefix).
    Show {
        id: String,
        /// The AWS-format history events as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        local: LocalArgs,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusFilter {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
}

impl From<StatusFilter> for ExecutionStatus {
    fn from(filter: StatusFilter) -> Self {
        match filter {
            StatusFilter::Running => ExecutionStatus::Running,
            StatusFilter::Succeeded => ExecutionStatus::Succeeded,
            StatusFilter::Failed => ExecutionStatus::Failed,
            StatusFilter::TimedOut => ExecutionStatus::TimedOut,
            StatusFilter::Aborted => ExecutionStatus::Aborted,
        }
    }
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Executions to redrive (name, ARN or unique name prefix).
    pub ids: Vec<String>,
    /// Every stored execution that failed, timed out or was aborted.
    #[arg(long, conflicts_with = "ids")]
    pub all_failed: bool,
    #[command(flatten)]
    pub local: LocalArgs,
}

/// How one source ended, for the table, the JSON lines and the report.
struct Outcome {
    file: String,
    key: String,
    record: Option<ExecutionRecord>,
    manifest: Option<Manifest>,
    error: Option<String>,
    duration: Duration,
}

impl Outcome {
    /// succeeded, rejected (ended as designed) or failed.
    fn status(&self) -> &'static str {
        match (&self.record, self.manifest.as_ref().map(|m| m.status)) {
            (Some(record), _) if record.status == ExecutionStatus::Succeeded => "succeeded",
            (Some(_), Some(ManifestStatus::Rejected)) => "rejected",
            _ => "failed",
        }
    }

    fn reason(&self) -> String {
        if let Some(error) = self.manifest.as_ref().and_then(|m| m.error.as_ref()) {
            return format!("{}: {}", error.name, error.message);
        }
        if let Some(record) = &self.record {
            if let Some(error) = &record.error {
                return format!("{error}: {}", record.cause.as_deref().unwrap_or(""));
            }
        }
        self.error.clone().unwrap_or_default()
    }
}

pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let files = collect_files(&args.paths)?;
    if files.is_empty() {
        bail!("no files found in {:?}", args.paths);
    }
    let pipeline = Arc::new(args.local.start().await?);
    let prefix = upload_prefix(pipeline.config(), args.prefix.as_deref())?;
    let started = Instant::now();

    let progress = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(files.len() as u64).with_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} {msg}",
            )
            .expect("a valid template"),
        )
    };
    let limit = Arc::new(Semaphore::new(args.concurrency.max(1)));
    let mut tasks = Vec::new();
    for (file, relative) in files {
        let pipeline = pipeline.clone();
        let limit = limit.clone();
        let progress = progress.clone();
        let key = format!("{prefix}{relative}");
        tasks.push(tokio::spawn(async move {
            let _permit = limit
                .acquire_owned()
                .await
                .expect("the semaphore is never closed");
            let outcome = process(&pipeline, &file, key).await;
            progress.set_message(format!("{} {}", outcome.status(), outcome.file));
            progress.inc(1);
            outcome
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.context("an execution task panicked")?);
    }
    progress.finish_and_clear();

    let report = write_report(pipeline.data_dir(), &outcomes)?;
    if args.json {
        for outcome in &outcomes {
            println!("{}", serde_json::to_string(&outcome_json(outcome))?);
        }
    } else {
        print_table(&outcomes);
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "\n{} images in {:.1} s ({:.0} per minute).",
            outcomes.len(),
            elapsed,
            outcomes.len() as f64 / elapsed.max(0.001) * 60.0
        );
        println!(
            "Outputs:   {}",
            pipeline
                .data_dir()
                .join("buckets")
                .join(ferrotype::local::OUTPUT_BUCKET)
                .display()
        );
        println!("Report:    {}", report.display());
        println!("Inspect:   ferrotype executions show <execution>   (ferrotype executions list)");
    }
    let all_as_designed = outcomes.iter().all(|o| o.status() != "failed");
    match Arc::try_unwrap(pipeline) {
        Ok(pipeline) => pipeline.shutdown().await,
        Err(_) => unreachable!("every task has finished"),
    }
    Ok(all_as_designed)
}

/// Upload one file, execute, read the manifest.
async fn process(pipeline: &LocalPipeline, file: &Path, key: String) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        file: file.display().to_string(),
        key: key.clone(),
        record: None,
        manifest: None,
        error: None,
        duration: Duration::ZERO,
    };
    let result = async {
        let bytes = tokio::fs::read(file)
            .await
            .with_context(|| format!("cannot read {}", file.display()))?;
        let event = pipeline.upload(&key, bytes).await?;
        let record = pipeline.execute(&event).await?;
        let manifest = pipeline.manifest(&key).await?;
        anyhow::Ok((record, manifest))
    }
    .await;
    match result {
        Ok((record, manifest)) => {
            outcome.record = Some(record);
            outcome.manifest = manifest;
        }
        Err(err) => outcome.error = Some(format!("{err:#}")),
    }
    outcome.duration = started.elapsed();
    outcome
}

pub async fn watch(args: WatchArgs) -> anyhow::Result<bool> {
    if !args.dir.is_dir() {
        bail!("{} is not a folder", args.dir.display());
    }
    let pipeline = args.local.start().await?;
    let prefix = upload_prefix(pipeline.config(), args.prefix.as_deref())?;
    println!(
        "Watching {} (uploads under {prefix}); outputs in {}. Ctrl-C to stop.",
        args.dir.display(),
        pipeline.data_dir().join("buckets").display()
    );
    let mut seen: BTreeMap<PathBuf, (SystemTime, u64)> = BTreeMap::new();
    let mut executions = 0;
    let mut all_as_designed = true;
    loop {
        for (file, relative) in collect_files(std::slice::from_ref(&args.dir))? {
            let Ok(meta) = std::fs::metadata(&file) else {
                continue;
            };
            let stamp = (
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                meta.len(),
            );
            if seen.get(&file) == Some(&stamp) {
                continue;
            }
            // A file still being written changes between scans: wait until it is stable.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let Ok(again) = std::fs::metadata(&file) else {
                continue;
            };
            if (
                again.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                again.len(),
            ) != stamp
            {
                continue;
            }
            seen.insert(file.clone(), stamp);
            let outcome = process(&pipeline, &file, format!("{prefix}{relative}")).await;
            all_as_designed &= outcome.status() != "failed";
            println!(
                "{:<9} {} ({} ms) {}",
                outcome.status(),
                outcome.file,
                outcome.duration.as_millis(),
                outcome.reason()
            );
            executions += 1;
            if args.max_executions.is_some_and(|max| executions >= max) {
                pipeline.shutdown().await;
                return Ok(all_as_designed);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(args.interval_ms)) => {}
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    pipeline.shutdown().await;
    Ok(all_as_designed)
}

pub async fn executions(command: ExecutionsCommand) -> anyhow::Result<bool> {
    match command {
        ExecutionsCommand::List { status, local } => {
            let store = ferrotype::store::ExecutionStore::open(local.data_dir.join("executions"))?;
            let records = store.list_with_status(status.map(Into::into))?;
            if records.is_empty() {
                println!("No executions in {}.", store.dir().display());
            }
            println!(
                "{:<12} {:<25} {:>8}  {:<58} error",
                "status", "started (UTC)", "redrives", "name"
            );
            for record in records {
                println!(
                    "{:<12} {:<25} {:>8}  {:<58} {}",
                    status_text(record.status),
                    record
                        .start_date
                        .format(&time::format_description::well_known::Rfc3339)?,
                    record.redrive_count,
                    record.options.name,
                    record.error.as_deref().unwrap_or("")
                );
            }
            Ok(true)
        }
        ExecutionsCommand::Show { id, json, local } => {
            let store = ferrotype::store::ExecutionStore::open(local.data_dir.join("executions"))?;
            let record = store.load(&id)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({ "events": record.history }))?
                );
            } else {
                println!(
                    "{}  {}",
                    status_text(record.status),
                    record.options.execution_arn
                );
                println!("{}", record.history_table());
                if let Some(error) = &record.error {
                    println!(
                        "Error: {error}\nCause: {}",
                        record.cause.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(true)
        }
    }
}

pub async fn redrive(args: RedriveArgs) -> anyhow::Result<bool> {
    let pipeline = args.local.start().await?;
    let ids: Vec<String> = if args.all_failed {
        pipeline
            .store()
            .list()?
            .into_iter()
            .filter(|r| {
                matches!(
                    r.status,
                    ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
                )
            })
            // A rejection is the designed end of a bad upload: redriving it cannot change the answer.
            .filter(|r| {
                !r.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("ImageRejected."))
            })
            .map(|r| r.options.name)
            .collect()
    } else {
        args.ids.clone()
    };
    if ids.is_empty() {
        println!("Nothing to redrive.");
    }
    let (mut succeeded, mut failed) = (0, 0);
    for id in &ids {
        match pipeline.redrive(id).await {
            Ok(record) => {
                println!(
                    "{:<10} {} (redrive {}){}",
                    status_text(record.status),
                    record.options.name,
                    record.redrive_count,
                    record
                        .error
                        .as_deref()
                        .map(|e| format!(": {e}"))
                        .unwrap_or_default()
                );
                if record.status == ExecutionStatus::Succeeded {
                    succeeded += 1;
                } else {
                    failed += 1;
                }
            }
            Err(err) => {
                println!("refused    {id}: {err:#}");
                failed += 1;
            }
        }
    }
    if ids.len() > 1 {
        println!(
            "{} redriven: {succeeded} succeeded, {failed} did not.",
            ids.len()
        );
    }
    pipeline.shutdown().await;
    Ok(failed == 0)
}

fn status_text(status: ExecutionStatus) -> &'static str {
    match status {
        ExecutionStatus::Running => "RUNNING",
        ExecutionStatus::Succeeded => "SUCCEEDED",
        ExecutionStatus::Failed => "FAILED",
        ExecutionStatus::TimedOut => "TIMED_OUT",
        ExecutionStatus::Aborted => "ABORTED",
    }
}

fn upload_prefix(config: &Config, prefix: Option<&str>) -> anyhow::Result<String> {
    let prefix = prefix.unwrap_or(&config.profiles[0].prefix).to_owned();
    if config.profile_for_key(&format!("{prefix}x")).is_none() {
        bail!(
            "uploads under {prefix:?} match no profile ({})",
            config
                .profiles
                .iter()
                .map(|p| p.prefix.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(prefix)
}

/// Files under the given paths with the key suffix each gets: a folder's files keep their path relative
/// to it; a file given directly keeps its name. Hidden files and folders are skipped.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            walk(path, path, &mut files)?;
        } else if path.is_file() {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            files.push((path.clone(), name));
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    files.sort();
    Ok(files)
}

fn walk(root: &Path, dir: &Path, files: &mut Vec<(PathBuf, String)>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden {
            continue;
        }
        if path.is_dir() {
            walk(root, &path, files)?;
        } else if path.is_file() && !is_sidecar(&path) {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let key = relative
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            files.push((path.clone(), key));
        }
    }
    Ok(())
}

/// Text files that travel with image folders (the samples' README, licences) are not uploads.
fn is_sidecar(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "md" | "txt"))
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
            "succeeded" => outcome
                .manifest
                .as_ref()
                .map(|m| {
                    m.variants
                        .iter()
                        .map(|v| format!("{} {}x{}", v.name, v.width, v.height))
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

fn outcome_json(outcome: &Outcome) -> serde_json::Value {
    serde_json::json!({
        "file": outcome.file,
        "key": outcome.key,
        "status": outcome.status(),
        "execution": outcome.record.as_ref().map(|r| r.options.execution_arn.clone()),
        "executionStatus": outcome.record.as_ref().map(|r| status_text(r.status)),
        "error": outcome.record.as_ref().and_then(|r| r.error.clone()),
        "reason": outcome.reason(),
        "manifest": outcome.manifest,
        "durationMs": outcome.duration.as_millis() as u64,
    })
}

fn write_report(data_dir: &Path, outcomes: &[Outcome]) -> anyhow::Result<PathBuf> {
    let dir = data_dir.join("reports");
    std::fs::create_dir_all(&dir)?;
    let stamp = time::OffsetDateTime::now_utc();
    let name = format!(
        "run-{:04}{:02}{:02}-{:02}{:02}{:02}.html",
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second()
    );
    let rows: Vec<ReportRow<'_>> = outcomes
        .iter()
        .map(|o| ReportRow {
            file: &o.file,
            input_bucket: INPUT_BUCKET,
            key: &o.key,
            manifest: o.manifest.as_ref(),
            error: o
                .error
                .as_deref()
                .or(o.record.as_ref().and_then(|r| r.error.as_deref())),
            duration_ms: o.duration.as_millis(),
        })
        .collect();
    let path = dir.join(name);
    write_contact_sheet(&path, "Ferrotype run", &rows)?;
    std::fs::copy(&path, dir.join("latest.html"))?;
    Ok(std::path::absolute(&path).unwrap_or(path))
}
