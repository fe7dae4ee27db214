//! Bounded decoding to an upright 8-bit bitmap. Limits were checked on the header (probe) before we
//! get here; decoders additionally get allocation caps, and a decoder panic becomes `Corrupt`.

use std::io::Cursor;
use std::panic::{catch_unwind, AssertUnwindSafe};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader};

use super::bitmap::{Bitmap, Channels};
use super::jpeg_dc::{self, DcOutcome};
use super::{colour, probe, ImageInfo};
use crate::rejection::{Rejection, RejectionCode};
use crate::spec::SourceFormat;

/// More scans than any real progressive JPEG has; each scan is a pass over the whole image, so a
/// crafted file with thousands of tiny scans would otherwise take minutes.
const MAX_JPEG_SCANS: usize = 256;

pub(crate) struct Decoded {
    /// Stored (not yet upright) pixels, CMYK already converted to RGB; RGB may still be in `icc`'s
    /// colour space.
    pub bitmap: Bitmap,
    pub icc: Option<Vec<u8>>,
    pub exif: Option<Vec<u8>>,
}

/// Bytes a decoder may allocate: the decoded frame at up to 16 bits × 4 channels, plus slack.
fn max_alloc(info: &ImageInfo) -> u64 {
    u64::from(info.width) * u64::from(info.height) * 8 + (64 << 20)
}

/// Decodes `bytes` (already probed as `info`) to its stored orientation. `at_least` is the stored size
/// the decode must keep: JPEG is decoded at 1/2, 1/4 or 1/8 scale when that still covers it (1/8 from
/// the DC coefficients alone).
pub(crate) fn decode(
    bytes: &[u8],
    info: &ImageInfo,
    at_least: Option<(u32, u32)>,
) -> Result<Decoded, Rejection> {
    let outcome = catch_unwind(AssertUnwindSafe(|| match info.format {
        SourceFormat::Jpeg => decode_jpeg(bytes, info, at_least),
        other => decode_with_image(bytes, info, other),
    }));
    outcome.unwrap_or_else(|_| {
        Err(Rejection::corrupt(format!(
            "the {} decoder failed on malformed data",
            info.format
        )))
    })
}

fn corrupt(format: SourceFormat, e: impl std::fmt::Display) -> Rejection {
    Rejection::corrupt(format!("the {format} data cannot be decoded: {e}"))
}

fn count_jpeg_scans(bytes: &[u8]) -> usize {
    // 0xFF 0xDA cannot occur inside entropy-coded data (0xFF is stuffed there as 0xFF 0x00).
    bytes.windows(2).filter(|w| w == &[0xFF, 0xDA]).count()
}

fn decode_jpeg(
    bytes: &[u8],
    info: &ImageInfo,
    at_least: Option<(u32, u32)>,
) -> Result<Decoded, Rejection> {
    let f = SourceFormat::Jpeg;
    let scans = count_jpeg_scans(bytes);
    if scans > MAX_JPEG_SCANS {
        return Err(Rejection::corrupt(format!(
            "the JPEG has {scans} scans (at most {MAX_JPEG_SCANS} accepted)"
        )));
    }
    let header = probe::jpeg_header(bytes)
        .map_err(|_| Rejection::corrupt("the JPEG header is malformed"))?;
    if let Some((w, h)) = at_least {
        if info.width.div_ceil(8) >= w && info.height.div_ceil(8) >= h {
            if let DcOutcome::Decoded(image) = jpeg_dc::decode_dc(bytes)? {
                let layout = match image.channels {
                    1 => JpegPixels::Grey,
                    3 => JpegPixels::Rgb,
                    _ => JpegPixels::Cmyk,
                };
                let bitmap = jpeg_bitmap(
                    image.width,
                    image.height,
                    layout,
                    image.data,
                    &header,
                    image.icc.as_deref(),
                );
                let icc = if header.components == 4 {
                    None
                } else {
                    image.icc
                };
                return Ok(Decoded {
                    bitmap,
                    icc,
                    exif: image.exif,
                });
            }
        }
    }
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    decoder.set_max_decoding_buffer_size(usize::try_from(max_alloc(info)).unwrap_or(usize::MAX));
    decoder.read_info().map_err(|e| corrupt(f, e))?;
    if let Some((w, h)) = at_least {
        let clamp = |v: u32| v.clamp(1, u32::from(u16::MAX)) as u16;
        decoder
            .scale(clamp(w), clamp(h))
            .map_err(|e| corrupt(f, e))?;
    }
    let pixels = decoder.decode().map_err(|e| corrupt(f, e))?;
    let meta = decoder
        .info()
        .ok_or_else(|| corrupt(f, "no frame information"))?;
    let (w, h) = (u32::from(meta.width), u32::from(meta.height));
    let icc = decoder.icc_profile();
    let exif = decoder.exif_data().map(<[u8]>::to_vec);
    let expected = |bpp: usize| w as usize * h as usize * bpp;
    let (layout, pixels) = match meta.pixel_format {
        jpeg_decoder::PixelFormat::L8 if pixels.len() >= expected(1) => {
            let mut pixels = pixels;
            pixels.truncate(expected(1));
            (JpegPixels::Grey, pixels)
        }
        jpeg_decoder::PixelFormat::L16 if pixels.len() >= expected(2) => {
            // Big-endian samples; keep the high byte.
            let high = pixels[..expected(2)]
                .chunks_exact(2)
                .map(|s| s[0])
                .collect();
            (JpegPixels::Grey, high)
        }
        jpeg_decoder::PixelFormat::RGB24 if pixels.len() >= expected(3) => {
            let mut pixels = pixels;
            pixels.truncate(expected(3));
            (JpegPixels::Rgb, pixels)
        }
        jpeg_decoder::PixelFormat::CMYK32 if pixels.len() >= expected(4) => {
            let mut pixels = pixels;
            pixels.truncate(expected(4));
            (JpegPixels::Cmyk, pixels)
        }
        other => return Err(corrupt(f, format!("{other:?} output of unexpected size"))),
    };
    let bitmap = jpeg_bitmap(w, h, layout, pixels, &header, icc.as_deref());
    let icc = if header.components == 4 { None } else { icc };
    Ok(Decoded { bitmap, icc, exif })
}

/// The sample layouts a JPEG decodes to (4-channel data in jpeg-decoder's inverted convention).
enum JpegPixels {
    Grey,
    Rgb,
    Cmyk,
}

fn jpeg_bitmap(
    w: u32,
    h: u32,
    layout: JpegPixels,
    pixels: Vec<u8>,
    header: &probe::JpegHeader,
    icc: Option<&[u8]>,
) -> Bitmap {
    match layout {
        JpegPixels::Grey => Bitmap::new(w, h, Channels::Grey, pixels),
        JpegPixels::Rgb => Bitmap::new(w, h, Channels::Rgb, pixels),
        JpegPixels::Cmyk => {
            let mut cmyk = pixels;
            // jpeg-decoder inverts every 4-channel JPEG, which is right for Adobe's inverted storage;
            // files without the Adobe marker store plain CMYK and must be inverted back.
            if !header.adobe {
                cmyk.iter_mut().for_each(|v| *v = 255 - *v);
            }
            colour::cmyk_to_rgb(w, h, &cmyk, icc)
        }
    }
}

/// A CMYK TIFF's raw ink amounts and profile (the `image` crate would convert them to RGB naively
/// and drop the meaning of the profile); None for every other TIFF.
fn decode_cmyk_tiff(bytes: &[u8], info: &ImageInfo) -> Result<Option<Decoded>, Rejection> {
    use tiff::decoder::{Decoder, DecodingResult, Limits};
    use tiff::tags::Tag;
    let f = SourceFormat::Tiff;
    let mut limits = Limits::default();
    limits.decoding_buffer_size = usize::try_from(max_alloc(info)).unwrap_or(usize::MAX);
    let mut decoder = Decoder::new(Cursor::new(bytes))
        .map_err(|e| corrupt(f, e))?
        .with_limits(limits);
    let planar = decoder
        .get_tag_u32(Tag::PlanarConfiguration)
        .is_ok_and(|p| p == 2);
    if planar || !matches!(decoder.colortype(), Ok(tiff::ColorType::CMYK(8 | 16))) {
        return Ok(None);
    }
    let (w, h) = decoder.dimensions().map_err(|e| corrupt(f, e))?;
    if (w, h) != (info.width, info.height) {
        return Err(corrupt(f, "the image's size differs from its header's"));
    }
    let icc = decoder.get_tag_u8_vec(Tag::IccProfile).ok();
    let samples = w as usize * h as usize * 4;
    let cmyk: Vec<u8> = match decoder.read_image().map_err(|e| corrupt(f, e))? {
        DecodingResult::U8(v) if v.len() >= samples => v[..samples].to_vec(),
        DecodingResult::U16(v) if v.len() >= samples => {
            v[..samples].iter().map(|s| (s >> 8) as u8).collect()
        }
        _ => return Err(corrupt(f, "the CMYK samples are short")),
    };
    Ok(Some(Decoded {
        bitmap: colour::cmyk_to_rgb(w, h, &cmyk, icc.as_deref()),
        icc: None,
        exif: None,
    }))
}

fn decode_with_image(
    bytes: &[u8],
    info: &ImageInfo,
    format: SourceFormat,
) -> Result<Decoded, Rejection> {
    if format == SourceFormat::Tiff {
        if let Some(decoded) = decode_cmyk_tiff(bytes, info)? {
            return Ok(decoded);
        }
    }
    let image_format = match format {
        SourceFormat::Png => ImageFormat::Png,
        SourceFormat::Gif => ImageFormat::Gif,
        SourceFormat::Webp => ImageFormat::WebP,
        SourceFormat::Tiff => ImageFormat::Tiff,
        SourceFormat::Bmp => ImageFormat::Bmp,
        other => {
            return Err(Rejection::new(
                RejectionCode::UnsupportedFormat,
                format!("{other} images are not supported"),
            ))
        }
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), image_format);
    let mut limits = image::Limits::default();
    // The decoder may not produce more than the header promised (GIF frames are clipped to the screen).
    limits.max_image_width = Some(info.width);
    limits.max_image_height = Some(info.height);
    limits.max_alloc = Some(max_alloc(info));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| decode_error(format, e))?;
    let icc = decoder.icc_profile().ok().flatten();
    let exif = decoder.exif_metadata().ok().flatten();
    // Animated GIF and WebP decode to their first frame through the still-image interface.
    let image = DynamicImage::from_decoder(decoder).map_err(|e| decode_error(format, e))?;
    Ok(Decoded {
        bitmap: bitmap_from(image),
        icc,
        exif,
    })
}

fn decode_error(format: SourceFormat, e: image::ImageError) -> Rejection {
    match e {
        image::ImageError::Limits(l) => Rejection::new(
            RejectionCode::TooManyPixels,
            format!("decoding the {format} would exceed the memory limit: {l}"),
        ),
        image::ImageError::Unsupported(u) => Rejection::new(
            RejectionCode::UnsupportedFormat,
            format!("this {format} variant is not supported: {u}"),
        ),
        other => corrupt(format, other),
    }
}

/// Any decoded image as 8 bits per channel, keeping grey as grey and alpha as alpha.
fn bitmap_from(image: DynamicImage) -> Bitmap {
    let (w, h) = (image.width(), image.height());
    let colour = image.color();
    match (colour.has_color(), colour.has_alpha()) {
        (false, false) => Bitmap::new(w, h, Channels::Grey, image.into_luma8().into_raw()),
        (false, true) => Bitmap::new(
            w,
            h,
            Channels::GreyAlpha,
            image.into_luma_alpha8().into_raw(),
        ),
        (true, false) => Bitmap::new(w, h, Channels::Rgb, image.into_rgb8().into_raw()),
        (true, true) => Bitmap::new(w, h, Channels::Rgba, image.into_rgba8().into_raw()),
    }
}
