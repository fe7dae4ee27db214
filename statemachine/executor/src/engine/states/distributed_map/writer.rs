//! A Distributed Map's ResultWriter: `manifest.json` and the per-status result files, written as
//! AWS writes them through the [`crate::engine::TaskInvoker`] (`TaskKind::ResultWriter`).

use serde_json::{json, Map, Value};

use super::{writer_failed, ChildEnd};
use crate::engine::{rfc3339_millis, ExecutionRecord, ExecutionStatus, Shared, TaskKind};
use crate::error::StateError;

impl Shared {
    /// Write `manifest.json` and one file per status (`SUCCEEDED_0.json`, `FAILED_0.json`,
    /// `PENDING_0.json`) under `<Prefix>/<Map Run id>/`, as AWS does; the `ResultWriterDetails`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn write_results(
        &self,
        name: &str,
        writer: &crate::definition::ResultWriter,
        parameters: &Value,
        map_run_arn: &str,
        state_machine_arn: &str,
        ends: &[Option<ChildEnd>],
        child_arns: &[String],
        context: &Value,
    ) -> Result<Value, StateError> {
        let bucket = parameters
            .get("Bucket")
            .and_then(Value::as_str)
            .ok_or_else(|| writer_failed("the ResultWriter parameters need a string Bucket"))?;
        let prefix = parameters
            .get("Prefix")
            .and_then(Value::as_str)
            .unwrap_or("");
        let run_id = map_run_arn.rsplit(':').next().unwrap_or_default();
        let base = if prefix.is_empty() {
            run_id.to_string()
        } else {
            format!("{}/{run_id}", prefix.trim_end_matches('/'))
        };
        let resource = writer.resource.clone().unwrap_or_default();
        let entry = |index: usize, record: Option<&ExecutionRecord>, status: &str| -> Value {
            let mut entry = Map::new();
            entry.insert("ExecutionArn".into(), json!(child_arns[index]));
            if let Some(r) = record {
                entry.insert("Input".into(), json!(crate::engine::json_text(&r.input)));
                entry.insert("InputDetails".into(), json!({"Included": true}));
                entry.insert("Name".into(), json!(r.options.name));
                if let Some(output) = &r.output {
                    entry.insert("Output".into(), json!(crate::engine::json_text(output)));
                    entry.insert("OutputDetails".into(), json!({"Included": true}));
                }
                if let Some(error) = &r.error {
                    entry.insert("Error".into(), json!(error));
                }
                if let Some(cause) = &r.cause {
                    entry.insert("Cause".into(), json!(cause));
                }
                entry.insert("RedriveCount".into(), json!(r.redrive_count));
                entry.insert("StartDate".into(), json!(rfc3339_millis(r.start_date)));
                if let Some(stop) = r.stop_date {
                    entry.insert("StopDate".into(), json!(rfc3339_millis(stop)));
                }
            }
            let (redrive, reason) = if status == "SUCCEEDED" {
                (
                    "NOT_REDRIVABLE",
                    "Execution is SUCCEEDED and cannot be redriven",
                )
            } else {
                ("REDRIVABLE", "")
            };
            entry.insert("RedriveStatus".into(), json!(redrive));
            if !reason.is_empty() {
                entry.insert("RedriveStatusReason".into(), json!(reason));
            }
            entry.insert("StateMachineArn".into(), json!(state_machine_arn));
            entry.insert("Status".into(), json!(status));
            Value::Object(entry)
        };
        let mut groups: [(&str, Vec<Value>); 3] = [
            ("SUCCEEDED", Vec::new()),
            ("FAILED", Vec::new()),
            ("PENDING", Vec::new()),
        ];
        for (index, end) in ends.iter().enumerate() {
            match end {
                Some(ChildEnd::Reused(output)) => {
                    let mut e = entry(index, None, "SUCCEEDED");
                    e["Output"] = json!(crate::engine::json_text(output));
                    e["OutputDetails"] = json!({"Included": true});
                    groups[0].1.push(e)
                }
                Some(ChildEnd::Succeeded(r)) => {
                    groups[0].1.push(entry(index, Some(r), "SUCCEEDED"))
                }
                Some(ChildEnd::Failed(r)) => {
                    groups[1].1.push(entry(index, Some(r), r.status_name()))
                }
                Some(ChildEnd::Pending) | None => groups[2].1.push(entry(index, None, "PENDING")),
            }
        }
        let jsonl = writer.output_type.as_deref() == Some("JSONL");
        let mut files = Map::new();
        for (status, entries) in &groups {
            let mut listed = Vec::new();
            if !entries.is_empty() {
                let key = format!("{base}/{status}_0.{}", if jsonl { "jsonl" } else { "json" });
                let body = if jsonl {
                    entries
                        .iter()
                        .map(crate::engine::json_text)
                        .collect::<Vec<_>>()
                        .join("\n")
                } else {
                    crate::engine::json_text(&Value::Array(entries.clone()))
                };
                listed.push(json!({"Key": key, "Size": body.len()}));
                self.put_object(name, &resource, bucket, &key, body, context)
                    .await?;
            }
            files.insert(status.to_string(), Value::Array(listed));
        }
        let manifest_key = format!("{base}/manifest.json");
        let manifest =
            json!({"DestinationBucket": bucket, "MapRunArn": map_run_arn, "ResultFiles": files});
        self.put_object(
            name,
            &resource,
            bucket,
            &manifest_key,
            crate::engine::json_text(&manifest),
            context,
        )
        .await?;
        Ok(json!({"Bucket": bucket, "Key": manifest_key}))
    }

    async fn put_object(
        &self,
        name: &str,
        resource: &str,
        bucket: &str,
        key: &str,
        body: String,
        context: &Value,
    ) -> Result<(), StateError> {
        let call = self.s3_call(
            name,
            resource,
            TaskKind::ResultWriter,
            json!({"Bucket": bucket, "Key": key, "Body": body}),
            context,
        );
        self.invoker
            .invoke(call)
            .await
            .map(|_| ())
            .map_err(|f| writer_failed(format!("s3://{bucket}/{key}: {}: {}", f.error, f.cause)))
    }
}

impl ExecutionRecord {
    fn status_name(&self) -> &'static str {
        match self.status {
            ExecutionStatus::Running => "RUNNING",
            ExecutionStatus::Succeeded => "SUCCEEDED",
            ExecutionStatus::Failed => "FAILED",
            ExecutionStatus::TimedOut => "TIMED_OUT",
            ExecutionStatus::Aborted => "ABORTED",
        }
    }
}
