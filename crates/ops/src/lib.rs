//! Operating a deployed Ferrotype pipeline from the command line (`ferrotype aws …`): list, show and
//! redrive executions of the state machine, and backfill objects already in the input bucket.
//!
//! Every command is a plain async function taking SDK clients and writing to a `Write`, so tests
//! drive them with mocked clients and read what an operator would see.

pub mod backfill;
pub mod context;
pub mod error;
pub mod executions;
pub mod history;
pub mod redrive;

pub use backfill::{backfill, execution_name, BackfillRequest, BackfillSummary};
pub use context::{load_sdk_config, resolve_pipeline, AwsOptions, Clients, Pipeline};
pub use error::OpsError;
pub use executions::{
    list_executions, parse_since, parse_status, show_execution, write_execution_list,
    ExecutionSummary, ListFilter,
};
pub use redrive::{redrive_executions, RedriveOutcome, RedriveSummary};
