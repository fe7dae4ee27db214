//! A Distributed Map's ItemReader: the S3 listing, a JSON/CSV object or an S3 Inventory manifest,
//! read through the [`crate::engine::TaskInvoker`] (`TaskKind::ItemReader`).

use std::io::Read as _;

use serde_json::{json, Value};

use super::reader_failed;
use crate::definition::{ItemReader, QueryLanguage, ReaderInput};
use crate::engine::{IntegrationPattern, Shared, TaskCall, TaskClock, TaskKind};
use crate::error::StateError;
use crate::expr::jsonata::{self, StatesVar};
use crate::expr::{template, Env};

/// Most pages of `s3:listObjectsV2` one ItemReader follows (1,000 keys a page on S3).
const MAX_LIST_PAGES: usize = 100_000;

impl Shared {
    pub(super) fn s3_call(
        &self,
        state: &str,
        resource: &str,
        kind: TaskKind,
        input: Value,
        context: &Value,
    ) -> TaskCall {
        TaskCall {
            state_name: state.to_string(),
            resource: resource.to_string(),
            kind,
            pattern: IntegrationPattern::RequestResponse,
            function_name: None,
            input,
            context: context.clone(),
            attempt: 0,
            task_token: None,
            clock: TaskClock::new(self.time_mode),
        }
    }

    /// A reader's or writer's Parameters (JSONPath template) / Arguments (JSONata).
    pub(super) fn s3_parameters(
        &self,
        language: QueryLanguage,
        parameters: &Value,
        effective: &Value,
        raw: &Value,
        env: &Env,
    ) -> Result<Value, StateError> {
        match language {
            QueryLanguage::JsonPath => template::evaluate_template(parameters, effective, env),
            QueryLanguage::Jsonata => {
                jsonata::evaluate_value(parameters, StatesVar::input(raw), env)
            }
        }
    }

    async fn read_object(
        &self,
        name: &str,
        reader: &ItemReader,
        bucket: &str,
        key: &str,
        context: &Value,
    ) -> Result<Vec<u8>, StateError> {
        let call = self.s3_call(
            name,
            &reader.resource,
            TaskKind::ItemReader,
            json!({"Bucket": bucket, "Key": key}),
            context,
        );
        let answer = self
            .invoker
            .invoke(call)
            .await
            .map_err(|f| reader_failed(format!("{}: {}", f.error, f.cause)))?;
        let bytes = match answer {
            Value::String(text) => text.into_bytes(),
            Value::Object(o) if o.contains_key("BodyBase64") => {
                use base64::Engine as _;
                let text = o["BodyBase64"].as_str().unwrap_or_default();
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .map_err(|e| reader_failed(format!("s3://{bucket}/{key}: {e}")))?
            }
            other => {
                return Err(reader_failed(format!(
                    "s3:getObject of s3://{bucket}/{key} answered {other}, not the object's text"
                )))
            }
        };
        // S3 Inventory writes gzip files; a body that is not gzip (e.g. a mock's text) is read as is.
        if key.ends_with(".gz") && bytes.starts_with(&[0x1f, 0x8b]) {
            let mut text = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice())
                .take(256 * 1024 * 1024)
                .read_to_end(&mut text)
                .map_err(|e| reader_failed(format!("s3://{bucket}/{key} is not gzip: {e}")))?;
            return Ok(text);
        }
        Ok(bytes)
    }

    /// The items an ItemReader reads.
    pub(super) async fn read_items(
        &self,
        name: &str,
        reader: &ItemReader,
        parameters: &Value,
        context: &Value,
    ) -> Result<Vec<Value>, StateError> {
        let bucket = parameters
            .get("Bucket")
            .and_then(Value::as_str)
            .ok_or_else(|| reader_failed("the ItemReader parameters need a string Bucket"))?
            .to_string();
        let mut items = Vec::new();
        match &reader.input {
            None => {
                let mut token: Option<String> = None;
                for _ in 0..MAX_LIST_PAGES {
                    let mut request = parameters.clone();
                    if let Some(t) = &token {
                        request["ContinuationToken"] = json!(t);
                    }
                    let call = self.s3_call(
                        name,
                        &reader.resource,
                        TaskKind::ItemReader,
                        request,
                        context,
                    );
                    let page = self
                        .invoker
                        .invoke(call)
                        .await
                        .map_err(|f| reader_failed(format!("{}: {}", f.error, f.cause)))?;
                    for object in page
                        .get("Contents")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten()
                    {
                        // The shape AWS gives each listed object.
                        items.push(json!({
                            "Etag": object.get("ETag").or_else(|| object.get("Etag")).cloned().unwrap_or(Value::Null),
                            "Key": object.get("Key").cloned().unwrap_or(Value::Null),
                            "LastModified": object.get("LastModified").cloned().unwrap_or(Value::Null),
                            "Size": object.get("Size").cloned().unwrap_or(Value::Null),
                            "StorageClass": object.get("StorageClass").cloned().unwrap_or(json!("STANDARD")),
                        }));
                    }
                    token = page
                        .get("NextContinuationToken")
                        .and_then(Value::as_str)
                        .map(str::to_string);
                    if token.is_none() {
                        break;
                    }
                }
            }
            Some(input) => {
                let key = parameters
                    .get("Key")
                    .and_then(Value::as_str)
                    .ok_or_else(|| reader_failed("s3:getObject needs a string Key"))?;
                let body = self
                    .read_object(name, reader, &bucket, key, context)
                    .await?;
                match input {
                    ReaderInput::Json => match serde_json::from_slice::<Value>(&body) {
                        Ok(Value::Array(list)) => items = list,
                        Ok(_) => {
                            return Err(reader_failed(format!(
                                "s3://{bucket}/{key} does not hold a JSON array"
                            )))
                        }
                        Err(e) => {
                            return Err(reader_failed(format!(
                                "s3://{bucket}/{key} is not JSON: {e}"
                            )))
                        }
                    },
                    ReaderInput::Csv { headers } => {
                        items = csv_items(&body, headers.as_deref())
                            .map_err(|e| reader_failed(format!("s3://{bucket}/{key}: {e}")))?
                    }
                    ReaderInput::Manifest => {
                        let manifest: Value = serde_json::from_slice(&body).map_err(|e| {
                            reader_failed(format!(
                                "the manifest s3://{bucket}/{key} is not JSON: {e}"
                            ))
                        })?;
                        let schema: Vec<String> = manifest
                            .get("fileSchema")
                            .and_then(Value::as_str)
                            .unwrap_or("Bucket, Key")
                            .split(',')
                            .map(|f| f.trim().to_string())
                            .collect();
                        if manifest
                            .get("fileFormat")
                            .and_then(Value::as_str)
                            .is_some_and(|f| f != "CSV")
                        {
                            return Err(reader_failed(
                                "only CSV S3 Inventory manifests can be read",
                            ));
                        }
                        let destination = manifest
                            .get("destinationBucket")
                            .and_then(Value::as_str)
                            .map(|b| b.rsplit(':').next().unwrap_or(b).to_string())
                            .unwrap_or(bucket.clone());
                        for file in manifest
                            .get("files")
                            .and_then(Value::as_array)
                            .into_iter()
                            .flatten()
                        {
                            let file_key = file
                                .get("key")
                                .and_then(Value::as_str)
                                .ok_or_else(|| reader_failed("a manifest file entry has no key"))?;
                            let data = self
                                .read_object(name, reader, &destination, file_key, context)
                                .await?;
                            for row in csv_items(&data, Some(&schema)).map_err(|e| {
                                reader_failed(format!("s3://{destination}/{file_key}: {e}"))
                            })? {
                                let bucket = row.get("Bucket").cloned().unwrap_or(Value::Null);
                                let key = row
                                    .get("Key")
                                    .and_then(Value::as_str)
                                    .map(percent_decode)
                                    .map(Value::String)
                                    .unwrap_or(Value::Null);
                                items.push(json!({"Bucket": bucket, "Key": key}));
                            }
                        }
                    }
                }
            }
        }
        Ok(items)
    }
}

/// CSV rows as objects keyed by `headers` (or the first row), values as strings; RFC 4180 quoting.
pub(super) fn csv_items(body: &[u8], headers: Option<&[String]>) -> Result<Vec<Value>, String> {
    let text = std::str::from_utf8(body).map_err(|e| format!("not UTF-8 text: {e}"))?;
    let mut rows = parse_csv(text)?;
    let headers: Vec<String> = match headers {
        Some(h) => h.to_vec(),
        None => {
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            rows.remove(0)
        }
    };
    rows.into_iter()
        .filter(|row| !(row.len() == 1 && row[0].is_empty()))
        .map(|row| {
            if row.len() > headers.len() {
                return Err(format!(
                    "a row has {} fields, more than the {} headers",
                    row.len(),
                    headers.len()
                ));
            }
            Ok(Value::Object(
                headers
                    .iter()
                    .cloned()
                    .zip(
                        row.into_iter()
                            .map(Value::String)
                            .chain(std::iter::repeat(Value::String(String::new()))),
                    )
                    .collect(),
            ))
        })
        .collect()
}

fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') if field.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err("a quoted field is not closed".into());
    }
    if !field.is_empty() || !row.is_empty() {
        row.push(field);
        rows.push(row);
    }
    Ok(rows)
}

/// S3 Inventory writes keys URL-encoded.
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&text[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 3;
                    continue;
                }
                Err(_) => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
