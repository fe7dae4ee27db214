//! The Wait state: seconds or a timestamp, literal, by path, or by JSONata expression.

use serde_json::Value;

use crate::definition::{Amount, WaitFor, WaitState};
use crate::engine::{check_size, transition, Cursor, Scope, Shared, StateOutcome};
use crate::error::StateError;
use crate::expr::jsonata::{self, StatesVar};
use crate::expr::jsonpath;
use crate::history::EventType;

impl Shared {
    pub(in crate::engine) async fn run_wait(
        &self,
        name: &str,
        s: &WaitState,
        raw: Value,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::WaitStateEntered, name, &raw);
        let context = self.context(name, entered, 0, None);
        let seconds = (|| -> Result<f64, StateError> {
            check_size("input", name, &raw)?;
            let env = self.env(&context, scope);
            let effective = self.filtered_input(&s.io, &raw, &env)?;
            let until = |value: Value| -> Result<f64, StateError> {
                let text = value.as_str().ok_or_else(|| {
                    StateError::runtime(format!(
                        "The Wait state '{name}' needs a timestamp string, got {value}"
                    ))
                })?;
                let target = crate::definition::choice::parse_timestamp(text).ok_or_else(|| {
                    StateError::runtime(format!(
                        "The Wait state '{name}' got {text:?}, which is not an RFC 3339 timestamp"
                    ))
                })?;
                Ok(((target - entered).as_seconds_f64()).max(0.0))
            };
            match &s.wait {
                WaitFor::Seconds(Amount::Path(p)) => match jsonpath::read(p, &effective, &env)? {
                    Value::Number(n) if n.as_u64().is_some() => Ok(n.as_u64().unwrap_or(0) as f64),
                    other => Err(StateError::runtime(format!("The SecondsPath '{p}' of Wait state '{name}' must select a non-negative integer, got {other}"))),
                },
                WaitFor::Seconds(amount) => self.amount(amount, "Seconds", name, &effective, &raw, &env),
                WaitFor::Timestamp(t) => until(jsonata::evaluate_value(t, StatesVar::input(&raw), &env)?),
                WaitFor::TimestampPath(p) => until(jsonpath::read(p, &effective, &env)?),
            }
        })();
        let seconds = match seconds {
            Ok(seconds) => seconds,
            Err(e) => return StateOutcome::Failed(e),
        };
        self.sleep(cursor, seconds).await;
        let env = self.env(&context, scope);
        let mut scope_after = scope.clone();
        match self.finish_without_result(
            &s.io,
            s.io.assign.as_ref(),
            s.io.output.as_ref(),
            name,
            &raw,
            &env,
            &mut scope_after,
        ) {
            Ok(output) => {
                *scope = scope_after;
                self.exited(cursor, EventType::WaitStateExited, name, &output);
                transition(&s.transition, output)
            }
            Err(e) => StateOutcome::Failed(e),
        }
    }
}
