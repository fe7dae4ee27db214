//! The in-process client: the real `aws_sdk_s3::Client` on the memory store, on a current-thread runtime
//! with paused time, with a hook that delays requests, fails them before or after they apply, or hangs.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use common::*;
use ferrotype_local_s3::{
    After, Before, Failure, Fault, FaultRule, InProcessS3, Operation, RequestHook, RequestInfo,
    ResponseInfo, S3Op, TokioClock,
};

/// What the hook does to the next request of an operation.
#[derive(Clone)]
struct Step {
    operation: Operation,
    delay: Duration,
    before: Before,
    after: After,
}

impl Step {
    fn new(operation: Operation) -> Step {
        Step {
            operation,
            delay: Duration::ZERO,
            before: Before::Apply,
            after: After::Answer,
        }
    }
}

/// Plays its steps in order, one per matching request, and logs what it saw.
#[derive(Default)]
struct ScriptedHook {
    steps: Mutex<VecDeque<Step>>,
    pending_after: Mutex<Vec<(String, After)>>,
    log: Mutex<Vec<String>>,
}

impl ScriptedHook {
    fn with(steps: impl IntoIterator<Item = Step>) -> Arc<ScriptedHook> {
        Arc::new(ScriptedHook {
            steps: Mutex::new(steps.into_iter().collect()),
            ..Default::default()
        })
    }

    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl RequestHook for ScriptedHook {
    async fn before(&self, request: &RequestInfo) -> Before {
        let step = {
            let mut steps = self.steps.lock().unwrap();
            match steps.front() {
                Some(step) if step.operation == request.operation => steps.pop_front(),
                _ => None,
            }
        };
        let step = step.unwrap_or_else(|| Step::new(request.operation));
        let id = format!(
            "{} {}",
            request.operation.name(),
            request.key.as_deref().unwrap_or("-")
        );
        self.log.lock().unwrap().push(format!("before {id}"));
        tokio::time::sleep(step.delay).await;
        if step.before == Before::Apply {
            self.pending_after.lock().unwrap().push((id, step.after));
        }
        step.before
    }

    async fn after(&self, request: &RequestInfo, response: &ResponseInfo) -> After {
        let id = format!(
            "{} {}",
            request.operation.name(),
            request.key.as_deref().unwrap_or("-")
        );
        self.log
            .lock()
            .unwrap()
            .push(format!("after {id} {}", response.status));
        let mut pending = self.pending_after.lock().unwrap();
        let at = pending.iter().position(|(pending_id, _)| *pending_id == id);
        at.map(|at| pending.remove(at).1).unwrap_or(After::Answer)
    }
}

fn store() -> InProcessS3 {
    InProcessS3::in_memory(&[BUCKET]).unwrap()
}

fn client_without_retries(store: &InProcessS3, hook: Arc<ScriptedHook>) -> Client {
    Client::from_conf(
        store
            .client_config_builder(Some(hook))
            .retry_config(RetryConfig::disabled())
            .build(),
    )
}

async fn version_count(client: &Client, key: &str) -> usize {
    client
        .list_object_versions()
        .bucket(BUCKET)
        .prefix(key)
        .send()
        .await
        .unwrap()
        .versions()
        .len()
}

#[tokio::test(start_paused = true)]
async fn delays_follow_tokio_time_and_last_modified_follows_the_clock() {
    let origin = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let store =
        InProcessS3::in_memory_with_clock(&[BUCKET], Arc::new(TokioClock::starting_at(origin)))
            .unwrap();
    // Under the client's 30 s attempt timeout.
    let hook = ScriptedHook::with([Step {
        delay: Duration::from_secs(20),
        ..Step::new(Operation::PutObject)
    }]);
    let client = store.client_with_hook(hook.clone());
    let started = tokio::time::Instant::now();
    put(&client, "k.jpg", b"late").await;
    assert_eq!(started.elapsed(), Duration::from_secs(20));
    let head = client
        .head_object()
        .bucket(BUCKET)
        .key("k.jpg")
        .send()
        .await
        .unwrap();
    let modified = SystemTime::try_from(*head.last_modified().unwrap()).unwrap();
    assert_eq!(modified, origin + Duration::from_secs(20));
    assert_eq!(
        hook.log(),
        [
            "before PutObject k.jpg",
            "after PutObject k.jpg 200",
            "before HeadObject k.jpg",
            "after HeadObject k.jpg 200",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_before_applying_changes_nothing_and_is_retried() {
    let store = store();
    let hook = ScriptedHook::with([Step {
        before: Before::Fail(Failure::slow_down()),
        ..Step::new(Operation::PutObject)
    }]);
    // With the SDK's retries: the second attempt stores the object, once.
    let client = store.client_with_hook(hook.clone());
    put(&client, "k", b"data").await;
    assert_eq!(version_count(&client, "k").await, 1);
    assert_eq!(
        hook.log()[..3],
        [
            "before PutObject k",
            "before PutObject k",
            "after PutObject k 200"
        ]
    );

    // Without retries the caller sees the 503, and nothing was stored.
    let hook = ScriptedHook::with([Step {
        before: Before::Fail(Failure::slow_down()),
        ..Step::new(Operation::PutObject)
    }]);
    let once = client_without_retries(&store, hook);
    let err = once
        .put_object()
        .bucket(BUCKET)
        .key("other")
        .body(ByteStream::from_static(b"x"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(failure(&err), (Some(503), Some("SlowDown".into())));
    assert_eq!(version_count(&client, "other").await, 0);
}

#[tokio::test(start_paused = true)]
async fn a_write_applied_then_failed_took_effect_and_its_retry_sees_it() {
    let store = store();
    let hook = ScriptedHook::with([Step {
        after: After::Fail(Failure::TimedOut),
        ..Step::new(Operation::PutObject)
    }]);
    let client = store.client_with_hook(hook.clone());
    // A create-only write whose answer was lost: the SDK retries, and the retry finds its own object.
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("manifest.json")
        .if_none_match("*")
        .body(ByteStream::from_static(b"mine"))
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        failure(&err),
        (Some(412), Some("PreconditionFailed".into()))
    );
    assert_eq!(get(&client, "manifest.json").await, b"mine");
    assert_eq!(version_count(&client, "manifest.json").await, 1);

    // An unconditional write retried after a lost answer is stored twice.
    let hook = ScriptedHook::with([Step {
        after: After::Fail(Failure::ConnectionLost),
        ..Step::new(Operation::PutObject)
    }]);
    let client = store.client_with_hook(hook);
    put(&client, "twice", b"same").await;
    assert_eq!(version_count(&client, "twice").await, 2);
}

#[tokio::test(start_paused = true)]
async fn an_answer_that_never_comes_times_out_after_the_change_took_effect() {
    let store = store();
    let hook = ScriptedHook::with([Step {
        after: After::Hang,
        ..Step::new(Operation::PutObject)
    }]);
    let client = client_without_retries(&store, hook);
    let started = tokio::time::Instant::now();
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"landed"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    assert_eq!(started.elapsed(), Duration::from_secs(30));
    assert_eq!(get(&store.client(), "k").await, b"landed");
}

#[tokio::test(start_paused = true)]
async fn a_request_hung_before_applying_never_lands() {
    let store = store();
    let hook = ScriptedHook::with([Step {
        before: Before::Hang,
        ..Step::new(Operation::PutObject)
    }]);
    let client = client_without_retries(&store, hook);
    // The caller's attempt timeout gives up on it; the store never saw it.
    let err = client
        .put_object()
        .bucket(BUCKET)
        .key("k")
        .body(ByteStream::from_static(b"never"))
        .send()
        .await
        .unwrap_err();
    assert!(matches!(err, SdkError::TimeoutError(_)), "{err:?}");
    let err = store
        .client()
        .head_object()
        .bucket(BUCKET)
        .key("k")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(404));
}

#[tokio::test(start_paused = true)]
async fn a_delayed_write_lands_after_a_later_one() {
    let store = store();
    let hook = ScriptedHook::with([Step {
        delay: Duration::from_secs(5),
        ..Step::new(Operation::PutObject)
    }]);
    let client = store.client_with_hook(hook);
    let slow = put(&client, "k", b"sent first");
    let fast = async {
        tokio::time::sleep(Duration::from_secs(1)).await;
        put(&client, "k", b"sent second").await
    };
    let ((_, slow_version), (_, fast_version)) = tokio::join!(slow, fast);
    assert_eq!(get(&client, "k").await, b"sent first");
    let versions = client
        .list_object_versions()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    let order: Vec<&str> = versions
        .versions()
        .iter()
        .filter_map(|v| v.version_id())
        .collect();
    assert_eq!(order, [slow_version.as_str(), fast_version.as_str()]);
}

/// Fails and delays requests at random, from a seed.
struct RandomHook {
    rng: Mutex<fastrand::Rng>,
    log: Mutex<Vec<String>>,
    started: tokio::time::Instant,
}

#[async_trait::async_trait]
impl RequestHook for RandomHook {
    async fn before(&self, request: &RequestInfo) -> Before {
        let (delay, roll) = {
            let mut rng = self.rng.lock().unwrap();
            (rng.u64(..2000), rng.u8(..10))
        };
        tokio::time::sleep(Duration::from_millis(delay)).await;
        self.log.lock().unwrap().push(format!(
            "{:?} before {} {:?} {roll}",
            self.started.elapsed(),
            request.operation.name(),
            request.key
        ));
        if roll == 0 {
            Before::Fail(Failure::internal_error())
        } else {
            Before::Apply
        }
    }

    async fn after(&self, request: &RequestInfo, response: &ResponseInfo) -> After {
        let roll = self.rng.lock().unwrap().u8(..10);
        self.log.lock().unwrap().push(format!(
            "{:?} after {} {:?} {} {:?} {roll}",
            self.started.elapsed(),
            request.operation.name(),
            request.key,
            response.status,
            response.headers.get("x-amz-version-id"),
        ));
        if roll == 0 {
            After::Fail(Failure::TimedOut)
        } else {
            After::Answer
        }
    }
}

/// Four writers on three keys through a randomly failing, delaying hook; the transcript of every request
/// and answer, and the final versions.
async fn scenario(seed: u64) -> Vec<String> {
    let origin = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let store =
        InProcessS3::in_memory_with_clock(&[BUCKET], Arc::new(TokioClock::starting_at(origin)))
            .unwrap();
    let hook = Arc::new(RandomHook {
        rng: Mutex::new(fastrand::Rng::with_seed(seed)),
        log: Mutex::new(Vec::new()),
        started: tokio::time::Instant::now(),
    });
    let client = store.client_with_hook(hook.clone());
    let writers = (0..4).map(|writer| {
        let client = client.clone();
        tokio::spawn(async move {
            let mut outcomes = Vec::new();
            for step in 0..6 {
                let key = format!("k{}", (writer + step) % 3);
                let result = match step % 3 {
                    0 => client
                        .put_object()
                        .bucket(BUCKET)
                        .key(&key)
                        .if_none_match("*")
                        .body(ByteStream::from(format!("{writer}/{step}").into_bytes()))
                        .send()
                        .await
                        .map(|out| format!("{:?}", out.version_id()))
                        .map_err(|err| failure(&err)),
                    1 => client
                        .get_object()
                        .bucket(BUCKET)
                        .key(&key)
                        .send()
                        .await
                        .map(|out| format!("{:?}", out.version_id()))
                        .map_err(|err| failure(&err)),
                    _ => client
                        .delete_object()
                        .bucket(BUCKET)
                        .key(&key)
                        .send()
                        .await
                        .map(|out| format!("{:?}", out.version_id()))
                        .map_err(|err| failure(&err)),
                };
                outcomes.push(format!("writer {writer} step {step} {key}: {result:?}"));
            }
            outcomes
        })
    });
    let mut transcript: Vec<String> = Vec::new();
    for writer in futures::future::join_all(writers).await {
        transcript.extend(writer.unwrap());
    }
    transcript.extend(hook.log.lock().unwrap().iter().cloned());
    let versions = store
        .client()
        .list_object_versions()
        .bucket(BUCKET)
        .send()
        .await
        .unwrap();
    transcript.extend(versions.versions().iter().map(|v| format!("{v:?}")));
    transcript.extend(versions.delete_markers().iter().map(|m| format!("{m:?}")));
    transcript
}

#[test]
fn a_seeded_run_replays_exactly() {
    let run = |seed| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap()
            .block_on(scenario(seed))
    };
    for seed in [1, 2, 3] {
        let first = run(seed);
        assert!(first.len() > 40);
        assert_eq!(first, run(seed), "seed {seed} did not replay");
    }
}

#[tokio::test(start_paused = true)]
async fn fault_rules_apply_to_the_memory_store_too() {
    let store = store();
    let client = store.client();
    put(&client, "uploads/a.jpg", b"data").await;
    store.faults().inject(
        FaultRule::new(S3Op::GetObject, Fault::SlowDown)
            .times(2)
            .for_keys_under("uploads/"),
    );
    assert_eq!(get(&client, "uploads/a.jpg").await, b"data");
    assert_eq!(store.faults().pending(), 0);
    store
        .faults()
        .inject(FaultRule::new(S3Op::HeadObject, Fault::Vanish));
    let err = client
        .head_object()
        .bucket(BUCKET)
        .key("uploads/a.jpg")
        .send()
        .await
        .unwrap_err();
    assert_eq!(status(&err), Some(404));
}

#[tokio::test]
async fn a_disk_store_can_be_reached_in_process_too() {
    let server = ferrotype_local_s3::LocalS3::start_temporary(&[BUCKET])
        .await
        .unwrap();
    let hook = ScriptedHook::with([]);
    let client = Client::from_conf(
        server
            .client_config_builder()
            .http_client(server.in_process_http_client(Some(hook.clone())))
            .build(),
    );
    put(&client, "k", b"no tcp").await;
    assert_eq!(get(&server.client(), "k").await, b"no tcp");
    assert_eq!(hook.log()[0], "before PutObject k");
}
