//! Subcommands of the `ferrotype` binary.

pub mod aws;
pub mod config;
pub mod local;
pub mod output;
pub mod render;
pub mod statemachine;
pub mod summary;
