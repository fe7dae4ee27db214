//! Object keys: S3 form-encoding of keys in events and its inverse.
//!
//! Properties: `decode_key(encode_key(k)) == k` for every UTF-8 key; the encoding uses only characters
//! that survive any event transport unchanged; decoding arbitrary text never panics, and the candidate
//! keys always include the raw key.
#![no_main]

use ferrotype_core::event::{candidate_keys, decode_key, encode_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);

    let encoded = encode_key(&text);
    assert!(
        encoded
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.~/+%".contains(&b)),
        "encoding left an unsafe character: {encoded:?}"
    );
    assert_eq!(decode_key(&encoded).as_deref(), Some(&*text), "decode(encode(k)) != k");
    let candidates = candidate_keys(&encoded);
    assert_eq!(candidates[0], text, "the decoded key must be tried first");

    // Whatever a client sends as a key, decoding must not panic and the raw key stays a candidate.
    let raw = candidate_keys(&text);
    assert!(!raw.is_empty() && raw.len() <= 2);
    assert_eq!(raw.last().map(String::as_str), Some(&*text));
    if let Some(decoded) = decode_key(&text) {
        assert_eq!(raw[0], decoded);
    }
});
