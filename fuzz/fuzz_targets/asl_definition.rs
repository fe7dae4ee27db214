//! State machine definitions as a user edits them (statemachine/pipeline.asl.json and its
//! `${…}` substitutions): parsing and static validation.
//!
//! Properties: neither substitution, parsing nor validation panics or recurses without bound, and a
//! definition without placeholders substitutes to itself.
#![no_main]

use std::collections::BTreeMap;

use ferrotype_executor::{substitute, validate, StateMachine};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let substitutions: BTreeMap<String, String> = [
        ("ValidateFunctionArn", "arn:aws:lambda:eu-west-1:111122223333:function:validate"),
        ("RenderFunctionArn", "arn:aws:lambda:eu-west-1:111122223333:function:render-variant"),
        ("DetectFacesFunctionArn", "arn:aws:lambda:eu-west-1:111122223333:function:detect-faces"),
        ("RecordResultFunctionArn", "arn:aws:lambda:eu-west-1:111122223333:function:record-result"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let text = match substitute(text, &substitutions) {
        Ok(substituted) => {
            if !text.contains("${") {
                assert_eq!(substituted, text, "substitution changed a text without placeholders");
            }
            substituted
        }
        Err(err) => {
            let _ = err.to_string();
            return;
        }
    };
    match StateMachine::from_json(&text) {
        Ok(machine) => {
            for problem in validate(&machine) {
                let _ = problem.to_string();
            }
        }
        Err(err) => {
            let _ = err.to_string();
        }
    }
});
