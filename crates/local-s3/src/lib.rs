//! A versioned store that behaves like S3 where the pipeline's integrity depends on it, for the local
//! runner and the tests. It is served over HTTP on 127.0.0.1 ([`LocalS3`]) or handed in-process to
//! aws-sdk-s3 ([`InProcessS3`]), so the real `aws_sdk_s3::Client` code path runs end to end; s3s parses
//! HTTP, XML and SigV4 (requests must be signed with [`ACCESS_KEY_ID`]/[`SECRET_ACCESS_KEY`]).
//!
//! What it does as S3 does (each is tested in `tests/`):
//! - Buckets are versioned: a PUT makes a new version (`x-amz-version-id`), GET/HEAD take `versionId`, a
//!   DELETE without one adds a delete marker (then GET/HEAD answer 404 with `x-amz-delete-marker: true`),
//!   with one it removes that version. ListObjectsV2 lists current objects in UTF-8 byte order (prefix,
//!   delimiter, continuation token, start-after, max-keys, `encoding-type=url`); ListObjectVersions,
//!   ListObjects, CopyObject, DeleteObjects and multipart uploads work. GetBucketVersioning says Enabled.
//! - Conditional requests: PUT (and CopyObject, CompleteMultipartUpload) with `If-None-Match: *` or
//!   `If-Match`; DELETE with `If-Match`; GET/HEAD with If-Match, If-None-Match, If-Modified-Since,
//!   If-Unmodified-Since, and Range. Conditions are evaluated when the write commits, under the key's
//!   lock, so of two racing conditional writes exactly one wins, also across processes.
//! - ETag is the quoted MD5 of the body (`<md5 of part md5s>-<n>` after a multipart upload); Content-MD5
//!   and `x-amz-checksum-*` are verified (400 BadDigest); stored headers and `x-amz-meta-*` come back.
//! - Every committed change is published to [`subscribe`](LocalS3::subscribe)rs, in commit order per key,
//!   with a sequencer as S3 events carry it (see [`ChangeStream`] for a subscriber that falls behind).
//! - Storage failures (a full disk…) answer 500 InternalError saying why; the key keeps its previous state.
//!
//! On disk ([`LocalS3::start`]) commits are atomic and crash-safe, several processes may share one folder,
//! and each key's current version is mirrored at `<root>/<bucket>/<key>` for browsing (see the `disk`
//! module for the layout). In memory ([`InProcessS3`]) the same engine decides; only the bytes live
//! elsewhere. Faults ([`Faults`]): 503 SlowDown, 500 InternalError, or the object vanishing, for the next
//! N GET/HEAD/PUT requests, optionally only for keys under a prefix, on either backend.

mod backend;
mod clock;
mod disk;
mod engine;
mod faults;
mod inprocess;
mod memory;
mod model;
mod notify;
mod rules;
#[cfg(feature = "testing")]
pub mod testing;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnectionBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use clock::{Clock, SystemClock, TokioClock};
pub use faults::{Fault, FaultRule, Faults, Request, S3Op};
pub use inprocess::{
    After, Before, Failure, InProcessHttpClient, InProcessS3, Operation, RequestHook, RequestInfo,
    ResponseInfo,
};
pub use model::{compare_sequencers, Change, ChangeKind, CreatedReason, DeletionType};
pub use notify::{ChangeStream, ChangeStreamError, CHANGE_BUFFER};

use disk::DiskBackend;
use engine::Engine;
use notify::Notifier;

/// The credentials every request must be signed with.
pub const ACCESS_KEY_ID: &str = "ferrotype-local";
pub const SECRET_ACCESS_KEY: &str = "ferrotype-local-secret";
pub const REGION: &str = "us-east-1";

#[derive(Debug, thiserror::Error)]
pub enum LocalS3Error {
    #[error("cannot prepare the S3 root folder {path}: {source}")]
    Root {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the S3 store in {path}: {message}")]
    FileSystem { path: PathBuf, message: String },
    #[error("{0:?} is not a valid S3 bucket name")]
    BucketName(String),
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
}

fn check_bucket_names(buckets: &[&str]) -> Result<(), LocalS3Error> {
    match buckets
        .iter()
        .find(|bucket| !s3s::path::check_bucket_name(bucket))
    {
        Some(bad) => Err(LocalS3Error::BucketName((*bad).to_owned())),
        None => Ok(()),
    }
}

/// The s3s service over an engine: SigV4 with the fixed credentials. `any_clock_skew` accepts requests
/// signed at any time (an in-process client may run on a simulated clock).
fn service(s3: impl s3s::S3, any_clock_skew: bool) -> S3Service {
    let mut builder = S3ServiceBuilder::new(s3);
    builder.set_auth(SimpleAuth::from_single(ACCESS_KEY_ID, SECRET_ACCESS_KEY));
    if any_clock_skew {
        let mut config = s3s::config::S3Config::default();
        config.presigned_url_max_skew_time_secs = u32::MAX;
        builder.set_config(Arc::new(s3s::config::StaticConfigProvider::new(Arc::new(
            config,
        ))));
    }
    builder.build()
}

/// A running server over a folder. Dropping it stops accepting connections; [`LocalS3::shutdown`] also
/// waits for the open ones to finish.
pub struct LocalS3 {
    address: SocketAddr,
    root: PathBuf,
    faults: Arc<Faults>,
    notifier: Arc<Notifier>,
    disk: Arc<DiskBackend>,
    service: S3Service,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    // Declared last: the folder is removed only after the server stopped using it.
    _temp_root: Option<tempfile::TempDir>,
}

impl LocalS3 {
    /// Serves the store in `root` (created if missing), creating each of `buckets` that does not exist yet.
    /// Other processes may serve the same folder at the same time. Opening repairs what a killed process
    /// left behind.
    /// Commits are fsync'd, so they also survive a power loss.
    pub async fn start(root: impl AsRef<Path>, buckets: &[&str]) -> Result<LocalS3, LocalS3Error> {
        LocalS3::start_in(root.as_ref().to_path_buf(), buckets, None).await
    }

    /// Serves a fresh temporary folder, removed when the server is dropped. Commits are atomic as with
    /// [`start`](LocalS3::start) but not fsync'd: nothing has to survive a power loss.
    pub async fn start_temporary(buckets: &[&str]) -> Result<LocalS3, LocalS3Error> {
        let temp = tempfile::tempdir().map_err(|source| LocalS3Error::Root {
            path: std::env::temp_dir(),
            source,
        })?;
        LocalS3::start_in(temp.path().to_path_buf(), buckets, Some(temp)).await
    }

    async fn start_in(
        root: PathBuf,
        buckets: &[&str],
        temp_root: Option<tempfile::TempDir>,
    ) -> Result<LocalS3, LocalS3Error> {
        check_bucket_names(buckets)?;
        std::fs::create_dir_all(&root).map_err(|source| LocalS3Error::Root {
            path: root.clone(),
            source,
        })?;
        let notifier = Arc::new(Notifier::default());
        let open_error = |err: std::io::Error| LocalS3Error::FileSystem {
            path: root.clone(),
            message: err.to_string(),
        };
        let disk = {
            let (root, notifier) = (root.clone(), notifier.clone());
            let sync = temp_root.is_none();
            tokio::task::spawn_blocking(move || DiskBackend::open(&root, notifier, sync))
                .await
                .map_err(|err| open_error(std::io::Error::other(err.to_string())))?
                .map_err(open_error)?
        };
        let disk = Arc::new(disk);
        let faults = Arc::new(Faults::default());
        let engine = Engine {
            backend: disk.clone(),
            faults: faults.clone(),
            clock: Arc::new(SystemClock),
            max_object_size: engine::MAX_OBJECT_SIZE,
        };
        for bucket in buckets {
            backend::Backend::create_bucket(&disk, bucket, std::time::SystemTime::now())
                .await
                .map_err(open_error)?;
        }
        let service = service(engine, false);

        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(LocalS3Error::Listen)?;
        let address = listener.local_addr().map_err(LocalS3Error::Listen)?;
        let (stop, mut stopped) = watch::channel(false);
        let serving = service.clone();
        let server = tokio::spawn(async move {
            let connections = ConnectionBuilder::new(TokioExecutor::new());
            let graceful = GracefulShutdown::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => {
                            let connection = connections.serve_connection(TokioIo::new(socket), serving.clone());
                            let connection = graceful.watch(connection.into_owned());
                            tokio::spawn(async move {
                                if let Err(err) = connection.await {
                                    tracing::debug!("local S3 connection ended with an error: {err}");
                                }
                            });
                        }
                        Err(err) => tracing::warn!("local S3 could not accept a connection: {err}"),
                    },
                    _ = stopped.changed() => break,
                }
            }
            graceful.shutdown().await;
        });
        tracing::debug!(%address, root = %root.display(), "local S3 is listening");
        Ok(LocalS3 {
            address,
            root,
            faults,
            notifier,
            disk,
            service,
            stop,
            server: Some(server),
            _temp_root: temp_root,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The folder holding the store (`.store/`) and the browsable mirror (`<bucket>/<key>`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The fault rules and request log of this server.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The changes this process commits from now on (not those of other processes sharing the folder).
    pub fn subscribe(&self) -> ChangeStream {
        self.notifier.subscribe()
    }

    /// The file holding one version's bytes: immutable for as long as the version exists, so a report may
    /// link to it. `None` if the key has no such version or it is a delete marker.
    pub fn version_file(&self, bucket: &str, key: &str, version_id: &str) -> Option<PathBuf> {
        self.disk.version_file(bucket, key, version_id)
    }

    /// The file holding the key's current version, `None` if it has none (absent, or deleted).
    pub fn current_file(&self, bucket: &str, key: &str) -> Option<PathBuf> {
        self.disk.current_file(bucket, key)
    }

    /// An SDK configuration for this server: path-style addressing, the fixed test credentials, us-east-1,
    /// and the SDK's standard retries with short backoffs (so injected faults are retried as against S3,
    /// without slowing tests down).
    pub fn client_config(&self) -> aws_sdk_s3::Config {
        self.client_config_builder().build()
    }

    /// The same configuration, to adjust (e.g. `.retry_config(RetryConfig::disabled())`).
    pub fn client_config_builder(&self) -> aws_sdk_s3::config::Builder {
        let retries = aws_sdk_s3::config::retry::RetryConfig::standard()
            .with_max_attempts(3)
            .with_initial_backoff(std::time::Duration::from_millis(5))
            .with_max_backoff(std::time::Duration::from_millis(50));
        sdk_config_builder()
            .endpoint_url(self.endpoint())
            .retry_config(retries)
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.client_config())
    }

    /// A client of this store for the process that serves it: the same configuration, but its requests
    /// go to the service in-process instead of through a loopback socket (no kernel copies of every body,
    /// no HTTP framing). The same engine answers both, so faults and the request log apply alike.
    pub fn in_process_client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(
            self.client_config_builder()
                .http_client(self.in_process_http_client(None))
                .build(),
        )
    }

    /// An HTTP client that hands requests to this store in-process (no TCP), through `hook`; see
    /// [`InProcessS3`] for what it is for.
    pub fn in_process_http_client(
        &self,
        hook: Option<Arc<dyn RequestHook>>,
    ) -> InProcessHttpClient {
        InProcessHttpClient::new(self.service.clone(), hook)
    }

    /// Stops accepting connections and waits until the open ones are finished.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(server) = self.server.take() {
            if let Err(err) = server.await {
                tracing::warn!("local S3 server task failed: {err}");
            }
        }
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// What every client of the store is configured with: path-style addressing, the fixed credentials,
/// us-east-1.
fn sdk_config_builder() -> aws_sdk_s3::config::Builder {
    aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .force_path_style(true)
        .region(Region::new(REGION))
        .credentials_provider(Credentials::new(
            ACCESS_KEY_ID,
            SECRET_ACCESS_KEY,
            None,
            None,
            "ferrotype-local-s3",
        ))
}
