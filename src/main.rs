use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

/// Ferrotype: a serverless image pipeline for AWS, and its local runner.
#[derive(Debug, Parser)]
#[command(name = "ferrotype", version)]
struct Cli {
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
    /// Render one image file as one variant and report what was done.
    Render(cli::render::RenderArgs),
    /// Test or validate any Step Functions definition offline.
    #[command(subcommand)]
    Statemachine(cli::statemachine::StateMachineCommand),
    /// Operate the deployed pipeline in AWS: executions, redrive, backfill.
    Aws(cli::aws::AwsArgs),
}

fn main() -> ExitCode {
    init_tracing();
    let cli = Cli::parse();
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
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_async(command: Command) -> anyhow::Result<ExitCode> {
    let as_designed = match command {
        Command::Run(args) => cli::local::run(args).await?,
        Command::Watch(args) => cli::local::watch(args).await?,
        Command::Executions(command) => cli::local::executions(command).await?,
        Command::Redrive(args) => cli::local::redrive(args).await?,
        Command::Statemachine(command) => cli::statemachine::run(command).await?,
        Command::Aws(args) => return cli::aws::run(args).await,
        Command::Render(_) => unreachable!("rendering is synchronous"),
    };
    Ok(if as_designed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The handlers log as in Lambda; on a terminal only warnings matter unless RUST_LOG says otherwise.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
