//! Ferrotype's Amazon States Language executor.
//!
//! Runs a Step Functions definition in-process with AWS semantics (JSONPath with intrinsic functions
//! and JSONata, variables, Choice rules, Retry/Catch, inline and Distributed Map, Parallel, callbacks,
//! payload limits), records history in the shape of `GetExecutionHistory`, and redrives failed or
//! interrupted executions. Task states are answered by a [`TaskInvoker`]: the local runner's Lambda
//! handlers, or a Step Functions Local mock config.
//!
//! Layers, each using only those before it: `error` → `expr` (JSONPath, intrinsics, JSONata) →
//! `definition` (the parsed model) → `validate` → `engine` (one file per state type) → `mock`.
//!
//! ```
//! use std::sync::Arc;
//! use ferrotype_executor::*;
//! use serde_json::{json, Value};
//!
//! struct Upper;
//! #[async_trait::async_trait]
//! impl TaskInvoker for Upper {
//!     async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
//!         let text = call.input["text"].as_str().ok_or_else(|| TaskFailure::new("Bad.Input", "no text"))?;
//!         Ok(json!(text.to_uppercase()))
//!     }
//! }
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let machine = StateMachine::from_json(r#"{"StartAt": "Shout", "States": {"Shout": {
//!     "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:123456789012:function:shout",
//!     "ResultPath": "$.loud", "End": true}}}"#).unwrap();
//! assert!(validate(&machine).is_empty());
//! let executor = Executor::new(machine, Arc::new(Upper)).with_time_mode(TimeMode::Simulated);
//! let record = executor.start(ExecutionOptions::local("demo", "run-1"), json!({"text": "hi"})).await;
//! assert_eq!(record.output, Some(json!({"text": "hi", "loud": "HI"})));
//! println!("{}", record.history_table());
//! // A FAILED record (persisted with serde in between, if need be) resumes with `executor.redrive(record)`.
//! # });
//! ```

pub mod definition;
pub mod engine;
pub mod error;
pub mod expr;
pub mod history;
pub mod mock;
pub mod validate;

/// The Choice rules (a part of the definition model).
pub use definition::choice;
/// JSONPath paths and intrinsic functions (parts of the expression layer), under their old names.
pub use expr::{intrinsics, jsonpath as paths};

pub use definition::{substitute, StateMachine};
pub use engine::{
    ChildCheckpoint, ExecutionObserver, ExecutionOptions, ExecutionRecord, ExecutionStatus,
    Executor, IntegrationPattern, MapRunRecord, RedriveError, ScopeCheckpoint, TaskCall, TaskClock,
    TaskFailure, TaskInvoker, TaskKind, TimeMode, HISTORY_EVENT_LIMIT, PAYLOAD_LIMIT_BYTES,
};
pub use error::{DefinitionError, Problem, StateError};
pub use history::{render_table, EventType, HistoryEvent};
pub use mock::{MockConfig, MockInvoker};
pub use validate::validate;
