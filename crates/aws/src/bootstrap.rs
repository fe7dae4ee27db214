//! What every Lambda's `main` does: JSON logs, the AWS configuration loaded once per container, the
//! environment read once, and the runtime loop with stable error names.
//!
//! Logs: one JSON object per line (`{"level", "fields": {"message", …}, "spans"}`), one `message` each.
//! Every invocation ends with exactly one line: `done` at INFO (and a superseded upload, which is not a
//! failure: a newer upload took over), a rejection or throttling at WARN, any other failure at ERROR (what
//! the functions' fault alarm counts); each carries `duration_ms`, and failures `error` (the stable error
//! name) with the message `<name>: <text>`.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use ferrotype_core::config::{Config, CONFIG_ENV};
use lambda_runtime::{service_fn, LambdaEvent};
use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::Layer as _;

use crate::StageError;

/// The environment variable naming the bucket variants and manifests are written to.
pub const OUTPUT_BUCKET_ENV: &str = "OUTPUT_BUCKET";

/// JSON log lines (one object per event, as CloudWatch Logs Insights reads them). The level comes from
/// `AWS_LAMBDA_LOG_LEVEL` (set by Lambda's advanced logging controls) or `RUST_LOG`, default `info`.
pub fn init_tracing() {
    let filter = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .ok()
        .map(|level| level.to_lowercase())
        .or_else(|| std::env::var("RUST_LOG").ok())
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Lambda timestamps every line itself.
    let lines = tracing_subscriber::fmt::layer()
        .json()
        .with_current_span(false)
        .with_ansi(false)
        .without_time()
        .with_target(false)
        .with_filter(tracing_subscriber::filter::filter_fn(|event| {
            !is_runtime_echo_of_handler_error(event)
        }));
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(lines)
        .try_init();
}

/// lambda_runtime logs every error a handler returns a second time, at ERROR in Rust debug form
/// (`error!("{error:?}")` in its panic-catching layer), rejections included. [`run`] already logs each
/// failure once, at the right level and readable, so that echo is dropped; the same layer's "user
/// handler panicked" event carries an `error` field and is kept.
fn is_runtime_echo_of_handler_error(event: &tracing::Metadata<'_>) -> bool {
    event.target() == "lambda_runtime::layers::panic"
        && *event.level() == tracing::Level::ERROR
        && event.fields().field("error").is_none()
}

/// Builds the process's runtime and runs `serve` on it, after [`tune_allocator`]: each Lambda's `main`,
/// before any thread exists (the CLI calls `tune_allocator` first thing too).
pub fn start<F, T>(serve: impl FnOnce() -> F) -> std::io::Result<T>
where
    F: Future<Output = T>,
{
    tune_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(serve()))
}

/// glibc's malloc as a process that handles one image after another needs it: one arena for all threads,
/// buffers up to 32 MiB from the heap, and up to 128 MiB of freed heap kept for the next image. By
/// default every thread that allocates gets its own arena and each buffer over glibc's adaptive
/// threshold is a fresh mapping, so every stage faulted its decode and resize buffers in page by page
/// (the seed's job through `ferrotype run`: 27,000 page faults, 14 % of the run's CPU; tuned: 7,500 and
/// half the peak RSS). Larger buffers (a 100 MP decode) are still mapped and returned when freed.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes malloc's parameters, under malloc's own lock; it has no
    // preconditions, and a refused value (it returns 0) leaves the default in place.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 20);
    }
}

/// The AWS configuration of the container (region and credentials from Lambda's environment).
pub async fn load_aws_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// The environment variables that point the S3 client at another endpoint (the SDK reads them itself).
const ENDPOINT_ENV: [&str; 2] = ["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"];

/// The container's S3 client. When an endpoint override is set (LocalStack, MinIO, a local server), it
/// uses path-style addressing: `http://localhost:4566/bucket/key`, as such servers expect, instead of
/// `http://bucket.localhost:4566/key`, which does not resolve.
pub fn s3_client(aws: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let overridden = ENDPOINT_ENV
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
    let config = aws_sdk_s3::config::Builder::from(aws)
        .force_path_style(overridden)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

/// `FERROTYPE_CONFIG` and `OUTPUT_BUCKET`, checked.
#[derive(Debug, Clone)]
pub struct Environment {
    pub config: Arc<Config>,
    pub output_bucket: String,
}

impl Environment {
    pub fn from_env() -> Result<Environment, StageError> {
        Environment::from_values(
            std::env::var(CONFIG_ENV).ok(),
            std::env::var(OUTPUT_BUCKET_ENV).ok(),
        )
    }

    /// The same checks on given values (what `from_env` reads).
    pub fn from_values(
        config: Option<String>,
        output_bucket: Option<String>,
    ) -> Result<Environment, StageError> {
        let config = config.ok_or_else(|| {
            StageError::Config(format!("the environment variable {CONFIG_ENV} is not set"))
        })?;
        let config = Config::from_json(&config)?;
        let output_bucket = output_bucket
            .filter(|bucket| !bucket.trim().is_empty())
            .ok_or_else(|| {
                StageError::Config(format!(
                    "the environment variable {OUTPUT_BUCKET_ENV} is not set"
                ))
            })?;
        Ok(Environment {
            config: Arc::new(config),
            output_bucket,
        })
    }
}

/// Parses a stage's input; anything that does not fit is `Ferrotype.BadEvent`.
pub fn parse_input<I: DeserializeOwned>(payload: serde_json::Value) -> Result<I, StageError> {
    serde_json::from_value(payload)
        .map_err(|err| StageError::BadEvent(format!("the input does not fit this stage: {err}")))
}

/// Runs the Lambda loop. `dependencies` is built once per container; if building it failed (a bad
/// environment), every invocation answers with that error under its stable name, so the state machine
/// sees `Ferrotype.Config` instead of an opaque init failure. The payload is parsed here, so a malformed
/// one is `Ferrotype.BadEvent`.
pub async fn run<D, I, O, F, Fut>(
    dependencies: Result<D, StageError>,
    handler: F,
) -> Result<(), lambda_runtime::Error>
where
    D: Send + Sync + 'static,
    I: DeserializeOwned + Send,
    O: Serialize,
    F: Fn(Arc<D>, LambdaEvent<I>) -> Fut,
    Fut: Future<Output = Result<O, StageError>>,
{
    let dependencies = dependencies.map(Arc::new);
    if let Err(err) = &dependencies {
        tracing::error!(
            error = err.name(),
            "cannot serve, the environment is not usable: {}: {err}",
            err.name()
        );
    }
    let handler = &handler;
    let dependencies = &dependencies;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            let started = Instant::now();
            // Boxed: the handler's future nested in this one is deeper than rustc's default query
            // depth allows when laying out render-variant's main future.
            let result = Box::pin(async {
                let dependencies = dependencies.clone()?;
                let (payload, context) = event.into_parts();
                let input = parse_input::<I>(payload)?;
                handler(dependencies, LambdaEvent::new(input, context)).await
            })
            .await;
            log_outcome(&result, started.elapsed());
            result
        },
    ))
    .await
}

/// The one line an invocation ends with.
fn log_outcome<O>(result: &Result<O, StageError>, elapsed: std::time::Duration) {
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    let Err(err) = result else {
        tracing::info!(duration_ms, "done");
        return;
    };
    match failure_level(err) {
        tracing::Level::INFO => {
            tracing::info!(error = err.name(), duration_ms, "{}: {err}", err.name())
        }
        tracing::Level::WARN => {
            tracing::warn!(error = err.name(), duration_ms, "{}: {err}", err.name())
        }
        _ => tracing::error!(error = err.name(), duration_ms, "{}: {err}", err.name()),
    }
}

/// How loud a failed invocation is. ERROR is what the functions' fault alarm counts, so only faults get
/// it: a superseded upload is the design working (a newer upload took over; INFO), a rejection is the
/// uploader's mistake, recorded as designed, and throttling is waited out by the state machine's retrier
/// and has an alarm of its own (both WARN).
fn failure_level(err: &StageError) -> tracing::Level {
    match err {
        StageError::Superseded(_) => tracing::Level::INFO,
        StageError::Rejected(_) | StageError::Throttled(_) => tracing::Level::WARN,
        _ => tracing::Level::ERROR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = include_str!("../../../ferrotype.json");

    #[test]
    fn the_environment_needs_a_valid_config_and_an_output_bucket() {
        let env =
            Environment::from_values(Some(CONFIG.to_owned()), Some("out".to_owned())).unwrap();
        assert_eq!(env.output_bucket, "out");
        assert_eq!(env.config.profiles[0].name, "default");

        let err = Environment::from_values(None, Some("out".to_owned())).unwrap_err();
        assert_eq!(err.name(), "Ferrotype.Config");
        assert!(err.message().contains("FERROTYPE_CONFIG"), "{err}");

        let err =
            Environment::from_values(Some(CONFIG.to_owned()), Some(" ".to_owned())).unwrap_err();
        assert!(err.message().contains("OUTPUT_BUCKET"), "{err}");

        let err =
            Environment::from_values(Some(r#"{"outputs":{}}"#.to_owned()), Some("out".to_owned()))
                .unwrap_err();
        assert_eq!(err.name(), "Ferrotype.Config");
        assert!(err.message().contains("outputs"), "{err}");
    }

    #[test]
    fn only_faults_are_logged_at_error() {
        use tracing::Level;
        assert_eq!(
            failure_level(&StageError::Throttled("SlowDown".into())),
            Level::WARN
        );
        assert_eq!(
            failure_level(&StageError::Transient("500".into())),
            Level::ERROR
        );
        assert_eq!(
            failure_level(&StageError::Config("no bucket".into())),
            Level::ERROR
        );
        assert_eq!(
            failure_level(&StageError::Rejected(ferrotype_core::Rejection::corrupt(
                "cut"
            ))),
            Level::WARN
        );
        assert_eq!(
            failure_level(&StageError::Superseded("newer".into())),
            Level::INFO
        );
    }

    #[test]
    fn unparseable_input_is_a_bad_event() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Input {
            name: String,
        }
        let err = parse_input::<Input>(serde_json::json!({"nom": 1})).unwrap_err();
        assert_eq!(err.name(), "Ferrotype.BadEvent");
        assert!(err.message().contains("name"), "{err}");
        assert_eq!(
            parse_input::<Input>(serde_json::json!({"name": "x"}))
                .unwrap()
                .name,
            "x"
        );
    }
}
