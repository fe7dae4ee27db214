//! `ferrotype statemachine test|validate`: any Step Functions definition, offline. `test` answers every
//! Task from an AWS Step Functions Local mock configuration file (the same format, so an existing file
//! works unchanged); `validate` reports every problem with the state it is in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use ferrotype_executor::{
    substitute, validate, ExecutionOptions, ExecutionRecord, ExecutionStatus, Executor, MockConfig,
    StateMachine, TimeMode,
};

#[derive(Debug, Subcommand)]
pub enum StateMachineCommand {
    /// Run a definition with every Task answered from a mock config test case.
    Test(TestArgs),
    /// Check a definition: states reachable, transitions resolve, paths, intrinsic functions and JSONata
    /// expressions parse, variables are assigned where they are read, Retry/Catch well formed.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// The ASL definition (JSON).
    pub definition: PathBuf,
    /// The Step Functions Local mock configuration (StateMachines → TestCases; MockedResponses).
    #[arg(long)]
    pub mock_config: PathBuf,
    /// The test case to run.
    #[arg(long)]
    pub test_case: String,
    /// The state machine's name in the mock config (default: the only one there).
    #[arg(long)]
    pub state_machine: Option<String>,
    /// The execution input (JSON text, or @file).
    #[arg(long, default_value = "{}")]
    pub input: String,
    /// `${Name}` substitutions (repeatable). A placeholder left open is fine until a Task whose
    /// Resource it is runs without a mock; a mocked answer in the Lambda Invoke shape
    /// (`{StatusCode, Payload}`) is then taken as the function's response.
    #[arg(long = "substitute", value_name = "NAME=VALUE")]
    pub substitutions: Vec<String>,
    /// Seed everything random (retry jitter, UUIDs, task tokens), so a run can be repeated exactly.
    #[arg(long)]
    pub seed: Option<u64>,
    /// The AWS-format history events and the result as JSON.
    #[arg(long)]
    pub json: bool,
    /// Really wait for Wait states and retry intervals (by default they are recorded as elapsed).
    #[arg(long)]
    pub real_time: bool,
    /// Exit 0 only if the execution ends with this status (SUCCEEDED, FAILED, …).
    #[arg(long)]
    pub expect_status: Option<String>,
    /// Exit 0 only if the execution fails with this error name.
    #[arg(long)]
    pub expect_error: Option<String>,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The ASL definition (JSON) to check.
    pub definition: PathBuf,
    /// `${Name}` substitutions (repeatable); placeholders left open are not problems.
    #[arg(long = "substitute", value_name = "NAME=VALUE")]
    pub substitutions: Vec<String>,
}

pub async fn run(command: StateMachineCommand) -> anyhow::Result<bool> {
    match command {
        StateMachineCommand::Validate(args) => {
            let machine = load_definition(&args.definition, &args.substitutions)?;
            let problems = validate(&machine);
            if problems.is_empty() {
                println!("{}: valid", args.definition.display());
                return Ok(true);
            }
            for problem in &problems {
                println!("{}: {problem}", args.definition.display());
            }
            println!("{} problem(s)", problems.len());
            Ok(false)
        }
        StateMachineCommand::Test(args) => {
            let record = test(&args).await?;
            let status = serde_json::to_value(record.status)?;
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "status": status,
                        "output": record.output,
                        "error": record.error,
                        "cause": record.cause,
                        "mapRuns": record.map_runs,
                        "events": record.history,
                    }))?
                );
            } else {
                println!("{}", record.history_table());
                for run in &record.map_runs {
                    println!(
                        "Map Run of {:?}: {:?}, {} item(s): {} succeeded, {} failed, {} pending ({})",
                        run.state_name, run.status, run.items, run.succeeded, run.failed, run.pending, run.map_run_arn
                    );
                }
                println!("Status: {}", status.as_str().unwrap_or("?"));
                match record.status {
                    ExecutionStatus::Succeeded => {
                        println!(
                            "Output: {}",
                            record
                                .output
                                .as_ref()
                                .map(|o| o.to_string())
                                .unwrap_or_default()
                        )
                    }
                    _ => println!(
                        "Error: {}\nCause: {}",
                        record.error.as_deref().unwrap_or(""),
                        record.cause.as_deref().unwrap_or("")
                    ),
                }
            }
            let mut as_expected = true;
            if let Some(expected) = &args.expect_status {
                as_expected &= status
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(expected));
            }
            if let Some(expected) = &args.expect_error {
                as_expected &= record.error.as_deref() == Some(expected.as_str());
            }
            if args.expect_status.is_none() && args.expect_error.is_none() {
                as_expected = record.status == ExecutionStatus::Succeeded;
            }
            Ok(as_expected)
        }
    }
}

/// Runs one test case and returns the execution record.
pub async fn test(args: &TestArgs) -> anyhow::Result<ExecutionRecord> {
    let machine = load_definition(&args.definition, &args.substitutions)?;
    let problems = validate(&machine);
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        bail!("the definition is not valid:\n  {}", list.join("\n  "));
    }
    let text = std::fs::read_to_string(&args.mock_config)
        .with_context(|| format!("cannot read {}", args.mock_config.display()))?;
    let mocks =
        MockConfig::from_json(&text).with_context(|| args.mock_config.display().to_string())?;
    let machine_name = match &args.state_machine {
        Some(name) => name.clone(),
        None => only_state_machine(&text)?,
    };
    let invoker = mocks
        .invoker(&machine_name, &args.test_case)
        .with_context(|| args.mock_config.display().to_string())?;
    let unmocked = invoker.unmocked_tasks(&machine);
    if !unmocked.is_empty() {
        // As in Step Functions Local, a test case need only mock the Tasks its path reaches; reaching
        // another one fails the execution with States.Runtime (there is no real service to call here).
        eprintln!(
            "note: test case {:?} mocks no response for Task state(s) {}; reaching one fails the execution",
            args.test_case,
            unmocked.join(", ")
        );
    }
    let input = read_input(&args.input)?;
    let time_mode = if args.real_time {
        TimeMode::Real
    } else {
        TimeMode::Simulated
    };
    let mut executor = Executor::new(machine, Arc::new(invoker)).with_time_mode(time_mode);
    if let Some(seed) = args.seed {
        executor = executor.with_seed(seed);
    }
    let name = format!("{}-{}", machine_name, args.test_case);
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .take(80)
        .collect();
    Ok(executor
        .start(ExecutionOptions::local(&machine_name, &name), input)
        .await)
}

fn load_definition(path: &Path, substitutions: &[String]) -> anyhow::Result<StateMachine> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let text = if substitutions.is_empty() {
        text
    } else {
        let mut values = BTreeMap::new();
        for pair in substitutions {
            let (name, value) = pair
                .split_once('=')
                .with_context(|| format!("--substitute {pair:?}: expected NAME=VALUE"))?;
            values.insert(name.to_owned(), value.to_owned());
        }
        fill_known(&text, &values)
    };
    StateMachine::from_json(&text).with_context(|| path.display().to_string())
}

/// Replaces the given `${Name}` placeholders and leaves the others for the mocks to answer
/// (`substitute` refuses placeholders it has no value for, which is right for deployment, not here).
fn fill_known(text: &str, values: &BTreeMap<String, String>) -> String {
    let mut names = BTreeMap::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let Some(end) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 2..start + end];
        let value = values
            .get(name)
            .cloned()
            .unwrap_or_else(|| format!("${{{name}}}"));
        names.insert(name.to_owned(), value);
        rest = &rest[start + end + 1..];
    }
    substitute(text, &names).unwrap_or_else(|_| text.to_owned())
}

fn only_state_machine(mock_config: &str) -> anyhow::Result<String> {
    let value: serde_json::Value = serde_json::from_str(mock_config)?;
    let names: Vec<String> = value
        .get("StateMachines")
        .and_then(|m| m.as_object())
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default();
    match names.as_slice() {
        [one] => Ok(one.clone()),
        [] => bail!("the mock config has no StateMachines"),
        _ => bail!(
            "the mock config has several state machines ({}): pick one with --state-machine",
            names.join(", ")
        ),
    }
}

fn read_input(input: &str) -> anyhow::Result<serde_json::Value> {
    let text = match input.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?
        }
        None => input.to_owned(),
    };
    serde_json::from_str(&text).context("--input is not JSON")
}
