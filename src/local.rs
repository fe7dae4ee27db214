//! The embedded default: the deployed state machine definition, executed on one machine.
//!
//! The ASL file runs in our executor; its Task states call the very handler functions the Lambdas run,
//! in-process; the buckets are folders under the data directory, served by an S3-compatible server on
//! 127.0.0.1 so the handlers use the same aws-sdk-s3 code path as in AWS. What AWS does around the
//! state machine is done here the same way: an upload becomes the EventBridge "Object Created" event,
//! and a failed execution's status-change event goes to record-result, which writes the `failed` manifest.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use ferrotype_core::config::Config;
use ferrotype_core::event::{DeletedObject, NewObject, ObjectEvent};
use ferrotype_core::pipeline::{Manifest, UNCAUGHT_IN_STANDARD};
use ferrotype_core::{BuiltinDetector, FaceDetector};
use ferrotype_executor::{
    substitute, ExecutionOptions, ExecutionRecord, ExecutionStatus, Executor, StateMachine,
    TimeMode,
};
use ferrotype_local_s3::LocalS3;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::lambdas::{function_arn, Lambdas, ACCOUNT, FUNCTIONS, REGION};
use crate::store::{ExecutionStore, Journal};

/// The definition and the configuration the binary was built with (the repo's files).
pub const SHIPPED_DEFINITION: &str = include_str!("../statemachine/pipeline.asl.json");
pub const SHIPPED_CONFIG: &str = include_str!("../ferrotype.json");

pub const INPUT_BUCKET: &str = "input";
pub const OUTPUT_BUCKET: &str = "output";
pub const STATE_MACHINE_NAME: &str = "ferrotype-pipeline";

/// What a local pipeline runs with.
#[derive(Debug, Clone)]
pub struct LocalSettings {
    /// Holds `buckets/`, `executions/` and `reports/`.
    pub data_dir: PathBuf,
    pub config: Config,
    /// The ASL text with `${…}` placeholders, as deployed.
    pub definition: String,
    /// Real sleeps for retry intervals (the CLI) or simulated ones (tests).
    pub time_mode: TimeMode,
    /// The account's Lambda concurrency limit to simulate (None: unlimited).
    pub lambda_concurrency: Option<usize>,
}

impl LocalSettings {
    /// The shipped definition and configuration over `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> anyhow::Result<LocalSettings> {
        Ok(LocalSettings {
            data_dir: data_dir.into(),
            config: Config::from_json(SHIPPED_CONFIG)?,
            definition: SHIPPED_DEFINITION.to_owned(),
            time_mode: TimeMode::Real,
            lambda_concurrency: None,
        })
    }
}

/// A running local pipeline: the S3 server, the executor and the execution store.
pub struct LocalPipeline {
    settings: LocalSettings,
    server: LocalS3,
    s3: aws_sdk_s3::Client,
    executor: Executor,
    functions: Arc<Lambdas>,
    store: Arc<ExecutionStore>,
    execution_counter: AtomicU64,
    /// Held while the pipeline runs: one process at a time works in a data directory.
    _lock: std::fs::File,
}

/// The current object of a key in the input bucket, as a HEAD tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentObject {
    pub version_id: Option<String>,
    /// Quoted, as S3 returns it.
    pub etag: String,
    pub size: u64,
}

/// Takes the data directory's lock, waiting (and saying so) while another process holds it.
async fn lock_data_dir(data_dir: &Path) -> anyhow::Result<std::fs::File> {
    use std::io::{Read as _, Seek as _, Write as _};
    let path = data_dir.join("lock");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            eprintln!(
                "Waiting for the other ferrotype process using {} (pid {}) to finish…",
                data_dir.display(),
                holder.trim()
            );
            file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
                .await
                .context("waiting for the data directory's lock")?
                .with_context(|| format!("cannot lock {}", path.display()))?;
        }
        Err(std::fs::TryLockError::Error(err)) => {
            return Err(err).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
    file.set_len(0)?;
    file.rewind()?;
    write!(file, "{}", std::process::id())?;
    Ok(file)
}

impl LocalPipeline {
    pub async fn start(settings: LocalSettings) -> anyhow::Result<LocalPipeline> {
        let buckets_dir = settings.data_dir.join("buckets");
        std::fs::create_dir_all(&buckets_dir).with_context(|| {
            format!("cannot create the data directory {}", buckets_dir.display())
        })?;
        let lock = lock_data_dir(&settings.data_dir).await?;
        let server = LocalS3::start(&buckets_dir, &[INPUT_BUCKET, OUTPUT_BUCKET])
            .await
            .context("cannot start the local S3 server")?;
        let s3 = server.in_process_client();

        let machine = local_state_machine(&settings.definition)?;
        let problems = ferrotype_executor::validate(&machine);
        if !problems.is_empty() {
            let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            bail!(
                "the state machine definition has problems:\n  {}",
                list.join("\n  ")
            );
        }

        let config = Arc::new(settings.config.clone());
        // Locally the built-in detector answers for Rekognition too: no AWS here.
        let builtin: Arc<dyn FaceDetector> = Arc::new(BuiltinDetector::new());
        let mut functions = Lambdas::new(s3.clone(), config, OUTPUT_BUCKET, builtin);
        if let Some(limit) = settings.lambda_concurrency {
            functions = functions.with_concurrency_limit(limit);
        }
        let functions = Arc::new(functions);
        let store = Arc::new(ExecutionStore::open(settings.data_dir.join("executions"))?);
        // Holding the lock, whatever is still RUNNING was left by a killed process.
        for name in store.recover_interrupted()? {
            tracing::info!(
                execution = name,
                "an execution interrupted by a stopped process is now ABORTED (redrive resumes it)"
            );
        }
        let executor = Executor::new(machine, functions.clone())
            .with_time_mode(settings.time_mode)
            .with_observer(Arc::new(Journal::new(store.clone())));
        Ok(LocalPipeline {
            settings,
            server,
            s3,
            executor,
            functions,
            store,
            execution_counter: AtomicU64::new(0),
            _lock: lock,
        })
    }

    /// The key's current object in the input bucket, if any.
    pub async fn current(&self, key: &str) -> anyhow::Result<Option<CurrentObject>> {
        match self
            .s3
            .head_object()
            .bucket(INPUT_BUCKET)
            .key(key)
            .send()
            .await
        {
            Ok(head) => Ok(Some(CurrentObject {
                version_id: head.version_id().map(str::to_owned),
                etag: head.e_tag().unwrap_or_default().to_owned(),
                size: head.content_length().unwrap_or(0).max(0) as u64,
            })),
            Err(err) if err.as_service_error().is_some_and(|e| e.is_not_found()) => Ok(None),
            Err(err) => bail!(
                "cannot read {key} in the local input bucket: {}",
                display_sdk(&err)
            ),
        }
    }

    /// The "Object Created" event for a key's current object (as a backfill announces it).
    pub fn event_for_current(&self, key: &str, current: &CurrentObject) -> ObjectEvent {
        let now = now_rfc3339();
        let id = self.event_id();
        ObjectEvent::for_object(&NewObject {
            bucket: INPUT_BUCKET,
            key,
            size: current.size,
            etag: Some(current.etag.trim_matches('"')),
            version_id: current.version_id.as_deref(),
            region: REGION,
            account: ACCOUNT,
            time: &now,
            id: &id,
            reason: "PutObject",
            sequencer: None,
        })
    }

    /// The newest stored execution for this version of `key` that stopped before its end (aborted by a
    /// killed process, failed or timed out): what a rerun resumes instead of starting over.
    pub fn unfinished_execution(
        &self,
        key: &str,
        version_id: Option<&str>,
    ) -> anyhow::Result<Option<ExecutionRecord>> {
        Ok(self.store.list()?.into_iter().find(|record| {
            matches!(
                record.status,
                ExecutionStatus::Aborted | ExecutionStatus::Failed | ExecutionStatus::TimedOut
            ) && serde_json::from_value::<ObjectEvent>(record.input.clone()).is_ok_and(|event| {
                !event.is_deletion()
                    && event.candidate_keys().first().map(String::as_str) == Some(key)
                    && event.detail.object.version_id.as_deref() == version_id
            })
        }))
    }

    pub fn data_dir(&self) -> &Path {
        &self.settings.data_dir
    }

    pub fn config(&self) -> &Config {
        &self.settings.config
    }

    /// The S3 server, e.g. to inject faults in tests.
    pub fn server(&self) -> &LocalS3 {
        &self.server
    }

    pub fn s3(&self) -> &aws_sdk_s3::Client {
        &self.s3
    }

    pub fn store(&self) -> &ExecutionStore {
        &self.store
    }

    /// The execution store, for an executor that journals into it (the backfill).
    pub fn shared_store(&self) -> Arc<ExecutionStore> {
        self.store.clone()
    }

    /// Where an object of a local bucket lives on disk.
    pub fn object_path(&self, bucket: &str, key: &str) -> PathBuf {
        self.settings
            .data_dir
            .join("buckets")
            .join(bucket)
            .join(key)
    }

    /// Puts `bytes` into the input bucket at `key` and returns the event S3 would send for it.
    pub async fn upload(&self, key: &str, bytes: Vec<u8>) -> anyhow::Result<ObjectEvent> {
        let size = bytes.len() as u64;
        let put = self
            .s3
            .put_object()
            .bucket(INPUT_BUCKET)
            .key(key)
            .body(bytes.into())
            // Unsigned, for the reason ObjectStore::put gives.
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "cannot store {key} in the local input bucket: {}",
                    display_sdk(&err)
                )
            })?;
        let etag = put.e_tag().map(str::to_owned);
        let now = now_rfc3339();
        let id = self.event_id();
        let sequencer = self.sequencer();
        Ok(ObjectEvent::for_object(&NewObject {
            bucket: INPUT_BUCKET,
            key,
            size,
            etag: etag.as_deref(),
            version_id: put.version_id(),
            region: REGION,
            account: ACCOUNT,
            time: &now,
            id: &id,
            reason: "PutObject",
            sequencer: Some(&sequencer),
        }))
    }

    /// Deletes `key` from the input bucket and returns the "Object Deleted" event S3 would send.
    pub async fn delete(&self, key: &str) -> anyhow::Result<ObjectEvent> {
        let deleted = self
            .s3
            .delete_object()
            .bucket(INPUT_BUCKET)
            .key(key)
            .send()
            .await
            .map_err(|err| {
                anyhow::anyhow!(
                    "cannot delete {key} from the local input bucket: {}",
                    display_sdk(&err)
                )
            })?;
        let now = now_rfc3339();
        let id = self.event_id();
        let sequencer = self.sequencer();
        let deletion_type = if deleted.delete_marker() == Some(true) {
            "Delete Marker Created"
        } else {
            "Permanently Deleted"
        };
        Ok(ObjectEvent::for_deletion(&DeletedObject {
            bucket: INPUT_BUCKET,
            key,
            version_id: deleted.version_id(),
            sequencer: Some(&sequencer),
            deletion_type,
            region: REGION,
            account: ACCOUNT,
            time: &now,
            id: &id,
        }))
    }

    fn event_id(&self) -> String {
        format!(
            "{:016x}",
            self.execution_counter.fetch_add(1, Ordering::Relaxed) ^ nanos()
        )
    }

    /// Increasing within this process, as S3's are for the writes of one key.
    fn sequencer(&self) -> String {
        format!("{:020X}", nanos())
    }

    /// Runs one execution for the event, stores its record and, when it failed, has record-result write
    /// the `failed` manifest from the status-change event, as the CDK stack's rule does in AWS.
    pub async fn execute(&self, event: &ObjectEvent) -> anyhow::Result<ExecutionRecord> {
        let name = self.execution_name(event);
        let input = serde_json::to_value(event)?;
        let record = self
            .executor
            .start(ExecutionOptions::local(STATE_MACHINE_NAME, &name), input)
            .await;
        self.after_execution(&record).await?;
        Ok(record)
    }

    /// Redrives a stored FAILED / TIMED_OUT / ABORTED execution (name, ARN or unique name prefix).
    pub async fn redrive(&self, id: &str) -> anyhow::Result<ExecutionRecord> {
        let record = self.store.load(id)?;
        let record = self
            .executor
            .redrive(record)
            .await
            .with_context(|| format!("cannot redrive {id}"))?;
        self.after_execution(&record).await?;
        Ok(record)
    }

    /// The manifest record-result wrote for a source key, if any.
    pub async fn manifest(&self, source_key: &str) -> anyhow::Result<Option<Manifest>> {
        let key = ferrotype_core::keys::manifest_key(&self.settings.config.outputs, source_key);
        match self
            .s3
            .get_object()
            .bucket(OUTPUT_BUCKET)
            .key(&key)
            .send()
            .await
        {
            Ok(object) => {
                let bytes = object.body.collect().await?.into_bytes();
                Ok(Some(
                    serde_json::from_slice(&bytes).with_context(|| format!("manifest {key}"))?,
                ))
            }
            Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => Ok(None),
            Err(err) => bail!("cannot read manifest {key}: {}", display_sdk(&err)),
        }
    }

    /// How many times the local Lambda handlers were invoked (tests check redrive reruns nothing extra).
    pub fn invocations(&self) -> u64 {
        self.functions.invocations()
    }

    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    async fn after_execution(&self, record: &ExecutionRecord) -> anyhow::Result<()> {
        if matches!(
            record.status,
            ExecutionStatus::Failed | ExecutionStatus::TimedOut | ExecutionStatus::Aborted
        ) {
            let event = status_change_event(record);
            if let Err(failure) = self.functions.invoke("record-result", event).await {
                // The record of the failure could not be written; the execution record still says why.
                tracing::warn!(
                    error = failure.error,
                    cause = failure.cause,
                    "recording the failure failed"
                );
            }
        }
        self.store.save(record)
    }

    /// Unique, readable and valid as a Step Functions execution name (≤ 80 of `[A-Za-z0-9_-]`).
    fn execution_name(&self, event: &ObjectEvent) -> String {
        let key = event.candidate_keys().remove(0);
        let file = key.rsplit('/').next().unwrap_or(&key);
        let slug: String = file
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '-'
                }
            })
            .take(40)
            .collect();
        // Unique: the time to the millisecond, this process and a counter; checked against the store
        // (a process started in the same millisecond with the same pid is not possible at once, but a
        // later one reusing a pid is).
        loop {
            let sequence = self.execution_counter.fetch_add(1, Ordering::Relaxed);
            let name = format!("{slug}-{}-{sequence}", name_stamp());
            if !self.store.contains(&name) {
                return name;
            }
        }
    }
}

/// The EventBridge "Step Functions Execution Status Change" event AWS emits when an execution ends
/// unsuccessfully; the CDK stack routes it to record-result, and so do we.
pub fn status_change_event(record: &ExecutionRecord) -> Value {
    let millis = |date: OffsetDateTime| (date.unix_timestamp_nanos() / 1_000_000) as i64;
    let status = serde_json::to_value(record.status).unwrap_or(Value::Null);
    json!({
        "version": "0",
        "id": format!("{}-{}", record.options.name, record.redrive_count),
        "detail-type": "Step Functions Execution Status Change",
        "source": "aws.states",
        "account": ACCOUNT,
        "time": now_rfc3339(),
        "region": REGION,
        "resources": [record.options.execution_arn],
        "detail": {
            "executionArn": record.options.execution_arn,
            "stateMachineArn": record.options.state_machine_arn,
            "name": record.options.name,
            "status": status,
            "startDate": millis(record.start_date),
            "stopDate": record.stop_date.map(millis),
            "input": record.input.to_string(),
            "output": null,
            "error": record.error,
            "cause": record.cause,
            "redriveCount": record.redrive_count,
        }
    })
}

/// A pipeline definition with its `${…}` placeholders filled as the local runner runs it: the local
/// Lambdas' ARNs, and Standard's `UncaughtErrors`.
pub fn local_state_machine(definition: &str) -> anyhow::Result<StateMachine> {
    let substitutions = FUNCTIONS
        .iter()
        .map(|(placeholder, stage)| (placeholder.to_string(), function_arn(stage)))
        .chain([("UncaughtErrors".to_owned(), UNCAUGHT_IN_STANDARD.to_owned())])
        .collect();
    let definition =
        substitute(definition, &substitutions).context("the definition's placeholders")?;
    StateMachine::from_json(&definition).context("the state machine definition")
}

/// UTC time to the millisecond and this process, as execution names carry them
/// (`20261129T041145123-1a2b`): valid in a Step Functions name and unique across processes.
pub(crate) fn name_stamp() -> String {
    let stamp = OffsetDateTime::now_utc();
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}{:03}-{:x}",
        stamp.year(),
        u8::from(stamp.month()),
        stamp.day(),
        stamp.hour(),
        stamp.minute(),
        stamp.second(),
        stamp.millisecond(),
        std::process::id()
    )
}

fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

fn nanos() -> u64 {
    OffsetDateTime::now_utc().unix_timestamp_nanos() as u64
}

pub(crate) fn display_sdk<E: std::error::Error + 'static>(
    err: &aws_sdk_s3::error::SdkError<E>,
) -> String {
    use std::error::Error as _;
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
