//! S3's rules, as pure functions of a key's record: which version a request addresses, whether its
//! preconditions hold, and what a listing page holds. Both backends are decided by this code alone.
//!
//! Sources (AWS documentation): API Reference "PutObject" (If-Match, If-None-Match), "GetObject"
//! (conditional headers and their precedence, delete markers, Range), "DeleteObject" (If-Match, `*`),
//! "ListObjectsV2" (prefix, delimiter, continuation token, start-after, max-keys); User Guide "How to
//! prevent object overwrites with conditional writes" and "How to perform conditional deletes" (the
//! conditions apply to the current version only; with no current object, If-Match fails with 404).

use std::time::{SystemTime, UNIX_EPOCH};

use s3s::dto::{ETag, ETagCondition};
use s3s::{s3_error, S3Error, S3ErrorCode, S3Result};

use crate::model::{KeyRecord, StoredObject, Version};

/// Largest `max-keys` S3 honours; larger values are capped.
pub(crate) const MAX_KEYS: usize = 1000;

fn etag_matches(condition: &ETagCondition, etag: &str) -> bool {
    match condition {
        ETagCondition::Any => true,
        // S3 ETags are strong; a client sending `W/"…"` still means the same bytes.
        ETagCondition::ETag(wanted) => wanted.value() == etag,
    }
}

fn precondition_failed() -> S3Error {
    s3_error!(
        PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold"
    )
}

fn no_such_key() -> S3Error {
    s3_error!(NoSuchKey, "The specified key does not exist.")
}

/// PutObject, CopyObject and CompleteMultipartUpload preconditions, against the key's current object.
/// `If-None-Match: *` fails with 412 when a current object exists (a delete marker is no object);
/// `If-Match` fails with 404 NoSuchKey when there is none and with 412 when its ETag differs.
pub(crate) fn check_write(
    record: &KeyRecord,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<()> {
    let current = record.current_object().map(|(_, object)| object);
    if let Some(condition) = if_none_match {
        if !condition.is_any() {
            return Err(s3_error!(
                NotImplemented,
                "If-None-Match on a write accepts only '*'"
            ));
        }
        if current.is_some() {
            return Err(precondition_failed());
        }
    }
    if let Some(condition) = if_match {
        match current {
            None => return Err(no_such_key()),
            Some(object) if !etag_matches(condition, &object.etag) => {
                return Err(precondition_failed())
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// DeleteObject's `If-Match` (an ETag or `*`), against the current version only: 404 NoSuchKey when the
/// key has no current object (absent, or a delete marker on top), 412 when the ETag differs.
pub(crate) fn check_delete(record: &KeyRecord, if_match: Option<&ETagCondition>) -> S3Result<()> {
    let Some(condition) = if_match else {
        return Ok(());
    };
    match record.current_object() {
        None => Err(no_such_key()),
        Some((_, object)) if !etag_matches(condition, &object.etag) => Err(precondition_failed()),
        Some(_) => Ok(()),
    }
}

/// What a GET or HEAD addresses: the current object, or one version by id.
pub(crate) fn select_version<'a>(
    record: Option<&'a KeyRecord>,
    version_id: Option<&str>,
) -> S3Result<(&'a Version, &'a StoredObject)> {
    match version_id {
        Some(version_id) => {
            let version = record
                .and_then(|record| record.version(version_id))
                .ok_or_else(|| s3_error!(NoSuchVersion, "The specified version does not exist."))?;
            match &version.object {
                Some(object) => Ok((version, object)),
                // S3: a delete marker addressed by its id is 405, with its Last-Modified.
                None => Err(with_delete_marker_headers(
                    s3_error!(
                        MethodNotAllowed,
                        "The specified method is not allowed against this resource."
                    ),
                    version,
                )),
            }
        }
        None => {
            let newest = record
                .and_then(|record| record.versions.first())
                .ok_or_else(no_such_key)?;
            match &newest.object {
                Some(object) => Ok((newest, object)),
                // S3 answers as if the object were deleted, and says a delete marker is why.
                None => Err(with_delete_marker_headers(no_such_key(), newest)),
            }
        }
    }
}

fn with_delete_marker_headers(mut error: S3Error, marker: &Version) -> S3Error {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "x-amz-delete-marker",
        http::HeaderValue::from_static("true"),
    );
    if let Ok(value) = http::HeaderValue::from_str(&marker.version_id) {
        headers.insert("x-amz-version-id", value);
    }
    if let Ok(value) = http::HeaderValue::from_str(&http_date(marker.last_modified())) {
        headers.insert(http::header::LAST_MODIFIED, value);
    }
    error.set_headers(headers);
    error
}

/// The conditional headers of a GET or HEAD.
#[derive(Debug, Default)]
pub(crate) struct ReadConditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<SystemTime>,
    pub if_unmodified_since: Option<SystemTime>,
}

/// How a read precondition failed.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum ReadRefusal {
    /// 412 Precondition Failed.
    PreconditionFailed,
    /// 304 Not Modified.
    NotModified,
}

/// RFC 7232 evaluation order, as S3 documents it for GetObject: a true If-Match overrides a false
/// If-Unmodified-Since; a false If-None-Match (the ETag matches) answers 304 whatever If-Modified-Since says.
/// Times compare at the one-second precision of HTTP dates.
pub(crate) fn check_read(
    version: &Version,
    object: &StoredObject,
    conditions: &ReadConditions<'_>,
) -> Result<(), ReadRefusal> {
    let modified = seconds(version.last_modified());
    match (conditions.if_match, conditions.if_unmodified_since) {
        (Some(condition), _) if !etag_matches(condition, &object.etag) => {
            return Err(ReadRefusal::PreconditionFailed)
        }
        (None, Some(since)) if modified > seconds(since) => {
            return Err(ReadRefusal::PreconditionFailed)
        }
        _ => {}
    }
    match (conditions.if_none_match, conditions.if_modified_since) {
        (Some(condition), _) if etag_matches(condition, &object.etag) => {
            Err(ReadRefusal::NotModified)
        }
        (None, Some(since)) if modified <= seconds(since) => Err(ReadRefusal::NotModified),
        _ => Ok(()),
    }
}

fn seconds(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0)
}

pub(crate) fn http_date(time: SystemTime) -> String {
    let time = time::OffsetDateTime::from(time);
    time.format(&time::format_description::well_known::Rfc2822)
        .map(|text| text.replace("+0000", "GMT"))
        .unwrap_or_default()
}

pub(crate) fn quoted(etag: &str) -> ETag {
    ETag::Strong(etag.to_owned())
}

/// Where a listing page starts: strictly after a key, or after every key under a common prefix that a
/// previous page returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListStart {
    Beginning,
    AfterKey(String),
    AfterPrefix(String),
}

/// One entry of a listing page, in UTF-8 byte order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ListEntry<T> {
    Item(T),
    CommonPrefix(String),
}

#[derive(Debug)]
pub(crate) struct ListPage<T> {
    pub entries: Vec<ListEntry<T>>,
    /// More entries follow: continue after the last one.
    pub truncated: bool,
}

/// The listing request's shape, common to ListObjects, ListObjectsV2 and ListObjectVersions.
#[derive(Debug)]
pub(crate) struct ListShape<'a> {
    pub prefix: &'a str,
    /// Empty means none.
    pub delimiter: &'a str,
    pub start: ListStart,
    /// Common prefixes not greater than this are left out (ListObjectsV2 StartAfter).
    pub start_after: Option<&'a str>,
    pub max_keys: usize,
}

/// Pages through `items` (sorted by key, several items may share a key, e.g. versions) keeping S3's rules:
/// keys under `prefix` only; keys containing `delimiter` after the prefix roll up into one common prefix
/// each; each item and each common prefix counts toward `max_keys`.
pub(crate) fn list_page<T: Clone>(items: &[(String, T)], shape: &ListShape<'_>) -> ListPage<T> {
    let mut entries: Vec<ListEntry<T>> = Vec::new();
    let mut truncated = false;
    let mut last_prefix: Option<String> = None;
    for (key, item) in items {
        if !key.starts_with(shape.prefix) {
            continue;
        }
        match &shape.start {
            ListStart::Beginning => {}
            ListStart::AfterKey(after) => {
                if key.as_str() <= after.as_str() {
                    continue;
                }
            }
            ListStart::AfterPrefix(prefix) => {
                if key.as_str() < prefix.as_str() || key.starts_with(prefix.as_str()) {
                    continue;
                }
            }
        }
        let entry = match common_prefix(key, shape.prefix, shape.delimiter) {
            Some(prefix) => {
                if last_prefix.as_deref() == Some(prefix)
                    || shape.start_after.is_some_and(|after| prefix <= after)
                {
                    continue;
                }
                last_prefix = Some(prefix.to_owned());
                ListEntry::CommonPrefix(prefix.to_owned())
            }
            None => ListEntry::Item(item.clone()),
        };
        if entries.len() == shape.max_keys {
            truncated = true;
            break;
        }
        entries.push(entry);
    }
    ListPage { entries, truncated }
}

/// The common prefix `key` rolls up into: the prefix plus everything up to and including the first
/// delimiter after it.
fn common_prefix<'k>(key: &'k str, prefix: &str, delimiter: &str) -> Option<&'k str> {
    if delimiter.is_empty() {
        return None;
    }
    let rest = &key[prefix.len()..];
    rest.find(delimiter)
        .map(|at| &key[..prefix.len() + at + delimiter.len()])
}

/// `max-keys` as S3 reads it: 1,000 when absent, capped at 1,000, refused when negative.
pub(crate) fn max_keys(requested: Option<i32>) -> S3Result<usize> {
    match requested {
        None => Ok(MAX_KEYS),
        Some(n) if n < 0 => Err(s3_error!(
            InvalidArgument,
            "max-keys must be a non-negative integer"
        )),
        Some(n) => Ok((n as usize).min(MAX_KEYS)),
    }
}

/// Continuation tokens are opaque to clients: the last entry of the page, hex-encoded, with its kind.
pub(crate) fn continuation_token(start: &ListStart) -> Option<String> {
    match start {
        ListStart::Beginning => None,
        ListStart::AfterKey(key) => Some(format!("k{}", hex::encode(key))),
        ListStart::AfterPrefix(prefix) => Some(format!("p{}", hex::encode(prefix))),
    }
}

pub(crate) fn parse_continuation_token(token: &str) -> S3Result<ListStart> {
    let invalid = || {
        S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "The continuation token provided is incorrect",
        )
    };
    let (kind, encoded) = token.split_at_checked(1).ok_or_else(invalid)?;
    let text = hex::decode(encoded)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .ok_or_else(invalid)?;
    match kind {
        "k" => Ok(ListStart::AfterKey(text)),
        "p" => Ok(ListStart::AfterPrefix(text)),
        _ => Err(invalid()),
    }
}

/// Where the next page starts, after `entry`.
pub(crate) fn start_after_entry<T>(
    entry: &ListEntry<T>,
    key_of: impl Fn(&T) -> String,
) -> ListStart {
    match entry {
        ListEntry::Item(item) => ListStart::AfterKey(key_of(item)),
        ListEntry::CommonPrefix(prefix) => ListStart::AfterPrefix(prefix.clone()),
    }
}

/// `encoding-type=url`: keys percent-encoded so that any byte survives XML 1.0. Unreserved characters and
/// `/` stay; everything else, space and `+` included, becomes `%XX` (decodes the same with or without
/// form decoding).
pub(crate) fn url_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ObjectHeaders;

    fn object(etag: &str) -> StoredObject {
        StoredObject {
            size: 1,
            etag: etag.to_owned(),
            blob: "b".to_owned(),
            parts: None,
            headers: ObjectHeaders::default(),
        }
    }

    fn record(versions: &[Option<&str>]) -> KeyRecord {
        KeyRecord {
            key: "k".to_owned(),
            next_sequence: versions.len() as u64 + 1,
            versions: versions
                .iter()
                .enumerate()
                .map(|(i, etag)| Version {
                    version_id: format!("v{i}"),
                    sequence: (versions.len() - i) as u64,
                    last_modified_ms: 10_000,
                    object: etag.map(object),
                })
                .collect(),
        }
    }

    fn etag(value: &str) -> ETagCondition {
        ETagCondition::ETag(ETag::Strong(value.to_owned()))
    }

    fn code(result: S3Result<()>) -> Option<S3ErrorCode> {
        result.err().map(|err| err.code().clone())
    }

    #[test]
    fn write_conditions_follow_s3() {
        let absent = record(&[]);
        let present = record(&[Some("aaa")]);
        let deleted = record(&[None, Some("aaa")]);
        let any = ETagCondition::Any;

        assert_eq!(code(check_write(&absent, None, Some(&any))), None);
        assert_eq!(
            code(check_write(&present, None, Some(&any))),
            Some(S3ErrorCode::PreconditionFailed)
        );
        // A delete marker on top: no current object, so a create-only write succeeds.
        assert_eq!(code(check_write(&deleted, None, Some(&any))), None);

        assert_eq!(code(check_write(&present, Some(&etag("aaa")), None)), None);
        assert_eq!(
            code(check_write(&present, Some(&etag("bbb")), None)),
            Some(S3ErrorCode::PreconditionFailed)
        );
        assert_eq!(
            code(check_write(&absent, Some(&etag("aaa")), None)),
            Some(S3ErrorCode::NoSuchKey)
        );
        assert_eq!(
            code(check_write(&deleted, Some(&etag("aaa")), None)),
            Some(S3ErrorCode::NoSuchKey)
        );
        assert_eq!(
            code(check_write(&absent, None, Some(&etag("aaa")))),
            Some(S3ErrorCode::NotImplemented)
        );
    }

    #[test]
    fn delete_conditions_apply_to_the_current_version_only() {
        let present = record(&[Some("aaa")]);
        let deleted = record(&[None, Some("aaa")]);
        assert_eq!(
            code(check_delete(&present, Some(&ETagCondition::Any))),
            None
        );
        assert_eq!(code(check_delete(&present, Some(&etag("aaa")))), None);
        assert_eq!(
            code(check_delete(&present, Some(&etag("bbb")))),
            Some(S3ErrorCode::PreconditionFailed)
        );
        assert_eq!(
            code(check_delete(&deleted, Some(&etag("aaa")))),
            Some(S3ErrorCode::NoSuchKey)
        );
        assert_eq!(
            code(check_delete(&record(&[]), Some(&ETagCondition::Any))),
            Some(S3ErrorCode::NoSuchKey)
        );
        assert_eq!(code(check_delete(&record(&[]), None)), None);
    }

    #[test]
    fn read_conditions_keep_the_documented_precedence() {
        let rec = record(&[Some("aaa")]);
        let (version, obj) = rec.current_object().unwrap();
        let earlier = UNIX_EPOCH + std::time::Duration::from_secs(5);
        let later = UNIX_EPOCH + std::time::Duration::from_secs(20);
        let check = |conditions: ReadConditions<'_>| check_read(version, obj, &conditions);

        // If-Match true wins over a false If-Unmodified-Since.
        let aaa = etag("aaa");
        assert_eq!(
            check(ReadConditions {
                if_match: Some(&aaa),
                if_unmodified_since: Some(earlier),
                ..Default::default()
            }),
            Ok(())
        );
        let bbb = etag("bbb");
        assert_eq!(
            check(ReadConditions {
                if_match: Some(&bbb),
                ..Default::default()
            }),
            Err(ReadRefusal::PreconditionFailed)
        );
        assert_eq!(
            check(ReadConditions {
                if_unmodified_since: Some(earlier),
                ..Default::default()
            }),
            Err(ReadRefusal::PreconditionFailed)
        );
        // If-None-Match false (the ETag matches) is 304 even when If-Modified-Since is true.
        assert_eq!(
            check(ReadConditions {
                if_none_match: Some(&aaa),
                if_modified_since: Some(earlier),
                ..Default::default()
            }),
            Err(ReadRefusal::NotModified)
        );
        assert_eq!(
            check(ReadConditions {
                if_modified_since: Some(later),
                ..Default::default()
            }),
            Err(ReadRefusal::NotModified)
        );
        assert_eq!(
            check(ReadConditions {
                if_none_match: Some(&bbb),
                ..Default::default()
            }),
            Ok(())
        );
    }

    fn keys(names: &[&str]) -> Vec<(String, String)> {
        let mut items: Vec<(String, String)> = names
            .iter()
            .map(|k| (k.to_string(), k.to_string()))
            .collect();
        items.sort();
        items
    }

    fn render(page: &ListPage<String>) -> Vec<String> {
        page.entries
            .iter()
            .map(|entry| match entry {
                ListEntry::Item(key) => key.clone(),
                ListEntry::CommonPrefix(prefix) => format!("[{prefix}]"),
            })
            .collect()
    }

    #[test]
    fn listing_rolls_up_common_prefixes_and_pages_through_them() {
        let items = keys(&["a", "a/b", "a/c", "b/x/y", "b/z", "c", "ca"]);
        let shape = |start, max_keys| ListShape {
            prefix: "",
            delimiter: "/",
            start,
            start_after: None,
            max_keys,
        };
        let all = list_page(&items, &shape(ListStart::Beginning, 1000));
        assert_eq!(render(&all), ["a", "[a/]", "[b/]", "c", "ca"]);
        assert!(!all.truncated);

        let first = list_page(&items, &shape(ListStart::Beginning, 2));
        assert_eq!(render(&first), ["a", "[a/]"]);
        assert!(first.truncated);
        let next = start_after_entry(first.entries.last().unwrap(), String::clone);
        let second = list_page(&items, &shape(next, 2));
        assert_eq!(render(&second), ["[b/]", "c"]);
        assert!(second.truncated);

        let under_b = list_page(
            &items,
            &ListShape {
                prefix: "b/",
                delimiter: "/",
                start: ListStart::Beginning,
                start_after: None,
                max_keys: 1000,
            },
        );
        assert_eq!(render(&under_b), ["[b/x/]", "b/z"]);
    }

    #[test]
    fn tokens_round_trip_and_refuse_garbage() {
        for start in [
            ListStart::AfterKey("photos/été 1.jpg".to_owned()),
            ListStart::AfterPrefix("a/".to_owned()),
        ] {
            let token = continuation_token(&start).unwrap();
            assert_eq!(parse_continuation_token(&token).unwrap(), start);
        }
        assert!(parse_continuation_token("zz").is_err());
        assert!(parse_continuation_token("").is_err());
        assert!(parse_continuation_token("kXYZ").is_err());
    }

    #[test]
    fn url_encoding_keeps_slashes_and_escapes_the_rest() {
        assert_eq!(url_encode("a b+c/é\u{1}"), "a%20b%2Bc/%C3%A9%01");
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        let time = UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        assert_eq!(http_date(time), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
