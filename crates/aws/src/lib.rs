//! Thin AWS adapters shared by the four Lambdas: S3 access with pinned reads and classified failures,
//! the stage error names, and the bootstrap every `main` calls. Image logic lives in ferrotype-core.

pub mod bootstrap;
mod error;
pub mod rekognition;
pub mod s3;

pub use error::{describe_sdk_error, StageError};
pub use rekognition::RekognitionDetector;
pub use s3::{ObjectHead, ObjectStore, Pin, PutObject, S3Error, S3ErrorKind};
