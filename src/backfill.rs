//! `ferrotype backfill`: statemachine/backfill.asl.json — the Distributed Map that runs the pipeline again
//! for objects already in the input bucket — executed on this machine as AWS executes it. The Map's
//! ItemReader lists the local input bucket, ResultWriter writes its result files to the output bucket
//! (`backfills/`), and each item's `sfn:startSyncExecution` runs the local pipeline on the event S3
//! would have sent, with the same journal, failure record and redrive as `ferrotype run`.

use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use ferrotype_core::event::ObjectEvent;
use ferrotype_executor::{
    substitute, ExecutionOptions, ExecutionRecord, ExecutionStatus, Executor, StateMachine,
    TaskCall, TaskFailure, TaskInvoker, TaskKind,
};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::local::{LocalPipeline, INPUT_BUCKET, OUTPUT_BUCKET, STATE_MACHINE_NAME};
use crate::store::Journal;

pub const SHIPPED_BACKFILL: &str = include_str!("../statemachine/backfill.asl.json");
pub const BACKFILL_MACHINE_NAME: &str = "ferrotype-backfill";
/// Where the Map Run's result files go in the output bucket (as the CDK stack configures it).
pub const RESULTS_PREFIX: &str = "backfills";

/// Runs the backfill definition over `prefix` of the input bucket and stores its record.
pub async fn backfill(
    pipeline: Arc<LocalPipeline>,
    prefix: &str,
) -> anyhow::Result<ExecutionRecord> {
    let pipeline_arn = ExecutionOptions::local(STATE_MACHINE_NAME, "x").state_machine_arn;
    let substitutions = [
        ("PipelineStateMachineArn".to_owned(), pipeline_arn),
        ("ResultsBucket".to_owned(), OUTPUT_BUCKET.to_owned()),
        ("ResultsPrefix".to_owned(), RESULTS_PREFIX.to_owned()),
    ]
    .into_iter()
    .collect();
    let definition =
        substitute(SHIPPED_BACKFILL, &substitutions).context("the backfill definition")?;
    let machine = StateMachine::from_json(&definition).context("the backfill definition")?;
    let store = pipeline.shared_store();
    let executor = Executor::new(machine, Arc::new(BackfillServices { pipeline }))
        .with_observer(Arc::new(Journal::new(store.clone())));
    let name = format!("backfill-{}", crate::local::name_stamp());
    let record = executor
        .start(
            ExecutionOptions::local(BACKFILL_MACHINE_NAME, &name),
            json!({ "bucket": INPUT_BUCKET, "prefix": prefix }),
        )
        .await;
    store.save(&record)?;
    Ok(record)
}

/// What the backfill's states call: S3 for the Map's reader and writer, Step Functions for each item.
struct BackfillServices {
    pipeline: Arc<LocalPipeline>,
}

#[async_trait]
impl TaskInvoker for BackfillServices {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let s3 = self.pipeline.s3();
        let action = call.resource.rsplit(':').next().unwrap_or_default();
        match (call.kind, action) {
            (TaskKind::ItemReader, "listObjectsV2") => {
                let page = s3
                    .list_objects_v2()
                    .bucket(text(&call.input, "Bucket")?)
                    .set_prefix(call.input["Prefix"].as_str().map(str::to_owned))
                    .set_continuation_token(
                        call.input["ContinuationToken"].as_str().map(str::to_owned),
                    )
                    .send()
                    .await
                    .map_err(|err| s3_failure("ListObjectsV2", &err))?;
                let contents: Vec<Value> = page
                    .contents()
                    .iter()
                    .map(|object| {
                        json!({
                            "Key": object.key(),
                            "Size": object.size(),
                            "ETag": object.e_tag(),
                            "LastModified": object.last_modified().map(|t| t.to_string()),
                            "StorageClass": object.storage_class().map(|c| c.as_str()).unwrap_or("STANDARD"),
                        })
                    })
                    .collect();
                let mut answer = json!({ "Contents": contents });
                if let Some(token) = page.next_continuation_token() {
                    answer["NextContinuationToken"] = json!(token);
                }
                Ok(answer)
            }
            (TaskKind::ItemReader, "getObject") => {
                let object = s3
                    .get_object()
                    .bucket(text(&call.input, "Bucket")?)
                    .key(text(&call.input, "Key")?)
                    .send()
                    .await
                    .map_err(|err| s3_failure("GetObject", &err))?;
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|err| TaskFailure::new("S3.SdkClientException", err.to_string()))?
                    .into_bytes();
                Ok(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
            }
            (TaskKind::ResultWriter, "putObject") => {
                s3.put_object()
                    .bucket(text(&call.input, "Bucket")?)
                    .key(text(&call.input, "Key")?)
                    .body(text(&call.input, "Body")?.as_bytes().to_vec().into())
                    .content_type("application/json")
                    .send()
                    .await
                    .map_err(|err| s3_failure("PutObject", &err))?;
                Ok(json!({}))
            }
            (_, "startSyncExecution") => self.start_sync_execution(&call.input).await,
            _ => Err(TaskFailure::new(
                "States.Runtime",
                format!("{} is not available on this machine", call.resource),
            )),
        }
    }
}

impl BackfillServices {
    /// Runs one pipeline execution to its end and answers as StartSyncExecution does.
    async fn start_sync_execution(&self, input: &Value) -> Result<Value, TaskFailure> {
        let event_text = text(input, "Input")?;
        let event: ObjectEvent = serde_json::from_str(event_text).map_err(|err| {
            TaskFailure::new("Sfn.InvalidExecutionInputException", err.to_string())
        })?;
        let record =
            self.pipeline.execute(&event).await.map_err(|err| {
                TaskFailure::new("Sfn.InternalServerException", format!("{err:#}"))
            })?;
        let date = |date: OffsetDateTime| date.format(&Rfc3339).unwrap_or_default();
        let status = match record.status {
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            _ => "FAILED",
        };
        let mut answer = json!({
            "ExecutionArn": record.options.execution_arn,
            "StateMachineArn": record.options.state_machine_arn,
            "Name": record.options.name,
            "StartDate": date(record.start_date),
            "StopDate": record.stop_date.map(date),
            "Status": status,
            "Input": event_text,
        });
        if let Some(output) = &record.output {
            answer["Output"] = json!(output.to_string());
        }
        if let Some(error) = &record.error {
            answer["Error"] = json!(error);
            answer["Cause"] = json!(record.cause.clone().unwrap_or_default());
        }
        Ok(answer)
    }
}

fn text<'a>(input: &'a Value, field: &str) -> Result<&'a str, TaskFailure> {
    input[field].as_str().ok_or_else(|| {
        TaskFailure::new(
            "States.Runtime",
            format!("the call's input has no {field} string: {input}"),
        )
    })
}

fn s3_failure<E: std::error::Error + 'static>(
    operation: &str,
    err: &aws_sdk_s3::error::SdkError<E>,
) -> TaskFailure {
    TaskFailure::new(
        "S3.S3Exception",
        format!("{operation}: {}", crate::local::display_sdk(err)),
    )
}
