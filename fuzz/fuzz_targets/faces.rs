//! The built-in face detector on arbitrary grey pixels and scan settings: what detect-faces runs on
//! every preview, with SeetaFace's cascade in our own code (crates/core/src/faces/seeta/).
//!
//! Input: width − 40 and height − 40 (one byte each), then pyramid scale, window step and minimum face
//! (one byte each), then the pixels row by row (short input is padded with zeros).
//!
//! Properties: detection never panics, whatever the pixels, the size (from one window to 295 px) or the
//! settings; every face found lies inside the image with a confidence in 0..=1.
#![no_main]

use ferrotype_core::faces::{BuiltinDetector, DetectorSettings};
use image::{Rgb, RgbImage};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [width, height, pyramid, step, min_face, pixels @ ..] = data else {
        return;
    };
    let (width, height) = (40 + u32::from(*width), 40 + u32::from(*height));
    let settings = DetectorSettings {
        scan_max_side: 640,
        min_face_px: 20 + u32::from(*min_face % 64),
        pyramid_scale: 0.5 + f32::from(*pyramid) / 255.0 * 0.45,
        window_step: 1 + u32::from(*step % 16),
    };
    let image = RgbImage::from_fn(width, height, |x, y| {
        let grey = pixels
            .get((y * width + x) as usize)
            .copied()
            .unwrap_or(0);
        Rgb([grey; 3])
    });
    let faces = BuiltinDetector::with_settings(settings)
        .detect_blocking(&image)
        .expect("the embedded model parses");
    for face in faces {
        assert!(face.left >= 0.0 && face.top >= 0.0, "{face:?}");
        assert!(face.left + face.width <= 1.0 + 1e-9, "{face:?}");
        assert!(face.top + face.height <= 1.0 + 1e-9, "{face:?}");
        assert!((0.0..=1.0).contains(&face.confidence), "{face:?}");
    }
});
