//! Thin AWS adapters shared by the four Lambdas: S3 access with pinned reads, conditional writes and
//! classified failures, the stage error names, and the bootstrap every `main` calls. Image logic lives
//! in ferrotype-core.

pub mod bootstrap;
mod error;
pub mod rekognition;
pub mod s3;
pub mod working_copy;

pub use error::{describe_sdk_error, StageError};
pub use rekognition::RekognitionDetector;
pub use s3::{
    Currency, ObjectHead, ObjectStore, Pin, PutObject, S3Error, S3ErrorKind, VersionRef,
    WriteCondition, Written,
};

/// [`ferrotype_core::cpu::run`] for a stage: a panic is `Ferrotype.RenderFailed`.
pub async fn run_cpu<T, F>(work: F) -> Result<T, StageError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    ferrotype_core::cpu::run(work)
        .await
        .map_err(|err| StageError::RenderFailed(err.to_string()))
}
