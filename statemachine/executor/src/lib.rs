//! Ferrotype's Amazon States Language executor.
//!
//! Runs a Step Functions definition in-process with AWS semantics (paths, intrinsic functions,
//! Choice rules, Retry/Catch, Map/Parallel, payload limits), records history in the shape of
//! `GetExecutionHistory`, and redrives failed executions. Task states are answered by a
//! [`TaskInvoker`]: the local runner's Lambda handlers, or a Step Functions Local mock config.

pub mod choice;
pub mod definition;
pub mod engine;
pub mod error;
pub mod history;
pub mod intrinsics;
pub mod mock;
pub mod paths;
pub mod validate;

pub use definition::{substitute, StateMachine};
pub use engine::{
    ChildCheckpoint, ExecutionOptions, ExecutionRecord, ExecutionStatus, Executor, RedriveError,
    ScopeCheckpoint, TaskCall, TaskFailure, TaskInvoker, TaskKind, TimeMode, PAYLOAD_LIMIT_BYTES,
};
pub use error::{DefinitionError, StateError};
pub use history::{render_table, EventType, HistoryEvent};
pub use mock::{MockConfig, MockInvoker};
pub use validate::{validate, Problem};
