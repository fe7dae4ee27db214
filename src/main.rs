use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{ArgAction, CommandFactory, Parser, Subcommand};

mod cli;

use cli::output::{exit, UsageError};

/// Ferrotype: a serverless image pipeline for AWS, and its local runner.
#[derive(Debug, Parser)]
#[command(
    name = "ferrotype",
    version,
    after_help = "Exit status: 0 when everything ended as designed (rejected images included), 1 when \
                  something failed, 2 for a command-line mistake, 3 when `render` refused its input, \
                  141 when standard output was closed early."
)]
struct Cli {
    /// Say more: -v shows the details behind errors and the handlers' progress, -vv everything.
    #[arg(short, long, action = ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline locally on image files or folders: upload, execute the state machine, report.
    Run(cli::local::RunArgs),
    /// Watch a folder: new or replaced files start executions, as uploads do in AWS.
    Watch(cli::local::WatchArgs),
    /// Local executions: list them, or show one state by state.
    #[command(subcommand)]
    Executions(cli::local::ExecutionsCommand),
    /// Redrive failed local executions from their failed state.
    Redrive(cli::local::RedriveArgs),
    /// Run the pipeline again for objects already in the local input bucket, through
    /// statemachine/backfill.asl.json (a Distributed Map), as `ferrotype aws backfill` does in AWS.
    Backfill(cli::local::BackfillArgs),
    /// Render one image file as one variant, as the pipeline would, and report what was done.
    Render(cli::render::RenderArgs),
    /// Test or validate any Step Functions definition offline.
    #[command(subcommand)]
    Statemachine(cli::statemachine::StateMachineCommand),
    /// Operate the deployed pipeline in AWS: executions, redrive, backfill.
    Aws(cli::aws::AwsArgs),
}

fn main() -> ExitCode {
    ferrotype_aws::bootstrap::tune_allocator();
    cli::output::exit_quietly_when_stdout_closes();
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let result = match cli.command {
        Command::Render(args) => cli::render::run(args).map(|()| ExitCode::SUCCESS),
        command => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(run_async(command))),
    };
    match result {
        Ok(code) => code,
        Err(err) => ExitCode::from(report_error(&err, cli.verbose)),
    }
}

async fn run_async(command: Command) -> anyhow::Result<ExitCode> {
    let as_designed = match command {
        Command::Run(args) => cli::local::run(args).await?,
        Command::Watch(args) => cli::local::watch(args).await?,
        Command::Executions(command) => cli::local::executions(command).await?,
        Command::Redrive(args) => cli::local::redrive(args).await?,
        Command::Backfill(args) => cli::local::backfill(args).await?,
        Command::Statemachine(command) => cli::statemachine::run(command).await?,
        Command::Aws(args) => return cli::aws::run(args).await,
        Command::Render(_) => unreachable!("rendering is synchronous"),
    };
    Ok(ExitCode::from(if as_designed {
        exit::SUCCESS
    } else {
        exit::FAILURE
    }))
}

/// Prints the error as one line (what failed and why; the causes joined with ": ") and returns the exit
/// status it deserves. Command-line mistakes found after parsing look and end as clap's own.
fn report_error(err: &anyhow::Error, verbose: u8) -> u8 {
    if cli::output::is_closed_pipe(err) {
        return exit::CLOSED_PIPE;
    }
    if let Some(usage) = err.downcast_ref::<UsageError>() {
        let _ = usage.to_clap(Cli::command()).print();
        return exit::USAGE;
    }
    eprintln!("error: {err:#}");
    if verbose > 0 {
        for (depth, cause) in err.chain().enumerate().skip(1) {
            eprintln!("  {depth}: {cause}");
        }
    }
    if err.downcast_ref::<cli::render::InputRejected>().is_some() {
        exit::REJECTED
    } else {
        exit::FAILURE
    }
}

/// Logs go to stderr. By default only Ferrotype's own warnings show: the local S3 server's request
/// errors, the SDK's retries and its credential probing (IMDS) are details, shown with -v (warnings of
/// every crate, Ferrotype's progress) or -vv (everything). RUST_LOG overrides.
fn init_tracing(verbose: u8) {
    const OURS: [&str; 9] = [
        "ferrotype",
        "ferrotype_aws",
        "ferrotype_ops",
        "ferrotype_executor",
        "ferrotype_core",
        "validate",
        "detect_faces",
        "render_variant",
        "record_result",
    ];
    let directives = match verbose {
        0 => format!("off,{}", OURS.map(|c| format!("{c}=warn")).join(",")),
        1 => format!("warn,{}", OURS.map(|c| format!("{c}=info")).join(",")),
        _ => "debug".to_owned(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(directives));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every option, argument and subcommand says what it is for in `--help`.
    #[test]
    fn everything_has_a_help_text() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} {id}"));
                }
            }
            for sub in command.get_subcommands() {
                let name = format!("{path} {}", sub.get_name());
                // `ferrotype statemachine …` is the executor's CLI: its help texts are checked there.
                if sub.get_name() == "help" || sub.get_name() == "statemachine" {
                    continue;
                }
                if sub.get_about().is_none() {
                    missing.push(name.clone());
                }
                check(sub, &name, missing);
            }
        }
        let mut root = Cli::command();
        root.build();
        let mut missing = Vec::new();
        check(&root, "ferrotype", &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:#?}");
    }
}
