//! The working copy: the source decoded once (upright, 8-bit sRGB, at the smallest scale that serves
//! every variant of the profile and the face detector), stored between the pipeline's stages. When no
//! detector will move the crops, it holds only the part of that image the variants read.
//!
//! Encoded form (version 3), little-endian:
//!
//! ```text
//! 0   "FTWC"                      magic
//! 4   u8  version (3)
//! 5   u8  channels (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA)
//! 6   u8  compression (0 = none: the pixels as they are)
//! 7   u8  0
//! 8   u32 width      12 u32 height             the working copy's pixels
//! 16  u32 upright width   20 u32 upright height    the source's, so crops and focus map exactly
//! 24  u32 full width      28 u32 full height       the whole upright image at the copy's scale
//! 32  u32 origin x        36 u32 origin y          where the copy's pixels sit in that whole image
//! 40  u32 EXIF length     44 u64 payload length (width × height × channels)
//! 52  u32 CRC-32 of bytes 0..52, the EXIF and the pixels
//! 56  EXIF (TIFF-structured, orientation 1), then the pixels, row after row
//! ```
//!
//! Uncompressed because the stages that read it are CPU-bound and the bytes are cheap: LZ4 over row
//! deltas (version 1) saved a quarter to a third of the bytes but cost validate ~20 ms and every reader
//! ~10 ms of a full vCPU per photo, more than moving the difference through S3 or the local store
//! (README, Benchmarks). Copies of earlier versions are refused as unknown and decoded again from the
//! source.
//!
//! Every size is checked against the others and against the profile's limits before anything is
//! allocated, and the checksum covers everything else: a truncated or altered copy is a typed error.

use super::bitmap::{Bitmap, Channels};
use crate::spec::Limits;

const MAGIC: &[u8; 4] = b"FTWC";
const VERSION: u8 = 3;
const COMPRESSION_NONE: u8 = 0;
const HEADER_LEN: usize = 56;
/// The header up to its checksum.
const CHECKED_HEADER_LEN: usize = 52;
/// More EXIF than any camera writes (a JPEG APP1 segment holds at most 64 KiB).
const MAX_EXIF_LEN: usize = 1 << 20;

/// Upright, 8-bit sRGB pixels of a source at a reduced scale, with what rendering needs besides them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkingCopy {
    pub(crate) bitmap: Bitmap,
    upright_width: u32,
    upright_height: u32,
    /// The whole upright image at the copy's scale; `bitmap` is its part at `origin`.
    full_width: u32,
    full_height: u32,
    origin: (u32, u32),
    exif: Option<Vec<u8>>,
}

/// Why bytes are not a usable working copy. Never the upload's fault: the copy was damaged,
/// truncated or written by another version of this code (decode the source again).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkingCopyError {
    #[error("the working copy is truncated: {0}")]
    Truncated(String),
    #[error("not a working copy of a version this build reads: {0}")]
    UnknownFormat(String),
    #[error("the working copy is inconsistent: {0}")]
    Inconsistent(String),
    #[error("the working copy has more pixels than the profile allows: {0}")]
    TooManyPixels(String),
}

impl WorkingCopy {
    /// The object's `Content-Type`.
    pub const CONTENT_TYPE: &'static str = "application/vnd.ferrotype.working-copy";
    /// The object key's extension (docs/CONTRACTS.md: `<work prefix><key>/<version tag>.ftwc`).
    pub const FILE_EXTENSION: &'static str = "ftwc";

    /// A copy of the part at `origin` of the upright image scaled to `full`.
    pub(crate) fn part(
        bitmap: Bitmap,
        upright: (u32, u32),
        full: (u32, u32),
        origin: (u32, u32),
        exif: Option<Vec<u8>>,
    ) -> WorkingCopy {
        WorkingCopy {
            bitmap,
            upright_width: upright.0,
            upright_height: upright.1,
            full_width: full.0,
            full_height: full.1,
            origin,
            exif: exif.filter(|e| !e.is_empty() && e.len() <= MAX_EXIF_LEN),
        }
    }

    /// The working copy's own size in pixels (at most the source's upright size).
    pub fn width(&self) -> u32 {
        self.bitmap.width
    }

    pub fn height(&self) -> u32 {
        self.bitmap.height
    }

    /// The source's upright size: layouts, crops and focus fractions refer to it.
    pub fn upright_size(&self) -> (u32, u32) {
        (self.upright_width, self.upright_height)
    }

    /// The whole upright image at the copy's scale (the copy's own size unless it is a part).
    pub fn full_size(&self) -> (u32, u32) {
        (self.full_width, self.full_height)
    }

    /// Where the copy's pixels sit in the image of [`full_size`](WorkingCopy::full_size).
    pub fn origin(&self) -> (u32, u32) {
        self.origin
    }

    /// Whether the copy holds the whole image (else only the part the profile's variants read).
    pub fn is_whole(&self) -> bool {
        self.origin == (0, 0) && (self.bitmap.width, self.bitmap.height) == self.full_size()
    }

    pub fn channels(&self) -> Channels {
        self.bitmap.channels
    }

    /// Interleaved 8-bit sRGB samples, row after row.
    pub fn pixels(&self) -> &[u8] {
        &self.bitmap.data
    }

    /// The EXIF block `keepMetadata` variants embed (TIFF-structured, orientation already 1).
    pub fn exif(&self) -> Option<&[u8]> {
        self.exif.as_deref()
    }

    /// Bytes the decoded pixels occupy in memory.
    pub fn pixel_bytes(&self) -> usize {
        self.bitmap.data.len()
    }

    /// The stored form (see the module documentation).
    pub fn encode(&self) -> Vec<u8> {
        let payload = &self.bitmap.data;
        let exif = self.exif.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(HEADER_LEN + exif.len() + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&[
            VERSION,
            self.bitmap.channels.count() as u8,
            COMPRESSION_NONE,
            0,
        ]);
        for value in [
            self.bitmap.width,
            self.bitmap.height,
            self.upright_width,
            self.upright_height,
            self.full_width,
            self.full_height,
            self.origin.0,
            self.origin.1,
            exif.len() as u32,
        ] {
            out.extend_from_slice(&value.to_le_bytes());
        }
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        let checksum = checksum(&out, exif, &self.bitmap.data);
        out.extend_from_slice(&checksum.to_le_bytes());
        out.extend_from_slice(exif);
        out.extend_from_slice(payload);
        out
    }

    /// Reads a stored working copy, refusing anything whose sizes disagree, that exceeds `limits`, or
    /// whose pixels fail their checksum. The pixels stay where they are in `bytes` (no second buffer).
    pub fn decode(mut bytes: Vec<u8>, limits: &Limits) -> Result<WorkingCopy, WorkingCopyError> {
        use WorkingCopyError::{Inconsistent, Truncated, UnknownFormat};
        if bytes.len() < HEADER_LEN {
            return Err(Truncated(format!(
                "{} bytes, shorter than its {HEADER_LEN}-byte header",
                bytes.len()
            )));
        }
        if &bytes[..4] != MAGIC {
            return Err(UnknownFormat("the magic number is missing".into()));
        }
        if bytes[4] != VERSION || bytes[6] != COMPRESSION_NONE || bytes[7] != 0 {
            return Err(UnknownFormat(format!(
                "version {}, compression {}",
                bytes[4], bytes[6]
            )));
        }
        let channels = match bytes[5] {
            1 => Channels::Grey,
            2 => Channels::GreyAlpha,
            3 => Channels::Rgb,
            4 => Channels::Rgba,
            other => return Err(Inconsistent(format!("{other} channels"))),
        };
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
        let (width, height) = (u32_at(8), u32_at(12));
        let (upright_width, upright_height) = (u32_at(16), u32_at(20));
        let (full_width, full_height) = (u32_at(24), u32_at(28));
        let origin = (u32_at(32), u32_at(36));
        let exif_len = u32_at(40) as usize;
        let payload_len = u64::from_le_bytes(bytes[44..52].try_into().unwrap());
        let checksum = u32_at(52);
        if width == 0 || height == 0 || width > upright_width || height > upright_height {
            return Err(Inconsistent(format!(
                "{width}×{height} pixels for a {upright_width}×{upright_height} source"
            )));
        }
        let upright_pixels = u64::from(upright_width) * u64::from(upright_height);
        if upright_pixels > limits.max_pixels {
            return Err(WorkingCopyError::TooManyPixels(format!(
                "a source of {upright_pixels} pixels, the limit is {}",
                limits.max_pixels
            )));
        }
        let beyond =
            |at: u32, len: u32, whole: u32| u64::from(at) + u64::from(len) > u64::from(whole);
        if full_width > upright_width
            || full_height > upright_height
            || beyond(origin.0, width, full_width)
            || beyond(origin.1, height, full_height)
        {
            return Err(Inconsistent(format!(
                "{width}×{height} pixels at {origin:?} of a {full_width}×{full_height} image of a \
                 {upright_width}×{upright_height} source"
            )));
        }
        if exif_len > MAX_EXIF_LEN {
            return Err(Inconsistent(format!("{exif_len} bytes of EXIF")));
        }
        let expected_len = (HEADER_LEN + exif_len) as u64 + payload_len;
        match (bytes.len() as u64).cmp(&expected_len) {
            std::cmp::Ordering::Less => {
                return Err(Truncated(format!(
                    "{} of {expected_len} bytes",
                    bytes.len()
                )))
            }
            std::cmp::Ordering::Greater => {
                return Err(Inconsistent(format!(
                    "{} bytes where the header accounts for {expected_len}",
                    bytes.len()
                )))
            }
            std::cmp::Ordering::Equal => {}
        }
        let raw_len = u64::from(width) * u64::from(height) * channels.count() as u64;
        if raw_len != payload_len {
            return Err(Inconsistent(format!(
                "{payload_len} pixel bytes for {width}×{height}×{}",
                channels.count()
            )));
        }
        let pixels_at = HEADER_LEN + exif_len;
        let (head, pixels) = bytes.split_at(pixels_at);
        if self::checksum(&head[..CHECKED_HEADER_LEN], &head[HEADER_LEN..], pixels) != checksum {
            return Err(Inconsistent("the checksum does not match".into()));
        }
        let exif = (exif_len > 0).then(|| head[HEADER_LEN..].to_vec());
        bytes.drain(..pixels_at);
        Ok(WorkingCopy::part(
            Bitmap::new(width, height, channels, bytes),
            (upright_width, upright_height),
            (full_width, full_height),
            origin,
            exif,
        ))
    }
}

fn checksum(header: &[u8], exif: &[u8], pixels: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(header);
    hasher.update(exif);
    hasher.update(pixels);
    hasher.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> WorkingCopy {
        let (w, h) = (37u32, 23u32);
        let data = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
        WorkingCopy::part(
            Bitmap::new(w, h, Channels::Rgb, data),
            (74, 46),
            (60, 30),
            (11, 4),
            Some(b"II*\0exif".to_vec()),
        )
    }

    #[test]
    fn round_trips_every_channel_layout() {
        for channels in [
            Channels::Grey,
            Channels::GreyAlpha,
            Channels::Rgb,
            Channels::Rgba,
        ] {
            let (w, h) = (5u32, 3u32);
            let data = (0..w as usize * h as usize * channels.count())
                .map(|i| (i * 31 % 256) as u8)
                .collect();
            let copy = WorkingCopy::part(
                Bitmap::new(w, h, channels, data),
                (w, h),
                (w, h),
                (0, 0),
                None,
            );
            let back = WorkingCopy::decode(copy.encode(), &Limits::default()).unwrap();
            assert_eq!(back, copy, "{channels:?}");
        }
        let copy = sample();
        assert_eq!(
            WorkingCopy::decode(copy.encode(), &Limits::default()).unwrap(),
            copy
        );
    }

    #[test]
    fn every_truncation_is_a_typed_error() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(
                WorkingCopy::decode(bytes[..len].to_vec(), &Limits::default()).is_err(),
                "{len} bytes"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            WorkingCopy::decode(longer, &Limits::default()),
            Err(WorkingCopyError::Inconsistent(_))
        ));
    }

    #[test]
    fn every_flipped_byte_is_refused() {
        // Every byte means something (no compressed form with equivalent encodings), and CRC-32
        // catches any change within 32 consecutive bits.
        let bytes = sample().encode();
        for at in 0..bytes.len() {
            for flip in [0x01, 0x5A, 0x80] {
                let mut tampered = bytes.clone();
                tampered[at] ^= flip;
                assert!(
                    WorkingCopy::decode(tampered, &Limits::default()).is_err(),
                    "byte {at} ^ {flip:#x} was accepted"
                );
            }
        }
    }

    #[test]
    fn huge_claims_are_refused_before_allocating() {
        let mut bytes = sample().encode();
        // 65535×65535 pixels of a 65535×65535 source: beyond the default 100 MP.
        for at in [8, 12, 16, 20] {
            bytes[at..at + 4].copy_from_slice(&65535u32.to_le_bytes());
        }
        assert!(matches!(
            WorkingCopy::decode(bytes.clone(), &Limits::default()),
            Err(WorkingCopyError::TooManyPixels(_))
        ));
        // A part that reaches past the whole image it claims to be a part of.
        let mut bytes = sample().encode();
        bytes[32..36].copy_from_slice(&24u32.to_le_bytes());
        assert!(matches!(
            WorkingCopy::decode(bytes, &Limits::default()),
            Err(WorkingCopyError::Inconsistent(_))
        ));
        // Within the limit, but far more pixels than the payload holds.
        let mut bytes = sample().encode();
        for at in [8, 16] {
            bytes[at..at + 4].copy_from_slice(&9000u32.to_le_bytes());
        }
        for at in [12, 20] {
            bytes[at..at + 4].copy_from_slice(&9000u32.to_le_bytes());
        }
        assert!(matches!(
            WorkingCopy::decode(bytes.clone(), &Limits::default()),
            Err(WorkingCopyError::Inconsistent(_))
        ));
    }
}
