//! JSONPath reads, reference paths, payload templates, intrinsic functions and Choice rules: the
//! expression languages inside a definition, evaluated against arbitrary state data.
//!
//! Input: an expression on the first line, a JSON document after it (used as the state's data, as a
//! payload template and as a Choice rule). Properties: nothing panics, recurses without bound or
//! allocates without bound; a reference path that parses can be written to an object.
#![no_main]

use ferrotype_executor::choice::{string_matches, ChoiceRule};
use ferrotype_executor::definition::PathField;
use ferrotype_executor::expr::{template, Env, Rng, Variables};
use ferrotype_executor::{intrinsics, paths};
use libfuzzer_sys::fuzz_target;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use serde_json::{json, Value};

static HOOK: Once = Once::new();

/// libfuzzer-sys's hook aborts on every panic, even one the executor catches on purpose (it wraps
/// serde_json_path's parser, which panics on some malformed escapes). Replace it with one that reports
/// the first panic only: a panic that escapes the executor still aborts, from libfuzzer-sys's own
/// catch_unwind around this target.
fn install_panic_hook() {
    HOOK.call_once(|| {
        let reported = AtomicBool::new(false);
        std::panic::set_hook(Box::new(move |info| {
            if !reported.swap(true, Ordering::Relaxed) {
                eprintln!("panic (reported once; fatal only if it escapes the executor): {info}");
            }
        }))
    });
}

fuzz_target!(|data: &[u8]| {
    install_panic_hook();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (expression, document) = text.split_once('\n').unwrap_or((text, "null"));
    let Ok(document) = serde_json::from_str::<Value>(document) else {
        // The expression alone is still worth evaluating, against an empty state.
        evaluate_expression(expression, &json!({}));
        return;
    };
    evaluate_expression(expression, &document);

    let context = json!({"Execution": {"Input": document.clone(), "Name": "fuzz"}, "Map": {"Item": {"Index": 0, "Value": 1}}});
    let (variables, rng) = (Variables::default(), Rng::seeded(0));
    let env = Env { context: &context, variables: &variables, rng: &rng };
    let mut problems = Vec::new();
    template::check_template(&document, &mut problems);
    let _ = template::evaluate_template(&document, &document, &env);
    if let Ok(rule) = ChoiceRule::parse_top(&document) {
        let _ = rule.condition.evaluate(&document, &env);
    }
    if let Value::String(pattern) = &document {
        let _ = string_matches(expression, pattern);
    }
});

fn evaluate_expression(expression: &str, document: &Value) {
    let context = json!({"State": {"Name": "fuzz"}});
    let (variables, rng) = (Variables::default(), Rng::seeded(0));
    let context = Env { context: &context, variables: &variables, rng: &rng };
    let _ = paths::check_path(expression);
    let _ = paths::try_read(expression, document, &context);
    if paths::parse_reference(expression).is_ok() {
        let written = paths::apply_result_path(&PathField::Path(expression.to_owned()), &json!({}), json!(1));
        if let Ok(output) = written {
            // Reading back what was written, where the path is also a JSONPath, finds it.
            if let Ok(Some(value)) = paths::try_read(expression, &output, &context) {
                assert_eq!(value, json!(1), "wrote 1 at {expression:?} and read back {value}");
            }
        }
    }
    if intrinsics::parse(expression).is_ok() {
        let _ = intrinsics::evaluate(expression, document, &context);
    }
}
