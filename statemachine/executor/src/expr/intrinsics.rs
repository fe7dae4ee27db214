//! Intrinsic functions (`States.Format(…)` and friends) in payload templates.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use super::Env;
use crate::error::{names, StateError};

/// A parsed intrinsic function argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A string literal; `escaped_braces` marks `\{`/`\}` positions so States.Format keeps them literal.
    Str {
        text: String,
        literal_braces: Vec<usize>,
    },
    Literal(Value),
    Path(String),
    Call(Call),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub name: String,
    pub args: Vec<Arg>,
}

impl Call {
    /// Every path this call (and the calls nested in it) reads.
    pub fn paths(&self) -> impl Iterator<Item = &str> {
        let mut out = Vec::new();
        fn walk<'c>(call: &'c Call, out: &mut Vec<&'c str>) {
            for arg in &call.args {
                match arg {
                    Arg::Path(p) => out.push(p),
                    Arg::Call(c) => walk(c, out),
                    _ => {}
                }
            }
        }
        walk(self, &mut out);
        out.into_iter()
    }
}

const FUNCTIONS: &[&str] = &[
    "States.Format",
    "States.StringToJson",
    "States.JsonToString",
    "States.Array",
    "States.ArrayPartition",
    "States.ArrayContains",
    "States.ArrayRange",
    "States.ArrayGetItem",
    "States.ArrayLength",
    "States.ArrayUnique",
    "States.Base64Encode",
    "States.Base64Decode",
    "States.Hash",
    "States.JsonMerge",
    "States.MathRandom",
    "States.MathAdd",
    "States.StringSplit",
    "States.UUID",
];

struct Parser<'a> {
    chars: Vec<char>,
    pos: usize,
    source: &'a str,
}

/// Parse an intrinsic function expression.
pub fn parse(expression: &str) -> Result<Call, String> {
    let max = super::jsonpath::MAX_NESTING;
    if super::jsonpath::nesting_depth(expression) > max {
        return Err(format!(
            "invalid intrinsic function {expression:?}: nested deeper than {max} calls or brackets"
        ));
    }
    let mut parser = Parser {
        chars: expression.chars().collect(),
        pos: 0,
        source: expression,
    };
    let call = parser.call()?;
    parser.skip_ws();
    if parser.pos != parser.chars.len() {
        return Err(parser.error("unexpected text after the closing parenthesis"));
    }
    Ok(call)
}

impl Parser<'_> {
    fn error(&self, why: &str) -> String {
        format!(
            "invalid intrinsic function {:?} at character {}: {why}",
            self.source, self.pos
        )
    }
    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }
    fn call(&mut self) -> Result<Call, String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .chars
            .get(self.pos)
            .is_some_and(|c| c.is_alphanumeric() || *c == '.')
        {
            self.pos += 1;
        }
        let name: String = self.chars[start..self.pos].iter().collect();
        if !FUNCTIONS.contains(&name.as_str()) {
            return Err(self.error(&format!("unknown function {name:?}")));
        }
        self.skip_ws();
        if self.chars.get(self.pos) != Some(&'(') {
            return Err(self.error("expected \"(\""));
        }
        self.pos += 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.chars.get(self.pos) == Some(&')') {
            self.pos += 1;
            return Ok(Call { name, args });
        }
        loop {
            args.push(self.arg()?);
            self.skip_ws();
            match self.chars.get(self.pos) {
                Some(',') => self.pos += 1,
                Some(')') => {
                    self.pos += 1;
                    return Ok(Call { name, args });
                }
                _ => return Err(self.error("expected \",\" or \")\"")),
            }
        }
    }
    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_ws();
        match self.chars.get(self.pos) {
            Some('\'') => {
                self.pos += 1;
                let mut text = String::new();
                let mut literal_braces = Vec::new();
                loop {
                    match self.chars.get(self.pos) {
                        None => return Err(self.error("unterminated string")),
                        Some('\'') => {
                            self.pos += 1;
                            return Ok(Arg::Str {
                                text,
                                literal_braces,
                            });
                        }
                        Some('\\') => {
                            let escaped = *self
                                .chars
                                .get(self.pos + 1)
                                .ok_or_else(|| self.error("dangling \"\\\""))?;
                            if escaped == '{' || escaped == '}' {
                                literal_braces.push(text.chars().count());
                            }
                            text.push(escaped);
                            self.pos += 2;
                        }
                        Some(c) => {
                            text.push(*c);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some('$') => {
                // A path runs to the next top-level "," or ")" (outside brackets and quotes).
                let start = self.pos;
                let mut depth = 0i32;
                let mut quote: Option<char> = None;
                while let Some(&c) = self.chars.get(self.pos) {
                    if let Some(q) = quote {
                        if c == q {
                            quote = None;
                        }
                    } else {
                        match c {
                            '\'' | '"' => quote = Some(c),
                            '[' | '(' => depth += 1,
                            ']' => depth -= 1,
                            ')' if depth == 0 => break,
                            ')' => depth -= 1,
                            ',' if depth == 0 => break,
                            _ => {}
                        }
                    }
                    self.pos += 1;
                }
                let path: String = self.chars[start..self.pos]
                    .iter()
                    .collect::<String>()
                    .trim()
                    .to_string();
                super::jsonpath::check_path(&path)?;
                Ok(Arg::Path(path))
            }
            Some(c) if c.is_ascii_digit() || *c == '-' => {
                let start = self.pos;
                while self
                    .chars
                    .get(self.pos)
                    .is_some_and(|c| c.is_ascii_digit() || matches!(c, '-' | '+' | '.' | 'e' | 'E'))
                {
                    self.pos += 1;
                }
                let text: String = self.chars[start..self.pos].iter().collect();
                let value: Value = serde_json::from_str(&text)
                    .map_err(|_| self.error(&format!("bad number {text:?}")))?;
                Ok(Arg::Literal(value))
            }
            Some(_) => {
                for (word, value) in [
                    ("true", Value::Bool(true)),
                    ("false", Value::Bool(false)),
                    ("null", Value::Null),
                ] {
                    let end = self.pos + word.len();
                    if end <= self.chars.len()
                        && self.chars[self.pos..end].iter().collect::<String>() == word
                    {
                        self.pos = end;
                        return Ok(Arg::Literal(value));
                    }
                }
                Ok(Arg::Call(self.call()?))
            }
            None => Err(self.error("expected an argument")),
        }
    }
}

/// Parse and evaluate an intrinsic function against the state's data and the context object.
pub fn evaluate(expression: &str, data: &Value, env: &Env) -> Result<Value, StateError> {
    let call = parse(expression).map_err(|e| StateError::new(names::INTRINSIC_FAILURE, e))?;
    eval_call(&call, data, env)
}

fn fail(function: &str, why: impl std::fmt::Display) -> StateError {
    StateError::new(
        names::INTRINSIC_FAILURE,
        format!("Invalid arguments in {function}: {why}"),
    )
}

fn eval_arg(arg: &Arg, data: &Value, env: &Env) -> Result<Value, StateError> {
    match arg {
        Arg::Str { text, .. } => Ok(Value::String(text.clone())),
        Arg::Literal(v) => Ok(v.clone()),
        Arg::Path(p) => super::jsonpath::read(p, data, env),
        Arg::Call(c) => eval_call(c, data, env),
    }
}

fn as_int(function: &str, v: &Value) -> Result<i64, StateError> {
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
        _ => None,
    }
    .ok_or_else(|| fail(function, format!("{v} is not an integer")))
}

fn as_rounded_int(function: &str, v: &Value) -> Result<i64, StateError> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .map(|f| (f + 0.5).floor())
                .filter(|f| f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        _ => None,
    }
    .ok_or_else(|| fail(function, format!("{v} is not a number")))
}

fn as_str<'a>(function: &str, v: &'a Value) -> Result<&'a str, StateError> {
    v.as_str()
        .ok_or_else(|| fail(function, format!("{v} is not a string")))
}

fn as_array<'a>(function: &str, v: &'a Value) -> Result<&'a Vec<Value>, StateError> {
    v.as_array()
        .ok_or_else(|| fail(function, format!("{v} is not an array")))
}

fn arity(
    function: &str,
    args: &[Value],
    expected: std::ops::RangeInclusive<usize>,
) -> Result<(), StateError> {
    if expected.contains(&args.len()) {
        Ok(())
    } else {
        Err(fail(
            function,
            format!("expected {expected:?} arguments, got {}", args.len()),
        ))
    }
}

fn eval_call(call: &Call, data: &Value, env: &Env) -> Result<Value, StateError> {
    let f = call.name.as_str();
    if f == "States.Format" {
        return format(call, data, env);
    }
    let args = call
        .args
        .iter()
        .map(|a| eval_arg(a, data, env))
        .collect::<Result<Vec<_>, _>>()?;
    match f {
        "States.StringToJson" => {
            arity(f, &args, 1..=1)?;
            serde_json::from_str(as_str(f, &args[0])?).map_err(|e| fail(f, e))
        }
        "States.JsonToString" => {
            arity(f, &args, 1..=1)?;
            // Object keys keep their order (serde_json's preserve_order), as AWS keeps them.
            Ok(Value::String(args[0].to_string()))
        }
        "States.Array" => Ok(Value::Array(args)),
        "States.ArrayPartition" => {
            arity(f, &args, 2..=2)?;
            let size = as_int(f, &args[1])?;
            if size <= 0 {
                return Err(fail(f, "the chunk size must be a positive integer"));
            }
            Ok(Value::Array(
                as_array(f, &args[0])?
                    .chunks(size as usize)
                    .map(|c| Value::Array(c.to_vec()))
                    .collect(),
            ))
        }
        "States.ArrayContains" => {
            arity(f, &args, 2..=2)?;
            Ok(Value::Bool(as_array(f, &args[0])?.contains(&args[1])))
        }
        "States.ArrayRange" => {
            arity(f, &args, 3..=3)?;
            let (start, end, step) = (
                as_int(f, &args[0])?,
                as_int(f, &args[1])?,
                as_int(f, &args[2])?,
            );
            if step == 0 {
                return Err(fail(f, "the step must not be 0"));
            }
            let count = if (step > 0 && start > end) || (step < 0 && start < end) {
                0
            } else {
                (end - start) / step + 1
            };
            if count > 1000 {
                return Err(fail(f, "the range has more than 1000 items"));
            }
            Ok(Value::Array(
                (0..count).map(|i| Value::from(start + i * step)).collect(),
            ))
        }
        "States.ArrayGetItem" => {
            arity(f, &args, 2..=2)?;
            let index = as_int(f, &args[1])?;
            let items = as_array(f, &args[0])?;
            usize::try_from(index)
                .ok()
                .and_then(|i| items.get(i))
                .cloned()
                .ok_or_else(|| fail(f, format!("index {index} is out of bounds")))
        }
        "States.ArrayLength" => {
            arity(f, &args, 1..=1)?;
            Ok(Value::from(as_array(f, &args[0])?.len()))
        }
        "States.ArrayUnique" => {
            arity(f, &args, 1..=1)?;
            let mut unique: Vec<Value> = Vec::new();
            for v in as_array(f, &args[0])? {
                if !unique.contains(v) {
                    unique.push(v.clone());
                }
            }
            Ok(Value::Array(unique))
        }
        "States.Base64Encode" => {
            arity(f, &args, 1..=1)?;
            let text = as_str(f, &args[0])?;
            if text.chars().count() > 10_000 {
                return Err(fail(f, "the input is longer than 10000 characters"));
            }
            Ok(Value::String(
                base64::engine::general_purpose::STANDARD.encode(text),
            ))
        }
        "States.Base64Decode" => {
            arity(f, &args, 1..=1)?;
            let text = as_str(f, &args[0])?;
            if text.chars().count() > 10_000 {
                return Err(fail(f, "the input is longer than 10000 characters"));
            }
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text)
                .map_err(|e| fail(f, e))?;
            String::from_utf8(bytes)
                .map(Value::String)
                .map_err(|e| fail(f, e))
        }
        "States.Hash" => {
            arity(f, &args, 2..=2)?;
            let input = match &args[0] {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if input.chars().count() > 10_000 {
                return Err(fail(f, "the input is longer than 10000 characters"));
            }
            use sha2::Digest;
            let digest: Vec<u8> = match as_str(f, &args[1])? {
                "MD5" => md5::Md5::digest(input.as_bytes()).to_vec(),
                "SHA-1" => sha1::Sha1::digest(input.as_bytes()).to_vec(),
                "SHA-256" => sha2::Sha256::digest(input.as_bytes()).to_vec(),
                "SHA-384" => sha2::Sha384::digest(input.as_bytes()).to_vec(),
                "SHA-512" => sha2::Sha512::digest(input.as_bytes()).to_vec(),
                other => {
                    return Err(fail(
                        f,
                        format!(
                            "unknown algorithm {other:?} (MD5, SHA-1, SHA-256, SHA-384, SHA-512)"
                        ),
                    ))
                }
            };
            Ok(Value::String(
                digest.iter().map(|b| format!("{b:02x}")).collect(),
            ))
        }
        "States.JsonMerge" => {
            arity(f, &args, 3..=3)?;
            if args[2] != Value::Bool(false) {
                return Err(fail(
                    f,
                    "only shallow merges (false) are supported, as on AWS",
                ));
            }
            let (Value::Object(a), Value::Object(b)) = (&args[0], &args[1]) else {
                return Err(fail(f, "both arguments must be objects"));
            };
            let mut merged: Map<String, Value> = a.clone();
            merged.extend(b.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(Value::Object(merged))
        }
        "States.MathRandom" => {
            arity(f, &args, 2..=3)?;
            let (start, end) = (as_int(f, &args[0])?, as_int(f, &args[1])?);
            if start >= end {
                return Err(fail(f, "the start must be lower than the end"));
            }
            use rand::{Rng as _, SeedableRng};
            let value = match args.get(2) {
                Some(seed) => {
                    rand::rngs::StdRng::seed_from_u64(as_int(f, seed)? as u64).gen_range(start..end)
                }
                None => env.rng.range(start, end),
            };
            Ok(Value::from(value))
        }
        "States.MathAdd" => {
            arity(f, &args, 2..=2)?;
            // AWS rounds each argument to the nearest integer, halves up: MathAdd(1.5, 1.51) = 4.
            let sum = as_rounded_int(f, &args[0])?
                .checked_add(as_rounded_int(f, &args[1])?)
                .ok_or_else(|| fail(f, "the sum overflows"))?;
            Ok(Value::Number(Number::from(sum)))
        }
        "States.StringSplit" => {
            arity(f, &args, 2..=2)?;
            let (text, delimiters) = (as_str(f, &args[0])?, as_str(f, &args[1])?);
            Ok(Value::Array(
                text.split(|c| delimiters.contains(c))
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ))
        }
        "States.UUID" => {
            arity(f, &args, 0..=0)?;
            Ok(Value::String(env.rng.uuid()))
        }
        other => Err(fail(other, "unknown function")),
    }
}

fn format(call: &Call, data: &Value, env: &Env) -> Result<Value, StateError> {
    let f = "States.Format";
    let (template, literal_braces) = match call.args.first() {
        Some(Arg::Str {
            text,
            literal_braces,
        }) => (text, literal_braces),
        Some(other) => match eval_arg(other, data, env)? {
            Value::String(s) => return format_with(f, &s, &[], &call.args[1..], data, env),
            v => return Err(fail(f, format!("the template {v} is not a string"))),
        },
        None => return Err(fail(f, "missing the template argument")),
    };
    format_with(f, template, literal_braces, &call.args[1..], data, env)
}

fn format_with(
    f: &str,
    template: &str,
    literal_braces: &[usize],
    args: &[Arg],
    data: &Value,
    env: &Env,
) -> Result<Value, StateError> {
    let values = args
        .iter()
        .map(|a| eval_arg(a, data, env))
        .collect::<Result<Vec<_>, _>>()?;
    let chars: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut next = 0;
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '{' && chars.get(i + 1) == Some(&'}') && !literal_braces.contains(&i) {
            let value = values
                .get(next)
                .ok_or_else(|| fail(f, "more placeholders than arguments"))?;
            format_value(value, &mut out);
            next += 1;
            i += 2;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    if next != values.len() {
        return Err(fail(f, "more arguments than placeholders"));
    }
    Ok(Value::String(out))
}

/// How AWS (Java) renders a value in States.Format: strings bare, objects as `{k=v, …}`, arrays as
/// `[a, b]`, in the value's own key order.
fn format_value(value: &Value, out: &mut String) {
    match value {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                format_value(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(key);
                out.push('=');
                format_value(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expression: &str) -> Result<Value, StateError> {
        let (variables, rng) = (
            crate::expr::Variables::default(),
            crate::expr::Rng::seeded(1),
        );
        evaluate(
            expression,
            &json!({"s": "a,b,,c", "n": 3, "arr": [1, 2, 2, 3], "o": {"a": 1}, "obj": {"z": 1, "a": [true, null], "s": "t"}}),
            &Env {
                context: &json!({"Execution": {"Name": "ex"}}),
                variables: &variables,
                rng: &rng,
            },
        )
    }

    #[test]
    fn aws_documented_renderings_and_rounding() {
        assert_eq!(
            eval("States.Format('x={}', $.obj)").unwrap(),
            json!("x={z=1, a=[true, null], s=t}")
        );
        assert_eq!(
            eval("States.JsonToString($.obj)").unwrap(),
            json!("{\"z\":1,\"a\":[true,null],\"s\":\"t\"}")
        );
        assert_eq!(eval("States.MathAdd(1.49, 1.5)").unwrap(), json!(3));
        assert_eq!(eval("States.MathAdd(1.5, 1.51)").unwrap(), json!(4));
        assert_eq!(
            eval("States.UUID()").unwrap(),
            eval("States.UUID()").unwrap()
        );
    }

    #[test]
    fn every_function_computes_what_aws_documents() {
        assert_eq!(
            eval("States.Format('Hello, {} #{} \\{}', $$.Execution.Name, $.n)").unwrap(),
            json!("Hello, ex #3 {}")
        );
        assert_eq!(
            eval("States.StringToJson('{\"x\": [1]}')").unwrap(),
            json!({"x": [1]})
        );
        assert_eq!(
            eval("States.JsonToString($.o)").unwrap(),
            json!("{\"a\":1}")
        );
        assert_eq!(
            eval("States.Array('a', 1, true, null, $.o)").unwrap(),
            json!(["a", 1, true, null, {"a": 1}])
        );
        assert_eq!(
            eval("States.ArrayPartition($.arr, 3)").unwrap(),
            json!([[1, 2, 2], [3]])
        );
        assert_eq!(eval("States.ArrayContains($.arr, 3)").unwrap(), json!(true));
        assert_eq!(
            eval("States.ArrayRange(1, 9, 2)").unwrap(),
            json!([1, 3, 5, 7, 9])
        );
        assert_eq!(eval("States.ArrayGetItem($.arr, 3)").unwrap(), json!(3));
        assert_eq!(eval("States.ArrayLength($.arr)").unwrap(), json!(4));
        assert_eq!(eval("States.ArrayUnique($.arr)").unwrap(), json!([1, 2, 3]));
        assert_eq!(
            eval("States.Base64Encode('Data to encode')").unwrap(),
            json!("RGF0YSB0byBlbmNvZGU=")
        );
        assert_eq!(
            eval("States.Base64Decode('RGF0YSB0byBlbmNvZGU=')").unwrap(),
            json!("Data to encode")
        );
        assert_eq!(
            eval("States.Hash('input data', 'SHA-1')").unwrap(),
            json!("aaff4a450a104cd177d28d18d74485e8cae074b7")
        );
        assert_eq!(
            eval("States.JsonMerge($.o, States.StringToJson('{\"b\":2}'), false)").unwrap(),
            json!({"a": 1, "b": 2})
        );
        assert_eq!(eval("States.MathAdd($.n, -1)").unwrap(), json!(2));
        assert_eq!(
            eval("States.StringSplit($.s, ',')").unwrap(),
            json!(["a", "b", "c"])
        );
        let r = eval("States.MathRandom(1, 5)").unwrap().as_i64().unwrap();
        assert!((1..5).contains(&r));
        assert_eq!(
            eval("States.MathRandom(1, 1000, 7)").unwrap(),
            eval("States.MathRandom(1, 1000, 7)").unwrap()
        );
        assert_eq!(eval("States.UUID()").unwrap().as_str().unwrap().len(), 36);
    }

    #[test]
    fn bad_calls_fail_with_intrinsic_failure() {
        for bad in [
            "States.Format('{} {}', 'one')",
            "States.ArrayGetItem($.arr, 9)",
            "States.ArrayRange(0, 5000, 1)",
            "States.StringToJson('{nope')",
            "States.Hash('x', 'CRC32')",
            "States.JsonMerge($.o, $.o, true)",
            "States.Nope(1)",
            "States.Array(1",
        ] {
            assert_eq!(
                eval(bad).unwrap_err().error,
                names::INTRINSIC_FAILURE,
                "{bad}"
            );
        }
    }
}
