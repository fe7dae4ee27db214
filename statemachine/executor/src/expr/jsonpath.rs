//! JSONPath reads and reference paths (ResultPath) with AWS Step Functions semantics. A path reads
//! the state's data (`$…`), the context object (`$$…`) or a workflow variable (`$name…`).

use serde_json::{Map, Value};
use serde_json_path::JsonPath;

use super::Env;
use crate::error::StateError;

/// How a path field was given: absent (defaults to `$`), explicitly `null` (discard), or a path.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub enum PathField {
    #[default]
    Default,
    Null,
    Path(String),
}

impl<'de> serde::Deserialize<'de> for PathField {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Option::<String>::deserialize(deserializer)? {
            None => Ok(PathField::Null),
            Some(path) => Ok(PathField::Path(path)),
        }
    }
}

impl PathField {
    pub fn as_path(&self) -> Option<&str> {
        match self {
            PathField::Path(p) => Some(p),
            _ => None,
        }
    }
}

/// A path is "definite" (one value) unless it has wildcards, descendants, filters, slices or unions;
/// AWS (Jayway JsonPath) returns a list for indefinite paths.
fn is_definite(path: &str) -> bool {
    let mut in_quote: Option<char> = None;
    let mut depth = 0;
    let chars: Vec<char> = path.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if let Some(q) = in_quote {
            if c == '\\' {
                continue;
            }
            if c == q && (i == 0 || chars[i - 1] != '\\') {
                in_quote = None;
            }
            continue;
        }
        match c {
            '\'' | '"' => in_quote = Some(c),
            '[' => depth += 1,
            ']' => depth -= 1,
            '*' | '?' => return false,
            ',' | ':' if depth > 0 => return false,
            '.' if chars.get(i + 1) == Some(&'.') => return false,
            _ => {}
        }
    }
    true
}

/// Most filter expressions (`[?…]`) accepted in one path. serde_json_path's parser backtracks
/// exponentially on nested, unclosed filters (fuzzing found a 200-byte path that did not finish);
/// real definitions use one or two.
pub const MAX_FILTER_DEPTH: usize = 4;

/// Deepest nesting of brackets and parentheses accepted in a JSONPath or an intrinsic function call:
/// both parsers recurse per level, and fuzzing overflowed the stack with a few thousand levels. Real
/// definitions nest a handful.
pub const MAX_NESTING: usize = 32;

/// The deepest nesting of `(` and `[` in `text`, outside quoted strings.
pub(crate) fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some(_) if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None => match c {
                '\'' | '"' => quote = Some(c),
                '(' | '[' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' | ']' => depth = depth.saturating_sub(1),
                _ => {}
            },
        }
    }
    deepest
}

fn compile(path: &str) -> Result<JsonPath, String> {
    if nesting_depth(path) > MAX_NESTING {
        return Err(format!(
            "invalid JSONPath {path:?}: nested deeper than {MAX_NESTING} brackets or parentheses"
        ));
    }
    let filters = path.matches("[?").count();
    if filters > MAX_FILTER_DEPTH {
        return Err(format!(
            "invalid JSONPath {path:?}: {filters} filter expressions (at most {MAX_FILTER_DEPTH} accepted)"
        ));
    }
    // serde_json_path 0.7 panics (`unreachable!`) on some malformed escapes, e.g. `$['][0\u`: a bad
    // path must stay an error of the state, never bring the executor down.
    match std::panic::catch_unwind(|| JsonPath::parse(path)) {
        Ok(parsed) => parsed.map_err(|e| format!("invalid JSONPath {path:?}: {e}")),
        Err(_) => Err(format!(
            "invalid JSONPath {path:?}: the parser gave up on it"
        )),
    }
}

/// What a path reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathRoot<'p> {
    Data,
    Context,
    Variable(&'p str),
}

/// Split a path into what it reads and a `$…` path into that value.
pub fn split_root(path: &str) -> Result<(PathRoot<'_>, String), String> {
    let Some(rest) = path.strip_prefix('$') else {
        return Err(format!(
            "invalid JSONPath {path:?}: a path starts with \"$\""
        ));
    };
    if let Some(rest) = rest.strip_prefix('$') {
        return Ok((PathRoot::Context, format!("${rest}")));
    }
    let name_len = rest
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if name_len > 0 {
        let (name, tail) = rest.split_at(name_len);
        // `$states` (input, result, errorOutput, context) is readable in JSONPath `Assign` too.
        if name != "states" && !super::is_variable_name(name) {
            return Err(format!(
                "invalid JSONPath {path:?}: {name:?} is not a variable name"
            ));
        }
        return Ok((PathRoot::Variable(name), format!("${tail}")));
    }
    Ok((PathRoot::Data, path.to_string()))
}

/// Check that a string is a JSONPath this executor can evaluate (`$…`, `$$…` or `$variable…`).
pub fn check_path(path: &str) -> Result<(), String> {
    let (_, path) = split_root(path)?;
    compile(&path).map(|_| ())
}

/// The variable a path reads, if it reads one (for `validate`).
pub fn variable_of(path: &str) -> Option<&str> {
    match split_root(path) {
        Ok((PathRoot::Variable(name), _)) => Some(name),
        _ => None,
    }
}

/// Read a path against the state's data, the context object (`$$…`) or a variable (`$name…`).
/// `None` when a definite path selects nothing.
pub fn try_read(path: &str, data: &Value, env: &Env) -> Result<Option<Value>, String> {
    let (root, path) = split_root(path)?;
    let target = match root {
        PathRoot::Data => data,
        PathRoot::Context => env.context,
        PathRoot::Variable(name) => env
            .variables
            .get(name)
            .ok_or_else(|| format!("The variable '${name}' is not defined"))?,
    };
    let compiled = compile(&path)?;
    let nodes = compiled.query(target).all();
    if is_definite(&path) {
        Ok(nodes.first().map(|v| (*v).clone()))
    } else {
        Ok(Some(Value::Array(nodes.into_iter().cloned().collect())))
    }
}

/// Read a path that must select a value (`States.Runtime` otherwise, as AWS reports bad paths).
pub fn read(path: &str, data: &Value, env: &Env) -> Result<Value, StateError> {
    match try_read(path, data, env) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(StateError::runtime(format!(
            "Invalid path '{path}' : No results for path: {path} in input '{}'",
            abbreviate(data)
        ))),
        Err(e) => Err(StateError::runtime(e)),
    }
}

pub(crate) fn abbreviate(value: &Value) -> String {
    let text = value.to_string();
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text
    }
}

/// Apply `InputPath`/`OutputPath`: absent keeps everything, `null` gives `{}`.
pub fn apply_filter(field: &PathField, data: &Value, env: &Env) -> Result<Value, StateError> {
    match field {
        PathField::Default => Ok(data.clone()),
        PathField::Null => Ok(Value::Object(Map::new())),
        PathField::Path(p) => read(p, data, env),
    }
}

/// One step of a reference path.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    Field(String),
    Index(usize),
}

/// Parse a reference path (`$`, `$.a.b`, `$['a']`, `$.a[0]`): single-valued, no wildcards.
pub fn parse_reference(path: &str) -> Result<Vec<Step>, String> {
    let bad = |why: &str| format!("invalid reference path {path:?}: {why}");
    let chars: Vec<char> = path.chars().collect();
    if chars.first() != Some(&'$') || chars.get(1) == Some(&'$') {
        return Err(bad(
            "it must start with \"$\" and cannot use the context object",
        ));
    }
    let mut steps = Vec::new();
    let mut i = 1;
    while i < chars.len() {
        match chars[i] {
            '.' => {
                let start = i + 1;
                let mut end = start;
                while end < chars.len() && chars[end] != '.' && chars[end] != '[' {
                    end += 1;
                }
                let name: String = chars[start..end].iter().collect();
                if name.is_empty() || name == "*" {
                    return Err(bad("empty field name or wildcard"));
                }
                steps.push(Step::Field(name));
                i = end;
            }
            '[' => {
                let close = chars[i..]
                    .iter()
                    .position(|&c| c == ']')
                    .map(|p| p + i)
                    .ok_or_else(|| bad("unclosed \"[\""))?;
                let inner: String = chars[i + 1..close].iter().collect();
                let inner = inner.trim();
                if let Some(q) = inner.chars().next().filter(|c| *c == '\'' || *c == '"') {
                    if inner.len() < 2 || !inner.ends_with(q) {
                        return Err(bad("unterminated quoted field name"));
                    }
                    let name = &inner[1..inner.len() - 1];
                    // `['a','b']` is a union of two names, not one name with quotes and a comma in it.
                    if name.contains(q) {
                        return Err(bad("one quoted field name per bracket"));
                    }
                    steps.push(Step::Field(name.to_string()));
                } else {
                    let index = inner.parse::<usize>().map_err(|_| {
                        bad("only field names and non-negative indexes are allowed")
                    })?;
                    steps.push(Step::Index(index));
                }
                i = close + 1;
            }
            _ => return Err(bad("unexpected character")),
        }
    }
    Ok(steps)
}

/// Apply `ResultPath`: place `result` into `input` at the reference path, creating missing objects.
pub fn apply_result_path(
    field: &PathField,
    input: &Value,
    result: Value,
) -> Result<Value, StateError> {
    let path = match field {
        PathField::Default => return Ok(result),
        PathField::Null => return Ok(input.clone()),
        PathField::Path(p) => p,
    };
    let steps = parse_reference(path).map_err(StateError::runtime)?;
    if steps.is_empty() {
        return Ok(result);
    }
    let mut output = input.clone();
    let fail = || {
        StateError::runtime(format!(
            "Unable to apply ReferencePath {path} to input '{}'",
            abbreviate(input)
        ))
    };
    let mut cursor = &mut output;
    for (n, step) in steps.iter().enumerate() {
        let last = n + 1 == steps.len();
        cursor = match step {
            Step::Field(name) => {
                let object = cursor.as_object_mut().ok_or_else(fail)?;
                if last {
                    object.insert(name.clone(), result);
                    return Ok(output);
                }
                object
                    .entry(name.clone())
                    .or_insert_with(|| Value::Object(Map::new()))
            }
            Step::Index(index) => {
                let slot = cursor
                    .as_array_mut()
                    .and_then(|a| a.get_mut(*index))
                    .ok_or_else(fail)?;
                if last {
                    *slot = result;
                    return Ok(output);
                }
                slot
            }
        };
    }
    unreachable!("the loop returns at the last step")
}

#[cfg(test)]
mod tests {

    /// Found by fuzz/asl_paths (artifacts/asl_paths/timeout-e22f46f6…): 25 nested, unclosed filters.
    #[test]
    fn deeply_nested_filters_are_refused_before_parsing() {
        let path = "$.iteJs[?$.item.itejss[?$.iitems[?$.item.itejs[?$.ems[?$..ems[?$.i..ems[?$.items[?$.item.it[?$.ems[?$.items[?$.item.itejss[?$.iitems[?$.item.itejs[?$.ems[?$..ems[?$.i..ems[?$.items[?$.item.itejss[?$.(";
        let error = check_path(path).unwrap_err();
        assert!(error.contains("filter expressions"), "{error}");
        // At the limit, the parser still answers (here: unclosed filters are invalid).
        let at_limit = "$.a[?$.b[?$.c[?$.d[?$.(";
        assert!(check_path(at_limit)
            .unwrap_err()
            .contains("invalid JSONPath"));
        // Ordinary filters still work.
        check_path("$.items[?(@.size > 10)].name").unwrap();
    }

    /// Found by fuzz/asl_paths (a stack overflow, no artifact written): thousands of nested parentheses
    /// in a filter, or of nested intrinsic calls, overflowed the parsers' recursion.
    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        let parens = format!("$[?({}@.a{})]", "(".repeat(3000), ")".repeat(3000));
        assert!(check_path(&parens).unwrap_err().contains("nested deeper"));
        let calls = format!("{}1{}", "States.Array(".repeat(20_000), ")".repeat(20_000));
        assert!(crate::expr::intrinsics::parse(&calls)
            .unwrap_err()
            .contains("nested deeper"));
        // Quoted brackets do not count, and ordinary nesting parses.
        assert_eq!(nesting_depth("$['(((('][0]"), 1);
        check_path("$.a[?(@.b && (@.c || (@.d > 1)))]").unwrap();
        crate::expr::intrinsics::parse(
            "States.Array(States.Array(1, 2), States.StringToJson('[[1]]'))",
        )
        .unwrap();
    }

    /// Found by fuzz/asl_paths (artifacts/asl_paths/crash-95cfa6bb…): the JSONPath parser panicked.
    #[test]
    fn a_path_the_parser_panics_on_is_an_invalid_path() {
        let error = check_path("$['][0\\u").unwrap_err();
        assert!(error.contains("invalid JSONPath"), "{error}");
    }

    /// Found by fuzz/asl_paths (artifacts/asl_paths/crash-6566376f…): a union of two quoted names was
    /// taken for one name containing quotes, so ResultPath wrote where the same path does not read.
    #[test]
    fn a_union_is_not_a_reference_path() {
        let error = parse_reference("$.result['~2}','\"II$\",,']").unwrap_err();
        assert!(
            error.contains("one quoted field name per bracket"),
            "{error}"
        );
        assert!(parse_reference("$.result['a','b']").is_err());
        assert_eq!(
            parse_reference("$.result['a b']").unwrap(),
            vec![Step::Field("result".into()), Step::Field("a b".into())]
        );
    }
    use super::*;
    use crate::expr::{Rng, Variables};
    use serde_json::json;

    fn read_in(path: &str, data: &Value, ctx: &Value) -> Result<Value, StateError> {
        let variables = Variables::new(
            Map::new(),
            Map::from_iter([("v".to_string(), json!({"w": [5]}))]),
        );
        let rng = Rng::seeded(0);
        read(
            path,
            data,
            &Env {
                context: ctx,
                variables: &variables,
                rng: &rng,
            },
        )
    }

    #[test]
    fn definite_paths_read_single_values_and_indefinite_ones_lists() {
        let data = json!({"a": [{"x": 1}, {"x": 2}], "b": {"c d": 3}});
        let ctx = json!({"Execution": {"Name": "n"}});
        assert_eq!(read_in("$.a[0].x", &data, &ctx).unwrap(), json!(1));
        assert_eq!(read_in("$['b']['c d']", &data, &ctx).unwrap(), json!(3));
        assert_eq!(read_in("$.a[*].x", &data, &ctx).unwrap(), json!([1, 2]));
        assert_eq!(
            read_in("$.a[?(@.x > 1)]", &data, &ctx).unwrap(),
            json!([{"x": 2}])
        );
        assert_eq!(
            read_in("$$.Execution.Name", &data, &ctx).unwrap(),
            json!("n")
        );
        assert_eq!(read_in("$v.w[0]", &data, &ctx).unwrap(), json!(5));
        assert_eq!(read_in("$v", &data, &ctx).unwrap(), json!({"w": [5]}));
        assert_eq!(
            read_in("$nothing", &data, &ctx).unwrap_err().error,
            "States.Runtime"
        );
        assert_eq!(
            read_in("$.missing", &data, &ctx).unwrap_err().error,
            "States.Runtime"
        );
    }

    #[test]
    fn result_path_creates_nested_objects_and_replaces_values() {
        let input = json!({"a": {"keep": true}, "list": [1, 2]});
        let set = |p: &str, r: Value| apply_result_path(&PathField::Path(p.into()), &input, r);
        assert_eq!(
            set("$.a.b.c", json!(5)).unwrap(),
            json!({"a": {"keep": true, "b": {"c": 5}}, "list": [1, 2]})
        );
        assert_eq!(
            set("$.list[1]", json!("x")).unwrap(),
            json!({"a": {"keep": true}, "list": [1, "x"]})
        );
        assert_eq!(set("$", json!(7)).unwrap(), json!(7));
        assert_eq!(
            set("$.list.x", json!(7)).unwrap_err().error,
            "States.Runtime"
        );
        assert_eq!(
            set("$.list[5]", json!(7)).unwrap_err().error,
            "States.Runtime"
        );
        assert_eq!(
            apply_result_path(&PathField::Null, &input, json!(1)).unwrap(),
            input
        );
        assert!(parse_reference("$.a[*]").is_err());
        assert!(parse_reference("$$.a").is_err());
    }

    #[test]
    fn input_and_output_path_null_give_an_empty_object() {
        let (variables, rng) = (Variables::default(), Rng::seeded(0));
        let env = Env {
            context: &json!({}),
            variables: &variables,
            rng: &rng,
        };
        assert_eq!(
            apply_filter(&PathField::Null, &json!({"a": 1}), &env).unwrap(),
            json!({})
        );
        assert_eq!(
            apply_filter(&PathField::Default, &json!({"a": 1}), &env).unwrap(),
            json!({"a": 1})
        );
    }
}
