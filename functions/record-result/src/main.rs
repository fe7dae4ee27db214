// The handler future (S3 read, then write, inside the runtime's service stack) is deeper than rustc's
// default query depth allows when checking that it is Send.
#![recursion_limit = "256"]

use ferrotype_aws::bootstrap::{self, Environment};

fn main() -> Result<(), lambda_runtime::Error> {
    bootstrap::start(serve)?
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    bootstrap::init_tracing();
    let aws = bootstrap::load_aws_config().await;
    let deps = Environment::from_env().map(|env| {
        record_result::RecordResult::new(bootstrap::s3_client(&aws), env.config, env.output_bucket)
    });
    bootstrap::run(deps, |deps, event| async move {
        record_result::handler(&deps, event).await
    })
    .await
}
