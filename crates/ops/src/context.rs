//! Where the commands act: the SDK configuration (standard credential chain, region, profile, an
//! endpoint override for testing) and the deployed pipeline (state machine and input bucket), given
//! directly or read from the CloudFormation stack's outputs.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};

use crate::error::OpsError;

/// The CfnOutput names of the Ferrotype stack (cdk/lib/ferrotype-stack.ts).
pub const STATE_MACHINE_OUTPUT: &str = "StateMachineArn";
pub const INPUT_BUCKET_OUTPUT: &str = "InputBucketName";
pub const OUTPUT_BUCKET_OUTPUT: &str = "OutputBucketName";
pub const BACKFILL_STATE_MACHINE_OUTPUT: &str = "BackfillStateMachineArn";

/// How many times the SDK tries a call (the first try included) before giving up on throttling and
/// transient errors; the standard mode backs off exponentially with jitter.
const SDK_MAX_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone, Default)]
pub struct AwsOptions {
    pub region: Option<String>,
    /// A named profile of ~/.aws/config.
    pub profile: Option<String>,
    /// Sends every request to this endpoint (LocalStack, moto, Step Functions Local).
    pub endpoint_url: Option<String>,
}

/// Loads the SDK configuration the way the AWS CLI does (environment, profile, SSO, instance role).
pub async fn load_sdk_config(options: &AwsOptions) -> SdkConfig {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(RetryConfig::standard().with_max_attempts(SDK_MAX_ATTEMPTS));
    if let Some(region) = &options.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(profile) = &options.profile {
        loader = loader.profile_name(profile);
    }
    if let Some(endpoint) = &options.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

/// The clients the commands use.
#[derive(Debug, Clone)]
pub struct Clients {
    pub sfn: aws_sdk_sfn::Client,
    pub s3: aws_sdk_s3::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    /// Express executions are recorded only in CloudWatch Logs.
    pub logs: aws_sdk_cloudwatchlogs::Client,
}

impl Clients {
    pub fn new(config: &SdkConfig, options: &AwsOptions) -> Clients {
        // S3-compatible test servers rarely resolve virtual-host bucket names.
        let s3_config = aws_sdk_s3::config::Builder::from(config)
            .force_path_style(options.endpoint_url.is_some())
            .build();
        Clients {
            sfn: aws_sdk_sfn::Client::new(config),
            s3: aws_sdk_s3::Client::from_conf(s3_config),
            cloudformation: aws_sdk_cloudformation::Client::new(config),
            logs: aws_sdk_cloudwatchlogs::Client::new(config),
        }
    }
}

/// The deployed pipeline, as far as the stack or the command line names it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pipeline {
    pub state_machine_arn: Option<String>,
    pub input_bucket: Option<String>,
    /// Read from the stack only (the commands that need them take no option for them yet).
    pub output_bucket: Option<String>,
    pub backfill_state_machine_arn: Option<String>,
}

impl Pipeline {
    pub fn state_machine_arn(&self) -> Result<&str, OpsError> {
        self.state_machine_arn.as_deref().ok_or_else(|| {
            OpsError::Usage("no state machine: pass --state-machine ARN or --stack NAME".to_owned())
        })
    }

    pub fn input_bucket(&self) -> Result<&str, OpsError> {
        self.input_bucket.as_deref().ok_or_else(|| {
            OpsError::Usage("no input bucket: pass --bucket NAME or --stack NAME".to_owned())
        })
    }

    pub fn output_bucket(&self) -> Result<&str, OpsError> {
        self.output_bucket.as_deref().ok_or_else(|| {
            OpsError::Usage(
                "no output bucket: pass --output-bucket NAME or --stack NAME".to_owned(),
            )
        })
    }

    pub fn backfill_state_machine_arn(&self) -> Result<&str, OpsError> {
        self.backfill_state_machine_arn.as_deref().ok_or_else(|| {
            OpsError::Usage(
                "no backfill state machine: pass --backfill-state-machine ARN or --stack NAME (a stack deployed \
                 before the backfill machine has none: redeploy, or use --per-object)"
                    .to_owned(),
            )
        })
    }
}

/// Reads the state machine ARN and input bucket from the outputs of `stack` (DescribeStacks).
pub async fn pipeline_from_stack(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: &str,
) -> Result<Pipeline, OpsError> {
    let answer = cloudformation
        .describe_stacks()
        .stack_name(stack)
        .send()
        .await
        .map_err(|err| OpsError::from_sdk("DescribeStacks", err))?;
    let Some(found) = answer.stacks().first() else {
        return Err(OpsError::Usage(format!("stack {stack} not found")));
    };
    let output = |key: &str| {
        found
            .outputs()
            .iter()
            .find(|output| output.output_key() == Some(key))
            .and_then(|output| output.output_value())
            .map(str::to_owned)
    };
    let pipeline = Pipeline {
        state_machine_arn: output(STATE_MACHINE_OUTPUT),
        input_bucket: output(INPUT_BUCKET_OUTPUT),
        output_bucket: output(OUTPUT_BUCKET_OUTPUT),
        backfill_state_machine_arn: output(BACKFILL_STATE_MACHINE_OUTPUT),
    };
    if pipeline.state_machine_arn.is_none() {
        return Err(OpsError::Usage(format!(
            "stack {stack} has no {STATE_MACHINE_OUTPUT} output (is it the Ferrotype stack?)"
        )));
    }
    Ok(pipeline)
}

/// The pipeline from explicit values, filling what they leave out from the stack when one is named.
pub async fn resolve_pipeline(
    cloudformation: &aws_sdk_cloudformation::Client,
    stack: Option<&str>,
    state_machine_arn: Option<&str>,
    input_bucket: Option<&str>,
) -> Result<Pipeline, OpsError> {
    let mut pipeline = Pipeline {
        state_machine_arn: state_machine_arn.map(str::to_owned),
        input_bucket: input_bucket.map(str::to_owned),
        ..Pipeline::default()
    };
    let needs_stack = pipeline.state_machine_arn.is_none() || pipeline.input_bucket.is_none();
    if let (Some(stack), true) = (stack, needs_stack) {
        let from_stack = pipeline_from_stack(cloudformation, stack).await?;
        pipeline.state_machine_arn = pipeline.state_machine_arn.or(from_stack.state_machine_arn);
        pipeline.input_bucket = pipeline.input_bucket.or(from_stack.input_bucket);
        pipeline.output_bucket = from_stack.output_bucket;
        pipeline.backfill_state_machine_arn = from_stack.backfill_state_machine_arn;
    }
    Ok(pipeline)
}

/// The region and account of a Step Functions ARN (`arn:aws:states:REGION:ACCOUNT:…`).
pub fn arn_region_and_account(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(_partition), Some("states"), Some(region), Some(account)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some((region, account))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn region_and_account_come_from_the_state_machine_arn() {
        assert_eq!(
            arn_region_and_account(
                "arn:aws:states:eu-west-1:123456789012:stateMachine:FerrotypePipeline"
            ),
            Some(("eu-west-1", "123456789012"))
        );
        assert_eq!(
            arn_region_and_account("arn:aws-cn:states:cn-north-1:123456789012:stateMachine:P"),
            Some(("cn-north-1", "123456789012"))
        );
        assert_eq!(
            arn_region_and_account("arn:aws:lambda:eu-west-1:1:function:f"),
            None
        );
        assert_eq!(arn_region_and_account("FerrotypePipeline"), None);
    }
}
