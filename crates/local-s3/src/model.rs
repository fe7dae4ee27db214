//! What the store keeps about one key: every version, newest first, and the number its next change gets.
//! Both backends store exactly this; the rules in [`crate::rules`] and the engine decide on it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// The versions of one key and its change counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub key: String,
    /// The sequence number the next change of this key gets. Never reused, also after every version is
    /// deleted, so a key's sequencers only grow.
    pub next_sequence: u64,
    /// Newest first. Empty once every version was deleted permanently.
    pub versions: Vec<Version>,
}

impl KeyRecord {
    pub fn empty(key: &str) -> KeyRecord {
        KeyRecord {
            key: key.to_owned(),
            next_sequence: 1,
            versions: Vec::new(),
        }
    }

    /// The newest version, if it is an object (not a delete marker): what a plain GET reads.
    pub fn current_object(&self) -> Option<(&Version, &StoredObject)> {
        let newest = self.versions.first()?;
        newest.object.as_ref().map(|object| (newest, object))
    }

    pub fn version(&self, version_id: &str) -> Option<&Version> {
        self.versions
            .iter()
            .find(|version| version.version_id == version_id)
    }

    /// Takes the next sequence number for a change of this key.
    pub fn take_sequence(&mut self) -> u64 {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        sequence
    }

    /// The blobs the record references (what a backend must keep).
    pub fn blobs(&self) -> impl Iterator<Item = &str> {
        self.versions
            .iter()
            .filter_map(|version| version.object.as_ref().map(|object| object.blob.as_str()))
    }
}

/// One version of a key: an object, or a delete marker (`object: None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Version {
    pub version_id: String,
    /// The key's change number that created this version.
    pub sequence: u64,
    /// Milliseconds since the Unix epoch.
    pub last_modified_ms: u64,
    pub object: Option<StoredObject>,
}

impl Version {
    pub fn last_modified(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.last_modified_ms)
    }

    pub fn is_delete_marker(&self) -> bool {
        self.object.is_none()
    }
}

/// The bytes of an object version (by the backend's blob name) and what S3 returns with them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StoredObject {
    pub size: u64,
    /// Unquoted: the MD5 hex of the body, or `<md5 of the parts' md5s>-<parts>` after a multipart upload.
    pub etag: String,
    /// The backend's name for the bytes (on disk: the version's file name in its key's folder).
    pub blob: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u32>,
    #[serde(default)]
    pub headers: ObjectHeaders,
}

/// The headers stored with an object and returned on GET and HEAD.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ObjectHeaders {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_control: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_disposition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_encoding: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_language: Option<String>,
    /// Seconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<i64>,
    /// `x-amz-meta-*`, names lower-cased.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// A multipart upload in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Upload {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: u64,
    pub headers: ObjectHeaders,
}

/// One uploaded part of a multipart upload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Part {
    pub part_number: u32,
    pub size: u64,
    /// Unquoted MD5 hex of the part.
    pub etag: String,
    pub last_modified_ms: u64,
}

pub(crate) fn millis_since_epoch(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

/// A committed change of one key, as S3 reports it to EventBridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub bucket: String,
    pub key: String,
    /// Orders the changes of one key (see [`compare_sequencers`]); says nothing across keys.
    pub sequencer: String,
    /// When the change was committed.
    pub time: SystemTime,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// EventBridge "Object Created".
    ObjectCreated {
        size: u64,
        /// Unquoted, as S3 events carry it.
        etag: String,
        version_id: String,
        reason: CreatedReason,
    },
    /// EventBridge "Object Deleted".
    ObjectDeleted {
        /// The delete marker's version id, or the permanently deleted version's.
        version_id: String,
        deletion_type: DeletionType,
    },
}

/// The `reason` of an "Object Created" event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreatedReason {
    PutObject,
    CopyObject,
    CompleteMultipartUpload,
}

impl CreatedReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CreatedReason::PutObject => "PutObject",
            CreatedReason::CopyObject => "CopyObject",
            CreatedReason::CompleteMultipartUpload => "CompleteMultipartUpload",
        }
    }
}

/// The `deletion-type` of an "Object Deleted" event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeletionType {
    /// A DELETE without a version id: the key now reads as deleted, its versions remain.
    DeleteMarkerCreated,
    /// A DELETE of one version by its id.
    PermanentlyDeleted,
}

impl DeletionType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeletionType::DeleteMarkerCreated => "Delete Marker Created",
            DeletionType::PermanentlyDeleted => "Permanently Deleted",
        }
    }
}

/// The sequencer of a key's change number: fixed-width upper-case hex, so that S3's comparison rule and
/// plain string order agree.
pub(crate) fn sequencer(sequence: u64) -> String {
    format!("{sequence:016X}")
}

/// Orders two sequencers of the same key as S3 documents it for event ordering: right-pad the shorter with
/// zeros, then compare as strings. The larger one is the later change.
pub fn compare_sequencers(a: &str, b: &str) -> std::cmp::Ordering {
    let width = a.len().max(b.len());
    let pad = |s: &str| format!("{s:0<width$}");
    pad(a).cmp(&pad(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering;

    #[test]
    fn sequencers_of_later_changes_compare_greater() {
        let mut previous = sequencer(1);
        for sequence in [2, 9, 10, 15, 16, 255, 256, 1 << 40, u64::MAX] {
            let next = sequencer(sequence);
            assert_eq!(compare_sequencers(&next, &previous), Ordering::Greater);
            assert_eq!(compare_sequencers(&previous, &next), Ordering::Less);
            previous = next;
        }
    }

    #[test]
    fn sequencers_of_different_lengths_are_right_padded() {
        // S3's own example shape: a shorter sequencer is padded on the right before comparing.
        assert_eq!(
            compare_sequencers("0055AED6DCD90281E5", "0055AED6DCD90281E"),
            Ordering::Greater
        );
        assert_eq!(
            compare_sequencers("0055AED6DCD90281E0", "0055AED6DCD90281E"),
            Ordering::Equal
        );
        assert_eq!(compare_sequencers("1", "0F"), Ordering::Greater);
    }
}
