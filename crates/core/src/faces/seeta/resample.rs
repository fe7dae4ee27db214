//! Bilinear resampling as SeetaFace does it, for the pyramid levels and for every candidate window
//! of the later stages: the source position of an output pixel is its index times the scale (no
//! half-pixel centring), found in f64 as the original does, and the blend is truncated. The
//! cascade's model was trained on pixels made this way, so the taps are the original's exactly;
//! three things are ours. Each source row is blended horizontally once, and reused by the next
//! output row when the two share it, instead of gathering four neighbours per output pixel. The
//! image is converted to f32 once per detection, not at every tap that reads a pixel. And the blend
//! is in f32 where the original's is in f64: a vector register holds twice the lanes (the
//! detector ran 3 % faster than with f64 blends). A blend that lands within an f32 rounding of an
//! integer may truncate to the byte below or above the original's; on the 124 photos of the README
//! that moved one box of the 36 faces by a pixel, and found no face more or fewer.

/// A grey image, row-major, one byte per pixel.
pub(super) struct Grey<'a> {
    pub pixels: &'a [u8],
    pub width: usize,
    pub height: usize,
}

/// A rectangle of source pixels; it may stick out of the image, where the pixels read as zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Region {
    pub x: i32,
    pub y: i32,
    /// At least 2 in each direction (bilinear taps read a pixel and the next).
    pub width: usize,
    pub height: usize,
}

/// Reusable buffers: resampling allocates nothing once they have grown to the largest output.
#[derive(Debug, Default)]
pub(super) struct Resampler {
    columns: ColumnTaps,
    /// Horizontal blends of the two source rows the current output row reads.
    upper: Vec<f32>,
    lower: Vec<f32>,
    /// The loaded image's pixels as f32, converted once instead of at every tap that reads them.
    values: Vec<f32>,
}

/// Per output column: the first source column (image coordinates) and the weights of it and the
/// next.
#[derive(Debug, Default)]
struct ColumnTaps {
    first: Vec<i32>,
    left_weights: Vec<f32>,
    right_weights: Vec<f32>,
}

/// The taps of a region `source` pixels long resampled to `target`.
#[derive(Clone, Copy)]
struct Taps {
    source: usize,
    scale: f64,
}

impl Taps {
    fn new(source: usize, target: usize) -> Taps {
        Taps {
            source,
            scale: source as f64 / target as f64,
        }
    }

    /// The first source pixel of output pixel `index` (relative to the region) and the weight of
    /// the next one.
    fn at(self, index: usize) -> (usize, f64) {
        let position = self.scale * index as f64;
        let first = (position as usize).min(self.source - 2);
        (first, position - first as f64)
    }
}

impl Resampler {
    /// Makes `image` the one [`Resampler::resample`] reads until the next load.
    pub fn load(&mut self, image: &Grey) {
        self.values.clear();
        self.values
            .extend(image.pixels.iter().map(|&pixel| f32::from(pixel)));
    }

    /// Resamples `region` of `image` to `width`×`height` pixels in `out` (exactly that long), of
    /// which it computes the first `columns` (1..=`width`) of each row and leaves the rest as they
    /// were: a stage that reads the left of a window need not pay for its right.
    pub fn resample(
        &mut self,
        image: &Grey,
        region: Region,
        (width, height): (usize, usize),
        columns: usize,
        out: &mut [u8],
    ) {
        debug_assert!(region.width >= 2 && region.height >= 2);
        debug_assert_eq!(out.len(), width * height);
        debug_assert!((1..=width).contains(&columns));
        debug_assert_eq!(self.values.len(), image.pixels.len(), "the image is loaded");
        let inside = region.x >= 0
            && region.y >= 0
            && region.x as usize + region.width <= image.width
            && region.y as usize + region.height <= image.height;
        if inside && (region.width, region.height) == (width, height) {
            // At its own size every tap is a whole pixel with weights 1 and 0 (the last, whose
            // first tap is the pixel before it, 0 and 1): the blends are the pixels, exactly. Most
            // windows of the first MLP stage are found on the pyramid's first level, at scale 1.
            let rows = image.pixels[region.y as usize * image.width..].chunks(image.width);
            let rows = out.chunks_exact_mut(width).zip(rows);
            let x = region.x as usize;
            // The columns the shipped model's first MLP stage reads (`surf::pixel_columns` of its
            // 32) at a length the compiler knows: a few vector moves per row, not a `memcpy` call.
            if columns == 33 {
                for (out, row) in rows {
                    copy_fixed::<33>(out, &row[x..]);
                }
            } else {
                for (out, row) in rows {
                    out[..columns].copy_from_slice(&row[x..][..columns]);
                }
            }
            return;
        }
        // Every weight of a region no smaller than its output is in 0..=1: its blends stay within
        // the pixels' range (but for a float rounding above 255, which truncates to 255).
        let shrinking = region.width >= width && region.height >= height;
        let rows = Taps::new(region.height, height);
        self.columns
            .set(Taps::new(region.width, width), region.x, columns);
        self.upper.resize(columns, 0.0);
        self.lower.resize(columns, 0.0);
        // The source rows whose blends `upper` and `lower` hold.
        let (mut upper_row, mut lower_row) = (None, None);
        for (i, out) in out.chunks_exact_mut(width).enumerate() {
            let (first, bottom_weight) = rows.at(i);
            let row = region.y + first as i32;
            if upper_row != Some(row) {
                if lower_row == Some(row) {
                    std::mem::swap(&mut self.upper, &mut self.lower);
                    upper_row = lower_row.take();
                } else {
                    self.columns
                        .blend(image, &self.values, row, &mut self.upper);
                    upper_row = Some(row);
                }
            }
            if lower_row != Some(row + 1) {
                self.columns
                    .blend(image, &self.values, row + 1, &mut self.lower);
                lower_row = Some(row + 1);
            }
            let (top_weight, bottom_weight) = ((1.0 - bottom_weight) as f32, bottom_weight as f32);
            let blends = out.iter_mut().zip(&self.upper).zip(&self.lower);
            if shrinking {
                for ((out, upper), lower) in blends {
                    *out = truncate_blend(top_weight * upper + bottom_weight * lower);
                }
            } else {
                for ((out, upper), lower) in blends {
                    *out = truncate_to_byte(top_weight * upper + bottom_weight * lower);
                }
            }
        }
    }
}

/// The first `N` bytes of `from` into the first `N` of `to` (both at least that long).
fn copy_fixed<const N: usize>(to: &mut [u8], from: &[u8]) {
    if let (Some(to), Some(from)) = (to.first_chunk_mut::<N>(), from.first_chunk::<N>()) {
        *to = *from;
    }
}

impl ColumnTaps {
    /// The taps of the first `columns` output columns from a region starting at column `origin`.
    fn set(&mut self, taps: Taps, origin: i32, columns: usize) {
        self.first.clear();
        self.left_weights.clear();
        self.right_weights.clear();
        for j in 0..columns {
            let (first, weight) = taps.at(j);
            self.first.push(origin + first as i32);
            self.left_weights.push((1.0 - weight) as f32);
            self.right_weights.push(weight as f32);
        }
    }

    /// Source row `row` blended horizontally at every output column, into `out`.
    fn blend(&self, image: &Grey, values: &[f32], row: i32, out: &mut [f32]) {
        if row < 0 || row as usize >= image.height {
            out.fill(0.0);
            return;
        }
        let pixels = &values[row as usize * image.width..][..image.width];
        let columns = &self.first;
        let inside = columns.first().is_some_and(|&x| x >= 0)
            && columns
                .last()
                .is_some_and(|&x| (x as usize) + 1 < image.width);
        if inside {
            // Four outputs at a time: their pixel pairs gathered into arrays, which the compiler
            // blends as vectors.
            const LANES: usize = 4;
            let pair = |x: i32| -> [f32; 2] {
                let pair = &pixels[x as usize..x as usize + 2];
                [pair[0], pair[1]]
            };
            let mut outs = out.chunks_exact_mut(LANES);
            let mut firsts = columns.chunks_exact(LANES);
            let mut lefts = self.left_weights.chunks_exact(LANES);
            let mut rights = self.right_weights.chunks_exact(LANES);
            for (((out, firsts), lefts), rights) in (&mut outs)
                .zip(&mut firsts)
                .zip(&mut lefts)
                .zip(&mut rights)
            {
                let pairs: [[f32; 2]; LANES] = std::array::from_fn(|i| pair(firsts[i]));
                for i in 0..LANES {
                    out[i] = lefts[i] * pairs[i][0] + rights[i] * pairs[i][1];
                }
            }
            let rest = outs.into_remainder().iter_mut().zip(firsts.remainder());
            for ((out, &x), (left, right)) in
                rest.zip(lefts.remainder().iter().zip(rights.remainder()))
            {
                let [first, second] = pair(x);
                *out = left * first + right * second;
            }
        } else {
            let pixel = |x: i32| {
                if x >= 0 && (x as usize) < image.width {
                    pixels[x as usize]
                } else {
                    0.0
                }
            };
            let weights = self.left_weights.iter().zip(&self.right_weights);
            for ((out, &x), (left, right)) in out.iter_mut().zip(columns).zip(weights) {
                *out = left * pixel(x) + right * pixel(x + 1);
            }
        }
    }
}

/// `value as u8` (truncated, saturated at 0 and 255), in operations that vectorise: Rust's
/// saturating float-to-int cast keeps the loop scalar on x86. Enlarging extrapolates past the last
/// source pixel (its taps stop at the second last), so a value may leave 0..=255.
#[inline(always)]
fn truncate_to_byte(value: f32) -> u8 {
    // Also sends NaN to 0.
    let value = if value >= 0.0 { value } else { 0.0 };
    truncate_blend(if value <= 255.0 { value } else { 255.0 })
}

/// [`truncate_to_byte`] of a value known to be in 0..256, without the clamping.
#[inline(always)]
fn truncate_blend(value: f32) -> u8 {
    // 2^23: adding it leaves a value below 2^22 rounded to the nearest integer in the low
    // mantissa bits.
    const ROUNDING: f32 = 8_388_608.0;
    let nearest = (value + ROUNDING) - ROUNDING;
    let truncated = if nearest > value {
        nearest - 1.0
    } else {
        nearest
    };
    (truncated + ROUNDING).to_bits() as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition, pixel by pixel: four neighbours, blended in the same order (in f32, with the
    /// f64 taps' weights) and truncated.
    /// Outside the image they are zero, as in SeetaFace, which copies a window sticking out of the
    /// image onto a zero border before resampling it.
    fn plain(image: &Grey, region: Region, width: usize, height: usize) -> Vec<u8> {
        let pixel = |x: i32, y: i32| {
            let inside =
                (0..image.width as i32).contains(&x) && (0..image.height as i32).contains(&y);
            if inside {
                f32::from(image.pixels[y as usize * image.width + x as usize])
            } else {
                0.0
            }
        };
        let mut out = Vec::with_capacity(width * height);
        for i in 0..height {
            let (first_row, bottom) = Taps::new(region.height, height).at(i);
            let y = region.y + first_row as i32;
            for j in 0..width {
                let (first_column, right) = Taps::new(region.width, width).at(j);
                let x = region.x + first_column as i32;
                let (left, right) = ((1.0 - right) as f32, right as f32);
                let upper = left * pixel(x, y) + right * pixel(x + 1, y);
                let lower = left * pixel(x, y + 1) + right * pixel(x + 1, y + 1);
                let (top, bottom) = ((1.0 - bottom) as f32, bottom as f32);
                out.push((top * upper + bottom * lower) as u8);
            }
        }
        out
    }

    #[test]
    fn truncation_to_a_byte_is_the_saturating_cast() {
        let mut values = vec![f32::NAN, -1e30, -1.0, -0.0, 255.0, 255.5, 256.0, 1e30];
        for integer in 0..=256u16 {
            let integer = f32::from(integer);
            values.extend([integer.next_down(), integer, integer.next_up()]);
            values.extend([0.25, 0.5, 0.75].map(|fraction| integer + fraction));
        }
        for value in values {
            assert_eq!(truncate_to_byte(value), value as u8, "{value}");
            // Without the clamping, for blends known to lie in 0..256 (up to a rounding past 255).
            if (0.0..256.0).contains(&value) {
                assert_eq!(truncate_blend(value), value as u8, "{value}");
            }
        }
    }

    /// `pixels` as a grey image, and a resampler that has loaded it.
    fn loaded(pixels: &[u8], width: usize, height: usize) -> (Grey<'_>, Resampler) {
        let image = Grey {
            pixels,
            width,
            height,
        };
        let mut resampler = Resampler::default();
        resampler.load(&image);
        (image, resampler)
    }

    #[test]
    fn shrinking_white_stays_white() {
        // The brightest blends of every shrinking scale stay 255 without the clamping.
        let (width, height) = (331, 257);
        let pixels = vec![255; width * height];
        let (image, mut resampler) = loaded(&pixels, width, height);
        for side in 41..=257 {
            let region = Region {
                x: 3,
                y: 0,
                width: side,
                height: side,
            };
            let mut out = vec![0; 40 * 40];
            resampler.resample(&image, region, (40, 40), 40, &mut out);
            assert!(out.iter().all(|&value| value == 255), "side {side}");
        }
    }

    #[test]
    fn resampling_is_the_pixel_by_pixel_definition() {
        let (width, height) = (97, 71);
        let pixels = super::super::seeded_noise(width * height, 21);
        let (image, mut resampler) = loaded(&pixels, width, height);
        let region = |x, y, width, height| Region {
            x,
            y,
            width,
            height,
        };
        for (region, target_width, target_height, columns) in [
            // Pyramid levels: the whole image, down by various factors, and a copy.
            (region(0, 0, width, height), 67, 49, 67),
            (region(0, 0, width, height), 40, 40, 40),
            (region(0, 0, width, height), width, height, width),
            // Windows: down, up, equal, and across every edge and corner; some only in part.
            (region(10, 5, 57, 57), 40, 40, 40),
            (region(10, 5, 57, 57), 40, 40, 33),
            (region(3, 9, 23, 23), 40, 40, 40),
            (region(30, 20, 40, 40), 40, 40, 40),
            (region(30, 20, 40, 40), 40, 40, 33),
            (region(57, 31, 40, 40), 40, 40, 40),
            (region(58, 31, 40, 40), 40, 40, 40),
            (region(0, 0, 40, 40), 40, 40, 1),
            (region(-20, 40, 53, 53), 40, 40, 40),
            (region(-20, 40, 53, 53), 40, 40, 17),
            (region(70, -9, 41, 41), 40, 40, 40),
            (region(85, 65, 100, 100), 40, 40, 33),
            (region(85, 65, 100, 100), 40, 40, 40),
            (region(-150, -150, 120, 120), 40, 40, 40),
            (region(-5, -5, 2, 2), 40, 40, 1),
        ] {
            const UNTOUCHED: u8 = 201;
            let mut expected = plain(&image, region, target_width, target_height);
            for row in expected.chunks_exact_mut(target_width) {
                row[columns..].fill(UNTOUCHED);
            }
            let mut out = vec![UNTOUCHED; target_width * target_height];
            // One resampler for all: what a call leaves in its buffers must not change the next.
            let size = (target_width, target_height);
            resampler.resample(&image, region, size, columns, &mut out);
            assert_eq!(
                out, expected,
                "{region:?} to {target_width}×{target_height}, {columns} columns"
            );
        }
    }
}
