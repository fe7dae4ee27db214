//! The on-disk backend: crash-safe, and shared safely by several processes.
//!
//! Layout under the root folder:
//! ```text
//! <root>/<bucket>/<key>                 read-only mirror of each key's current version (a hard link), for
//!                                       people to browse; only for path-safe keys; never read by the store
//! <root>/.store/FORMAT                  layout version
//! <root>/.store/locks/00 … ff           lock stripes (flock), chosen by the key's hash, made on first use
//! <root>/.store/procs/<process>.lock    held (flock) by each live process for its lifetime
//! <root>/.store/tmp/<process>/          that process's uncommitted files, and `intents/` naming the keys
//!                                       it is committing
//! <root>/.store/buckets/<bucket>/objects/<hh>/<sha256(key)>/record.json
//!                                       the key's versions (the commit point), and one immutable file per
//!                                       version: <version id>.<key's extension>
//! <root>/.store/buckets/<bucket>/uploads/<upload id>/  multipart uploads in progress
//! ```
//! A commit, under the key's stripe lock: write an intent, move the staged (fsync'd) version file into the
//! key's folder, write the new record to a temp file, fsync it, rename it over `record.json` (the atomic
//! step), fsync the folder, delete released version files, update the mirror, publish, drop the intent.
//! A process killed at any instant leaves the old or the new record, never a torn one; what it leaves
//! besides (temp files, a moved but unreferenced version file, a stale mirror) is repaired by the next
//! process that opens the store: it finds dead processes by taking their lock (the kernel released it),
//! replays their intents under the key's lock, and deletes their temp folder.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::backend::{Backend, ByteChunks, CommitError, Decide, Decision, StageError, StagedBlob};
use crate::model::{KeyRecord, Part, Upload};
use crate::notify::Notifier;

const FORMAT: &str = "ferrotype-local-s3 store 1\n";
const RECORD: &str = "record.json";
/// Longest file name segment most file systems take.
const MAX_SEGMENT: usize = 255;
/// Bytes of a body gathered before they are written: one trip to the blocking pool per batch.
const STAGE_BATCH: usize = 8 * 1024 * 1024;

#[derive(Debug)]
pub(crate) struct DiskBackend {
    root: PathBuf,
    store: PathBuf,
    process: String,
    /// Held for the life of this backend: tells other processes we are alive.
    _alive: File,
    nonce: u64,
    counter: AtomicU64,
    notifier: Arc<Notifier>,
    /// fsync files and folders at each commit (survive power loss, not only a killed process).
    sync: bool,
}

pub(crate) struct DiskStaged {
    blob: String,
    /// `None` once moved into the store.
    temp: Option<PathBuf>,
}

impl DiskStaged {
    /// Moves the bytes to `to` (same file system: a rename).
    fn move_to(mut self, to: &Path) -> io::Result<()> {
        let Some(temp) = self.temp.take() else {
            return Err(io::Error::other("staged bytes moved twice"));
        };
        fs::rename(&temp, to).inspect_err(|_| {
            let _ = fs::remove_file(&temp);
        })
    }
}

impl StagedBlob for DiskStaged {
    fn blob(&self) -> &str {
        &self.blob
    }
}

impl Drop for DiskStaged {
    fn drop(&mut self) {
        if let Some(temp) = &self.temp {
            let _ = fs::remove_file(temp);
        }
    }
}

/// `true` if the error is "no such file or directory".
fn not_found(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The key's extension if it is a plain one (`.jpg`, `.json`), so version files open with the right app.
fn extension(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let (stem, ext) = name.rsplit_once('.')?;
    (!stem.is_empty()
        && (1..=16).contains(&ext.len())
        && ext.bytes().all(|b| b.is_ascii_alphanumeric()))
    .then_some(ext)
}

fn blob_name(id: &str, key: &str) -> String {
    match extension(key) {
        Some(ext) => format!("{id}.{ext}"),
        None => id.to_owned(),
    }
}

/// Where the mirror of `key` goes under its bucket folder, if every segment is a usable file name.
fn mirror_path(key: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for segment in key.split('/') {
        if segment.is_empty()
            || segment == "."
            || segment == ".."
            || segment.len() > MAX_SEGMENT
            || segment.contains('\0')
        {
            return None;
        }
        path.push(segment);
    }
    Some(path)
}

fn write_file(path: &Path, bytes: &[u8], sync: bool) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(bytes)?;
    if sync {
        file.sync_all()?;
    }
    Ok(())
}

fn sync_dir(path: &Path, sync: bool) -> io::Result<()> {
    if sync {
        File::open(path)?.sync_all()?;
    }
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|err| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{} is corrupt: {err}", path.display()),
            )
        }),
        Err(err) if not_found(&err) => Ok(None),
        Err(err) => Err(err),
    }
}

fn make_read_only(path: &Path) -> io::Result<()> {
    let mut permissions = fs::metadata(path)?.permissions();
    permissions.set_readonly(true);
    fs::set_permissions(path, permissions)
}

/// An exclusive lock on one stripe, released when dropped (also by the kernel if the process dies).
struct StripeLock(File);

impl Drop for StripeLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

impl DiskBackend {
    /// Opens (creating if needed) the store under `root`, then repairs what dead processes left. Without
    /// `sync` (for stores in temporary folders) commits stay atomic for any process crash, but a power
    /// loss may lose the latest ones.
    pub fn open(root: &Path, notifier: Arc<Notifier>, sync: bool) -> io::Result<DiskBackend> {
        let store = root.join(".store");
        for dir in ["locks", "procs", "tmp", "buckets"] {
            fs::create_dir_all(store.join(dir))?;
        }
        let format_path = store.join("FORMAT");
        match fs::read_to_string(&format_path) {
            Ok(found) if found == FORMAT => {}
            Ok(found) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                    "{} holds a store of another format ({:?}); move it away or use another folder",
                    store.display(),
                    found.trim()
                ),
                ))
            }
            Err(err) if not_found(&err) => {
                let temp = store.join(format!("FORMAT.{}", std::process::id()));
                write_file(&temp, FORMAT.as_bytes(), true)?;
                fs::rename(&temp, &format_path)?;
            }
            Err(err) => return Err(err),
        }
        let nonce = fastrand::u64(..)
            ^ (u64::from(std::process::id()) << 32)
            ^ u64::from(
                SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|since| since.subsec_nanos())
                    .unwrap_or(0),
            );
        let process = format!("{}-{nonce:016x}", std::process::id());
        // Locked before it gets its visible name: no other process may ever see it unlocked and take us
        // for dead. Between its creation and its lock the file is unlocked, so its first name must not
        // look like a dead process's to another process opening the store at the same moment (which
        // removed it, and this rename then failed): others leave young `.new` files alone. The temp
        // folder comes after, so a temp folder without a lock file is a dead one's.
        let unpublished = store.join("procs").join(format!("{process}.new"));
        let alive = File::create(&unpublished)?;
        alive.lock()?;
        fs::rename(
            &unpublished,
            store.join("procs").join(format!("{process}.lock")),
        )?;
        fs::create_dir_all(store.join("tmp").join(&process).join("intents"))?;

        let backend = DiskBackend {
            root: root.to_path_buf(),
            store,
            process,
            _alive: alive,
            nonce,
            counter: AtomicU64::new(0),
            notifier,
            sync,
        };
        backend.recover_dead_processes()?;
        Ok(backend)
    }

    fn bucket_dir(&self, bucket: &str) -> PathBuf {
        self.store.join("buckets").join(bucket)
    }

    fn key_dir(&self, bucket: &str, hash: &str) -> PathBuf {
        self.bucket_dir(bucket)
            .join("objects")
            .join(&hash[..2])
            .join(hash)
    }

    fn upload_dir(&self, bucket: &str, upload_id: &str) -> PathBuf {
        self.bucket_dir(bucket).join("uploads").join(upload_id)
    }

    fn temp_dir(&self) -> PathBuf {
        self.store.join("tmp").join(&self.process)
    }

    fn temp_path(&self, what: &str) -> PathBuf {
        self.temp_dir().join(format!("{}.{what}", self.next_id()))
    }

    fn next_id(&self) -> String {
        let count = self.counter.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}{count:016x}", self.nonce)
    }

    fn intent_path(&self, bucket: &str, hash: &str) -> PathBuf {
        self.temp_dir()
            .join("intents")
            .join(format!("{bucket}~{hash}"))
    }

    fn lock_stripe(&self, hash: &str) -> io::Result<StripeLock> {
        // Created on first use and never removed, so every process locks the same file: creating all
        // stripes up front cost a fresh store hundreds of file creations for keys it may never see.
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.store.join("locks").join(&hash[..2]))?;
        file.lock()?;
        Ok(StripeLock(file))
    }

    /// The file holding a version's bytes, if the key has that version and it is an object.
    pub fn version_file(&self, bucket: &str, key: &str, version_id: &str) -> Option<PathBuf> {
        let dir = self.key_dir(bucket, &key_hash(key));
        let record: KeyRecord = read_json(&dir.join(RECORD)).ok()??;
        let object = record.version(version_id)?.object.as_ref()?;
        Some(dir.join(&object.blob))
    }

    /// The file holding the key's current version, if it has one.
    pub fn current_file(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        let dir = self.key_dir(bucket, &key_hash(key));
        let record: KeyRecord = read_json(&dir.join(RECORD)).ok()??;
        let (_, object) = record.current_object()?;
        Some(dir.join(&object.blob))
    }

    /// Processes whose lock we can take are dead: finish or undo what they were committing, delete their
    /// temp files. Live processes hold their lock, so nothing of theirs is touched.
    fn recover_dead_processes(&self) -> io::Result<()> {
        let procs = self.store.join("procs");
        for entry in fs::read_dir(&procs)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|name| name.to_str()) else {
                continue;
            };
            if name.ends_with(".new") {
                // A process that died before publishing its lock: nothing else of it exists. A young one
                // may be a live process between creating and locking it.
                let old = fs::metadata(&path)
                    .and_then(|meta| meta.modified())
                    .ok()
                    .and_then(|modified| SystemTime::now().duration_since(modified).ok())
                    .is_some_and(|age| age > std::time::Duration::from_secs(60));
                if old {
                    if let Ok(file) = OpenOptions::new().write(true).open(&path) {
                        if file.try_lock().is_ok() {
                            let _ = fs::remove_file(&path);
                        }
                    }
                }
                continue;
            }
            let Some(process) = name.strip_suffix(".lock") else {
                continue;
            };
            if process == self.process {
                continue;
            }
            let file = match OpenOptions::new().write(true).open(&path) {
                Ok(file) => file,
                Err(err) if not_found(&err) => continue,
                Err(err) => return Err(err),
            };
            match file.try_lock() {
                Ok(()) => {
                    self.recover_process(process);
                    let _ = fs::remove_file(&path);
                }
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(err)) => return Err(err),
            }
        }
        // A temp folder whose lock file is gone belongs to a process whose recovery was interrupted.
        for entry in fs::read_dir(self.store.join("tmp"))? {
            let entry = entry?;
            let Some(process) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if process != self.process && !procs.join(format!("{process}.lock")).exists() {
                self.recover_process(&process);
            }
        }
        Ok(())
    }

    fn recover_process(&self, process: &str) {
        let temp = self.store.join("tmp").join(process);
        if let Ok(intents) = fs::read_dir(temp.join("intents")) {
            for intent in intents.flatten() {
                let name = intent.file_name();
                let Some((bucket, hash)) = name.to_str().and_then(|name| name.split_once('~'))
                else {
                    continue;
                };
                if let Err(err) = self.repair_key(bucket, hash) {
                    tracing::warn!(
                        bucket,
                        hash,
                        "cannot repair a key a dead process was committing: {err}"
                    );
                }
            }
        }
        if let Err(err) = fs::remove_dir_all(&temp) {
            if !not_found(&err) {
                tracing::warn!("cannot remove {}: {err}", temp.display());
            }
        }
    }

    /// Under the key's lock: deletes version files its record does not reference, and mirrors its record.
    fn repair_key(&self, bucket: &str, hash: &str) -> io::Result<()> {
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(());
        }
        let _lock = self.lock_stripe(hash)?;
        let dir = self.key_dir(bucket, hash);
        let record: Option<KeyRecord> = read_json(&dir.join(RECORD))?;
        let referenced: HashSet<&str> = record.iter().flat_map(KeyRecord::blobs).collect();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if not_found(&err) => return Ok(()),
            Err(err) => return Err(err),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name != RECORD && !referenced.contains(name) {
                fs::remove_file(entry.path())?;
            }
        }
        if let Some(record) = &record {
            self.update_mirror(bucket, &dir, record);
        }
        Ok(())
    }

    /// Makes `<root>/<bucket>/<key>` show the key's current version, or removes it. Errors only cost the
    /// mirror its freshness, so they are logged; a mirror that cannot be updated is removed rather than
    /// left showing an older version.
    fn update_mirror(&self, bucket: &str, key_dir: &Path, record: &KeyRecord) {
        let Some(relative) = mirror_path(&record.key) else {
            return;
        };
        let bucket_dir = self.root.join(bucket);
        let target = bucket_dir.join(&relative);
        let result = match record.current_object() {
            Some((_, object)) => self.link_mirror(&key_dir.join(&object.blob), &target),
            None => remove_mirror(&bucket_dir, &target),
        };
        if let Err(err) = result {
            tracing::warn!(
                "cannot update the mirror {} of s3://{bucket}/{}: {err}",
                target.display(),
                record.key
            );
            let _ = remove_mirror(&bucket_dir, &target);
        }
    }

    fn link_mirror(&self, blob: &Path, target: &Path) -> io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Some(parent) = target.parent() else {
            return Ok(());
        };
        if let (Ok(existing), Ok(wanted)) = (fs::symlink_metadata(target), fs::metadata(blob)) {
            if (existing.dev(), existing.ino()) == (wanted.dev(), wanted.ino()) {
                return Ok(());
            }
        }
        // Another process may remove an emptied folder between our mkdir and rename: try again.
        for _ in 0..3 {
            if let Err(err) = fs::create_dir_all(parent) {
                // A file is where a folder would have to be ("a" mirrored, now "a/b"): no mirror.
                if matches!(
                    err.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::NotADirectory
                ) {
                    return Ok(());
                }
                return Err(err);
            }
            let link = self.temp_path("link");
            fs::hard_link(blob, &link)?;
            match fs::rename(&link, target) {
                Ok(()) => {
                    // rename() does nothing when both names are links to one file: drop ours.
                    let _ = fs::remove_file(&link);
                    return Ok(());
                }
                Err(err) => {
                    let _ = fs::remove_file(&link);
                    match err.kind() {
                        // A folder is where the file would go ("a/b" mirrored, now "a"): no mirror.
                        io::ErrorKind::IsADirectory
                        | io::ErrorKind::DirectoryNotEmpty
                        | io::ErrorKind::NotADirectory => return Ok(()),
                        io::ErrorKind::NotFound => continue,
                        _ => return Err(err),
                    }
                }
            }
        }
        Ok(())
    }

    fn commit_blocking<T>(
        &self,
        bucket: &str,
        key: &str,
        decide: Decide<DiskStaged, T>,
    ) -> Result<T, CommitError> {
        let hash = key_hash(key);
        let _lock = self.lock_stripe(&hash)?;
        let dir = self.key_dir(bucket, &hash);
        if !self.bucket_dir(bucket).is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no bucket named {bucket}"),
            )
            .into());
        }
        let current: KeyRecord =
            read_json(&dir.join(RECORD))?.unwrap_or_else(|| KeyRecord::empty(key));
        let Decision {
            record,
            adopt,
            release,
            changes,
            output,
        } = decide(&current).map_err(CommitError::Refused)?;
        let Some(record) = record else {
            return Ok(output);
        };

        let intent = self.intent_path(bucket, &hash);
        File::create(&intent)?;
        let stored = self.store_record(&dir, &record, adopt);
        if let Err(err) = stored {
            let _ = fs::remove_file(&intent);
            return Err(err.into());
        }
        // Committed. What follows only tidies up; a crash here is repaired from the intent.
        for blob in release {
            if let Err(err) = fs::remove_file(dir.join(&blob)) {
                if !not_found(&err) {
                    tracing::warn!("cannot remove the deleted version file {blob}: {err}");
                }
            }
        }
        self.update_mirror(bucket, &dir, &record);
        for change in changes {
            self.notifier.publish(change);
        }
        let _ = fs::remove_file(&intent);
        Ok(output)
    }

    /// Moves the staged version file in and replaces the record; on failure undoes the move, so the key
    /// keeps reading as before.
    fn store_record(
        &self,
        dir: &Path,
        record: &KeyRecord,
        adopt: Option<DiskStaged>,
    ) -> io::Result<()> {
        fs::create_dir_all(dir)?;
        let adopted = match adopt {
            Some(staged) => {
                let path = dir.join(&staged.blob);
                staged.move_to(&path)?;
                Some(path)
            }
            None => None,
        };
        let result = (|| {
            let bytes = serde_json::to_vec(record).map_err(io::Error::other)?;
            let temp = self.temp_path("record");
            if let Err(err) = write_file(&temp, &bytes, self.sync) {
                let _ = fs::remove_file(&temp);
                return Err(err);
            }
            if let Err(err) = fs::rename(&temp, dir.join(RECORD)) {
                let _ = fs::remove_file(&temp);
                return Err(err);
            }
            sync_dir(dir, self.sync)
        })();
        if result.is_err() {
            if let Some(path) = adopted {
                let _ = fs::remove_file(path);
            }
        }
        result
    }

    fn records_blocking(&self, bucket: &str, prefix: &str) -> io::Result<Vec<KeyRecord>> {
        let objects = self.bucket_dir(bucket).join("objects");
        let mut records = Vec::new();
        let shards = match fs::read_dir(&objects) {
            Ok(shards) => shards,
            Err(err) if not_found(&err) => {
                if self.bucket_dir(bucket).is_dir() {
                    return Ok(records);
                }
                return Err(err);
            }
            Err(err) => return Err(err),
        };
        for shard in shards {
            for key_dir in fs::read_dir(shard?.path())? {
                let path = key_dir?.path().join(RECORD);
                if let Some(record) = read_json::<KeyRecord>(&path)? {
                    if record.key.starts_with(prefix) {
                        records.push(record);
                    }
                }
            }
        }
        records.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(records)
    }
}

impl Drop for DiskBackend {
    /// A clean exit leaves nothing for the next process to repair: the temp folder first, then the lock
    /// file (while still holding the lock).
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(self.temp_dir());
        let _ = fs::remove_file(
            self.store
                .join("procs")
                .join(format!("{}.lock", self.process)),
        );
    }
}

fn remove_mirror(bucket_dir: &Path, target: &Path) -> io::Result<()> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_file() => fs::remove_file(target)?,
        Ok(_) => return Ok(()),
        Err(err) if not_found(&err) || err.kind() == io::ErrorKind::NotADirectory => return Ok(()),
        Err(err) => return Err(err),
    }
    // Empty folders left behind would block a key of that name: remove them (rmdir fails if not empty).
    let mut dir = target.parent();
    while let Some(current) = dir {
        if current == bucket_dir
            || !current.starts_with(bucket_dir)
            || fs::remove_dir(current).is_err()
        {
            break;
        }
        dir = current.parent();
    }
    Ok(())
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| io::Error::other(format!("a storage task failed: {err}")))
}

#[async_trait::async_trait]
impl Backend for Arc<DiskBackend> {
    type Staged = DiskStaged;

    fn unique_id(&self) -> String {
        self.next_id()
    }

    async fn buckets(&self) -> io::Result<Vec<(String, SystemTime)>> {
        let dir = self.store.join("buckets");
        blocking(move || {
            let mut buckets = Vec::new();
            for entry in fs::read_dir(dir)? {
                let entry = entry?;
                if let Some(name) = entry.file_name().to_str() {
                    let meta = entry.metadata()?;
                    let created = meta.created().or_else(|_| meta.modified())?;
                    buckets.push((name.to_owned(), created));
                }
            }
            buckets.sort();
            Ok(buckets)
        })
        .await?
    }

    async fn has_bucket(&self, bucket: &str) -> io::Result<bool> {
        Ok(self.bucket_dir(bucket).is_dir())
    }

    async fn create_bucket(&self, bucket: &str, _now: SystemTime) -> io::Result<bool> {
        let (dir, mirror) = (self.bucket_dir(bucket), self.root.join(bucket));
        blocking(move || {
            let existed = dir.is_dir();
            fs::create_dir_all(dir.join("objects"))?;
            fs::create_dir_all(dir.join("uploads"))?;
            fs::create_dir_all(mirror)?;
            Ok(!existed)
        })
        .await?
    }

    async fn remove_bucket(&self, bucket: &str) -> io::Result<()> {
        let (dir, mirror) = (self.bucket_dir(bucket), self.root.join(bucket));
        blocking(move || {
            fs::remove_dir_all(dir)?;
            match fs::remove_dir_all(mirror) {
                Err(err) if !not_found(&err) => Err(err),
                _ => Ok(()),
            }
        })
        .await?
    }

    async fn stage(
        &self,
        _bucket: &str,
        key: &str,
        id: &str,
        mut body: ByteChunks,
    ) -> Result<DiskStaged, StageError> {
        let blob = blob_name(id, key);
        let temp = self.temp_dir().join(&blob);
        let staged = DiskStaged {
            temp: Some(temp.clone()),
            blob,
        };
        // Chunks are gathered (they are already in memory: no copy) up to STAGE_BATCH and written in one
        // trip to the blocking pool, so a photo is one trip (create, write, fsync, read-only) instead of
        // one per chunk and three more, each a thread handoff.
        let sync = self.sync;
        let mut file: Option<File> = None;
        let mut batch: Vec<Bytes> = Vec::new();
        let mut batched = 0;
        let mut ended = false;
        while !ended {
            match body.next().await {
                Some(chunk) => {
                    let chunk = chunk.map_err(StageError::Body)?;
                    batched += chunk.len();
                    batch.push(chunk);
                    if batched < STAGE_BATCH {
                        continue;
                    }
                }
                None => ended = true,
            }
            let (path, chunks) = (temp.clone(), std::mem::take(&mut batch));
            batched = 0;
            let last = ended;
            let written = blocking(move || -> io::Result<Option<File>> {
                let mut file = match file {
                    Some(file) => file,
                    None => File::create(&path)?,
                };
                for chunk in &chunks {
                    file.write_all(chunk)?;
                }
                if !last {
                    return Ok(Some(file));
                }
                if sync {
                    file.sync_all()?;
                }
                drop(file);
                // Read-only: the mirror is a hard link to this file; an editor must not change a stored
                // version.
                make_read_only(&path)?;
                Ok(None)
            })
            .await
            .and_then(|result| result);
            match written {
                Ok(open) => file = open,
                Err(err) => {
                    // Read the rest of the request, so the client gets our answer, not a reset connection.
                    while let Some(Ok(_)) = body.next().await {}
                    return Err(StageError::Io(err));
                }
            }
        }
        Ok(staged)
    }

    async fn record(&self, bucket: &str, key: &str) -> io::Result<Option<KeyRecord>> {
        let path = self.key_dir(bucket, &key_hash(key)).join(RECORD);
        blocking(move || read_json(&path)).await?
    }

    async fn records(&self, bucket: &str, prefix: &str) -> io::Result<Vec<KeyRecord>> {
        let (this, bucket, prefix) = (self.clone(), bucket.to_owned(), prefix.to_owned());
        blocking(move || this.records_blocking(&bucket, &prefix)).await?
    }

    async fn commit<T: Send + 'static>(
        &self,
        bucket: &str,
        key: &str,
        decide: Decide<DiskStaged, T>,
    ) -> Result<T, CommitError> {
        let (this, bucket, key) = (self.clone(), bucket.to_owned(), key.to_owned());
        blocking(move || this.commit_blocking(&bucket, &key, decide)).await?
    }

    async fn read(
        &self,
        bucket: &str,
        key: &str,
        blob: &str,
        range: Range<u64>,
    ) -> io::Result<Option<ByteChunks>> {
        let path = self.key_dir(bucket, &key_hash(key)).join(blob);
        open_range(&path, range).await
    }

    async fn save_upload(&self, bucket: &str, upload: &Upload) -> io::Result<()> {
        let dir = self.upload_dir(bucket, &upload.upload_id);
        let bytes = serde_json::to_vec(upload).map_err(io::Error::other)?;
        let (temp, sync) = (self.temp_path("upload"), self.sync);
        blocking(move || {
            fs::create_dir_all(&dir)?;
            write_file(&temp, &bytes, sync)?;
            fs::rename(&temp, dir.join("upload.json"))
        })
        .await?
    }

    async fn upload(&self, bucket: &str, upload_id: &str) -> io::Result<Option<Upload>> {
        if !valid_id(upload_id) {
            return Ok(None);
        }
        let path = self.upload_dir(bucket, upload_id).join("upload.json");
        blocking(move || read_json(&path)).await?
    }

    async fn uploads(&self, bucket: &str) -> io::Result<Vec<Upload>> {
        let dir = self.bucket_dir(bucket).join("uploads");
        blocking(move || {
            let mut uploads = Vec::new();
            for entry in fs::read_dir(dir)? {
                if let Some(upload) = read_json::<Upload>(&entry?.path().join("upload.json"))? {
                    uploads.push(upload);
                }
            }
            uploads.sort_by(|a, b| (&a.key, a.initiated_ms).cmp(&(&b.key, b.initiated_ms)));
            Ok(uploads)
        })
        .await?
    }

    async fn save_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part: Part,
        blob: DiskStaged,
    ) -> io::Result<()> {
        let dir = self.upload_dir(bucket, upload_id);
        let record = PartFile {
            part,
            blob: blob.blob.clone(),
        };
        let bytes = serde_json::to_vec(&record).map_err(io::Error::other)?;
        let (temp, sync) = (self.temp_path("part"), self.sync);
        blocking(move || {
            if !dir.join("upload.json").is_file() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    "the upload was aborted",
                ));
            }
            // The bytes under their own name first, then the part record naming them: a crash leaves the
            // previous part or the new one, never a record naming other bytes.
            let blob_path = dir.join(&blob.blob);
            blob.move_to(&blob_path)?;
            write_file(&temp, &bytes, sync)?;
            fs::rename(&temp, dir.join(part_file_name(record.part.part_number)))?;
            sync_dir(&dir, sync)
        })
        .await?
    }

    async fn parts(&self, bucket: &str, upload_id: &str) -> io::Result<Vec<Part>> {
        let dir = self.upload_dir(bucket, upload_id);
        blocking(move || {
            let mut parts = Vec::new();
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(err) if not_found(&err) => return Ok(parts),
                Err(err) => return Err(err),
            };
            for entry in entries {
                let path = entry?.path();
                let is_part = path
                    .file_name()
                    .and_then(|name| name.to_str())
                    .is_some_and(|name| name.starts_with("part-") && name.ends_with(".json"));
                if is_part {
                    if let Some(file) = read_json::<PartFile>(&path)? {
                        parts.push(file.part);
                    }
                }
            }
            parts.sort_by_key(|part| part.part_number);
            Ok(parts)
        })
        .await?
    }

    async fn read_part(
        &self,
        bucket: &str,
        upload_id: &str,
        part_number: u32,
    ) -> io::Result<Option<ByteChunks>> {
        let dir = self.upload_dir(bucket, upload_id);
        let record_path = dir.join(part_file_name(part_number));
        let Some(file) = blocking(move || read_json::<PartFile>(&record_path)).await?? else {
            return Ok(None);
        };
        open_range(&dir.join(&file.blob), 0..file.part.size).await
    }

    async fn remove_upload(&self, bucket: &str, upload_id: &str) -> io::Result<()> {
        if !valid_id(upload_id) {
            return Ok(());
        }
        let dir = self.upload_dir(bucket, upload_id);
        blocking(move || match fs::remove_dir_all(dir) {
            Err(err) if !not_found(&err) => Err(err),
            _ => Ok(()),
        })
        .await?
    }
}

/// Upload ids come from clients: only ours (hex) may become a path.
fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

fn part_file_name(part_number: u32) -> String {
    format!("part-{part_number:05}.json")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct PartFile {
    part: Part,
    blob: String,
}

async fn open_range(path: &Path, range: Range<u64>) -> io::Result<Option<ByteChunks>> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(err) if not_found(&err) => return Ok(None),
        Err(err) => return Err(err),
    };
    if range.start > 0 {
        file.seek(io::SeekFrom::Start(range.start)).await?;
    }
    let reader = file.take(range.end - range.start);
    // Every read of a tokio file is a trip to the blocking pool: large chunks make a photo a handful of
    // trips instead of a hundred (1 MiB per open body is the memory it costs).
    Ok(Some(Box::pin(tokio_util::io::ReaderStream::with_capacity(
        reader,
        1024 * 1024,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_files_keep_plain_extensions_only() {
        assert_eq!(blob_name("v1", "photos/a.JPG"), "v1.JPG");
        assert_eq!(blob_name("v1", "manifests/uploads/a.jpg.json"), "v1.json");
        assert_eq!(blob_name("v1", "a/.hidden"), "v1");
        assert_eq!(blob_name("v1", "a.b/noext"), "v1");
        assert_eq!(blob_name("v1", "weird.ex t"), "v1");
    }

    #[test]
    fn only_path_safe_keys_are_mirrored() {
        assert_eq!(
            mirror_path("uploads/red flower.jpg"),
            Some(PathBuf::from("uploads/red flower.jpg"))
        );
        for unsafe_key in ["a/../b", "./a", "a//b", "a/", "/a", "..", &"x".repeat(256)] {
            assert_eq!(mirror_path(unsafe_key), None, "{unsafe_key:?}");
        }
    }
}
