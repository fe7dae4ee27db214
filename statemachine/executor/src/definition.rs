//! The Amazon States Language definition model (JSONPath query language) and its parser.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::choice::ChoiceRule;
use crate::error::DefinitionError;

/// A parsed state machine (or the states of a Map iteration / Parallel branch).
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub comment: Option<String>,
    pub start_at: String,
    pub states: BTreeMap<String, State>,
    /// Execution-level `TimeoutSeconds` (top level only).
    pub timeout_seconds: Option<u64>,
}

/// How a path field was given: absent (defaults to `$`), explicitly `null` (discard), or a path.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub enum PathField {
    #[default]
    Default,
    Null,
    Path(String),
}

impl<'de> Deserialize<'de> for PathField {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(PathField::Null),
            Some(path) => Ok(PathField::Path(path)),
        }
    }
}

impl PathField {
    pub fn as_path(&self) -> Option<&str> {
        match self {
            PathField::Path(p) => Some(p),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Retrier {
    pub error_equals: Vec<String>,
    pub interval_seconds: Option<f64>,
    pub max_attempts: Option<u32>,
    pub backoff_rate: Option<f64>,
    pub max_delay_seconds: Option<f64>,
    pub jitter_strategy: Option<JitterStrategy>,
    pub comment: Option<String>,
}

impl Retrier {
    pub fn interval(&self) -> f64 {
        self.interval_seconds.unwrap_or(1.0)
    }
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts.unwrap_or(3)
    }
    pub fn backoff(&self) -> f64 {
        self.backoff_rate.unwrap_or(2.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JitterStrategy {
    Full,
    None,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    #[serde(default)]
    pub result_path: PathField,
    pub comment: Option<String>,
}

/// Where a state goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Next(String),
    End,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Task(TaskState),
    Choice(ChoiceState),
    Map(MapState),
    Parallel(ParallelState),
    Pass(PassState),
    Wait(WaitState),
    Succeed(SucceedState),
    Fail(FailState),
}

impl State {
    pub fn type_name(&self) -> &'static str {
        match self {
            State::Task(_) => "Task",
            State::Choice(_) => "Choice",
            State::Map(_) => "Map",
            State::Parallel(_) => "Parallel",
            State::Pass(_) => "Pass",
            State::Wait(_) => "Wait",
            State::Succeed(_) => "Succeed",
            State::Fail(_) => "Fail",
        }
    }

    /// The states this one can hand control to (Next, Choice targets, Catch targets).
    pub fn successors(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        let transition = match self {
            State::Task(s) => Some(&s.transition),
            State::Map(s) => Some(&s.transition),
            State::Parallel(s) => Some(&s.transition),
            State::Pass(s) => Some(&s.transition),
            State::Wait(s) => Some(&s.transition),
            State::Choice(s) => {
                out.extend(s.choices.iter().map(|c| c.next.as_str()));
                out.extend(s.default.as_deref());
                None
            }
            State::Succeed(_) | State::Fail(_) => None,
        };
        if let Some(Transition::Next(n)) = transition {
            out.push(n.as_str());
        }
        out.extend(self.catchers().iter().map(|c| c.next.as_str()));
        out
    }

    pub fn retriers(&self) -> &[Retrier] {
        match self {
            State::Task(s) => &s.retry,
            State::Map(s) => &s.retry,
            State::Parallel(s) => &s.retry,
            _ => &[],
        }
    }

    pub fn catchers(&self) -> &[Catcher] {
        match self {
            State::Task(s) => &s.catch,
            State::Map(s) => &s.catch,
            State::Parallel(s) => &s.catch,
            _ => &[],
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TaskState {
    pub resource: String,
    pub io: IoPaths,
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub timeout_seconds: Option<u64>,
    pub timeout_seconds_path: Option<String>,
    pub heartbeat_seconds: Option<u64>,
    pub transition: Transition,
}

/// The path fields most states share.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IoPaths {
    pub input_path: PathField,
    pub output_path: PathField,
    pub result_path: PathField,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceState {
    pub io: IoPaths,
    pub choices: Vec<ChoiceRule>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapState {
    pub io: IoPaths,
    pub items_path: PathField,
    /// `ItemSelector`, or the legacy `Parameters`.
    pub item_selector: Option<Value>,
    /// `ItemProcessor`, or the legacy `Iterator`.
    pub processor: Box<StateMachine>,
    pub max_concurrency: u32,
    pub max_concurrency_path: Option<String>,
    pub tolerated_failure_count: Option<u64>,
    pub tolerated_failure_count_path: Option<String>,
    pub tolerated_failure_percentage: Option<f64>,
    pub tolerated_failure_percentage_path: Option<String>,
    pub result_selector: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParallelState {
    pub io: IoPaths,
    pub parameters: Option<Value>,
    pub branches: Vec<StateMachine>,
    pub result_selector: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PassState {
    pub io: IoPaths,
    pub parameters: Option<Value>,
    pub result: Option<Value>,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(u64),
    SecondsPath(String),
    Timestamp(String),
    TimestampPath(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitState {
    pub io: IoPaths,
    pub wait: WaitFor,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SucceedState {
    pub io: IoPaths,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailState {
    pub error: Option<String>,
    pub error_path: Option<String>,
    pub cause: Option<String>,
    pub cause_path: Option<String>,
}

// ---- parsing ------------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawMachine {
    comment: Option<String>,
    start_at: String,
    states: Map<String, Value>,
    timeout_seconds: Option<u64>,
    version: Option<String>,
    query_language: Option<String>,
    // Only meaningful on an ItemProcessor.
    processor_config: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawState {
    comment: Option<String>,
    query_language: Option<String>,
    next: Option<String>,
    end: Option<bool>,
    #[serde(default)]
    input_path: PathField,
    #[serde(default)]
    output_path: PathField,
    #[serde(default)]
    result_path: PathField,
    parameters: Option<Value>,
    result_selector: Option<Value>,
    #[serde(default)]
    retry: Vec<Retrier>,
    #[serde(default)]
    catch: Vec<Catcher>,
    // Task
    resource: Option<String>,
    timeout_seconds: Option<u64>,
    timeout_seconds_path: Option<String>,
    heartbeat_seconds: Option<u64>,
    heartbeat_seconds_path: Option<String>,
    credentials: Option<Value>,
    // Choice
    choices: Option<Vec<Value>>,
    default: Option<String>,
    // Map
    #[serde(default)]
    items_path: PathField,
    item_selector: Option<Value>,
    item_processor: Option<Value>,
    iterator: Option<Value>,
    max_concurrency: Option<u32>,
    max_concurrency_path: Option<String>,
    tolerated_failure_count: Option<u64>,
    tolerated_failure_count_path: Option<String>,
    tolerated_failure_percentage: Option<f64>,
    tolerated_failure_percentage_path: Option<String>,
    item_reader: Option<Value>,
    item_batcher: Option<Value>,
    result_writer: Option<Value>,
    label: Option<String>,
    // Parallel
    branches: Option<Vec<Value>>,
    // Pass
    result: Option<Value>,
    // Wait
    seconds: Option<u64>,
    seconds_path: Option<String>,
    timestamp: Option<String>,
    timestamp_path: Option<String>,
    // Fail
    error: Option<String>,
    error_path: Option<String>,
    cause: Option<String>,
    cause_path: Option<String>,
}

impl StateMachine {
    /// Parse a definition from JSON text.
    pub fn from_json(text: &str) -> Result<Self, DefinitionError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| DefinitionError::Json(e.to_string()))?;
        Self::from_value(&value)
    }

    /// Parse a definition from a JSON value.
    pub fn from_value(value: &Value) -> Result<Self, DefinitionError> {
        parse_machine(value, "")
    }
}

fn parse_machine(value: &Value, scope: &str) -> Result<StateMachine, DefinitionError> {
    let location = if scope.is_empty() {
        "definition".to_string()
    } else {
        scope.to_string()
    };
    let raw: RawMachine = from_value_at(value, &location)?;
    if let Some(ql) = &raw.query_language {
        if ql != "JSONPath" {
            return Err(DefinitionError::invalid(
                location,
                format!("QueryLanguage {ql:?} is not supported (only JSONPath)"),
            ));
        }
    }
    if let Some(version) = &raw.version {
        if version != "1.0" {
            return Err(DefinitionError::invalid(
                location,
                format!("Version {version:?} is not supported (only \"1.0\")"),
            ));
        }
    }
    if raw.processor_config.is_some() && scope.is_empty() {
        return Err(DefinitionError::invalid(
            location,
            "ProcessorConfig is only allowed in a Map state's ItemProcessor",
        ));
    }
    if let Some(config) = &raw.processor_config {
        if let Some(mode) = config.get("Mode").and_then(Value::as_str) {
            if mode != "INLINE" {
                return Err(DefinitionError::invalid(
                    location,
                    format!("ProcessorConfig.Mode {mode:?} is not supported (only INLINE)"),
                ));
            }
        }
    }
    if raw.states.is_empty() {
        return Err(DefinitionError::invalid(
            location,
            "States must not be empty",
        ));
    }
    let mut states = BTreeMap::new();
    for (name, state) in &raw.states {
        if name.is_empty() || name.chars().count() > 80 {
            return Err(DefinitionError::invalid(
                format!("state {name:?}"),
                "state names must be 1 to 80 characters",
            ));
        }
        let location = if scope.is_empty() {
            format!("state {name:?}")
        } else {
            format!("{scope} > state {name:?}")
        };
        states.insert(name.clone(), parse_state(state, &location)?);
    }
    Ok(StateMachine {
        comment: raw.comment,
        start_at: raw.start_at,
        states,
        timeout_seconds: raw.timeout_seconds,
    })
}

fn from_value_at<T: DeserializeOwned>(value: &Value, location: &str) -> Result<T, DefinitionError> {
    T::deserialize(value).map_err(|e| DefinitionError::invalid(location, e.to_string()))
}

fn parse_state(value: &Value, location: &str) -> Result<State, DefinitionError> {
    let object = value
        .as_object()
        .ok_or_else(|| DefinitionError::invalid(location, "a state must be a JSON object"))?;
    let state_type = object
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| DefinitionError::invalid(location, "missing string field \"Type\""))?
        .to_string();
    let mut rest = object.clone();
    rest.remove("Type");
    let raw: RawState = from_value_at(&Value::Object(rest.clone()), location)?;
    let bad = |message: String| DefinitionError::invalid(location, message);

    if let Some(ql) = &raw.query_language {
        if ql != "JSONPath" {
            return Err(bad(format!(
                "QueryLanguage {ql:?} is not supported (only JSONPath)"
            )));
        }
    }
    let _ = (&raw.comment, &raw.credentials, &raw.heartbeat_seconds_path);

    // Which fields each type allows (AWS rejects the others).
    let allowed: &[&str] = match state_type.as_str() {
        "Task" => &[
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "Resource",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        ],
        "Choice" => &[
            "Comment",
            "QueryLanguage",
            "InputPath",
            "OutputPath",
            "Choices",
            "Default",
        ],
        "Map" => &[
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "ItemsPath",
            "ItemSelector",
            "ItemProcessor",
            "Iterator",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "Label",
        ],
        "Parallel" => &[
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "ResultSelector",
            "Retry",
            "Catch",
            "Branches",
        ],
        "Pass" => &[
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "Result",
        ],
        "Wait" => &[
            "Comment",
            "QueryLanguage",
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
        ],
        "Succeed" => &["Comment", "QueryLanguage", "InputPath", "OutputPath"],
        "Fail" => &[
            "Comment",
            "QueryLanguage",
            "Error",
            "ErrorPath",
            "Cause",
            "CausePath",
        ],
        other => return Err(bad(format!("unknown state Type {other:?}"))),
    };
    if let Some(field) = rest.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(bad(format!(
            "field \"{field}\" is not allowed in a {state_type} state"
        )));
    }

    let terminal_types = ["Choice", "Succeed", "Fail"];
    let transition = if terminal_types.contains(&state_type.as_str()) {
        Transition::End
    } else {
        match (&raw.next, raw.end) {
            (Some(_), Some(true)) => {
                return Err(bad(
                    "a state cannot have both \"Next\" and \"End\": true".into()
                ))
            }
            (Some(next), _) => Transition::Next(next.clone()),
            (None, Some(true)) => Transition::End,
            (None, _) => {
                return Err(bad(
                    "a non-terminal state needs \"Next\" or \"End\": true".into()
                ))
            }
        }
    };
    let io = IoPaths {
        input_path: raw.input_path.clone(),
        output_path: raw.output_path.clone(),
        result_path: raw.result_path.clone(),
    };

    Ok(match state_type.as_str() {
        "Task" => {
            let resource = raw
                .resource
                .ok_or_else(|| bad("a Task state needs \"Resource\"".into()))?;
            if raw.timeout_seconds.is_some() && raw.timeout_seconds_path.is_some() {
                return Err(bad(
                    "use only one of TimeoutSeconds and TimeoutSecondsPath".into()
                ));
            }
            if raw.timeout_seconds == Some(0) {
                return Err(bad("TimeoutSeconds must be a positive integer".into()));
            }
            State::Task(TaskState {
                resource,
                io,
                parameters: raw.parameters,
                result_selector: raw.result_selector,
                retry: raw.retry,
                catch: raw.catch,
                timeout_seconds: raw.timeout_seconds,
                timeout_seconds_path: raw.timeout_seconds_path,
                heartbeat_seconds: raw.heartbeat_seconds,
                transition,
            })
        }
        "Choice" => {
            let choices = raw
                .choices
                .ok_or_else(|| bad("a Choice state needs \"Choices\"".into()))?;
            if choices.is_empty() {
                return Err(bad("Choices must not be empty".into()));
            }
            let choices = choices
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    ChoiceRule::parse_top(rule).map_err(|m| bad(format!("Choices[{i}]: {m}")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            State::Choice(ChoiceState {
                io,
                choices,
                default: raw.default,
            })
        }
        "Map" => {
            for (present, field) in [
                (raw.item_reader.is_some(), "ItemReader"),
                (raw.item_batcher.is_some(), "ItemBatcher"),
                (raw.result_writer.is_some(), "ResultWriter"),
                (raw.label.is_some(), "Label"),
            ] {
                if present {
                    return Err(bad(format!(
                        "{field} belongs to a Distributed Map, which this executor does not run"
                    )));
                }
            }
            if raw.item_selector.is_some() && raw.parameters.is_some() {
                return Err(bad(
                    "use ItemSelector or the legacy Parameters, not both".into()
                ));
            }
            let processor = match (&raw.item_processor, &raw.iterator) {
                (Some(p), None) => parse_machine(p, &format!("{location} > ItemProcessor"))?,
                (None, Some(p)) => parse_machine(p, &format!("{location} > Iterator"))?,
                (Some(_), Some(_)) => {
                    return Err(bad(
                        "use ItemProcessor or the legacy Iterator, not both".into()
                    ))
                }
                (None, None) => return Err(bad("a Map state needs \"ItemProcessor\"".into())),
            };
            if let Some(p) = raw.tolerated_failure_percentage {
                if !(0.0..=100.0).contains(&p) {
                    return Err(bad(
                        "ToleratedFailurePercentage must be between 0 and 100".into()
                    ));
                }
            }
            State::Map(MapState {
                io,
                items_path: raw.items_path,
                item_selector: raw.item_selector.or(raw.parameters),
                processor: Box::new(processor),
                max_concurrency: raw.max_concurrency.unwrap_or(0),
                max_concurrency_path: raw.max_concurrency_path,
                tolerated_failure_count: raw.tolerated_failure_count,
                tolerated_failure_count_path: raw.tolerated_failure_count_path,
                tolerated_failure_percentage: raw.tolerated_failure_percentage,
                tolerated_failure_percentage_path: raw.tolerated_failure_percentage_path,
                result_selector: raw.result_selector,
                retry: raw.retry,
                catch: raw.catch,
                transition,
            })
        }
        "Parallel" => {
            let branches = raw
                .branches
                .ok_or_else(|| bad("a Parallel state needs \"Branches\"".into()))?;
            if branches.is_empty() {
                return Err(bad("Branches must not be empty".into()));
            }
            let branches = branches
                .iter()
                .enumerate()
                .map(|(i, b)| parse_machine(b, &format!("{location} > Branches[{i}]")))
                .collect::<Result<Vec<_>, _>>()?;
            State::Parallel(ParallelState {
                io,
                parameters: raw.parameters,
                branches,
                result_selector: raw.result_selector,
                retry: raw.retry,
                catch: raw.catch,
                transition,
            })
        }
        "Pass" => State::Pass(PassState {
            io,
            parameters: raw.parameters,
            result: raw.result,
            transition,
        }),
        "Wait" => {
            let wait = match (raw.seconds, raw.seconds_path, raw.timestamp, raw.timestamp_path) {
                (Some(s), None, None, None) => WaitFor::Seconds(s),
                (None, Some(p), None, None) => WaitFor::SecondsPath(p),
                (None, None, Some(t), None) => {
                    if crate::choice::parse_timestamp(&t).is_none() {
                        return Err(bad(format!("Timestamp {t:?} is not an RFC 3339 timestamp")));
                    }
                    WaitFor::Timestamp(t)
                }
                (None, None, None, Some(p)) => WaitFor::TimestampPath(p),
                _ => return Err(bad("a Wait state needs exactly one of Seconds, SecondsPath, Timestamp, TimestampPath".into())),
            };
            State::Wait(WaitState {
                io,
                wait,
                transition,
            })
        }
        "Succeed" => State::Succeed(SucceedState { io }),
        "Fail" => {
            if raw.error.is_some() && raw.error_path.is_some() {
                return Err(bad("use only one of Error and ErrorPath".into()));
            }
            if raw.cause.is_some() && raw.cause_path.is_some() {
                return Err(bad("use only one of Cause and CausePath".into()));
            }
            State::Fail(FailState {
                error: raw.error,
                error_path: raw.error_path,
                cause: raw.cause,
                cause_path: raw.cause_path,
            })
        }
        _ => unreachable!("type checked above"),
    })
}

/// Replace every `${Name}` in the definition text with its substitution (CloudFormation
/// `DefinitionSubstitutions`). A placeholder without a value is an error, so nothing half-substituted
/// reaches the executor.
pub fn substitute(
    definition: &str,
    substitutions: &BTreeMap<String, String>,
) -> Result<String, DefinitionError> {
    let mut out = String::with_capacity(definition.len());
    let mut rest = definition;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| {
            DefinitionError::invalid("DefinitionSubstitutions", "unterminated \"${\" placeholder")
        })?;
        let name = &after[..end];
        let value = substitutions.get(name).ok_or_else(|| {
            DefinitionError::invalid(
                "DefinitionSubstitutions",
                format!("no value for placeholder ${{{name}}}"),
            )
        })?;
        // Values land inside JSON strings: escape them as JSON string content.
        let escaped = serde_json::to_string(value).expect("strings always serialize");
        out.push_str(&escaped[1..escaped.len() - 1]);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}
