//! The Parallel state: every branch starts (as on AWS, even when one fails at once); the first
//! failed branch fails the state and the others are aborted; a redrive reruns only unsuccessful
//! branches.

use futures::{FutureExt, StreamExt};
use serde_json::Value;

use crate::definition::ParallelState;
use crate::engine::{
    check_size, transition, ChildCheckpoint, Cursor, Handling, Scope, ScopeResult, Shared,
    StateOutcome,
};
use crate::error::StateError;
use crate::history::EventType;

impl Shared {
    pub(in crate::engine) async fn run_parallel(
        &self,
        name: &str,
        s: &ParallelState,
        raw: Value,
        mut children: Option<Vec<ChildCheckpoint>>,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::ParallelStateEntered, name, &raw);
        if let Err(e) = check_size("input", name, &raw) {
            return StateOutcome::Failed(e);
        }
        let mut counts = vec![0u32; s.retry.len()];
        let mut attempt = 0;
        loop {
            let context = self.context(name, entered, attempt, None);
            let error = match self
                .parallel_attempt(name, s, &raw, &context, children.take(), scope, cursor)
                .await
            {
                Ok(output) => {
                    self.exited(cursor, EventType::ParallelStateExited, name, &output);
                    return transition(&s.transition, output);
                }
                Err(error) => error,
            };
            match self
                .handle_error(
                    name,
                    (&s.retry, &s.catch, &s.io),
                    &mut counts,
                    &error,
                    &raw,
                    &context,
                    scope,
                    cursor,
                )
                .await
            {
                Handling::Retry => attempt += 1,
                Handling::Caught { next, output } => {
                    self.exited(cursor, EventType::ParallelStateExited, name, &output);
                    return StateOutcome::Next(next, output);
                }
                Handling::Fail(e) => return StateOutcome::Failed(e),
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn parallel_attempt(
        &self,
        name: &str,
        s: &ParallelState,
        raw: &Value,
        context: &Value,
        prior: Option<Vec<ChildCheckpoint>>,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> Result<Value, StateError> {
        let effective = {
            let env = self.env(context, scope);
            self.effective_input(&s.io, s.parameters.as_ref(), name, raw, &env)?
        };
        self.emit(cursor, EventType::ParallelStateStarted, |_| {});
        let started = cursor.clone();
        let prior = prior
            .filter(|p| p.len() == s.branches.len())
            .unwrap_or_else(|| vec![ChildCheckpoint::NotStarted; s.branches.len()]);
        self.progress.start_children(&scope.path, prior.clone());
        let branch_scope = scope.variables.nested();
        let branches: futures::stream::FuturesUnordered<_> = s
            .branches
            .iter()
            .zip(prior)
            .enumerate()
            .map(|(index, (branch, prior))| {
                let mut bcursor = started.clone();
                let effective = effective.clone();
                let child_scope = Scope {
                    path: [scope.path.as_slice(), &[index]].concat(),
                    variables: branch_scope.clone(),
                };
                async move {
                    let resume = match prior {
                        ChildCheckpoint::Succeeded { output } => {
                            return (index, Ok(output), bcursor.now)
                        }
                        ChildCheckpoint::Failed { checkpoint } => Some(checkpoint),
                        ChildCheckpoint::NotStarted => None,
                    };
                    self.progress
                        .child_running(&child_scope.path[..child_scope.path.len() - 1], index);
                    match self
                        .run_scope(branch, effective, resume, child_scope, &mut bcursor)
                        .await
                    {
                        ScopeResult::Succeeded(output) => (index, Ok(output), bcursor.now),
                        ScopeResult::Failed(error, _) => (index, Err(error), bcursor.now),
                    }
                }
            })
            .collect();
        let mut running = branches;
        let total = s.branches.len();
        let mut results: Vec<Option<Result<Value, StateError>>> = vec![None; total];
        let mut failure: Option<StateError> = None;
        while let Some((index, result, end)) = running.next().await {
            cursor.now = cursor.now.max(end);
            if let Ok(output) = &result {
                self.progress.child_settled(
                    &scope.path,
                    index,
                    ChildCheckpoint::Succeeded {
                        output: output.clone(),
                    },
                );
            }
            if let Err(e) = &result {
                failure.get_or_insert_with(|| e.clone());
            }
            results[index] = Some(result);
            if failure.is_some() {
                break;
            }
        }
        if failure.is_some() {
            // AWS starts every branch before it aborts the others: give each unstarted branch its
            // first step, then drop them all (a redrive runs the aborted ones from their start).
            while let Some(Some((index, result, end))) = running.next().now_or_never() {
                cursor.now = cursor.now.max(end);
                if let Ok(output) = &result {
                    self.progress.child_settled(
                        &scope.path,
                        index,
                        ChildCheckpoint::Succeeded {
                            output: output.clone(),
                        },
                    );
                }
                results[index] = Some(result);
            }
            drop(running);
            for (index, result) in results.iter().enumerate() {
                if result.is_none() {
                    self.progress
                        .child_settled(&scope.path, index, ChildCheckpoint::NotStarted);
                }
            }
        }
        cursor.last_event = started.last_event;
        let outputs: Vec<Value> = results
            .into_iter()
            .filter_map(|r| r.and_then(Result::ok))
            .collect();
        let output = Value::Array(outputs);
        let failure = failure.or_else(|| check_size("output", name, &output).err());
        if let Some(error) = failure {
            self.emit(cursor, EventType::ParallelStateFailed, |_| {});
            return Err(error);
        }
        self.emit(cursor, EventType::ParallelStateSucceeded, |_| {});
        let env = self.env(context, scope);
        let mut scope_after = scope.clone();
        let out = self.finish_with_result(
            &s.io,
            s.result_selector.as_ref(),
            name,
            raw,
            output,
            &env,
            &mut scope_after,
        )?;
        *scope = scope_after;
        Ok(out)
    }
}
