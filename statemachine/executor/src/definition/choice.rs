//! Choice rules: parsing, and evaluation of JSONPath rules, with AWS semantics. A JSONata rule is one
//! `Condition` expression, evaluated by the engine like any other JSONata field.

use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::error::StateError;
use crate::expr::{jsonpath, Env, QueryLanguage};

#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: String,
    /// Variables this rule assigns when it matches.
    pub assign: Option<Value>,
    /// JSONata: the state's output when this rule matches.
    pub output: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// A JSONata `Condition` (`{% … %}`, or a literal boolean).
    Jsonata(Value),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        variable: String,
        operator: Operator,
        operand: Operand,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Literal(Value),
    Path(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals(Kind),
    LessThan(Kind),
    GreaterThan(Kind),
    LessThanEquals(Kind),
    GreaterThanEquals(Kind),
    StringMatches,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

fn parse_operator(key: &str) -> Option<(Operator, bool)> {
    let (base, is_path) = match key.strip_suffix("Path") {
        Some(b) if !b.is_empty() => (b, true),
        _ => (key, false),
    };
    let kind_of = |prefix: &str| match prefix {
        "String" => Some(Kind::String),
        "Numeric" => Some(Kind::Numeric),
        "Boolean" => Some(Kind::Boolean),
        "Timestamp" => Some(Kind::Timestamp),
        _ => None,
    };
    let simple = match base {
        "StringMatches" if !is_path => Some(Operator::StringMatches),
        "IsNull" if !is_path => Some(Operator::IsNull),
        "IsPresent" if !is_path => Some(Operator::IsPresent),
        "IsNumeric" if !is_path => Some(Operator::IsNumeric),
        "IsString" if !is_path => Some(Operator::IsString),
        "IsBoolean" if !is_path => Some(Operator::IsBoolean),
        "IsTimestamp" if !is_path => Some(Operator::IsTimestamp),
        _ => None,
    };
    if let Some(op) = simple {
        return Some((op, false));
    }
    for (suffix, make) in [
        (
            "GreaterThanEquals",
            Operator::GreaterThanEquals as fn(Kind) -> Operator,
        ),
        ("LessThanEquals", Operator::LessThanEquals),
        ("GreaterThan", Operator::GreaterThan),
        ("LessThan", Operator::LessThan),
        ("Equals", Operator::Equals),
    ] {
        if let Some(prefix) = base.strip_suffix(suffix) {
            let kind = kind_of(prefix)?;
            if kind == Kind::Boolean && suffix != "Equals" {
                return None;
            }
            return Some((make(kind), is_path));
        }
    }
    None
}

impl ChoiceRule {
    /// Parse a top-level JSONPath rule (which carries `Next`).
    pub fn parse_top(value: &Value) -> Result<Self, String> {
        Self::parse(value, QueryLanguage::JsonPath)
    }

    /// Parse a top-level rule of a state in `language`.
    pub fn parse(value: &Value, language: QueryLanguage) -> Result<Self, String> {
        let object = value.as_object().ok_or("a choice rule must be an object")?;
        let next = object
            .get("Next")
            .and_then(Value::as_str)
            .ok_or("a top-level choice rule needs a string \"Next\"")?
            .to_string();
        let mut rest: Map<String, Value> = object.clone();
        rest.remove("Next");
        rest.remove("Comment");
        let assign = rest.remove("Assign");
        let output = rest.remove("Output");
        let condition = match language {
            QueryLanguage::Jsonata => {
                if let Some(field) = rest.keys().find(|k| k.as_str() != "Condition") {
                    return Err(format!("field \"{field}\" is not allowed in a JSONata choice rule (use \"Condition\")"));
                }
                match rest.remove("Condition") {
                    Some(c @ (Value::String(_) | Value::Bool(_))) => Condition::Jsonata(c),
                    Some(_) => {
                        return Err(
                            "\"Condition\" must be a JSONata expression string or a boolean".into(),
                        )
                    }
                    None => return Err("a JSONata choice rule needs \"Condition\"".into()),
                }
            }
            QueryLanguage::JsonPath => {
                if output.is_some() {
                    return Err("field \"Output\" is only allowed in JSONata states".into());
                }
                if rest.contains_key("Condition") {
                    return Err("field \"Condition\" is only allowed in JSONata states".into());
                }
                parse_condition(&Value::Object(rest))?
            }
        };
        Ok(Self {
            condition,
            next,
            assign,
            output,
        })
    }
}

fn parse_condition(value: &Value) -> Result<Condition, String> {
    let object = value.as_object().ok_or("a choice rule must be an object")?;
    if object.contains_key("Next") {
        return Err("\"Next\" is only allowed on top-level choice rules".into());
    }
    let mut object = object.clone();
    object.remove("Comment");
    for (key, make) in [
        ("And", Condition::And as fn(Vec<Condition>) -> Condition),
        ("Or", Condition::Or),
    ] {
        if let Some(list) = object.get(key) {
            if object.len() != 1 {
                return Err(format!("\"{key}\" cannot be combined with other fields"));
            }
            let list = list
                .as_array()
                .filter(|l| !l.is_empty())
                .ok_or(format!("\"{key}\" needs a non-empty array"))?;
            return Ok(make(
                list.iter().map(parse_condition).collect::<Result<_, _>>()?,
            ));
        }
    }
    if let Some(inner) = object.get("Not") {
        if object.len() != 1 {
            return Err("\"Not\" cannot be combined with other fields".into());
        }
        return Ok(Condition::Not(Box::new(parse_condition(inner)?)));
    }
    let variable = object
        .get("Variable")
        .and_then(Value::as_str)
        .ok_or("a comparison needs a string \"Variable\"")?
        .to_string();
    jsonpath::check_path(&variable)?;
    let operators: Vec<(&String, &Value)> = object
        .iter()
        .filter(|(k, _)| k.as_str() != "Variable")
        .collect();
    let [(key, operand)] = operators.as_slice() else {
        return Err(format!(
            "a comparison needs exactly one operator, found {}",
            operators.len()
        ));
    };
    let (operator, is_path) =
        parse_operator(key).ok_or(format!("unknown comparison operator \"{key}\""))?;
    let operand = if is_path {
        let path = operand
            .as_str()
            .ok_or(format!("\"{key}\" needs a path string"))?;
        jsonpath::check_path(path)?;
        Operand::Path(path.to_string())
    } else {
        let ok = match operator {
            Operator::StringMatches => operand.is_string(),
            Operator::Equals(k)
            | Operator::LessThan(k)
            | Operator::GreaterThan(k)
            | Operator::LessThanEquals(k)
            | Operator::GreaterThanEquals(k) => match k {
                Kind::String => operand.is_string(),
                Kind::Numeric => operand.is_number(),
                Kind::Boolean => operand.is_boolean(),
                Kind::Timestamp => operand.as_str().and_then(parse_timestamp).is_some(),
            },
            _ => operand.is_boolean(),
        };
        if !ok {
            return Err(format!(
                "\"{key}\" has an operand of the wrong type: {operand}"
            ));
        }
        Operand::Literal((*operand).clone())
    };
    Ok(Condition::Compare {
        variable,
        operator,
        operand,
    })
}

/// Parse an RFC 3339 timestamp as AWS accepts it (uppercase `T`, offset or `Z`).
pub fn parse_timestamp(text: &str) -> Option<OffsetDateTime> {
    if !text.contains('T') {
        return None;
    }
    OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
}

/// AWS `StringMatches`: `*` matches any run of characters; `\*` and `\\` are literal.
pub fn string_matches(text: &str, pattern: &str) -> bool {
    enum Token {
        Char(char),
        Star,
    }
    let mut tokens = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => tokens.push(Token::Char(chars.next().unwrap_or('\\'))),
            '*' => tokens.push(Token::Star),
            c => tokens.push(Token::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    // Classic wildcard matching with backtracking to the last star: linear memory, no recursion.
    let (mut t, mut p) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|tok| matches!(tok, Token::Star))
}

fn compare_numbers(a: &serde_json::Number, b: &serde_json::Number) -> Option<std::cmp::Ordering> {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        _ => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

impl Condition {
    /// Evaluate against the (InputPath-filtered) input. A missing `Variable` is a `States.Runtime`
    /// error, except for `IsPresent`; a value of the wrong type simply does not match.
    pub fn evaluate(&self, input: &Value, env: &Env) -> Result<bool, StateError> {
        match self {
            Condition::Jsonata(_) => Err(StateError::runtime(
                "a JSONata Condition is evaluated by the engine, not as a JSONPath rule",
            )),
            Condition::And(list) => {
                for c in list {
                    if !c.evaluate(input, env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Condition::Or(list) => {
                for c in list {
                    if c.evaluate(input, env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Condition::Not(inner) => Ok(!inner.evaluate(input, env)?),
            Condition::Compare {
                variable,
                operator,
                operand,
            } => {
                let value =
                    jsonpath::try_read(variable, input, env).map_err(StateError::runtime)?;
                if *operator == Operator::IsPresent {
                    return Ok(value.is_some() == (operand == &Operand::Literal(Value::Bool(true))));
                }
                let value = value.ok_or_else(|| {
                    StateError::runtime(format!("Invalid path '{variable}': The choice state's condition path references an invalid value."))
                })?;
                let expected = match operand {
                    Operand::Literal(v) => v.clone(),
                    Operand::Path(p) => jsonpath::read(p, input, env)?,
                };
                let flag = expected == Value::Bool(true);
                Ok(match operator {
                    Operator::IsNull => value.is_null() == flag,
                    Operator::IsNumeric => value.is_number() == flag,
                    Operator::IsString => value.is_string() == flag,
                    Operator::IsBoolean => value.is_boolean() == flag,
                    Operator::IsTimestamp => {
                        value.as_str().and_then(parse_timestamp).is_some() == flag
                    }
                    Operator::IsPresent => unreachable!("handled above"),
                    Operator::StringMatches => match (value.as_str(), expected.as_str()) {
                        (Some(text), Some(pattern)) => string_matches(text, pattern),
                        _ => false,
                    },
                    Operator::Equals(kind)
                    | Operator::LessThan(kind)
                    | Operator::GreaterThan(kind)
                    | Operator::LessThanEquals(kind)
                    | Operator::GreaterThanEquals(kind) => {
                        let ordering = match kind {
                            Kind::String => match (value.as_str(), expected.as_str()) {
                                (Some(a), Some(b)) => Some(a.cmp(b)),
                                _ => None,
                            },
                            Kind::Numeric => match (&value, &expected) {
                                (Value::Number(a), Value::Number(b)) => compare_numbers(a, b),
                                _ => None,
                            },
                            Kind::Boolean => match (value.as_bool(), expected.as_bool()) {
                                (Some(a), Some(b)) => Some(a.cmp(&b)),
                                _ => None,
                            },
                            Kind::Timestamp => {
                                match (
                                    value.as_str().and_then(parse_timestamp),
                                    expected.as_str().and_then(parse_timestamp),
                                ) {
                                    (Some(a), Some(b)) => Some(a.cmp(&b)),
                                    _ => None,
                                }
                            }
                        };
                        use std::cmp::Ordering::*;
                        match (operator, ordering) {
                            (_, None) => false,
                            (Operator::Equals(_), Some(o)) => o == Equal,
                            (Operator::LessThan(_), Some(o)) => o == Less,
                            (Operator::GreaterThan(_), Some(o)) => o == Greater,
                            (Operator::LessThanEquals(_), Some(o)) => o != Greater,
                            (Operator::GreaterThanEquals(_), Some(o)) => o != Less,
                            _ => false,
                        }
                    }
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(rule: Value, input: Value) -> Result<bool, StateError> {
        let mut rule = rule;
        rule["Next"] = json!("X");
        let (variables, rng) = (
            crate::expr::Variables::default(),
            crate::expr::Rng::seeded(0),
        );
        let env = Env {
            context: &json!({}),
            variables: &variables,
            rng: &rng,
        };
        ChoiceRule::parse_top(&rule)
            .unwrap()
            .condition
            .evaluate(&input, &env)
    }

    #[test]
    fn comparison_operators_follow_aws() {
        let input = json!({"s": "abc", "n": 5, "f": 2.5, "b": true, "t": "2024-01-02T00:00:00Z", "other": 5, "nul": null});
        let cases = [
            (json!({"Variable": "$.s", "StringEquals": "abc"}), true),
            (json!({"Variable": "$.s", "StringLessThan": "abd"}), true),
            (
                json!({"Variable": "$.s", "StringGreaterThanEquals": "abc"}),
                true,
            ),
            (json!({"Variable": "$.s", "StringMatches": "a*c"}), true),
            (json!({"Variable": "$.s", "StringMatches": "a\\*c"}), false),
            (json!({"Variable": "$.n", "NumericEquals": 5}), true),
            (json!({"Variable": "$.n", "NumericEquals": 5.0}), true),
            (json!({"Variable": "$.f", "NumericLessThan": 3}), true),
            (json!({"Variable": "$.n", "NumericGreaterThan": 5}), false),
            (
                json!({"Variable": "$.n", "NumericLessThanEqualsPath": "$.other"}),
                true,
            ),
            (json!({"Variable": "$.n", "StringEquals": "5"}), false),
            (json!({"Variable": "$.b", "BooleanEquals": true}), true),
            (
                json!({"Variable": "$.t", "TimestampGreaterThan": "2024-01-01T23:59:59+00:00"}),
                true,
            ),
            (
                json!({"Variable": "$.t", "TimestampEquals": "2024-01-02T01:00:00+01:00"}),
                true,
            ),
            (
                json!({"Variable": "$.s", "TimestampEquals": "2024-01-02T00:00:00Z"}),
                false,
            ),
            (json!({"Variable": "$.nul", "IsNull": true}), true),
            (json!({"Variable": "$.missing", "IsPresent": false}), true),
            (json!({"Variable": "$.n", "IsNumeric": true}), true),
            (json!({"Variable": "$.s", "IsString": false}), false),
            (json!({"Variable": "$.b", "IsBoolean": true}), true),
            (json!({"Variable": "$.t", "IsTimestamp": true}), true),
            (
                json!({"And": [{"Variable": "$.n", "NumericEquals": 5}, {"Not": {"Variable": "$.b", "BooleanEquals": false}}]}),
                true,
            ),
            (
                json!({"Or": [{"Variable": "$.n", "NumericEquals": 1}, {"Variable": "$.s", "StringEquals": "x"}]}),
                false,
            ),
        ];
        for (rule, expected) in cases {
            assert_eq!(
                check(rule.clone(), input.clone()).unwrap(),
                expected,
                "{rule}"
            );
        }
        assert_eq!(
            check(json!({"Variable": "$.missing", "StringEquals": "x"}), input)
                .unwrap_err()
                .error,
            "States.Runtime"
        );
    }

    #[test]
    fn malformed_rules_are_rejected() {
        for rule in [
            json!({"Variable": "$.a", "Next": "X"}),
            json!({"Variable": "$.a", "StringEquals": 1, "Next": "X"}),
            json!({"Variable": "$.a", "BooleanLessThan": true, "Next": "X"}),
            json!({"Variable": "$.a", "StringEquals": "a", "NumericEquals": 1, "Next": "X"}),
            json!({"Variable": "$.a", "TimestampEquals": "yesterday", "Next": "X"}),
            json!({"And": [], "Next": "X"}),
            json!({"Not": {"Variable": "$.a", "IsNull": true, "Next": "Y"}, "Next": "X"}),
        ] {
            assert!(ChoiceRule::parse_top(&rule).is_err(), "{rule}");
        }
    }

    #[test]
    fn string_matches_wildcards_and_escapes() {
        assert!(string_matches("log-2024.txt", "log-*.txt"));
        assert!(string_matches("abc", "*"));
        assert!(string_matches("a*c", "a\\*c"));
        assert!(!string_matches("abc", "a\\*c"));
        assert!(string_matches("a\\b", "a\\\\b"));
        assert!(!string_matches("abcd", "*c"));
        assert!(string_matches("xaxbx", "*a*b*"));
    }
}
