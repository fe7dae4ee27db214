//! The Fail state: fails its scope with an error and a cause — literals, JSONPath paths or intrinsic
//! functions (ErrorPath/CausePath), or JSONata expressions. Without them, AWS leaves both absent.

use serde_json::Value;

use crate::definition::{FailState, QueryLanguage};
use crate::engine::{Cursor, Scope, Shared, StateOutcome};
use crate::error::StateError;
use crate::expr::jsonata::{self, StatesVar};
use crate::expr::{template, Env};
use crate::history::EventType;

impl Shared {
    pub(in crate::engine) fn run_fail(
        &self,
        name: &str,
        s: &FailState,
        raw: Value,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::FailStateEntered, name, &raw);
        let context = self.context(name, entered, 0, None);
        let env = self.env(&context, scope);
        let error = fail_text(
            name,
            "Error",
            s.error.as_ref(),
            s.error_path.as_deref(),
            s.io.language,
            &raw,
            &env,
        )
        .and_then(|error| {
            let cause = fail_text(
                name,
                "Cause",
                s.cause.as_ref(),
                s.cause_path.as_deref(),
                s.io.language,
                &raw,
                &env,
            )?;
            Ok(StateError::from_fail_state(error, cause))
        });
        match error {
            Ok(e) | Err(e) => StateOutcome::Failed(e),
        }
    }
}

fn fail_text(
    name: &str,
    field: &str,
    literal: Option<&Value>,
    path: Option<&str>,
    language: QueryLanguage,
    raw: &Value,
    env: &Env,
) -> Result<Option<String>, StateError> {
    let value = match (literal, path) {
        (Some(v), _) if language == QueryLanguage::Jsonata => {
            jsonata::evaluate_value(v, StatesVar::input(raw), env)?
        }
        (Some(v), _) => v.clone(),
        (None, Some(p)) => template::evaluate_expression(&format!("{field}Path"), p, raw, env)?,
        (None, None) => return Ok(None),
    };
    match value {
        Value::String(s) => Ok(Some(s)),
        other => Err(StateError::runtime(format!(
            "The {field} of Fail state '{name}' must be a string, got {other}"
        ))),
    }
}
