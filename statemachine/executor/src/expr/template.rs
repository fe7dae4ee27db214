//! JSONPath payload templates (Parameters, ItemSelector, ResultSelector, Assign, ItemReader and
//! ResultWriter parameters): keys ending in `.$` take the value of a path or an intrinsic function.

use serde_json::{Map, Value};

use super::jsonpath::{abbreviate, check_path, try_read};
use super::{intrinsics, Env};
use crate::error::StateError;

/// Evaluate a payload template: keys ending in `.$` take the value of a path (`$…`, `$$…`, `$var…`)
/// or an intrinsic function; everything else is copied, nested objects and arrays included.
pub fn evaluate_template(template: &Value, data: &Value, env: &Env) -> Result<Value, StateError> {
    match template {
        Value::Object(object) => {
            let mut out = Map::new();
            for (key, value) in object {
                if let Some(name) = key.strip_suffix(".$") {
                    let expression = value.as_str().ok_or_else(|| {
                        StateError::runtime(format!("The value for the field '{key}' must be a STRING that contains a JSONPath or an intrinsic function"))
                    })?;
                    out.insert(
                        name.to_string(),
                        evaluate_expression(key, expression, data, env)?,
                    );
                } else {
                    out.insert(key.clone(), evaluate_template(value, data, env)?);
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|v| evaluate_template(v, data, env))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// One `.$` value: a path or an intrinsic function call.
pub fn evaluate_expression(
    key: &str,
    expression: &str,
    data: &Value,
    env: &Env,
) -> Result<Value, StateError> {
    if expression.starts_with('$') {
        match try_read(expression, data, env) {
            Ok(Some(v)) => Ok(v),
            Ok(None) => Err(StateError::runtime(format!(
                "The JSONPath '{expression}' specified for the field '{key}' could not be found in the input '{}'",
                abbreviate(data)
            ))),
            Err(e) => Err(StateError::runtime(e)),
        }
    } else {
        intrinsics::evaluate(expression, data, env)
    }
}

/// Check one `.$` value (a path or an intrinsic function) without evaluating it.
pub fn check_expression(expression: &str) -> Result<(), String> {
    if expression.starts_with('$') {
        check_path(expression)
    } else {
        intrinsics::parse(expression).map(|_| ())
    }
}

/// Collect every problem with the paths and intrinsic functions of a template (for `validate`).
pub fn check_template(template: &Value, problems: &mut Vec<String>) {
    match template {
        Value::Object(object) => {
            for (key, value) in object {
                if key.ends_with(".$") {
                    match value.as_str() {
                        Some(e) => {
                            if let Err(p) = check_expression(e) {
                                problems.push(format!("field \"{key}\": {p}"));
                            }
                        }
                        None => problems.push(format!(
                            "field \"{key}\" must be a string path or intrinsic function"
                        )),
                    }
                } else {
                    check_template(value, problems);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| check_template(v, problems)),
        _ => {}
    }
}

/// The variables a template's paths and intrinsic calls read (for `validate`).
pub fn variables_read(template: &Value, out: &mut Vec<String>) {
    match template {
        Value::Object(object) => {
            for (key, value) in object {
                match value.as_str() {
                    Some(e) if key.ends_with(".$") => out.extend(expression_variables(e)),
                    _ => variables_read(value, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| variables_read(v, out)),
        _ => {}
    }
}

/// The variables one path or intrinsic expression reads.
pub fn expression_variables(expression: &str) -> Vec<String> {
    if expression.starts_with('$') {
        return super::jsonpath::variable_of(expression)
            .map(|v| vec![v.to_string()])
            .unwrap_or_default();
    }
    intrinsics::parse(expression)
        .map(|call| {
            call.paths()
                .filter_map(|p| super::jsonpath::variable_of(p).map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::{Rng, Variables};
    use serde_json::json;

    #[test]
    fn templates_resolve_paths_context_variables_and_intrinsics_in_nested_values() {
        let data = json!({"name": "img", "n": 2});
        let ctx = json!({"Map": {"Item": {"Index": 4}}});
        let variables = Variables::new(
            Map::new(),
            Map::from_iter([("prefix".to_string(), json!("in"))]),
        );
        let rng = Rng::seeded(0);
        let env = Env {
            context: &ctx,
            variables: &variables,
            rng: &rng,
        };
        let template = json!({
            "static": {"x": [1, {"k.$": "$.n"}]},
            "key.$": "States.Format('{}/{}.jpg', $prefix, $.name)",
            "index.$": "$$.Map.Item.Index"
        });
        assert_eq!(
            evaluate_template(&template, &data, &env).unwrap(),
            json!({"static": {"x": [1, {"k": 2}]}, "key": "in/img.jpg", "index": 4})
        );
        let missing = evaluate_template(&json!({"a.$": "$.nope"}), &data, &env).unwrap_err();
        assert_eq!(missing.error, "States.Runtime");
        assert!(missing.cause.contains("'$.nope'"), "{}", missing.cause);
        let mut read = Vec::new();
        variables_read(&template, &mut read);
        assert_eq!(read, vec!["prefix".to_string()]);
    }
}
