//! Sniffing the real format and reading dimensions and orientation from the header alone,
//! so that limits are enforced before a single pixel is decoded.

use super::exif;
use super::{ImageInfo, Probe};
use crate::rejection::{Rejection, RejectionCode};
use crate::spec::{Limits, SourceFormat};

/// Why a header could not be read from the bytes at hand.
pub(super) enum HeaderError {
    /// The header continues past the end of the bytes given.
    Short,
    Rejected(Rejection),
}

impl From<Rejection> for HeaderError {
    fn from(r: Rejection) -> Self {
        HeaderError::Rejected(r)
    }
}

pub(super) type HeaderResult<T> = Result<T, HeaderError>;

fn corrupt<T>(message: impl Into<String>) -> HeaderResult<T> {
    Err(HeaderError::Rejected(Rejection::corrupt(message)))
}

fn unsupported(message: impl Into<String>) -> Rejection {
    Rejection::new(RejectionCode::UnsupportedFormat, message)
}

/// What the sniffer decided from the first bytes.
enum Sniffed {
    Format(SourceFormat),
    Unknown,
    /// Too few bytes to tell (only possible on a prefix).
    Short,
}

/// Identifies the real format from magic numbers (never from a name or content type).
fn sniff(b: &[u8]) -> Sniffed {
    const NEEDED: usize = 32;
    let starts = |magic: &[u8]| b.starts_with(magic);
    let format = if starts(&[0xFF, 0xD8, 0xFF]) {
        Some(SourceFormat::Jpeg)
    } else if starts(b"\x89PNG\r\n\x1a\n") {
        Some(SourceFormat::Png)
    } else if starts(b"GIF87a") || starts(b"GIF89a") {
        Some(SourceFormat::Gif)
    } else if starts(b"RIFF") && b.get(8..12) == Some(b"WEBP") {
        Some(SourceFormat::Webp)
    } else if starts(b"II*\0") || starts(b"MM\0*") || starts(b"II+\0") || starts(b"MM\0+") {
        Some(SourceFormat::Tiff)
    } else if starts(b"BM")
        && b.get(14..18)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
            .is_some_and(|h| matches!(h, 12 | 40 | 52 | 56 | 64 | 108 | 124))
    {
        Some(SourceFormat::Bmp)
    } else if b.get(4..8) == Some(b"ftyp") {
        iso_bmff_brand(b)
    } else if starts(b"\0\0\0\x0cjP  \r\n\x87\n") || starts(&[0xFF, 0x4F, 0xFF, 0x51]) {
        Some(SourceFormat::Jpeg2000)
    } else if starts(&[0xFF, 0x0A]) || starts(b"\0\0\0\x0cJXL \r\n\x87\n") {
        Some(SourceFormat::Jxl)
    } else if starts(b"%PDF-") {
        Some(SourceFormat::Pdf)
    } else if starts(b"8BPS") {
        Some(SourceFormat::Psd)
    } else if starts(&[0, 0, 1, 0]) || starts(&[0, 0, 2, 0]) {
        Some(SourceFormat::Ico)
    } else if looks_like_svg(b) {
        Some(SourceFormat::Svg)
    } else {
        None
    };
    match format {
        Some(f) => Sniffed::Format(f),
        None if b.len() < NEEDED => Sniffed::Short,
        None => Sniffed::Unknown,
    }
}

/// AVIF or HEIF from an ISO-BMFF `ftyp` box (major and compatible brands).
fn iso_bmff_brand(b: &[u8]) -> Option<SourceFormat> {
    let box_len = (u32::from_be_bytes(b[0..4].try_into().ok()?) as usize).clamp(16, 256);
    let brands: Vec<&[u8]> = std::iter::once(b.get(8..12)?)
        .chain(b.get(16..box_len.min(b.len()))?.chunks_exact(4))
        .collect();
    if brands.iter().any(|br| matches!(*br, b"avif" | b"avis")) {
        Some(SourceFormat::Avif)
    } else if brands.iter().any(|br| {
        matches!(
            *br,
            b"heic" | b"heix" | b"hevc" | b"hevx" | b"heim" | b"heis" | b"mif1" | b"msf1"
        )
    }) {
        Some(SourceFormat::Heif)
    } else {
        None
    }
}

fn looks_like_svg(b: &[u8]) -> bool {
    let head = &b[..b.len().min(4096)];
    let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
    let start = head
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(head.len());
    let head = &head[start..];
    let markup = head.starts_with(b"<svg") || head.starts_with(b"<?xml") || head.starts_with(b"<!");
    markup && head.windows(4).any(|w| w == b"<svg")
}

pub(super) fn probe(bytes: &[u8], total_size: u64, limits: &Limits) -> Result<Probe, Rejection> {
    let total_size = total_size.max(bytes.len() as u64);
    if total_size == 0 {
        return Err(Rejection::new(
            RejectionCode::Empty,
            "the object is empty (0 bytes)",
        ));
    }
    if total_size > limits.max_bytes {
        return Err(Rejection::new(
            RejectionCode::TooLarge,
            format!(
                "{total_size} bytes exceed the limit of {} bytes",
                limits.max_bytes
            ),
        ));
    }
    let is_prefix = (bytes.len() as u64) < total_size;
    let format = match sniff(bytes) {
        Sniffed::Format(f) => f,
        Sniffed::Short if is_prefix => return Ok(Probe::NeedMoreBytes),
        Sniffed::Short | Sniffed::Unknown => {
            return Err(Rejection::new(
                RejectionCode::NotAnImage,
                "the bytes are not an image in any format we recognise",
            ))
        }
    };
    if !format.is_decodable() {
        return Err(unsupported(format!("{format} images are not supported")));
    }
    if !limits.formats.contains(&format) {
        return Err(unsupported(format!(
            "{format} images are not accepted by this profile"
        )));
    }
    let parsed = match format {
        SourceFormat::Jpeg => jpeg(bytes, limits),
        SourceFormat::Png => png(bytes, limits),
        SourceFormat::Gif => gif(bytes, limits),
        SourceFormat::Webp => webp(bytes, limits),
        SourceFormat::Tiff => tiff(bytes, limits),
        SourceFormat::Bmp => bmp(bytes, limits),
        other => Err(HeaderError::Rejected(unsupported(format!(
            "{other} images are not supported"
        )))),
    };
    match parsed {
        Ok(info) => Ok(Probe::Complete(info)),
        Err(HeaderError::Short) if is_prefix => Ok(Probe::NeedMoreBytes),
        Err(HeaderError::Short) => Err(Rejection::corrupt(format!(
            "the {format} header is truncated ({} bytes)",
            bytes.len()
        ))),
        Err(HeaderError::Rejected(r)) => Err(r),
    }
}

/// Rejects empty or oversized dimensions as soon as the header gives them.
fn check_dimensions(
    format: SourceFormat,
    width: u32,
    height: u32,
    limits: &Limits,
) -> HeaderResult<()> {
    if width == 0 || height == 0 {
        return corrupt(format!(
            "the {format} header declares {width}×{height} pixels"
        ));
    }
    let pixels = u64::from(width) * u64::from(height);
    if pixels > limits.max_pixels {
        return Err(HeaderError::Rejected(Rejection::new(
            RejectionCode::TooManyPixels,
            format!(
                "{width}×{height} = {pixels} pixels exceed the limit of {}",
                limits.max_pixels
            ),
        )));
    }
    Ok(())
}

fn info(
    format: SourceFormat,
    width: u32,
    height: u32,
    orientation: u8,
    has_alpha: bool,
    animated: bool,
) -> ImageInfo {
    let swapped = orientation >= 5;
    ImageInfo {
        format,
        width,
        height,
        orientation,
        upright_width: if swapped { height } else { width },
        upright_height: if swapped { width } else { height },
        has_alpha,
        animated,
    }
}

fn be16(b: &[u8], at: usize) -> HeaderResult<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_be_bytes([s[0], s[1]]))
        .ok_or(HeaderError::Short)
}
fn be32(b: &[u8], at: usize) -> HeaderResult<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes(s.try_into().unwrap()))
        .ok_or(HeaderError::Short)
}
fn le16(b: &[u8], at: usize) -> HeaderResult<u16> {
    b.get(at..at + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or(HeaderError::Short)
}
fn le32(b: &[u8], at: usize) -> HeaderResult<u32> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
        .ok_or(HeaderError::Short)
}
fn byte(b: &[u8], at: usize) -> HeaderResult<u8> {
    b.get(at).copied().ok_or(HeaderError::Short)
}

/// The parts of a JPEG header the renderer needs besides the dimensions.
#[derive(Debug, Clone, Default)]
pub(super) struct JpegHeader {
    pub width: u32,
    pub height: u32,
    pub components: u8,
    pub orientation: u8,
    /// An Adobe APP14 segment is present (its CMYK data is stored inverted).
    pub adobe: bool,
}

/// Walks the JPEG marker segments up to the frame header.
pub(super) fn jpeg_header(b: &[u8]) -> HeaderResult<JpegHeader> {
    let mut header = JpegHeader {
        orientation: 1,
        ..JpegHeader::default()
    };
    let mut exif_seen = false;
    let mut i = 2;
    loop {
        // Decoders tolerate stray bytes between segments; so do we.
        while byte(b, i)? != 0xFF {
            i += 1;
        }
        while byte(b, i)? == 0xFF {
            i += 1;
        }
        let marker = byte(b, i)?;
        i += 1;
        match marker {
            0x01 | 0xD0..=0xD8 => continue,
            0xD9 => return corrupt("the JPEG ends before its frame header"),
            0xDA => return corrupt("the JPEG has a scan before its frame header"),
            _ => {}
        }
        let len = be16(b, i)? as usize;
        if len < 2 {
            return corrupt(format!("JPEG segment 0x{marker:02X} has length {len}"));
        }
        let segment = b.get(i + 2..i + len).ok_or(HeaderError::Short)?;
        match marker {
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) => {
                if segment.len() < 6 {
                    return corrupt("the JPEG frame header is too short");
                }
                let arithmetic = marker >= 0xC9;
                let lossless = matches!(marker, 0xC3 | 0xC7 | 0xCB | 0xCF);
                if arithmetic {
                    return Err(unsupported("arithmetic-coded JPEG is not supported").into());
                }
                if marker != 0xC3 && segment[0] != 8 && !lossless {
                    return Err(
                        unsupported(format!("{}-bit JPEG is not supported", segment[0])).into(),
                    );
                }
                if matches!(marker, 0xC5..=0xC7) {
                    return Err(unsupported("hierarchical JPEG is not supported").into());
                }
                header.height = u32::from(u16::from_be_bytes([segment[1], segment[2]]));
                header.width = u32::from(u16::from_be_bytes([segment[3], segment[4]]));
                header.components = segment[5];
                if !matches!(header.components, 1 | 3 | 4) {
                    return corrupt(format!("JPEG with {} colour components", header.components));
                }
                return Ok(header);
            }
            0xE1 if !exif_seen && segment.starts_with(b"Exif\0\0") => {
                exif_seen = true;
                header.orientation = exif::orientation(&segment[6..]);
            }
            0xEE if segment.starts_with(b"Adobe") => header.adobe = true,
            _ => {}
        }
        i += len;
    }
}

fn jpeg(b: &[u8], limits: &Limits) -> HeaderResult<ImageInfo> {
    let h = jpeg_header(b)?;
    check_dimensions(SourceFormat::Jpeg, h.width, h.height, limits)?;
    Ok(info(
        SourceFormat::Jpeg,
        h.width,
        h.height,
        h.orientation,
        false,
        false,
    ))
}

fn png(b: &[u8], limits: &Limits) -> HeaderResult<ImageInfo> {
    let f = SourceFormat::Png;
    if be32(b, 8)? != 13 || b.get(12..16).ok_or(HeaderError::Short)? != b"IHDR" {
        return corrupt("the PNG does not start with an IHDR chunk");
    }
    let (width, height) = (be32(b, 16)?, be32(b, 20)?);
    let (depth, colour) = (byte(b, 24)?, byte(b, 25)?);
    let valid = match colour {
        0 => matches!(depth, 1 | 2 | 4 | 8 | 16),
        3 => matches!(depth, 1 | 2 | 4 | 8),
        2 | 4 | 6 => matches!(depth, 8 | 16),
        _ => false,
    };
    if !valid {
        return corrupt(format!("PNG colour type {colour} with bit depth {depth}"));
    }
    if width > i32::MAX as u32 || height > i32::MAX as u32 {
        return corrupt(format!("the PNG declares {width}×{height} pixels"));
    }
    check_dimensions(f, width, height, limits)?;
    let mut has_alpha = matches!(colour, 4 | 6);
    let (mut animated, mut orientation) = (false, 1);
    let mut i = 33;
    loop {
        let len = be32(b, i)? as usize;
        if len > i32::MAX as usize {
            return corrupt("a PNG chunk length exceeds 2^31");
        }
        let kind = b.get(i + 4..i + 8).ok_or(HeaderError::Short)?;
        match kind {
            b"IDAT" => break,
            b"IEND" => return corrupt("the PNG has no image data"),
            b"tRNS" => has_alpha = true,
            b"acTL" => animated = true,
            b"eXIf" => {
                let data = b.get(i + 8..i + 8 + len).ok_or(HeaderError::Short)?;
                orientation = exif::orientation(data);
            }
            _ => {}
        }
        i += 12 + len;
    }
    Ok(info(f, width, height, orientation, has_alpha, animated))
}

fn gif(b: &[u8], limits: &Limits) -> HeaderResult<ImageInfo> {
    let f = SourceFormat::Gif;
    let (width, height) = (u32::from(le16(b, 6)?), u32::from(le16(b, 8)?));
    check_dimensions(f, width, height, limits)?;
    let packed = byte(b, 10)?;
    let mut i = 13;
    if packed & 0x80 != 0 {
        i += 3 << ((packed & 7) + 1);
    }
    let (mut has_alpha, mut animated) = (false, false);
    // Extensions before the first image descriptor tell transparency and looping.
    loop {
        match byte(b, i)? {
            0x2C => break,
            0x21 => {
                let label = byte(b, i + 1)?;
                let first_len = byte(b, i + 2)? as usize;
                if label == 0xF9 && first_len >= 4 && byte(b, i + 3)? & 1 != 0 {
                    has_alpha = true;
                }
                if label == 0xFF && b.get(i + 3..i + 3 + first_len.min(11)) == Some(b"NETSCAPE2.0")
                {
                    animated = true;
                }
                i += 2;
                loop {
                    let n = byte(b, i)? as usize;
                    i += 1 + n;
                    if n == 0 {
                        break;
                    }
                }
            }
            0x3B => return corrupt("the GIF has no image"),
            other => return corrupt(format!("unexpected GIF block 0x{other:02X}")),
        }
    }
    Ok(info(f, width, height, 1, has_alpha, animated))
}

fn webp(b: &[u8], limits: &Limits) -> HeaderResult<ImageInfo> {
    let f = SourceFormat::Webp;
    let kind = b.get(12..16).ok_or(HeaderError::Short)?;
    let data = 20;
    let (width, height, mut has_alpha, mut animated, has_exif) = match kind {
        b"VP8 " => {
            if b.get(data + 3..data + 6).ok_or(HeaderError::Short)? != [0x9D, 0x01, 0x2A] {
                return corrupt("the WebP VP8 frame lacks its start code");
            }
            let w = le16(b, data + 6)? & 0x3FFF;
            let h = le16(b, data + 8)? & 0x3FFF;
            (u32::from(w), u32::from(h), false, false, false)
        }
        b"VP8L" => {
            if byte(b, data)? != 0x2F {
                return corrupt("the WebP VP8L stream lacks its signature");
            }
            let bits = le32(b, data + 1)?;
            let w = (bits & 0x3FFF) + 1;
            let h = ((bits >> 14) & 0x3FFF) + 1;
            (w, h, (bits >> 28) & 1 == 1, false, false)
        }
        b"VP8X" => {
            let flags = byte(b, data)?;
            let w24 = |at: usize| -> HeaderResult<u32> {
                Ok(u32::from_le_bytes([byte(b, at)?, byte(b, at + 1)?, byte(b, at + 2)?, 0]) + 1)
            };
            (
                w24(data + 4)?,
                w24(data + 7)?,
                flags & 0x10 != 0,
                flags & 0x02 != 0,
                flags & 0x08 != 0,
            )
        }
        _ => return corrupt("the WebP has no image chunk"),
    };
    check_dimensions(f, width, height, limits)?;
    let mut orientation = 1;
    if has_exif || kind == b"VP8X" {
        // Walk the chunks for ALPH/ANIM/EXIF; each chunk header gives the next one's offset.
        let riff_end = (le32(b, 4)? as usize).saturating_add(8);
        let mut i = 12;
        while i + 8 <= riff_end {
            let fourcc = b.get(i..i + 4).ok_or(HeaderError::Short)?;
            let len = le32(b, i + 4)? as usize;
            match fourcc {
                b"ALPH" => has_alpha = true,
                b"ANIM" => animated = true,
                b"EXIF" => {
                    let data = b.get(i + 8..i + 8 + len).ok_or(HeaderError::Short)?;
                    orientation = exif::orientation(data.strip_prefix(b"Exif\0\0").unwrap_or(data));
                    break;
                }
                _ if !has_exif && matches!(fourcc, b"VP8 " | b"VP8L") => break,
                _ => {}
            }
            i = i
                .saturating_add(8)
                .saturating_add(len)
                .saturating_add(len & 1);
        }
    }
    Ok(info(f, width, height, orientation, has_alpha, animated))
}

fn tiff(b: &[u8], limits: &Limits) -> HeaderResult<ImageInfo> {
    let f = SourceFormat::Tiff;
    let order = match exif::tiff_byte_order(b) {
        Some(order) => order,
        None => return Err(unsupported("BigTIFF is not supported").into()),
    };
    let ifd0 = order.u32(b, 4).ok_or(HeaderError::Short)? as usize;
    if ifd0 < 8 {
        return corrupt("the TIFF's first IFD offset is invalid");
    }
    let entries = exif::ifd_entries(b, order, ifd0).ok_or(HeaderError::Short)?;
    let value = |tag: u16| -> Option<u32> {
        let e = entries.iter().find(|e| e.tag == tag)?;
        match e.kind {
            3 => order.u16(b, e.value_at).map(u32::from),
            4 => order.u32(b, e.value_at),
            _ => None,
        }
    };
    let (Some(width), Some(height)) = (value(256), value(257)) else {
        return corrupt("the TIFF lacks its image width or length");
    };
    check_dimensions(f, width, height, limits)?;
    let orientation = value(274).filter(|o| (1..=8).contains(o)).unwrap_or(1) as u8;
    let has_alpha = value(338).is_some();
    Ok(info(f, width, height, orientation, has_alpha, false))
}

fn bmp(b: &[u8], limits: &Limits) -> HeaderResult<ImageInfo> {
    let f = SourceFormat::Bmp;
    let header_size = le32(b, 14)?;
    let (width, height, bpp) = if header_size == 12 {
        (
            u32::from(le16(b, 18)?),
            u32::from(le16(b, 20)?),
            le16(b, 24)?,
        )
    } else {
        let w = le32(b, 18)? as i32;
        let h = le32(b, 22)? as i32;
        if w < 0 {
            return corrupt("the BMP declares a negative width");
        }
        (w.unsigned_abs(), h.unsigned_abs(), le16(b, 28)?)
    };
    check_dimensions(f, width, height, limits)?;
    Ok(info(
        f,
        width,
        height,
        1,
        bpp == 32 && header_size >= 56,
        false,
    ))
}
