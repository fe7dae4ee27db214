//! Output quality against a high-quality reference, so speed is never bought with blur or artefacts.
//!
//! Reference: the source decoded by a third decoder (the `image` crate, neither ours nor libvips), turned
//! upright, alpha flattened on white, then the `cover` window at the centre resized with Lanczos3 in f32
//! (on the gamma-encoded values, as both sharp and we resize). Score: SSIM on luma (Wang et al. 2004,
//! 11×11 Gaussian window, σ = 1.5), 1.0 = identical. Where the window is narrower than the source, each
//! side may round the crop offset differently by up to half an output pixel; the reference is shifted
//! by -0.5..0.5 px along that axis and each output keeps its best score, so no side loses points for a
//! rounding convention.

use std::io::Cursor;

use anyhow::{bail, Context, Result};
use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

const SHIFTS: [f64; 5] = [-0.5, -0.25, 0.0, 0.25, 0.5];

/// Decodes any image with the `image` crate and applies its EXIF orientation (sharp's outputs keep the
/// tag with `withMetadata()`, ours are upright already).
pub fn decode_upright(bytes: &[u8]) -> Result<RgbImage> {
    let mut decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .context("reading the image header")?
        .into_decoder()
        .context("choosing a decoder")?;
    let orientation = decoder.orientation().context("reading the orientation")?;
    let mut image = DynamicImage::from_decoder(decoder).context("decoding")?;
    image.apply_orientation(orientation);
    Ok(flatten_on_white(image))
}

fn flatten_on_white(image: DynamicImage) -> RgbImage {
    if !image.color().has_alpha() {
        return image.to_rgb8();
    }
    let rgba = image.to_rgba8();
    RgbImage::from_fn(rgba.width(), rgba.height(), |x, y| {
        let [r, g, b, a] = rgba.get_pixel(x, y).0;
        let alpha = a as f32 / 255.0;
        image::Rgb([r, g, b].map(|c| (c as f32 * alpha + 255.0 * (1.0 - alpha)).round() as u8))
    })
}

/// An upright source, kept in f32 for the reference resizes.
pub struct Source {
    width: u32,
    height: u32,
    pixels: Image<'static>,
}

impl Source {
    pub fn new(rgb: &RgbImage) -> Result<Self> {
        let bytes: Vec<u8> = rgb
            .as_raw()
            .iter()
            .flat_map(|&v| (v as f32).to_ne_bytes())
            .collect();
        let pixels = Image::from_vec_u8(rgb.width(), rgb.height(), bytes, PixelType::F32x3)
            .context("wrapping the source for resizing")?;
        Ok(Source {
            width: rgb.width(),
            height: rgb.height(),
            pixels,
        })
    }

    /// The `cover` crop at the centre, resized to `width`×`height` with Lanczos3 in f32, with the window
    /// shifted by `shift` output pixels along the cropped axis.
    fn reference(&self, width: u32, height: u32, shift: f64) -> Result<RgbImage> {
        let (sw, sh) = (self.width as f64, self.height as f64);
        let scale = (width as f64 / sw).max(height as f64 / sh);
        let (win_w, win_h) = (width as f64 / scale, height as f64 / scale);
        let mut left = (sw - win_w) / 2.0;
        let mut top = (sh - win_h) / 2.0;
        if win_w < sw - 1e-6 {
            left = (left + shift / scale).clamp(0.0, sw - win_w);
        } else if win_h < sh - 1e-6 {
            top = (top + shift / scale).clamp(0.0, sh - win_h);
        }
        let mut dst = Image::new(width, height, PixelType::F32x3);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(left, top, win_w, win_h);
        Resizer::new()
            .resize(&self.pixels, &mut dst, &options)
            .context("reference resize")?;
        let values: Vec<u8> = dst
            .buffer()
            .chunks_exact(4)
            .map(|b| {
                f32::from_ne_bytes([b[0], b[1], b[2], b[3]])
                    .round()
                    .clamp(0.0, 255.0) as u8
            })
            .collect();
        RgbImage::from_raw(width, height, values).context("reference buffer size")
    }

    /// The references of one output size at every shift.
    pub fn references(&self, width: u32, height: u32) -> Result<Vec<RgbImage>> {
        let crops_an_axis = {
            let scale = (width as f64 / self.width as f64).max(height as f64 / self.height as f64);
            (width as f64 / scale) < self.width as f64 - 1e-6
                || (height as f64 / scale) < self.height as f64 - 1e-6
        };
        let shifts: &[f64] = if crops_an_axis { &SHIFTS } else { &[0.0] };
        shifts
            .iter()
            .map(|&s| self.reference(width, height, s))
            .collect()
    }
}

/// Best SSIM of `output` against any of `references` (all of the output's size).
pub fn best_ssim(output: &RgbImage, references: &[RgbImage]) -> Result<f64> {
    let mut best = f64::NEG_INFINITY;
    for reference in references {
        best = best.max(ssim_luma(output, reference)?);
    }
    Ok(best)
}

fn luma(image: &RgbImage) -> Vec<f32> {
    image
        .pixels()
        .map(|p| 0.299 * p.0[0] as f32 + 0.587 * p.0[1] as f32 + 0.114 * p.0[2] as f32)
        .collect()
}

fn gaussian_kernel() -> [f32; 11] {
    let mut k = [0f32; 11];
    for (i, v) in k.iter_mut().enumerate() {
        let d = i as f32 - 5.0;
        *v = (-(d * d) / (2.0 * 1.5 * 1.5)).exp();
    }
    let sum: f32 = k.iter().sum();
    k.map(|v| v / sum)
}

/// Separable Gaussian filter over the valid region (no padding): output is (w-10)×(h-10).
fn blur(plane: &[f32], w: usize, h: usize, k: &[f32; 11]) -> Vec<f32> {
    let (ow, oh) = (w - 10, h - 10);
    let mut horizontal = vec![0f32; ow * h];
    for y in 0..h {
        let row = &plane[y * w..(y + 1) * w];
        for x in 0..ow {
            horizontal[y * ow + x] = k.iter().zip(&row[x..x + 11]).map(|(a, b)| a * b).sum();
        }
    }
    let mut out = vec![0f32; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            out[y * ow + x] = (0..11).map(|i| k[i] * horizontal[(y + i) * ow + x]).sum();
        }
    }
    out
}

/// Mean SSIM of the luma of two images of the same size (at least 11×11).
pub fn ssim_luma(a: &RgbImage, b: &RgbImage) -> Result<f64> {
    if a.dimensions() != b.dimensions() {
        bail!(
            "SSIM of images of different sizes: {:?} vs {:?}",
            a.dimensions(),
            b.dimensions()
        );
    }
    let (w, h) = (a.width() as usize, a.height() as usize);
    if w < 11 || h < 11 {
        bail!("SSIM needs at least 11×11 pixels, got {w}×{h}");
    }
    let (x, y) = (luma(a), luma(b));
    let k = gaussian_kernel();
    let products = |f: &dyn Fn(f32, f32) -> f32| -> Vec<f32> {
        x.iter().zip(&y).map(|(&p, &q)| f(p, q)).collect()
    };
    let mu_x = blur(&x, w, h, &k);
    let mu_y = blur(&y, w, h, &k);
    let xx = blur(&products(&|p, _| p * p), w, h, &k);
    let yy = blur(&products(&|_, q| q * q), w, h, &k);
    let xy = blur(&products(&|p, q| p * q), w, h, &k);
    let (c1, c2) = ((0.01f64 * 255.0).powi(2), (0.03f64 * 255.0).powi(2));
    let mut sum = 0f64;
    for i in 0..mu_x.len() {
        let (mx, my) = (mu_x[i] as f64, mu_y[i] as f64);
        let vx = xx[i] as f64 - mx * mx;
        let vy = yy[i] as f64 - my * my;
        let cov = xy[i] as f64 - mx * my;
        sum +=
            ((2.0 * mx * my + c1) * (2.0 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2));
    }
    Ok(sum / mu_x.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synthetic::photo_like;

    #[test]
    fn ssim_is_one_for_identical_and_lower_for_blurred_or_noisy() {
        let a = photo_like(96, 80, 3, true);
        assert!((ssim_luma(&a, &a).unwrap() - 1.0).abs() < 1e-6);
        let blurred = image::imageops::blur(&a, 1.5);
        let noisy = RgbImage::from_fn(96, 80, |x, y| {
            let p = a.get_pixel(x, y).0;
            let n = if (x * 7 + y * 13) % 3 == 0 { 40 } else { 0 };
            image::Rgb(p.map(|c| c.saturating_add(n)))
        });
        let s_blur = ssim_luma(&a, &blurred).unwrap();
        let s_noise = ssim_luma(&a, &noisy).unwrap();
        assert!(s_blur < 0.95, "blur must cost SSIM, got {s_blur}");
        assert!(s_noise < 0.95, "noise must cost SSIM, got {s_noise}");
    }

    #[test]
    fn ssim_rejects_mismatched_sizes() {
        assert!(ssim_luma(&RgbImage::new(20, 20), &RgbImage::new(20, 21)).is_err());
    }

    #[test]
    fn reference_of_a_flat_image_is_flat_and_of_the_asked_size() {
        let flat = RgbImage::from_pixel(400, 200, image::Rgb([10, 200, 30]));
        let refs = Source::new(&flat).unwrap().references(50, 50).unwrap();
        assert_eq!(
            refs.len(),
            SHIFTS.len(),
            "a 2:1 source cropped to 1:1 is shifted along x"
        );
        for r in refs {
            assert_eq!(r.dimensions(), (50, 50));
            assert!(r.pixels().all(|p| p.0 == [10, 200, 30]));
        }
    }

    #[test]
    fn a_good_downscale_scores_higher_than_a_nearest_neighbour_one() {
        let src = photo_like(600, 400, 5, true);
        let refs = Source::new(&src).unwrap().references(150, 100).unwrap();
        let good = image::imageops::resize(&src, 150, 100, image::imageops::FilterType::CatmullRom);
        let crude = image::imageops::resize(&src, 150, 100, image::imageops::FilterType::Nearest);
        assert!(best_ssim(&good, &refs).unwrap() > best_ssim(&crude, &refs).unwrap());
    }
}
