//! `ferrotype run`, `watch`, `executions` and `redrive`: the pipeline on this machine.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context as _};
use clap::error::ErrorKind;
use clap::{Args, Subcommand, ValueEnum};
use ferrotype::local::{CurrentObject, LocalPipeline, LocalSettings};
use ferrotype_core::config::Config;
use ferrotype_core::event::{ObjectEvent, VersionIdentity};
use ferrotype_core::pipeline::{Manifest, ManifestStatus};
use ferrotype_executor::{ExecutionRecord, ExecutionStatus};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::config::{load_config, ConfigOrigin};
use super::output::UsageError;
use super::summary::{self, Outcome, ReportFile, RunProgress, RunSummary};

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
    /// The processing configuration (default: ./ferrotype.json, else the built-in one).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// A state machine definition other than the built-in statemachine/pipeline.asl.json.
    #[arg(long, global = true, value_name = "PATH")]
    pub definition: Option<PathBuf>,
    /// Simulate the account's Lambda concurrency limit: an invocation beyond N running at once is
    /// throttled as Lambda throttles it (Lambda.TooManyRequestsException) and the definition's retrier
    /// waits it out, as in AWS (default: no limit).
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub lambda_concurrency: Option<u32>,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Only objects under this key prefix of the input bucket (default: all of it).
    #[arg(long, default_value = "")]
    pub prefix: String,
    #[command(flatten)]
    pub local: LocalArgs,
}

/// `ferrotype backfill`: statemachine/backfill.asl.json over the local input bucket.
pub async fn backfill(args: BackfillArgs) -> anyhow::Result<bool> {
    let (pipeline, config_origin) = args.local.start().await?;
    summary::print_configuration(&config_origin);
    let pipeline = Arc::new(pipeline);
    let started = Instant::now();
    let record = ferrotype::backfill::backfill(pipeline.clone(), &args.prefix).await?;
    let map_runs = &record.map_runs;
    let succeeded: usize = map_runs.iter().map(|run| run.succeeded).sum();
    let failed: usize = map_runs.iter().map(|run| run.failed).sum();
    println!(
        "Backfill {} {} in {:.1} s: {succeeded} batches succeeded, {failed} failed (10 objects per batch).",
        record.options.name,
        summary::status_text(record.status),
        started.elapsed().as_secs_f64()
    );
    if let Some(error) = &record.error {
        println!("  {error}: {}", record.cause.as_deref().unwrap_or_default());
    }
    println!(
        "Results:  {}",
        pipeline
            .data_dir()
            .join("buckets")
            .join(ferrotype::local::OUTPUT_BUCKET)
            .join(ferrotype::backfill::RESULTS_PREFIX)
            .display()
    );
    println!(
        "Inspect:  ferrotype executions show {}",
        record.options.name
    );
    let ok = record.status == ExecutionStatus::Succeeded;
    match Arc::try_unwrap(pipeline) {
        Ok(pipeline) => pipeline.shutdown().await,
        Err(_) => unreachable!("the backfill has ended"),
    }
    Ok(ok)
}

impl LocalArgs {
    /// Starts the local pipeline with the configuration the command line, the current folder or the
    /// binary gives, and says which one that is.
    async fn start(&self) -> anyhow::Result<(LocalPipeline, ConfigOrigin)> {
        let mut settings = LocalSettings::new(&self.data_dir)?;
        let loaded = load_config(self.config.as_deref())?;
        settings.config = loaded.config;
        settings.lambda_concurrency = self.lambda_concurrency.map(|n| n as usize);
        if let Some(path) = &self.definition {
            settings.definition = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
        }
        Ok((LocalPipeline::start(settings).await?, loaded.origin))
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
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// One JSON object per execution, printed as it ends, instead of the table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The folder to watch: new or replaced files start executions.
    pub dir: PathBuf,
    /// The key prefix uploads go under (default: the first profile's prefix).
    #[arg(long)]
    pub prefix: Option<String>,
    /// How often the folder is scanned, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub interval_ms: u64,
    /// Stop after this many executions (default: run until interrupted).
    #[arg(long)]
    pub max_executions: Option<usize>,
    /// Executions running at once. Each file is uploaded as soon as it is stable, whatever is still
    /// running, so a file replaced mid-execution overlaps its earlier execution as in AWS (which ends
    /// `superseded`).
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Also process the files already in the folder when watching starts (as a bucket's existing
    /// objects start nothing until uploaded again, they are otherwise left alone).
    #[arg(long)]
    pub initial: bool,
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, Subcommand)]
pub enum ExecutionsCommand {
    /// The stored executions, newest first.
    List {
        /// Only executions with this status.
        #[arg(long, value_enum)]
        status: Option<StatusFilter>,
        #[command(flatten)]
        local: LocalArgs,
    },
    /// One execution state by state, like the console (name, ARN or a unique name prefix).
    Show {
        /// The execution: its name, its ARN or a prefix of its name that only it has.
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
    #[arg(required_unless_present = "all_failed")]
    pub ids: Vec<String>,
    /// Every stored execution that failed, timed out or was aborted.
    #[arg(long, conflicts_with = "ids")]
    pub all_failed: bool,
    #[command(flatten)]
    pub local: LocalArgs,
}

pub async fn run(args: RunArgs) -> anyhow::Result<bool> {
    let Collected { files, skipped } = collect_files(&args.paths)?;
    if files.is_empty() {
        bail!(
            "no images to upload in {}{}",
            args.paths
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            summary::skipped_note(&skipped)
                .map(|note| format!(" ({note})"))
                .unwrap_or_default()
        );
    }
    let (pipeline, config_origin) = args.local.start().await?;
    let pipeline = Arc::new(pipeline);
    let prefix = upload_prefix(pipeline.config(), args.prefix.as_deref())?;
    let started = Instant::now();
    if !args.json {
        summary::print_configuration(&config_origin);
    }

    let progress = RunProgress::new(files.len(), args.json);
    let limit = Arc::new(Semaphore::new(usize::from(args.concurrency)));
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
            progress.ended(&outcome);
            outcome
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.context("an execution task panicked")?);
    }
    progress.finish();

    let report = ReportFile::create(pipeline.data_dir(), "run", "Ferrotype run")?;
    report.write(pipeline.config(), &outcomes)?;
    if args.json {
        if let Some(note) = summary::skipped_note(&skipped) {
            eprintln!("{note}");
        }
    } else {
        RunSummary {
            outcomes: &outcomes,
            elapsed: started.elapsed(),
            skipped: &skipped,
            data_dir: pipeline.data_dir(),
            report: report.path(),
        }
        .print();
    }
    let all_as_designed = outcomes.iter().all(|o| o.status() != "failed");
    match Arc::try_unwrap(pipeline) {
        Ok(pipeline) => pipeline.shutdown().await,
        Err(_) => unreachable!("every task has finished"),
    }
    Ok(all_as_designed)
}

/// What a file asks of the pipeline, decided (and uploaded) when the file is seen.
enum Work {
    /// The key's current object has these bytes already, and a manifest that describes them.
    Unchanged(Manifest),
    /// The key's current object has these bytes already; its execution was interrupted.
    Redrive(String),
    /// An execution for this event: a new upload or a deletion, or a current object never run.
    Execute(ObjectEvent),
}

/// What running a [`Work`] left: the execution (none if nothing ran) and the key's manifest.
type Ran = (Option<ExecutionRecord>, Option<Manifest>);

/// Makes `file` the current object of `key`, unless it is already (then nothing is uploaded).
async fn upload(pipeline: &LocalPipeline, file: &Path, key: &str) -> anyhow::Result<Work> {
    let bytes = tokio::fs::read(file)
        .await
        .with_context(|| format!("cannot read {}", file.display()))?;
    // The same bytes as the key's current object: finish what is unfinished, redo nothing.
    if let Some(current) = pipeline.current(key).await? {
        if current.size == bytes.len() as u64 && current.etag.trim_matches('"') == md5_hex(&bytes) {
            let manifest = pipeline.manifest(key).await?;
            if let Some(manifest) = manifest.filter(|m| describes(pipeline.config(), m, &current)) {
                return Ok(Work::Unchanged(manifest));
            }
            return Ok(
                match pipeline.unfinished_execution(key, current.version_id.as_deref())? {
                    Some(unfinished) => Work::Redrive(unfinished.options.name),
                    None => Work::Execute(pipeline.event_for_current(key, &current)),
                },
            );
        }
    }
    Ok(Work::Execute(pipeline.upload(key, bytes).await?))
}

/// Runs what `work` asks for and reads the manifest of `key` it left.
async fn carry_out(pipeline: &LocalPipeline, key: &str, work: Work) -> anyhow::Result<Ran> {
    let record = match work {
        Work::Unchanged(manifest) => return Ok((None, Some(manifest))),
        Work::Redrive(name) => pipeline.redrive(&name).await?,
        Work::Execute(event) => pipeline.execute(&event).await?,
    };
    Ok((Some(record), pipeline.manifest(key).await?))
}

/// The outcome of `file` (uploaded or deleted as `key`) from what ran, timed from `started`.
fn outcome(file: &Path, key: String, started: Instant, ran: anyhow::Result<Ran>) -> Outcome {
    let (record, manifest, error) = match ran {
        Ok((record, manifest)) => (record, manifest, None),
        Err(err) => (None, None, Some(format!("{err:#}"))),
    };
    Outcome {
        file: file.display().to_string(),
        key,
        unchanged: record.is_none() && error.is_none(),
        record,
        manifest,
        error,
        duration: started.elapsed(),
    }
}

/// Upload one file, execute, read the manifest.
async fn process(pipeline: &LocalPipeline, file: &Path, key: String) -> Outcome {
    let started = Instant::now();
    let ran = async { carry_out(pipeline, &key, upload(pipeline, file, &key).await?).await }.await;
    outcome(file, key, started, ran)
}

/// Whether a watched file's execution made or retired its outputs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Change {
    Upload,
    Deletion,
}

/// The executions `watch` has started and not yet seen end, at most `limit` of them running at once.
struct Running {
    pipeline: Arc<LocalPipeline>,
    limit: Arc<Semaphore>,
    tasks: JoinSet<(Change, u64, PathBuf, Outcome)>,
    /// Executions started so far; also each one's number, so that only a file's latest counts.
    started: u64,
    /// The number of the latest execution of each file.
    latest: BTreeMap<PathBuf, u64>,
}

impl Running {
    /// Runs `work` once a slot is free (an upload that failed ends at once); its time counts from
    /// `started`, before the upload.
    fn start(
        &mut self,
        change: Change,
        file: PathBuf,
        key: String,
        started: Instant,
        work: anyhow::Result<Work>,
    ) {
        self.started += 1;
        let number = self.started;
        self.latest.insert(file.clone(), number);
        let (pipeline, limit) = (self.pipeline.clone(), self.limit.clone());
        self.tasks.spawn(async move {
            let ran = match work {
                Ok(work) => {
                    let _slot = limit
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    carry_out(&pipeline, &key, work).await
                }
                Err(err) => Err(err),
            };
            let outcome = outcome(&file, key, started, ran);
            (change, number, file, outcome)
        });
    }

    /// The next execution to end, and whether it is its file's latest.
    async fn next_ended(&mut self) -> Option<anyhow::Result<(Change, bool, Outcome)>> {
        let joined = self.tasks.join_next().await?;
        Some(
            joined
                .context("an execution task panicked")
                .map(|(change, number, file, outcome)| {
                    let latest = self.latest.get(&file) == Some(&number);
                    (change, latest, outcome)
                }),
        )
    }
}

pub async fn watch(args: WatchArgs) -> anyhow::Result<bool> {
    if !args.dir.is_dir() {
        bail!("{} is not a folder", args.dir.display());
    }
    let (pipeline, config_origin) = args.local.start().await?;
    let pipeline = Arc::new(pipeline);
    let prefix = upload_prefix(pipeline.config(), args.prefix.as_deref())?;
    let report = ReportFile::create(pipeline.data_dir(), "watch", "Ferrotype watch")?;
    summary::print_configuration(&config_origin);
    println!(
        "Watching {} (uploads under {prefix}); outputs in {}. Ctrl-C to stop.\nReport:   {} (refreshed after every execution)",
        args.dir.display(),
        pipeline.data_dir().join("buckets").display(),
        report.path().display()
    );
    let mut seen: BTreeMap<PathBuf, (SystemTime, u64)> = BTreeMap::new();
    let mut keys_of: BTreeMap<PathBuf, String> = BTreeMap::new();
    if !args.initial {
        let Collected { files, .. } = collect_files(std::slice::from_ref(&args.dir))?;
        if !files.is_empty() {
            println!(
                "{} already in the folder left alone (--initial processes them too).",
                ferrotype::text::count(files.len(), "file")
            );
        }
        for (file, relative) in files {
            if let Some(stamp) = stamp_of(&file) {
                seen.insert(file.clone(), stamp);
                keys_of.insert(file, format!("{prefix}{relative}"));
            }
        }
    }
    let mut running = Running {
        pipeline: pipeline.clone(),
        limit: Arc::new(Semaphore::new(usize::from(args.concurrency))),
        tasks: JoinSet::new(),
        started: 0,
        latest: BTreeMap::new(),
    };
    let may_start = |running: &Running| {
        args.max_executions
            .is_none_or(|max| running.started < max as u64)
    };
    let mut announced_skips: BTreeSet<PathBuf> = BTreeSet::new();
    // The latest outcome of each file, in the order they ended: what the report shows.
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut all_as_designed = true;
    // Set by Ctrl-C or --max-executions: start nothing more, wait for what runs.
    let mut stopping = false;
    'watching: loop {
        if !stopping {
            let Collected { files, skipped } = collect_files(std::slice::from_ref(&args.dir))?;
            let new_skips: Vec<PathBuf> = skipped
                .into_iter()
                .filter(|path| announced_skips.insert(path.clone()))
                .collect();
            if let Some(note) = summary::skipped_note(&new_skips) {
                println!("{note}");
            }
            // A file that was uploaded and is gone now: S3 sends "Object Deleted", and its outputs go.
            let present: BTreeSet<&PathBuf> = files.iter().map(|(file, _)| file).collect();
            let removed: Vec<PathBuf> = seen
                .keys()
                .filter(|file| !present.contains(file))
                .cloned()
                .collect();
            for file in removed {
                if !may_start(&running) {
                    break;
                }
                seen.remove(&file);
                let key = keys_of.remove(&file).unwrap_or_default();
                let started = Instant::now();
                let work = pipeline.delete(&key).await.map(Work::Execute);
                running.start(Change::Deletion, file, key, started, work);
            }
            let changed: Vec<(PathBuf, String, (SystemTime, u64))> = files
                .into_iter()
                .filter_map(|(file, relative)| {
                    let stamp = stamp_of(&file)?;
                    (seen.get(&file) != Some(&stamp)).then_some((file, relative, stamp))
                })
                .collect();
            if !changed.is_empty() {
                // A file still being written changes between two looks: wait until it is stable.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            for (file, relative, stamp) in changed {
                if !may_start(&running) {
                    break;
                }
                if stamp_of(&file) != Some(stamp) {
                    continue;
                }
                let key = format!("{prefix}{relative}");
                seen.insert(file.clone(), stamp);
                keys_of.insert(file.clone(), key.clone());
                let started = Instant::now();
                let work = upload(&pipeline, &file, &key).await;
                running.start(Change::Upload, file, key, started, work);
            }
            stopping = !may_start(&running);
        }
        let next_scan = tokio::time::Instant::now() + Duration::from_millis(args.interval_ms);
        loop {
            if stopping && running.tasks.is_empty() {
                break 'watching;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(next_scan), if !stopping => continue 'watching,
                Some(ended) = running.next_ended() => {
                    let (change, latest, outcome) = ended?;
                    all_as_designed &= outcome.status() != "failed";
                    summary::print_watch_line(&outcome);
                    // An earlier execution of a file that has moved on leaves the report as it is.
                    if latest {
                        outcomes.retain(|earlier| earlier.file != outcome.file);
                        if change == Change::Upload {
                            outcomes.push(outcome);
                        }
                        report.write(pipeline.config(), &outcomes)?;
                    }
                }
                _ = tokio::signal::ctrl_c() => {
                    if stopping || running.tasks.is_empty() {
                        // Those still running stay RUNNING in the journal: `ferrotype run` or
                        // `redrive` finishes them.
                        running.tasks.shutdown().await;
                        break 'watching;
                    }
                    stopping = true;
                    println!(
                        "Stopping: waiting for {} (Ctrl-C again to stop at once).",
                        ferrotype::text::count(running.tasks.len(), "running execution")
                    );
                }
            }
        }
    }
    // Every task has ended or was aborted (and dropped its handle), so this is the last one.
    drop(running);
    if let Ok(pipeline) = Arc::try_unwrap(pipeline) {
        pipeline.shutdown().await;
    }
    Ok(all_as_designed)
}

/// A file's modification time and size: it is uploaded again when they change.
fn stamp_of(file: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(file).ok()?;
    Some((
        meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        meta.len(),
    ))
}

pub async fn executions(command: ExecutionsCommand) -> anyhow::Result<bool> {
    match command {
        ExecutionsCommand::List { status, local } => {
            let store = ferrotype::store::ExecutionStore::open(local.data_dir.join("executions"))?;
            let records = store.list_with_status(status.map(Into::into))?;
            summary::print_execution_list(&records, store.dir());
            Ok(true)
        }
        ExecutionsCommand::Show { id, json, local } => {
            let store = ferrotype::store::ExecutionStore::open(local.data_dir.join("executions"))?;
            let record = store.load(&id)?;
            summary::print_execution(&record, json)?;
            Ok(true)
        }
    }
}

pub async fn redrive(args: RedriveArgs) -> anyhow::Result<bool> {
    if !args.all_failed && args.ids.is_empty() {
        // clap enforces this; kept so the function is correct on its own.
        return Err(UsageError::new(
            &["redrive"],
            ErrorKind::MissingRequiredArgument,
            "name the executions to redrive, or pass --all-failed",
        )
        .into());
    }
    let (pipeline, config_origin) = args.local.start().await?;
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
        println!("Nothing to redrive: no failed, timed-out or aborted executions.");
        pipeline.shutdown().await;
        return Ok(true);
    }
    summary::print_configuration(&config_origin);
    let mut outcomes = Vec::new();
    for id in &ids {
        let outcome = redrive_one(&pipeline, id).await;
        summary::print_redrive_line(&outcome);
        outcomes.push(outcome);
    }
    let report = ReportFile::create(pipeline.data_dir(), "redrive", "Ferrotype redrive")?;
    report.write(pipeline.config(), &outcomes)?;
    summary::print_redrive_summary(&outcomes, report.path());
    let all_succeeded = outcomes.iter().all(|o| {
        o.record
            .as_ref()
            .is_some_and(|r| r.status == ExecutionStatus::Succeeded)
    });
    pipeline.shutdown().await;
    Ok(all_succeeded)
}

/// Whether a manifest is the final record of this very object under the current configuration: it ran
/// to its end before, and the profile's variants have not changed since (they are part of the version
/// tag).
fn describes(config: &Config, manifest: &Manifest, current: &CurrentObject) -> bool {
    let Some(version_id) = &current.version_id else {
        return false;
    };
    let profile = manifest
        .profile
        .as_deref()
        .and_then(|name| config.profiles.iter().find(|p| p.name == name));
    let tag = profile.map(|profile| {
        ferrotype_core::keys::version_tag(&VersionIdentity::VersionId(version_id.clone()), profile)
    });
    matches!(
        manifest.status,
        ManifestStatus::Succeeded | ManifestStatus::Rejected
    ) && tag.is_some()
        && manifest.version == tag
}

/// The ETag the local store gives a body uploaded in one part: the MD5 of its bytes.
fn md5_hex(bytes: &[u8]) -> String {
    use md5::Digest as _;
    md5::Md5::digest(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Redrives one execution and reads the manifest it left, for the lines and the report.
async fn redrive_one(pipeline: &LocalPipeline, id: &str) -> Outcome {
    let started = Instant::now();
    let mut outcome = Outcome {
        file: id.to_owned(),
        key: String::new(),
        record: None,
        manifest: None,
        error: None,
        duration: Duration::ZERO,
        unchanged: false,
    };
    match pipeline.redrive(id).await {
        Ok(record) => {
            let key = serde_json::from_value::<ObjectEvent>(record.input.clone())
                .ok()
                .and_then(|event| event.candidate_keys().into_iter().next());
            if let Some(key) = key {
                outcome.manifest = pipeline.manifest(&key).await.ok().flatten();
                outcome.file = key.clone();
                outcome.key = key;
            }
            outcome.record = Some(record);
        }
        Err(err) => outcome.error = Some(format!("{err:#}")),
    }
    outcome.duration = started.elapsed();
    outcome
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

/// The files a run uploads, and those it leaves out (said once, so nothing is skipped silently).
struct Collected {
    /// Each file with the key suffix it gets.
    files: Vec<(PathBuf, String)>,
    /// Hidden files and folders, and text sidecars.
    skipped: Vec<PathBuf>,
}

/// Files under the given paths with the key suffix each gets: a folder's files keep their path relative
/// to it; a file given directly keeps its name. Hidden files and folders and text files are skipped, and
/// so are names that are not UTF-8 (S3 keys are UTF-8; a lossy conversion could merge two files into one
/// key). Two files that would get the same key are refused before anything is uploaded: one would
/// silently replace the other.
fn collect_files(paths: &[PathBuf]) -> anyhow::Result<Collected> {
    let mut collected = Collected {
        files: Vec::new(),
        skipped: Vec::new(),
    };
    for path in paths {
        if path.is_dir() {
            walk(path, path, &mut collected)?;
        } else if path.is_file() {
            match path.file_name().and_then(|n| n.to_str()) {
                Some(name) => collected.files.push((path.clone(), name.to_owned())),
                None => collected.skipped.push(path.clone()),
            }
        } else {
            bail!("{} does not exist", path.display());
        }
    }
    collected.files.sort();
    collected.skipped.sort();
    let mut by_key: BTreeMap<&str, Vec<&Path>> = BTreeMap::new();
    for (file, key) in &collected.files {
        by_key.entry(key.as_str()).or_default().push(file);
    }
    let clashes: Vec<String> = by_key
        .iter()
        .filter(|(_, files)| files.len() > 1)
        .map(|(key, files)| {
            let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            format!("{} would all be uploaded as {key}", files.join(" and "))
        })
        .collect();
    if !clashes.is_empty() {
        return Err(UsageError::new(
            &["run"],
            ErrorKind::ValueValidation,
            format!(
                "{}; give their folders instead (a folder's files keep their paths) or rename them. Nothing was uploaded.",
                clashes.join("; ")
            ),
        )
        .into());
    }
    Ok(collected)
}

fn walk(root: &Path, dir: &Path, collected: &mut Collected) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || (path.is_file() && is_sidecar(&path)) {
            collected.skipped.push(path);
        } else if path.is_dir() {
            walk(root, &path, collected)?;
        } else if path.is_file() {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            let parts: Option<Vec<&str>> = relative
                .components()
                .map(|c| c.as_os_str().to_str())
                .collect();
            match parts {
                Some(parts) => collected.files.push((path.clone(), parts.join("/"))),
                None => collected.skipped.push(path),
            }
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
