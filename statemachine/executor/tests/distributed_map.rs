//! The Distributed Map through a Step Functions Local mock config with the `S3` extension: items
//! listed from a bucket, child executions with their own records, results written as AWS writes
//! them, and a redrive that reruns only the Map Run's failed children.

use std::sync::{Arc, Mutex};

use ferrotype_executor::*;
use serde_json::{json, Value};

#[derive(Default)]
struct Journal(Mutex<Vec<ExecutionRecord>>);

impl ExecutionObserver for Journal {
    fn record_changed(&self, record: &ExecutionRecord) {
        self.0.lock().unwrap().push(record.clone());
    }
}

impl Journal {
    /// The last record reported for each child execution.
    fn children(&self) -> Vec<ExecutionRecord> {
        let mut last: Vec<ExecutionRecord> = Vec::new();
        for record in self
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.map_run_arn.is_some())
        {
            match last
                .iter_mut()
                .find(|r| r.options.execution_arn == record.options.execution_arn)
            {
                Some(slot) => *slot = record.clone(),
                None => last.push(record.clone()),
            }
        }
        last
    }
}

fn backfill() -> StateMachine {
    let definition = json!({"StartAt": "Backfill", "States": {"Backfill": {
        "Type": "Map", "Label": "Backfill", "MaxConcurrency": 2, "ToleratedFailurePercentage": 50,
        "ItemReader": {"Resource": "arn:aws:states:::s3:listObjectsV2", "Parameters": {"Bucket": "input", "Prefix.$": "$.prefix"}},
        "ItemSelector": {"key.$": "$$.Map.Item.Value.Key", "etag.$": "$$.Map.Item.Value.Etag"},
        "ItemBatcher": {"MaxItemsPerBatch": 2, "BatchInput": {"profile": "default"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Process", "States": {"Process": {"Type": "Task",
                "Resource": "arn:aws:lambda:us-east-1:123456789012:function:process", "End": true}}},
        "ResultWriter": {"Resource": "arn:aws:states:::s3:putObject", "Parameters": {"Bucket": "output", "Prefix": "runs"}},
        "End": true}}});
    let machine = StateMachine::from_value(&definition).unwrap();
    assert!(validate(&machine).is_empty(), "{:?}", validate(&machine));
    machine
}

fn mocks(second_batch: Value) -> MockInvoker {
    let config = json!({
        "StateMachines": {"backfill": {"TestCases": {"Run": {"Process": "Process"}}}},
        "MockedResponses": {"Process": {"0": {"Return": {"done": 2}}, "1": second_batch, "2": {"Return": {"done": 1}}}},
        "S3": {"input": {"uploads/a.jpg": "aaa", "uploads/b.jpg": "bb", "uploads/c.jpg": "c", "uploads/d.jpg": "dddd", "uploads/e.jpg": "e", "other/x.jpg": "x"}}
    });
    MockConfig::from_json(&config.to_string())
        .unwrap()
        .invoker("backfill", "Run")
        .unwrap()
}

#[tokio::test]
async fn a_map_run_lists_batches_runs_children_and_writes_results_as_aws_does() {
    let invoker = Arc::new(mocks(
        json!({"Throw": {"Error": "Render.Failed", "Cause": "bad pixels"}}),
    ));
    let journal = Arc::new(Journal::default());
    let record = Executor::new(backfill(), invoker.clone())
        .with_time_mode(TimeMode::Simulated)
        .with_seed(5)
        .with_observer(journal.clone())
        .start(
            ExecutionOptions::local("backfill", "run-1"),
            json!({"prefix": "uploads/"}),
        )
        .await;
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{}",
        record.history_table()
    );

    // Five objects under the prefix, in batches of two: three children; the second failed (1 of 3 ≤ 50 %).
    let run = &record.map_runs[0];
    assert_eq!(
        (run.items, run.succeeded, run.failed, run.pending),
        (3, 2, 1, 0)
    );
    let children = journal.children();
    assert_eq!(children.len(), 3);
    assert!(children
        .iter()
        .all(|c| c.map_run_arn.as_deref() == Some(run.map_run_arn.as_str())));
    let first = children
        .iter()
        .find(|c| c.options.execution_arn == run.executions[0])
        .unwrap();
    assert_eq!(
        first.input,
        json!({"BatchInput": {"profile": "default"}, "Items": [
            {"key": "uploads/a.jpg", "etag": "\"3\""}, {"key": "uploads/b.jpg", "etag": "\"2\""}]})
    );
    assert!(first
        .history
        .iter()
        .any(|e| e.event_type == EventType::LambdaFunctionSucceeded));
    assert!(run
        .map_run_arn
        .starts_with("arn:aws:states:us-east-1:123456789012:mapRun:backfill/Backfill:"));
    let types: Vec<EventType> = record.history.iter().map(|e| e.event_type).collect();
    assert!(
        types.contains(&EventType::MapRunStarted) && types.contains(&EventType::MapRunSucceeded)
    );

    // The Map's output points at the manifest; the files are where and what AWS writes.
    let output = record.output.unwrap();
    let run_id = run.map_run_arn.rsplit(':').next().unwrap();
    assert_eq!(output["MapRunArn"], json!(run.map_run_arn));
    assert_eq!(
        output["ResultWriterDetails"],
        json!({"Bucket": "output", "Key": format!("runs/{run_id}/manifest.json")})
    );
    let written = &invoker.s3_objects()["output"];
    let manifest: Value =
        serde_json::from_str(&written[&format!("runs/{run_id}/manifest.json")]).unwrap();
    assert_eq!(manifest["DestinationBucket"], "output");
    assert_eq!(
        manifest["ResultFiles"]["SUCCEEDED"][0]["Key"],
        json!(format!("runs/{run_id}/SUCCEEDED_0.json"))
    );
    assert_eq!(manifest["ResultFiles"]["PENDING"], json!([]));
    let failed: Value =
        serde_json::from_str(&written[&format!("runs/{run_id}/FAILED_0.json")]).unwrap();
    assert_eq!(failed[0]["Status"], "FAILED");
    assert_eq!(failed[0]["Error"], "Render.Failed");
    assert_eq!(failed[0]["ExecutionArn"], json!(run.executions[1]));
    let succeeded: Value =
        serde_json::from_str(&written[&format!("runs/{run_id}/SUCCEEDED_0.json")]).unwrap();
    assert_eq!(succeeded.as_array().unwrap().len(), 2);
    assert_eq!(succeeded[0]["Output"], json!("{\"done\":2}"));
    assert_eq!(
        succeeded[0]["Input"]
            .as_str()
            .map(|s| s.contains("uploads/a.jpg")),
        Some(true)
    );
}

#[tokio::test]
async fn redriving_the_parent_reruns_only_the_failed_children_of_its_map_run() {
    let definition = {
        let mut machine = backfill();
        if let Some(ferrotype_executor::definition::State::Map(map)) =
            machine.states.get_mut("Backfill")
        {
            map.tolerated_failure_percentage = None;
        }
        machine
    };
    let invoker = Arc::new(mocks(
        json!({"Throw": {"Error": "Render.Failed", "Cause": "bad pixels"}}),
    ));
    let first = Executor::new(definition.clone(), invoker.clone())
        .with_time_mode(TimeMode::Simulated)
        .start(
            ExecutionOptions::local("backfill", "run-2"),
            json!({"prefix": "uploads/"}),
        )
        .await;
    assert_eq!(first.status, ExecutionStatus::Failed);
    assert_eq!(first.error.as_deref(), Some("Render.Failed"));
    let map_run = first.map_runs[0].clone();
    assert_eq!(map_run.status, ExecutionStatus::Failed);

    // The failed batch now succeeds; with no failure tolerated the Map Run stopped there, so the third
    // batch never started. A redrive runs those two; the first batch's output is kept.
    let config = json!({
        "StateMachines": {"backfill": {"TestCases": {"Run": {"Process": "Process"}}}},
        "MockedResponses": {"Process": {"0-1": {"Return": {"done": "again"}}}},
        "S3": {"input": {"uploads/a.jpg": "aaa"}}
    });
    let second = Arc::new(
        MockConfig::from_json(&config.to_string())
            .unwrap()
            .invoker("backfill", "Run")
            .unwrap(),
    );
    let record: ExecutionRecord =
        serde_json::from_str(&serde_json::to_string(&first).unwrap()).unwrap();
    let redriven = Executor::new(definition, second.clone())
        .with_time_mode(TimeMode::Simulated)
        .redrive(record)
        .await
        .unwrap();
    assert_eq!(
        redriven.status,
        ExecutionStatus::Succeeded,
        "{}",
        redriven.history_table()
    );
    assert_eq!(map_run.pending, 1);
    assert_eq!(
        second.invocation_counts()["Process"],
        2,
        "only the failed and the pending child ran"
    );
    assert_eq!(
        redriven.output.as_ref().unwrap()["ResultWriterDetails"]["Bucket"],
        "output"
    );
    assert_eq!(
        redriven.map_runs[0].map_run_arn, map_run.map_run_arn,
        "the same Map Run, redriven"
    );
    assert!(redriven
        .history
        .iter()
        .any(|e| e.event_type == EventType::MapRunRedriven));
}

#[tokio::test]
async fn an_s3_inventory_manifest_lists_the_objects_to_process() {
    let definition = json!({"StartAt": "FromInventory", "States": {"FromInventory": {
        "Type": "Map",
        "ItemReader": {"Resource": "arn:aws:states:::s3:getObject", "ReaderConfig": {"InputType": "MANIFEST", "MaxItems": 2},
            "Parameters": {"Bucket": "inventory", "Key": "input/daily/2026-11-28T00-00Z/manifest.json"}},
        "ItemProcessor": {"ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"},
            "StartAt": "Echo", "States": {"Echo": {"Type": "Pass", "End": true}}},
        "End": true}}});
    let manifest = json!({"sourceBucket": "input", "destinationBucket": "arn:aws:s3:::inventory",
        "fileFormat": "CSV", "fileSchema": "Bucket, Key, Size",
        "files": [{"key": "input/daily/data/part-1.csv.gz", "size": 60, "MD5checksum": "x"}]});
    let config = json!({
        "StateMachines": {"m": {"TestCases": {"Run": {}}}},
        "S3": {"inventory": {
            "input/daily/2026-11-28T00-00Z/manifest.json": manifest,
            "input/daily/data/part-1.csv.gz": "\"input\",\"uploads/a%20b.jpg\",\"10\"\n\"input\",\"uploads/c.jpg\",\"20\"\n\"input\",\"uploads/d.jpg\",\"30\"\n"
        }}
    });
    let invoker = Arc::new(
        MockConfig::from_json(&config.to_string())
            .unwrap()
            .invoker("m", "Run")
            .unwrap(),
    );
    let machine = StateMachine::from_value(&definition).unwrap();
    let record = Executor::new(machine, invoker)
        .with_time_mode(TimeMode::Simulated)
        .start(ExecutionOptions::local("m", "inventory"), json!({}))
        .await;
    assert_eq!(
        record.status,
        ExecutionStatus::Succeeded,
        "{}",
        record.history_table()
    );
    assert_eq!(
        record.output,
        Some(
            json!([{"Bucket": "input", "Key": "uploads/a b.jpg"}, {"Bucket": "input", "Key": "uploads/c.jpg"}])
        )
    );
}
