//! Reading, normalising, resizing and encoding images: the heart of the product.
//!
//! Order of work for every render: sniff and read the header (`probe`) and apply the limits before
//! decoding; decode (JPEG at a reduced DCT scale when the target allows) under an allocation cap;
//! turn upright (EXIF orientation); convert to 8-bit (CMYK → RGB); crop/resize with Lanczos3
//! (alpha premultiplied); convert ICC-tagged colour to sRGB; letterbox or flatten alpha; encode.

mod bitmap;
mod colour;
mod decode;
mod encode;
pub mod exif;
mod geometry;
mod probe;

use serde::{Deserialize, Serialize};

use crate::rejection::Rejection;
use crate::spec::{
    Focus, Limits, OutputFormat, Rgb, SourceFormat, SpecError, VariantSpec, MAX_VARIANT_SIDE,
};
use bitmap::{Bitmap, Channels};

pub use geometry::crop_window;

/// What the header says about an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageInfo {
    pub format: SourceFormat,
    /// Stored pixels (before orientation).
    pub width: u32,
    pub height: u32,
    /// EXIF orientation, 1..=8 (1 when absent).
    pub orientation: u8,
    /// Dimensions once turned upright (swapped for orientations 5..=8).
    pub upright_width: u32,
    pub upright_height: u32,
    pub has_alpha: bool,
    /// Known to be animated from the header (APNG, looping GIF, animated WebP); only the first frame renders.
    pub animated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Complete(ImageInfo),
    /// `bytes` was a prefix and the header continues past it: call again with more bytes.
    NeedMoreBytes,
}

/// Sniffs the real format and reads dimensions and orientation from the header of `bytes`
/// (the whole object, or a prefix of an object of `total_size` bytes), applying `limits`.
pub fn probe(bytes: &[u8], total_size: u64, limits: &Limits) -> Result<Probe, Rejection> {
    probe::probe(bytes, total_size, limits)
}

/// A rendered variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub width: u32,
    pub height: u32,
    pub format: OutputFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The source is refused for good.
    #[error("{0}")]
    Rejected(Rejection),
    /// The variant cannot be rendered as specified (a configuration error).
    #[error("{0}")]
    InvalidSpec(SpecError),
    /// Resizing or encoding failed for a reason that is not the input's fault.
    #[error("rendering failed: {0}")]
    Encode(String),
}

impl From<Rejection> for RenderError {
    fn from(r: Rejection) -> Self {
        RenderError::Rejected(r)
    }
}

fn probe_whole(bytes: &[u8], limits: &Limits) -> Result<ImageInfo, Rejection> {
    match probe::probe(bytes, bytes.len() as u64, limits)? {
        Probe::Complete(info) => Ok(info),
        // Only a prefix can need more bytes; the whole object cannot.
        Probe::NeedMoreBytes => Err(Rejection::corrupt("the header is truncated")),
    }
}

/// The smallest JPEG DCT scale whose output still covers `needed` (upright) in both axes,
/// as the stored size to request from the decoder; None when only the full size does.
fn decode_size_for(info: &ImageInfo, needed: (u32, u32)) -> Option<(u32, u32)> {
    if info.format != SourceFormat::Jpeg {
        return None;
    }
    let (up_w, up_h) = (info.upright_width, info.upright_height);
    let scaled = |len: u32, eighths: u32| (len * eighths).div_ceil(8);
    [1u32, 2, 4]
        .into_iter()
        .find(|&k| scaled(up_w, k) >= needed.0 && scaled(up_h, k) >= needed.1)
        .map(|k| (scaled(up_w, k), scaled(up_h, k)))
}

/// Renders one variant of an image. `focus` (fractions of the upright image) steers cover crops
/// when the spec follows it; without one the crop is centred.
pub fn render(
    bytes: &[u8],
    spec: &VariantSpec,
    focus: Option<Focus>,
    limits: &Limits,
) -> Result<Rendered, RenderError> {
    spec.validate().map_err(RenderError::InvalidSpec)?;
    let info = probe_whole(bytes, limits)?;
    let focus = match (spec.follow_focus, focus) {
        (true, Some(f)) => f.clamped(),
        _ => Focus::CENTRE,
    };
    let layout = geometry::layout(info.upright_width, info.upright_height, spec, focus);
    let (canvas_w, canvas_h) = layout.canvas;
    if canvas_w > MAX_VARIANT_SIDE || canvas_h > MAX_VARIANT_SIDE {
        return Err(RenderError::Encode(format!(
            "the output would be {canvas_w}×{canvas_h}, beyond {MAX_VARIANT_SIDE} pixels per side"
        )));
    }
    let (sx, sy, sw, sh) = layout.source;
    let needed = (
        (u64::from(info.upright_width) * u64::from(layout.resized.0)).div_ceil(u64::from(sw))
            as u32,
        (u64::from(info.upright_height) * u64::from(layout.resized.1)).div_ceil(u64::from(sh))
            as u32,
    );
    let decoded = decode::decode(bytes, &info, decode_size_for(&info, needed))?;
    let bitmap = decoded.bitmap.without_opaque_alpha();
    // The region in decoded pixels (the decode may be smaller than the header's size).
    let fx = f64::from(bitmap.width) / f64::from(info.upright_width);
    let fy = f64::from(bitmap.height) / f64::from(info.upright_height);
    // Clamped: scaling by a ratio can overshoot the edge by a rounding error, which the resizer refuses.
    let (x, y) = (f64::from(sx) * fx, f64::from(sy) * fy);
    let region = (
        x,
        y,
        (f64::from(sw) * fx).min(f64::from(bitmap.width) - x),
        (f64::from(sh) * fy).min(f64::from(bitmap.height) - y),
    );
    let bitmap = bitmap
        .resized(region, layout.resized.0, layout.resized.1)
        .map_err(RenderError::Encode)?;
    let mut bitmap = colour::to_srgb(bitmap, decoded.icc.as_deref());

    let keeps_alpha = spec.format.supports_alpha();
    if !keeps_alpha {
        bitmap = bitmap.flattened(spec.flatten_colour());
    }
    if layout.letterboxed() {
        bitmap = letterbox(bitmap, layout.canvas, layout.offset, spec);
    }
    let metadata = if spec.keep_metadata {
        encode::Metadata {
            icc: colour::srgb_icc(),
            exif: decoded
                .exif
                .as_deref()
                .map(|e| exif::with_upright_orientation(e.strip_prefix(b"Exif\0\0").unwrap_or(e))),
        }
    } else {
        encode::Metadata::default()
    };
    let bytes = encode::encode(
        &bitmap,
        spec.format,
        spec.quality,
        spec.progressive,
        &metadata,
    )
    .map_err(RenderError::Encode)?;
    Ok(Rendered {
        bytes,
        width: bitmap.width,
        height: bitmap.height,
        format: spec.format,
    })
}

/// Places the resized image on the output canvas. The letterbox is the spec's background colour, or,
/// when it names none, transparent for formats with alpha and white for JPEG.
fn letterbox(bitmap: Bitmap, canvas: (u32, u32), offset: (u32, u32), spec: &VariantSpec) -> Bitmap {
    let Rgb(r, g, b) = spec.flatten_colour();
    let grey_fill = r == g && g == b;
    let (channels, fill) = match (spec.format.supports_alpha(), spec.background) {
        (true, None) if bitmap.channels.is_grey() => (Channels::GreyAlpha, vec![0, 0]),
        (true, None) => (Channels::Rgba, vec![0; 4]),
        (true, Some(_)) if bitmap.channels.is_grey() && grey_fill => {
            (Channels::GreyAlpha, vec![r, 255])
        }
        (true, Some(_)) => (Channels::Rgba, vec![r, g, b, 255]),
        (false, _) if bitmap.channels == Channels::Grey && grey_fill => (Channels::Grey, vec![r]),
        (false, _) => (Channels::Rgb, vec![r, g, b]),
    };
    bitmap
        .converted(channels)
        .placed_on_canvas(canvas.0, canvas.1, offset, &fill)
}

/// An upright sRGB 8-bit RGB preview whose longest side is at most `max_side` (alpha flattened onto
/// white), decoded at a reduced scale when possible: what face detectors look at.
pub fn decode_preview(
    bytes: &[u8],
    max_side: u32,
    limits: &Limits,
) -> Result<image::RgbImage, RenderError> {
    let info = probe_whole(bytes, limits)?;
    let (up_w, up_h) = (info.upright_width, info.upright_height);
    let longest = up_w.max(up_h);
    let max_side = max_side.max(1);
    let target = if longest <= max_side {
        (up_w, up_h)
    } else {
        let scale = |v: u32| {
            ((u64::from(v) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest))
                .max(1) as u32
        };
        (scale(up_w).min(max_side), scale(up_h).min(max_side))
    };
    let decoded = decode::decode(bytes, &info, decode_size_for(&info, target))?;
    let bitmap = decoded
        .bitmap
        .flattened(crate::spec::Rgb::WHITE)
        .converted(Channels::Rgb);
    let full = (0.0, 0.0, f64::from(bitmap.width), f64::from(bitmap.height));
    let bitmap = bitmap
        .resized(full, target.0, target.1)
        .map_err(RenderError::Encode)?;
    let bitmap = colour::to_srgb(bitmap, decoded.icc.as_deref());
    image::RgbImage::from_raw(bitmap.width, bitmap.height, bitmap.data)
        .ok_or_else(|| RenderError::Encode("preview buffer size mismatch".into()))
}
