//! Reading, normalising, resizing and encoding images: the heart of the product.
//!
//! Order of work: sniff and read the header (`probe`) and apply the limits before decoding; decode
//! once into a [`WorkingCopy`] (JPEG at a reduced DCT scale when every variant allows, then every
//! format resampled down to what the variants need) under an allocation cap, turned upright (EXIF orientation), 8-bit
//! sRGB (CMYK and ICC converted); then, per variant, crop/resize the working copy with Lanczos3 (alpha
//! premultiplied), letterbox or flatten alpha, encode.

mod bitmap;
mod colour;
mod decode;
mod encode;
pub mod exif;
mod geometry;
mod jpeg_dc;
mod probe;
mod working_copy;

use serde::{Deserialize, Serialize};

use crate::rejection::Rejection;
use crate::spec::{
    Focus, Limits, OutputFormat, Rgb, SourceFormat, SpecError, VariantSpec, MAX_VARIANT_SIDE,
};
use bitmap::Bitmap;

pub use bitmap::Channels;
pub use geometry::{crop_window, variant_focus};
pub use working_copy::{WorkingCopy, WorkingCopyError};

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

/// The smallest JPEG DCT scale (1/8, 1/4, 1/2) whose output still covers `needed` (stored
/// orientation) in both axes, as the stored size to request from the decoder; None when only the full
/// size does.
fn decode_size_for(info: &ImageInfo, needed: (u32, u32)) -> Option<(u32, u32)> {
    if info.format != SourceFormat::Jpeg {
        return None;
    }
    let scaled = |len: u32, eighths: u32| (len * eighths).div_ceil(8);
    [1u32, 2, 4]
        .into_iter()
        .find(|&k| scaled(info.width, k) >= needed.0 && scaled(info.height, k) >= needed.1)
        .map(|k| (scaled(info.width, k), scaled(info.height, k)))
}

/// The size the whole upright `width`×`height` image must have for `spec`'s source region to be
/// resampled down (never up) to its output: the variant's share of what the working copy must keep.
fn needed_for_variant(width: u32, height: u32, spec: &VariantSpec) -> (u32, u32) {
    let layout = geometry::layout(width, height, spec, Focus::CENTRE);
    let (_, _, sw, sh) = layout.source;
    let need = |whole: u32, resized: u32, region: u32| {
        (u64::from(whole) * u64::from(resized))
            .div_ceil(u64::from(region.max(1)))
            .min(u64::from(whole)) as u32
    };
    (
        need(width, layout.resized.0, sw),
        need(height, layout.resized.1, sh),
    )
}

/// The upright size of a preview whose longest side is at most `max_side` (never enlarged).
fn preview_size(width: u32, height: u32, max_side: u32) -> (u32, u32) {
    let longest = width.max(height);
    let max_side = max_side.max(1);
    if longest <= max_side {
        return (width, height);
    }
    let scale = |v: u32| {
        ((u64::from(v) * u64::from(max_side) + u64::from(longest) / 2) / u64::from(longest)).max(1)
            as u32
    };
    (scale(width).min(max_side), scale(height).min(max_side))
}

/// The size `stored` scales down to (Lanczos3, both sides by one factor) so that one of its sides is
/// what `needed` asks of it and the other at least that: the working copy keeps what the most demanding
/// consumer needs and no more, so every later write, hash, read and resample handles only those pixels
/// (a 1/2-scale decode of an 8 MP photo for an 800×800 cover is 2 MP; 0.85 MP serve it). `stored` itself
/// when shrinking would save less than a fifth of its pixels: a resample for nothing.
fn shrink_target(stored: (u32, u32), needed: (u32, u32)) -> (u32, u32) {
    let (w, h) = (u64::from(stored.0), u64::from(stored.1));
    let (nw, nh) = (u64::from(needed.0.max(1)), u64::from(needed.1.max(1)));
    // One side at its need and the other scaled and rounded up: of the two, the smaller that still
    // covers both needs (rounding can make either side's choice the one that does).
    let by_width = (nw, (h * nw).div_ceil(w));
    let by_height = ((w * nh).div_ceil(h), nh);
    let covers = |(cw, ch): (u64, u64)| cw >= nw && ch >= nh;
    let (tw, th) = match (covers(by_width), covers(by_height)) {
        (true, true) if by_height.0 * by_height.1 < by_width.0 * by_width.1 => by_height,
        (true, _) => by_width,
        _ => by_height,
    };
    let (tw, th) = (tw.min(w), th.min(h));
    if tw * th * 5 > w * h * 4 {
        return stored;
    }
    (tw as u32, th as u32)
}

/// x, y, width, height in pixels.
type PixelRect = (u32, u32, u32, u32);

/// How far Lanczos3 reaches on each side of an output pixel's centre, in output pixels.
const LANCZOS3_SUPPORT: f64 = 3.0;

/// The part of the upright image, scaled to `full`, that renders of `variants` with the centre focus
/// read: each variant's source region widened by its resampling kernel's reach (three pixels times the
/// shrink factor, plus one for the whole-pixel snap and one for rounding), so a render from the part
/// reads the pixels a render from the whole image would.
fn region_read_by(variants: &[VariantSpec], upright: (u32, u32), full: (u32, u32)) -> PixelRect {
    let (fx, fy) = (
        f64::from(full.0) / f64::from(upright.0.max(1)),
        f64::from(full.1) / f64::from(upright.1.max(1)),
    );
    // Start, length, output length, whole length: the part's [start, end) along one axis.
    let span = |start: f64, len: f64, out: u32, whole: u32| {
        let reach = (LANCZOS3_SUPPORT * (len / f64::from(out.max(1))).max(1.0)).ceil() + 2.0;
        let from = (start - reach).floor().max(0.0) as u32;
        let to = ((start + len + reach).ceil() as u32).min(whole);
        (from, to)
    };
    let (mut x0, mut y0, mut x1, mut y1) = (full.0, full.1, 0, 0);
    for spec in variants {
        let layout = geometry::layout(upright.0, upright.1, spec, Focus::CENTRE);
        let (sx, sy, sw, sh) = layout.source;
        let (from_x, to_x) = span(
            f64::from(sx) * fx,
            f64::from(sw) * fx,
            layout.resized.0,
            full.0,
        );
        let (from_y, to_y) = span(
            f64::from(sy) * fy,
            f64::from(sh) * fy,
            layout.resized.1,
            full.1,
        );
        (x0, y0, x1, y1) = (x0.min(from_x), y0.min(from_y), x1.max(to_x), y1.max(to_y));
    }
    if x0 >= x1 || y0 >= y1 {
        return (0, 0, full.0, full.1);
    }
    (x0, y0, x1 - x0, y1 - y0)
}

/// The rectangle of a `stored`-sized image (before EXIF `orientation`) that becomes `upright` once the
/// image is turned upright (the inverse of `Bitmap::oriented`'s mapping).
fn stored_rect(upright: PixelRect, orientation: u8, stored: (u32, u32)) -> PixelRect {
    let (x, y, w, h) = upright;
    let (sw, sh) = stored;
    match orientation {
        2 => (sw - x - w, y, w, h),
        3 => (sw - x - w, sh - y - h, w, h),
        4 => (x, sh - y - h, w, h),
        5 => (y, x, h, w),
        6 => (y, sh - x - w, h, w),
        7 => (sw - y - h, sh - x - w, h, w),
        8 => (sw - y - h, x, h, w),
        _ => upright,
    }
}

/// The one decode of an upload: the source decoded (all of its pixel data, so corrupt data is found
/// here) at the smallest scale that still serves every variant in `variants` and, when given, a face
/// detector preview of `detector_preview_side` pixels on its longest side; turned upright, converted to
/// 8-bit sRGB (CMYK and ICC profiles applied), alpha dropped when it is opaque everywhere.
///
/// The working copy is at most the source's size, and whenever it is smaller than the source it is what
/// the most demanding variant or the preview needs (one side exactly, the other at least), or at most
/// a quarter more: JPEG decodes at the smallest DCT scale that covers the need (1/8 from the DC
/// coefficients alone), then every format is resampled down to it (Lanczos3). With neither variants
/// nor a preview it keeps the full size.
///
/// Without a detector (no preview) every crop is centred, so the copy keeps only the part of that image
/// the variants read, resampled straight from the decode: for 1:1 covers of a 16:9 photo, 45 % of the
/// pixels (`full_size` and `origin` place it; renders from it equal renders from the whole).
pub fn decode_working_copy(
    bytes: &[u8],
    limits: &Limits,
    variants: &[VariantSpec],
    detector_preview_side: Option<u32>,
) -> Result<WorkingCopy, RenderError> {
    let centred = detector_preview_side.is_none();
    decode_copy(bytes, limits, variants, detector_preview_side, centred)
}

/// [`decode_working_copy`]; `centred_crops`: every variant will be cropped around the centre, so the
/// copy may keep only the part they read.
fn decode_copy(
    bytes: &[u8],
    limits: &Limits,
    variants: &[VariantSpec],
    detector_preview_side: Option<u32>,
    centred_crops: bool,
) -> Result<WorkingCopy, RenderError> {
    for spec in variants {
        spec.validate().map_err(RenderError::InvalidSpec)?;
    }
    let info = probe_whole(bytes, limits)?;
    let (up_w, up_h) = (info.upright_width, info.upright_height);
    let mut needed = if variants.is_empty() && detector_preview_side.is_none() {
        (up_w, up_h)
    } else {
        (1, 1)
    };
    let needs = variants
        .iter()
        .map(|spec| needed_for_variant(up_w, up_h, spec))
        .chain(detector_preview_side.map(|side| preview_size(up_w, up_h, side)));
    for (w, h) in needs {
        needed = (needed.0.max(w), needed.1.max(h));
    }
    let stored_needed = if info.orientation >= 5 {
        (needed.1, needed.0)
    } else {
        needed
    };
    let decoded = decode::decode(bytes, &info, decode_size_for(&info, stored_needed))?;
    let bitmap = decoded.bitmap.without_opaque_alpha();
    let decoded_size = (bitmap.width, bitmap.height);
    // The whole image at the copy's scale, stored and upright.
    let full = shrink_target(decoded_size, stored_needed);
    let swapped = info.orientation >= 5;
    let full_upright = if swapped { (full.1, full.0) } else { full };
    // Without a detector every crop is centred and known now: keep only what the variants read.
    let part = if centred_crops && !variants.is_empty() {
        region_read_by(variants, (up_w, up_h), full_upright)
    } else {
        (0, 0, full_upright.0, full_upright.1)
    };
    let (px, py, pw, ph) = stored_rect(part, info.orientation, full);
    let (sx, sy) = (
        f64::from(decoded_size.0) / f64::from(full.0),
        f64::from(decoded_size.1) / f64::from(full.1),
    );
    // One resample (or a crop at the decoded scale) straight to the part.
    let (x, y) = (f64::from(px) * sx, f64::from(py) * sy);
    // Clamped: scaling by a ratio can overshoot the edge by a rounding error, which the resizer refuses.
    let region = (
        x,
        y,
        (f64::from(pw) * sx).min(f64::from(decoded_size.0) - x),
        (f64::from(ph) * sy).min(f64::from(decoded_size.1) - y),
    );
    let bitmap = if (px, py, pw, ph) == (0, 0, decoded_size.0, decoded_size.1) {
        bitmap
    } else {
        bitmap
            .resized(region, pw, ph)
            .map_err(RenderError::Encode)?
    };
    let bitmap = colour::to_srgb(bitmap.oriented(info.orientation), decoded.icc.as_deref());
    let exif = decoded
        .exif
        .as_deref()
        .map(|e| exif::with_upright_orientation(e.strip_prefix(b"Exif\0\0").unwrap_or(e)));
    Ok(WorkingCopy::part(
        bitmap,
        (up_w, up_h),
        full_upright,
        (part.0, part.1),
        exif,
    ))
}

/// The output size of `spec` on an upright `width`×`height` source, refused past the largest side a
/// variant may have (before anything is decoded or resampled).
fn checked_layout(
    width: u32,
    height: u32,
    spec: &VariantSpec,
    focus: Focus,
) -> Result<geometry::Layout, RenderError> {
    let layout = geometry::layout(width, height, spec, focus);
    let (canvas_w, canvas_h) = layout.canvas;
    if canvas_w > MAX_VARIANT_SIDE || canvas_h > MAX_VARIANT_SIDE {
        return Err(RenderError::Encode(format!(
            "the output would be {canvas_w}×{canvas_h}, beyond {MAX_VARIANT_SIDE} pixels per side"
        )));
    }
    Ok(layout)
}

/// Renders one variant from a working copy. `focus` (fractions of the upright image) steers cover
/// crops when the spec follows it; without one the crop is centred. The working copy is only read.
pub fn render_working(
    working: &WorkingCopy,
    spec: &VariantSpec,
    focus: Option<Focus>,
) -> Result<Rendered, RenderError> {
    spec.validate().map_err(RenderError::InvalidSpec)?;
    let focus = match (spec.follow_focus, focus) {
        (true, Some(f)) => f.clamped(),
        _ => Focus::CENTRE,
    };
    let (up_w, up_h) = working.upright_size();
    let layout = checked_layout(up_w, up_h, spec, focus)?;
    let (sx, sy, sw, sh) = layout.source;
    let bitmap = &working.bitmap;
    // The region in working-copy pixels (the copy may be smaller than the upright source, and only
    // the part of it the profile's variants read).
    let (full_w, full_h) = working.full_size();
    let fx = f64::from(full_w) / f64::from(up_w);
    let fy = f64::from(full_h) / f64::from(up_h);
    let (ox, oy) = working.origin();
    let (x, y) = (
        f64::from(sx) * fx - f64::from(ox),
        f64::from(sy) * fy - f64::from(oy),
    );
    // A part made for other variants (never, as copies are keyed by the profile's settings).
    const ROUNDING: f64 = 1e-6;
    if x < -ROUNDING
        || y < -ROUNDING
        || x + f64::from(sw) * fx > f64::from(bitmap.width) + ROUNDING
        || y + f64::from(sh) * fy > f64::from(bitmap.height) + ROUNDING
    {
        return Err(RenderError::Encode(format!(
            "the working copy holds {}×{} pixels at {:?} of {full_w}×{full_h}, not this variant's region",
            bitmap.width,
            bitmap.height,
            working.origin()
        )));
    }
    let (x, y) = (x.max(0.0), y.max(0.0));
    // Clamped: scaling by a ratio can overshoot the edge by a rounding error, which the resizer refuses.
    let region = (
        x,
        y,
        (f64::from(sw) * fx).min(f64::from(bitmap.width) - x),
        (f64::from(sh) * fy).min(f64::from(bitmap.height) - y),
    );
    let region = snapped_to_pixels(region, layout.resized, (bitmap.width, bitmap.height));
    let mut bitmap = bitmap
        .resized(region, layout.resized.0, layout.resized.1)
        .map_err(RenderError::Encode)?;
    if !spec.format.supports_alpha() {
        bitmap = bitmap.flattened(spec.flatten_colour());
    }
    if layout.letterboxed() {
        bitmap = letterbox(bitmap, layout.canvas, layout.offset, spec);
    }
    let metadata = if spec.keep_metadata {
        encode::Metadata {
            icc: colour::srgb_icc(),
            exif: working.exif().map(<[u8]>::to_vec),
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

/// A region within a pixel of the output's size becomes exactly that size at whole-pixel offsets:
/// resampling it would only shift the pixels by a fraction and soften them. That is the largest variant,
/// which the working copy is sized for; sharp likewise crops whole pixels after its resize.
fn snapped_to_pixels(
    region: (f64, f64, f64, f64),
    (out_w, out_h): (u32, u32),
    (copy_w, copy_h): (u32, u32),
) -> (f64, f64, f64, f64) {
    let (w, h) = (f64::from(out_w), f64::from(out_h));
    if (region.2 - w).abs() >= 1.0
        || (region.3 - h).abs() >= 1.0
        || out_w > copy_w
        || out_h > copy_h
    {
        return region;
    }
    let x = region.0.round().clamp(0.0, f64::from(copy_w - out_w));
    let y = region.1.round().clamp(0.0, f64::from(copy_h - out_h));
    (x, y, w, h)
}

/// Renders one variant of an encoded image: [`decode_working_copy`] for this variant alone, then
/// [`render_working`] (the CLI and the bench; the pipeline keeps the working copy between stages).
pub fn render(
    bytes: &[u8],
    spec: &VariantSpec,
    focus: Option<Focus>,
    limits: &Limits,
) -> Result<Rendered, RenderError> {
    spec.validate().map_err(RenderError::InvalidSpec)?;
    let info = probe_whole(bytes, limits)?;
    // Refuse an impossible output before decoding anything.
    checked_layout(info.upright_width, info.upright_height, spec, Focus::CENTRE)?;
    let centred = !(spec.follow_focus && focus.is_some());
    let working = decode_copy(bytes, limits, std::slice::from_ref(spec), None, centred)?;
    render_working(&working, spec, focus)
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

/// An upright sRGB 8-bit RGB image of the working copy whose longest side is at most `max_side` (alpha
/// flattened onto white): what face detectors look at. Its size is the source's upright size scaled
/// down (never up), whatever the working copy's own size, so detections map back as fractions.
pub fn face_preview(working: &WorkingCopy, max_side: u32) -> Result<image::RgbImage, RenderError> {
    if !working.is_whole() {
        return Err(RenderError::Encode(
            "the working copy holds only the variants' part of the image, not enough for a preview"
                .into(),
        ));
    }
    let (up_w, up_h) = working.upright_size();
    let target = preview_size(up_w, up_h, max_side);
    let bitmap = &working.bitmap;
    let full = (0.0, 0.0, f64::from(bitmap.width), f64::from(bitmap.height));
    let bitmap = bitmap
        .resized(full, target.0, target.1)
        .map_err(RenderError::Encode)?
        .flattened(crate::spec::Rgb::WHITE)
        .converted(Channels::Rgb);
    image::RgbImage::from_raw(bitmap.width, bitmap.height, bitmap.data)
        .ok_or_else(|| RenderError::Encode("preview buffer size mismatch".into()))
}

/// [`decode_working_copy`] for a preview alone, then [`face_preview`].
pub fn decode_preview(
    bytes: &[u8],
    max_side: u32,
    limits: &Limits,
) -> Result<image::RgbImage, RenderError> {
    let working = decode_working_copy(bytes, limits, &[], Some(max_side))?;
    face_preview(&working, max_side)
}
