//! The store handed to aws-sdk-s3 in-process: an HTTP client (smithy's `HttpClient`) that gives the SDK's
//! request straight to the s3s service, with no TCP, no spawned task and no timer of its own. On a
//! current-thread runtime with paused time, a simulation runs the real `aws_sdk_s3::Client` against the
//! in-memory store deterministically, and a [`RequestHook`] decides the fate of every request: delay it,
//! fail it before it is applied, apply it and then fail or never answer (the change took effect, the
//! caller cannot know), or hang it forever (a caller that crashed mid-request).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::config::retry::{RetryConfig, RetryPartition, TokenBucket};
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::StalledStreamProtectionConfig;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::result::ConnectorError;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use bytes::Bytes;
use http_body_util::BodyExt;
use s3s::service::S3Service;

use crate::clock::{Clock, SystemClock};
use crate::engine::{Engine, MAX_MEMORY_OBJECT_SIZE};
use crate::faults::Faults;
use crate::memory::MemoryBackend;
use crate::notify::{ChangeStream, Notifier};
use crate::LocalS3Error;

/// The S3 operation of a request, as the hook sees it (read from the method, path, query and headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    ListBuckets,
    CreateBucket,
    DeleteBucket,
    HeadBucket,
    GetBucketLocation,
    GetBucketVersioning,
    PutBucketVersioning,
    ListObjects,
    ListObjectsV2,
    ListObjectVersions,
    ListMultipartUploads,
    PutObject,
    CopyObject,
    GetObject,
    HeadObject,
    DeleteObject,
    DeleteObjects,
    CreateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    Other,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::ListBuckets => "ListBuckets",
            Operation::CreateBucket => "CreateBucket",
            Operation::DeleteBucket => "DeleteBucket",
            Operation::HeadBucket => "HeadBucket",
            Operation::GetBucketLocation => "GetBucketLocation",
            Operation::GetBucketVersioning => "GetBucketVersioning",
            Operation::PutBucketVersioning => "PutBucketVersioning",
            Operation::ListObjects => "ListObjects",
            Operation::ListObjectsV2 => "ListObjectsV2",
            Operation::ListObjectVersions => "ListObjectVersions",
            Operation::ListMultipartUploads => "ListMultipartUploads",
            Operation::PutObject => "PutObject",
            Operation::CopyObject => "CopyObject",
            Operation::GetObject => "GetObject",
            Operation::HeadObject => "HeadObject",
            Operation::DeleteObject => "DeleteObject",
            Operation::DeleteObjects => "DeleteObjects",
            Operation::CreateMultipartUpload => "CreateMultipartUpload",
            Operation::UploadPart => "UploadPart",
            Operation::UploadPartCopy => "UploadPartCopy",
            Operation::CompleteMultipartUpload => "CompleteMultipartUpload",
            Operation::AbortMultipartUpload => "AbortMultipartUpload",
            Operation::ListParts => "ListParts",
            Operation::Other => "Other",
        }
    }

    /// Whether the operation may change the store.
    pub fn writes(self) -> bool {
        matches!(
            self,
            Operation::CreateBucket
                | Operation::DeleteBucket
                | Operation::PutBucketVersioning
                | Operation::PutObject
                | Operation::CopyObject
                | Operation::DeleteObject
                | Operation::DeleteObjects
                | Operation::CreateMultipartUpload
                | Operation::UploadPart
                | Operation::UploadPartCopy
                | Operation::CompleteMultipartUpload
                | Operation::AbortMultipartUpload
        )
    }

    fn classify(
        method: &http::Method,
        has_bucket: bool,
        has_key: bool,
        query: &HashSet<&str>,
        copy_source: bool,
    ) -> Operation {
        use http::Method;
        let q = |name: &str| query.contains(name);
        match (method, has_bucket, has_key) {
            (&Method::GET, false, _) => Operation::ListBuckets,
            (&Method::GET, true, false) if q("versions") => Operation::ListObjectVersions,
            (&Method::GET, true, false) if q("uploads") => Operation::ListMultipartUploads,
            (&Method::GET, true, false) if q("versioning") => Operation::GetBucketVersioning,
            (&Method::GET, true, false) if q("location") => Operation::GetBucketLocation,
            (&Method::GET, true, false) if q("list-type") => Operation::ListObjectsV2,
            (&Method::GET, true, false) => Operation::ListObjects,
            (&Method::GET, true, true) if q("uploadId") => Operation::ListParts,
            (&Method::GET, true, true) => Operation::GetObject,
            (&Method::HEAD, true, false) => Operation::HeadBucket,
            (&Method::HEAD, true, true) => Operation::HeadObject,
            (&Method::PUT, true, false) if q("versioning") => Operation::PutBucketVersioning,
            (&Method::PUT, true, false) => Operation::CreateBucket,
            (&Method::PUT, true, true) if q("uploadId") && copy_source => Operation::UploadPartCopy,
            (&Method::PUT, true, true) if q("uploadId") => Operation::UploadPart,
            (&Method::PUT, true, true) if copy_source => Operation::CopyObject,
            (&Method::PUT, true, true) => Operation::PutObject,
            (&Method::DELETE, true, false) => Operation::DeleteBucket,
            (&Method::DELETE, true, true) if q("uploadId") => Operation::AbortMultipartUpload,
            (&Method::DELETE, true, true) => Operation::DeleteObject,
            (&Method::POST, true, false) if q("delete") => Operation::DeleteObjects,
            (&Method::POST, true, true) if q("uploads") => Operation::CreateMultipartUpload,
            (&Method::POST, true, true) if q("uploadId") => Operation::CompleteMultipartUpload,
            _ => Operation::Other,
        }
    }
}

/// A request as the hook sees it, before it is applied.
#[derive(Debug, Clone)]
pub struct RequestInfo {
    pub operation: Operation,
    pub bucket: Option<String>,
    /// Decoded from the path.
    pub key: Option<String>,
    pub method: http::Method,
    /// Path and query, as sent.
    pub uri: String,
    pub headers: http::HeaderMap,
}

impl RequestInfo {
    fn of(parts: &http::request::Parts) -> RequestInfo {
        let path = parts.uri.path().strip_prefix('/').unwrap_or_default();
        let (bucket, key) = match path.split_once('/') {
            Some((bucket, key)) => (bucket, Some(percent_decode(key))),
            None => (path, None),
        };
        let bucket = (!bucket.is_empty()).then(|| percent_decode(bucket));
        let query: HashSet<&str> = parts
            .uri
            .query()
            .unwrap_or_default()
            .split('&')
            .filter_map(|pair| pair.split('=').next())
            .filter(|name| !name.is_empty())
            .collect();
        let operation = Operation::classify(
            &parts.method,
            bucket.is_some(),
            key.is_some(),
            &query,
            parts.headers.contains_key("x-amz-copy-source"),
        );
        RequestInfo {
            operation,
            bucket,
            key,
            method: parts.method.clone(),
            uri: parts
                .uri
                .path_and_query()
                .map(|pq| pq.as_str().to_owned())
                .unwrap_or_default(),
            headers: parts.headers.clone(),
        }
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The store's answer as the hook sees it, before the client gets it.
#[derive(Debug, Clone)]
pub struct ResponseInfo {
    pub status: u16,
    pub headers: http::HeaderMap,
}

/// How a request fails instead of getting the store's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// An S3 error response with this status and code (e.g. 503 SlowDown, 500 InternalError).
    Status {
        status: u16,
        code: String,
        message: String,
    },
    /// The client sees a timeout (a connector timeout error; the SDK retries it as transient).
    TimedOut,
    /// The connection broke before the answer arrived (an I/O error; the SDK retries it).
    ConnectionLost,
}

impl Failure {
    pub fn slow_down() -> Failure {
        Failure::Status {
            status: 503,
            code: "SlowDown".to_owned(),
            message: "Please reduce your request rate (injected).".to_owned(),
        }
    }

    pub fn internal_error() -> Failure {
        Failure::Status {
            status: 500,
            code: "InternalError".to_owned(),
            message: "We encountered an internal error. Please try again (injected).".to_owned(),
        }
    }

    fn answer(&self, request: &RequestInfo) -> Result<HttpResponse, ConnectorError> {
        match self {
            Failure::Status {
                status,
                code,
                message,
            } => {
                let body = if request.method == http::Method::HEAD {
                    Bytes::new()
                } else {
                    Bytes::from(format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{code}</Code><Message>{message}</Message></Error>"
                    ))
                };
                let response = http::Response::builder()
                    .status(*status)
                    .header("content-type", "application/xml")
                    .header("content-length", body.len())
                    .body(SdkBody::from(body))
                    .map_err(|err| ConnectorError::other(err.into(), None))?;
                HttpResponse::try_from(response)
                    .map_err(|err| ConnectorError::other(err.into(), None))
            }
            Failure::TimedOut => Err(ConnectorError::timeout(
                "the in-process request timed out (injected)".into(),
            )),
            Failure::ConnectionLost => Err(ConnectorError::io(
                "the in-process connection was lost (injected)".into(),
            )),
        }
    }
}

/// What happens to a request before it reaches the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Before {
    /// Apply it.
    Apply,
    /// Do not apply it; answer with this failure.
    Fail(Failure),
    /// Neither apply nor answer, ever (a caller that crashed mid-request).
    Hang,
}

/// What happens to a request's answer after the store applied it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum After {
    /// Deliver the store's answer.
    Answer,
    /// The change took effect, but the client gets this failure instead.
    Fail(Failure),
    /// The change took effect; the answer never comes (the SDK's attempt timeout fires, if configured).
    Hang,
}

/// Decides, for every request of an in-process client, what happens around its application. Both
/// methods may wait (e.g. `tokio::time::sleep` under paused time) to delay the request.
#[async_trait::async_trait]
pub trait RequestHook: Send + Sync + 'static {
    async fn before(&self, request: &RequestInfo) -> Before {
        let _ = request;
        Before::Apply
    }

    async fn after(&self, request: &RequestInfo, response: &ResponseInfo) -> After {
        let _ = (request, response);
        After::Answer
    }
}

/// A smithy HTTP client that serves requests from a store in this process.
#[derive(Clone)]
pub struct InProcessHttpClient {
    service: S3Service,
    hook: Option<Arc<dyn RequestHook>>,
}

impl fmt::Debug for InProcessHttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessHttpClient")
            .field("hook", &self.hook.is_some())
            .finish_non_exhaustive()
    }
}

impl InProcessHttpClient {
    pub(crate) fn new(
        service: S3Service,
        hook: Option<Arc<dyn RequestHook>>,
    ) -> InProcessHttpClient {
        InProcessHttpClient { service, hook }
    }

    async fn handle(&self, request: HttpRequest) -> Result<HttpResponse, ConnectorError> {
        let request = request
            .try_into_http1x()
            .map_err(|err| ConnectorError::other(err.into(), None))?;
        let (mut parts, body) = request.into_parts();
        let body = body.collect().await.map_err(ConnectorError::io)?.to_bytes();
        // What an HTTP client adds on the wire, and what SigV4 verification reads.
        if !parts.headers.contains_key(http::header::HOST) {
            if let Some(host) = parts.uri.authority().and_then(|a| a.as_str().parse().ok()) {
                parts.headers.insert(http::header::HOST, host);
            }
        }
        if !parts.headers.contains_key(http::header::CONTENT_LENGTH) {
            parts.headers.insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from(body.len()),
            );
        }
        let info = RequestInfo::of(&parts);
        if let Some(hook) = &self.hook {
            match hook.before(&info).await {
                Before::Apply => {}
                Before::Fail(failure) => return failure.answer(&info),
                Before::Hang => std::future::pending::<()>().await,
            }
        }

        let response = self
            .service
            .call(http::Request::from_parts(parts, s3s::Body::from(body)))
            .await
            .map_err(|err| ConnectorError::io(format!("the store failed: {err:?}").into()))?;
        let (parts, body) = response.into_parts();
        // HEAD and 304 answers carry no body on the wire.
        if info.method == http::Method::HEAD || parts.status == http::StatusCode::NOT_MODIFIED {
            return self.answer(parts, Bytes::new(), &info).await;
        }
        if self.hook.is_none() {
            // Nothing decides on the answer: the body streams to the caller as the store reads it,
            // without a second copy of it in between.
            return HttpResponse::try_from(http::Response::from_parts(
                parts,
                SdkBody::from_body_1_x(body),
            ))
            .map_err(|err| ConnectorError::other(err.into(), None));
        }
        let body = {
            body.collect()
                .await
                .map_err(|err| ConnectorError::io(format!("{err}").into()))?
                .to_bytes()
        };
        self.answer(parts, body, &info).await
    }

    /// A whole answer, after the hook (if any) has had its say.
    async fn answer(
        &self,
        parts: http::response::Parts,
        body: Bytes,
        info: &RequestInfo,
    ) -> Result<HttpResponse, ConnectorError> {
        if let Some(hook) = &self.hook {
            let answer = ResponseInfo {
                status: parts.status.as_u16(),
                headers: parts.headers.clone(),
            };
            match hook.after(info, &answer).await {
                After::Answer => {}
                After::Fail(failure) => return failure.answer(info),
                After::Hang => std::future::pending::<()>().await,
            }
        }
        HttpResponse::try_from(http::Response::from_parts(parts, SdkBody::from(body)))
            .map_err(|err| ConnectorError::other(err.into(), None))
    }
}

impl HttpConnector for InProcessHttpClient {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let this = self.clone();
        HttpConnectorFuture::new(async move { this.handle(request).await })
    }
}

impl HttpClient for InProcessHttpClient {
    fn http_connector(
        &self,
        _settings: &HttpConnectorSettings,
        _components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

/// The in-memory store, for in-process clients: the same engine as on disk, bytes in memory (at most
/// 256 MiB per object: EntityTooLarge beyond), nothing that depends on real time (see the module docs).
pub struct InProcessS3 {
    service: S3Service,
    faults: Arc<Faults>,
    notifier: Arc<Notifier>,
}

impl fmt::Debug for InProcessS3 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InProcessS3").finish_non_exhaustive()
    }
}

impl InProcessS3 {
    /// An empty store holding `buckets`, stamping times from the wall clock.
    pub fn in_memory(buckets: &[&str]) -> Result<InProcessS3, LocalS3Error> {
        InProcessS3::in_memory_with_clock(buckets, Arc::new(SystemClock))
    }

    /// The same, stamping Last-Modified and event times from `clock` (e.g. a [`crate::TokioClock`]).
    pub fn in_memory_with_clock(
        buckets: &[&str],
        clock: Arc<dyn Clock>,
    ) -> Result<InProcessS3, LocalS3Error> {
        crate::check_bucket_names(buckets)?;
        let notifier = Arc::new(Notifier::default());
        let backend = MemoryBackend::new(notifier.clone());
        for bucket in buckets {
            backend.add_bucket(bucket, clock.now());
        }
        let faults = Arc::new(Faults::default());
        let engine = Engine {
            backend,
            faults: faults.clone(),
            clock,
            max_object_size: MAX_MEMORY_OBJECT_SIZE,
        };
        Ok(InProcessS3 {
            service: crate::service(engine, true),
            faults,
            notifier,
        })
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The changes committed from now on.
    pub fn subscribe(&self) -> ChangeStream {
        self.notifier.subscribe()
    }

    /// The HTTP client to give an SDK configuration, with an optional hook on every request.
    pub fn http_client(&self, hook: Option<Arc<dyn RequestHook>>) -> InProcessHttpClient {
        InProcessHttpClient::new(self.service.clone(), hook)
    }

    /// An SDK configuration on this store: the fixed credentials, path-style, us-east-1; standard retries
    /// (3 attempts) without jitter and with a token bucket of its own, so every run retries alike;
    /// a 30 s attempt timeout (tokio time), so an answer that never comes fails the attempt; no stalled
    /// stream protection (it measures real throughput).
    pub fn client_config_builder(
        &self,
        hook: Option<Arc<dyn RequestHook>>,
    ) -> aws_sdk_s3::config::Builder {
        crate::sdk_config_builder()
            .endpoint_url("http://s3.in-process.localhost")
            .http_client(self.http_client(hook))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(3)
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(5))
                    .with_use_static_exponential_base(true),
            )
            .retry_partition(
                RetryPartition::custom("ferrotype-in-process")
                    .token_bucket(TokenBucket::unlimited())
                    .build(),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .operation_attempt_timeout(Duration::from_secs(30))
                    .build(),
            )
            .stalled_stream_protection(StalledStreamProtectionConfig::disabled())
    }

    pub fn client(&self) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.client_config_builder(None).build())
    }

    pub fn client_with_hook(&self, hook: Arc<dyn RequestHook>) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.client_config_builder(Some(hook)).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(method: &str, uri: &str, copy: bool) -> Operation {
        let mut request = http::Request::builder().method(method).uri(uri);
        if copy {
            request = request.header("x-amz-copy-source", "b/k");
        }
        let (parts, ()) = request.body(()).unwrap().into_parts();
        RequestInfo::of(&parts).operation
    }

    #[test]
    fn requests_are_classified_as_the_sdk_sends_them() {
        assert_eq!(classify("GET", "http://h/", false), Operation::ListBuckets);
        assert_eq!(
            classify("GET", "http://h/b?list-type=2&prefix=a", false),
            Operation::ListObjectsV2
        );
        assert_eq!(
            classify("GET", "http://h/b?versions", false),
            Operation::ListObjectVersions
        );
        assert_eq!(
            classify("GET", "http://h/b/k%20x?x-id=GetObject", false),
            Operation::GetObject
        );
        assert_eq!(
            classify("HEAD", "http://h/b/k", false),
            Operation::HeadObject
        );
        assert_eq!(
            classify("PUT", "http://h/b/k?x-id=PutObject", false),
            Operation::PutObject
        );
        assert_eq!(classify("PUT", "http://h/b/k", true), Operation::CopyObject);
        assert_eq!(
            classify("PUT", "http://h/b/k?partNumber=1&uploadId=u", false),
            Operation::UploadPart
        );
        assert_eq!(
            classify("DELETE", "http://h/b/k", false),
            Operation::DeleteObject
        );
        assert_eq!(
            classify("POST", "http://h/b?delete", false),
            Operation::DeleteObjects
        );
        assert_eq!(
            classify("POST", "http://h/b/k?uploads", false),
            Operation::CreateMultipartUpload
        );
        assert_eq!(
            classify("POST", "http://h/b/k?uploadId=u", false),
            Operation::CompleteMultipartUpload
        );
    }

    #[test]
    fn keys_are_decoded_from_the_path() {
        let (parts, ()) = http::Request::builder()
            .uri("http://h/bucket/a/caf%C3%A9%20%2B1.jpg?x-id=GetObject")
            .body(())
            .unwrap()
            .into_parts();
        let info = RequestInfo::of(&parts);
        assert_eq!(info.bucket.as_deref(), Some("bucket"));
        assert_eq!(info.key.as_deref(), Some("a/café +1.jpg"));
    }
}
