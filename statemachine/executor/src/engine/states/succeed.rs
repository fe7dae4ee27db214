//! The Succeed state: ends its scope with its (filtered) input.

use serde_json::Value;

use crate::definition::SucceedState;
use crate::engine::{check_size, Cursor, Scope, Shared, StateOutcome};
use crate::history::EventType;

impl Shared {
    pub(in crate::engine) fn run_succeed(
        &self,
        name: &str,
        s: &SucceedState,
        raw: Value,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::SucceedStateEntered, name, &raw);
        let context = self.context(name, entered, 0, None);
        let output = check_size("input", name, &raw).and_then(|_| {
            let env = self.env(&context, scope);
            let mut scope_after = scope.clone();
            self.finish_without_result(
                &s.io,
                None,
                s.io.output.as_ref(),
                name,
                &raw,
                &env,
                &mut scope_after,
            )
        });
        match output {
            Ok(output) => {
                self.exited(cursor, EventType::SucceedStateExited, name, &output);
                StateOutcome::End(output)
            }
            Err(e) => StateOutcome::Failed(e),
        }
    }
}
