//! The four Lambda bootstraps as real processes, as Lambda runs them: started with the stack's
//! environment (FERROTYPE_CONFIG, OUTPUT_BUCKET, credentials, a region) against a Runtime API stand-in
//! on 127.0.0.1, reaching a local S3 server through `AWS_ENDPOINT_URL_S3=http://localhost:PORT` (a host
//! name, as LocalStack and MinIO are reached, so only path-style addressing works). What is checked is
//! what an operator sees in CloudWatch and what the state machine receives:
//! - every stdout line is one JSON object with exactly one `message` key;
//! - every invocation ends with one line carrying `duration_ms`: INFO when it succeeded, WARN with the
//!   error name for a rejection, ERROR with the name for any other failure; nothing else at WARN/ERROR,
//!   and no Rust debug dump;
//! - the error returned to the Runtime API is the stable name and one short human line, without the
//!   SDK's raw-response dump.

#[path = "support/runtime_api.rs"]
mod runtime_api;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ferrotype_core::config::{Config, SmartCrop};
use ferrotype_core::faces::FaceDetection;
use ferrotype_core::pipeline::{
    DetectFacesRequest, RenderRequest, RenderedVariant, ValidatedImage,
};
use ferrotype_local_s3::testing;
use ferrotype_local_s3::{Fault, FaultRule, LocalS3, S3Op};
use runtime_api::{Answer, RuntimeApi};
use serde_json::{json, Value};

const CONFIG: &str = include_str!("../ferrotype.json");
const INVOKE_TIMEOUT: Duration = Duration::from_secs(120);

/// The four bootstraps. `cargo test --workspace --all-targets` (what `make test` runs) has built them
/// beside this package's binary; `cargo test -p ferrotype` has not, so they are built then, once.
/// Only when one is missing: a nested build with another package selection would unify features
/// differently and rebuild the AWS SDK.
fn bootstrap(name: &str) -> PathBuf {
    const BOOTSTRAPS: [&str; 4] = [
        "validate",
        "detect-faces",
        "render-variant",
        "record-result",
    ];
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_BIN_EXE_ferrotype"))
            .parent()
            .expect("the binaries' folder")
            .to_path_buf();
        if BOOTSTRAPS
            .iter()
            .all(|bootstrap| dir.join(bootstrap).is_file())
        {
            return dir;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let mut command = Command::new(cargo);
        command.args(["build", "--quiet", "--workspace", "--bins"]);
        let status = command
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the bootstraps failed");
        dir
    });
    dir.join(name)
}

/// A bootstrap running against its own Runtime API stand-in; its stdout lines are collected.
struct Lambda {
    api: RuntimeApi,
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// How many lines earlier invocations used.
    seen: usize,
}

impl Lambda {
    fn start(name: &str, s3: &LocalS3) -> Lambda {
        let api = RuntimeApi::start();
        let port = s3.endpoint().rsplit(':').next().unwrap().to_owned();
        let config = Config::from_json(CONFIG).unwrap().to_json();
        let mut child = Command::new(bootstrap(name))
            .env_clear()
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", format!("ferrotype-{name}"))
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "test")
            .env("AWS_REGION", ferrotype_local_s3::REGION)
            .env("AWS_ACCESS_KEY_ID", ferrotype_local_s3::ACCESS_KEY_ID)
            .env(
                "AWS_SECRET_ACCESS_KEY",
                ferrotype_local_s3::SECRET_ACCESS_KEY,
            )
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_ENDPOINT_URL_S3", format!("http://localhost:{port}"))
            .env("FERROTYPE_CONFIG", config)
            .env("OUTPUT_BUCKET", "output")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|err| panic!("starting {name}: {err}"));
        let lines = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    lines.lock().unwrap().push(line);
                }
            });
        }
        Lambda {
            api,
            child,
            lines,
            seen: 0,
        }
    }

    /// Invokes the function and returns its answer with the log lines of that invocation (up to and
    /// including the line that ends it: `done`, or the one carrying the error name).
    fn invoke(&mut self, payload: &Value) -> (Answer, Vec<Value>) {
        let answer = self.api.invoke(payload, INVOKE_TIMEOUT);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines: Vec<Value> = self.lines.lock().unwrap()[self.seen..]
                .iter()
                .map(|l| parse_line(l))
                .collect();
            let end = lines
                .iter()
                .position(|l| fields(l)["message"] == "done" || fields(l)["error"].is_string());
            if let Some(end) = end {
                self.seen += end + 1;
                return (answer, lines[..=end].to_vec());
            }
            assert!(
                Instant::now() < deadline,
                "no closing line after {answer:?}; lines: {lines:#?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Lambda {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A log line: one JSON object with exactly one `message` key (a JSON parser keeps only one of two).
fn parse_line(line: &str) -> Value {
    let value: Value =
        serde_json::from_str(line).unwrap_or_else(|err| panic!("not JSON ({err}): {line}"));
    assert_eq!(
        line.matches("\"message\":").count(),
        1,
        "one message key per line: {line}"
    );
    for debug_form in [
        "Rejected(",
        "Rejection {",
        "Diagnostic {",
        "StageError",
        "Some(",
    ] {
        assert!(
            !line.contains(debug_form),
            "a Rust debug dump in the log: {line}"
        );
    }
    value
}

fn level(line: &Value) -> &str {
    line["level"].as_str().unwrap_or_default()
}

fn fields(line: &Value) -> &Value {
    &line["fields"]
}

/// The invocation succeeded and said so once, with its duration, and nothing was logged as a problem.
fn assert_succeeded(answer: &Answer, lines: &[Value]) -> Value {
    let Answer::Response(output) = answer else {
        panic!("expected success, got {answer:?}; logs {lines:#?}")
    };
    let end = lines.last().unwrap();
    assert_eq!(level(end), "INFO", "{end}");
    assert_eq!(fields(end)["message"], "done", "{end}");
    assert!(fields(end)["duration_ms"].is_u64(), "{end}");
    assert!(
        lines
            .iter()
            .all(|l| level(l) != "WARN" && level(l) != "ERROR"),
        "{lines:#?}"
    );
    output.clone()
}

/// The invocation failed with `name`: the error document holds the name and one short line; the logs
/// hold exactly one line about it, at `expected_level`, with the name and the duration.
fn assert_failed(answer: &Answer, lines: &[Value], name: &str, expected_level: &str) -> String {
    let Answer::Error(error) = answer else {
        panic!("expected {name}, got {answer:?}")
    };
    assert_eq!(error["errorType"], name, "{error}");
    let message = error["errorMessage"].as_str().unwrap().to_owned();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        message.len() < 400,
        "short: {} bytes: {message}",
        message.len()
    );
    for dump in [
        "raw: Response",
        "SdkBody",
        "headers:",
        "DisplayErrorContext",
        "ServiceError {",
    ] {
        assert!(
            !message.contains(dump),
            "an SDK dump in the error: {message}"
        );
    }
    // The line that names the error (INFO for a superseded execution, WARN for a rejection or throttling:
    // none of them a fault), and nothing else at WARN or ERROR.
    let problems: Vec<&Value> = lines
        .iter()
        .filter(|l| level(l) == "WARN" || level(l) == "ERROR" || fields(l).get("error").is_some())
        .collect();
    assert_eq!(problems.len(), 1, "the failure is logged once: {lines:#?}");
    let line = problems[0];
    assert_eq!(level(line), expected_level, "{line}");
    assert_eq!(fields(line)["error"], name, "{line}");
    assert!(fields(line)["duration_ms"].is_u64(), "{line}");
    assert_eq!(
        fields(line)["message"].as_str().unwrap(),
        format!("{name}: {message}"),
        "{line}"
    );
    message
}

async fn server_with(objects: &[(&str, Vec<u8>)]) -> (LocalS3, Vec<Value>) {
    let s3 = LocalS3::start_temporary(&["input", "output"])
        .await
        .unwrap();
    let client = s3.client();
    let mut events = Vec::new();
    for (key, bytes) in objects {
        events.push(testing::upload_with_event(&client, key, bytes).await);
    }
    (s3, events)
}

/// A worker thread for the blocking process I/O, so the S3 server keeps running on the runtime.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validate_logs_once_per_invocation_and_answers_short_errors() {
    let (s3, events) = server_with(&[
        ("uploads/photo.jpg", testing::jpeg(640, 480)),
        ("uploads/notes.jpg", testing::text()),
        ("uploads/busy.jpg", testing::jpeg(64, 48)),
    ])
    .await;
    // S3 keeps answering 503 SlowDown for the third upload, past the SDK's own retries.
    s3.faults().inject(
        FaultRule::new(S3Op::GetObject, Fault::SlowDown)
            .times(50)
            .for_keys_under("uploads/busy"),
    );
    s3.faults().inject(
        FaultRule::new(S3Op::HeadObject, Fault::SlowDown)
            .times(50)
            .for_keys_under("uploads/busy"),
    );
    let mut lambda = Lambda::start("validate", &s3);
    let (good, rejected, busy) = blocking(move || {
        let good = lambda.invoke(&events[0]);
        let rejected = lambda.invoke(&events[1]);
        let busy = lambda.invoke(&events[2]);
        (good, rejected, busy)
    })
    .await;

    let output = assert_succeeded(&good.0, &good.1);
    let image: ValidatedImage = serde_json::from_value(output).unwrap();
    assert_eq!(image.source.key, "uploads/photo.jpg");
    assert_failed(&rejected.0, &rejected.1, "ImageRejected.NotAnImage", "WARN");
    let message = assert_failed(&busy.0, &busy.1, "Ferrotype.Throttled", "WARN");
    // A HEAD answer has no body, so no error code: the status says it (S3's 503 means "slow down").
    assert!(message.contains("503 Service Unavailable"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detect_faces_render_variant_and_record_result_log_the_same_way() {
    let (s3, events) = server_with(&[
        ("uploads/photo.jpg", testing::jpeg(640, 480)),
        ("uploads/cut.jpg", testing::jpeg_cut_in_data(640, 480)),
    ])
    .await;
    let mut validate = Lambda::start("validate", &s3);
    let mut detect = Lambda::start("detect-faces", &s3);
    let mut render = Lambda::start("render-variant", &s3);
    let mut record = Lambda::start("record-result", &s3);

    let (photo, cut) = {
        let events = events.clone();
        blocking(move || {
            let photo = validate.invoke(&events[0]);
            let cut = validate.invoke(&events[1]);
            (photo, cut)
        })
        .await
    };
    let photo: ValidatedImage =
        serde_json::from_value(assert_succeeded(&photo.0, &photo.1)).unwrap();
    // Pixel data cut short behind an intact header: validate decodes it all, so it is refused there.
    assert_failed(&cut.0, &cut.1, "ImageRejected.Corrupt", "WARN");

    // detect-faces: found (none, on a synthetic picture), then an upload replaced after validation
    // whose working copy is gone: superseded, which is not a failure (INFO).
    let request = DetectFacesRequest {
        source: photo.source.clone(),
        smart_crop: SmartCrop::Builtin,
        version: photo.version.clone(),
        working_copy: photo.working_copy.clone(),
    };
    let mut replaced = request.clone();
    replaced.source.etag = "\"0123456789abcdef0123456789abcdef\"".to_owned();
    replaced.source.version_id = Some("an-older-version".to_owned());
    replaced.working_copy.key = "work/uploads/photo.jpg/gone.ftwc".to_owned();
    let (found, changed) = blocking(move || {
        let found = detect.invoke(&serde_json::to_value(&request).unwrap());
        let changed = detect.invoke(&serde_json::to_value(&replaced).unwrap());
        (found, changed)
    })
    .await;
    let faces: FaceDetection =
        serde_json::from_value(assert_succeeded(&found.0, &found.1)).unwrap();
    assert_failed(&changed.0, &changed.1, "Ferrotype.Superseded", "INFO");

    // render-variant: a variant, then a request naming a profile the configuration lacks.
    let variant = photo.variants[0].clone();
    let render_request = |profile: &str| RenderRequest {
        source: photo.source.clone(),
        profile: profile.to_owned(),
        version: photo.version.clone(),
        working_copy: photo.working_copy.clone(),
        faces: faces.clone(),
        variant: variant.clone(),
    };
    let (good_render, bad_render) = {
        let (good, bad) = (render_request(&photo.profile), render_request("nope"));
        blocking(move || {
            let rendered = render.invoke(&serde_json::to_value(&good).unwrap());
            let refused = render.invoke(&serde_json::to_value(&bad).unwrap());
            (rendered, refused)
        })
        .await
    };
    let rendered: RenderedVariant =
        serde_json::from_value(assert_succeeded(&good_render.0, &good_render.1)).unwrap();
    assert_eq!((rendered.width, rendered.height), (300, 300));
    assert_failed(&bad_render.0, &bad_render.1, "Ferrotype.BadEvent", "ERROR");

    // record-result: the manifest is written; then S3 throttles past the SDK's retries.
    let succeeded = json!({
        "status": "rendered",
        "executionId": "arn:aws:states:us-east-1:123456789012:execution:p:one",
        "startedAt": "2026-11-28T00:00:00Z",
        "image": photo,
        "faces": faces,
        "variants": [rendered],
    });
    let recorded = {
        let succeeded = succeeded.clone();
        blocking(move || {
            let recorded = record.invoke(&succeeded);
            (record, recorded)
        })
        .await
    };
    let (mut record, recorded) = recorded;
    assert_succeeded(&recorded.0, &recorded.1);
    s3.faults().inject(
        FaultRule::new(S3Op::PutObject, Fault::SlowDown)
            .times(50)
            .for_keys_under("manifests/"),
    );
    s3.faults().inject(
        FaultRule::new(S3Op::GetObject, Fault::SlowDown)
            .times(50)
            .for_keys_under("manifests/"),
    );
    let mut later = succeeded;
    later["executionId"] = json!("arn:aws:states:us-east-1:123456789012:execution:p:two");
    later["startedAt"] = json!("2026-11-28T00:00:01Z");
    let refused = blocking(move || record.invoke(&later)).await;
    let message = assert_failed(&refused.0, &refused.1, "Ferrotype.Throttled", "WARN");
    assert!(message.contains("503 SlowDown"), "{message}");
}
