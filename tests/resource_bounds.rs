//! Resource bounds of the image path, asserted on outcomes and on allocated bytes (never on timings).
//!
//! A counting global allocator records the peak bytes live while a closure runs. Every test holds one
//! lock for its whole body, so no other test's allocations land in a measurement.
//!
//! - A header claiming far more pixels than the limit (65535×65535 JPEG, PNG, GIF, BMP, TIFF; 16384²
//!   WebP) over a tiny body is refused as `TooManyPixels` by `probe`, `render` and `decode_preview`
//!   with almost nothing allocated.
//! - A file at the pixel limit (10000×10000 = 100 MP, the default `maxPixels`) renders, and its peak
//!   allocation stays within the decode budget of the decoding stage's memory (cdk/lib/memory.ts: 16
//!   bytes per pixel of `maxPixels`, on top of 128 MiB for the runtime); a progressive JPEG too, and at
//!   1/8 scale it needs almost nothing (the DC scan alone is decoded).
//! - Rendering a variant from the working copy needs memory for the copy, not for the source.
//! - Truncated and garbage files end in `Corrupt`, and a JPEG with thousands of scans (each a pass
//!   over the whole image) is refused before decoding.
//! - SVG, HTML, XML and other text never reach a parser: `NotAnImage` or `UnsupportedFormat`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use ferrotype_core::{
    decode_preview, decode_working_copy, probe, render, render_working, Fit, Limits, OutputFormat,
    Probe, Rejection, RejectionCode, RenderError, SourceFormat, VariantSpec, WorkingCopy,
};

struct CountingAllocator;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::SeqCst) + bytes;
    PEAK.fetch_max(live, Ordering::SeqCst);
}

// SAFETY: every call is forwarded unchanged to the system allocator; only counters are added.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
            grew(new_size);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Held for a whole test, so measurements see only that test's allocations.
fn exclusive() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Runs `work` and returns its result with the most bytes it had allocated at once (beyond what was
/// live when it started). Call with [`exclusive`] held.
fn peak_bytes<T>(work: impl FnOnce() -> T) -> (T, usize) {
    let before = LIVE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    let result = work();
    (result, PEAK.load(Ordering::SeqCst).saturating_sub(before))
}

const MIB: usize = 1 << 20;

/// What the render-variant Lambda may use for decoding an image of `pixels` (cdk/lib/memory.ts:
/// 16 B/px: a 16-bit RGBA decode, its 8-bit copy and one resize buffer). The stack adds 128 MiB for
/// the runtime, the source bytes and the encoder on top of this.
fn decode_budget(pixels: u64) -> usize {
    usize::try_from(pixels * 16).unwrap()
}

/// Nothing that refuses an image from its header should need more than this.
const HEADER_REFUSAL_BUDGET: usize = 64 * 1024;

fn thumbnail(format: OutputFormat) -> VariantSpec {
    let mut spec = VariantSpec::new("thumbnail", Some(300), Some(300));
    spec.format = format;
    spec
}

fn rejection_code(result: Result<impl std::fmt::Debug, RenderError>) -> RejectionCode {
    match result {
        Err(RenderError::Rejected(Rejection { code, .. })) => code,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Fixtures, generated here (no encoder is a dependency of this package).

/// A baseline JPEG of a solid mid-grey `width`×`height` image with three components. Every 8×8 block
/// is "DC unchanged, end of block"; with one-symbol Huffman tables that is two zero bits, so even
/// 100 MP needs only ~1.2 MB.
fn solid_grey_jpeg(width: u16, height: u16) -> Vec<u8> {
    solid_grey_jpeg_coded(width, height, false)
}

/// The same image as a progressive JPEG: one interleaved DC scan, then one AC scan per component (each
/// block "end of band"), so a decoder that keeps every coefficient until the last scan must hold them
/// all for the whole image.
fn solid_grey_progressive_jpeg(width: u16, height: u16) -> Vec<u8> {
    solid_grey_jpeg_coded(width, height, true)
}

fn solid_grey_jpeg_coded(width: u16, height: u16, progressive: bool) -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8];
    let segment = |jpeg: &mut Vec<u8>, marker: u8, body: &[u8]| {
        jpeg.extend_from_slice(&[0xFF, marker]);
        jpeg.extend_from_slice(&(body.len() as u16 + 2).to_be_bytes());
        jpeg.extend_from_slice(body);
    };
    let mut quantisation = vec![0u8];
    quantisation.extend_from_slice(&[1; 64]);
    segment(&mut jpeg, 0xDB, &quantisation);
    let mut frame = vec![8];
    frame.extend_from_slice(&height.to_be_bytes());
    frame.extend_from_slice(&width.to_be_bytes());
    frame.push(3);
    for id in 1..=3 {
        frame.extend_from_slice(&[id, 0x11, 0]);
    }
    segment(&mut jpeg, if progressive { 0xC2 } else { 0xC0 }, &frame);
    // One code of length 1 per table: DC category 0 (no change), AC 0x00 (end of block / band).
    for class_and_id in [0x00, 0x10] {
        let mut table = vec![class_and_id, 1];
        table.extend_from_slice(&[0; 15]);
        table.push(0x00);
        segment(&mut jpeg, 0xC4, &table);
    }
    let blocks = usize::from(width.div_ceil(8)) * usize::from(height.div_ceil(8));
    // Entropy-coded data of `bits` zero bits, the last byte padded with ones as the standard asks.
    let scan = |jpeg: &mut Vec<u8>, header: &[u8], bits: usize| {
        segment(jpeg, 0xDA, header);
        jpeg.resize(jpeg.len() + bits.div_ceil(8), 0);
        if !bits.is_multiple_of(8) {
            *jpeg.last_mut().unwrap() |= 0xFF >> (bits % 8);
        }
    };
    if progressive {
        scan(
            &mut jpeg,
            &[3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 0, 0],
            blocks * 3,
        );
        for id in 1..=3 {
            scan(&mut jpeg, &[1, id, 0x00, 1, 63, 0], blocks);
        }
    } else {
        scan(
            &mut jpeg,
            &[3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0],
            blocks * 3 * 2,
        );
    }
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    jpeg
}

/// Just a JPEG frame header claiming `width`×`height` (no tables, no scan).
fn jpeg_header_only(width: u16, height: u16) -> Vec<u8> {
    let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xC0, 0, 17, 8];
    jpeg.extend_from_slice(&height.to_be_bytes());
    jpeg.extend_from_slice(&width.to_be_bytes());
    jpeg.extend_from_slice(&[3, 1, 0x11, 0, 2, 0x11, 0, 3, 0x11, 0]);
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    jpeg
}

fn crc32(parts: &[&[u8]]) -> u32 {
    let mut crc = !0u32;
    for &byte in parts.iter().flat_map(|p| p.iter()) {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(png: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    png.extend_from_slice(&(data.len() as u32).to_be_bytes());
    png.extend_from_slice(kind);
    png.extend_from_slice(data);
    png.extend_from_slice(&crc32(&[kind, data]).to_be_bytes());
}

fn png_from_zlib(width: u32, height: u32, colour_type: u8, zlib: &[u8]) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut header = Vec::new();
    header.extend_from_slice(&width.to_be_bytes());
    header.extend_from_slice(&height.to_be_bytes());
    header.extend_from_slice(&[8, colour_type, 0, 0, 0]);
    png_chunk(&mut png, b"IHDR", &header);
    png_chunk(&mut png, b"IDAT", zlib);
    png_chunk(&mut png, b"IEND", &[]);
    png
}

/// A zlib stream (fixed-Huffman deflate) of data given as runs of one byte value, with repeats
/// written as distance-1 matches: compact for solid colours, and never materialised in full.
struct RunDeflater {
    out: Vec<u8>,
    bit_buffer: u64,
    bit_count: u32,
    adler_a: u64,
    adler_b: u64,
}

impl RunDeflater {
    const ADLER_MOD: u64 = 65_521;

    fn new() -> Self {
        let mut deflater = RunDeflater {
            out: vec![0x78, 0x01],
            bit_buffer: 0,
            bit_count: 0,
            adler_a: 1,
            adler_b: 0,
        };
        deflater.bits(1, 1); // final block
        deflater.bits(1, 2); // fixed Huffman codes
        deflater
    }

    /// Appends `count` low bits of `value`, least significant first.
    fn bits(&mut self, value: u32, count: u32) {
        self.bit_buffer |= u64::from(value) << self.bit_count;
        self.bit_count += count;
        while self.bit_count >= 8 {
            self.out.push(self.bit_buffer as u8);
            self.bit_buffer >>= 8;
            self.bit_count -= 8;
        }
    }

    /// Appends a Huffman code, which deflate stores most significant bit first.
    fn code(&mut self, code: u32, length: u32) {
        let reversed = code.reverse_bits() >> (32 - length);
        self.bits(reversed, length);
    }

    fn literal(&mut self, byte: u8) {
        match byte {
            0..=143 => self.code(0b0011_0000 + u32::from(byte), 8),
            _ => self.code(0b1_1001_0000 + u32::from(byte) - 144, 9),
        }
    }

    fn run(&mut self, byte: u8, count: usize) {
        let (n, v) = (count as u64, u64::from(byte));
        self.adler_b = (self.adler_b
            + n % Self::ADLER_MOD * self.adler_a
            + v * (n * (n + 1) / 2 % Self::ADLER_MOD))
            % Self::ADLER_MOD;
        self.adler_a = (self.adler_a + n % Self::ADLER_MOD * v) % Self::ADLER_MOD;
        if count == 0 {
            return;
        }
        self.literal(byte);
        let mut left = count - 1;
        while left >= 258 {
            self.code(0b1100_0101, 8); // length code 285: 258 bytes
            self.code(0, 5); // distance code 0: distance 1
            left -= 258;
        }
        for _ in 0..left {
            self.literal(byte);
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.code(0, 7); // end of block
        if self.bit_count > 0 {
            self.bits(0, 8 - self.bit_count);
        }
        let adler = ((self.adler_b << 16) | self.adler_a) as u32;
        self.out.extend_from_slice(&adler.to_be_bytes());
        self.out
    }
}

/// An RGB PNG of one colour: the first row Sub-filtered, the others Up-filtered, so the filtered
/// data is almost all zeros.
fn solid_png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    let row = width as usize * 3;
    let mut deflater = RunDeflater::new();
    deflater.run(1, 1);
    for channel in rgb {
        deflater.run(channel, 1);
    }
    deflater.run(0, row - 3);
    for _ in 1..height {
        deflater.run(2, 1);
        deflater.run(0, row);
    }
    png_from_zlib(width, height, 2, &deflater.finish())
}

fn huge_png() -> Vec<u8> {
    let mut deflater = RunDeflater::new();
    deflater.run(0, 64);
    png_from_zlib(65_535, 65_535, 2, &deflater.finish())
}

fn huge_gif() -> Vec<u8> {
    let mut gif = b"GIF89a".to_vec();
    gif.extend_from_slice(&65_535u16.to_le_bytes());
    gif.extend_from_slice(&65_535u16.to_le_bytes());
    gif.extend_from_slice(&[0, 0, 0]);
    gif.extend_from_slice(&[0x2C, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0]);
    gif.extend_from_slice(&[2, 2, 0x44, 0x01, 0, 0x3B]);
    gif
}

fn huge_bmp() -> Vec<u8> {
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&70u32.to_le_bytes());
    bmp.extend_from_slice(&[0; 4]);
    bmp.extend_from_slice(&54u32.to_le_bytes());
    bmp.extend_from_slice(&40u32.to_le_bytes());
    bmp.extend_from_slice(&65_535i32.to_le_bytes());
    bmp.extend_from_slice(&65_535i32.to_le_bytes());
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&24u16.to_le_bytes());
    bmp.extend_from_slice(&[0; 24]);
    bmp.extend_from_slice(&[0x7F; 16]);
    bmp
}

fn huge_tiff() -> Vec<u8> {
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&2u16.to_le_bytes());
    for tag in [256u16, 257] {
        tiff.extend_from_slice(&tag.to_le_bytes());
        tiff.extend_from_slice(&4u16.to_le_bytes()); // LONG
        tiff.extend_from_slice(&1u32.to_le_bytes());
        tiff.extend_from_slice(&65_535u32.to_le_bytes());
    }
    tiff.extend_from_slice(&0u32.to_le_bytes());
    tiff
}

/// An extended WebP claiming the format's maximum of 16384×16384 (24-bit sizes minus one).
fn huge_webp() -> Vec<u8> {
    let mut chunk = vec![0u8; 4];
    chunk.extend_from_slice(&16_383u32.to_le_bytes()[..3]);
    chunk.extend_from_slice(&16_383u32.to_le_bytes()[..3]);
    let mut webp = b"RIFF".to_vec();
    webp.extend_from_slice(&(4 + 8 + chunk.len() as u32).to_le_bytes());
    webp.extend_from_slice(b"WEBPVP8X");
    webp.extend_from_slice(&(chunk.len() as u32).to_le_bytes());
    webp.extend_from_slice(&chunk);
    webp
}

/// Deterministic noise (xorshift), for "garbage" bodies.
fn noise(len: usize, mut state: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn the_fixtures_are_what_they_claim() {
    let _one = exclusive();
    let limits = Limits::default();
    for (bytes, format, size) in [
        (solid_grey_jpeg(40, 24), SourceFormat::Jpeg, (40, 24)),
        (
            solid_png(40, 24, [200, 30, 90]),
            SourceFormat::Png,
            (40, 24),
        ),
    ] {
        let Ok(Probe::Complete(info)) = probe(&bytes, bytes.len() as u64, &limits) else {
            panic!("{format} fixture does not probe");
        };
        assert_eq!(
            (info.format, info.width, info.height),
            (format, size.0, size.1)
        );
        let preview = decode_preview(&bytes, 64, &limits).unwrap();
        assert_eq!(preview.dimensions(), size);
        let colour = preview.get_pixel(20, 12).0;
        let expected = if format == SourceFormat::Jpeg {
            [128, 128, 128]
        } else {
            [200, 30, 90]
        };
        for (got, want) in colour.iter().zip(expected) {
            assert!(
                got.abs_diff(want) <= 2,
                "{format}: pixel {colour:?}, expected {expected:?}"
            );
        }
    }
}

#[test]
fn headers_claiming_huge_dimensions_are_refused_before_any_large_allocation() {
    let _one = exclusive();
    let limits = Limits::default();
    let cases = [
        ("jpeg 65535×65535", jpeg_header_only(65_535, 65_535)),
        ("jpeg 20000×14000", jpeg_header_only(20_000, 14_000)),
        ("png 65535×65535", huge_png()),
        ("gif 65535×65535", huge_gif()),
        ("bmp 65535×65535", huge_bmp()),
        ("tiff 65535×65535", huge_tiff()),
        ("webp 16384×16384", huge_webp()),
    ];
    for (name, bytes) in cases {
        assert!(bytes.len() < 200, "{name}: the body is meant to be tiny");
        let (outcomes, peak) = peak_bytes(|| {
            let probed = probe(&bytes, bytes.len() as u64, &limits)
                .map(|_| ())
                .unwrap_err()
                .code;
            let rendered = rejection_code(render(
                &bytes,
                &thumbnail(OutputFormat::Jpeg),
                None,
                &limits,
            ));
            let previewed = rejection_code(decode_preview(&bytes, 512, &limits));
            [probed, rendered, previewed]
        });
        assert_eq!(outcomes, [RejectionCode::TooManyPixels; 3], "{name}");
        assert!(
            peak < HEADER_REFUSAL_BUDGET,
            "{name}: {peak} bytes allocated to refuse a header"
        );
    }
}

#[test]
fn objects_over_the_byte_limit_are_refused_from_their_size_alone() {
    let _one = exclusive();
    let limits = Limits {
        max_bytes: 1_000,
        ..Limits::default()
    };
    let png = solid_png(40, 24, [1, 2, 3]);
    // validate reads a prefix and knows the object's size: the size decides, not the bytes at hand.
    let (refusal, peak) =
        peak_bytes(|| probe(&png[..16], 5 * 1024 * 1024 * 1024, &limits).unwrap_err());
    assert_eq!(refusal.code, RejectionCode::TooLarge);
    assert!(peak < HEADER_REFUSAL_BUDGET);
    let big = solid_png(1_000, 1_000, [1, 2, 3]);
    assert!(big.len() > 1_000);
    assert_eq!(
        rejection_code(render(&big, &thumbnail(OutputFormat::Png), None, &limits)),
        RejectionCode::TooLarge
    );
}

#[test]
fn a_jpeg_at_the_pixel_limit_renders_within_the_lambda_memory() {
    let _one = exclusive();
    let limits = Limits::default();
    let jpeg = solid_grey_jpeg(10_000, 10_000);
    assert_eq!(
        limits.max_pixels, 100_000_000,
        "the default limit is the case this test is about"
    );
    for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
        let (rendered, peak) = peak_bytes(|| render(&jpeg, &thumbnail(format), None, &limits));
        let rendered = rendered.unwrap();
        assert_eq!((rendered.width, rendered.height), (300, 300));
        eprintln!("100 MP JPEG → 300×300 {format}: peak {} MiB", peak / MIB);
        assert!(peak < decode_budget(limits.max_pixels), "peak {peak} bytes");
    }
    let (preview, peak) = peak_bytes(|| decode_preview(&jpeg, 1_024, &limits));
    assert_eq!(preview.unwrap().dimensions(), (1_024, 1_024));
    eprintln!("100 MP JPEG → 1024 px preview: peak {} MiB", peak / MIB);
    assert!(peak < decode_budget(limits.max_pixels), "peak {peak} bytes");
}

#[test]
fn a_progressive_jpeg_at_the_pixel_limit_decodes_within_the_validate_memory() {
    let _one = exclusive();
    let limits = Limits::default();
    let jpeg = solid_grey_progressive_jpeg(10_000, 10_000);
    let seed = [
        thumbnail(OutputFormat::Jpeg),
        VariantSpec::new("coverphoto", Some(800), Some(800)),
    ];
    // Both variants are served by 1/8 scale (the DC scan alone, one value per block), resampled down
    // to the 800×800 the cover needs.
    let (copy, peak) = peak_bytes(|| decode_working_copy(&jpeg, &limits, &seed, None));
    let copy = copy.unwrap();
    assert_eq!((copy.width(), copy.height()), (800, 800));
    eprintln!(
        "100 MP progressive JPEG → working copy from 1/8: peak {} MiB",
        peak / MIB
    );
    assert!(peak < 64 * MIB, "peak {peak} bytes");
    // A 1600-pixel face preview needs 1/4 (every coefficient is kept until the last scan), resampled
    // down to 1600.
    let (copy, peak) = peak_bytes(|| decode_working_copy(&jpeg, &limits, &seed, Some(1_600)));
    assert_eq!(copy.unwrap().width(), 1_600);
    eprintln!(
        "100 MP progressive JPEG → working copy from 1/4: peak {} MiB",
        peak / MIB
    );
    assert!(peak < decode_budget(limits.max_pixels), "peak {peak} bytes");
}

/// render-variant reads the working copy, not the source: its memory is the copy's, whatever the
/// source's pixel count (what it needs per variant: the decoded copy, the resized output and the
/// encoder's buffers).
#[test]
fn rendering_from_the_working_copy_needs_memory_for_the_copy_not_the_source() {
    let _one = exclusive();
    let limits = Limits::default();
    let png = solid_png(10_000, 10_000, [10, 120, 240]);
    let seed = [
        thumbnail(OutputFormat::Jpeg),
        VariantSpec::new("coverphoto", Some(800), Some(800)),
    ];
    let copy = decode_working_copy(&png, &limits, &seed, None).unwrap();
    // 800 of 10000: resampled down to 800 × 800.
    assert_eq!((copy.width(), copy.height()), (800, 800));
    let stored = copy.encode();
    let copy_bytes = copy.pixel_bytes();
    drop(copy);
    for spec in &seed {
        // The body as the S3 read hands it over; decoding keeps the pixels in it.
        let body = stored.clone();
        let (rendered, peak) = peak_bytes(|| {
            let copy = WorkingCopy::decode(body, &limits).unwrap();
            render_working(&copy, spec, None)
        });
        assert!(rendered.is_ok());
        eprintln!(
            "{}: working copy of {} KiB stored, {} MiB decoded → peak {} MiB",
            spec.name,
            stored.len() / 1024,
            copy_bytes / MIB,
            peak / MIB
        );
        assert!(peak < 2 * copy_bytes + 16 * MIB, "peak {peak} bytes");
    }
}

#[test]
fn a_png_at_the_pixel_limit_renders_within_the_lambda_memory() {
    let _one = exclusive();
    let limits = Limits::default();
    let png = solid_png(10_000, 10_000, [10, 120, 240]);
    let (rendered, peak) =
        peak_bytes(|| render(&png, &thumbnail(OutputFormat::Jpeg), None, &limits));
    let rendered = rendered.unwrap();
    assert_eq!((rendered.width, rendered.height), (300, 300));
    eprintln!(
        "100 MP PNG ({} KiB) → 300×300 JPEG: peak {} MiB",
        png.len() / 1024,
        peak / MIB
    );
    assert!(peak < decode_budget(limits.max_pixels), "peak {peak} bytes");
}

#[test]
fn a_header_at_the_pixel_limit_over_a_tiny_body_fails_within_the_same_budget() {
    let _one = exclusive();
    let limits = Limits::default();
    let mut deflater = RunDeflater::new();
    deflater.run(0, 64);
    let png = png_from_zlib(10_000, 10_000, 2, &deflater.finish());
    let jpeg = jpeg_header_only(10_000, 10_000);
    for (name, bytes) in [("png", png), ("jpeg", jpeg)] {
        let (code, peak) = peak_bytes(|| {
            rejection_code(render(
                &bytes,
                &thumbnail(OutputFormat::Jpeg),
                None,
                &limits,
            ))
        });
        assert_eq!(code, RejectionCode::Corrupt, "{name}");
        eprintln!(
            "100 MP {name} header over {} bytes: peak {} MiB",
            bytes.len(),
            peak / MIB
        );
        assert!(
            peak < decode_budget(limits.max_pixels),
            "{name}: peak {peak} bytes"
        );
    }
}

#[test]
fn truncated_and_garbage_images_end_in_corrupt() {
    let _one = exclusive();
    let limits = Limits::default();
    let png = solid_png(64, 48, [200, 30, 90]);
    let mut sources = vec![(SourceFormat::Png, png.clone())];
    for format in [OutputFormat::Jpeg, OutputFormat::Webp] {
        let mut spec = VariantSpec::new("source", Some(64), Some(48));
        spec.format = format;
        spec.fit = Fit::Fill;
        sources.push((
            if format == OutputFormat::Jpeg {
                SourceFormat::Jpeg
            } else {
                SourceFormat::Webp
            },
            render(&png, &spec, None, &limits).unwrap().bytes,
        ));
    }
    sources.push((SourceFormat::Jpeg, solid_grey_jpeg(64, 48)));
    for (format, bytes) in sources {
        // Cut inside the header, in the middle, and just before the end.
        for cut in [bytes.len() / 8, bytes.len() / 2, bytes.len() - 3] {
            let truncated = &bytes[..cut];
            let result = render(truncated, &thumbnail(OutputFormat::Jpeg), None, &limits);
            match result {
                // A cut before the end of the signature (12 bytes for WebP's RIFF header) leaves no
                // recognisable image at all.
                Err(RenderError::Rejected(r)) => assert!(
                    r.code == RejectionCode::Corrupt
                        || (cut < 12 && r.code == RejectionCode::NotAnImage),
                    "{format} cut at {cut}: {r}"
                ),
                // Decoders may render what arrived when only the end is missing; never for a cut header.
                Ok(_) => assert!(
                    cut > bytes.len() / 8,
                    "{format} cut at {cut} of {} rendered",
                    bytes.len()
                ),
                Err(other) => panic!("{format} cut at {cut}: {other}"),
            }
        }
    }

    // A valid PNG header followed by noise where the compressed pixels should be.
    let noisy = png_from_zlib(64, 48, 2, &noise(2_000, 7));
    assert_eq!(
        rejection_code(render(
            &noisy,
            &thumbnail(OutputFormat::Jpeg),
            None,
            &limits
        )),
        RejectionCode::Corrupt
    );
    // Bytes that match no format at all.
    assert_eq!(
        rejection_code(render(
            &noise(4_096, 11),
            &thumbnail(OutputFormat::Jpeg),
            None,
            &limits
        )),
        RejectionCode::NotAnImage
    );
}

#[test]
fn a_jpeg_with_thousands_of_scans_is_refused_before_decoding() {
    let _one = exclusive();
    let limits = Limits::default();
    let mut jpeg = solid_grey_jpeg(64, 64);
    jpeg.truncate(jpeg.len() - 2);
    // Each extra scan would be another pass over the whole image for a progressive decoder.
    for _ in 0..5_000 {
        jpeg.extend_from_slice(&[0xFF, 0xDA, 0, 12, 3, 1, 0x00, 2, 0x00, 3, 0x00, 0, 63, 0, 0]);
    }
    jpeg.extend_from_slice(&[0xFF, 0xD9]);
    let result = render(&jpeg, &thumbnail(OutputFormat::Jpeg), None, &limits);
    match result {
        Err(RenderError::Rejected(r)) => {
            assert_eq!(r.code, RejectionCode::Corrupt);
            assert!(r.message.contains("scans"), "{r}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn text_formats_never_reach_a_parser() {
    let _one = exclusive();
    let limits = Limits::default();
    let texts: [(&str, &[u8], RejectionCode); 8] = [
        ("svg", br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>"#, RejectionCode::UnsupportedFormat),
        ("svg with xml declaration", b"<?xml version=\"1.0\"?>\n<!DOCTYPE svg>\n<svg xmlns=\"http://www.w3.org/2000/svg\"><script>alert(1)</script></svg>", RejectionCode::UnsupportedFormat),
        ("svg after a BOM and blanks", b"\xEF\xBB\xBF  \n<svg width=\"100000\" height=\"100000\"></svg>", RejectionCode::UnsupportedFormat),
        ("html", b"<!DOCTYPE html><html><body><img src=x onerror=alert(1)></body></html>", RejectionCode::NotAnImage),
        ("xml", b"<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">]><lolz>&lol;&lol;&lol;&lol;</lolz>", RejectionCode::NotAnImage),
        ("json", br#"{"width": 65535, "height": 65535, "format": "png", "padding": "...................."}"#, RejectionCode::NotAnImage),
        ("pdf", b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF", RejectionCode::UnsupportedFormat),
        ("plain text", b"GIF? no. PNG? no. Just a sentence long enough to be sniffed properly.", RejectionCode::NotAnImage),
    ];
    for (name, bytes, expected) in texts {
        let probed = probe(bytes, bytes.len() as u64, &limits)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(probed.code, expected, "{name}: {probed}");
        for format in [OutputFormat::Jpeg, OutputFormat::Png, OutputFormat::Webp] {
            assert_eq!(
                rejection_code(render(bytes, &thumbnail(format), None, &limits)),
                expected,
                "{name}"
            );
        }
        assert_eq!(
            rejection_code(decode_preview(bytes, 256, &limits)),
            expected,
            "{name}"
        );
    }
    // Even a profile that lists SVG among its formats cannot make it decodable.
    let everything = Limits {
        formats: SourceFormat::ALL.to_vec(),
        ..Limits::default()
    };
    let svg = texts[0].1;
    assert_eq!(
        probe(svg, svg.len() as u64, &everything).unwrap_err().code,
        RejectionCode::UnsupportedFormat
    );
    assert!(!SourceFormat::Svg.is_decodable() && !SourceFormat::Pdf.is_decodable());
}
