//! The Choice state: the first matching rule (JSONPath comparison or JSONata Condition) picks Next;
//! a rule's own Assign/Output apply with the state's.

use serde_json::Value;

use crate::definition::choice::Condition;
use crate::definition::ChoiceState;
use crate::engine::{check_size, Cursor, Scope, Shared, StateOutcome};
use crate::error::{names, StateError};
use crate::expr::jsonata::{self, StatesVar};
use crate::history::EventType;

impl Shared {
    pub(in crate::engine) fn run_choice(
        &self,
        name: &str,
        s: &ChoiceState,
        raw: Value,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::ChoiceStateEntered, name, &raw);
        let context = self.context(name, entered, 0, None);
        let chosen = (|| -> Result<(String, Value, Scope), StateError> {
            check_size("input", name, &raw)?;
            let env = self.env(&context, scope);
            let effective = self.filtered_input(&s.io, &raw, &env)?;
            let mut matched = None;
            for rule in &s.choices {
                let hit = match &rule.condition {
                    Condition::Jsonata(condition) => {
                        match jsonata::evaluate_value(condition, StatesVar::input(&raw), &env)? {
                            Value::Bool(b) => b,
                            other => return Err(StateError::new(names::QUERY_EVALUATION_ERROR, format!("The Condition of a rule of Choice state '{name}' must be a boolean, got {other}"))),
                        }
                    }
                    condition => condition.evaluate(&effective, &env)?,
                };
                if hit {
                    matched = Some(rule);
                    break;
                }
            }
            let next = match (matched, &s.default) {
                (Some(rule), _) => rule.next.clone(),
                (None, Some(default)) => default.clone(),
                (None, None) => {
                    return Err(StateError::new(
                        names::NO_CHOICE_MATCHED,
                        format!("No Matches! (state '{name}')"),
                    ))
                }
            };
            let mut scope_after = scope.clone();
            let assign = matched
                .and_then(|r| r.assign.as_ref())
                .or(s.io.assign.as_ref());
            let output = matched
                .and_then(|r| r.output.as_ref())
                .or(s.io.output.as_ref());
            let out = self.finish_without_result(
                &s.io,
                assign,
                output,
                name,
                &raw,
                &env,
                &mut scope_after,
            )?;
            Ok((next, out, scope_after))
        })();
        match chosen {
            Ok((next, output, scope_after)) => {
                *scope = scope_after;
                self.exited(cursor, EventType::ChoiceStateExited, name, &output);
                StateOutcome::Next(next, output)
            }
            Err(e) => StateOutcome::Failed(e),
        }
    }
}
