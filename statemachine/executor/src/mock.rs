//! A [`TaskInvoker`] answering Task states from an AWS Step Functions Local mock configuration
//! file ("Using mocked service integrations for testing in Step Functions Local").
//!
//! ```json
//! { "StateMachines": { "<machine>": { "TestCases": { "<case>": { "<state>": "<response>" } } } },
//!   "MockedResponses": { "<response>": { "0": { "Return": {…} }, "1-2": { "Throw": { "Error": "…", "Cause": "…" } } } } }
//! ```
//! Keys of a mocked response are 0-based invocation numbers (or inclusive ranges) of that state,
//! counted across retries and Map iterations.
//!
//! Two extensions of the format (Step Functions Local has neither):
//! - an answer may carry `"DelaySeconds": n` beside `Return`/`Throw`: the task takes n seconds (in
//!   simulated time, without sleeping) and sends no heartbeat, to test TimeoutSeconds and
//!   HeartbeatSeconds;
//! - a top-level `"S3": {"<bucket>": {"<key>": <object>}}` holds the objects a Distributed Map's
//!   ItemReader reads (`s3:listObjectsV2` lists them by prefix, `s3:getObject` reads one; a string is
//!   the object's text, any other JSON value is stored as its JSON text), and its ResultWriter's
//!   `s3:putObject` writes there too ([`MockInvoker::s3_objects`] shows them).

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use serde::Deserialize;
use serde_json::Value;

use crate::definition::{State, StateMachine};
use crate::engine::{TaskCall, TaskFailure, TaskInvoker, TaskKind};
use crate::error::names;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MockError {
    #[error("mock config is not valid: {0}")]
    Invalid(String),
    #[error("mock config has no state machine {0:?} (it has: {1})")]
    NoStateMachine(String, String),
    #[error("state machine {machine:?} has no test case {case:?} (it has: {available})")]
    NoTestCase {
        machine: String,
        case: String,
        available: String,
    },
    #[error("test case {case:?} maps state {state:?} to mocked response {response:?}, which MockedResponses does not define")]
    UnknownResponse {
        case: String,
        state: String,
        response: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(rename = "StateMachines")]
    state_machines: BTreeMap<String, RawMachine>,
    #[serde(rename = "MockedResponses", default)]
    mocked_responses: BTreeMap<String, BTreeMap<String, Value>>,
    #[serde(rename = "S3", default)]
    s3: BTreeMap<String, BTreeMap<String, Value>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMachine {
    #[serde(rename = "TestCases")]
    test_cases: BTreeMap<String, BTreeMap<String, String>>,
}

/// What one invocation answers.
#[derive(Debug, Clone, PartialEq)]
pub enum MockAnswer {
    Return(Value),
    Throw { error: String, cause: String },
}

/// A mocked response: answers by invocation-number range.
#[derive(Debug, Clone, PartialEq)]
pub struct MockedResponse {
    ranges: Vec<(u32, u32, MockAnswer, f64)>,
}

impl MockedResponse {
    fn parse(name: &str, raw: &BTreeMap<String, Value>) -> Result<Self, MockError> {
        let bad = |why: String| MockError::Invalid(format!("MockedResponses.{name}: {why}"));
        let mut ranges = Vec::new();
        for (key, answer) in raw {
            let (first, last) = match key.split_once('-') {
                Some((a, b)) => (a.trim().parse::<u32>(), b.trim().parse::<u32>()),
                None => (key.trim().parse::<u32>(), key.trim().parse::<u32>()),
            };
            let (Ok(first), Ok(last)) = (first, last) else {
                return Err(bad(format!(
                    "key {key:?} is not an invocation number or range like \"0-2\""
                )));
            };
            if first > last {
                return Err(bad(format!("range {key:?} runs backwards")));
            }
            let mut object = answer.as_object().cloned().ok_or_else(|| {
                bad(format!(
                    "{key:?} needs exactly one of \"Return\" or \"Throw\""
                ))
            })?;
            let delay = match object.remove("DelaySeconds") {
                None => 0.0,
                Some(Value::Number(n)) if n.as_f64().is_some_and(|d| d >= 0.0) => {
                    n.as_f64().unwrap_or(0.0)
                }
                Some(other) => {
                    return Err(bad(format!(
                        "{key:?}: DelaySeconds must be a non-negative number, got {other}"
                    )))
                }
            };
            if object.len() != 1 {
                return Err(bad(format!(
                    "{key:?} needs exactly one of \"Return\" or \"Throw\" (and optionally \"DelaySeconds\")"
                )));
            }
            let answer = match (object.get("Return"), object.get("Throw")) {
                (Some(value), None) => MockAnswer::Return(value.clone()),
                (None, Some(throw)) => {
                    let field = |f: &str| throw.get(f).and_then(Value::as_str).map(str::to_string);
                    let error = field("Error")
                        .ok_or_else(|| bad(format!("{key:?}: Throw needs a string \"Error\"")))?;
                    MockAnswer::Throw {
                        error,
                        cause: field("Cause").unwrap_or_default(),
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "{key:?} needs exactly one of \"Return\" or \"Throw\""
                    )))
                }
            };
            ranges.push((first, last, answer, delay));
        }
        ranges.sort_by_key(|r| r.0);
        if let Some(w) = ranges.windows(2).find(|w| w[1].0 <= w[0].1) {
            return Err(bad(format!(
                "invocation ranges overlap at invocation {}",
                w[1].0
            )));
        }
        Ok(Self { ranges })
    }

    pub fn answer(&self, invocation: u32) -> Option<&MockAnswer> {
        self.ranges
            .iter()
            .find(|(a, b, _, _)| (*a..=*b).contains(&invocation))
            .map(|r| &r.2)
    }

    /// How long the task takes on this invocation (the `DelaySeconds` extension).
    pub fn delay(&self, invocation: u32) -> f64 {
        self.ranges
            .iter()
            .find(|(a, b, _, _)| (*a..=*b).contains(&invocation))
            .map_or(0.0, |r| r.3)
    }
}

/// A parsed mock configuration file.
#[derive(Debug, Clone, PartialEq)]
pub struct MockConfig {
    raw: RawConfig,
}

impl MockConfig {
    pub fn from_json(text: &str) -> Result<Self, MockError> {
        let raw: RawConfig =
            serde_json::from_str(text).map_err(|e| MockError::Invalid(e.to_string()))?;
        for (name, response) in &raw.mocked_responses {
            MockedResponse::parse(name, response)?;
        }
        Ok(Self { raw })
    }

    pub fn test_cases(&self, machine: &str) -> Vec<String> {
        self.raw
            .state_machines
            .get(machine)
            .map(|m| m.test_cases.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// The invoker for one test case of one state machine.
    pub fn invoker(&self, machine: &str, case: &str) -> Result<MockInvoker, MockError> {
        let m = self.raw.state_machines.get(machine).ok_or_else(|| {
            MockError::NoStateMachine(
                machine.to_string(),
                self.raw
                    .state_machines
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
        let states = m
            .test_cases
            .get(case)
            .ok_or_else(|| MockError::NoTestCase {
                machine: machine.to_string(),
                case: case.to_string(),
                available: m.test_cases.keys().cloned().collect::<Vec<_>>().join(", "),
            })?;
        let mut responses = HashMap::new();
        for (state, response) in states {
            let raw = self.raw.mocked_responses.get(response).ok_or_else(|| {
                MockError::UnknownResponse {
                    case: case.to_string(),
                    state: state.clone(),
                    response: response.clone(),
                }
            })?;
            responses.insert(
                state.clone(),
                (response.clone(), MockedResponse::parse(response, raw)?),
            );
        }
        let s3 = self
            .raw
            .s3
            .iter()
            .map(|(bucket, objects)| {
                let objects = objects
                    .iter()
                    .map(|(key, body)| {
                        let text = match body {
                            Value::String(text) => text.clone(),
                            other => other.to_string(),
                        };
                        (key.clone(), text)
                    })
                    .collect();
                (bucket.clone(), objects)
            })
            .collect();
        Ok(MockInvoker {
            case: case.to_string(),
            responses,
            invocations: Mutex::new(HashMap::new()),
            s3: Mutex::new(s3),
        })
    }
}

/// Answers Task states from one test case; counts invocations per state.
#[derive(Debug)]
pub struct MockInvoker {
    case: String,
    responses: HashMap<String, (String, MockedResponse)>,
    invocations: Mutex<HashMap<String, u32>>,
    s3: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
}

impl MockInvoker {
    /// Task states of the definition (nested ones included) that this test case does not mock.
    pub fn unmocked_tasks(&self, machine: &StateMachine) -> Vec<String> {
        let mut missing = Vec::new();
        fn walk(
            machine: &StateMachine,
            responses: &HashMap<String, (String, MockedResponse)>,
            missing: &mut Vec<String>,
        ) {
            for (name, state) in &machine.states {
                match state {
                    State::Task(_) if !responses.contains_key(name) => missing.push(name.clone()),
                    State::Map(m) => walk(&m.processor, responses, missing),
                    State::Parallel(p) => {
                        p.branches.iter().for_each(|b| walk(b, responses, missing))
                    }
                    _ => {}
                }
            }
        }
        walk(machine, &self.responses, &mut missing);
        missing
    }

    /// The mocked S3 objects as they stand (the config's, and what ResultWriters wrote), by bucket and key.
    pub fn s3_objects(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        self.s3.lock().expect("s3 lock is never poisoned").clone()
    }

    /// A Distributed Map's ItemReader and ResultWriter calls, answered from the `S3` section.
    fn answer_s3(&self, call: &TaskCall) -> Result<Value, TaskFailure> {
        let mut s3 = self.s3.lock().expect("s3 lock is never poisoned");
        let bucket = call.input["Bucket"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let key = call.input["Key"].as_str().unwrap_or_default().to_string();
        if call.kind == TaskKind::ResultWriter {
            let body = call.input["Body"].as_str().unwrap_or_default().to_string();
            s3.entry(bucket).or_default().insert(key, body);
            return Ok(serde_json::json!({}));
        }
        let no_bucket = || {
            TaskFailure::new(
                "S3.NoSuchBucket",
                format!("the mock config's S3 section has no bucket {bucket:?}"),
            )
        };
        let objects = s3.get(&bucket).ok_or_else(no_bucket)?;
        if call.resource.ends_with(":s3:listObjectsV2") {
            let prefix = call.input["Prefix"].as_str().unwrap_or_default();
            let contents: Vec<Value> = objects
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, body)| serde_json::json!({"Key": k, "Size": body.len(), "ETag": format!("\"{:x}\"", body.len()), "LastModified": 0, "StorageClass": "STANDARD"}))
                .collect();
            return Ok(serde_json::json!({ "Contents": contents }));
        }
        objects
            .get(&key)
            .map(|body| Value::String(body.clone()))
            .ok_or_else(|| {
                TaskFailure::new(
                    "S3.NoSuchKey",
                    format!("the mock config's S3 section has no s3://{bucket}/{key}"),
                )
            })
    }

    /// How many times each state has been invoked so far.
    pub fn invocation_counts(&self) -> HashMap<String, u32> {
        self.invocations
            .lock()
            .expect("counter lock is never poisoned")
            .clone()
    }
}

/// The name of an unsubstituted `${Name}` in a Task's Resource.
fn open_placeholder(resource: &str) -> Option<&str> {
    let start = resource.find("${")?;
    let end = resource[start..].find('}')?;
    Some(&resource[start + 2..start + end])
}

#[async_trait::async_trait]
impl TaskInvoker for MockInvoker {
    async fn invoke(&self, call: TaskCall) -> Result<Value, TaskFailure> {
        if matches!(call.kind, TaskKind::ItemReader | TaskKind::ResultWriter) {
            return self.answer_s3(&call);
        }
        let invocation = {
            let mut counts = self
                .invocations
                .lock()
                .expect("counter lock is never poisoned");
            let count = counts.entry(call.state_name.clone()).or_insert(0);
            *count += 1;
            *count - 1
        };
        // A missing mock is a test-setup mistake, not a task failure: States.Runtime is never caught.
        let Some((response_name, response)) = self.responses.get(&call.state_name) else {
            let placeholder = open_placeholder(&call.resource)
                .map(|name| format!("; its Resource is the open placeholder ${{{name}}}, which has no value either (substitute {name}=<ARN>)"))
                .unwrap_or_default();
            return Err(TaskFailure::new(
                names::RUNTIME,
                format!(
                    "test case {:?} has no mocked response for Task state {:?}{placeholder}",
                    self.case, call.state_name
                ),
            ));
        };
        match response.answer(invocation) {
            None => Err(TaskFailure::new(
                names::RUNTIME,
                format!("mocked response {response_name:?} has no answer for invocation {invocation} of state {:?}", call.state_name),
            )),
            Some(MockAnswer::Throw { error, cause }) => {
                call.clock.sleep(response.delay(invocation)).await;
                Err(TaskFailure::new(error.clone(), cause.clone()))
            }
            Some(MockAnswer::Return(value)) => {
                call.clock.sleep(response.delay(invocation)).await;
                // A Resource left as an open `${Name}` placeholder is taken for a Lambda function when
                // its mocked answer has the Lambda Invoke shape (as Step Functions Local mocks write it).
                let lambda_like = matches!(call.kind, TaskKind::LambdaFunction | TaskKind::LambdaInvoke)
                    || open_placeholder(&call.resource).is_some();
                Ok(match value {
                    // The executor produces the Lambda wrapping itself: take the function's Payload.
                    Value::Object(o) if lambda_like && o.contains_key("Payload") && o.contains_key("StatusCode") => o["Payload"].clone(),
                    other => other.clone(),
                })
            }
        }
    }
}
