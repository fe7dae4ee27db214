//! EventBridge "Object Created" events as the validate Lambda receives them (any JSON at all).
//!
//! Properties: parsing never panics; an accepted event names a bucket and a key, offers candidate keys,
//! and survives a serialise/parse round trip unchanged.
#![no_main]

use ferrotype_core::event::ObjectEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(event) = ObjectEvent::created(value) else {
        return;
    };
    assert!(!event.bucket().is_empty());
    let candidates = event.candidate_keys();
    assert!(!candidates.is_empty());
    assert_eq!(candidates.last(), Some(&event.detail.object.key));
    let again = serde_json::to_value(&event).expect("an event serialises");
    assert_eq!(ObjectEvent::created(again).as_ref(), Ok(&event), "round trip changed the event");
});
