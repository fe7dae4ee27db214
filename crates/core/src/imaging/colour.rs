//! Colour normalisation to 8-bit sRGB: CMYK to RGB and ICC-tagged RGB to sRGB (moxcms, pure Rust).

use std::sync::{Arc, OnceLock};

use moxcms::{ColorProfile, DataColorSpace, Layout, Transform8BitExecutor, TransformOptions};

use super::bitmap::{Bitmap, Channels};

/// The sRGB ICC profile outputs carry when metadata is kept.
pub(crate) fn srgb_icc() -> Option<Vec<u8>> {
    ColorProfile::new_srgb().encode().ok()
}

/// The CMYK profile libvips (and so sharp) assumes when a CMYK image has none: "Chemical proof", public
/// domain (profiles/README.md).
static DEFAULT_CMYK_PROFILE: &[u8] = include_bytes!("../../profiles/cmyk-chemical-proof.icm");

/// A CMYK → sRGB transform through `profile` (perceptual intent, as sharp asks libvips for).
fn cmyk_transform(profile: &ColorProfile) -> Option<Arc<Transform8BitExecutor>> {
    if profile.color_space != DataColorSpace::Cmyk {
        return None;
    }
    profile
        .create_transform_8bit(
            Layout::Rgba,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            TransformOptions::default(),
        )
        .ok()
}

/// The transform through the default CMYK profile, built once per process (the profile's tables are
/// large: parsing them and building the transform takes milliseconds).
fn default_cmyk_transform() -> Option<&'static Arc<Transform8BitExecutor>> {
    static TRANSFORM: OnceLock<Option<Arc<Transform8BitExecutor>>> = OnceLock::new();
    TRANSFORM
        .get_or_init(|| {
            ColorProfile::new_from_slice(DEFAULT_CMYK_PROFILE)
                .ok()
                .and_then(|p| cmyk_transform(&p))
        })
        .as_ref()
}

/// CMYK pixels (ink amounts, 255 = full ink) to RGB, through the embedded profile when it is a usable
/// CMYK profile, otherwise through the default CMYK profile libvips uses, as sharp does.
pub(crate) fn cmyk_to_rgb(width: u32, height: u32, cmyk: &[u8], icc: Option<&[u8]>) -> Bitmap {
    let embedded = icc
        .and_then(|icc| ColorProfile::new_from_slice(icc).ok())
        .and_then(|p| cmyk_transform(&p));
    let transform = match &embedded {
        Some(transform) => Some(transform),
        None => default_cmyk_transform(),
    };
    let mut rgb = vec![0u8; cmyk.len() / 4 * 3];
    let converted = transform.is_some_and(|t| t.transform(cmyk, &mut rgb).is_ok());
    if !converted {
        // Only if the shipped profile itself were unusable: the naive conversion.
        for (out, p) in rgb.chunks_exact_mut(3).zip(cmyk.chunks_exact(4)) {
            let white = 255 - u32::from(p[3]);
            for (o, &ink) in out.iter_mut().zip(&p[..3]) {
                *o = ((255 - u32::from(ink)) * white / 255) as u8;
            }
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cmyk_profile_parses_and_converts() {
        assert!(default_cmyk_transform().is_some());
        // Paper white stays white; full black is dark; magenta + yellow ink is a red, not (255, 0, 0).
        let rgb = cmyk_to_rgb(3, 1, &[0, 0, 0, 0, 0, 0, 0, 255, 0, 255, 255, 0], None).data;
        assert!(rgb[..3].iter().all(|&v| v >= 245), "{rgb:?}");
        assert!(rgb[3..6].iter().all(|&v| v <= 60), "{rgb:?}");
        let red = &rgb[6..9];
        assert!(
            red[0] > 180 && red[0] < 250 && red[1] < 80 && red[2] < 80,
            "{red:?}"
        );
    }
}
