//! Rendering a small variant from arbitrary bytes, with a low pixel limit so each run stays fast:
//! what the render-variant Lambda does with every upload that passed validation (and with those
//! that would have, had validation been skipped).
//!
//! Properties: render never panics past its own boundary (the core turns a decoder panic into
//! `Corrupt`, and this target reports each distinct caught panic once, as upstream bugs worth
//! knowing); an accepted image yields an output of the requested format whose own header probes to
//! the reported size.
#![no_main]

use std::cell::RefCell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, Once};

use ferrotype_core::{
    decode_preview, probe, render, Fit, Focus, Limits, OutputFormat, Probe, RenderError, VariantSpec,
};
use libfuzzer_sys::fuzz_target;

thread_local! {
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}
static REPORTED: Mutex<Option<HashSet<String>>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// libfuzzer-sys aborts on every panic, even one the core catches on purpose; keep the message
/// instead, and decide below whether it escaped.
fn install_panic_hook() {
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            let location = info.location().map(|l| format!("{}:{}", l.file(), l.line())).unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{info} [{location}]")));
        }))
    });
}

fn take_panic() -> Option<String> {
    LAST_PANIC.with(|p| p.borrow_mut().take())
}

/// The last byte picks the variant, so raw image files are good seeds as they are.
fn spec_for(selector: u8) -> VariantSpec {
    let fit = [Fit::Cover, Fit::Contain, Fit::Fill, Fit::Inside, Fit::Outside][usize::from(selector % 5)];
    let format = [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp][usize::from(selector / 5 % 3)];
    let side = 16 + u32::from(selector / 15 % 4) * 24;
    let mut spec = VariantSpec::new("fuzz", Some(side), if selector & 0x40 != 0 { None } else { Some(side * 3 / 4) });
    spec.fit = fit;
    spec.format = format;
    spec.enlarge = selector & 0x80 != 0;
    spec.progressive = selector & 0x20 != 0;
    spec.keep_metadata = selector & 0x10 != 0;
    spec.quality = 1 + selector % 100;
    spec
}

fuzz_target!(|data: &[u8]| {
    install_panic_hook();
    let limits = Limits {
        max_pixels: 4_000_000,
        ..Limits::default()
    };
    let selector = data.last().copied().unwrap_or(0);
    let spec = spec_for(selector);
    let focus = (selector & 0x08 != 0).then(|| Focus::new(f64::from(selector) / 255.0, 0.3));

    let outcome = catch_unwind(AssertUnwindSafe(|| {
        if selector & 0x07 == 0x07 {
            decode_preview(data, 64, &limits).map(|preview| (preview.width(), preview.height(), None))
        } else {
            render(data, &spec, focus, &limits).map(|r| (r.width, r.height, Some((r.format, r.bytes))))
        }
    }));
    let result = match outcome {
        Ok(result) => result,
        Err(_) => panic!("render panicked: {}", take_panic().unwrap_or_default()),
    };
    if let Some(message) = take_panic() {
        // Caught inside the core (decoder panic turned into Corrupt): report each site once.
        let site = message.rsplit('[').next().unwrap_or_default().to_owned();
        let mut reported = REPORTED.lock().unwrap();
        if reported.get_or_insert_with(HashSet::new).insert(site) {
            eprintln!("NOTE: a panic was caught inside the core: {message}");
        }
        assert!(matches!(result, Err(RenderError::Rejected(_))), "a caught panic must become a rejection");
    }
    match result {
        Ok((width, height, encoded)) => {
            assert!(width >= 1 && height >= 1);
            if let Some((format, bytes)) = encoded {
                assert_eq!(format, spec.format);
                let Ok(Probe::Complete(info)) = probe(&bytes, bytes.len() as u64, &Limits::default()) else {
                    panic!("the rendered {format} does not probe");
                };
                assert_eq!(info.format.as_str(), format.as_str());
                assert_eq!((info.width, info.height), (width, height), "output size differs from its header");
            } else {
                assert!(width <= 64 && height <= 64);
            }
        }
        Err(RenderError::InvalidSpec(e)) => panic!("a valid spec was refused: {e}"),
        // Encode errors mean "not the input's fault" (retried by the state machine): list each kind once
        // so misclassified inputs show up in the log.
        Err(RenderError::Encode(message)) => {
            let kind: String = message.chars().take_while(|c| !c.is_ascii_digit()).collect();
            let mut reported = REPORTED.lock().unwrap();
            if reported.get_or_insert_with(HashSet::new).insert(kind) {
                eprintln!("NOTE: render returned an Encode error: {message}");
            }
        }
        Err(RenderError::Rejected(_)) => {}
    }
});
