//! The in-memory backend: the same records as on disk, bytes in memory, one lock for everything.
//! Nothing here waits, spawns or reads a clock, so a simulation on a current-thread runtime replays
//! exactly: identifiers come from a counter.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::ops::Range;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::backend::{Backend, ByteChunks, CommitError, Decide, Decision, StageError, StagedBlob};
use crate::model::{KeyRecord, Part, Upload};
use crate::notify::Notifier;

#[derive(Debug)]
pub(crate) struct MemoryBackend {
    state: Mutex<State>,
    notifier: Arc<Notifier>,
}

#[derive(Debug, Default)]
struct State {
    next_id: u64,
    buckets: BTreeMap<String, Bucket>,
}

#[derive(Debug)]
struct Bucket {
    created: SystemTime,
    keys: BTreeMap<String, KeyRecord>,
    blobs: HashMap<String, Bytes>,
    uploads: BTreeMap<String, MemoryUpload>,
}

#[derive(Debug)]
struct MemoryUpload {
    upload: Upload,
    parts: BTreeMap<u32, (Part, Bytes)>,
}

pub(crate) struct MemoryStaged {
    blob: String,
    bytes: Bytes,
}

impl StagedBlob for MemoryStaged {
    fn blob(&self) -> &str {
        &self.blob
    }
}

fn no_bucket(bucket: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no bucket named {bucket}"))
}

fn chunks(bytes: Bytes) -> ByteChunks {
    Box::pin(futures::stream::iter([Ok(bytes)]))
}

impl MemoryBackend {
    pub fn new(notifier: Arc<Notifier>) -> MemoryBackend {
        MemoryBackend {
            state: Mutex::new(State::default()),
            notifier,
        }
    }

    /// Creates a bucket unless it exists (what the async [`Backend::create_bucket`] does, callable when
    /// building the store).
    pub fn add_bucket(&self, bucket: &str, now: SystemTime) -> bool {
        let mut state = self.lock();
        if state.buckets.contains_key(bucket) {
            return false;
        }
        state.buckets.insert(
            bucket.to_owned(),
            Bucket {
                created: now,
                keys: BTreeMap::new(),
                blobs: HashMap::new(),
                uploads: BTreeMap::new(),
            },
        );
        true
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation below completes before the guard drops; a panic elsewhere leaves consistent data.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn with_bucket<T>(
        &self,
        bucket: &str,
        f: impl FnOnce(&mut Bucket) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.lock();
        let bucket_state = state
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| no_bucket(bucket))?;
        f(bucket_state)
    }
}

#[async_trait::async_trait]
impl Backend for MemoryBackend {
    type Staged = MemoryStaged;

    fn unique_id(&self) -> String {
        let mut state = self.lock();
        state.next_id += 1;
        format!("{:032x}", state.next_id)
    }

    async fn buckets(&self) -> io::Result<Vec<(String, SystemTime)>> {
        Ok(self
            .lock()
            .buckets
            .iter()
            .map(|(name, bucket)| (name.clone(), bucket.created))
            .collect())
    }

    async fn has_bucket(&self, bucket: &str) -> io::Result<bool> {
        Ok(self.lock().buckets.contains_key(bucket))
    }

    async fn create_bucket(&self, bucket: &str, now: SystemTime) -> io::Result<bool> {
        Ok(self.add_bucket(bucket, now))
    }

    async fn remove_bucket(&self, bucket: &str) -> io::Result<()> {
        self.lock().buckets.remove(bucket);
        Ok(())
    }

    async fn stage(
        &self,
        _bucket: &str,
        _key: &str,
        id: &str,
        mut body: ByteChunks,
    ) -> Result<MemoryStaged, StageError> {
        let mut bytes = BytesMut::new();
        while let Some(chunk) = body.next().await {
            bytes.extend_from_slice(&chunk.map_err(StageError::Body)?);
        }
        Ok(MemoryStaged {
            blob: id.to_owned(),
            bytes: bytes.freeze(),
        })
    }

    async fn record(&self, bucket: &str, key: &str) -> io::Result<Option<KeyRecord>> {
        self.with_bucket(bucket, |bucket| Ok(bucket.keys.get(key).cloned()))
    }

    async fn records(&self, bucket: &str, prefix: &str) -> io::Result<Vec<KeyRecord>> {
        self.with_bucket(bucket, |bucket| {
            Ok(bucket
                .keys
                .range(prefix.to_owned()..)
                .take_while(|(key, _)| key.starts_with(prefix))
                .map(|(_, record)| record.clone())
                .collect())
        })
    }

    async fn commit<T: Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        decide: Decide<MemoryStaged, T>,
    ) -> Result<T, CommitError> {
        let mut state = self.lock();
        let bucket_state = state
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| no_bucket(bucket))?;
        let current = bucket_state
            .keys
            .get(key)
            .cloned()
            .unwrap_or_else(|| KeyRecord::empty(key));
        let Decision {
            record,
            adopt,
            release,
            changes,
            output,
        } = decide(&current).map_err(CommitError::Refused)?;
        if let Some(record) = record {
            if let Some(staged) = adopt {
                bucket_state.blobs.insert(staged.blob, staged.bytes);
            }
            for blob in release {
                bucket_state.blobs.remove(&blob);
            }
            bucket_state.keys.insert(key.to_owned(), record);
        }
        for change in changes {
            self.notifier.publish(change);
        }
        Ok(output)
    }

    async fn read(
        &self,
        bucket: &str,
        _key: &str,
        blob: &str,
        range: Range<u64>,
    ) -> io::Result<Option<ByteChunks>> {
        self.with_bucket(bucket, |bucket| {
            Ok(bucket
                .blobs
                .get(blob)
                .map(|bytes| chunks(bytes.slice(range.start as usize..range.end as usize))))
        })
    }

    async fn save_upload(&self, bucket: &str, upload: &Upload) -> io::Result<()> {
        self.with_bucket(bucket, |bucket| {
            bucket.uploads.insert(
                upload.upload_id.clone(),
                MemoryUpload {
                    upload: upload.clone(),
                    parts: BTreeMap::new(),
                },
            );
            Ok(())
        })
    }

    async fn upload(&self, bucket: &str, upload_id: &str) -> io::Result<Option<Upload>> {
        self.with_bucket(bucket, |bucket| {
            Ok(bucket
                .uploads
                .get(upload_id)
                .map(|upload| upload.upload.clone()))
        })
    }

    async fn uploads(&self, bucket: &str) -> io::Result<Vec<Upload>> {
        self.with_bucket(bucket, |bucket| {
            Ok(bucket
                .uploads
                .values()
                .map(|upload| upload.upload.clone())
                .collect())
        })
    }

    async fn save_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part: Part,
        blob: MemoryStaged,
    ) -> io::Result<()> {
        self.with_bucket(bucket, |bucket| {
            let upload = bucket
                .uploads
                .get_mut(upload_id)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the upload was aborted"))?;
            upload.parts.insert(part.part_number, (part, blob.bytes));
            Ok(())
        })
    }

    async fn parts(&self, bucket: &str, upload_id: &str) -> io::Result<Vec<Part>> {
        self.with_bucket(bucket, |bucket| {
            Ok(bucket
                .uploads
                .get(upload_id)
                .map(|upload| {
                    upload
                        .parts
                        .values()
                        .map(|(part, _)| part.clone())
                        .collect()
                })
                .unwrap_or_default())
        })
    }

    async fn read_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part_number: u32,
    ) -> io::Result<Option<ByteChunks>> {
        self.with_bucket(bucket, |bucket| {
            Ok(bucket
                .uploads
                .get(upload_id)
                .and_then(|upload| upload.parts.get(&part_number))
                .map(|(_, bytes)| chunks(bytes.clone())))
        })
    }

    async fn remove_upload(&self, bucket: &str, upload_id: &str) -> io::Result<()> {
        self.with_bucket(bucket, |bucket| {
            bucket.uploads.remove(upload_id);
            Ok(())
        })
    }
}
