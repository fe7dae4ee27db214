//! Which format the working copy travels in: encode and decode time, size and peak memory of the
//! candidates on the working copies of real photos (`ferrotype-bench working-copy-formats IMAGES…`).
//! The shipped format is the first row (`WorkingCopy::encode`, the raw pixels with a CRC-32).

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use ferrotype_core::{decode_working_copy, Channels, Limits, WorkingCopy};
use image::ImageEncoder;

use crate::alloc_peak::peak_allocated;
use crate::measure::{median, millis};

pub struct FormatRow {
    pub format: &'static str,
    pub encode_ms: f64,
    pub decode_ms: f64,
    /// Encoded bytes over raw pixel bytes.
    pub ratio: f64,
    /// Most bytes allocated at once while encoding (beyond the pixels) and while decoding (including
    /// the decoded pixels), MiB.
    pub encode_peak_mib: f64,
    pub decode_peak_mib: f64,
}

type Codec = (
    &'static str,
    fn(&WorkingCopy) -> Result<Vec<u8>>,
    fn(&[u8], &WorkingCopy) -> Result<usize>,
);

fn delta(copy: &WorkingCopy) -> Vec<u8> {
    let n = channel_count(copy.channels());
    let row = copy.width() as usize * n;
    let mut out = copy.pixels().to_vec();
    for line in out.chunks_exact_mut(row) {
        for i in (n..row).rev() {
            line[i] = line[i].wrapping_sub(line[i - n]);
        }
    }
    out
}

/// Undoes [`delta`] in place; the restored length.
fn undelta(mut pixels: Vec<u8>, copy: &WorkingCopy) -> usize {
    let n = channel_count(copy.channels());
    let row = copy.width() as usize * n;
    for line in pixels.chunks_exact_mut(row) {
        for i in n..row {
            line[i] = line[i].wrapping_add(line[i - n]);
        }
    }
    pixels.len()
}

fn channel_count(channels: Channels) -> usize {
    match channels {
        Channels::Grey => 1,
        Channels::GreyAlpha => 2,
        Channels::Rgb => 3,
        Channels::Rgba => 4,
    }
}

const CODECS: [Codec; 7] = [
    (
        "shipped: raw pixels + CRC-32",
        |c| Ok(c.encode()),
        |b, _| {
            // The copy stands for the S3 read's own buffer, which decoding takes over.
            Ok(WorkingCopy::decode(b.to_vec(), &Limits::default())
                .map_err(|e| anyhow!("{e}"))?
                .pixel_bytes())
        },
    ),
    (
        "raw + LZ4",
        |c| Ok(lz4_flex::block::compress(c.pixels())),
        |b, c| Ok(lz4_flex::block::decompress(b, c.pixel_bytes())?.len()),
    ),
    (
        "raw + zstd -1",
        |c| Ok(zstd::bulk::compress(c.pixels(), 1)?),
        |b, c| Ok(zstd::bulk::decompress(b, c.pixel_bytes())?.len()),
    ),
    (
        "row deltas + zstd -1",
        |c| Ok(zstd::bulk::compress(&delta(c), 1)?),
        |b, c| Ok(undelta(zstd::bulk::decompress(b, c.pixel_bytes())?, c)),
    ),
    (
        "QOI",
        |c| {
            let n = channel_count(c.channels());
            if n < 3 {
                return Err(anyhow!("QOI takes RGB or RGBA only"));
            }
            Ok(qoi::encode_to_vec(c.pixels(), c.width(), c.height())?)
        },
        |b, _| Ok(qoi::decode_to_vec(b)?.1.len()),
    ),
    (
        "PNG (fast, Sub filter)",
        |c| {
            let colour = match c.channels() {
                Channels::Grey => image::ExtendedColorType::L8,
                Channels::GreyAlpha => image::ExtendedColorType::La8,
                Channels::Rgb => image::ExtendedColorType::Rgb8,
                Channels::Rgba => image::ExtendedColorType::Rgba8,
            };
            let mut out = Vec::new();
            image::codecs::png::PngEncoder::new_with_quality(
                &mut out,
                image::codecs::png::CompressionType::Fast,
                image::codecs::png::FilterType::Sub,
            )
            .write_image(c.pixels(), c.width(), c.height(), colour)?;
            Ok(out)
        },
        |b, _| {
            Ok(
                image::load_from_memory_with_format(b, image::ImageFormat::Png)?
                    .as_bytes()
                    .len(),
            )
        },
    ),
    (
        "row deltas + LZ4 (the working copy's version 1)",
        |c| Ok(lz4_flex::block::compress(&delta(c))),
        |b, c| Ok(undelta(lz4_flex::block::decompress(b, c.pixel_bytes())?, c)),
    ),
];

/// The working copy of `image` for the seed's two variants, then every codec on it.
pub fn measure(image: &Path, runs: usize) -> Result<(WorkingCopy, Vec<FormatRow>)> {
    let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let specs = crate::worker::seed_variants()?;
    let copy = decode_working_copy(&bytes, &Limits::default(), &specs, None)?;
    let raw = copy.pixel_bytes() as f64;
    let mut rows = Vec::new();
    for (format, encode, decode) in CODECS {
        let (encoded, encode_peak) = peak_allocated(|| encode(&copy));
        let encoded = match encoded {
            Ok(encoded) => encoded,
            Err(error) => {
                eprintln!("{format}: {error}");
                continue;
            }
        };
        let (decoded_len, decode_peak) = peak_allocated(|| decode(&encoded, &copy));
        if decoded_len? != copy.pixel_bytes() {
            return Err(anyhow!("{format} did not round-trip"));
        }
        let mut encode_ms = Vec::new();
        let mut decode_ms = Vec::new();
        for _ in 0..runs.max(1) {
            let start = Instant::now();
            std::hint::black_box(encode(&copy)?);
            encode_ms.push(millis(start.elapsed()));
            let start = Instant::now();
            std::hint::black_box(decode(&encoded, &copy)?);
            decode_ms.push(millis(start.elapsed()));
        }
        const MIB: f64 = 1024.0 * 1024.0;
        rows.push(FormatRow {
            format,
            encode_ms: median(&encode_ms),
            decode_ms: median(&decode_ms),
            ratio: encoded.len() as f64 / raw,
            encode_peak_mib: encode_peak as f64 / MIB,
            decode_peak_mib: decode_peak as f64 / MIB,
        });
    }
    Ok((copy, rows))
}

pub fn markdown(image: &Path, copy: &WorkingCopy, rows: &[FormatRow]) -> String {
    let mut out = format!(
        "\n{}: working copy {}×{} {:?} ({:.1} MiB raw)\n\n| format | encode ms | decode ms | size / raw | encode peak MiB | decode peak MiB |\n|---|---:|---:|---:|---:|---:|\n",
        image.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        copy.width(),
        copy.height(),
        copy.channels(),
        copy.pixel_bytes() as f64 / 1048576.0
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.2} | {:.1} | {:.1} |\n",
            r.format, r.encode_ms, r.decode_ms, r.ratio, r.encode_peak_mib, r.decode_peak_mib
        ));
    }
    out
}
