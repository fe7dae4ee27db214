//! Deterministic photo-like test images, so `make bench` runs with nothing but the repository.
//!
//! A real photo has smooth areas (sky), textured areas at many scales (ground), hard edges and fine
//! regular detail (buildings with windows: what shows aliasing and ringing), and sensor grain (what
//! makes JPEG work hard). Each generated image has all four; none is a real photo, so the figures the
//! README quotes come from real photos (see bench/README.md).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::{ImageEncoder, RgbImage};

/// The default benchmark set: 2 to 9 megapixels, landscape and portrait, like phone and camera uploads.
pub const DEFAULT_SET: [(u32, u32); 4] = [(1920, 1080), (3000, 2000), (2250, 3000), (4000, 2250)];

/// Largest image the default profile accepts (limits.maxPixels = 100,000,000).
pub const LARGEST_ALLOWED: (u32, u32) = (10_000, 10_000);

fn hash(seed: u32, x: i32, y: i32) -> f32 {
    let mut h = seed ^ (x as u32).wrapping_mul(0x27d4_eb2d) ^ (y as u32).wrapping_mul(0x1656_67b1);
    h ^= h >> 15;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^= h >> 16;
    (h & 0x00ff_ffff) as f32 / 16_777_216.0
}

/// Smoothly interpolated lattice noise in [0, 1).
fn value_noise(seed: u32, x: f32, y: f32) -> f32 {
    let (ix, iy) = (x.floor() as i32, y.floor() as i32);
    let (fx, fy) = (x - ix as f32, y - iy as f32);
    let (sx, sy) = (fx * fx * (3.0 - 2.0 * fx), fy * fy * (3.0 - 2.0 * fy));
    let top = hash(seed, ix, iy) * (1.0 - sx) + hash(seed, ix + 1, iy) * sx;
    let bottom = hash(seed, ix, iy + 1) * (1.0 - sx) + hash(seed, ix + 1, iy + 1) * sx;
    top * (1.0 - sy) + bottom * sy
}

/// Four octaves of value noise, about [0, 1).
fn fractal_noise(seed: u32, x: f32, y: f32) -> f32 {
    let mut sum = 0.0;
    let mut amplitude = 0.5;
    let mut frequency = 1.0;
    for octave in 0..4 {
        sum += amplitude
            * value_noise(
                seed.wrapping_add(octave * 7919),
                x * frequency,
                y * frequency,
            );
        amplitude *= 0.5;
        frequency *= 2.03;
    }
    sum / 0.9375
}

/// Renders a photo-like scene. `grain` adds per-pixel sensor noise (off for the large PNG, which must
/// stay under the default 50 MB object limit).
pub fn photo_like(width: u32, height: u32, seed: u32, grain: bool) -> RgbImage {
    let scale = width.min(height) as f32;
    let (w, h) = (width as f32, height as f32);
    let sun = (0.72 * w, 0.2 * h, 0.07 * scale);
    let buildings: Vec<(f32, f32, f32)> = (0..5)
        .map(|i| {
            let left = (0.08 + 0.12 * i as f32 + 0.03 * hash(seed, i, 1)) * w;
            let width = (0.06 + 0.04 * hash(seed, i, 2)) * w;
            let top = (0.3 + 0.15 * hash(seed, i, 3)) * h;
            (left, width, top)
        })
        .collect();
    let window = (scale / 120.0).max(3.0);

    RgbImage::from_fn(width, height, |px, py| {
        let (x, y) = (px as f32, py as f32);
        let (u, v) = (x / scale, y / scale);
        let horizon = h * (0.55 + 0.12 * (fractal_noise(seed, u * 2.0, 0.5) - 0.5));
        let mut rgb = if y < horizon {
            // Sky: a vertical gradient with soft clouds.
            let t = y / horizon;
            let cloud = (fractal_noise(seed ^ 0x51, u * 3.0, v * 6.0) - 0.45).max(0.0) * 1.6;
            let base = [70.0 + 90.0 * t, 120.0 + 80.0 * t, 200.0 + 40.0 * t];
            base.map(|c| c + (245.0 - c) * cloud.min(1.0))
        } else {
            // Ground: coarse fields and fine grass-like texture.
            let field = fractal_noise(seed ^ 0xa7, u * 4.0, v * 4.0);
            let grass = fractal_noise(seed ^ 0x3c, x / 3.0, y / 9.0);
            let shade = 0.6 + 0.5 * field + 0.35 * (grass - 0.5);
            [90.0 * shade + 40.0 * field, 130.0 * shade, 50.0 * shade]
        };
        for &(left, bw, top) in &buildings {
            if x >= left && x < left + bw && y >= top && y < horizon + 0.02 * h {
                // Facade with a regular grid of windows: hard edges and fine periodic detail.
                let lit =
                    ((x - left) / window) as i32 % 3 != 0 && ((y - top) / window) as i32 % 3 != 0;
                let tone = if lit {
                    40.0 + 160.0 * hash(seed, (x / window) as i32, (y / window) as i32)
                } else {
                    150.0
                };
                rgb = [tone, tone * 0.95, tone * 0.85];
            }
        }
        let (dx, dy) = (x - sun.0, y - sun.1);
        if dx * dx + dy * dy < sun.2 * sun.2 {
            rgb = [255.0, 236.0, 180.0];
        }
        let noise = if grain {
            (hash(seed ^ 0x9e37, px as i32, py as i32) - 0.5) * 14.0
        } else {
            0.0
        };
        image::Rgb(rgb.map(|c| (c + noise).round().clamp(0.0, 255.0) as u8))
    })
}

pub fn encode_jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .context("encoding a synthetic JPEG")?;
    Ok(bytes)
}

pub fn encode_png(image: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Cursor::new(Vec::new());
    PngEncoder::new_with_quality(&mut bytes, CompressionType::Fast, FilterType::Adaptive)
        .write_image(
            image.as_raw(),
            image.width(),
            image.height(),
            image::ExtendedColorType::Rgb8,
        )
        .context("encoding a synthetic PNG")?;
    Ok(bytes.into_inner())
}

/// Writes the default set as `photo-<w>x<h>.jpg` into `dir` (kept if already there) and returns the paths.
pub fn ensure_default_set(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut paths = Vec::new();
    for (i, &(w, h)) in DEFAULT_SET.iter().enumerate() {
        let path = dir.join(format!("photo-{w}x{h}.jpg"));
        if !path.exists() {
            let bytes = encode_jpeg(&photo_like(w, h, 1000 + i as u32, true), 90)?;
            std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        }
        paths.push(path);
    }
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_is_deterministic_and_varied() {
        let a = photo_like(160, 120, 7, true);
        assert_eq!(a, photo_like(160, 120, 7, true));
        assert_ne!(a, photo_like(160, 120, 8, true));
        let distinct: std::collections::HashSet<_> = a.pixels().map(|p| p.0).collect();
        assert!(
            distinct.len() > 1000,
            "a photo-like image has many colours, got {}",
            distinct.len()
        );
    }

    #[test]
    fn encoded_images_decode_to_their_size() {
        let img = photo_like(64, 48, 1, false);
        for bytes in [encode_jpeg(&img, 90).unwrap(), encode_png(&img).unwrap()] {
            let decoded = image::load_from_memory(&bytes).unwrap();
            assert_eq!((decoded.width(), decoded.height()), (64, 48));
        }
    }
}
