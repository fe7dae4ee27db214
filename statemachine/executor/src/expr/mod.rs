//! Expression evaluation behind one interface, for both query languages: JSONPath (paths, payload
//! templates, intrinsic functions) and JSONata. Everything an expression may see besides the state's
//! data comes in an [`Env`]: the context object, the workflow variables and the execution's random source.

pub mod intrinsics;
pub mod jsonata;
pub mod jsonpath;
pub mod template;

use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng};
use serde_json::{Map, Value};

use crate::error::{names, StateError};

/// The query language of a state (`QueryLanguage`, inherited from the top level).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum QueryLanguage {
    #[default]
    JsonPath,
    Jsonata,
}

/// The random source of one execution. Seeded, it makes a whole run reproducible: retry jitter,
/// `$random`, `$uuid`, `States.UUID`, `States.MathRandom`, task tokens and child execution names.
#[derive(Clone, Debug)]
pub struct Rng(Arc<Mutex<StdRng>>);

impl Rng {
    pub fn seeded(seed: u64) -> Self {
        Self(Arc::new(Mutex::new(StdRng::seed_from_u64(seed))))
    }

    pub fn from_entropy() -> Self {
        Self(Arc::new(Mutex::new(StdRng::from_entropy())))
    }

    fn with<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.0.lock().expect("rng lock is never poisoned"))
    }

    /// A number in [0, 1).
    pub fn unit(&self) -> f64 {
        self.with(|r| r.gen::<f64>())
    }

    /// An integer in [start, end).
    pub fn range(&self, start: i64, end: i64) -> i64 {
        self.with(|r| r.gen_range(start..end))
    }

    /// A version-4 UUID.
    pub fn uuid(&self) -> String {
        let bytes: [u8; 16] = self.with(|r| r.gen());
        uuid::Builder::from_random_bytes(bytes)
            .into_uuid()
            .to_string()
    }
}

/// The largest value one variable may hold, and all of one `Assign` together (UTF-8 bytes).
pub const VARIABLE_LIMIT_BYTES: usize = 262_144;
/// The most all variables of an execution may hold together.
pub const VARIABLES_TOTAL_LIMIT_BYTES: usize = 10 * 1024 * 1024;

/// The workflow variables a scope sees: those of the enclosing scopes (read-only here, as AWS
/// forbids assigning them from a Map iteration or Parallel branch) and the scope's own.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Variables {
    outer: Arc<Map<String, Value>>,
    local: Map<String, Value>,
}

impl Variables {
    /// A top-level scope, or one restored from a checkpoint.
    pub fn new(outer: Map<String, Value>, local: Map<String, Value>) -> Self {
        Self {
            outer: Arc::new(outer),
            local,
        }
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.local.get(name).or_else(|| self.outer.get(name))
    }

    /// The scope of a Map iteration or Parallel branch started from this one.
    pub fn nested(&self) -> Self {
        let mut outer = (*self.outer).clone();
        outer.extend(self.local.iter().map(|(k, v)| (k.clone(), v.clone())));
        Self {
            outer: Arc::new(outer),
            local: Map::new(),
        }
    }

    /// Everything visible (outer and own), e.g. for JSONata bindings.
    pub fn visible(&self) -> impl Iterator<Item = (&String, &Value)> {
        self.outer
            .iter()
            .filter(|(k, _)| !self.local.contains_key(*k))
            .chain(self.local.iter())
    }

    /// Make `$states` readable (JSONPath `Assign`); never kept in a checkpoint's use of `local`.
    pub(crate) fn set_states(&mut self, states: Value) {
        self.local.insert("states".into(), states);
    }

    /// This scope's own variables (what a checkpoint keeps).
    pub fn local(&self) -> &Map<String, Value> {
        &self.local
    }

    /// The enclosing scopes' variables.
    pub fn outer(&self) -> &Map<String, Value> {
        &self.outer
    }

    /// Apply one state's `Assign` (all values were evaluated before any is stored), with AWS's limits.
    pub fn assign(&mut self, values: Map<String, Value>) -> Result<(), StateError> {
        let limit = |what: String| StateError::new(names::DATA_LIMIT_EXCEEDED, what);
        let mut assigned = 0;
        for (name, value) in &values {
            if self.outer.contains_key(name) && !self.local.contains_key(name) {
                return Err(StateError::runtime(format!(
                    "The variable '{name}' belongs to an outer scope and cannot be assigned here."
                )));
            }
            let size = size_of(value);
            if size > VARIABLE_LIMIT_BYTES {
                return Err(limit(format!("The variable '{name}' has a size of {size} bytes, more than the limit of {VARIABLE_LIMIT_BYTES}.")));
            }
            assigned += size;
        }
        if assigned > VARIABLE_LIMIT_BYTES {
            return Err(limit(format!("The Assign field assigns {assigned} bytes, more than the limit of {VARIABLE_LIMIT_BYTES}.")));
        }
        self.local.extend(values);
        let total: usize = self.visible().map(|(_, v)| size_of(v)).sum();
        if total > VARIABLES_TOTAL_LIMIT_BYTES {
            return Err(limit(format!("The execution's variables hold {total} bytes, more than the limit of {VARIABLES_TOTAL_LIMIT_BYTES}.")));
        }
        Ok(())
    }
}

fn size_of(value: &Value) -> usize {
    serde_json::to_string(value).map(|t| t.len()).unwrap_or(0)
}

/// What an expression may see besides the state's data.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    /// The context object (`$$` in JSONPath, `$states.context` in JSONata).
    pub context: &'a Value,
    pub variables: &'a Variables,
    pub rng: &'a Rng,
}

/// Whether a variable name is one AWS accepts: a letter or `_`, then letters, digits and `_`.
pub fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_alphabetic() || c == '_')
        && chars.all(|c| c.is_alphanumeric() || c == '_')
        && name.chars().count() <= 80
        && name != "states"
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_seed_reproduces_every_random_value() {
        let (a, b) = (Rng::seeded(7), Rng::seeded(7));
        assert_eq!(
            (a.uuid(), a.unit(), a.range(0, 1000)),
            (b.uuid(), b.unit(), b.range(0, 1000))
        );
        assert_ne!(Rng::seeded(8).uuid(), Rng::seeded(7).uuid());
    }

    #[test]
    fn nested_scopes_read_outer_variables_but_cannot_assign_them() {
        let mut top = Variables::default();
        top.assign(Map::from_iter([("x".to_string(), json!(1))]))
            .unwrap();
        let mut inner = top.nested();
        assert_eq!(inner.get("x"), Some(&json!(1)));
        let error = inner
            .assign(Map::from_iter([("x".to_string(), json!(2))]))
            .unwrap_err();
        assert_eq!(error.error, names::RUNTIME);
        inner
            .assign(Map::from_iter([("y".to_string(), json!(2))]))
            .unwrap();
        assert_eq!(top.get("y"), None);
        let big = json!("x".repeat(VARIABLE_LIMIT_BYTES));
        let error = top
            .assign(Map::from_iter([("big".to_string(), big)]))
            .unwrap_err();
        assert_eq!(error.error, names::DATA_LIMIT_EXCEEDED);
    }
}
