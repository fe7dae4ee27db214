//! What the commands need to know of a state machine: Standard or Express, and where it logs.
//! Standard executions are read through the execution APIs; Express ones exist only in their logs.

use aws_sdk_sfn::types::StateMachineType;

use crate::error::OpsError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkflowType {
    Standard,
    Express,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    pub arn: String,
    pub workflow: WorkflowType,
    /// The CloudWatch Logs group it logs to, if logging is on.
    pub log_group: Option<String>,
}

impl Machine {
    /// The log group of an Express machine, or why its executions cannot be read.
    pub fn express_log_group(&self) -> Result<&str, OpsError> {
        self.log_group.as_deref().ok_or_else(|| {
            OpsError::Usage(format!(
                "{} is an Express state machine without logging: its executions are recorded nowhere \
                 (the Ferrotype stack logs at level ALL; was logging turned off?)",
                self.arn
            ))
        })
    }
}

/// DescribeStateMachine: the type and the log group.
pub async fn describe(
    sfn: &aws_sdk_sfn::Client,
    state_machine_arn: &str,
) -> Result<Machine, OpsError> {
    let described = sfn
        .describe_state_machine()
        .state_machine_arn(state_machine_arn)
        .send()
        .await
        .map_err(|err| OpsError::from_sdk("DescribeStateMachine", err))?;
    let workflow = match described.r#type() {
        StateMachineType::Express => WorkflowType::Express,
        _ => WorkflowType::Standard,
    };
    let log_group = described
        .logging_configuration()
        .and_then(|logging| logging.destinations().first())
        .and_then(|destination| destination.cloud_watch_logs_log_group())
        .and_then(|group| group.log_group_arn())
        .and_then(log_group_name);
    Ok(Machine {
        arn: described.state_machine_arn().to_owned(),
        workflow,
        log_group,
    })
}

/// `arn:aws:logs:REGION:ACCOUNT:log-group:NAME:*` → `NAME` (log group names hold no colon, so the name
/// ends at the next one).
pub fn log_group_name(arn: &str) -> Option<String> {
    let rest = arn.split_once(":log-group:")?.1;
    let name = rest.split(':').next()?;
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_group_names_come_out_of_their_arns() {
        assert_eq!(
            log_group_name("arn:aws:logs:eu-west-1:123456789012:log-group:/aws/vendedlogs/states/Ferrotype-pipeline:*").as_deref(),
            Some("/aws/vendedlogs/states/Ferrotype-pipeline")
        );
        assert_eq!(
            log_group_name("arn:aws:logs:eu-west-1:123456789012:log-group:plain").as_deref(),
            Some("plain")
        );
        assert_eq!(log_group_name("arn:aws:s3:::bucket"), None);
    }
}
