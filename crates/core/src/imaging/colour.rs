//! Colour normalisation to 8-bit sRGB: CMYK to RGB and ICC-tagged RGB to sRGB (moxcms, pure Rust).

use std::sync::{Arc, OnceLock};

use moxcms::{
    ColorProfile, DataColorSpace, Layout, Matrix3d, ProfileVersion, ToneReprCurve,
    Transform8BitExecutor, TransformOptions, Xyzd,
};

use super::bitmap::{Bitmap, Channels};

/// The sRGB ICC profile outputs carry when metadata is kept.
pub(crate) fn srgb_icc() -> Option<Vec<u8>> {
    ColorProfile::new_srgb().encode().ok()
}

/// The CMYK profile libvips (and so sharp) assumes when a CMYK image has none: "Chemical proof", public
/// domain (profiles/README.md).
static DEFAULT_CMYK_PROFILE: &[u8] = include_bytes!("../../profiles/cmyk-chemical-proof.icm");

/// A CMYK → sRGB transform through `profile` as libvips (and so sharp) makes it with lcms: perceptual
/// intent, and black point compensation, which lcms turns on by itself for a perceptual transform into
/// a v4 profile such as libvips' sRGB. Without the compensation, a CMYK profile's black (paper under all
/// inks, L* ≈ 13 for the default profile) stays dark grey instead of black: outputs came out ~7/255
/// lighter than sharp's.
///
/// moxcms has no compensation, so it is folded into the destination: the compensation is an affine map
/// in PCS XYZ, `a ⊙ (XYZ − black)` with `a = D50 / (D50 − black)`, which takes the profile's black to
/// sRGB's and keeps white. sRGB's linear RGB is `M⁻¹ · XYZ`, so the whole is `(M⁻¹ · diag(a)) · XYZ − c`
/// with `c = M⁻¹ · diag(a) · black`: colorants `diag(a)⁻¹ · M` carry the scale and each channel's tone
/// curve, sRGB's shifted by `c`, carries the offset. One 8-bit LUT transform, as fast as without.
fn cmyk_transform(profile: &ColorProfile) -> Option<Arc<Transform8BitExecutor>> {
    if profile.color_space != DataColorSpace::Cmyk {
        return None;
    }
    let black = cmyk_black_point(profile)?;
    let mut colorants = ColorProfile::new_srgb().colorant_matrix();
    for ((row, white), black) in colorants.v.iter_mut().zip(D50).zip(black) {
        let scale = white / (white - black);
        row.iter_mut().for_each(|v| *v /= scale);
    }
    // Linear sRGB is `v = to_linear · XYZ − c`. moxcms clamps a destination's linear values to [0, 1]
    // before its tone curves, so white's `v + c` would clip: each channel is scaled by `k = 1 / (1 + c)`
    // into range, and its curve undoes the scale. (A negative offset, from a black outside sRGB's
    // gamut, is dropped: it would lift every shadow.)
    let to_linear = colorants.inverse();
    let offsets = to_linear.v.map(|row| {
        row.iter()
            .zip(&black)
            .map(|(m, b)| m * b)
            .sum::<f64>()
            .max(0.0)
    });
    let scales = offsets.map(|c| 1.0 / (1.0 + c));
    for row in &mut colorants.v {
        for (v, k) in row.iter_mut().zip(scales) {
            *v /= k;
        }
    }
    // sRGB's decoding curve, scaled by k and shifted by k·c: (a·x + b)^g·k = (k^(1/g)·a·x + k^(1/g)·b)^g.
    let destination = srgb_with(&colorants, |channel| {
        let (k, c) = (scales[channel], offsets[channel]);
        let root = k.powf(1.0 / 2.4);
        let params = [
            2.4,
            root / 1.055,
            root * 0.055 / 1.055,
            k / 12.92,
            0.04045,
            k * c,
            k * c,
        ];
        ToneReprCurve::Parametric(params.map(|p| p as f32).to_vec())
    });
    profile
        .create_transform_8bit(
            Layout::Rgba,
            &destination,
            Layout::Rgb,
            TransformOptions::default(),
        )
        .ok()
}

/// sRGB's profile with other colorants (device RGB → PCS XYZ, a column per channel) and tone curves:
/// the destinations the CMYK transforms are built with. Without sRGB's CICP tag, which would let moxcms
/// take its own sRGB path and skip both.
fn srgb_with(colorants: &Matrix3d, curve: impl Fn(usize) -> ToneReprCurve) -> ColorProfile {
    let mut profile = ColorProfile::new_srgb();
    profile.cicp = None;
    let column = |i: usize| Xyzd {
        x: colorants.v[0][i],
        y: colorants.v[1][i],
        z: colorants.v[2][i],
    };
    profile.red_colorant = column(0);
    profile.green_colorant = column(1);
    profile.blue_colorant = column(2);
    profile.red_trc = Some(curve(0));
    profile.green_trc = Some(curve(1));
    profile.blue_trc = Some(curve(2));
    profile
}

/// The PCS white point (D50), XYZ with Y = 1.
const D50: [f64; 3] = [0.9642, 1.0, 0.8249];

/// The black of a CMYK profile in PCS XYZ, as lcms detects it for the perceptual intent: v4 profiles
/// have the fixed perceptual black the ICC specifies; for v2 profiles it is full ink of all four
/// colorants through the profile. (lcms' source neutralises that black's chroma, but its transforms
/// match the chromatic black: with it, our outputs are within 0.3/255 of lcms' and sharp's on average,
/// against 1.5/255 with the neutral one.)
fn cmyk_black_point(profile: &ColorProfile) -> Option<[f64; 3]> {
    if profile.version() >= ProfileVersion::V4_0 && profile.version() != ProfileVersion::Unknown {
        return Some([0.00336, 0.0034731, 0.00287]);
    }
    // A destination whose device values are PCS XYZ itself: identity colorants, linear curves.
    let xyz = srgb_with(&Matrix3d::IDENTITY, |_| {
        ToneReprCurve::Parametric(vec![1.0])
    });
    let transform = profile
        .create_transform_f32(Layout::Rgba, &xyz, Layout::Rgb, TransformOptions::default())
        .ok()?;
    let mut black = [0f32; 3];
    transform.transform(&[1.0; 4], &mut black).ok()?;
    // Blacker than black or whiter than white would be a broken profile: no compensation then.
    let usable = black
        .iter()
        .zip(&D50)
        .all(|(&b, &w)| (0.0..0.5 * w).contains(&f64::from(b)));
    Some(if usable {
        black.map(f64::from)
    } else {
        [0.0; 3]
    })
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

    /// lcms 2.19's perceptual CMYK → sRGB (v4) transform through the default profile, which is what
    /// sharp 0.35 gives (libvips 8.18 with lcms): measured equal to it on a whole CMYK photo.
    const LCMS_PERCEPTUAL: [([u8; 4], [u8; 3]); 9] = [
        ([0, 0, 0, 0], [255, 255, 255]),
        ([255, 255, 255, 255], [0, 0, 0]),
        ([0, 0, 0, 255], [20, 5, 0]),
        ([0, 255, 255, 0], [232, 0, 0]),
        ([255, 0, 0, 0], [0, 153, 227]),
        ([0, 0, 0, 128], [134, 133, 132]),
        ([128, 64, 0, 32], [109, 142, 183]),
        ([40, 30, 30, 200], [71, 69, 68]),
        ([20, 20, 20, 230], [45, 40, 35]),
    ];

    #[test]
    fn cmyk_converts_as_lcms_does_with_black_point_compensation() {
        let cmyk: Vec<u8> = LCMS_PERCEPTUAL.iter().flat_map(|(c, _)| *c).collect();
        let rgb = cmyk_to_rgb(LCMS_PERCEPTUAL.len() as u32, 1, &cmyk, None).data;
        for ((ink, expected), got) in LCMS_PERCEPTUAL.iter().zip(rgb.chunks_exact(3)) {
            let off = expected.iter().zip(got).map(|(&e, &g)| e.abs_diff(g)).max();
            assert!(off <= Some(1), "{ink:?}: lcms {expected:?}, ours {got:?}");
        }
    }

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
