//! The Pass state: its `Result` (JSONPath), or its input shaped by Parameters / Output.

use serde_json::Value;

use crate::definition::{PassState, QueryLanguage};
use crate::engine::{check_size, transition, Cursor, Scope, Shared, StateOutcome};
use crate::history::EventType;

impl Shared {
    pub(in crate::engine) fn run_pass(
        &self,
        name: &str,
        s: &PassState,
        raw: Value,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::PassStateEntered, name, &raw);
        let context = self.context(name, entered, 0, None);
        let result = (|| {
            check_size("input", name, &raw)?;
            let env = self.env(&context, scope);
            let result = match (&s.result, s.io.language) {
                (Some(result), QueryLanguage::JsonPath) => result.clone(),
                _ => self.effective_input(&s.io, s.parameters.as_ref(), name, &raw, &env)?,
            };
            let mut scope_after = scope.clone();
            let output =
                self.finish_with_result(&s.io, None, name, &raw, result, &env, &mut scope_after)?;
            Ok((output, scope_after))
        })();
        match result {
            Ok((output, scope_after)) => {
                *scope = scope_after;
                self.exited(cursor, EventType::PassStateExited, name, &output);
                transition(&s.transition, output)
            }
            Err(e) => StateOutcome::Failed(e),
        }
    }
}
