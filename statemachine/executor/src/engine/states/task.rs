//! The Task state: calls its resource through the [`TaskInvoker`] (Lambda function, `lambda:invoke`,
//! other integrations with their `.sync` and `.waitForTaskToken` patterns), enforcing TimeoutSeconds
//! and HeartbeatSeconds, with Retry and Catch.

use serde_json::{json, Value};

use crate::definition::{Amount, TaskState};
use crate::engine::{
    check_size, json_text, transition, Cursor, Handling, IntegrationPattern, Scope, Shared,
    StateOutcome, TaskCall, TaskClock, TaskKind, TimeMode,
};
use crate::error::{names, StateError};
use crate::expr::Env;
use crate::history::*;

fn is_lambda_arn(resource: &str) -> bool {
    let parts: Vec<&str> = resource.split(':').collect();
    parts.len() >= 7 && parts[0] == "arn" && parts[2] == "lambda" && parts[5] == "function"
}

/// `arn:<partition>:states:::<service>:<action>[.pattern]` → (service, action without the pattern).
fn integration(resource: &str) -> Option<(&str, &str)> {
    let rest = resource.strip_prefix("arn:")?;
    let (_, rest) = rest.split_once(":states:::")?;
    let (service, action) = rest.split_once(':')?;
    let action = action
        .strip_suffix(".waitForTaskToken")
        .or_else(|| action.strip_suffix(".sync:2"))
        .or_else(|| action.strip_suffix(".sync"))
        .unwrap_or(action);
    Some((service, action))
}

/// How an invocation ended, in the task's own time.
enum Ended {
    Returned(Result<Value, StateError>),
    TimedOut { after: f64 },
    HeartbeatMissed { after: f64 },
}

impl Shared {
    pub(in crate::engine) async fn run_task(
        &self,
        name: &str,
        s: &TaskState,
        raw: Value,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> StateOutcome {
        let entered = self.entered(cursor, EventType::TaskStateEntered, name, &raw);
        if let Err(e) = check_size("input", name, &raw) {
            return StateOutcome::Failed(e);
        }
        let mut counts = vec![0u32; s.retry.len()];
        let mut attempt = 0u32;
        loop {
            let mut context = self.context(name, entered, attempt, None);
            if IntegrationPattern::of(&s.resource) == IntegrationPattern::WaitForTaskToken {
                context["Task"] = json!({ "Token": self.task_token() });
            }
            let error = match self
                .task_attempt(name, s, &raw, &context, attempt, scope, cursor)
                .await
            {
                Ok(output) => {
                    self.exited(cursor, EventType::TaskStateExited, name, &output);
                    return transition(&s.transition, output);
                }
                Err(e) => e,
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
                    self.exited(cursor, EventType::TaskStateExited, name, &output);
                    return StateOutcome::Next(next, output);
                }
                Handling::Fail(e) => return StateOutcome::Failed(e),
            }
        }
    }

    /// A task token: opaque, unique, and reproducible under a seed.
    fn task_token(&self) -> String {
        use base64::Engine as _;
        let raw = format!("{}#{}", self.options.execution_arn, self.rng.uuid());
        base64::engine::general_purpose::STANDARD.encode(raw)
    }

    fn seconds_of(
        &self,
        amount: Option<&Amount>,
        field: &str,
        name: &str,
        raw: &Value,
        env: &Env,
        io: &crate::definition::DataFlow,
    ) -> Result<Option<u64>, StateError> {
        let Some(amount) = amount else {
            return Ok(None);
        };
        // A path reads the state input after InputPath, before Parameters.
        let data = self.filtered_input(io, raw, env)?;
        let seconds = self.amount(amount, field, name, &data, raw, env)?;
        if seconds < 1.0 || seconds.fract() != 0.0 {
            return Err(StateError::runtime(format!(
                "The {field} of state '{name}' must be a positive integer, got {seconds}"
            )));
        }
        Ok(Some(seconds as u64))
    }

    #[allow(clippy::too_many_arguments)]
    async fn task_attempt(
        &self,
        name: &str,
        s: &TaskState,
        raw: &Value,
        context: &Value,
        attempt: u32,
        scope: &mut Scope,
        cursor: &mut Cursor,
    ) -> Result<Value, StateError> {
        let (effective, timeout, heartbeat) = {
            let env = self.env(context, scope);
            let effective = self.effective_input(&s.io, s.parameters.as_ref(), name, raw, &env)?;
            let timeout =
                self.seconds_of(s.timeout.as_ref(), "TimeoutSeconds", name, raw, &env, &s.io)?;
            let heartbeat = self.seconds_of(
                s.heartbeat.as_ref(),
                "HeartbeatSeconds",
                name,
                raw,
                &env,
                &s.io,
            )?;
            (effective, timeout, heartbeat)
        };
        let pattern = IntegrationPattern::of(&s.resource);
        let (kind, function_name, payload) = if is_lambda_arn(&s.resource) {
            (
                TaskKind::LambdaFunction,
                Some(s.resource.clone()),
                effective.clone(),
            )
        } else if integration(&s.resource) == Some(("lambda", "invoke")) {
            let function = effective.get("FunctionName").and_then(Value::as_str).ok_or_else(|| {
                StateError::runtime(format!("The Task state '{name}' uses lambda:invoke without a string Parameters.FunctionName"))
            })?;
            (
                TaskKind::LambdaInvoke,
                Some(function.to_string()),
                effective
                    .get("Payload")
                    .cloned()
                    .unwrap_or_else(|| json!({})),
            )
        } else {
            (TaskKind::Service, None, effective.clone())
        };
        let (resource_type, resource) = match integration(&s.resource) {
            Some((service, _)) => {
                let action = s
                    .resource
                    .split(":states:::")
                    .nth(1)
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, a)| a.to_string())
                    .unwrap_or_default();
                (service.to_string(), action)
            }
            None => ("lambda".to_string(), s.resource.clone()),
        };
        let lambda = kind == TaskKind::LambdaFunction;
        if lambda {
            self.emit(cursor, EventType::LambdaFunctionScheduled, |e| {
                e.lambda_function_scheduled_event_details = Some(LambdaFunctionScheduledDetails {
                    resource: s.resource.clone(),
                    input: Some(json_text(&effective)),
                    input_details: Some(DataDetails::default()),
                    timeout_in_seconds: timeout,
                })
            });
            self.emit(cursor, EventType::LambdaFunctionStarted, |_| {});
        } else {
            self.emit(cursor, EventType::TaskScheduled, |e| {
                e.task_scheduled_event_details = Some(TaskScheduledDetails {
                    resource_type: resource_type.clone(),
                    resource: resource.clone(),
                    region: self.region.clone(),
                    parameters: json_text(&effective),
                    timeout_in_seconds: timeout,
                    heartbeat_in_seconds: heartbeat,
                })
            });
            self.emit(cursor, EventType::TaskStarted, |e| {
                e.task_started_event_details = Some(TaskStartedDetails {
                    resource_type: resource_type.clone(),
                    resource: resource.clone(),
                })
            });
            if pattern != IntegrationPattern::RequestResponse {
                self.emit(cursor, EventType::TaskSubmitted, |e| {
                    e.task_submitted_event_details = Some(TaskSucceededDetails {
                        resource_type: resource_type.clone(),
                        resource: resource.clone(),
                        output: None,
                        output_details: None,
                    })
                });
            }
        }
        let clock = TaskClock::new(self.time_mode);
        let call = TaskCall {
            state_name: name.to_string(),
            resource: s.resource.clone(),
            kind,
            pattern,
            function_name,
            input: payload,
            context: context.clone(),
            attempt,
            task_token: context
                .pointer("/Task/Token")
                .and_then(Value::as_str)
                .map(str::to_string),
            clock: clock.clone(),
        };
        let ended = self.invoke_within(call, &clock, timeout, heartbeat).await;
        let taken = match &ended {
            Ended::Returned(_) => clock.elapsed(),
            Ended::TimedOut { after } | Ended::HeartbeatMissed { after } => *after,
        };
        if self.time_mode == TimeMode::Simulated {
            self.sleep(cursor, taken).await;
        }
        let outcome = match ended {
            Ended::Returned(r) => r,
            Ended::TimedOut { .. } => Err(StateError::new(
                names::TIMEOUT,
                format!(
                    "The task '{name}' did not finish within {} seconds.",
                    timeout.unwrap_or(0)
                ),
            )),
            Ended::HeartbeatMissed { .. } => Err(StateError::new(
                names::HEARTBEAT_TIMEOUT,
                format!(
                    "The task '{name}' sent no heartbeat for {} seconds.",
                    heartbeat.unwrap_or(0)
                ),
            )),
        };
        let outcome =
            outcome.and_then(|result| check_size("result", name, &result).map(|_| result));
        let result = match outcome {
            Ok(result) => result,
            Err(error) => {
                let timed_out =
                    error.error == names::TIMEOUT || error.error == names::HEARTBEAT_TIMEOUT;
                let details = ErrorDetails {
                    error: Some(error.error.clone()),
                    cause: Some(error.cause.clone()),
                };
                let task_details = TaskFailedDetails {
                    resource_type,
                    resource,
                    error: details.error.clone(),
                    cause: details.cause.clone(),
                };
                match (lambda, timed_out) {
                    (true, true) => self.emit(cursor, EventType::LambdaFunctionTimedOut, |e| {
                        e.lambda_function_timed_out_event_details = Some(details)
                    }),
                    (true, false) => self.emit(cursor, EventType::LambdaFunctionFailed, |e| {
                        e.lambda_function_failed_event_details = Some(details)
                    }),
                    (false, true) => self.emit(cursor, EventType::TaskTimedOut, |e| {
                        e.task_timed_out_event_details = Some(task_details)
                    }),
                    (false, false) => self.emit(cursor, EventType::TaskFailed, |e| {
                        e.task_failed_event_details = Some(task_details)
                    }),
                };
                return Err(error);
            }
        };
        let result = if kind == TaskKind::LambdaInvoke {
            json!({
                "ExecutedVersion": "$LATEST",
                "Payload": result,
                "SdkHttpMetadata": {
                    "AllHttpHeaders": { "Content-Type": ["application/json"], "X-Amz-Executed-Version": ["$LATEST"] },
                    "HttpHeaders": { "Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST" },
                    "HttpStatusCode": 200
                },
                "SdkResponseMetadata": { "RequestId": self.rng.uuid() },
                "StatusCode": 200
            })
        } else {
            result
        };
        if lambda {
            self.emit(cursor, EventType::LambdaFunctionSucceeded, |e| {
                e.lambda_function_succeeded_event_details = Some(OutputDetails {
                    output: Some(json_text(&result)),
                    output_details: Some(DataDetails::default()),
                })
            });
        } else {
            self.emit(cursor, EventType::TaskSucceeded, |e| {
                e.task_succeeded_event_details = Some(TaskSucceededDetails {
                    resource_type,
                    resource,
                    output: Some(json_text(&result)),
                    output_details: Some(DataDetails::default()),
                })
            });
        }
        let env = self.env(context, scope);
        let mut scope_after = scope.clone();
        let output = self.finish_with_result(
            &s.io,
            s.result_selector.as_ref(),
            name,
            raw,
            result,
            &env,
            &mut scope_after,
        )?;
        *scope = scope_after;
        Ok(output)
    }

    /// Call the invoker, bounded by TimeoutSeconds and HeartbeatSeconds: on tokio's clock in real
    /// time; in simulated time from the time the task says it took and the heartbeats it sent.
    async fn invoke_within(
        &self,
        call: TaskCall,
        clock: &TaskClock,
        timeout: Option<u64>,
        heartbeat: Option<u64>,
    ) -> Ended {
        let invocation = self.invoker.invoke(call);
        match self.time_mode {
            TimeMode::Real => {
                let watchdog = async {
                    loop {
                        let since_beat =
                            clock.elapsed() - clock.heartbeats().last().copied().unwrap_or(0.0);
                        let to_heartbeat = heartbeat.map(|h| h as f64 - since_beat);
                        let to_timeout = timeout.map(|t| t as f64 - clock.elapsed());
                        match (to_timeout, to_heartbeat) {
                            (Some(t), _) if t <= 0.0 => {
                                return Ended::TimedOut {
                                    after: clock.elapsed(),
                                }
                            }
                            (_, Some(h)) if h <= 0.0 => {
                                return Ended::HeartbeatMissed {
                                    after: clock.elapsed(),
                                }
                            }
                            (None, None) => return std::future::pending().await,
                            (t, h) => {
                                let wait = t.unwrap_or(f64::MAX).min(h.unwrap_or(f64::MAX));
                                tokio::time::sleep(std::time::Duration::from_secs_f64(wait)).await;
                            }
                        }
                    }
                };
                tokio::select! {
                    biased;
                    result = invocation => Ended::Returned(result.map_err(|f| StateError::new(f.error, f.cause))),
                    ended = watchdog => ended,
                }
            }
            TimeMode::Simulated => {
                // An invoker may also take time on tokio's clock (e.g. a test's paused sleep).
                let result = match timeout {
                    Some(t) => {
                        match tokio::time::timeout(std::time::Duration::from_secs(t), invocation)
                            .await
                        {
                            Ok(result) => result,
                            Err(_) => return Ended::TimedOut { after: t as f64 },
                        }
                    }
                    None => invocation.await,
                };
                let took = clock.elapsed();
                // The first moment the task went HeartbeatSeconds without a heartbeat, if any.
                let missed = heartbeat.and_then(|h| {
                    let h = h as f64;
                    let mut last = 0.0;
                    for beat in clock.heartbeats().into_iter().chain(std::iter::once(took)) {
                        if beat - last > h {
                            return Some(last + h);
                        }
                        last = beat;
                    }
                    None
                });
                let timed_out = timeout.map(|t| t as f64).filter(|t| took > *t);
                match (timed_out, missed) {
                    (Some(t), Some(m)) if m < t => Ended::HeartbeatMissed { after: m },
                    (Some(t), _) => Ended::TimedOut { after: t },
                    (None, Some(m)) => Ended::HeartbeatMissed { after: m },
                    (None, None) => {
                        Ended::Returned(result.map_err(|f| StateError::new(f.error, f.cause)))
                    }
                }
            }
        }
    }
}
