//! The Map state: reading its items and concurrency, Retry/Catch around attempts, and the inline
//! mode (iterations in this execution, at most 40 at once, any failed iteration fails the Map).
//! The distributed mode is `distributed_map.rs`.

use std::sync::atomic::{AtomicBool, Ordering};

use futures::StreamExt;
use serde_json::Value;

use crate::definition::{MapState, PathField, ProcessorMode, QueryLanguage};
use crate::engine::{
    check_size, json_text, transition, ChildCheckpoint, Cursor, Handling, Scope, ScopeResult,
    Shared, StateOutcome, INLINE_MAP_CONCURRENCY_LIMIT,
};
use crate::error::StateError;
use crate::expr::jsonata::{self, StatesVar};
use crate::expr::{jsonpath, template, Env};
use crate::history::*;

/// How an iteration ended (`Err(None)`: never started) and when.
type IterationEnd = (Result<Value, Option<StateError>>, time::OffsetDateTime);

impl Shared {
    pub(in crate::engine) async fn run_map(
        &self,
        name: &str,
        s: &MapState,
        raw: Value,
        mut children: Option<Vec<ChildCheckpoint>>,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::MapStateEntered, name, &raw);
        if let Err(e) = check_size("input", name, &raw) {
            return StateOutcome::Failed(e);
        }
        let mut counts = vec![0u32; s.retry.len()];
        let mut attempt = 0;
        loop {
            let context = self.context(name, entered, attempt, None);
            let prior = children.take();
            let result = match s.mode {
                ProcessorMode::Inline => {
                    self.map_attempt(name, s, &raw, &context, prior, scope, cursor)
                        .await
                }
                ProcessorMode::Distributed { execution_type } => {
                    self.distributed_map_attempt(
                        name,
                        s,
                        execution_type,
                        &raw,
                        &context,
                        prior,
                        scope,
                        cursor,
                    )
                    .await
                }
            };
            let error = match result {
                Ok(output) => {
                    self.exited(cursor, EventType::MapStateExited, name, &output);
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
                    self.exited(cursor, EventType::MapStateExited, name, &output);
                    return StateOutcome::Next(next, output);
                }
                Handling::Fail(e) => return StateOutcome::Failed(e),
            }
        }
    }

    /// The input after InputPath (JSONPath), and the Map's items from ItemsPath / Items.
    pub(in crate::engine) fn map_items(
        &self,
        name: &str,
        s: &MapState,
        raw: &Value,
        env: &Env,
    ) -> Result<(Value, Vec<Value>), StateError> {
        let effective = self.filtered_input(&s.io, raw, env)?;
        let items = match (s.io.language, &s.items, &s.items_path) {
            (QueryLanguage::Jsonata, Some(items), _) => {
                jsonata::evaluate_value(items, StatesVar::input(raw), env)?
            }
            (QueryLanguage::JsonPath, _, PathField::Path(p)) => jsonpath::read(p, &effective, env)?,
            _ => effective.clone(),
        };
        match items {
            Value::Array(items) => Ok((effective, items)),
            other => Err(StateError::runtime(format!(
                "Map state '{name}': the items must be an array, got {}",
                json_text(&other)
            ))),
        }
    }

    /// One item's input: the ItemSelector over the Map's input, with `$$.Map.Item` set.
    #[allow(clippy::too_many_arguments)]
    pub(in crate::engine) fn item_input(
        &self,
        name: &str,
        s: &MapState,
        raw: &Value,
        effective: &Value,
        item: (usize, &Value),
        entered: time::OffsetDateTime,
        scope: &Scope,
    ) -> Result<Value, StateError> {
        let map_item = (item.0, item.1.clone());
        let item_context = self.context(name, entered, 0, Some(&map_item));
        let env = self.env(&item_context, scope);
        match (&s.item_selector, s.io.language) {
            (Some(selector), QueryLanguage::JsonPath) => {
                template::evaluate_template(selector, effective, &env)
            }
            (Some(selector), QueryLanguage::Jsonata) => {
                jsonata::evaluate_value(selector, StatesVar::input(raw), &env)
            }
            (None, _) => Ok(item.1.clone()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn map_attempt(
        &self,
        name: &str,
        s: &MapState,
        raw: &Value,
        context: &Value,
        prior: Option<Vec<ChildCheckpoint>>,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> Result<Value, StateError> {
        let (effective, items, limit) = {
            let env = self.env(context, scope);
            let (effective, items) = self.map_items(name, s, raw, &env)?;
            let max = match &s.max_concurrency {
                Some(amount) => {
                    self.amount(amount, "MaxConcurrency", name, &effective, raw, &env)? as usize
                }
                None => 0,
            };
            let limit = if max == 0 {
                INLINE_MAP_CONCURRENCY_LIMIT
            } else {
                max.min(INLINE_MAP_CONCURRENCY_LIMIT)
            };
            (effective, items, limit)
        };
        self.emit(cursor, EventType::MapStateStarted, |e| {
            e.map_state_started_event_details = Some(MapStateStartedDetails {
                length: items.len(),
            })
        });
        let started = cursor.clone();
        let total = items.len();
        let prior = prior
            .filter(|p| p.len() == total)
            .unwrap_or_else(|| vec![ChildCheckpoint::NotStarted; total]);
        self.progress.start_children(&scope.path, prior.clone());
        let stop = AtomicBool::new(false);
        let entered = started.now;
        let iteration_scope = scope.variables.nested();
        let scope_ref: &Scope = scope;
        let iterations: Vec<_> = items
            .iter()
            .zip(prior)
            .enumerate()
            .map(|(index, (item, prior))| {
                let (stop, started, effective) = (&stop, started.clone(), &effective);
                let child_scope = Scope {
                    path: [scope_ref.path.as_slice(), &[index]].concat(),
                    variables: iteration_scope.clone(),
                };
                async move {
                    if let ChildCheckpoint::Succeeded { output } = prior {
                        return (index, Ok(output), started.now, None);
                    }
                    if stop.load(Ordering::SeqCst) {
                        return (index, Err(None), started.now, None);
                    }
                    let mut icursor = started;
                    let iteration = MapIterationDetails {
                        name: name.to_string(),
                        index,
                    };
                    let started_id = self.emit(&mut icursor, EventType::MapIterationStarted, |e| {
                        e.map_iteration_started_event_details = Some(iteration.clone())
                    });
                    self.progress.child_running(&scope_ref.path, index);
                    let resume = match prior {
                        ChildCheckpoint::Failed { checkpoint } => Some(checkpoint),
                        _ => None,
                    };
                    let result = match self.item_input(
                        name,
                        s,
                        raw,
                        effective,
                        (index, item),
                        entered,
                        scope_ref,
                    ) {
                        Ok(input) => {
                            self.run_scope(&s.processor, input, resume, child_scope, &mut icursor)
                                .await
                        }
                        Err(e) => {
                            // A failed ItemSelector leaves nothing to resume: a redrive reruns the iteration.
                            self.progress.child_settled(
                                &scope_ref.path,
                                index,
                                ChildCheckpoint::NotStarted,
                            );
                            ScopeResult::Failed(e, self.progress.checkpoint(&scope_ref.path))
                        }
                    };
                    match result {
                        ScopeResult::Succeeded(output) => {
                            self.emit(&mut icursor, EventType::MapIterationSucceeded, |e| {
                                e.map_iteration_succeeded_event_details = Some(iteration)
                            });
                            self.progress.child_settled(
                                &scope_ref.path,
                                index,
                                ChildCheckpoint::Succeeded {
                                    output: output.clone(),
                                },
                            );
                            (index, Ok(output), icursor.now, Some(started_id))
                        }
                        ScopeResult::Failed(error, _) => {
                            self.emit(&mut icursor, EventType::MapIterationFailed, |e| {
                                e.map_iteration_failed_event_details = Some(iteration)
                            });
                            stop.store(true, Ordering::SeqCst);
                            (index, Err(Some(error)), icursor.now, Some(started_id))
                        }
                    }
                }
            })
            .collect();
        // Run up to `limit` at once. Once an iteration has failed, in-flight iterations are aborted
        // (dropped) and the rest never start, as AWS does; a redrive runs both kinds again.
        let mut waiting = iterations.into_iter();
        let mut running = futures::stream::FuturesUnordered::new();
        let mut finished: Vec<Option<IterationEnd>> = vec![None; total];
        loop {
            while running.len() < limit && !stop.load(Ordering::SeqCst) {
                match waiting.next() {
                    Some(iteration) => running.push(iteration),
                    None => break,
                }
            }
            match running.next().await {
                Some((index, result, end, _)) => finished[index] = Some((result, end)),
                None => break,
            }
            if stop.load(Ordering::SeqCst) {
                break;
            }
        }
        drop(running);
        drop(waiting);
        // Iterations that started but did not finish were aborted.
        let history_len = self.last_event_id();
        let started_ids: Vec<(usize, u64)> = {
            let history = self.history.lock().expect("history lock is never poisoned");
            history[started.last_event as usize..history_len as usize]
                .iter()
                .filter_map(|e| {
                    e.map_iteration_started_event_details
                        .as_ref()
                        .filter(|d| d.name == name)
                        .map(|d| (d.index, e.id))
                })
                .collect()
        };
        for (index, started_id) in started_ids {
            if finished[index].is_none() {
                let mut aborted = crate::engine::Cursor {
                    now: started.now,
                    last_event: started_id,
                };
                self.emit(&mut aborted, EventType::MapIterationAborted, |e| {
                    e.map_iteration_aborted_event_details = Some(MapIterationDetails {
                        name: name.to_string(),
                        index,
                    })
                });
                self.progress
                    .child_settled(&scope.path, index, ChildCheckpoint::NotStarted);
            }
        }
        let mut failure: Option<StateError> = None;
        let mut outputs = Vec::with_capacity(total);
        for (result, end) in finished.into_iter().flatten() {
            cursor.now = cursor.now.max(end);
            match result {
                Ok(output) => outputs.push(output),
                Err(Some(e)) => {
                    // A terminal error (States.Runtime, DataLimitExceeded) wins over others.
                    if failure
                        .as_ref()
                        .is_none_or(|f| !f.is_terminal() && e.is_terminal())
                    {
                        failure = Some(e);
                    }
                }
                Err(None) => {}
            }
        }
        cursor.last_event = started.last_event;
        let output = Value::Array(outputs);
        let failure = failure
            .or_else(|| check_size("output (all Map iterations together)", name, &output).err());
        if let Some(error) = failure {
            self.emit(cursor, EventType::MapStateFailed, |_| {});
            return Err(error);
        }
        self.emit(cursor, EventType::MapStateSucceeded, |_| {});
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
