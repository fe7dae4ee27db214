//! The Distributed Map fields: ProcessorConfig, ItemReader, ItemBatcher, ResultWriter.

use serde_json::Value;

use super::Amount;
use crate::expr::QueryLanguage;

/// Child workflows of a Distributed Map run as executions of this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ExecutionType {
    Standard,
    Express,
}

/// `ItemProcessor.ProcessorConfig.Mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProcessorMode {
    #[default]
    Inline,
    Distributed {
        execution_type: ExecutionType,
    },
}

pub(super) fn processor_mode(config: Option<&Value>) -> Result<ProcessorMode, String> {
    let Some(config) = config else {
        return Ok(ProcessorMode::Inline);
    };
    let object = config
        .as_object()
        .ok_or("ProcessorConfig must be an object")?;
    if let Some(field) = object
        .keys()
        .find(|k| !["Mode", "ExecutionType"].contains(&k.as_str()))
    {
        return Err(format!(
            "field \"{field}\" is not allowed in ProcessorConfig"
        ));
    }
    match object
        .get("Mode")
        .and_then(Value::as_str)
        .unwrap_or("INLINE")
    {
        "INLINE" => {
            if object.contains_key("ExecutionType") {
                return Err("ExecutionType belongs to Mode \"DISTRIBUTED\"".into());
            }
            Ok(ProcessorMode::Inline)
        }
        "DISTRIBUTED" => {
            let execution_type = match object.get("ExecutionType").and_then(Value::as_str) {
                Some("STANDARD") => ExecutionType::Standard,
                Some("EXPRESS") => ExecutionType::Express,
                _ => return Err(
                    "a DISTRIBUTED ProcessorConfig needs ExecutionType \"STANDARD\" or \"EXPRESS\""
                        .into(),
                ),
            };
            Ok(ProcessorMode::Distributed { execution_type })
        }
        other => Err(format!(
            "ProcessorConfig.Mode {other:?} is not INLINE or DISTRIBUTED"
        )),
    }
}

/// What an S3 object read by `s3:getObject` holds.
#[derive(Debug, Clone, PartialEq)]
pub enum ReaderInput {
    /// A JSON array; each element is an item.
    Json,
    /// CSV rows; each row an object keyed by the header (the first row, or `CSVHeaders`).
    Csv { headers: Option<Vec<String>> },
    /// An S3 Inventory `manifest.json`: each listed object is an item `{Bucket, Key}`.
    Manifest,
}

/// `ItemReader`: where a Distributed Map's items come from.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemReader {
    /// `arn:aws:states:::s3:listObjectsV2` or `arn:aws:states:::s3:getObject`.
    pub resource: String,
    /// `Parameters` (JSONPath template) or `Arguments` (JSONata).
    pub parameters: Value,
    /// `None` for `listObjectsV2`.
    pub input: Option<ReaderInput>,
    pub max_items: Option<Amount>,
}

impl ItemReader {
    pub fn lists_objects(&self) -> bool {
        self.resource.ends_with(":s3:listObjectsV2")
    }
}

fn parameters_of(
    object: &serde_json::Map<String, Value>,
    language: QueryLanguage,
) -> Result<Value, String> {
    let (field, other) = match language {
        QueryLanguage::JsonPath => ("Parameters", "Arguments"),
        QueryLanguage::Jsonata => ("Arguments", "Parameters"),
    };
    if object.contains_key(other) {
        return Err(format!(
            "\"{other}\" is not allowed here in a {language:?} state; use \"{field}\""
        ));
    }
    Ok(object.get(field).cloned().unwrap_or(Value::Null))
}

fn amount(
    config: &serde_json::Map<String, Value>,
    name: &str,
    language: QueryLanguage,
) -> Result<Option<Amount>, String> {
    let path = config.get(&format!("{name}Path"));
    match (config.get(name), path) {
        (Some(_), Some(_)) => Err(format!("use only one of {name} and {name}Path")),
        (None, Some(Value::String(p))) if language == QueryLanguage::JsonPath => {
            Ok(Some(Amount::Path(p.clone())))
        }
        (None, Some(_)) => Err(format!(
            "{name}Path must be a JSONPath string (JSONPath states only)"
        )),
        (None, None) => Ok(None),
        (Some(Value::Number(n)), None) => match n.as_u64() {
            Some(v) => Ok(Some(Amount::Fixed(v as f64))),
            None => Err(format!("{name} must be a non-negative integer")),
        },
        (Some(Value::String(s)), None) if language == QueryLanguage::Jsonata => {
            crate::expr::jsonata::expression_of(s)
                .map(|e| Some(Amount::Jsonata(e.to_string())))
                .ok_or_else(|| format!("{name} must be a number or a JSONata expression"))
        }
        (Some(_), None) => Err(format!("{name} must be a non-negative integer")),
    }
}

fn known_fields(object: &serde_json::Map<String, Value>, allowed: &[&str]) -> Result<(), String> {
    match object.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(field) => Err(format!("field \"{field}\" is not allowed here")),
        None => Ok(()),
    }
}

pub(super) fn parse_item_reader(
    value: &Value,
    language: QueryLanguage,
) -> Result<ItemReader, String> {
    let object = value.as_object().ok_or("must be an object")?;
    known_fields(
        object,
        &["Resource", "Parameters", "Arguments", "ReaderConfig"],
    )?;
    let resource = object
        .get("Resource")
        .and_then(Value::as_str)
        .ok_or("needs a string \"Resource\"")?
        .to_string();
    let parameters = parameters_of(object, language)?;
    let config = match object.get("ReaderConfig") {
        None => serde_json::Map::new(),
        Some(Value::Object(c)) => c.clone(),
        Some(_) => return Err("ReaderConfig must be an object".into()),
    };
    known_fields(
        &config,
        &[
            "InputType",
            "CSVHeaderLocation",
            "CSVHeaders",
            "MaxItems",
            "MaxItemsPath",
        ],
    )
    .map_err(|e| format!("ReaderConfig: {e}"))?;
    let max_items =
        amount(&config, "MaxItems", language).map_err(|e| format!("ReaderConfig: {e}"))?;
    let list = resource.starts_with("arn:") && resource.ends_with(":states:::s3:listObjectsV2");
    let get = resource.starts_with("arn:") && resource.ends_with(":states:::s3:getObject");
    let input = if list {
        if config.contains_key("InputType") {
            return Err("ReaderConfig.InputType belongs to s3:getObject".into());
        }
        None
    } else if get {
        Some(match config.get("InputType").and_then(Value::as_str) {
            Some("JSON") => ReaderInput::Json,
            Some("MANIFEST") => ReaderInput::Manifest,
            Some("CSV") => {
                let headers = match config.get("CSVHeaderLocation").and_then(Value::as_str) {
                    Some("FIRST_ROW") | None => None,
                    Some("GIVEN") => Some(
                        config
                            .get("CSVHeaders")
                            .and_then(Value::as_array)
                            .and_then(|h| {
                                h.iter()
                                    .map(|v| v.as_str().map(str::to_string))
                                    .collect::<Option<Vec<_>>>()
                            })
                            .ok_or(
                                "CSVHeaderLocation GIVEN needs CSVHeaders, an array of strings",
                            )?,
                    ),
                    Some(other) => {
                        return Err(format!(
                            "CSVHeaderLocation {other:?} is not FIRST_ROW or GIVEN"
                        ))
                    }
                };
                ReaderInput::Csv { headers }
            }
            Some(other) => {
                return Err(format!(
                    "ReaderConfig.InputType {other:?} is not JSON, CSV or MANIFEST"
                ))
            }
            None => {
                return Err(
                    "s3:getObject needs ReaderConfig.InputType (JSON, CSV or MANIFEST)".into(),
                )
            }
        })
    } else {
        return Err(format!(
            "Resource {resource:?} is not arn:aws:states:::s3:listObjectsV2 or arn:aws:states:::s3:getObject"
        ));
    };
    Ok(ItemReader {
        resource,
        parameters,
        input,
        max_items,
    })
}

/// `ItemBatcher`'s limits, as written.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct BatchLimits {
    pub max_items: Option<Amount>,
    pub max_bytes: Option<Amount>,
}

/// `ItemBatcher`: children get `{"BatchInput": …, "Items": [...]}` instead of one item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemBatcher {
    pub limits: BatchLimits,
    pub batch_input: Option<Value>,
}

pub(super) fn parse_item_batcher(
    value: &Value,
    language: QueryLanguage,
) -> Result<ItemBatcher, String> {
    let object = value.as_object().ok_or("must be an object")?;
    known_fields(
        object,
        &[
            "MaxItemsPerBatch",
            "MaxItemsPerBatchPath",
            "MaxInputBytesPerBatch",
            "MaxInputBytesPerBatchPath",
            "BatchInput",
        ],
    )?;
    let limits = BatchLimits {
        max_items: amount(object, "MaxItemsPerBatch", language)?,
        max_bytes: amount(object, "MaxInputBytesPerBatch", language)?,
    };
    if limits.max_items.is_none() && limits.max_bytes.is_none() {
        return Err("needs MaxItemsPerBatch or MaxInputBytesPerBatch".into());
    }
    Ok(ItemBatcher {
        limits,
        batch_input: object.get("BatchInput").cloned(),
    })
}

/// `ResultWriter`: where a Map Run's results are written.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultWriter {
    /// `arn:aws:states:::s3:putObject`, or `None` with only a WriterConfig.
    pub resource: Option<String>,
    pub parameters: Value,
    /// `WriterConfig.Transformation`: NONE, COMPACT or FLATTEN.
    pub transformation: Option<String>,
    /// `WriterConfig.OutputType`: JSON or JSONL.
    pub output_type: Option<String>,
}

pub(super) fn parse_result_writer(
    value: &Value,
    language: QueryLanguage,
) -> Result<ResultWriter, String> {
    let object = value.as_object().ok_or("must be an object")?;
    known_fields(
        object,
        &["Resource", "Parameters", "Arguments", "WriterConfig"],
    )?;
    let resource = object
        .get("Resource")
        .map(|r| {
            r.as_str()
                .map(str::to_string)
                .ok_or("Resource must be a string")
        })
        .transpose()?;
    if let Some(r) = &resource {
        if !(r.starts_with("arn:") && r.ends_with(":states:::s3:putObject")) {
            return Err(format!(
                "Resource {r:?} is not arn:aws:states:::s3:putObject"
            ));
        }
    }
    let parameters = parameters_of(object, language)?;
    if resource.is_some() == parameters.is_null() {
        return Err("Resource and its Parameters/Arguments (Bucket, Prefix) go together".into());
    }
    let config = object.get("WriterConfig").and_then(Value::as_object);
    let field = |name: &str, allowed: &[&str]| -> Result<Option<String>, String> {
        match config.and_then(|c| c.get(name)) {
            None => Ok(None),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(Some(s.clone())),
            Some(other) => Err(format!(
                "WriterConfig.{name} {other} is not one of {allowed:?}"
            )),
        }
    };
    let writer = ResultWriter {
        resource,
        transformation: field("Transformation", &["NONE", "COMPACT", "FLATTEN"])?,
        output_type: field("OutputType", &["JSON", "JSONL"])?,
        parameters,
    };
    if writer.resource.is_none() && config.is_none() {
        return Err("needs Resource and Parameters, or a WriterConfig".into());
    }
    Ok(writer)
}
