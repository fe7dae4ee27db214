use ferrotype_aws::bootstrap::{self, Environment};

fn main() -> Result<(), lambda_runtime::Error> {
    bootstrap::start(serve)?
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    bootstrap::init_tracing();
    let aws = bootstrap::load_aws_config().await;
    let deps = Environment::from_env().map(|env| {
        render_variant::RenderVariant::new(
            bootstrap::s3_client(&aws),
            env.config,
            env.output_bucket,
        )
    });
    bootstrap::run(deps, |deps, event| async move {
        render_variant::handler(&deps, event).await
    })
    .await
}
