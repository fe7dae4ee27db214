//! JSONata expressions as Step Functions evaluates them: a string `{% … %}` is an expression, anything
//! else a literal; `$states` holds `input`, `context`, and where they exist `result` and `errorOutput`;
//! workflow variables are bound by name; AWS's functions `$partition`, `$range`, `$hash`, `$random`,
//! `$uuid` and `$parse` are added. The language itself is the jsonata-core crate (it passed 1,668 of
//! the 1,686 cases of the JSONata test suite here, see statemachine/conformance/jsonata-suite.md).

use jsonata_core::evaluator::{Context, Evaluator, EvaluatorError, EvaluatorOptions};
use jsonata_core::value::JValue;
use serde_json::{Map, Value};
use sha2::Digest;

use super::{Env, Rng};
use crate::error::{names, StateError};

/// Wall-clock bound of one evaluation: an endless recursion ends as an error, never a hang.
const TIMEOUT_MS: u64 = 5_000;
/// Bounds of one evaluation's recursion and sequences (memory).
const MAX_STACK_DEPTH: usize = 1_000;
const MAX_SEQUENCE_LENGTH: usize = 1_000_000;

/// The `$states` variable of one evaluation.
#[derive(Debug, Clone, Copy)]
pub struct StatesVar<'a> {
    pub input: &'a Value,
    pub result: Option<&'a Value>,
    pub error_output: Option<&'a Value>,
}

impl<'a> StatesVar<'a> {
    pub fn input(input: &'a Value) -> Self {
        Self {
            input,
            result: None,
            error_output: None,
        }
    }

    pub fn with_result(self, result: &'a Value) -> Self {
        Self {
            result: Some(result),
            ..self
        }
    }

    pub fn with_error_output(self, error_output: &'a Value) -> Self {
        Self {
            error_output: Some(error_output),
            ..self
        }
    }
}

impl StatesVar<'_> {
    /// The `$states` object.
    pub fn to_value(&self, context: &Value) -> Value {
        let mut states = Map::new();
        states.insert("input".into(), self.input.clone());
        states.insert("context".into(), context.clone());
        if let Some(result) = self.result {
            states.insert("result".into(), result.clone());
        }
        if let Some(error_output) = self.error_output {
            states.insert("errorOutput".into(), error_output.clone());
        }
        Value::Object(states)
    }
}

/// The expression inside `{% … %}`, if the text is one.
pub fn expression_of(text: &str) -> Option<&str> {
    let trimmed = text.trim();
    trimmed
        .strip_prefix("{%")
        .and_then(|rest| rest.strip_suffix("%}"))
        .map(str::trim)
}

fn query_error(expression: &str, why: impl std::fmt::Display) -> StateError {
    StateError::new(
        names::QUERY_EVALUATION_ERROR,
        format!("The JSONata expression '{expression}' failed: {why}"),
    )
}

/// Evaluate one expression (without the `{% %}`).
pub fn evaluate(expression: &str, states: StatesVar, env: &Env) -> Result<Value, StateError> {
    let ast = jsonata_core::parser::parse(expression).map_err(|e| query_error(expression, e))?;
    let mut context = Context::new();
    for (name, value) in env.variables.visible() {
        context.bind(name.clone(), JValue::from(value.clone()));
    }
    context.bind("states".into(), JValue::from(states.to_value(env.context)));
    let options = EvaluatorOptions {
        timeout_ms: Some(TIMEOUT_MS),
        max_stack_depth: Some(MAX_STACK_DEPTH),
        max_sequence_length: Some(MAX_SEQUENCE_LENGTH),
        ..EvaluatorOptions::default()
    };
    let mut evaluator = Evaluator::with_options(context, options);
    register_aws_functions(&mut evaluator, env.rng);
    // The input of an expression is `$states.input` too, so `$` and bare field names work.
    let value = evaluator
        .evaluate(&ast, &JValue::from(states.input.clone()))
        .map_err(|e| query_error(expression, e.message()))?;
    if value.is_undefined() {
        return Err(query_error(expression, "it returned no value (undefined)"));
    }
    serde_json::to_value(&value).map_err(|e| query_error(expression, e))
}

/// Evaluate a field value: a `{% %}` string is evaluated, other strings and scalars are literals,
/// and objects and arrays are evaluated member by member.
pub fn evaluate_value(value: &Value, states: StatesVar, env: &Env) -> Result<Value, StateError> {
    match value {
        Value::String(text) => match expression_of(text) {
            Some(expression) => evaluate(expression, states, env),
            None => Ok(value.clone()),
        },
        Value::Array(items) => items
            .iter()
            .map(|item| evaluate_value(item, states, env))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Value::Object(fields) => {
            let mut out = Map::new();
            for (key, item) in fields {
                out.insert(key.clone(), evaluate_value(item, states, env)?);
            }
            Ok(Value::Object(out))
        }
        other => Ok(other.clone()),
    }
}

/// Parse every `{% %}` string in a field value; the problems found (for `validate`).
pub fn check_value(value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            if let Some(expression) = expression_of(text) {
                if let Err(e) = jsonata_core::parser::parse(expression) {
                    problems.push(format!("invalid JSONata expression {text:?}: {e}"));
                }
            } else if text.trim_start().starts_with("{%") {
                problems.push(format!("{text:?} opens a JSONata expression with \"{{%\" but does not close it with \"%}}\""));
            }
        }
        Value::Array(items) => items.iter().for_each(|item| check_value(item, problems)),
        Value::Object(fields) => fields.values().for_each(|item| check_value(item, problems)),
        _ => {}
    }
}

/// The workflow variables the `{% %}` expressions of a field value read (for `validate`): every
/// `$name` that is not `$states`, not called as a function, and not bound inside the expression.
pub fn variables_read(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(text) => {
            if let Some(expression) = expression_of(text) {
                out.extend(expression_variables(expression));
            }
        }
        Value::Array(items) => items.iter().for_each(|item| variables_read(item, out)),
        Value::Object(fields) => fields.values().for_each(|item| variables_read(item, out)),
        _ => {}
    }
}

fn expression_variables(expression: &str) -> Vec<String> {
    let chars: Vec<char> = expression.chars().collect();
    let mut names: Vec<(String, usize)> = Vec::new();
    let mut bound: Vec<String> = Vec::new();
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if let Some(q) = quote {
            if c == '\\' {
                i += 2;
                continue;
            }
            if c == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '/' if chars.get(i + 1) == Some(&'*') => {
                let end = (i + 2..chars.len().saturating_sub(1))
                    .find(|&j| chars[j] == '*' && chars[j + 1] == '/')
                    .map_or(chars.len(), |j| j + 2);
                i = end;
                continue;
            }
            '$' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && (chars[end].is_alphanumeric() || chars[end] == '_') {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                let mut next = end;
                while next < chars.len() && chars[next].is_whitespace() {
                    next += 1;
                }
                let called = chars.get(next) == Some(&'(');
                // `$x := …` binds, and so do the positional and context bindings `#$i` and `@$v`.
                let assigned = (chars.get(next) == Some(&':') && chars.get(next + 1) == Some(&'='))
                    || (i > 0 && matches!(chars[i - 1], '#' | '@'));
                if !name.is_empty() {
                    if assigned {
                        bound.push(name);
                    } else if !called {
                        names.push((name, i));
                    }
                }
                i = end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    // Lambda parameters: `function($a, $b)` binds them.
    let text: String = chars.iter().collect();
    for (at, _) in text.match_indices("function") {
        if let Some(open) = text[at..].find('(') {
            if let Some(close) = text[at + open..].find(')') {
                for param in text[at + open + 1..at + open + close].split(',') {
                    let param = param.trim().trim_start_matches('$');
                    if !param.is_empty() {
                        bound.push(param.to_string());
                    }
                }
            }
        }
    }
    let mut out: Vec<String> = names
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n != "states" && !bound.contains(n))
        .collect();
    out.dedup();
    out
}

fn host_error(function: &str, why: impl std::fmt::Display) -> EvaluatorError {
    EvaluatorError::EvaluationError(format!("${function}: {why}"))
}

fn to_json(value: &JValue) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

fn int_arg(function: &str, args: &[JValue], index: usize) -> Result<i64, EvaluatorError> {
    args.get(index)
        .and_then(JValue::as_f64)
        .filter(|n| n.fract() == 0.0 && n.abs() < 9.0e15)
        .map(|n| n as i64)
        .ok_or_else(|| {
            host_error(
                function,
                format!("argument {} must be an integer", index + 1),
            )
        })
}

/// AWS's additions to JSONata (Step Functions "JSONata functions provided by Step Functions").
type HostFunction = Box<dyn Fn(&[JValue]) -> Result<JValue, EvaluatorError>>;

fn register_aws_functions(evaluator: &mut Evaluator, rng: &Rng) {
    let register = |evaluator: &mut Evaluator, name: &str, f: HostFunction| {
        // `$random` is a JSONata built-in: AWS's takes an optional seed, so it is replaced.
        let outcome = if name == "random" {
            evaluator.register_fn_override(name, move |args: &[JValue]| f(args))
        } else {
            evaluator.register_fn(name, move |args: &[JValue]| f(args))
        };
        outcome.expect("the AWS functions do not shadow compilable built-ins");
    };
    register(
        evaluator,
        "partition",
        Box::new(|args| {
            let items = match args.first().map(to_json) {
                Some(Value::Array(items)) => items,
                _ => return Err(host_error("partition", "argument 1 must be an array")),
            };
            let size = int_arg("partition", args, 1)?;
            if size <= 0 {
                return Err(host_error(
                    "partition",
                    "the chunk size must be a positive integer",
                ));
            }
            let chunks: Vec<Value> = items
                .chunks(size as usize)
                .map(|c| Value::Array(c.to_vec()))
                .collect();
            Ok(JValue::from(Value::Array(chunks)))
        }),
    );
    register(
        evaluator,
        "range",
        Box::new(|args| {
            let (start, end, step) = (
                int_arg("range", args, 0)?,
                int_arg("range", args, 1)?,
                int_arg("range", args, 2)?,
            );
            if step == 0 {
                return Err(host_error("range", "the step must not be 0"));
            }
            let count = if (step > 0 && start > end) || (step < 0 && start < end) {
                0
            } else {
                (end - start) / step + 1
            };
            if count > 1000 {
                return Err(host_error("range", "the range has more than 1000 items"));
            }
            Ok(JValue::from(Value::Array(
                (0..count).map(|i| Value::from(start + i * step)).collect(),
            )))
        }),
    );
    register(
        evaluator,
        "hash",
        Box::new(|args| {
            let data = match args.first().map(to_json) {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => return Err(host_error("hash", "argument 1 is missing")),
            };
            let algorithm = args
                .get(1)
                .and_then(JValue::as_str)
                .ok_or_else(|| host_error("hash", "argument 2 must be the algorithm name"))?;
            let digest: Vec<u8> = match algorithm {
                "MD5" => md5::Md5::digest(data.as_bytes()).to_vec(),
                "SHA-1" => sha1::Sha1::digest(data.as_bytes()).to_vec(),
                "SHA-256" => sha2::Sha256::digest(data.as_bytes()).to_vec(),
                "SHA-384" => sha2::Sha384::digest(data.as_bytes()).to_vec(),
                "SHA-512" => sha2::Sha512::digest(data.as_bytes()).to_vec(),
                other => {
                    return Err(host_error(
                        "hash",
                        format!(
                            "unknown algorithm {other:?} (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
                        ),
                    ))
                }
            };
            Ok(JValue::from(
                digest
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>(),
            ))
        }),
    );
    let seeded = rng.clone();
    register(
        evaluator,
        "random",
        Box::new(move |args| {
            use rand::{Rng as _, SeedableRng};
            Ok(JValue::from_f64(match args.first() {
                Some(_) => rand::rngs::StdRng::seed_from_u64(int_arg("random", args, 0)? as u64)
                    .gen::<f64>(),
                None => seeded.unit(),
            }))
        }),
    );
    let seeded = rng.clone();
    register(
        evaluator,
        "uuid",
        Box::new(move |_| Ok(JValue::from(seeded.uuid()))),
    );
    register(
        evaluator,
        "parse",
        Box::new(|args| {
            let text = args
                .first()
                .and_then(JValue::as_str)
                .ok_or_else(|| host_error("parse", "argument 1 must be a JSON string"))?;
            let value: Value = serde_json::from_str(text).map_err(|e| host_error("parse", e))?;
            Ok(JValue::from(value))
        }),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::Variables;
    use serde_json::json;

    fn eval(expression: &str, input: Value) -> Result<Value, StateError> {
        let variables = Variables::new(
            Map::new(),
            Map::from_iter([("limit".to_string(), json!(2))]),
        );
        let rng = Rng::seeded(3);
        let context = json!({"Execution": {"Name": "run-1"}});
        let env = Env {
            context: &context,
            variables: &variables,
            rng: &rng,
        };
        evaluate(expression, StatesVar::input(&input), &env)
    }

    #[test]
    fn states_variables_and_aws_functions_are_bound() {
        let input = json!({"items": [1, 2, 3], "name": "x"});
        assert_eq!(
            eval("$states.input.items[1]", input.clone()).unwrap(),
            json!(2)
        );
        assert_eq!(eval("items[0] + $limit", input.clone()).unwrap(), json!(3));
        assert_eq!(
            eval("$states.context.Execution.Name", input.clone()).unwrap(),
            json!("run-1")
        );
        assert_eq!(
            eval("$partition(items, $limit)", input.clone()).unwrap(),
            json!([[1, 2], [3]])
        );
        assert_eq!(
            eval("$range(0, 10, 5)", input.clone()).unwrap(),
            json!([0, 5, 10])
        );
        assert_eq!(
            eval("$hash('input data', 'SHA-1')", input.clone()).unwrap(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            eval("$parse('{\"a\": [1]}').a[0]", input.clone()).unwrap(),
            json!(1)
        );
        assert_eq!(
            eval("$uuid()", input.clone()).unwrap(),
            eval("$uuid()", input.clone()).unwrap()
        );
        let r = eval("$random()", input.clone()).unwrap().as_f64().unwrap();
        assert!((0.0..1.0).contains(&r));
        assert_eq!(
            eval("$random(7)", input.clone()).unwrap(),
            eval("$random(7)", input.clone()).unwrap()
        );
        assert_eq!(
            eval("nothing", input.clone()).unwrap_err().error,
            names::QUERY_EVALUATION_ERROR
        );
        assert_eq!(
            eval("1 +", input).unwrap_err().error,
            names::QUERY_EVALUATION_ERROR
        );
    }

    #[test]
    fn field_values_evaluate_only_their_expressions() {
        let variables = Variables::default();
        let rng = Rng::seeded(0);
        let env = Env {
            context: &json!({}),
            variables: &variables,
            rng: &rng,
        };
        let template = json!({"a": "{% $states.input.n * 2 %}", "b": ["{%'x'%}", "plain"], "c": 1});
        assert_eq!(
            evaluate_value(&template, StatesVar::input(&json!({"n": 4})), &env).unwrap(),
            json!({"a": 8, "b": ["x", "plain"], "c": 1})
        );
        let mut problems = Vec::new();
        check_value(
            &json!({"a": "{% 1 + %}", "b": "{% ok %}", "c": "{% open"}),
            &mut problems,
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
        let mut read = Vec::new();
        variables_read(
            &json!("{% $x + $count($list) + $map($l, function($v) { $v * $k }) ~> $sum() + ($y := 1; $y) + $states.input.a + $sum(items#$i[$i > 0]) %}"),
            &mut read,
        );
        assert_eq!(read, vec!["x", "list", "l", "k"]);
    }
}
