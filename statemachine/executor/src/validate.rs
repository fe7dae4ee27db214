//! Static checks of a definition: every problem, with the state it concerns.

use std::collections::{BTreeSet, VecDeque};

use serde::Serialize;

use crate::definition::{PathField, State, StateMachine, WaitFor};
use crate::error::names;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// `state "Name"`, nested as `state "Map" > ItemProcessor > state "Inner"`, or `definition`.
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// Check a parsed definition; an empty list means it is well formed.
pub fn validate(machine: &StateMachine) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_machine(machine, "", &mut problems);
    problems
}

fn check_machine(machine: &StateMachine, scope: &str, problems: &mut Vec<Problem>) {
    let at = |name: &str| {
        if scope.is_empty() {
            format!("state {name:?}")
        } else {
            format!("{scope} > state {name:?}")
        }
    };
    let scope_location = if scope.is_empty() {
        "definition".to_string()
    } else {
        scope.to_string()
    };
    let mut push = |location: String, message: String| problems.push(Problem { location, message });
    if !machine.states.contains_key(&machine.start_at) {
        push(
            scope_location.clone(),
            format!("StartAt {:?} is not a state", machine.start_at),
        );
    }
    for (name, state) in &machine.states {
        for next in state.successors() {
            if !machine.states.contains_key(next) {
                push(
                    at(name),
                    format!("transition to {next:?}, which is not a state in this scope"),
                );
            }
        }
        for (i, retrier) in state.retriers().iter().enumerate() {
            check_error_equals(
                &retrier.error_equals,
                i + 1 == state.retriers().len(),
                &format!("Retry[{i}]"),
                &at(name),
                &mut push,
            );
            if retrier.backoff_rate.is_some_and(|b| b < 1.0) {
                push(
                    at(name),
                    format!("Retry[{i}]: BackoffRate must be at least 1.0"),
                );
            }
            if retrier
                .interval_seconds
                .is_some_and(|s| s < 1.0 || s.fract() != 0.0)
            {
                push(
                    at(name),
                    format!("Retry[{i}]: IntervalSeconds must be a positive integer"),
                );
            }
            if retrier
                .max_delay_seconds
                .is_some_and(|s| s < 1.0 || s.fract() != 0.0)
            {
                push(
                    at(name),
                    format!("Retry[{i}]: MaxDelaySeconds must be a positive integer"),
                );
            }
        }
        for (i, catcher) in state.catchers().iter().enumerate() {
            check_error_equals(
                &catcher.error_equals,
                i + 1 == state.catchers().len(),
                &format!("Catch[{i}]"),
                &at(name),
                &mut push,
            );
            if let PathField::Path(p) = &catcher.result_path {
                if let Err(e) = crate::paths::parse_reference(p) {
                    push(at(name), format!("Catch[{i}].ResultPath: {e}"));
                }
            }
        }
        let mut path_problems = Vec::new();
        let mut check_path = |field: &str, path: &PathField| {
            if let PathField::Path(p) = path {
                if let Err(e) = crate::paths::check_path(p) {
                    path_problems.push(format!("{field}: {e}"));
                }
            }
        };
        let mut templates: Vec<(&str, &serde_json::Value)> = Vec::new();
        match state {
            State::Task(s) => {
                check_path("InputPath", &s.io.input_path);
                check_path("OutputPath", &s.io.output_path);
                s.parameters
                    .iter()
                    .for_each(|t| templates.push(("Parameters", t)));
                s.result_selector
                    .iter()
                    .for_each(|t| templates.push(("ResultSelector", t)));
            }
            State::Map(s) => {
                check_path("InputPath", &s.io.input_path);
                check_path("OutputPath", &s.io.output_path);
                check_path("ItemsPath", &s.items_path);
                s.item_selector
                    .iter()
                    .for_each(|t| templates.push(("ItemSelector", t)));
                s.result_selector
                    .iter()
                    .for_each(|t| templates.push(("ResultSelector", t)));
            }
            State::Parallel(s) => {
                check_path("InputPath", &s.io.input_path);
                check_path("OutputPath", &s.io.output_path);
                s.parameters
                    .iter()
                    .for_each(|t| templates.push(("Parameters", t)));
                s.result_selector
                    .iter()
                    .for_each(|t| templates.push(("ResultSelector", t)));
            }
            State::Pass(s) => {
                check_path("InputPath", &s.io.input_path);
                check_path("OutputPath", &s.io.output_path);
                s.parameters
                    .iter()
                    .for_each(|t| templates.push(("Parameters", t)));
            }
            State::Wait(s) => {
                check_path("InputPath", &s.io.input_path);
                check_path("OutputPath", &s.io.output_path);
                if let WaitFor::SecondsPath(p) | WaitFor::TimestampPath(p) = &s.wait {
                    check_path("SecondsPath/TimestampPath", &PathField::Path(p.clone()));
                }
            }
            State::Choice(s) => {
                check_path("InputPath", &s.io.input_path);
                check_path("OutputPath", &s.io.output_path);
            }
            State::Succeed(s) => {
                check_path("InputPath", &s.io.input_path);
                check_path("OutputPath", &s.io.output_path);
            }
            State::Fail(s) => {
                for p in s.error_path.iter().chain(s.cause_path.iter()) {
                    check_path("ErrorPath/CausePath", &PathField::Path(p.clone()));
                }
            }
        }
        let result_path = match state {
            State::Task(s) => Some(&s.io.result_path),
            State::Map(s) => Some(&s.io.result_path),
            State::Parallel(s) => Some(&s.io.result_path),
            State::Pass(s) => Some(&s.io.result_path),
            _ => None,
        };
        if let Some(PathField::Path(p)) = result_path {
            if let Err(e) = crate::paths::parse_reference(p) {
                path_problems.push(format!("ResultPath: {e}"));
            }
        }
        for (field, template) in templates {
            let mut found = Vec::new();
            crate::paths::check_template(template, &mut found);
            path_problems.extend(found.into_iter().map(|p| format!("{field}: {p}")));
        }
        for p in path_problems {
            push(at(name), p);
        }
        let mut nested = Vec::new();
        match state {
            State::Parallel(s) => {
                for (i, branch) in s.branches.iter().enumerate() {
                    check_machine(
                        branch,
                        &format!("{} > Branches[{i}]", at(name)),
                        &mut nested,
                    );
                }
            }
            State::Map(s) => check_machine(
                &s.processor,
                &format!("{} > ItemProcessor", at(name)),
                &mut nested,
            ),
            _ => {}
        }
        for n in nested {
            push(n.location, n.message);
        }
    }
    // Reachability from StartAt, and at least one way to finish.
    let mut seen = BTreeSet::new();
    let mut queue = VecDeque::from([machine.start_at.as_str()]);
    while let Some(name) = queue.pop_front() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(state) = machine.states.get(name) {
            queue.extend(state.successors());
        }
    }
    for name in machine.states.keys() {
        if !seen.contains(name.as_str()) {
            push(at(name), "unreachable from StartAt".to_string());
        }
    }
    let terminal = machine.states.values().any(|s| match s {
        State::Succeed(_) | State::Fail(_) => true,
        State::Task(t) => t.transition == crate::definition::Transition::End,
        State::Map(t) => t.transition == crate::definition::Transition::End,
        State::Parallel(t) => t.transition == crate::definition::Transition::End,
        State::Pass(t) => t.transition == crate::definition::Transition::End,
        State::Wait(t) => t.transition == crate::definition::Transition::End,
        State::Choice(_) => false,
    });
    if !terminal {
        push(
            scope_location,
            "no terminal state (End: true, Succeed or Fail): the machine can never finish"
                .to_string(),
        );
    }
}

fn check_error_equals(
    list: &[String],
    is_last: bool,
    field: &str,
    location: &str,
    push: &mut impl FnMut(String, String),
) {
    if list.is_empty() {
        push(
            location.to_string(),
            format!("{field}: ErrorEquals must not be empty"),
        );
    }
    if list.iter().any(|e| e == names::ALL) {
        if list.len() != 1 {
            push(
                location.to_string(),
                format!("{field}: States.ALL must appear alone in ErrorEquals"),
            );
        }
        if !is_last {
            push(
                location.to_string(),
                format!("{field}: the rule with States.ALL must be the last one"),
            );
        }
    }
    for e in list {
        if e.starts_with("States.") && !names::KNOWN.contains(&e.as_str()) {
            push(
                location.to_string(),
                format!("{field}: unknown error name {e:?}"),
            );
        }
    }
}
