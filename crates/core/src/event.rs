//! The EventBridge S3 events that start every execution, "Object Created" and "Object Deleted", as the
//! S3 → EventBridge rules deliver them (FACTS.md). One type for everyone who reads or writes them: the
//! validate and record-result functions, the local runner that emits them, and the CLI's backfill and
//! reconcile. The event names the version of the object it is about ([`VersionIdentity`]).
//!
//! Object keys: classic S3 notifications form-encode keys (`red flower.jpg` → `red+flower.jpg`); whether
//! EventBridge does is unverified. So producers here encode the way S3 does, and readers try the
//! decoded key first and the raw key second ([`candidate_keys`]).

use serde::{Deserialize, Serialize};

pub const SOURCE: &str = "aws.s3";
pub const OBJECT_CREATED: &str = "Object Created";
pub const OBJECT_DELETED: &str = "Object Deleted";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectEvent {
    #[serde(default = "zero")]
    pub version: String,
    #[serde(default)]
    pub id: String,
    #[serde(rename = "detail-type")]
    pub detail_type: String,
    pub source: String,
    #[serde(default)]
    pub account: String,
    #[serde(default)]
    pub time: String,
    #[serde(default)]
    pub region: String,
    #[serde(default)]
    pub resources: Vec<String>,
    pub detail: ObjectEventDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectEventDetail {
    #[serde(default = "zero")]
    pub version: String,
    pub bucket: BucketName,
    pub object: ObjectDetail,
    #[serde(
        rename = "request-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    #[serde(
        rename = "source-ip-address",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub source_ip_address: Option<String>,
    /// Created: PutObject, POST Object, CopyObject or CompleteMultipartUpload. Deleted: DeleteObject or
    /// Lifecycle Expiration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Deleted only: "Delete Marker Created" or "Permanently Deleted".
    #[serde(
        rename = "deletion-type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub deletion_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketName {
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectDetail {
    /// As delivered: possibly form-encoded. Use [`ObjectEvent::candidate_keys`].
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Absent when the bucket is not versioned.
    #[serde(
        rename = "version-id",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub version_id: Option<String>,
    /// Orders the changes of one key (a later change has a larger sequencer); unique per write.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
}

/// Which version of an object an event is about: what tells one upload of a key from every other.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VersionIdentity {
    /// A versioned bucket: the version id names the upload.
    VersionId(String),
    /// An unversioned bucket: the ETag (quotes removed) and the sequencer of the write, when the event
    /// carries one (events started by a backfill do not).
    Etag {
        etag: String,
        sequencer: Option<String>,
    },
}

impl VersionIdentity {
    /// The canonical text hashed into version tags.
    pub fn canonical(&self) -> String {
        match self {
            VersionIdentity::VersionId(id) => format!("version-id:{id}"),
            VersionIdentity::Etag { etag, sequencer } => {
                format!(
                    "etag:{etag}\0sequencer:{}",
                    sequencer.as_deref().unwrap_or("")
                )
            }
        }
    }
}

fn zero() -> String {
    "0".to_owned()
}

/// What a producer knows about the object it announces.
#[derive(Debug, Clone, Default)]
pub struct NewObject<'a> {
    pub bucket: &'a str,
    /// The real (unencoded) key.
    pub key: &'a str,
    pub size: u64,
    pub etag: Option<&'a str>,
    pub version_id: Option<&'a str>,
    pub region: &'a str,
    pub account: &'a str,
    /// RFC 3339 UTC.
    pub time: &'a str,
    /// Unique per event (the local runner and backfill derive it from key and etag).
    pub id: &'a str,
    /// One of S3's reasons; uploads and backfills announce `PutObject`.
    pub reason: &'a str,
    /// What S3 stamped on the write, when known (a listing does not tell it).
    pub sequencer: Option<&'a str>,
}

/// What a producer knows about a deletion it announces.
#[derive(Debug, Clone, Default)]
pub struct DeletedObject<'a> {
    pub bucket: &'a str,
    /// The real (unencoded) key.
    pub key: &'a str,
    /// The version removed, or the delete marker's version id.
    pub version_id: Option<&'a str>,
    pub sequencer: Option<&'a str>,
    /// "Delete Marker Created" or "Permanently Deleted".
    pub deletion_type: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub time: &'a str,
    pub id: &'a str,
}

impl ObjectEvent {
    /// The event S3 would send for a new object, with the key encoded as S3 encodes it.
    pub fn for_object(object: &NewObject<'_>) -> ObjectEvent {
        ObjectEvent {
            version: zero(),
            id: object.id.to_owned(),
            detail_type: OBJECT_CREATED.to_owned(),
            source: SOURCE.to_owned(),
            account: object.account.to_owned(),
            time: object.time.to_owned(),
            region: object.region.to_owned(),
            resources: vec![format!("arn:aws:s3:::{}", object.bucket)],
            detail: ObjectEventDetail {
                version: zero(),
                bucket: BucketName {
                    name: object.bucket.to_owned(),
                },
                object: ObjectDetail {
                    key: encode_key(object.key),
                    size: Some(object.size),
                    etag: object.etag.map(str::to_owned),
                    version_id: object.version_id.map(str::to_owned),
                    sequencer: object.sequencer.map(str::to_owned),
                },
                request_id: None,
                requester: None,
                source_ip_address: None,
                reason: Some(object.reason.to_owned()),
                deletion_type: None,
            },
        }
    }

    /// The event S3 would send for a deletion.
    pub fn for_deletion(object: &DeletedObject<'_>) -> ObjectEvent {
        ObjectEvent {
            version: zero(),
            id: object.id.to_owned(),
            detail_type: OBJECT_DELETED.to_owned(),
            source: SOURCE.to_owned(),
            account: object.account.to_owned(),
            time: object.time.to_owned(),
            region: object.region.to_owned(),
            resources: vec![format!("arn:aws:s3:::{}", object.bucket)],
            detail: ObjectEventDetail {
                version: zero(),
                bucket: BucketName {
                    name: object.bucket.to_owned(),
                },
                object: ObjectDetail {
                    key: encode_key(object.key),
                    size: None,
                    etag: None,
                    version_id: object.version_id.map(str::to_owned),
                    sequencer: object.sequencer.map(str::to_owned),
                },
                request_id: None,
                requester: None,
                source_ip_address: None,
                reason: Some("DeleteObject".to_owned()),
                deletion_type: Some(object.deletion_type.to_owned()),
            },
        }
    }

    /// Parses an event and checks it is an S3 "Object Created" event with a bucket and a key.
    pub fn created(value: serde_json::Value) -> Result<ObjectEvent, EventError> {
        Self::parse(value, OBJECT_CREATED)
    }

    /// Parses an event and checks it is an S3 "Object Deleted" event with a bucket and a key.
    pub fn deleted(value: serde_json::Value) -> Result<ObjectEvent, EventError> {
        Self::parse(value, OBJECT_DELETED)
    }

    fn parse(value: serde_json::Value, detail_type: &str) -> Result<ObjectEvent, EventError> {
        let event: ObjectEvent = serde_json::from_value(value)
            .map_err(|err| EventError(format!("not an S3 {detail_type} event: {err}")))?;
        if event.source != SOURCE || event.detail_type != detail_type {
            return Err(EventError(format!(
                "expected source {SOURCE:?} and detail-type {detail_type:?}, got {:?} and {:?}",
                event.source, event.detail_type
            )));
        }
        if event.detail.bucket.name.is_empty() || event.detail.object.key.is_empty() {
            return Err(EventError("the event names no bucket or no key".to_owned()));
        }
        Ok(event)
    }

    pub fn is_deletion(&self) -> bool {
        self.detail_type == OBJECT_DELETED
    }

    /// The version of the object this event announces: by version id when the event carries one, else
    /// by ETag and sequencer. None for an event that names neither (a deletion in an unversioned bucket).
    pub fn version_identity(&self) -> Option<VersionIdentity> {
        let object = &self.detail.object;
        if let Some(id) = object
            .version_id
            .as_deref()
            .filter(|id| !id.is_empty() && *id != "null")
        {
            return Some(VersionIdentity::VersionId(id.to_owned()));
        }
        let etag = object.etag.as_deref()?.trim_matches('"');
        Some(VersionIdentity::Etag {
            etag: etag.to_owned(),
            sequencer: object.sequencer.clone().filter(|s| !s.is_empty()),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.detail.bucket.name
    }

    /// The keys the object may really have, most likely first.
    pub fn candidate_keys(&self) -> Vec<String> {
        candidate_keys(&self.detail.object.key)
    }
}

/// The event could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventError(pub String);

impl std::fmt::Display for EventError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EventError {}

/// The decoded key, then the raw key if it differs (FACTS.md: decode, and if the decoded key is not found
/// but the raw one is, use the raw key).
pub fn candidate_keys(raw: &str) -> Vec<String> {
    match decode_key(raw) {
        Some(decoded) if decoded != raw => vec![decoded, raw.to_owned()],
        _ => vec![raw.to_owned()],
    }
}

/// Form-decoding as S3 notifications use it: `+` is a space, `%XX` a byte. `None` when the result is not
/// UTF-8 or a `%` escape is malformed (then the key can only be the raw one).
pub fn decode_key(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The inverse of [`decode_key`], as S3 encodes keys in notifications: unreserved characters and `/`
/// stay, a space becomes `+`, every other byte `%XX`.
pub fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for &byte in key.as_bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(byte as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example from the S3 user guide ("EventBridge event message structure").
    const DOC_EXAMPLE: &str = r#"{
      "version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": "Object Created",
      "source": "aws.s3", "account": "111122223333", "time": "2021-11-12T00:00:00Z", "region": "ca-central-1",
      "resources": ["arn:aws:s3:::amzn-s3-demo-bucket1"],
      "detail": { "version": "0", "bucket": { "name": "amzn-s3-demo-bucket1" },
        "object": { "key": "example-key", "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                    "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "617f08299329d189" },
        "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012", "source-ip-address": "1.2.3.4",
        "reason": "PutObject" } }"#;

    #[test]
    fn parses_the_documented_event() {
        let event = ObjectEvent::created(serde_json::from_str(DOC_EXAMPLE).unwrap()).unwrap();
        assert_eq!(event.bucket(), "amzn-s3-demo-bucket1");
        assert_eq!(
            event.detail.object.version_id.as_deref(),
            Some("IYV3p45BT0ac8hjHg1houSdS1a.Mro8e")
        );
        assert_eq!(event.candidate_keys(), vec!["example-key"]);
        let round_trip: serde_json::Value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            round_trip,
            serde_json::from_str::<serde_json::Value>(DOC_EXAMPLE).unwrap()
        );
    }

    #[test]
    fn unversioned_events_and_other_events() {
        let mut value: serde_json::Value = serde_json::from_str(DOC_EXAMPLE).unwrap();
        value["detail"]["object"]
            .as_object_mut()
            .unwrap()
            .remove("version-id");
        let event = ObjectEvent::created(value.clone()).unwrap();
        assert_eq!(event.detail.object.version_id, None);

        value["detail-type"] = "Object Deleted".into();
        assert!(ObjectEvent::created(value.clone())
            .unwrap_err()
            .0
            .contains("Object Created"));
        assert!(ObjectEvent::deleted(value).unwrap().is_deletion());
        assert!(ObjectEvent::created(serde_json::json!({"hello": 1})).is_err());
        assert!(ObjectEvent::created(serde_json::json!([])).is_err());
    }

    #[test]
    fn odd_keys_survive_encoding_and_both_candidates_are_offered() {
        for key in [
            "uploads/red flower.jpg",
            "uploads/a+b.jpg",
            "uploads/100% real.png",
            "uploads/café/naïve 写真.jpeg",
            "uploads/photo (1).jpg",
            "uploads/~tilde_and-dash.v2.webp",
        ] {
            let encoded = encode_key(key);
            assert!(!encoded.contains(' '), "{encoded}");
            assert_eq!(decode_key(&encoded).as_deref(), Some(key));
            assert_eq!(candidate_keys(&encoded)[0], key);
        }
        assert_eq!(
            encode_key("uploads/red flower.jpg"),
            "uploads/red+flower.jpg"
        );
        // A raw key delivered unencoded: decoding changes it, so the raw one is the fallback.
        assert_eq!(
            candidate_keys("uploads/a+b.jpg"),
            vec!["uploads/a b.jpg", "uploads/a+b.jpg"]
        );
        // Not decodable: only the raw key.
        assert_eq!(candidate_keys("uploads/100%.jpg"), vec!["uploads/100%.jpg"]);
        assert_eq!(candidate_keys("uploads/%FF.jpg"), vec!["uploads/%FF.jpg"]);
    }

    #[test]
    fn produced_events_parse_back() {
        let event = ObjectEvent::for_object(&NewObject {
            bucket: "in",
            key: "uploads/red flower.jpg",
            size: 42,
            etag: Some("\"abc\""),
            version_id: None,
            region: "local",
            account: "000000000000",
            time: "2026-11-28T00:00:00Z",
            id: "id-1",
            reason: "PutObject",
            sequencer: Some("0055AED6DCD90281E5"),
        });
        let parsed = ObjectEvent::created(serde_json::to_value(&event).unwrap()).unwrap();
        assert_eq!(parsed.detail.object.key, "uploads/red+flower.jpg");
        assert_eq!(parsed.candidate_keys()[0], "uploads/red flower.jpg");
        assert_eq!(parsed.detail.object.size, Some(42));
        assert_eq!(
            parsed.version_identity(),
            Some(VersionIdentity::Etag {
                etag: "abc".into(),
                sequencer: Some("0055AED6DCD90281E5".into())
            })
        );
    }

    #[test]
    fn versions_are_named_by_version_id_first() {
        let event = ObjectEvent::created(serde_json::from_str(DOC_EXAMPLE).unwrap()).unwrap();
        assert_eq!(
            event.version_identity(),
            Some(VersionIdentity::VersionId(
                "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e".into()
            ))
        );
        let deletion = ObjectEvent::for_deletion(&DeletedObject {
            bucket: "in",
            key: "uploads/a b.jpg",
            version_id: None,
            sequencer: Some("0A"),
            deletion_type: "Permanently Deleted",
            ..Default::default()
        });
        let parsed = ObjectEvent::deleted(serde_json::to_value(&deletion).unwrap()).unwrap();
        assert_eq!(parsed.candidate_keys()[0], "uploads/a b.jpg");
        assert_eq!(parsed.version_identity(), None);
        assert_eq!(
            parsed.detail.deletion_type.as_deref(),
            Some("Permanently Deleted")
        );
    }
}
