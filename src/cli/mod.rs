//! Subcommands of the `ferrotype` binary.

pub mod aws;
pub mod local;
pub mod render;
pub mod statemachine;
