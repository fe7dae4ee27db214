//! Operating a deployed Ferrotype pipeline from the command line (`ferrotype aws …`): list, show,
//! redrive (Standard) and rerun (Express) executions, backfill objects already in the input bucket, and
//! reconcile the outputs with the uploads when events were lost.
//!
//! Every command is a plain async function taking SDK clients and writing to a `Write`, so tests
//! drive them with mocked clients and read what an operator would see.

pub mod backfill;
pub mod context;
pub mod error;
pub mod executions;
pub mod express;
pub mod history;
pub mod machine;
pub mod redrive;
pub mod rerun;
pub mod start;

pub use backfill::{
    backfill_per_object, execution_name, start_backfill, BackfillRequest, BackfillSummary,
    DistributedBackfill,
};
pub use context::{load_sdk_config, resolve_pipeline, AwsOptions, Clients, Pipeline};
pub use error::OpsError;
pub use executions::{
    list_executions, parse_since, parse_status, show_execution, write_execution_list,
    ExecutionSummary, ListFilter,
};
pub use machine::{Machine, WorkflowType};
pub use redrive::{redrive_executions, RedriveOutcome, RedriveSummary};
pub use rerun::{rerun, rerun_name, RerunSummary};
