//! Colour normalisation to 8-bit sRGB: CMYK to RGB and ICC-tagged RGB to sRGB (moxcms, pure Rust).

use moxcms::{ColorProfile, DataColorSpace, Layout, TransformOptions};

use super::bitmap::{Bitmap, Channels};

/// The sRGB ICC profile outputs carry when metadata is kept.
pub(crate) fn srgb_icc() -> Option<Vec<u8>> {
    ColorProfile::new_srgb().encode().ok()
}

/// CMYK pixels (ink amounts, 255 = full ink) to RGB, through the embedded profile when it is a usable
/// CMYK profile, otherwise with the naive conversion (what decoders without colour management do).
pub(crate) fn cmyk_to_rgb(width: u32, height: u32, cmyk: &[u8], icc: Option<&[u8]>) -> Bitmap {
    let managed = icc
        .and_then(|icc| ColorProfile::new_from_slice(icc).ok())
        .filter(|p| p.color_space == DataColorSpace::Cmyk)
        .and_then(|p| {
            let t = p
                .create_transform_8bit(
                    Layout::Rgba,
                    &ColorProfile::new_srgb(),
                    Layout::Rgb,
                    TransformOptions::default(),
                )
                .ok()?;
            let mut rgb = vec![0u8; cmyk.len() / 4 * 3];
            t.transform(cmyk, &mut rgb).ok()?;
            Some(rgb)
        });
    let rgb = managed.unwrap_or_else(|| {
        cmyk.chunks_exact(4)
            .flat_map(|p| {
                let white = 255 - u32::from(p[3]);
                let channel = |ink: u8| ((255 - u32::from(ink)) * white / 255) as u8;
                [channel(p[0]), channel(p[1]), channel(p[2])]
            })
            .collect()
    });
    Bitmap::new(width, height, Channels::Rgb, rgb)
}

/// Converts RGB(A) pixels described by an embedded ICC profile to sRGB. Grey images stay grey (their
/// profiles are near-sRGB tone curves); unusable profiles leave the pixels as they are, as browsers do.
pub(crate) fn to_srgb(bitmap: Bitmap, icc: Option<&[u8]>) -> Bitmap {
    let Some(icc) = icc else { return bitmap };
    if bitmap.channels.is_grey() {
        return bitmap;
    }
    let Ok(profile) = ColorProfile::new_from_slice(icc) else {
        return bitmap;
    };
    if profile.color_space != DataColorSpace::Rgb {
        return bitmap;
    }
    let layout = if bitmap.channels.has_alpha() {
        Layout::Rgba
    } else {
        Layout::Rgb
    };
    let Ok(transform) = profile.create_transform_8bit(
        layout,
        &ColorProfile::new_srgb(),
        layout,
        TransformOptions::default(),
    ) else {
        return bitmap;
    };
    let mut out = vec![0u8; bitmap.data.len()];
    match transform.transform(&bitmap.data, &mut out) {
        Ok(()) => Bitmap {
            data: out,
            ..bitmap
        },
        Err(_) => bitmap,
    }
}
