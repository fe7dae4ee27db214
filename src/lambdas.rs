//! The four Lambda functions as the local runner invokes them: the very handler functions the deployed
//! bootstraps run, called in-process with Lambda's semantics where the pipeline's correctness depends on
//! them.
//!
//! - An invocation runs to its end on its own task, even when its caller stops waiting (Step Functions
//!   abandons the other iterations of a failed Map, but their Lambda invocations carry on and may still
//!   write): the integrity rule must hold against that, so the runner does not hide it.
//! - Errors come back as Lambda reports them: the stable error name and a JSON cause.
//! - An account concurrency limit can be imposed (`--lambda-concurrency`): an invocation beyond it is
//!   refused at once with `Lambda.TooManyRequestsException`, as Lambda throttles, and the definition's
//!   retrier waits it out.
//! - A crash can be injected into a running invocation (a seeded simulation does), which stops it on the
//!   spot and reports `Lambda.Unknown`, as an out-of-memory or killed function does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use ferrotype_aws::StageError;
use ferrotype_core::config::Config;
use ferrotype_core::FaceDetector;
use ferrotype_executor::{TaskCall, TaskFailure, TaskInvoker};
use lambda_runtime::LambdaEvent;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{oneshot, Semaphore};

/// The region and account of local ARNs.
pub const REGION: &str = "us-east-1";
pub const ACCOUNT: &str = "123456789012";

/// The four stages, by the name their ARN substitution uses in the definition.
pub const FUNCTIONS: [(&str, &str); 4] = [
    ("ValidateFunctionArn", "validate"),
    ("DetectFacesFunctionArn", "detect-faces"),
    ("RenderVariantFunctionArn", "render-variant"),
    ("RecordResultFunctionArn", "record-result"),
];

pub fn function_arn(stage: &str) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:ferrotype-{stage}")
}

tokio::task_local! {
    /// The invocation the current task belongs to (see [`Lambdas::current_invocation`]).
    static INVOCATION: u64;
}

/// The handlers' dependencies, built once (as each Lambda container builds them once).
struct Handlers {
    validate: validate::Validate,
    detect_faces: detect_faces::DetectFaces,
    render_variant: render_variant::RenderVariant,
    record_result: record_result::RecordResult,
}

/// The four functions, invocable by stage name or by ARN (as the executor's Task states call them).
pub struct Lambdas {
    handlers: Arc<Handlers>,
    invocations: AtomicU64,
    /// The account's concurrency limit, if one is imposed.
    concurrency: Option<Arc<Semaphore>>,
    /// Running invocations that a crash can be injected into.
    running: Mutex<HashMap<u64, oneshot::Sender<()>>>,
}

impl Lambdas {
    /// `detector` answers for the built-in detector and, locally, for Rekognition too.
    pub fn new(
        s3: aws_sdk_s3::Client,
        config: Arc<Config>,
        output_bucket: &str,
        detector: Arc<dyn FaceDetector>,
    ) -> Lambdas {
        Lambdas {
            handlers: Arc::new(Handlers {
                validate: validate::Validate::new(s3.clone(), config.clone(), output_bucket),
                detect_faces: detect_faces::DetectFaces::new(
                    s3.clone(),
                    config.clone(),
                    detector.clone(),
                )
                .with_rekognition(detector),
                render_variant: render_variant::RenderVariant::new(
                    s3.clone(),
                    config.clone(),
                    output_bucket,
                ),
                record_result: record_result::RecordResult::new(s3, config, output_bucket),
            }),
            invocations: AtomicU64::new(0),
            concurrency: None,
            running: Mutex::new(HashMap::new()),
        }
    }

    /// At most `limit` invocations run at once; more are throttled as Lambda throttles.
    pub fn with_concurrency_limit(mut self, limit: usize) -> Lambdas {
        self.concurrency = Some(Arc::new(Semaphore::new(limit.max(1))));
        self
    }

    /// How many invocations were made (throttled ones included).
    pub fn invocations(&self) -> u64 {
        self.invocations.load(Ordering::Relaxed)
    }

    /// The id of the invocation the calling task runs in, if any.
    pub fn current_invocation() -> Option<u64> {
        INVOCATION.try_with(|id| *id).ok()
    }

    /// Stops a running invocation as a crash would; it reports `Lambda.Unknown`. False when it is not
    /// running (any more).
    pub fn crash(&self, invocation: u64) -> bool {
        let crash = self
            .running
            .lock()
            .expect("the registry is never poisoned")
            .remove(&invocation);
        crash.is_some_and(|crash| crash.send(()).is_ok())
    }

    /// Invokes `stage` with `payload` and waits for its answer.
    pub async fn invoke(&self, stage: &str, payload: Value) -> Result<Value, TaskFailure> {
        let id = self.invocations.fetch_add(1, Ordering::Relaxed);
        if !matches!(
            stage,
            "validate" | "detect-faces" | "render-variant" | "record-result"
        ) {
            return Err(TaskFailure::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {}", function_arn(stage)),
            ));
        }
        let permit = match &self.concurrency {
            None => None,
            Some(limit) => match limit.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    return Err(TaskFailure::new(
                        "Lambda.TooManyRequestsException",
                        "Rate Exceeded. (the account's concurrent executions limit is reached)",
                    ))
                }
            },
        };
        let (crash, crashed) = oneshot::channel();
        self.running
            .lock()
            .expect("the registry is never poisoned")
            .insert(id, crash);
        let handlers = self.handlers.clone();
        let stage_name = stage.to_owned();
        let task = tokio::spawn(INVOCATION.scope(id, async move {
            let answer = call(&handlers, &stage_name, payload, id).await;
            drop(permit);
            answer
        }));
        let abort = task.abort_handle();
        let answer = tokio::select! {
            biased;
            joined = task => joined.unwrap_or_else(|err| Err(TaskFailure::new(
                "Lambda.Unknown",
                format!("the function's process ended abnormally: {err}"),
            ))),
            Ok(()) = crashed => {
                abort.abort();
                Err(TaskFailure::new(
                    "Lambda.Unknown",
                    json!({"errorType": "Runtime.ExitError",
                           "errorMessage": "the function's process exited before answering"})
                        .to_string(),
                ))
            }
        };
        self.running
            .lock()
            .expect("the registry is never poisoned")
            .remove(&id);
        answer
    }
}

async fn call(
    handlers: &Handlers,
    stage: &str,
    payload: Value,
    id: u64,
) -> Result<Value, TaskFailure> {
    let mut context = lambda_runtime::Context::default();
    context.request_id = format!("local-{id:08x}");
    context.invoked_function_arn = function_arn(stage);
    match stage {
        "validate" => {
            answer(validate::handler(&handlers.validate, LambdaEvent::new(payload, context)).await)
        }
        "detect-faces" => match ferrotype_aws::bootstrap::parse_input(payload) {
            Ok(input) => answer(
                detect_faces::handler(&handlers.detect_faces, LambdaEvent::new(input, context))
                    .await,
            ),
            Err(err) => answer::<()>(Err(err)),
        },
        "render-variant" => match ferrotype_aws::bootstrap::parse_input(payload) {
            Ok(input) => answer(
                render_variant::handler(&handlers.render_variant, LambdaEvent::new(input, context))
                    .await,
            ),
            Err(err) => answer::<()>(Err(err)),
        },
        "record-result" => match ferrotype_aws::bootstrap::parse_input(payload) {
            Ok(input) => answer(
                record_result::handler(&handlers.record_result, LambdaEvent::new(input, context))
                    .await,
            ),
            Err(err) => answer::<()>(Err(err)),
        },
        other => unreachable!("stage {other} was checked before the call"),
    }
}

#[async_trait]
impl TaskInvoker for Lambdas {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        let arn = call.function_name.as_deref().unwrap_or(&call.resource);
        let Some(stage) = arn
            .rsplit(":function:")
            .next()
            .and_then(|name| name.strip_prefix("ferrotype-"))
        else {
            return Err(TaskFailure::new(
                "Lambda.ResourceNotFoundException",
                format!("Function not found: {arn}"),
            ));
        };
        let stage = stage.split(':').next().unwrap_or(stage).to_owned();
        Lambdas::invoke(self, &stage, call.input).await
    }
}

/// A handler's result as Lambda reports it: the output, or the error with its stable name and Lambda's
/// JSON cause (`{"errorType", "errorMessage"}`).
fn answer<O: Serialize>(result: Result<O, StageError>) -> Result<Value, TaskFailure> {
    match result {
        Ok(output) => serde_json::to_value(output).map_err(|err| {
            TaskFailure::new(
                "Lambda.Unknown",
                format!("the handler's output is not JSON: {err}"),
            )
        }),
        Err(err) => Err(TaskFailure::new(
            err.name(),
            json!({ "errorType": err.name(), "errorMessage": err.message() }).to_string(),
        )),
    }
}
