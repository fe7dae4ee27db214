// The handler futures nest deeply (SDK calls inside async fns); computing their layout needs more
// than the default query depth.
#![recursion_limit = "256"]

use ferrotype_aws::bootstrap::{self, Environment};

fn main() -> Result<(), lambda_runtime::Error> {
    bootstrap::start(serve)?
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    bootstrap::init_tracing();
    let aws = bootstrap::load_aws_config().await;
    let deps = Environment::from_env().map(|env| {
        validate::Validate::new(bootstrap::s3_client(&aws), env.config, env.output_bucket)
    });
    bootstrap::run(deps, |deps, event| async move {
        validate::handler(&deps, event).await
    })
    .await
}
