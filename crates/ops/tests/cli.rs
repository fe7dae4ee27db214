//! The `ferrotype aws` command line (src/cli/aws.rs in the root package), compiled and parsed here
//! because it only dispatches into this crate.

#[path = "../../../src/cli/aws.rs"]
#[allow(dead_code)]
mod aws;

use clap::Parser;

#[derive(Debug, Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    Aws(aws::AwsArgs),
}

fn parse(args: &[&str]) -> Result<aws::AwsArgs, clap::Error> {
    let Command::Aws(args) =
        Cli::try_parse_from(std::iter::once("ferrotype").chain(args.iter().copied()))?.command;
    Ok(args)
}

#[test]
fn global_options_go_before_or_after_the_subcommand() {
    let args = parse(&[
        "aws",
        "executions",
        "list",
        "--status",
        "FAILED",
        "--since",
        "24h",
        "--stack",
        "Ferrotype",
        "--region",
        "eu-west-1",
    ])
    .unwrap();
    assert_eq!(args.stack.as_deref(), Some("Ferrotype"));
    assert_eq!(args.region.as_deref(), Some("eu-west-1"));
    let aws::AwsCommand::Executions(aws::ExecutionsCommand::List(list)) = args.command else {
        panic!("{args:?}")
    };
    assert_eq!(list.status.as_deref(), Some("FAILED"));
    assert_eq!(list.window.since.as_deref(), Some("24h"));
    assert_eq!(list.window.limit, 1000);

    let args = parse(&[
        "aws",
        "--profile",
        "ops",
        "--endpoint-url",
        "http://127.0.0.1:4566",
        "executions",
        "show",
        "arn:x",
    ])
    .unwrap();
    assert_eq!(args.profile.as_deref(), Some("ops"));
    assert_eq!(args.endpoint_url.as_deref(), Some("http://127.0.0.1:4566"));
    assert!(
        matches!(args.command, aws::AwsCommand::Executions(aws::ExecutionsCommand::Show { ref execution_arn }) if execution_arn == "arn:x")
    );
}

#[test]
fn redrive_takes_arns_or_all_failed_but_not_both() {
    let args = parse(&["aws", "redrive", "arn:a", "arn:b"]).unwrap();
    let aws::AwsCommand::Redrive(redrive) = args.command else {
        panic!()
    };
    assert_eq!(redrive.execution_arns, ["arn:a", "arn:b"]);
    let args = parse(&[
        "aws",
        "redrive",
        "--all-failed",
        "--since",
        "7d",
        "--state-machine",
        "arn:sm",
    ])
    .unwrap();
    let aws::AwsCommand::Redrive(redrive) = args.command else {
        panic!()
    };
    assert!(redrive.all_failed);
    assert!(parse(&["aws", "redrive"]).is_err());
    assert!(parse(&["aws", "redrive", "arn:a", "--all-failed"]).is_err());
}

#[test]
fn backfill_options_and_their_defaults() {
    let args = parse(&[
        "aws",
        "backfill",
        "--bucket",
        "in",
        "--prefix",
        "uploads/",
        "--profile-name",
        "default",
        "--dry-run",
    ])
    .unwrap();
    let aws::AwsCommand::Backfill(backfill) = args.command else {
        panic!()
    };
    assert_eq!(
        (backfill.bucket.as_deref(), backfill.prefix.as_deref()),
        (Some("in"), Some("uploads/"))
    );
    assert_eq!(backfill.profile_name.as_deref(), Some("default"));
    assert_eq!(backfill.rate, 20);
    assert_eq!(backfill.config, std::path::PathBuf::from("ferrotype.json"));
    assert!(backfill.dry_run);
    assert!(parse(&["aws", "backfill", "--rate", "0"]).is_err());
}

#[test]
fn rerun_takes_arns_or_all_failed_with_a_window() {
    let args = parse(&[
        "aws",
        "rerun",
        "--all-failed",
        "--since",
        "24h",
        "--dry-run",
    ])
    .unwrap();
    let aws::AwsCommand::Rerun(rerun) = args.command else {
        panic!()
    };
    assert!(rerun.all_failed && rerun.dry_run);
    assert_eq!(rerun.window.since.as_deref(), Some("24h"));
    let args = parse(&["aws", "rerun", "arn:x"]).unwrap();
    let aws::AwsCommand::Rerun(rerun) = args.command else {
        panic!()
    };
    assert_eq!(rerun.execution_arns, ["arn:x"]);
    assert!(parse(&["aws", "rerun"]).is_err());
    assert!(parse(&["aws", "rerun", "arn:x", "--all-failed"]).is_err());
}

#[test]
fn backfill_uses_the_backfill_machine_unless_per_object() {
    let args = parse(&[
        "aws",
        "backfill",
        "--prefix",
        "uploads/2024/",
        "--concurrency",
        "50",
        "--inventory",
        "s3://inv/ferrotype-input/daily/manifest.json",
    ])
    .unwrap();
    let aws::AwsCommand::Backfill(backfill) = args.command else {
        panic!()
    };
    assert!(!backfill.per_object);
    assert_eq!(backfill.concurrency, Some(50));
    assert_eq!(
        backfill.inventory.as_deref(),
        Some("s3://inv/ferrotype-input/daily/manifest.json")
    );
    let args = parse(&["aws", "backfill", "--per-object", "--rate", "5"]).unwrap();
    let aws::AwsCommand::Backfill(backfill) = args.command else {
        panic!()
    };
    assert!(backfill.per_object);
    assert_eq!(backfill.rate, 5);
    // The machine's options mean nothing to the per-object starter.
    assert!(parse(&["aws", "backfill", "--per-object", "--concurrency", "5"]).is_err());
    assert!(parse(&["aws", "backfill", "--concurrency", "0"]).is_err());
}
