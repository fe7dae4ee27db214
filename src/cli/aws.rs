//! `ferrotype aws …`: operating the deployed pipeline (issue 7). The commands live in ferrotype-ops;
//! this file only defines the command line and hands over.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use ferrotype_core::config::Config;
use ferrotype_ops::{
    AwsOptions, BackfillRequest, Clients, DistributedBackfill, ListFilter, Pipeline, WorkflowType,
};

/// Where to act and with which credentials (the standard AWS credential chain).
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// AWS region (default: from the environment or the profile).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Named AWS profile (~/.aws/config).
    #[arg(long, global = true)]
    pub profile: Option<String>,
    /// Send all AWS requests to this endpoint (LocalStack, moto, Step Functions Local).
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// The deployed Ferrotype CloudFormation stack: its outputs name the state machine and input bucket.
    #[arg(long, global = true, value_name = "NAME")]
    pub stack: Option<String>,
    /// The state machine ARN (instead of --stack).
    #[arg(long, global = true, value_name = "ARN")]
    pub state_machine: Option<String>,
    #[command(subcommand)]
    pub command: AwsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AwsCommand {
    /// List executions or show one state by state.
    #[command(subcommand)]
    Executions(ExecutionsCommand),
    /// Redrive failed executions from their failed state (Standard workflows, within 14 days).
    Redrive(RedriveArgs),
    /// Start failed Express executions again with their original input (Express has no redrive).
    Rerun(RerunArgs),
    /// Start the pipeline for objects already in the input bucket (e.g. after a profile change).
    Backfill(BackfillArgs),
    /// Start the pipeline for the objects whose manifest is missing or describes another object (lost
    /// events, failed records); objects already recorded are left alone.
    Reconcile(ReconcileArgs),
}

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    /// Input bucket (default: the stack's InputBucketName output).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Output bucket holding the manifests (default: the stack's OutputBucketName output).
    #[arg(long)]
    pub output_bucket: Option<String>,
    /// Key prefix to list (default: the whole bucket).
    #[arg(long)]
    pub prefix: Option<String>,
    /// The processing configuration whose profile prefixes select the objects.
    #[arg(long, value_name = "PATH", default_value = "ferrotype.json")]
    pub config: PathBuf,
    /// StartExecution calls per second.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rate: u32,
    /// List what would be started, start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ExecutionsCommand {
    /// Executions of the state machine, newest first.
    List(ListArgs),
    /// One execution's history as a state-by-state table.
    Show {
        /// Execution ARN.
        execution_arn: String,
    },
}

#[derive(Debug, Args)]
pub struct WindowArgs {
    /// Only executions started within this window, e.g. 30m, 24h, 7d.
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Stop after this many executions.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
}

impl WindowArgs {
    /// The executions of this window with `status` (any status when None).
    fn filter(&self, status: Option<&str>) -> anyhow::Result<ListFilter> {
        Ok(ListFilter {
            status: status.map(ferrotype_ops::parse_status).transpose()?,
            started_after: ferrotype_ops::executions::started_within(self.since.as_deref())?,
            limit: self.limit,
        })
    }
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED or PENDING_REDRIVE.
    #[arg(long)]
    pub status: Option<String>,
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Debug, Args)]
pub struct RedriveArgs {
    /// Execution ARNs to redrive.
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub execution_arns: Vec<String>,
    /// Redrive every FAILED, TIMED_OUT or ABORTED execution of the state machine (within --since).
    #[arg(long)]
    pub all_failed: bool,
    #[command(flatten)]
    pub window: WindowArgs,
}

#[derive(Debug, Args)]
pub struct RerunArgs {
    /// Express execution ARNs to rerun.
    #[arg(required_unless_present = "all_failed", conflicts_with = "all_failed")]
    pub execution_arns: Vec<String>,
    /// Rerun every FAILED, TIMED_OUT or ABORTED execution of the window (default window: 24h).
    #[arg(long)]
    pub all_failed: bool,
    #[command(flatten)]
    pub window: WindowArgs,
    /// List what would be rerun, start nothing.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Input bucket (default: the stack's InputBucketName output).
    #[arg(long)]
    pub bucket: Option<String>,
    /// Key prefix to list (default: the --profile-name's prefix, else the whole bucket).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only objects of this processing profile of the configuration.
    #[arg(long, value_name = "NAME")]
    pub profile_name: Option<String>,
    /// The processing configuration whose profile prefixes select the objects.
    #[arg(long, value_name = "PATH", default_value = "ferrotype.json")]
    pub config: PathBuf,
    /// StartExecution calls per second (with --per-object).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rate: u32,
    /// List what would be started, start nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Start one pipeline execution per object from here instead of the backfill state machine.
    #[arg(long)]
    pub per_object: bool,
    /// Batches of ten objects the backfill machine runs at once (default 30).
    #[arg(long, value_name = "N", conflicts_with = "per_object", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub concurrency: Option<u32>,
    /// Read the objects from this S3 Inventory manifest (s3://BUCKET/KEY/manifest.json) instead of listing.
    #[arg(long, value_name = "S3_URI", conflicts_with = "per_object")]
    pub inventory: Option<String>,
    /// The backfill state machine ARN (default: the stack's BackfillStateMachineArn output).
    #[arg(long, value_name = "ARN", conflicts_with = "per_object")]
    pub backfill_state_machine: Option<String>,
}

/// `s3://bucket/key` → (bucket, key).
fn parse_s3_uri(uri: &str) -> anyhow::Result<(String, String)> {
    let rest = uri
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow::anyhow!("{uri}: expected s3://BUCKET/KEY"))?;
    match rest.split_once('/') {
        Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => {
            Ok((bucket.to_owned(), key.to_owned()))
        }
        _ => anyhow::bail!("{uri}: expected s3://BUCKET/KEY"),
    }
}

/// Runs a `ferrotype aws` command. Failures the operator must notice (an execution that could not be
/// redriven, an object that could not be started) give exit code 1.
pub async fn run(args: AwsArgs) -> anyhow::Result<ExitCode> {
    let options = AwsOptions {
        region: args.region.clone(),
        profile: args.profile.clone(),
        endpoint_url: args.endpoint_url.clone(),
    };
    let sdk_config = ferrotype_ops::load_sdk_config(&options).await;
    let clients = Clients::new(&sdk_config, &options);
    let mut out = std::io::stdout().lock();
    let bucket = match &args.command {
        AwsCommand::Backfill(backfill) => backfill.bucket.as_deref(),
        AwsCommand::Reconcile(reconcile) => reconcile.bucket.as_deref(),
        _ => None,
    };
    let pipeline = || {
        ferrotype_ops::resolve_pipeline(
            &clients.cloudformation,
            args.stack.as_deref(),
            args.state_machine.as_deref(),
            bucket,
        )
    };
    match &args.command {
        AwsCommand::Executions(ExecutionsCommand::List(list)) => {
            let pipeline: Pipeline = pipeline().await?;
            let filter = list.window.filter(list.status.as_deref())?;
            let machine =
                ferrotype_ops::machine::describe(&clients.sfn, pipeline.state_machine_arn()?)
                    .await?;
            let (executions, truncated) = match machine.workflow {
                WorkflowType::Standard => {
                    ferrotype_ops::list_executions(&clients.sfn, &machine.arn, &filter).await?
                }
                WorkflowType::Express => {
                    ferrotype_ops::express::list_executions(
                        &clients.logs,
                        machine.express_log_group()?,
                        &filter,
                    )
                    .await?
                }
            };
            ferrotype_ops::write_execution_list(&mut out, &executions, truncated)?;
            Ok(ExitCode::SUCCESS)
        }
        AwsCommand::Executions(ExecutionsCommand::Show { execution_arn }) => {
            match ferrotype_ops::express::state_machine_of(execution_arn) {
                None => {
                    ferrotype_ops::show_execution(&clients.sfn, execution_arn, &mut out).await?
                }
                Some(state_machine_arn) => {
                    let machine =
                        ferrotype_ops::machine::describe(&clients.sfn, &state_machine_arn).await?;
                    ferrotype_ops::executions::show_express_execution(
                        &clients.logs,
                        machine.express_log_group()?,
                        execution_arn,
                        &mut out,
                    )
                    .await?;
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        AwsCommand::Redrive(redrive) => {
            let arns = if redrive.all_failed {
                let pipeline = pipeline().await?;
                // Every status Step Functions can redrive from; redrive_executions skips (and names)
                // those DescribeExecution marks NOT_REDRIVABLE.
                let mut arns = Vec::new();
                for status in ["FAILED", "TIMED_OUT", "ABORTED"] {
                    let filter = redrive.window.filter(Some(status))?;
                    let (ended, _) = ferrotype_ops::list_executions(
                        &clients.sfn,
                        pipeline.state_machine_arn()?,
                        &filter,
                    )
                    .await?;
                    arns.extend(ended.into_iter().map(|execution| execution.execution_arn));
                }
                arns
            } else {
                redrive.execution_arns.clone()
            };
            let summary = ferrotype_ops::redrive_executions(&clients.sfn, &arns, &mut out).await?;
            Ok(if summary.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AwsCommand::Rerun(rerun) => {
            let pipeline = pipeline().await?;
            let machine =
                ferrotype_ops::machine::describe(&clients.sfn, pipeline.state_machine_arn()?)
                    .await?;
            if machine.workflow == WorkflowType::Standard {
                anyhow::bail!(
                    "{} is a Standard state machine: redrive its failed executions (ferrotype aws redrive), \
                     which resumes them from the failed state",
                    machine.arn
                );
            }
            let log_group = machine.express_log_group()?;
            let filter = rerun.window.filter(None)?;
            let (candidates, names) = if rerun.all_failed {
                ferrotype_ops::rerun::failed_in_window(&clients.logs, log_group, &filter).await?
            } else {
                let named = ferrotype_ops::rerun::named_in_log(
                    &clients.logs,
                    log_group,
                    &rerun.execution_arns,
                )
                .await?;
                let (_, names) =
                    ferrotype_ops::rerun::failed_in_window(&clients.logs, log_group, &filter)
                        .await?;
                (named, names)
            };
            let summary = ferrotype_ops::rerun(
                &clients.sfn,
                &machine.arn,
                &candidates,
                &names,
                rerun.dry_run,
                &mut out,
            )
            .await?;
            Ok(if summary.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AwsCommand::Backfill(backfill) => {
            let text = std::fs::read_to_string(&backfill.config)
                .with_context(|| format!("reading {}", backfill.config.display()))?;
            let config =
                Config::from_json(&text).with_context(|| backfill.config.display().to_string())?;
            let pipeline = pipeline().await?;
            if !backfill.per_object {
                let prefixes = ferrotype_ops::backfill::listing_prefixes(
                    &config,
                    backfill.prefix.as_deref(),
                    backfill.profile_name.as_deref(),
                )?;
                let backfill_state_machine_arn = match &backfill.backfill_state_machine {
                    Some(arn) => arn.clone(),
                    None => pipeline.backfill_state_machine_arn()?.to_owned(),
                };
                let request = DistributedBackfill {
                    backfill_state_machine_arn,
                    bucket: pipeline.input_bucket()?.to_owned(),
                    prefixes,
                    max_concurrency: backfill.concurrency,
                    inventory_manifest: backfill
                        .inventory
                        .as_deref()
                        .map(parse_s3_uri)
                        .transpose()?,
                    dry_run: backfill.dry_run,
                };
                ferrotype_ops::start_backfill(&clients.s3, &clients.sfn, &request, &mut out)
                    .await?;
                return Ok(ExitCode::SUCCESS);
            }
            let request = BackfillRequest {
                bucket: pipeline.input_bucket()?.to_owned(),
                prefix: backfill.prefix.clone(),
                profile_name: backfill.profile_name.clone(),
                state_machine_arn: pipeline.state_machine_arn()?.to_owned(),
                rate_per_second: backfill.rate,
                dry_run: backfill.dry_run,
                reconcile_with: None,
            };
            let progress = ferrotype_ops::backfill::progress_bar(!backfill.dry_run);
            let summary = ferrotype_ops::backfill_per_object(
                &clients.s3,
                &clients.sfn,
                &config,
                &request,
                &progress,
                &mut out,
            )
            .await?;
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        AwsCommand::Reconcile(reconcile) => {
            let text = std::fs::read_to_string(&reconcile.config)
                .with_context(|| format!("reading {}", reconcile.config.display()))?;
            let config =
                Config::from_json(&text).with_context(|| reconcile.config.display().to_string())?;
            let pipeline = pipeline().await?;
            let output_bucket = match &reconcile.output_bucket {
                Some(bucket) => bucket.clone(),
                None => pipeline.output_bucket()?.to_owned(),
            };
            let request = BackfillRequest {
                bucket: pipeline.input_bucket()?.to_owned(),
                prefix: reconcile.prefix.clone(),
                profile_name: None,
                state_machine_arn: pipeline.state_machine_arn()?.to_owned(),
                rate_per_second: reconcile.rate,
                dry_run: reconcile.dry_run,
                reconcile_with: Some(output_bucket),
            };
            let progress = ferrotype_ops::backfill::progress_bar(!reconcile.dry_run);
            let summary = ferrotype_ops::backfill_per_object(
                &clients.s3,
                &clients.sfn,
                &config,
                &request,
                &progress,
                &mut out,
            )
            .await?;
            Ok(if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
    }
}
