//! How the binary ends: its exit statuses, command-line mistakes found after parsing (reported as clap
//! reports its own), and a closed output pipe.

use std::fmt;

/// The exit statuses of `ferrotype` (README, "Exit statuses").
pub mod exit {
    /// Everything ended as designed (for `run`: every image succeeded or was rejected).
    pub const SUCCESS: u8 = 0;
    /// Something failed: an execution, a storage or AWS call, a file that could not be read or written.
    pub const FAILURE: u8 = 1;
    /// The command line is wrong (unknown flag, bad value, contradiction); nothing was done.
    pub const USAGE: u8 = 2;
    /// `render`: the input image was refused (`ImageRejected.*`), as the pipeline would refuse it.
    pub const REJECTED: u8 = 3;
    /// Standard output was closed early (`… | head -1`): the status a shell shows for SIGPIPE.
    pub const CLOSED_PIPE: u8 = 141;
}

/// A command-line mistake only found after parsing (two flags that contradict each other, a missing
/// argument that depends on another): printed in clap's style with the subcommand's usage, exit 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    /// The subcommand path, e.g. `["render"]` or `["executions", "show"]`.
    pub command: Vec<&'static str>,
    pub kind: clap::error::ErrorKind,
    pub message: String,
}

impl UsageError {
    pub fn new(
        command: &[&'static str],
        kind: clap::error::ErrorKind,
        message: impl Into<String>,
    ) -> UsageError {
        UsageError {
            command: command.to_vec(),
            kind,
            message: message.into(),
        }
    }

    /// The error clap would print for this mistake, with the subcommand's usage line.
    pub fn to_clap(&self, mut root: clap::Command) -> clap::Error {
        root.build();
        subcommand(&mut root, &self.command).error(self.kind, &self.message)
    }
}

/// The subcommand at `path` (as far as it exists).
fn subcommand<'a>(command: &'a mut clap::Command, path: &[&str]) -> &'a mut clap::Command {
    match path.split_first() {
        Some((name, rest)) if command.find_subcommand(name).is_some() => {
            subcommand(command.find_subcommand_mut(name).expect("just found"), rest)
        }
        _ => command,
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// Rust ignores SIGPIPE, so `println!` to a closed pipe panics ("failed printing to stdout: Broken
/// pipe"). Other Unix tools end quietly there; so does `ferrotype`, wherever the write happens.
pub fn exit_quietly_when_stdout_closes() {
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if is_closed_stdout_message(message) {
            std::process::exit(i32::from(exit::CLOSED_PIPE));
        }
        default_hook(info);
    }));
}

/// The panic message of `print!`/`println!` when standard output is a closed pipe.
fn is_closed_stdout_message(message: &str) -> bool {
    message.starts_with("failed printing to stdout") && message.contains("Broken pipe")
}

/// Whether an error is a failed write to a closed standard output by a command that writes through
/// `io::Write` (the `aws` commands). Only the outermost error counts: a broken pipe deep inside a
/// network error is a network failure, not a closed terminal pipe.
pub fn is_closed_pipe(error: &anyhow::Error) -> bool {
    let broken = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
    error.downcast_ref::<std::io::Error>().is_some_and(broken)
        || matches!(
            error.downcast_ref::<ferrotype_ops::OpsError>(),
            Some(ferrotype_ops::OpsError::Output(io)) if broken(io)
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_closed_stdout_panic_is_recognised() {
        assert!(is_closed_stdout_message(
            "failed printing to stdout: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_stdout_message(
            "failed printing to stderr: Broken pipe (os error 32)"
        ));
        assert!(!is_closed_stdout_message("index out of bounds"));
    }
}
