use std::sync::Arc;

use ferrotype_aws::bootstrap::{self, Environment};
use ferrotype_aws::rekognition::RekognitionDetector;
use ferrotype_core::faces::BuiltinDetector;

fn main() -> Result<(), lambda_runtime::Error> {
    bootstrap::start(serve)?
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    bootstrap::init_tracing();
    let aws = bootstrap::load_aws_config().await;
    let deps = Environment::from_env().map(|env| {
        detect_faces::DetectFaces::new(
            bootstrap::s3_client(&aws),
            env.config,
            Arc::new(BuiltinDetector::new()),
        )
        .with_rekognition(Arc::new(RekognitionDetector::new(
            aws_sdk_rekognition::Client::new(&aws),
            detect_faces::REKOGNITION_MIN_CONFIDENCE,
        )))
    });
    bootstrap::run(deps, |deps, event| async move {
        detect_faces::handler(&deps, event).await
    })
    .await
}
