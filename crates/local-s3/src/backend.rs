//! What a storage backend provides to the engine: bytes and records, and one atomic step, the commit.
//! Backends decide nothing about S3; the engine hands them a decision to run under the key's lock.

use std::io;
use std::ops::Range;
use std::pin::Pin;
use std::time::SystemTime;

use bytes::Bytes;
use futures::Stream;
use s3s::{S3Error, S3Result};

use crate::model::{Change, KeyRecord, Part, Upload};

/// A stream of body bytes.
pub(crate) type ByteChunks = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send + Sync>>;

/// Bytes written but not committed. Dropping it removes them.
pub(crate) trait StagedBlob: Send + 'static {
    /// The name the committed version will reference.
    fn blob(&self) -> &str;
}

/// What the engine decided for a key, given its record under the key's lock.
pub(crate) struct Decision<S, T> {
    /// The record to store; `None` changes nothing.
    pub record: Option<KeyRecord>,
    /// The staged bytes the new record references.
    pub adopt: Option<S>,
    /// Blobs the new record no longer references: removed after the commit.
    pub release: Vec<String>,
    /// Published after the commit, before the lock is released.
    pub changes: Vec<Change>,
    pub output: T,
}

impl<S, T> Decision<S, T> {
    pub fn unchanged(output: T) -> Decision<S, T> {
        Decision {
            record: None,
            adopt: None,
            release: Vec::new(),
            changes: Vec::new(),
            output,
        }
    }
}

pub(crate) type Decide<S, T> =
    Box<dyn FnOnce(&KeyRecord) -> S3Result<Decision<S, T>> + Send + 'static>;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CommitError {
    /// The decision refused the change (a failed precondition): nothing was written.
    #[error("{0}")]
    Refused(S3Error),
    /// Storing failed; the previous state is intact.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Why staging a body failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StageError {
    #[error(transparent)]
    Io(io::Error),
    /// Reading the request body failed (the client went away, a bad chunk signature, a size limit).
    #[error("{0}")]
    Body(io::Error),
}

#[async_trait::async_trait]
pub(crate) trait Backend: Send + Sync + 'static {
    type Staged: StagedBlob;

    /// A fresh identifier, unique in this store: version ids, blob names, upload ids.
    fn unique_id(&self) -> String;

    async fn buckets(&self) -> io::Result<Vec<(String, SystemTime)>>;
    async fn has_bucket(&self, bucket: &str) -> io::Result<bool>;
    /// Returns false if it existed already.
    async fn create_bucket(&self, bucket: &str, now: SystemTime) -> io::Result<bool>;
    async fn remove_bucket(&self, bucket: &str) -> io::Result<()>;

    /// Writes `body` as a blob named after `id` (and `key`'s extension), not yet visible.
    async fn stage(
        &self,
        bucket: &str,
        key: &str,
        id: &str,
        body: ByteChunks,
    ) -> Result<Self::Staged, StageError>;

    /// The key's record as last committed; `None` if the key never had a version.
    async fn record(&self, bucket: &str, key: &str) -> io::Result<Option<KeyRecord>>;

    /// Every record of keys starting with `prefix`, sorted by key (UTF-8 byte order).
    async fn records(&self, bucket: &str, prefix: &str) -> io::Result<Vec<KeyRecord>>;

    /// Runs `decide` on the key's record with the key locked (against this and every other process), and
    /// stores what it decided atomically: afterwards the key reads as before or as decided, never between.
    async fn commit<T: Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        decide: Decide<Self::Staged, T>,
    ) -> Result<T, CommitError>;

    /// `range` of a committed blob; `None` if the blob is gone (its version was deleted meanwhile).
    async fn read(
        &self,
        bucket: &str,
        key: &str,
        blob: &str,
        range: Range<u64>,
    ) -> io::Result<Option<ByteChunks>>;

    async fn save_upload(&self, bucket: &str, upload: &Upload) -> io::Result<()>;
    async fn upload(&self, bucket: &str, upload_id: &str) -> io::Result<Option<Upload>>;
    async fn uploads(&self, bucket: &str) -> io::Result<Vec<Upload>>;
    /// Stores a part, replacing an earlier upload of the same part number.
    async fn save_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part: Part,
        blob: Self::Staged,
    ) -> io::Result<()>;
    /// The parts uploaded so far, by part number.
    async fn parts(&self, bucket: &str, upload_id: &str) -> io::Result<Vec<Part>>;
    async fn read_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part_number: u32,
    ) -> io::Result<Option<ByteChunks>>;
    async fn remove_upload(&self, bucket: &str, upload_id: &str) -> io::Result<()>;
}
