//! Static checks of a definition: every problem, with the state it concerns.

use std::collections::{BTreeSet, VecDeque};

use serde_json::Value;

use crate::definition::choice::Condition;
use crate::definition::{
    Amount, PathField, ProcessorMode, QueryLanguage, State, StateMachine, WaitFor,
};
use crate::error::names;
pub use crate::error::Problem;
use crate::expr::{jsonata, jsonpath, template};

/// Check a parsed definition; an empty list means it is well formed.
pub fn validate(machine: &StateMachine) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_machine(machine, "", &BTreeSet::new(), &mut problems);
    problems
}

fn check_machine(
    machine: &StateMachine,
    scope: &str,
    outer: &BTreeSet<String>,
    problems: &mut Vec<Problem>,
) {
    let assigned_here: BTreeSet<String> = machine
        .states
        .values()
        .flat_map(variables_assigned)
        .collect();
    let mut visible_inside = outer.clone();
    visible_inside.extend(assigned_here.iter().cloned());
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
        for problem in expression_problems(state) {
            push(at(name), problem);
        }
        for variable in variables_read(state) {
            if variable != "states"
                && !outer.contains(&variable)
                && !assigned_here.contains(&variable)
            {
                push(
                    at(name),
                    format!("reads the variable ${variable}, which no state of this scope or an enclosing one assigns"),
                );
            }
        }
        for variable in variables_assigned(state) {
            if outer.contains(&variable) {
                push(
                    at(name),
                    format!("assigns ${variable}, a variable of an enclosing scope (a Map iteration or Parallel branch can only read those)"),
                );
            }
        }
        let mut nested = Vec::new();
        match state {
            State::Parallel(s) => {
                for (i, branch) in s.branches.iter().enumerate() {
                    check_machine(
                        branch,
                        &format!("{} > Branches[{i}]", at(name)),
                        &visible_inside,
                        &mut nested,
                    );
                }
            }
            // A Distributed Map's children are executions of their own: they see no outer variables.
            State::Map(s) => check_machine(
                &s.processor,
                &format!("{} > ItemProcessor", at(name)),
                &if s.mode == ProcessorMode::Inline {
                    visible_inside.clone()
                } else {
                    BTreeSet::new()
                },
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

/// Every field value of a state that holds expressions, with its name.
fn expression_fields(state: &State) -> Vec<(String, &Value)> {
    let mut fields: Vec<(String, &Value)> = Vec::new();
    let flow = state.flow();
    fields.extend(flow.assign.iter().map(|v| ("Assign".to_string(), v)));
    fields.extend(flow.output.iter().map(|v| ("Output".to_string(), v)));
    let parameters = match flow.language {
        QueryLanguage::JsonPath => "Parameters",
        QueryLanguage::Jsonata => "Arguments",
    };
    for (i, catcher) in state.catchers().iter().enumerate() {
        fields.extend(
            catcher
                .assign
                .iter()
                .map(|v| (format!("Catch[{i}].Assign"), v)),
        );
        fields.extend(
            catcher
                .output
                .iter()
                .map(|v| (format!("Catch[{i}].Output"), v)),
        );
    }
    match state {
        State::Task(s) => {
            fields.extend(s.parameters.iter().map(|v| (parameters.to_string(), v)));
            fields.extend(
                s.result_selector
                    .iter()
                    .map(|v| ("ResultSelector".to_string(), v)),
            );
        }
        State::Parallel(s) => {
            fields.extend(s.parameters.iter().map(|v| (parameters.to_string(), v)));
            fields.extend(
                s.result_selector
                    .iter()
                    .map(|v| ("ResultSelector".to_string(), v)),
            );
        }
        State::Pass(s) => fields.extend(s.parameters.iter().map(|v| (parameters.to_string(), v))),
        State::Map(s) => {
            fields.extend(s.items.iter().map(|v| ("Items".to_string(), v)));
            fields.extend(
                s.item_selector
                    .iter()
                    .map(|v| ("ItemSelector".to_string(), v)),
            );
            fields.extend(
                s.result_selector
                    .iter()
                    .map(|v| ("ResultSelector".to_string(), v)),
            );
            fields.extend(
                s.item_reader
                    .iter()
                    .map(|r| ("ItemReader".to_string(), &r.parameters)),
            );
            fields.extend(
                s.result_writer
                    .iter()
                    .map(|w| ("ResultWriter".to_string(), &w.parameters)),
            );
            fields.extend(
                s.item_batcher
                    .iter()
                    .filter_map(|b| b.batch_input.as_ref())
                    .map(|v| ("ItemBatcher.BatchInput".to_string(), v)),
            );
        }
        State::Choice(s) => {
            for (i, rule) in s.choices.iter().enumerate() {
                fields.extend(
                    rule.assign
                        .iter()
                        .map(|v| (format!("Choices[{i}].Assign"), v)),
                );
                fields.extend(
                    rule.output
                        .iter()
                        .map(|v| (format!("Choices[{i}].Output"), v)),
                );
                if let Condition::Jsonata(c) = &rule.condition {
                    fields.push((format!("Choices[{i}].Condition"), c));
                }
            }
        }
        State::Wait(s) => {
            if let WaitFor::Timestamp(t) = &s.wait {
                fields.push(("Timestamp".to_string(), t));
            }
        }
        State::Fail(s) => {
            fields.extend(s.error.iter().map(|v| ("Error".to_string(), v)));
            fields.extend(s.cause.iter().map(|v| ("Cause".to_string(), v)));
        }
        State::Succeed(_) => {}
    }
    fields
}

/// JSONata expressions of number fields (`TimeoutSeconds`, `MaxConcurrency`, …) and JSONPath `…Path`s.
fn amounts(state: &State) -> Vec<(&'static str, &Amount)> {
    let mut out = Vec::new();
    match state {
        State::Task(s) => {
            out.extend(s.timeout.iter().map(|a| ("TimeoutSeconds", a)));
            out.extend(s.heartbeat.iter().map(|a| ("HeartbeatSeconds", a)));
        }
        State::Map(s) => {
            out.extend(s.max_concurrency.iter().map(|a| ("MaxConcurrency", a)));
            out.extend(
                s.tolerated_failure_count
                    .iter()
                    .map(|a| ("ToleratedFailureCount", a)),
            );
            out.extend(
                s.tolerated_failure_percentage
                    .iter()
                    .map(|a| ("ToleratedFailurePercentage", a)),
            );
            out.extend(
                s.item_reader
                    .iter()
                    .filter_map(|r| r.max_items.as_ref())
                    .map(|a| ("MaxItems", a)),
            );
            if let Some(b) = &s.item_batcher {
                out.extend(b.limits.max_items.iter().map(|a| ("MaxItemsPerBatch", a)));
                out.extend(
                    b.limits
                        .max_bytes
                        .iter()
                        .map(|a| ("MaxInputBytesPerBatch", a)),
                );
            }
        }
        State::Wait(s) => {
            if let WaitFor::Seconds(a) = &s.wait {
                out.push(("Seconds", a));
            }
        }
        _ => {}
    }
    out
}

/// Every problem with the expressions of a state: paths, intrinsic functions, templates, JSONata.
fn expression_problems(state: &State) -> Vec<String> {
    let mut problems = Vec::new();
    let flow = state.flow();
    let mut check_path = |field: &str, path: &PathField| {
        if let PathField::Path(p) = path {
            if let Err(e) = jsonpath::check_path(p) {
                problems.push(format!("{field}: {e}"));
            }
        }
    };
    check_path("InputPath", &flow.input_path);
    check_path("OutputPath", &flow.output_path);
    if let State::Map(s) = state {
        check_path("ItemsPath", &s.items_path);
    }
    if let State::Wait(s) = state {
        if let WaitFor::TimestampPath(p) = &s.wait {
            check_path("TimestampPath", &PathField::Path(p.clone()));
        }
    }
    if let PathField::Path(p) = &flow.result_path {
        if let Err(e) = jsonpath::parse_reference(p) {
            problems.push(format!("ResultPath: {e}"));
        }
    }
    for (i, catcher) in state.catchers().iter().enumerate() {
        if let PathField::Path(p) = &catcher.result_path {
            if let Err(e) = jsonpath::parse_reference(p) {
                problems.push(format!("Catch[{i}].ResultPath: {e}"));
            }
        }
    }
    if let State::Fail(s) = state {
        for (field, p) in [("ErrorPath", &s.error_path), ("CausePath", &s.cause_path)] {
            if let Some(p) = p {
                if let Err(e) = template::check_expression(p) {
                    problems.push(format!("{field}: {e}"));
                }
            }
        }
    }
    for (field, amount) in amounts(state) {
        match amount {
            Amount::Path(p) => {
                if let Err(e) = jsonpath::check_path(p) {
                    problems.push(format!("{field}Path: {e}"));
                }
            }
            Amount::Jsonata(e) => {
                let mut found = Vec::new();
                jsonata::check_value(&Value::String(format!("{{% {e} %}}")), &mut found);
                problems.extend(found.into_iter().map(|p| format!("{field}: {p}")));
            }
            Amount::Fixed(_) => {}
        }
    }
    for (field, value) in expression_fields(state) {
        let mut found = Vec::new();
        match flow.language {
            QueryLanguage::JsonPath => template::check_template(value, &mut found),
            QueryLanguage::Jsonata => jsonata::check_value(value, &mut found),
        }
        problems.extend(found.into_iter().map(|p| format!("{field}: {p}")));
    }
    problems
}

/// The variables a state reads.
fn variables_read(state: &State) -> BTreeSet<String> {
    let mut out = Vec::new();
    let flow = state.flow();
    for (_, value) in expression_fields(state) {
        match flow.language {
            QueryLanguage::JsonPath => template::variables_read(value, &mut out),
            QueryLanguage::Jsonata => jsonata::variables_read(value, &mut out),
        }
    }
    for (_, amount) in amounts(state) {
        match amount {
            Amount::Path(p) => out.extend(jsonpath::variable_of(p).map(str::to_string)),
            Amount::Jsonata(e) => {
                jsonata::variables_read(&Value::String(format!("{{% {e} %}}")), &mut out)
            }
            Amount::Fixed(_) => {}
        }
    }
    let mut paths: Vec<&str> = [&flow.input_path, &flow.output_path]
        .into_iter()
        .filter_map(PathField::as_path)
        .collect();
    match state {
        State::Map(s) => paths.extend(s.items_path.as_path()),
        State::Wait(s) => {
            if let WaitFor::TimestampPath(p) = &s.wait {
                paths.push(p);
            }
        }
        State::Fail(s) => {
            for p in [&s.error_path, &s.cause_path].into_iter().flatten() {
                out.extend(template::expression_variables(p));
            }
        }
        State::Choice(s) => {
            fn walk<'c>(c: &'c Condition, paths: &mut Vec<&'c str>) {
                match c {
                    Condition::And(list) | Condition::Or(list) => {
                        list.iter().for_each(|c| walk(c, paths))
                    }
                    Condition::Not(c) => walk(c, paths),
                    Condition::Compare {
                        variable, operand, ..
                    } => {
                        paths.push(variable);
                        if let crate::definition::choice::Operand::Path(p) = operand {
                            paths.push(p);
                        }
                    }
                    Condition::Jsonata(_) => {}
                }
            }
            s.choices
                .iter()
                .for_each(|r| walk(&r.condition, &mut paths));
        }
        _ => {}
    }
    out.extend(
        paths
            .into_iter()
            .filter_map(jsonpath::variable_of)
            .map(str::to_string),
    );
    out.into_iter().collect()
}

/// The variables a state's `Assign` fields (state, catchers, choice rules) assign.
fn variables_assigned(state: &State) -> BTreeSet<String> {
    let flow = state.flow();
    let mut assigns: Vec<&Value> = flow.assign.iter().collect();
    assigns.extend(state.catchers().iter().filter_map(|c| c.assign.as_ref()));
    if let State::Choice(s) = state {
        assigns.extend(s.choices.iter().filter_map(|r| r.assign.as_ref()));
    }
    assigns
        .into_iter()
        .filter_map(Value::as_object)
        .flat_map(|o| o.keys())
        .map(|k| match flow.language {
            QueryLanguage::JsonPath => k.strip_suffix(".$").unwrap_or(k).to_string(),
            QueryLanguage::Jsonata => k.clone(),
        })
        .collect()
}
