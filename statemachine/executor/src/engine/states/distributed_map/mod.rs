//! The Distributed Map: items from the input or an ItemReader (S3 listing, JSON/CSV object, S3
//! Inventory manifest), batched by ItemBatcher, each item (or batch) processed by a child execution
//! of its own (the Map Run), with MaxConcurrency, ToleratedFailureCount/Percentage, and the results
//! written by ResultWriter as AWS writes them. S3 is reached only through the [`TaskInvoker`]
//! (`TaskKind::ItemReader` / `TaskKind::ResultWriter`). A redrive reruns the Map Run's unsuccessful
//! children only.

mod reader;
mod writer;

use std::sync::Arc;

use futures::StreamExt;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::definition::{ExecutionType, MapState, StateMachine};
use crate::engine::{
    check_size, ChildCheckpoint, Cursor, ExecutionOptions, ExecutionRecord, ExecutionStatus,
    Executor, MapRunRecord, Scope, Shared,
};
use crate::error::{names, StateError};
use crate::expr::Env;
use crate::history::*;

/// AWS runs at most this many child executions of a Map Run at once.
pub const DISTRIBUTED_MAP_CONCURRENCY_LIMIT: usize = 10_000;

/// How one child ended.
#[derive(Debug, Clone)]
enum ChildEnd {
    Succeeded(Box<ExecutionRecord>),
    /// Succeeded before the parent was redriven: not rerun.
    Reused(Value),
    Failed(Box<ExecutionRecord>),
    /// Never started (or aborted when the Map Run failed).
    Pending,
}

fn reader_failed(why: impl std::fmt::Display) -> StateError {
    StateError::new(names::ITEM_READER_FAILED, why.to_string())
}

fn writer_failed(why: impl std::fmt::Display) -> StateError {
    StateError::new(names::RESULT_WRITER_FAILED, why.to_string())
}

impl Shared {
    /// One child execution: its own record, history and checkpoint.
    #[allow(clippy::too_many_arguments)]
    async fn run_child(
        &self,
        processor: &Arc<StateMachine>,
        options: ExecutionOptions,
        map_run_arn: &str,
        input: Value,
        start: OffsetDateTime,
        resume: Option<crate::engine::ScopeCheckpoint>,
        seed: u64,
    ) -> ExecutionRecord {
        let executor = Executor {
            machine: processor.clone(),
            invoker: self.invoker.clone(),
            time_mode: self.time_mode,
            seed: Some(seed),
            observer: self.observer.clone(),
        };
        let record = ExecutionRecord {
            redrive_count: u32::from(resume.is_some()),
            redrive_date: resume.is_some().then_some(start),
            map_run_arn: Some(map_run_arn.to_string()),
            ..ExecutionRecord::started(options, input, start)
        };
        Box::pin(executor.run(record, start, resume)).await
    }

    /// The inputs of a Map Run's children: the items (from the ItemReader, or the input), each
    /// through the ItemSelector, then grouped by the ItemBatcher.
    #[allow(clippy::too_many_arguments)]
    async fn map_run_inputs(
        &self,
        name: &str,
        s: &MapState,
        raw: &Value,
        effective: &Value,
        context: &Value,
        scope: &Scope,
        env: &Env<'_>,
    ) -> Result<Vec<Value>, StateError> {
        let mut items = match &s.item_reader {
            Some(reader) => {
                let parameters =
                    self.s3_parameters(s.io.language, &reader.parameters, effective, raw, env)?;
                self.read_items(name, reader, &parameters, context).await?
            }
            None => self.map_items(name, s, raw, env)?.1,
        };
        if let Some(max) = s.item_reader.as_ref().and_then(|r| r.max_items.as_ref()) {
            let max = self.amount(max, "MaxItems", name, effective, raw, env)? as usize;
            if max > 0 {
                items.truncate(max);
            }
        }
        let entered = OffsetDateTime::parse(
            context
                .pointer("/State/EnteredTime")
                .and_then(Value::as_str)
                .unwrap_or_default(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let mut selected = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            selected.push(self.item_input(
                name,
                s,
                raw,
                effective,
                (index, item),
                entered,
                scope,
            )?);
        }
        let Some(batcher) = &s.item_batcher else {
            return Ok(selected);
        };
        let amount = |a: &Option<crate::definition::Amount>,
                      field: &str|
         -> Result<Option<usize>, StateError> {
            Ok(a.as_ref()
                .map(|a| self.amount(a, field, name, effective, raw, env))
                .transpose()?
                .map(|v| v as usize)
                .filter(|v| *v > 0))
        };
        let max_items = amount(&batcher.limits.max_items, "MaxItemsPerBatch")?;
        let max_bytes = amount(&batcher.limits.max_bytes, "MaxInputBytesPerBatch")?;
        let batch_input = match &batcher.batch_input {
            Some(b) => Some(self.s3_parameters(s.io.language, b, effective, raw, env)?),
            None => None,
        };
        Ok(batches(
            selected,
            max_items,
            max_bytes.map(|b| b.min(crate::engine::PAYLOAD_LIMIT_BYTES)),
            batch_input,
        ))
    }

    #[allow(clippy::too_many_arguments)]
    pub(in crate::engine) async fn distributed_map_attempt(
        &self,
        name: &str,
        s: &MapState,
        execution_type: ExecutionType,
        raw: &Value,
        context: &Value,
        prior: Option<Vec<ChildCheckpoint>>,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> Result<Value, StateError> {
        let env = self.env(context, scope);
        let effective = self.filtered_input(&s.io, raw, &env)?;
        let amount = |a: &Option<crate::definition::Amount>,
                      field: &str|
         -> Result<Option<f64>, StateError> {
            a.as_ref()
                .map(|a| self.amount(a, field, name, &effective, raw, &env))
                .transpose()
        };
        let max_concurrency = amount(&s.max_concurrency, "MaxConcurrency")?.unwrap_or(0.0) as usize;
        let limit = if max_concurrency == 0 {
            DISTRIBUTED_MAP_CONCURRENCY_LIMIT
        } else {
            max_concurrency.min(DISTRIBUTED_MAP_CONCURRENCY_LIMIT)
        };
        let tolerated_count = amount(&s.tolerated_failure_count, "ToleratedFailureCount")?;
        let tolerated_percentage = amount(
            &s.tolerated_failure_percentage,
            "ToleratedFailurePercentage",
        )?;
        if tolerated_percentage.is_some_and(|p| p > 100.0) {
            return Err(StateError::runtime(format!(
                "The ToleratedFailurePercentage of state '{name}' must be at most 100"
            )));
        }
        // A redriven Map Run runs the children it had: its items are not read again.
        let previous_run = match &prior {
            Some(prior) => self
                .record
                .lock()
                .expect("record lock")
                .map_runs
                .iter()
                .rev()
                .find(|r| {
                    r.state_name == name
                        && r.inputs.len() == prior.len()
                        && r.status != ExecutionStatus::Succeeded
                })
                .cloned(),
            None => None,
        };
        let inputs = match &previous_run {
            Some(run) => run.inputs.clone(),
            None => {
                self.map_run_inputs(name, s, raw, &effective, context, scope, &env)
                    .await?
            }
        };
        let total = inputs.len();
        for input in &inputs {
            check_size("input of a child execution", name, input)?;
        }
        // The Map Run: the same one again when the parent is redriven.
        let label = s.label.clone().unwrap_or_else(|| name.to_string());
        let redriven = prior.as_ref().is_some_and(|p| p.len() == total);
        let existing = previous_run.filter(|r| redriven && r.executions.len() == total);
        let (map_run_arn, child_names) = match &existing {
            Some(run) => (
                run.map_run_arn.clone(),
                run.executions
                    .iter()
                    .map(|a| a.rsplit(':').next().unwrap_or(a).to_string())
                    .collect::<Vec<_>>(),
            ),
            None => {
                let id = self.rng.uuid();
                let arn = format!(
                    "arn:aws:states:{}:{}:mapRun:{}/{label}:{id}",
                    self.region, self.account, self.options.state_machine_name
                );
                (arn, (0..total).map(|_| self.rng.uuid()).collect())
            }
        };
        let child_arns: Vec<String> = child_names
            .iter()
            .map(|child| match execution_type {
                ExecutionType::Standard => format!(
                    "arn:aws:states:{}:{}:execution:{}/{label}:{child}",
                    self.region, self.account, self.options.state_machine_name
                ),
                ExecutionType::Express => format!(
                    "arn:aws:states:{}:{}:express:{}/{label}:{}:{child}",
                    self.region,
                    self.account,
                    self.options.state_machine_name,
                    map_run_arn.rsplit(':').next().unwrap_or_default()
                ),
            })
            .collect();
        self.set_map_run(MapRunRecord {
            map_run_arn: map_run_arn.clone(),
            state_name: name.to_string(),
            status: ExecutionStatus::Running,
            items: total,
            succeeded: 0,
            failed: 0,
            pending: total,
            executions: child_arns.clone(),
            inputs: inputs.clone(),
        });
        self.emit(cursor, EventType::MapStateStarted, |e| {
            e.map_state_started_event_details = Some(MapStateStartedDetails { length: total })
        });
        if existing.is_some() {
            let redrive_count = 1;
            self.emit(cursor, EventType::MapRunRedriven, |e| {
                e.map_run_redriven_event_details = Some(MapRunRedrivenDetails {
                    map_run_arn: map_run_arn.clone(),
                    redrive_count,
                })
            });
        } else {
            self.emit(cursor, EventType::MapRunStarted, |e| {
                e.map_run_started_event_details = Some(MapRunStartedDetails {
                    map_run_arn: map_run_arn.clone(),
                })
            });
        }
        let prior = prior
            .filter(|p| p.len() == total)
            .unwrap_or_else(|| vec![ChildCheckpoint::NotStarted; total]);
        self.progress.start_children(&scope.path, prior.clone());
        let processor = Arc::new((*s.processor).clone());
        let child_machine_arn = format!("{}/{label}", self.options.state_machine_arn);
        let child_machine_name = format!("{}/{label}", self.options.state_machine_name);
        let failures = std::sync::atomic::AtomicUsize::new(0);
        let exceeded = |failed: usize| -> bool {
            match (tolerated_count, tolerated_percentage) {
                (None, None) => failed > 0,
                (count, pct) => {
                    count.is_some_and(|c| failed as f64 > c)
                        || pct
                            .is_some_and(|p| total > 0 && failed as f64 * 100.0 / total as f64 > p)
                }
            }
        };
        let stop = std::sync::atomic::AtomicBool::new(false);
        let started_at = cursor.now;
        let seeds: Vec<u64> = (0..total)
            .map(|_| self.rng.range(0, i64::MAX) as u64)
            .collect();
        let inputs_for_redrive = inputs.clone();
        let children = inputs
            .into_iter()
            .zip(prior)
            .enumerate()
            .map(|(index, (input, prior))| {
                let (processor, stop, failures, exceeded) =
                    (&processor, &stop, &failures, &exceeded);
                let options = ExecutionOptions {
                    state_machine_arn: child_machine_arn.clone(),
                    state_machine_name: child_machine_name.clone(),
                    execution_arn: child_arns[index].clone(),
                    name: child_names[index].clone(),
                    role_arn: self.options.role_arn.clone(),
                    start_time: None,
                };
                let (map_run_arn, seed, path) = (&map_run_arn, seeds[index], scope.path.clone());
                async move {
                    let resume = match prior {
                        ChildCheckpoint::Succeeded { output } => {
                            return (index, ChildEnd::Reused(output), started_at)
                        }
                        // Express children have no history to resume from: they start again.
                        ChildCheckpoint::Failed { checkpoint }
                            if execution_type == ExecutionType::Standard =>
                        {
                            Some(checkpoint)
                        }
                        _ => None,
                    };
                    if stop.load(std::sync::atomic::Ordering::SeqCst) {
                        return (index, ChildEnd::Pending, started_at);
                    }
                    self.progress.child_running(&path, index);
                    let record = self
                        .run_child(
                            processor,
                            options,
                            map_run_arn,
                            input,
                            started_at,
                            resume,
                            seed,
                        )
                        .await;
                    let end = record.stop_date.unwrap_or(started_at);
                    if record.status == ExecutionStatus::Succeeded {
                        self.progress.child_settled(
                            &path,
                            index,
                            ChildCheckpoint::Succeeded {
                                output: record.output.clone().unwrap_or(Value::Null),
                            },
                        );
                        (index, ChildEnd::Succeeded(Box::new(record)), end)
                    } else {
                        if let Some(checkpoint) = record.checkpoint.clone() {
                            self.progress.child_settled(
                                &path,
                                index,
                                ChildCheckpoint::Failed { checkpoint },
                            );
                        }
                        let failed = failures.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                        if exceeded(failed) {
                            stop.store(true, std::sync::atomic::Ordering::SeqCst);
                        }
                        (index, ChildEnd::Failed(Box::new(record)), end)
                    }
                }
            });
        let mut waiting = children;
        let mut running = futures::stream::FuturesUnordered::new();
        let mut ends: Vec<Option<ChildEnd>> = vec![None; total];
        loop {
            while running.len() < limit && !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match waiting.next() {
                    Some(child) => running.push(child),
                    None => break,
                }
            }
            match running.next().await {
                Some((index, result, end)) => {
                    cursor.now = cursor.now.max(end);
                    ends[index] = Some(result);
                }
                None => break,
            }
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                break;
            }
        }
        drop(running);
        drop(waiting);
        let failed = failures.load(std::sync::atomic::Ordering::SeqCst);
        let succeeded = ends
            .iter()
            .filter(|e| matches!(e, Some(ChildEnd::Succeeded(_) | ChildEnd::Reused(_))))
            .count();
        let pending = total - succeeded - failed;
        for (index, end) in ends.iter().enumerate() {
            if end.is_none() {
                self.progress
                    .child_settled(&scope.path, index, ChildCheckpoint::NotStarted);
            }
        }
        let failure = exceeded(failed).then(|| {
            let error = match (tolerated_count, tolerated_percentage) {
                (None, None) => ends.iter().flatten().find_map(|e| match e {
                    ChildEnd::Failed(r) => Some(StateError::new(r.error.clone().unwrap_or_default(), r.cause.clone().unwrap_or_default())),
                    _ => None,
                }),
                _ => None,
            };
            error.unwrap_or_else(|| StateError::new(names::EXCEED_TOLERATED_FAILURE_THRESHOLD, format!("The Map Run of state '{name}' failed: {failed} of {total} child executions failed, more than tolerated.")))
        });
        let status = if failure.is_some() {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Succeeded
        };
        self.set_map_run(MapRunRecord {
            map_run_arn: map_run_arn.clone(),
            state_name: name.to_string(),
            status,
            items: total,
            succeeded,
            failed,
            pending,
            executions: child_arns.clone(),
            // Kept until the Map Run succeeds: a redrive runs these again.
            inputs: if status == ExecutionStatus::Succeeded {
                Vec::new()
            } else {
                inputs_for_redrive
            },
        });
        // The results: written by the ResultWriter, or collected as the Map's result.
        let written = match s.result_writer.as_ref().filter(|w| w.resource.is_some()) {
            Some(writer) => {
                let parameters =
                    self.s3_parameters(s.io.language, &writer.parameters, &effective, raw, &env)?;
                Some(
                    self.write_results(
                        name,
                        writer,
                        &parameters,
                        &map_run_arn,
                        &child_machine_arn,
                        &ends,
                        &child_arns,
                        context,
                    )
                    .await,
                )
            }
            None => None,
        };
        let failure = match (failure, &written) {
            (Some(f), _) => Some(f),
            (None, Some(Err(e))) => Some(e.clone()),
            _ => None,
        };
        if let Some(error) = failure {
            self.emit(cursor, EventType::MapRunFailed, |e| {
                e.map_run_failed_event_details = Some(ErrorDetails {
                    error: Some(error.error.clone()),
                    cause: Some(error.cause.clone()),
                })
            });
            self.emit(cursor, EventType::MapStateFailed, |_| {});
            return Err(error);
        }
        self.emit(cursor, EventType::MapRunSucceeded, |_| {});
        let result = match written {
            Some(Ok(details)) => json!({"MapRunArn": map_run_arn, "ResultWriterDetails": details}),
            _ => {
                let flatten = s
                    .result_writer
                    .as_ref()
                    .and_then(|w| w.transformation.as_deref())
                    == Some("FLATTEN");
                let mut outputs = Vec::with_capacity(total);
                for end in ends.into_iter().flatten() {
                    let output = match end {
                        ChildEnd::Succeeded(r) => r.output.unwrap_or(Value::Null),
                        ChildEnd::Reused(output) => output,
                        ChildEnd::Failed(r) => StateError::new(
                            r.error.unwrap_or_default(),
                            r.cause.unwrap_or_default(),
                        )
                        .to_output(),
                        ChildEnd::Pending => continue,
                    };
                    match output {
                        Value::Array(list) if flatten => outputs.extend(list),
                        output => outputs.push(output),
                    }
                }
                Value::Array(outputs)
            }
        };
        let result = match check_size("output (all Map iterations together)", name, &result) {
            Ok(()) => result,
            Err(e) => {
                self.emit(cursor, EventType::MapStateFailed, |_| {});
                return Err(e);
            }
        };
        self.emit(cursor, EventType::MapStateSucceeded, |_| {});
        let mut scope_after = scope.clone();
        let out = self.finish_with_result(
            &s.io,
            s.result_selector.as_ref(),
            name,
            raw,
            result,
            &env,
            &mut scope_after,
        )?;
        *scope = scope_after;
        Ok(out)
    }

    fn set_map_run(&self, run: MapRunRecord) {
        let mut record = self.record.lock().expect("record lock");
        match record
            .map_runs
            .iter_mut()
            .find(|r| r.map_run_arn == run.map_run_arn)
        {
            Some(existing) => *existing = run,
            None => record.map_runs.push(run),
        }
    }
}

/// Group items into batches of at most `max_items` and `max_bytes` (as JSON) each.
fn batches(
    items: Vec<Value>,
    max_items: Option<usize>,
    max_bytes: Option<usize>,
    batch_input: Option<Value>,
) -> Vec<Value> {
    let mut out = Vec::new();
    let mut current: Vec<Value> = Vec::new();
    let mut bytes = 0;
    let wrap = |items: Vec<Value>| {
        let mut batch = Map::new();
        if let Some(b) = &batch_input {
            batch.insert("BatchInput".into(), b.clone());
        }
        batch.insert("Items".into(), Value::Array(items));
        Value::Object(batch)
    };
    for item in items {
        let size = crate::engine::json_text(&item).len() + 1;
        let full = max_items.is_some_and(|m| current.len() >= m)
            || max_bytes.is_some_and(|m| !current.is_empty() && bytes + size > m);
        if full {
            out.push(wrap(std::mem::take(&mut current)));
            bytes = 0;
        }
        bytes += size;
        current.push(item);
    }
    if !current.is_empty() {
        out.push(wrap(current));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::reader::{csv_items, percent_decode};
    use super::*;

    #[test]
    fn csv_rows_batches_and_inventory_keys() {
        let rows = csv_items(b"name,size\n\"a, b\",1\nc,\"2\"\"\"\n", None).unwrap();
        assert_eq!(
            rows,
            vec![
                json!({"name": "a, b", "size": "1"}),
                json!({"name": "c", "size": "2\""})
            ]
        );
        let b = batches(
            vec![json!(1), json!(2), json!(3)],
            Some(2),
            None,
            Some(json!({"x": 1})),
        );
        assert_eq!(
            b,
            vec![
                json!({"BatchInput": {"x": 1}, "Items": [1, 2]}),
                json!({"BatchInput": {"x": 1}, "Items": [3]})
            ]
        );
        let b = batches(
            vec![json!("aaaa"), json!("bbbb"), json!("c")],
            None,
            Some(14),
            None,
        );
        assert_eq!(
            b,
            vec![json!({"Items": ["aaaa", "bbbb"]}), json!({"Items": ["c"]})]
        );
        assert_eq!(
            percent_decode("uploads/a%20b+c%2Fd.jpg"),
            "uploads/a b c/d.jpg"
        );
    }
}
