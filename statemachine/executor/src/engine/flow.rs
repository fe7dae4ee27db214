//! The data flow of a state in either query language: its effective input (InputPath + Parameters,
//! or Arguments), its output (ResultSelector + ResultPath + OutputPath, or Output), its `Assign`, and
//! what a Catcher hands on.

use serde_json::{Map, Value};

use super::{check_size, Scope, Shared};
use crate::definition::{Amount, Catcher, DataFlow, QueryLanguage};
use crate::error::StateError;
use crate::expr::jsonata::{self, StatesVar};
use crate::expr::{jsonpath, template, Env};

impl Shared {
    /// The input a state works on: JSONPath `InputPath` then the `Parameters` template; JSONata the
    /// `Arguments` (default: the raw input).
    pub(super) fn effective_input(
        &self,
        flow: &DataFlow,
        parameters: Option<&Value>,
        name: &str,
        raw: &Value,
        env: &Env,
    ) -> Result<Value, StateError> {
        let effective = match flow.language {
            QueryLanguage::JsonPath => {
                let filtered = jsonpath::apply_filter(&flow.input_path, raw, env)?;
                match parameters {
                    Some(t) => template::evaluate_template(t, &filtered, env)?,
                    None => filtered,
                }
            }
            QueryLanguage::Jsonata => match parameters {
                Some(arguments) => jsonata::evaluate_value(arguments, StatesVar::input(raw), env)?,
                None => raw.clone(),
            },
        };
        check_size("input (after InputPath and Parameters)", name, &effective)?;
        Ok(effective)
    }

    /// JSONPath: the input after `InputPath` (what states without Parameters work on).
    pub(super) fn filtered_input(
        &self,
        flow: &DataFlow,
        raw: &Value,
        env: &Env,
    ) -> Result<Value, StateError> {
        match flow.language {
            QueryLanguage::JsonPath => jsonpath::apply_filter(&flow.input_path, raw, env),
            QueryLanguage::Jsonata => Ok(raw.clone()),
        }
    }

    /// The output of a state with a result (Task, Map, Parallel, Pass), then its `Assign` applied.
    /// JSONPath: ResultSelector, ResultPath, OutputPath; JSONata: `Output` (default: the result).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_with_result(
        &self,
        flow: &DataFlow,
        result_selector: Option<&Value>,
        name: &str,
        raw: &Value,
        result: Value,
        env: &Env,
        scope: &mut Scope,
    ) -> Result<Value, StateError> {
        let (output, assigned) = match flow.language {
            QueryLanguage::JsonPath => {
                let selected = match result_selector {
                    Some(t) => template::evaluate_template(t, &result, env)?,
                    None => result,
                };
                let assigned = self.assign_values(
                    flow.assign.as_ref(),
                    flow.language,
                    &selected,
                    StatesVar::input(raw).with_result(&selected),
                    env,
                )?;
                let combined = jsonpath::apply_result_path(&flow.result_path, raw, selected)?;
                (
                    jsonpath::apply_filter(&flow.output_path, &combined, env)?,
                    assigned,
                )
            }
            QueryLanguage::Jsonata => {
                let states = StatesVar::input(raw).with_result(&result);
                let assigned =
                    self.assign_values(flow.assign.as_ref(), flow.language, &result, states, env)?;
                let output = match &flow.output {
                    Some(o) => jsonata::evaluate_value(o, states, env)?,
                    None => result.clone(),
                };
                (output, assigned)
            }
        };
        check_size("output", name, &output)?;
        if let Some(values) = assigned {
            scope.variables.assign(values)?;
        }
        Ok(output)
    }

    /// The output of a state without a result (Choice, Wait, Succeed), then its `Assign` applied.
    /// JSONPath: OutputPath over the filtered input; JSONata: `Output` (default: the raw input).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish_without_result(
        &self,
        flow: &DataFlow,
        assign: Option<&Value>,
        output: Option<&Value>,
        name: &str,
        raw: &Value,
        env: &Env,
        scope: &mut Scope,
    ) -> Result<Value, StateError> {
        let (out, assigned) = match flow.language {
            QueryLanguage::JsonPath => {
                let filtered = jsonpath::apply_filter(&flow.input_path, raw, env)?;
                let assigned = self.assign_values(
                    assign,
                    flow.language,
                    &filtered,
                    StatesVar::input(raw),
                    env,
                )?;
                (
                    jsonpath::apply_filter(&flow.output_path, &filtered, env)?,
                    assigned,
                )
            }
            QueryLanguage::Jsonata => {
                let states = StatesVar::input(raw);
                let assigned = self.assign_values(assign, flow.language, raw, states, env)?;
                let out = match output {
                    Some(o) => jsonata::evaluate_value(o, states, env)?,
                    None => raw.clone(),
                };
                (out, assigned)
            }
        };
        check_size("output", name, &out)?;
        if let Some(values) = assigned {
            scope.variables.assign(values)?;
        }
        Ok(out)
    }

    /// Evaluate an `Assign` (every value against the variables as they were before the state).
    /// JSONPath: a template over `data`; JSONata: field values over `$states`.
    fn assign_values(
        &self,
        assign: Option<&Value>,
        language: QueryLanguage,
        data: &Value,
        states: StatesVar,
        env: &Env,
    ) -> Result<Option<Map<String, Value>>, StateError> {
        let Some(assign) = assign else {
            return Ok(None);
        };
        let evaluated = match language {
            QueryLanguage::JsonPath => {
                // `$` is the state's result (or input); `$states` is readable here as in JSONata.
                let mut visible = env.variables.clone();
                visible.set_states(states.to_value(env.context));
                let env = Env {
                    variables: &visible,
                    ..*env
                };
                template::evaluate_template(assign, data, &env)?
            }
            QueryLanguage::Jsonata => jsonata::evaluate_value(assign, states, env)?,
        };
        match evaluated {
            Value::Object(values) => Ok(Some(values)),
            _ => Err(StateError::runtime("Assign must be an object")),
        }
    }

    /// What a Catcher hands to its Next state, with its `Assign` applied: JSONPath the error output
    /// placed by ResultPath into the raw input; JSONata `Output` over `$states.errorOutput` (default:
    /// the error output itself).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn caught_output(
        &self,
        name: &str,
        catcher: &Catcher,
        flow: &DataFlow,
        error: &StateError,
        raw: &Value,
        context: &Value,
        scope: &mut Scope,
    ) -> Result<Value, StateError> {
        let error_output = error.to_output();
        let env = self.env(context, scope);
        let states = StatesVar::input(raw).with_error_output(&error_output);
        let assigned = self.assign_values(
            catcher.assign.as_ref(),
            flow.language,
            &error_output,
            states,
            &env,
        )?;
        let output = match flow.language {
            QueryLanguage::JsonPath => {
                jsonpath::apply_result_path(&catcher.result_path, raw, error_output.clone())?
            }
            QueryLanguage::Jsonata => match &catcher.output {
                Some(o) => jsonata::evaluate_value(o, states, &env)?,
                None => error_output.clone(),
            },
        };
        check_size("output", name, &output)?;
        if let Some(values) = assigned {
            scope.variables.assign(values)?;
        }
        Ok(output)
    }

    /// A number field's value: literal, JSONPath (read from `data`) or JSONata (over `$states.input`).
    pub(super) fn amount(
        &self,
        amount: &Amount,
        field: &str,
        name: &str,
        data: &Value,
        raw: &Value,
        env: &Env,
    ) -> Result<f64, StateError> {
        let value = match amount {
            Amount::Fixed(v) => return Ok(*v),
            Amount::Path(p) => jsonpath::read(p, data, env)?,
            Amount::Jsonata(e) => jsonata::evaluate(e, StatesVar::input(raw), env)?,
        };
        value.as_f64().filter(|v| *v >= 0.0).ok_or_else(|| {
            StateError::runtime(format!(
                "The {field} of state '{name}' must be a non-negative number, got {value}"
            ))
        })
    }
}
