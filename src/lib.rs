//! The `ferrotype` CLI's library: the local runner (the deployed state machine executed on one machine),
//! its execution store and the contact sheet of a run.

pub mod backfill;
pub mod lambdas;
pub mod local;
pub mod report;
pub mod store;
pub mod text;
