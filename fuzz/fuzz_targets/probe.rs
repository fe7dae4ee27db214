//! Format sniffing, header parsing and the limits, on arbitrary bytes: what the validate Lambda does
//! with the first bytes of every upload.
//!
//! Properties: never panics (debug assertions are on, so arithmetic overflow counts); an accepted
//! header respects the limits and is self-consistent; probing a prefix of an object (as validate does
//! with a ranged GET) never contradicts probing the whole object.
#![no_main]

use ferrotype_core::{probe, Limits, Probe, RejectionCode};
use libfuzzer_sys::fuzz_target;

/// Low enough that the fuzzer meets the pixel limit often, as well as the byte limit.
fn limits() -> Limits {
    Limits {
        max_bytes: 1 << 20,
        max_pixels: 4_000_000,
        ..Limits::default()
    }
}

fuzz_target!(|data: &[u8]| {
    let limits = limits();
    let whole = probe(data, data.len() as u64, &limits);
    if let Ok(Probe::Complete(info)) = &whole {
        assert!(info.width > 0 && info.height > 0);
        assert!(u64::from(info.width) * u64::from(info.height) <= limits.max_pixels);
        assert!((1..=8).contains(&info.orientation));
        let upright = if info.orientation >= 5 { (info.height, info.width) } else { (info.width, info.height) };
        assert_eq!((info.upright_width, info.upright_height), upright);
        assert!(info.format.is_decodable() && limits.formats.contains(&info.format));
    }
    assert_ne!(whole, Ok(Probe::NeedMoreBytes), "the whole object cannot need more bytes");

    // The same object seen through a prefix (the first byte picks its length).
    if let Some(&cut) = data.first() {
        let prefix = &data[..usize::from(cut).min(data.len())];
        match probe(prefix, data.len() as u64, &limits) {
            Ok(Probe::NeedMoreBytes) => {}
            Ok(Probe::Complete(info)) => assert_eq!(whole, Ok(Probe::Complete(info)), "prefix and whole disagree"),
            // A prefix can be too short to see an SVG's <svg> tag; both are refusals all the same.
            Err(r) if matches!(r.code, RejectionCode::NotAnImage | RejectionCode::UnsupportedFormat) => {
                assert!(whole.is_err(), "a prefix was refused ({r:?}) but the whole object was accepted")
            }
            Err(r) => assert_eq!(whole.map_err(|w| w.code), Err(r.code), "prefix and whole disagree"),
        }
    }
    // An object over the byte limit is refused from its size alone.
    let too_large = probe(data, limits.max_bytes + 1, &limits).unwrap_err();
    assert_eq!(too_large.code, RejectionCode::TooLarge);
});
