//! The funnel's later stages: SURF-like gradient features of a candidate window (resampled to the
//! 40×40 window), classified by a small MLP that also corrects the window's position and size.

use super::WINDOW_SIDE;

const SIDE: usize = WINDOW_SIDE as usize;
/// Integral channels per pixel: dx and |dx| split by the sign of dy, dy and |dy| by the sign of dx.
const CHANNELS: usize = 8;
/// Every feature is a patch of 2×2 cells with all channels summed per cell.
pub(super) const SURF_FEATURE_DIM: usize = 4 * CHANNELS;
/// Window columns summed together, one 16-bit lane each in a 128-bit vector register.
const LANES: usize = 8;
/// The size of the feature pool the model's feature ids index (see [`feature_pool`]).
pub(super) const SURF_FEATURE_COUNT: usize = 56;

/// A feature's patch inside the window; its four cells are its quarters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Patch {
    x: usize,
    y: usize,
    width: usize,
    height: usize,
}

impl Patch {
    /// The rows of column sums its cells are read at: their top and bottom edges.
    fn cell_edges(self) -> [usize; 3] {
        [self.y, self.y + self.height / 2, self.y + self.height]
    }
}

/// SeetaFace's feature pool, in its order: patches of aspect 1:1, 1:2, 2:1, 2:3 and 3:2, from 16 px
/// to the whole window, every size whose cells have whole sides, at 16 px steps.
pub(super) fn feature_pool() -> Vec<Patch> {
    const MIN_SIDE: usize = 16;
    const STEP: usize = 16;
    let mut pool = Vec::new();
    for (unit_width, unit_height) in [(1, 1), (1, 2), (2, 1), (2, 3), (3, 2)] {
        for height in MIN_SIDE..=SIDE {
            if height % 2 != 0 || height % unit_height != 0 {
                continue;
            }
            let width = height / unit_height * unit_width;
            if width % 2 != 0 || !(MIN_SIDE..=SIDE).contains(&width) {
                continue;
            }
            for y in (0..=SIDE - height).step_by(STEP) {
                for x in (0..=SIDE - width).step_by(STEP) {
                    pool.push(Patch {
                        x,
                        y,
                        width,
                        height,
                    });
                }
            }
        }
    }
    pool
}

/// The channels of one 40×40 window summed down its columns: row `y` of channel `c` holds, for each
/// x, the sum over the rows above y. A cell's sum is then the difference of two rows summed across
/// the cell, which vectorises; a full integral image would add a serial pass along every row, the
/// costliest part of a window when the features of a stage cover only part of it.
///
/// Gradients and column sums fit 16 bits, twice the lanes of 32 in a vector register: a gradient is
/// at most 2 × 255 (doubled at the window's edges), a column's sum at most 40 × 510 = 20,400.
/// Cell sums, across up to 20 columns, are summed in 32 bits.
#[derive(Debug)]
pub(super) struct SurfFeatureMap {
    columns: Vec<i16>,
    dx: Vec<i16>,
    dy: Vec<i16>,
    pool: Vec<Patch>,
    /// What the last [`SurfFeatureMap::compute`] summed.
    computed: Footprint,
}

/// The part of a window a stage's features read: its left `columns`, and the rows of column sums
/// at their cells' top and bottom edges (bit y for the sum over the rows above y, 0..=40). The
/// first MLP stage's read 32 columns and 8 of the 41 rows.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Footprint {
    pub columns: usize,
    rows: u64,
}

impl Footprint {
    /// Every column and row.
    pub const WHOLE: Footprint = Footprint {
        columns: SIDE,
        rows: (1 << (SIDE + 1)) - 1,
    };

    /// The footprint of features of `patches`.
    fn of(patches: impl IntoIterator<Item = Patch>) -> Footprint {
        let mut footprint = Footprint {
            columns: 1,
            rows: 1,
        };
        for patch in patches {
            footprint.columns = footprint.columns.max(patch.x + patch.width);
            for edge in patch.cell_edges() {
                footprint.rows |= 1 << edge;
            }
        }
        footprint
    }

    fn has_row(self, y: usize) -> bool {
        self.rows >> y & 1 == 1
    }
}

impl Default for SurfFeatureMap {
    fn default() -> Self {
        SurfFeatureMap {
            columns: vec![0; (SIDE + 1) * CHANNELS * SIDE],
            dx: vec![0; SIDE * SIDE],
            dy: vec![0; SIDE * SIDE],
            pool: feature_pool(),
            computed: Footprint::WHOLE,
        }
    }
}

/// Where row `y` of `channel` starts in [`SurfFeatureMap::columns`].
fn column_row(y: usize, channel: usize) -> usize {
    (y * CHANNELS + channel) * SIDE
}

/// The window columns the gradients of its first `columns` columns read: the next one too, where
/// there is one.
pub(super) fn pixel_columns(columns: usize) -> usize {
    (columns + 1).min(SIDE)
}

/// The horizontal and vertical gradients of the first `columns` columns of a 40×40 window: across
/// three pixels, and at the window's edges across two, doubled.
fn gradients(window: &[u8], columns: usize, dx: &mut [i16], dy: &mut [i16]) {
    let row = |y: usize| &window[y * SIDE..][..SIDE];
    for y in 0..SIDE {
        let (pixels, out) = (row(y), &mut dx[y * SIDE..][..columns]);
        out[0] = 2 * (i16::from(pixels[1]) - i16::from(pixels[0]));
        let interior = &mut out[1..columns.min(SIDE - 1)];
        for ((out, before), after) in interior.iter_mut().zip(pixels).zip(&pixels[2..]) {
            *out = i16::from(*after) - i16::from(*before);
        }
        if columns == SIDE {
            out[SIDE - 1] = 2 * (i16::from(pixels[SIDE - 1]) - i16::from(pixels[SIDE - 2]));
        }
        let at_edge = y == 0 || y == SIDE - 1;
        let (up, down) = (row(y.saturating_sub(1)), row((y + 1).min(SIDE - 1)));
        let factor = if at_edge { 2 } else { 1 };
        for ((out, before), after) in dy[y * SIDE..][..columns].iter_mut().zip(up).zip(down) {
            *out = factor * (i16::from(*after) - i16::from(*before));
        }
    }
}

impl SurfFeatureMap {
    /// Builds the column sums a stage's features read (`footprint`) of a 40×40 grey window, of
    /// which it reads the first [`pixel_columns`]: a stage whose features lie left of a column
    /// needs no more, and neither does the window's resampling. Rows of sums no feature of the
    /// stage reads are not stored.
    pub fn compute(&mut self, window: &[u8], footprint: Footprint) {
        debug_assert_eq!(window.len(), SIDE * SIDE);
        debug_assert!((1..=SIDE).contains(&footprint.columns));
        self.computed = footprint;
        let columns = footprint.columns.next_multiple_of(LANES).min(SIDE);
        gradients(window, columns, &mut self.dx, &mut self.dy);
        // Eight columns at a time down the whole window, their eight channels' running sums held
        // in registers: each row's gradients are read once for all channels, and only the sums
        // are written. (Columns past `columns`, up to the next multiple of eight, are summed too,
        // from whatever the window holds there; no feature reads them.)
        self.columns[..column_row(1, 0)].fill(0);
        for first in (0..columns).step_by(LANES) {
            let mut sums = [[0i16; LANES]; CHANNELS];
            for y in 0..SIDE {
                let dx = &self.dx[y * SIDE + first..][..LANES];
                let dy = &self.dy[y * SIDE + first..][..LANES];
                for lane in 0..LANES {
                    let (dx, dy) = (dx[lane], dy[lane]);
                    // Each gradient and its magnitude go to one pair of channels or the other by
                    // the sign of the other gradient (`>> 15` is all ones where it is negative).
                    let (dx_negative, dy_negative) = (dx >> 15, dy >> 15);
                    let (dx_abs, dy_abs) = (dx.abs(), dy.abs());
                    sums[0][lane] += dx & !dy_negative;
                    sums[1][lane] += dx_abs & !dy_negative;
                    sums[2][lane] += dx & dy_negative;
                    sums[3][lane] += dx_abs & dy_negative;
                    sums[4][lane] += dy & !dx_negative;
                    sums[5][lane] += dy_abs & !dx_negative;
                    sums[6][lane] += dy & dx_negative;
                    sums[7][lane] += dy_abs & dx_negative;
                }
                if !footprint.has_row(y + 1) {
                    continue;
                }
                for (channel, sums) in sums.iter().enumerate() {
                    self.columns[column_row(y + 1, channel) + first..][..LANES]
                        .copy_from_slice(sums);
                }
            }
        }
    }

    /// Writes the L2-normalised feature `id` of the pool into `out` (32 values: the four cells in
    /// reading order, each with its eight channels).
    fn feature(&self, id: usize, out: &mut [f32]) {
        let patch = self.pool[id];
        debug_assert!(patch.x + patch.width <= self.computed.columns);
        debug_assert!(patch.cell_edges().iter().all(|&y| self.computed.has_row(y)));
        let (cell_width, cell_height) = (patch.width / 2, patch.height / 2);
        let mut sums = [0i32; SURF_FEATURE_DIM];
        for (cell, sums) in sums.chunks_exact_mut(CHANNELS).enumerate() {
            let x0 = patch.x + (cell % 2) * cell_width;
            let y0 = patch.y + (cell / 2) * cell_height;
            let y1 = y0 + cell_height;
            for (channel, sum) in sums.iter_mut().enumerate() {
                let top = &self.columns[column_row(y0, channel) + x0..][..cell_width];
                let bottom = &self.columns[column_row(y1, channel) + x0..][..cell_width];
                *sum = bottom
                    .iter()
                    .zip(top)
                    .map(|(&bottom, &top)| i32::from(bottom) - i32::from(top))
                    .sum();
            }
        }
        // In integers: a cell's sum is at most 20 × 20 × 510, so the 32 squares add up below 2^41,
        // where f64 is exact too, so this is the f64 sum to the bit, without its chain of
        // dependent additions.
        let norm_squared = sums
            .iter()
            .map(|&sum| i64::from(sum) * i64::from(sum))
            .sum::<i64>() as f64;
        if norm_squared == 0.0 {
            out.fill(0.0);
            return;
        }
        let norm = norm_squared.sqrt() as f32;
        for (out, sum) in out.iter_mut().zip(sums) {
            *out = sum as f32 / norm;
        }
    }
}

#[derive(Debug)]
pub(super) struct MlpLayer {
    inputs: usize,
    /// One row of `inputs` weights per output.
    weights: Vec<f32>,
    biases: Vec<f32>,
}

impl MlpLayer {
    pub fn new(inputs: usize, weights: Vec<f32>, biases: Vec<f32>) -> Self {
        debug_assert_eq!(weights.len(), inputs * biases.len());
        MlpLayer {
            inputs,
            weights,
            biases,
        }
    }

    fn compute(&self, input: &[f32], output: &mut Vec<f32>, activation: fn(f32) -> f32) {
        output.clear();
        output.extend(
            self.weights
                .chunks_exact(self.inputs)
                .zip(&self.biases)
                .map(|(weights, bias)| activation(dot(input, weights) + bias)),
        );
    }
}

/// Eight running sums, so the compiler can keep them in one vector register.
fn dot(left: &[f32], right: &[f32]) -> f32 {
    const LANES: usize = 8;
    let mut sums = [0.0f32; LANES];
    let (left_chunks, right_chunks) = (left.chunks_exact(LANES), right.chunks_exact(LANES));
    let tail: f32 = left_chunks
        .remainder()
        .iter()
        .zip(right_chunks.remainder())
        .map(|(l, r)| l * r)
        .sum();
    for (l, r) in left_chunks.zip(right_chunks) {
        for lane in 0..LANES {
            sums[lane] += l[lane] * r[lane];
        }
    }
    sums.iter().sum::<f32>() + tail
}

fn relu(x: f32) -> f32 {
    x.max(0.0)
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

#[derive(Debug)]
pub(super) struct MlpClassifier {
    /// 0-based ids into the feature pool.
    feature_ids: Vec<usize>,
    /// The part of the window its features read.
    footprint: Footprint,
    threshold: f32,
    layers: Vec<MlpLayer>,
}

/// What an MLP stage says of a window: its score, and the window's correction as fractions of its
/// side (0.5 for no change).
#[derive(Debug, Clone, Copy)]
pub(super) struct MlpVerdict {
    pub score: f32,
    pub x: f32,
    pub y: f32,
    pub size: f32,
}

/// Reusable buffers of an MLP evaluation.
#[derive(Debug, Default)]
pub(super) struct MlpBuffers {
    input: Vec<f32>,
    hidden: Vec<f32>,
    next: Vec<f32>,
}

impl MlpClassifier {
    /// `feature_ids` index [`feature_pool`].
    pub fn new(feature_ids: Vec<usize>, threshold: f32, layers: Vec<MlpLayer>) -> Self {
        let pool = feature_pool();
        let footprint = Footprint::of(feature_ids.iter().map(|&id| pool[id]));
        MlpClassifier {
            feature_ids,
            footprint,
            threshold,
            layers,
        }
    }

    /// The part of the window its features read.
    pub fn footprint(&self) -> Footprint {
        self.footprint
    }

    /// The verdict on the window whose features `map` holds, if it passes.
    pub fn classify(&self, map: &SurfFeatureMap, buffers: &mut MlpBuffers) -> Option<MlpVerdict> {
        let input = &mut buffers.input;
        input.resize(self.feature_ids.len() * SURF_FEATURE_DIM, 0.0);
        for (id, out) in self
            .feature_ids
            .iter()
            .zip(input.chunks_exact_mut(SURF_FEATURE_DIM))
        {
            map.feature(*id, out);
        }
        let (last, hidden_layers) = self.layers.split_last()?;
        let mut current = &buffers.input;
        for layer in hidden_layers {
            layer.compute(current, &mut buffers.next, relu);
            std::mem::swap(&mut buffers.hidden, &mut buffers.next);
            current = &buffers.hidden;
        }
        last.compute(current, &mut buffers.next, sigmoid);
        let [score, x, y, size] = buffers.next[..] else {
            return None;
        };
        (score > self.threshold).then_some(MlpVerdict { score, x, y, size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise_window(seed: u64) -> Vec<u8> {
        super::super::seeded_noise(SIDE * SIDE, seed)
    }

    #[test]
    fn the_pool_is_seetafaces() {
        let pool = feature_pool();
        assert_eq!(pool.len(), SURF_FEATURE_COUNT);
        let patch = |x, y, width, height| Patch {
            x,
            y,
            width,
            height,
        };
        assert_eq!(pool[0], patch(0, 0, 16, 16));
        assert_eq!(pool[3], patch(16, 16, 16, 16));
        assert!(pool.contains(&patch(0, 0, 40, 40)));
        assert!(pool.iter().all(|p| p.x + p.width <= SIDE
            && p.y + p.height <= SIDE
            && p.width % 2 == 0
            && p.height % 2 == 0));
    }

    /// Windows whose gradients and column sums reach their bounds, and noise.
    fn test_windows() -> Vec<Vec<u8>> {
        let pattern = |bright: fn(usize, usize) -> bool| -> Vec<u8> {
            (0..SIDE * SIDE)
                .map(|i| if bright(i % SIDE, i / SIDE) { 255 } else { 0 })
                .collect()
        };
        vec![
            noise_window(11),
            // The steepest edge down the first and last columns, and across the first and last rows.
            pattern(|x, _| x == 0 || x == SIDE - 1),
            pattern(|x, _| x != 0 && x != SIDE - 1),
            pattern(|_, y| y == 0 || y == SIDE - 1),
            pattern(|_, y| y != 0 && y != SIDE - 1),
            // Stripes and a checkerboard of 2×2 squares: every interior gradient at ±255.
            pattern(|x, _| x / 2 % 2 == 0),
            pattern(|_, y| y / 2 % 2 == 0),
            pattern(|x, y| (x / 2 + y / 2) % 2 == 0),
        ]
    }

    #[test]
    fn features_are_normalised_cell_sums_of_the_split_gradients() {
        for window in test_windows() {
            features_are_the_definitions(&window);
        }
    }

    fn features_are_the_definitions(window: &[u8]) {
        let pixel = |x: i32, y: i32| {
            let clamp = |v: i32| v.clamp(0, SIDE as i32 - 1) as usize;
            i32::from(window[clamp(y) * SIDE + clamp(x)])
        };
        let gradient = |x: i32, y: i32, horizontal: bool| {
            let edge = if horizontal {
                x == 0 || x == SIDE as i32 - 1
            } else {
                y == 0 || y == SIDE as i32 - 1
            };
            let difference = if horizontal {
                pixel(x + 1, y) - pixel(x - 1, y)
            } else {
                pixel(x, y + 1) - pixel(x, y - 1)
            };
            // At an edge the clamped neighbour is the pixel itself: half the span, doubled.
            if edge {
                2 * difference
            } else {
                difference
            }
        };
        let mut map = SurfFeatureMap::default();
        map.compute(&noise_window(99), Footprint::WHOLE);
        map.compute(window, Footprint::WHOLE);
        let mut out = [0.0f32; SURF_FEATURE_DIM];
        for (id, patch) in feature_pool().into_iter().enumerate() {
            let mut sums = [0i32; SURF_FEATURE_DIM];
            for cell in 0..4 {
                let (width, height) = (patch.width / 2, patch.height / 2);
                let (x0, y0) = (patch.x + cell % 2 * width, patch.y + cell / 2 * height);
                for y in y0..y0 + height {
                    for x in x0..x0 + width {
                        let dx = gradient(x as i32, y as i32, true);
                        let dy = gradient(x as i32, y as i32, false);
                        let sums = &mut sums[cell * CHANNELS..][..CHANNELS];
                        let (x_pair, y_pair) =
                            (if dy < 0 { 2 } else { 0 }, if dx < 0 { 6 } else { 4 });
                        sums[x_pair] += dx;
                        sums[x_pair + 1] += dx.abs();
                        sums[y_pair] += dy;
                        sums[y_pair + 1] += dy.abs();
                    }
                }
            }
            let norm = sums
                .iter()
                .map(|&s| f64::from(s).powi(2))
                .sum::<f64>()
                .sqrt() as f32;
            map.feature(id, &mut out);
            for (value, sum) in out.iter().zip(sums) {
                // A patch without gradient (a stripe's flat side) is all zeros, not 0 / 0.
                let expected = if norm == 0.0 { 0.0 } else { sum as f32 / norm };
                assert_eq!(*value, expected, "feature {id}");
            }
        }
        map.compute(&[77; SIDE * SIDE], Footprint::WHOLE);
        map.feature(0, &mut out);
        assert_eq!(
            out, [0.0; SURF_FEATURE_DIM],
            "a flat window has no gradient"
        );
    }

    #[test]
    fn a_map_of_a_footprint_has_its_features_as_the_whole_map_has() {
        let window = noise_window(5);
        let mut whole = SurfFeatureMap::default();
        whole.compute(&window, Footprint::WHOLE);
        let pool = feature_pool();
        let ids = |columns: usize| -> Vec<usize> {
            (0..pool.len())
                .filter(|&id| pool[id].x + pool[id].width <= columns)
                .collect()
        };
        // The left columns; features alone; the model's first MLP stage's.
        let mut sets: Vec<Vec<usize>> = [16, 24, 32, 39].map(ids).to_vec();
        sets.extend([vec![0], vec![1], vec![17], vec![55], vec![40, 3]]);
        let first_stage = [
            (0, 0, 16, 16),
            (16, 0, 16, 24),
            (16, 16, 16, 24),
            (0, 16, 24, 16),
        ];
        sets.push(
            first_stage
                .iter()
                .map(|&(x, y, width, height)| {
                    let patch = Patch {
                        x,
                        y,
                        width,
                        height,
                    };
                    pool.iter().position(|p| *p == patch).expect("in the pool")
                })
                .collect(),
        );
        let mut part = SurfFeatureMap::default();
        let (mut expected, mut out) = ([0.0f32; SURF_FEATURE_DIM], [0.0f32; SURF_FEATURE_DIM]);
        for set in sets {
            let footprint = Footprint::of(set.iter().map(|&id| pool[id]));
            // Pixels right of those it may read, and rows of sums it need not store, hold
            // another window's.
            let mut left = noise_window(6);
            part.compute(&left, Footprint::WHOLE);
            let read = pixel_columns(footprint.columns);
            for (row, source) in left.chunks_exact_mut(SIDE).zip(window.chunks_exact(SIDE)) {
                row[..read].copy_from_slice(&source[..read]);
            }
            part.compute(&left, footprint);
            for &id in &set {
                whole.feature(id, &mut expected);
                part.feature(id, &mut out);
                assert_eq!(out, expected, "feature {id} of {footprint:?}");
            }
        }
    }

    #[test]
    fn a_footprint_is_the_columns_and_cell_edges_its_features_read() {
        let pool = feature_pool();
        // The model's first MLP stage: 32 columns, rows 0, 8, 12, 16, 24, 28, 32 and 40.
        let patch = |x, y, width, height| Patch {
            x,
            y,
            width,
            height,
        };
        let first_stage = [
            patch(0, 0, 16, 16),
            patch(16, 0, 16, 24),
            patch(16, 16, 16, 24),
            patch(0, 16, 24, 16),
        ];
        assert!(first_stage.iter().all(|patch| pool.contains(patch)));
        let footprint = Footprint::of(first_stage);
        let rows: Vec<usize> = (0..=SIDE).filter(|&y| footprint.has_row(y)).collect();
        assert_eq!(footprint.columns, 32);
        assert_eq!(rows, [0, 8, 12, 16, 24, 28, 32, 40]);
        assert_eq!(Footprint::of(pool.iter().copied()).columns, SIDE);
    }

    #[test]
    fn the_dot_product_sums_every_term() {
        for length in [0, 1, 7, 8, 9, 128, 131] {
            let left: Vec<f32> = (0..length).map(|i| i as f32 * 0.5).collect();
            let right: Vec<f32> = (0..length).map(|i| 3.0 - i as f32).collect();
            let expected: f32 = left.iter().zip(&right).map(|(l, r)| l * r).sum();
            assert!((dot(&left, &right) - expected).abs() <= 1e-3 * expected.abs().max(1.0));
        }
    }
}
