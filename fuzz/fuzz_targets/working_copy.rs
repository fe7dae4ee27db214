//! Reading a stored working copy from arbitrary bytes, as detect-faces and render-variant do with
//! whatever the output bucket hands them (a copy damaged, truncated, or written by another version).
//!
//! Properties: `WorkingCopy::decode` never panics and never allocates more than the pixels the limits
//! allow (libFuzzer's -rss_limit_mb catches the rest); a copy it accepts encodes back to bytes that
//! decode to the same copy; a whole copy renders a small variant and a face preview without error, and
//! a part (the pixels some variants read) renders or refuses with an error, never a panic.
#![no_main]

use ferrotype_core::{face_preview, render_working, Fit, Limits, VariantSpec, WorkingCopy};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits {
        max_pixels: 4_000_000,
        ..Limits::default()
    };
    let Ok(copy) = WorkingCopy::decode(data.to_vec(), &limits) else {
        return;
    };
    let again = WorkingCopy::decode(copy.encode(), &limits).expect("an accepted copy re-encodes");
    assert_eq!(again, copy);
    let mut spec = VariantSpec::new("fuzz", Some(24), Some(18));
    spec.fit = Fit::Cover;
    if !copy.is_whole() {
        if let Ok(rendered) = render_working(&copy, &spec, None) {
            assert!(rendered.width >= 1 && rendered.height >= 1);
        }
        assert!(face_preview(&copy, 32).is_err(), "a part has no preview");
        return;
    }
    let rendered = render_working(&copy, &spec, None).expect("an accepted copy renders");
    assert!(rendered.width >= 1 && rendered.height >= 1);
    let preview = face_preview(&copy, 32).expect("an accepted copy has a preview");
    assert!(preview.width() <= 32 && preview.height() <= 32);
});
