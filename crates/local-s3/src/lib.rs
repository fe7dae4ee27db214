//! An S3-compatible server on 127.0.0.1 over a local folder (s3s-fs), for the tests of the Lambdas and for
//! the local runner. Buckets are sub-folders of the root. Requests are signed and checked (SigV4) with
//! fixed test credentials, so the real `aws_sdk_s3::Client` code path runs end to end.
//!
//! What s3s-fs 0.14 does and does not do, and what this wrapper adds so it behaves like S3 where the
//! pipeline depends on it:
//! - Range GETs: supported by s3s-fs.
//! - `If-Match` on PUT: supported by s3s-fs. On GET and HEAD s3s-fs ignores it; this wrapper answers
//!   412 PreconditionFailed when the stored ETag differs, as S3 does.
//! - Versioning: not supported (no version ids, a `versionId` parameter is ignored). Buckets here are
//!   unversioned, so events carry no `version-id` and readers pin objects by ETag instead.
//! - Faults ([`Faults`]): 503 SlowDown, 500 InternalError, or the object vanishing, for the next N
//!   GET/HEAD/PUT requests, optionally only for keys under a prefix.

mod faults;
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
use s3s::dto::*;
use s3s::service::S3ServiceBuilder;
use s3s::{s3_error, S3Request, S3Response, S3Result, S3};
use s3s_fs::FileSystem;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use faults::{Fault, FaultRule, Faults, Request, S3Op};

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
    #[error("cannot open the S3 root folder {path}: {message}")]
    FileSystem { path: PathBuf, message: String },
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
}

/// A running server. Dropping it stops accepting connections; [`LocalS3::shutdown`] also waits for the
/// open ones to finish.
pub struct LocalS3 {
    address: SocketAddr,
    root: PathBuf,
    faults: Arc<Faults>,
    stop: watch::Sender<bool>,
    server: Option<JoinHandle<()>>,
    // Declared last: the folder is removed only after the server stopped using it.
    _temp_root: Option<tempfile::TempDir>,
}

impl LocalS3 {
    /// Serves `root` (created if missing), creating a folder for each of `buckets` that does not exist yet.
    pub async fn start(root: impl AsRef<Path>, buckets: &[&str]) -> Result<LocalS3, LocalS3Error> {
        LocalS3::start_in(root.as_ref().to_path_buf(), buckets, None).await
    }

    /// Serves a fresh temporary folder, removed when the server is dropped.
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
        let root_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| LocalS3Error::Root { path, source }
        };
        std::fs::create_dir_all(&root).map_err(root_error(&root))?;
        for bucket in buckets {
            let path = root.join(bucket);
            std::fs::create_dir_all(&path).map_err(root_error(&path))?;
        }
        let file_system = FileSystem::new(&root).map_err(|err| LocalS3Error::FileSystem {
            path: root.clone(),
            message: format!("{err:?}"),
        })?;
        let faults = Arc::new(Faults::default());
        let service = {
            let mut builder = S3ServiceBuilder::new(FaultyS3 {
                inner: file_system,
                faults: faults.clone(),
            });
            builder.set_auth(SimpleAuth::from_single(ACCESS_KEY_ID, SECRET_ACCESS_KEY));
            builder.build()
        };

        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .map_err(LocalS3Error::Listen)?;
        let address = listener.local_addr().map_err(LocalS3Error::Listen)?;
        let (stop, mut stopped) = watch::channel(false);
        let server = tokio::spawn(async move {
            let connections = ConnectionBuilder::new(TokioExecutor::new());
            let graceful = GracefulShutdown::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((socket, _)) => {
                            let connection = connections.serve_connection(TokioIo::new(socket), service.clone());
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
            stop,
            server: Some(server),
            _temp_root: temp_root,
        })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// The folder holding the buckets.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The fault rules and request log of this server.
    pub fn faults(&self) -> &Faults {
        &self.faults
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
        aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .force_path_style(true)
            .region(Region::new(REGION))
            .credentials_provider(Credentials::new(
                ACCESS_KEY_ID,
                SECRET_ACCESS_KEY,
                None,
                None,
                "ferrotype-local-s3",
            ))
            .retry_config(retries)
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.client_config())
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

/// s3s-fs with faults in front of the object operations and `If-Match` honoured on GET and HEAD.
struct FaultyS3 {
    inner: FileSystem,
    faults: Arc<Faults>,
}

impl FaultyS3 {
    /// Serves the fault a rule asks for, if any. `Vanish` deletes the object and lets the request go on.
    async fn inject<T>(
        &self,
        op: S3Op,
        req: &S3Request<T>,
        bucket: &str,
        key: &str,
    ) -> S3Result<()> {
        let range = req
            .headers
            .get("range")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        match self.faults.take(op, bucket, key, range) {
            None => Ok(()),
            Some(Fault::SlowDown) => Err(s3_error!(
                SlowDown,
                "Please reduce your request rate (injected fault)."
            )),
            Some(Fault::InternalError) => Err(s3_error!(
                InternalError,
                "We encountered an internal error. Please try again (injected fault)."
            )),
            Some(Fault::Vanish) => {
                let delete = S3Request {
                    input: DeleteObjectInput {
                        bucket: bucket.to_owned(),
                        key: key.to_owned(),
                        ..Default::default()
                    },
                    method: req.method.clone(),
                    uri: req.uri.clone(),
                    headers: Default::default(),
                    extensions: Default::default(),
                    credentials: req.credentials.clone(),
                    region: req.region.clone(),
                    service: req.service.clone(),
                    trailing_headers: None,
                };
                self.inner.delete_object(delete).await.map(drop)
            }
        }
    }
}

/// S3 answers 412 when `If-Match` names another ETag (or `*` and there is no object, which cannot
/// happen once the object was found).
fn check_if_match(condition: Option<&IfMatch>, etag: Option<&ETag>) -> S3Result<()> {
    match (condition, etag) {
        (Some(ETagCondition::ETag(expected)), Some(actual)) if !actual.strong_cmp(expected) => {
            Err(s3_error!(
                PreconditionFailed,
                "At least one of the pre-conditions you specified did not hold"
            ))
        }
        _ => Ok(()),
    }
}

/// The operations passed straight through to s3s-fs, and the three object operations that see faults.
macro_rules! faulty_s3 {
    ($($method:ident: $input:ident => $output:ident,)*) => {
        #[async_trait::async_trait]
        impl S3 for FaultyS3 {
            $(
                async fn $method(&self, req: S3Request<$input>) -> S3Result<S3Response<$output>> {
                    self.inner.$method(req).await
                }
            )*

            async fn get_object(&self, req: S3Request<GetObjectInput>) -> S3Result<S3Response<GetObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                self.inject(S3Op::GetObject, &req, &bucket, &key).await?;
                let if_match = req.input.if_match.clone();
                let response = self.inner.get_object(req).await?;
                check_if_match(if_match.as_ref(), response.output.e_tag.as_ref())?;
                Ok(response)
            }

            async fn head_object(&self, req: S3Request<HeadObjectInput>) -> S3Result<S3Response<HeadObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                self.inject(S3Op::HeadObject, &req, &bucket, &key).await?;
                let if_match = req.input.if_match.clone();
                let response = self.inner.head_object(req).await?;
                check_if_match(if_match.as_ref(), response.output.e_tag.as_ref())?;
                Ok(response)
            }

            async fn put_object(&self, req: S3Request<PutObjectInput>) -> S3Result<S3Response<PutObjectOutput>> {
                let (bucket, key) = (req.input.bucket.clone(), req.input.key.clone());
                self.inject(S3Op::PutObject, &req, &bucket, &key).await?;
                self.inner.put_object(req).await
            }
        }
    };
}

faulty_s3! {
    create_bucket: CreateBucketInput => CreateBucketOutput,
    copy_object: CopyObjectInput => CopyObjectOutput,
    delete_bucket: DeleteBucketInput => DeleteBucketOutput,
    delete_object: DeleteObjectInput => DeleteObjectOutput,
    delete_objects: DeleteObjectsInput => DeleteObjectsOutput,
    get_bucket_location: GetBucketLocationInput => GetBucketLocationOutput,
    head_bucket: HeadBucketInput => HeadBucketOutput,
    list_buckets: ListBucketsInput => ListBucketsOutput,
    list_objects: ListObjectsInput => ListObjectsOutput,
    list_objects_v2: ListObjectsV2Input => ListObjectsV2Output,
    create_multipart_upload: CreateMultipartUploadInput => CreateMultipartUploadOutput,
    upload_part: UploadPartInput => UploadPartOutput,
    upload_part_copy: UploadPartCopyInput => UploadPartCopyOutput,
    list_parts: ListPartsInput => ListPartsOutput,
    complete_multipart_upload: CompleteMultipartUploadInput => CompleteMultipartUploadOutput,
    abort_multipart_upload: AbortMultipartUploadInput => AbortMultipartUploadOutput,
}
