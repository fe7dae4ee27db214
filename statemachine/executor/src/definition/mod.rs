//! The Amazon States Language definition model (JSONPath and JSONata states) and its parser.

pub mod choice;
mod distributed;

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::error::DefinitionError;
pub use crate::expr::jsonpath::PathField;
pub use crate::expr::QueryLanguage;
use choice::ChoiceRule;
pub use distributed::{
    BatchLimits, ExecutionType, ItemBatcher, ItemReader, ProcessorMode, ReaderInput, ResultWriter,
};

/// A parsed state machine (or the states of a Map iteration / Parallel branch).
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub comment: Option<String>,
    pub start_at: String,
    pub states: BTreeMap<String, State>,
    /// Execution-level `TimeoutSeconds` (top level only).
    pub timeout_seconds: Option<u64>,
    /// The top-level `QueryLanguage` (states inherit it).
    pub query_language: QueryLanguage,
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
    /// JSONPath: where the error output goes in the state input.
    #[serde(default)]
    pub result_path: PathField,
    /// Variables assigned when this catcher handles an error.
    pub assign: Option<Value>,
    /// JSONata: the state's output when this catcher handles an error.
    pub output: Option<Value>,
    pub comment: Option<String>,
}

/// Where a state goes next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Next(String),
    End,
}

/// A number field given as a literal, a JSONPath (`…Path`) or a JSONata expression (`{% … %}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Amount {
    Fixed(f64),
    Path(String),
    Jsonata(String),
}

/// How a state reads its input and shapes its output, in its query language.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DataFlow {
    pub language: QueryLanguage,
    /// JSONPath only.
    pub input_path: PathField,
    pub output_path: PathField,
    pub result_path: PathField,
    /// JSONata only: the state output (default: the result, or the input for states without one).
    pub output: Option<Value>,
    /// Variables assigned when the state completes.
    pub assign: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum State {
    Task(TaskState),
    Choice(ChoiceState),
    Map(Box<MapState>),
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

    pub fn flow(&self) -> &DataFlow {
        match self {
            State::Task(s) => &s.io,
            State::Choice(s) => &s.io,
            State::Map(s) => &s.io,
            State::Parallel(s) => &s.io,
            State::Pass(s) => &s.io,
            State::Wait(s) => &s.io,
            State::Succeed(s) => &s.io,
            State::Fail(s) => &s.io,
        }
    }

    pub fn transition(&self) -> Option<&Transition> {
        match self {
            State::Task(s) => Some(&s.transition),
            State::Map(s) => Some(&s.transition),
            State::Parallel(s) => Some(&s.transition),
            State::Pass(s) => Some(&s.transition),
            State::Wait(s) => Some(&s.transition),
            State::Choice(_) | State::Succeed(_) | State::Fail(_) => None,
        }
    }

    /// The states this one can hand control to (Next, Choice targets, Catch targets).
    pub fn successors(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        if let State::Choice(s) = self {
            out.extend(s.choices.iter().map(|c| c.next.as_str()));
            out.extend(s.default.as_deref());
        }
        if let Some(Transition::Next(n)) = self.transition() {
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
    pub io: DataFlow,
    /// `Parameters` (JSONPath) or `Arguments` (JSONata).
    pub parameters: Option<Value>,
    pub result_selector: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub timeout: Option<Amount>,
    pub heartbeat: Option<Amount>,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceState {
    pub io: DataFlow,
    pub choices: Vec<ChoiceRule>,
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MapState {
    pub io: DataFlow,
    /// JSONPath `ItemsPath`.
    pub items_path: PathField,
    /// JSONata `Items` (an array or an expression).
    pub items: Option<Value>,
    /// `ItemSelector`, or the legacy `Parameters`.
    pub item_selector: Option<Value>,
    /// `ItemProcessor`, or the legacy `Iterator`.
    pub processor: Box<StateMachine>,
    pub mode: ProcessorMode,
    pub item_reader: Option<ItemReader>,
    pub item_batcher: Option<ItemBatcher>,
    pub result_writer: Option<ResultWriter>,
    pub label: Option<String>,
    pub max_concurrency: Option<Amount>,
    pub tolerated_failure_count: Option<Amount>,
    pub tolerated_failure_percentage: Option<Amount>,
    pub result_selector: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ParallelState {
    pub io: DataFlow,
    /// `Parameters` (JSONPath) or `Arguments` (JSONata).
    pub parameters: Option<Value>,
    pub branches: Vec<StateMachine>,
    pub result_selector: Option<Value>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PassState {
    pub io: DataFlow,
    pub parameters: Option<Value>,
    pub result: Option<Value>,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WaitFor {
    Seconds(Amount),
    /// A literal timestamp, or a JSONata expression giving one.
    Timestamp(Value),
    TimestampPath(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WaitState {
    pub io: DataFlow,
    pub wait: WaitFor,
    pub transition: Transition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SucceedState {
    pub io: DataFlow,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FailState {
    pub io: DataFlow,
    /// A literal (or, in JSONata, `{% %}` expression) error name.
    pub error: Option<Value>,
    /// JSONPath: a path or intrinsic function giving the error name.
    pub error_path: Option<String>,
    pub cause: Option<Value>,
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

fn parse_language(text: &str) -> Result<QueryLanguage, String> {
    match text {
        "JSONPath" => Ok(QueryLanguage::JsonPath),
        "JSONata" => Ok(QueryLanguage::Jsonata),
        other => Err(format!(
            "QueryLanguage {other:?} is not a query language (JSONPath or JSONata)"
        )),
    }
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
        parse_machine(value, "", QueryLanguage::JsonPath)
    }
}

fn parse_machine(
    value: &Value,
    scope: &str,
    inherited: QueryLanguage,
) -> Result<StateMachine, DefinitionError> {
    let location = if scope.is_empty() {
        "definition".to_string()
    } else {
        scope.to_string()
    };
    let raw: RawMachine = from_value_at(value, &location)?;
    let query_language = match &raw.query_language {
        Some(ql) => parse_language(ql).map_err(|m| DefinitionError::invalid(&location, m))?,
        None => inherited,
    };
    if inherited == QueryLanguage::Jsonata && query_language == QueryLanguage::JsonPath {
        return Err(DefinitionError::invalid(
            location,
            "a JSONata state machine cannot contain JSONPath states",
        ));
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
    if raw.timeout_seconds.is_some() && !scope.is_empty() {
        return Err(DefinitionError::invalid(
            location,
            "TimeoutSeconds is only allowed at the top level",
        ));
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
        states.insert(name.clone(), parse_state(state, &location, query_language)?);
    }
    Ok(StateMachine {
        comment: raw.comment,
        start_at: raw.start_at,
        states,
        timeout_seconds: raw.timeout_seconds,
        query_language,
    })
}

fn from_value_at<T: DeserializeOwned>(value: &Value, location: &str) -> Result<T, DefinitionError> {
    T::deserialize(value).map_err(|e| DefinitionError::invalid(location, e.to_string()))
}

/// Fields each state type accepts in either language; `JSONPATH_ONLY` and `JSONATA_ONLY` are then
/// refused in the other language, as AWS refuses them.
fn fields_of(state_type: &str) -> Option<&'static [&'static str]> {
    const COMMON: [&str; 3] = ["Type", "Comment", "QueryLanguage"];
    let _ = COMMON;
    Some(match state_type {
        "Task" => &[
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
            "Arguments",
            "Output",
            "Assign",
        ],
        "Choice" => &[
            "InputPath",
            "OutputPath",
            "Choices",
            "Default",
            "Output",
            "Assign",
        ],
        "Map" => &[
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
            "Items",
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
            "Output",
            "Assign",
        ],
        "Parallel" => &[
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
            "Arguments",
            "Output",
            "Assign",
        ],
        "Pass" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "ResultPath",
            "Parameters",
            "Result",
            "Output",
            "Assign",
        ],
        "Wait" => &[
            "Next",
            "End",
            "InputPath",
            "OutputPath",
            "Seconds",
            "SecondsPath",
            "Timestamp",
            "TimestampPath",
            "Output",
            "Assign",
        ],
        "Succeed" => &["InputPath", "OutputPath", "Output"],
        "Fail" => &["Error", "ErrorPath", "Cause", "CausePath"],
        _ => return None,
    })
}

const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "ResultPath",
    "Parameters",
    "ResultSelector",
    "ItemsPath",
    "Iterator",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
    "MaxConcurrencyPath",
    "ToleratedFailureCountPath",
    "ToleratedFailurePercentagePath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "Result",
];
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

/// The state's fields, type-checked one by one as they are taken.
struct Fields<'a> {
    object: &'a Map<String, Value>,
    location: &'a str,
    language: QueryLanguage,
}

impl<'a> Fields<'a> {
    fn bad(&self, message: impl Into<String>) -> DefinitionError {
        DefinitionError::invalid(self.location, message)
    }
    fn get(&self, name: &str) -> Option<&'a Value> {
        self.object.get(name)
    }
    fn string(&self, name: &str) -> Result<Option<String>, DefinitionError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(self.bad(format!("\"{name}\" must be a string"))),
        }
    }
    fn typed<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>, DefinitionError> {
        self.get(name)
            .map(|v| T::deserialize(v).map_err(|e| self.bad(format!("\"{name}\": {e}"))))
            .transpose()
    }
    fn path_field(&self, name: &str) -> Result<PathField, DefinitionError> {
        Ok(self.typed::<PathField>(name)?.unwrap_or_default())
    }
    /// A number field with its `…Path` form (JSONPath) or a `{% %}` string (JSONata).
    fn amount(
        &self,
        name: &str,
        integer: bool,
        range: std::ops::RangeInclusive<f64>,
    ) -> Result<Option<Amount>, DefinitionError> {
        let path_name = format!("{name}Path");
        let path = self.string(&path_name)?;
        let amount = match (self.get(name), path) {
            (Some(_), Some(_)) => {
                return Err(self.bad(format!("use only one of {name} and {path_name}")))
            }
            (None, Some(p)) => Some(Amount::Path(p)),
            (None, None) => None,
            (Some(Value::Number(n)), None) => {
                let v = n.as_f64().unwrap_or(f64::NAN);
                if (integer && v.fract() != 0.0) || !range.contains(&v) {
                    return Err(self.bad(format!(
                        "{name} must be {} from {} to {}",
                        if integer { "an integer" } else { "a number" },
                        range.start(),
                        range.end()
                    )));
                }
                Some(Amount::Fixed(v))
            }
            (Some(Value::String(s)), None) if self.language == QueryLanguage::Jsonata => {
                match crate::expr::jsonata::expression_of(s) {
                    Some(e) => Some(Amount::Jsonata(e.to_string())),
                    None => {
                        return Err(self.bad(format!(
                            "{name} must be a number or a JSONata expression \"{{% … %}}\""
                        )))
                    }
                }
            }
            (Some(_), None) => return Err(self.bad(format!("{name} must be a number"))),
        };
        Ok(amount)
    }
}

fn parse_state(
    value: &Value,
    location: &str,
    inherited: QueryLanguage,
) -> Result<State, DefinitionError> {
    let object = value
        .as_object()
        .ok_or_else(|| DefinitionError::invalid(location, "a state must be a JSON object"))?;
    let bad = |message: String| DefinitionError::invalid(location, message);
    let state_type = object
        .get("Type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing string field \"Type\"".into()))?
        .to_string();
    let language = match object.get("QueryLanguage") {
        None => inherited,
        Some(Value::String(ql)) => parse_language(ql).map_err(bad)?,
        Some(_) => return Err(bad("QueryLanguage must be a string".into())),
    };
    if inherited == QueryLanguage::Jsonata && language == QueryLanguage::JsonPath {
        return Err(bad(
            "a state of a JSONata state machine cannot use JSONPath".into(),
        ));
    }
    let allowed =
        fields_of(&state_type).ok_or_else(|| bad(format!("unknown state Type {state_type:?}")))?;
    for field in object.keys() {
        if ["Type", "Comment", "QueryLanguage"].contains(&field.as_str()) {
            continue;
        }
        if !allowed.contains(&field.as_str()) {
            return Err(bad(format!(
                "field \"{field}\" is not allowed in a {state_type} state"
            )));
        }
        match language {
            QueryLanguage::Jsonata if JSONPATH_ONLY.contains(&field.as_str()) => {
                return Err(bad(format!(
                    "field \"{field}\" is a JSONPath field, not allowed in a JSONata state"
                )))
            }
            QueryLanguage::JsonPath if JSONATA_ONLY.contains(&field.as_str()) => {
                return Err(bad(format!(
                    "field \"{field}\" is only allowed in JSONata states (set \"QueryLanguage\": \"JSONata\")"
                )))
            }
            _ => {}
        }
    }
    let fields = Fields {
        object,
        location,
        language,
    };
    let _comment = fields.string("Comment")?;

    let terminal_types = ["Choice", "Succeed", "Fail"];
    let transition = if terminal_types.contains(&state_type.as_str()) {
        Transition::End
    } else {
        match (fields.string("Next")?, fields.typed::<bool>("End")?) {
            (Some(_), Some(true)) => {
                return Err(bad(
                    "a state cannot have both \"Next\" and \"End\": true".into()
                ))
            }
            (Some(next), _) => Transition::Next(next),
            (None, Some(true)) => Transition::End,
            (None, _) => {
                return Err(bad(
                    "a non-terminal state needs \"Next\" or \"End\": true".into()
                ))
            }
        }
    };
    let io = DataFlow {
        language,
        input_path: fields.path_field("InputPath")?,
        output_path: fields.path_field("OutputPath")?,
        result_path: fields.path_field("ResultPath")?,
        output: fields.get("Output").cloned(),
        assign: fields.get("Assign").cloned(),
    };
    if let Some(assign) = &io.assign {
        check_assign(assign, language).map_err(bad)?;
    }
    let parameters = match language {
        QueryLanguage::JsonPath => fields.get("Parameters").cloned(),
        QueryLanguage::Jsonata => fields.get("Arguments").cloned(),
    };
    let retry: Vec<Retrier> = fields.typed("Retry")?.unwrap_or_default();
    let catch: Vec<Catcher> = fields.typed("Catch")?.unwrap_or_default();
    for (i, catcher) in catch.iter().enumerate() {
        if let Some(assign) = &catcher.assign {
            check_assign(assign, language).map_err(|m| bad(format!("Catch[{i}]: {m}")))?;
        }
        match language {
            QueryLanguage::Jsonata if catcher.result_path != PathField::Default => {
                return Err(bad(format!(
                    "Catch[{i}]: ResultPath is a JSONPath field, not allowed in a JSONata state"
                )))
            }
            QueryLanguage::JsonPath if catcher.output.is_some() => {
                return Err(bad(format!(
                    "Catch[{i}]: Output is only allowed in JSONata states"
                )))
            }
            _ => {}
        }
    }

    Ok(match state_type.as_str() {
        "Task" => {
            let resource = fields
                .string("Resource")?
                .ok_or_else(|| bad("a Task state needs \"Resource\"".into()))?;
            let timeout = fields.amount("TimeoutSeconds", true, 1.0..=99_999_999.0)?;
            let heartbeat = fields.amount("HeartbeatSeconds", true, 1.0..=99_999_999.0)?;
            if let (Some(Amount::Fixed(h)), Some(Amount::Fixed(t))) = (&heartbeat, &timeout) {
                if h >= t {
                    return Err(bad(
                        "HeartbeatSeconds must be smaller than TimeoutSeconds".into()
                    ));
                }
            }
            State::Task(TaskState {
                resource,
                io,
                parameters,
                result_selector: fields.get("ResultSelector").cloned(),
                retry,
                catch,
                timeout,
                heartbeat,
                transition,
            })
        }
        "Choice" => {
            let choices = fields
                .get("Choices")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a Choice state needs an array \"Choices\"".into()))?;
            if choices.is_empty() {
                return Err(bad("Choices must not be empty".into()));
            }
            let choices = choices
                .iter()
                .enumerate()
                .map(|(i, rule)| {
                    let rule = ChoiceRule::parse(rule, language)
                        .map_err(|m| bad(format!("Choices[{i}]: {m}")))?;
                    if let Some(assign) = &rule.assign {
                        check_assign(assign, language)
                            .map_err(|m| bad(format!("Choices[{i}]: {m}")))?;
                    }
                    Ok(rule)
                })
                .collect::<Result<Vec<_>, DefinitionError>>()?;
            State::Choice(ChoiceState {
                io,
                choices,
                default: fields.string("Default")?,
            })
        }
        "Map" => parse_map(&fields, io, retry, catch, transition)?,
        "Parallel" => {
            let branches = fields
                .get("Branches")
                .and_then(Value::as_array)
                .ok_or_else(|| bad("a Parallel state needs an array \"Branches\"".into()))?;
            if branches.is_empty() {
                return Err(bad("Branches must not be empty".into()));
            }
            let branches = branches
                .iter()
                .enumerate()
                .map(|(i, b)| parse_machine(b, &format!("{location} > Branches[{i}]"), language))
                .collect::<Result<Vec<_>, _>>()?;
            State::Parallel(ParallelState {
                io,
                parameters,
                branches,
                result_selector: fields.get("ResultSelector").cloned(),
                retry,
                catch,
                transition,
            })
        }
        "Pass" => State::Pass(PassState {
            io,
            parameters,
            result: fields.get("Result").cloned(),
            transition,
        }),
        "Wait" => {
            let seconds = fields.amount("Seconds", true, 0.0..=99_999_999.0)?;
            let timestamp = fields.get("Timestamp").cloned();
            let timestamp_path = fields.string("TimestampPath")?;
            let wait = match (seconds, timestamp, timestamp_path) {
                (Some(s), None, None) => WaitFor::Seconds(s),
                (None, Some(t), None) => {
                    let literal_ok = match &t {
                        Value::String(text) => {
                            (language == QueryLanguage::Jsonata
                                && crate::expr::jsonata::expression_of(text).is_some())
                                || choice::parse_timestamp(text).is_some()
                        }
                        _ => false,
                    };
                    if !literal_ok {
                        return Err(bad(format!("Timestamp {t} is not an RFC 3339 timestamp")));
                    }
                    WaitFor::Timestamp(t)
                }
                (None, None, Some(p)) => WaitFor::TimestampPath(p),
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
            let text_or_expression = |name: &str| -> Result<Option<Value>, DefinitionError> {
                match fields.get(name) {
                    None => Ok(None),
                    Some(v @ Value::String(_)) => Ok(Some(v.clone())),
                    Some(_) => Err(bad(format!("\"{name}\" must be a string"))),
                }
            };
            let (error, error_path) = (text_or_expression("Error")?, fields.string("ErrorPath")?);
            let (cause, cause_path) = (text_or_expression("Cause")?, fields.string("CausePath")?);
            if error.is_some() && error_path.is_some() {
                return Err(bad("use only one of Error and ErrorPath".into()));
            }
            if cause.is_some() && cause_path.is_some() {
                return Err(bad("use only one of Cause and CausePath".into()));
            }
            State::Fail(FailState {
                io,
                error,
                error_path,
                cause,
                cause_path,
            })
        }
        _ => unreachable!("type checked above"),
    })
}

/// `Assign` is an object of variable names; JSONPath values use `name.$` for paths.
fn check_assign(assign: &Value, language: QueryLanguage) -> Result<(), String> {
    let object = assign
        .as_object()
        .ok_or("Assign must be an object of variable names")?;
    for key in object.keys() {
        let name = match language {
            QueryLanguage::JsonPath => key.strip_suffix(".$").unwrap_or(key),
            QueryLanguage::Jsonata => key,
        };
        if !crate::expr::is_variable_name(name) {
            return Err(format!(
                "Assign: {key:?} is not a variable name (a letter or _, then letters, digits or _; at most 80; not \"states\")"
            ));
        }
    }
    Ok(())
}

fn parse_map(
    fields: &Fields,
    io: DataFlow,
    retry: Vec<Retrier>,
    catch: Vec<Catcher>,
    transition: Transition,
) -> Result<State, DefinitionError> {
    let location = fields.location;
    let bad = |message: String| DefinitionError::invalid(location, message);
    let language = fields.language;
    if fields.get("ItemSelector").is_some() && fields.get("Parameters").is_some() {
        return Err(bad(
            "use ItemSelector or the legacy Parameters, not both".into()
        ));
    }
    let (processor_value, processor_location) =
        match (fields.get("ItemProcessor"), fields.get("Iterator")) {
            (Some(p), None) => (p, format!("{location} > ItemProcessor")),
            (None, Some(p)) => (p, format!("{location} > Iterator")),
            (Some(_), Some(_)) => {
                return Err(bad(
                    "use ItemProcessor or the legacy Iterator, not both".into()
                ))
            }
            (None, None) => return Err(bad("a Map state needs \"ItemProcessor\"".into())),
        };
    let mode = distributed::processor_mode(processor_value.get("ProcessorConfig"))
        .map_err(|m| DefinitionError::invalid(&processor_location, m))?;
    let processor = parse_machine(processor_value, &processor_location, language)?;
    let distributed = matches!(mode, ProcessorMode::Distributed { .. });
    // ToleratedFailure* are accepted on an inline Map but mean nothing there (AWS: any failed
    // iteration fails an inline Map); the engine ignores them.
    for field in ["ItemReader", "ItemBatcher", "ResultWriter", "Label"] {
        if fields.get(field).is_some() && !distributed {
            return Err(bad(format!(
                "{field} belongs to a Distributed Map (ItemProcessor.ProcessorConfig.Mode \"DISTRIBUTED\")"
            )));
        }
    }
    let item_reader = fields
        .get("ItemReader")
        .map(|v| distributed::parse_item_reader(v, language))
        .transpose()
        .map_err(|m| bad(format!("ItemReader: {m}")))?;
    let item_batcher = fields
        .get("ItemBatcher")
        .map(|v| distributed::parse_item_batcher(v, language))
        .transpose()
        .map_err(|m| bad(format!("ItemBatcher: {m}")))?;
    let result_writer = fields
        .get("ResultWriter")
        .map(|v| distributed::parse_result_writer(v, language))
        .transpose()
        .map_err(|m| bad(format!("ResultWriter: {m}")))?;
    let label = fields.string("Label")?;
    if let Some(label) = &label {
        if label.chars().count() > 40
            || label
                .chars()
                .any(|c| c.is_whitespace() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c))
        {
            return Err(bad(format!("Label {label:?} must be at most 40 characters without whitespace or special characters")));
        }
    }
    if item_reader.is_some() && (fields.get("ItemsPath").is_some() || fields.get("Items").is_some())
    {
        return Err(bad(
            "a Map with an ItemReader takes its items from it: ItemsPath/Items are not allowed"
                .into(),
        ));
    }
    let max_concurrency = fields.amount("MaxConcurrency", true, 0.0..=f64::from(u32::MAX))?;
    Ok(State::Map(Box::new(MapState {
        io,
        items_path: fields.path_field("ItemsPath")?,
        items: fields.get("Items").cloned(),
        item_selector: fields
            .get("ItemSelector")
            .or_else(|| fields.get("Parameters"))
            .cloned(),
        processor: Box::new(processor),
        mode,
        item_reader,
        item_batcher,
        result_writer,
        label,
        max_concurrency,
        tolerated_failure_count: fields.amount(
            "ToleratedFailureCount",
            true,
            0.0..=f64::from(u32::MAX),
        )?,
        tolerated_failure_percentage: fields.amount(
            "ToleratedFailurePercentage",
            false,
            0.0..=100.0,
        )?,
        result_selector: fields.get("ResultSelector").cloned(),
        retry,
        catch,
        transition,
    })))
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
