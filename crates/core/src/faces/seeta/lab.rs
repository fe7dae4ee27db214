//! The funnel's first stage: locally assembled binary (LAB) features, scored by a boosted cascade on
//! every window of every pyramid level. This is where detection spends most of its time, so the
//! feature map is built with straight slice loops the compiler vectorises, and a window is rejected
//! on its contrast before any feature is read.

use super::WINDOW_SIDE;

/// A LAB feature compares the 3×3 box at the centre of a 9×9 pattern with its eight neighbours.
pub(super) const LAB_PATTERN_SIDE: u32 = 9;
/// Boosted weak classifiers are summed in groups; the cascade may reject after each group.
const GROUP: usize = 10;
/// Windows whose grey standard deviation is at or below this are flat, never faces.
const MIN_STD_DEV: i64 = 10;
const MIN_VARIANCE_TIMES_AREA_SQUARED: i64 = (MIN_STD_DEV * (WINDOW_SIDE * WINDOW_SIDE) as i64)
    * (MIN_STD_DEV * (WINDOW_SIDE * WINDOW_SIDE) as i64);

#[derive(Debug)]
pub(super) struct LabClassifier {
    /// Each weak classifier's feature, relative to the window's top left.
    offsets: Vec<(u32, u32)>,
    /// The running score must stay at or above `thresholds[i]` after each group ending at `i`.
    thresholds: Vec<f32>,
    /// 256 weights per weak classifier, indexed by the LAB code.
    weights: Vec<f32>,
}

impl LabClassifier {
    /// `offsets` inside the window, one threshold and 256 weights per weak classifier.
    pub fn new(offsets: Vec<(u32, u32)>, thresholds: Vec<f32>, weights: Vec<f32>) -> Self {
        // The model holds whole groups; a partial last group is dropped rather than read past.
        let whole = offsets.len() / GROUP * GROUP;
        let mut offsets = offsets;
        let mut thresholds = thresholds;
        let mut weights = weights;
        offsets.truncate(whole);
        thresholds.truncate(whole);
        weights.truncate(whole * 256);
        LabClassifier {
            offsets,
            thresholds,
            weights,
        }
    }
}

/// The LAB codes and contrast sums of one pyramid level, reused from level to level.
#[derive(Debug, Default)]
pub(super) struct LabFeatureMap {
    width: usize,
    height: usize,
    /// The 3×3 box sum with its top left at each pixel (at most 9 × 255, so u16).
    box_sums: Vec<u16>,
    row_sums: Vec<u16>,
    /// The LAB code of the 9×9 pattern with its top left at each pixel.
    codes: Vec<u8>,
    /// Integral images with a zero first row and column: `sum[(y, x)]` covers the pixels above and
    /// left of (x, y). The squares wrap at 2^32, which leaves window sums exact: a 40×40 window's
    /// squares stay below 1600 × 255², far inside u32.
    sum: Vec<u32>,
    square_sum: Vec<u32>,
}

impl LabFeatureMap {
    /// Builds the map of a `width`×`height` grey image (at least a window in each direction).
    pub fn compute(&mut self, grey: &[u8], width: usize, height: usize) {
        debug_assert!(width >= WINDOW_SIDE as usize && height >= WINDOW_SIDE as usize);
        debug_assert_eq!(grey.len(), width * height);
        self.width = width;
        self.height = height;
        self.compute_integrals(grey);
        self.compute_box_sums(grey);
        self.compute_codes();
    }

    fn compute_integrals(&mut self, grey: &[u8]) {
        let stride = self.width + 1;
        // Every entry but the zero first row and column is written below.
        self.sum.resize(stride * (self.height + 1), 0);
        self.square_sum.resize(stride * (self.height + 1), 0);
        self.sum[..stride].fill(0);
        self.square_sum[..stride].fill(0);
        for (y, row) in grey.chunks_exact(self.width).enumerate() {
            let (above, below) = self.sum.split_at_mut((y + 1) * stride);
            let (square_above, square_below) = self.square_sum.split_at_mut((y + 1) * stride);
            let above = &above[y * stride..];
            let square_above = &square_above[y * stride..];
            below[0] = 0;
            square_below[0] = 0;
            let (mut run, mut square_run) = (0u32, 0u32);
            for x in 0..self.width {
                let value = u32::from(row[x]);
                run += value;
                square_run = square_run.wrapping_add(value * value);
                below[x + 1] = above[x + 1].wrapping_add(run);
                square_below[x + 1] = square_above[x + 1].wrapping_add(square_run);
            }
        }
    }

    fn compute_box_sums(&mut self, grey: &[u8]) {
        let (width, height) = (self.width, self.height);
        // Only the entries written here are read: no need to clear what an earlier level left.
        self.row_sums.resize(width * height, 0);
        for (sums, row) in self
            .row_sums
            .chunks_exact_mut(width)
            .zip(grey.chunks_exact(width))
        {
            for ((sum, (a, b)), c) in sums
                .iter_mut()
                .zip(row.iter().zip(&row[1..]))
                .zip(&row[2..])
            {
                *sum = u16::from(*a) + u16::from(*b) + u16::from(*c);
            }
        }
        self.box_sums.resize(width * height, 0);
        for y in 0..height - 2 {
            let rows = &self.row_sums[y * width..(y + 3) * width];
            let (first, rest) = rows.split_at(width);
            let (second, third) = rest.split_at(width);
            for (((sum, a), b), c) in self.box_sums[y * width..(y + 1) * width]
                .iter_mut()
                .zip(first)
                .zip(second)
                .zip(third)
            {
                *sum = a + b + c;
            }
        }
    }

    /// Bit order as SeetaFace's: the eight neighbour boxes clockwise from the top left set bits 7, 6,
    /// 5, 3, 0, 1, 2 and 4 when the centre box is at least as bright.
    fn compute_codes(&mut self) {
        let width = self.width;
        let span = self.width - 9 + 1;
        self.codes.resize(width * self.height, 0);
        let boxes = &self.box_sums;
        for y in 0..=self.height - 9 {
            let row = |dy: usize, dx: usize| &boxes[(y + dy) * width + dx..][..span];
            let centre = row(3, 3);
            let (top_left, top, top_right) = (row(0, 0), row(0, 3), row(0, 6));
            let (left, right) = (row(3, 0), row(3, 6));
            let (bottom_left, bottom, bottom_right) = (row(6, 0), row(6, 3), row(6, 6));
            let codes = &mut self.codes[y * width..][..span];
            for i in 0..span {
                let at_least = |neighbour: &[u16], bit: u8| {
                    if centre[i] >= neighbour[i] {
                        bit
                    } else {
                        0
                    }
                };
                codes[i] = at_least(top_left, 0x80)
                    | at_least(top, 0x40)
                    | at_least(top_right, 0x20)
                    | at_least(right, 0x08)
                    | at_least(bottom_right, 0x01)
                    | at_least(bottom, 0x02)
                    | at_least(bottom_left, 0x04)
                    | at_least(left, 0x10);
            }
        }
    }

    /// Whether the window at (x, y) is not flat: its grey standard deviation is above
    /// [`MIN_STD_DEV`]. Compared as `n·Σv² − (Σv)² > (n·σ)²`, exact in integers.
    pub fn has_contrast(&self, x: usize, y: usize) -> bool {
        let stride = self.width + 1;
        let side = WINDOW_SIDE as usize;
        let window = |table: &[u32]| {
            let (top, bottom) = (y * stride, (y + side) * stride);
            let sum = table[bottom + x + side]
                .wrapping_sub(table[bottom + x])
                .wrapping_sub(table[top + x + side])
                .wrapping_add(table[top + x]);
            i64::from(sum)
        };
        let area = i64::from(WINDOW_SIDE * WINDOW_SIDE);
        let (sum, square_sum) = (window(&self.sum), window(&self.square_sum));
        area * square_sum - sum * sum > MIN_VARIANCE_TIMES_AREA_SQUARED
    }

    /// Scores `windows` by the cascade and keeps those that pass every group; `indexes` are the
    /// classifier's [`LabClassifier::indexes_at`] this map's width.
    ///
    /// Group by group over all the windows: one group's tables (10 KiB) stay in the cache for every
    /// window, where scoring window by window walks the whole cascade's (over 300 KiB) for each.
    /// Each score is still summed in the model's order, so it is exactly what scoring the window
    /// alone gives.
    pub fn score_windows(
        &self,
        classifier: &LabClassifier,
        indexes: &[usize],
        windows: &mut Vec<ScoredWindow>,
    ) {
        for ((indexes, weights), thresholds) in indexes
            .chunks_exact(GROUP)
            .zip(classifier.weights.chunks_exact(GROUP * 256))
            .zip(classifier.thresholds.chunks_exact(GROUP))
        {
            if windows.is_empty() {
                return;
            }
            let tables: [&[f32]; GROUP] = std::array::from_fn(|i| &weights[i * 256..][..256]);
            let threshold = thresholds[GROUP - 1];
            // The codes a window's lookups read lie in its first `span`.
            let span = indexes.iter().max().map_or(0, |&index| index + 1);
            // Those that pass are moved down over those that did not, in the same pass.
            let mut passed = 0;
            for next in 0..windows.len() {
                // A window's ten lookups in a row: independent of the next window's, which the
                // processor overlaps with them.
                let mut window = windows[next];
                let codes = &self.codes[window.start..window.start + span];
                for (&index, table) in indexes.iter().zip(tables) {
                    // SAFETY: `index` is at most `span - 1`, and `codes` is `span` long (checked
                    // once above for the ten lookups, where indexing would check each).
                    debug_assert!(index < codes.len());
                    let code = unsafe { *codes.get_unchecked(index) };
                    window.score += table[usize::from(code)];
                }
                windows[passed] = window;
                passed += usize::from(window.score >= threshold);
            }
            windows.truncate(passed);
        }
    }

    /// A window at (`x`, `y`) of this map, not yet scored.
    pub fn window_at(&self, x: usize, y: usize) -> ScoredWindow {
        ScoredWindow {
            start: y * self.width + x,
            score: 0.0,
        }
    }

    /// Where a window of [`LabFeatureMap::window_at`] is, as (x, y).
    pub fn position(&self, window: &ScoredWindow) -> (usize, usize) {
        (window.start % self.width, window.start / self.width)
    }
}

/// A window of a [`LabFeatureMap`] and its running cascade score.
#[derive(Debug, Clone, Copy)]
pub(super) struct ScoredWindow {
    /// Its top left corner's index in the map.
    start: usize,
    pub score: f32,
}

impl LabClassifier {
    /// The weak classifiers' features as offsets into a feature map `width` wide.
    pub fn indexes_at(&self, width: usize, indexes: &mut Vec<usize>) {
        indexes.clear();
        indexes.extend(
            self.offsets
                .iter()
                .map(|&(x, y)| y as usize * width + x as usize),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded grey image: `amplitude` of noise around mid grey.
    fn noise(width: usize, height: usize, amplitude: u32, seed: u64) -> Vec<u8> {
        super::super::seeded_noise(width * height, seed)
            .into_iter()
            .map(|byte| (128 + u32::from(byte) % (2 * amplitude + 1) - amplitude) as u8)
            .collect()
    }

    #[test]
    fn codes_follow_the_pattern_definition() {
        let (width, height) = (57, 49);
        let grey = noise(width, height, 127, 7);
        let mut map = LabFeatureMap::default();
        // A larger level first: what it leaves in the buffers must not leak into the next.
        map.compute(&noise(90, 80, 127, 3), 90, 80);
        map.compute(&grey, width, height);
        let box_sum = |x: usize, y: usize| -> u32 {
            (0..3)
                .flat_map(|dy| (0..3).map(move |dx| (dx, dy)))
                .map(|(dx, dy)| u32::from(grey[(y + dy) * width + x + dx]))
                .sum()
        };
        for y in 0..=height - 9 {
            for x in 0..=width - 9 {
                let centre = box_sum(x + 3, y + 3);
                let bit = |dx: usize, dy: usize, bit: u8| {
                    if centre >= box_sum(x + dx, y + dy) {
                        bit
                    } else {
                        0
                    }
                };
                let expected = bit(0, 0, 0x80)
                    | bit(3, 0, 0x40)
                    | bit(6, 0, 0x20)
                    | bit(6, 3, 0x08)
                    | bit(6, 6, 0x01)
                    | bit(3, 6, 0x02)
                    | bit(0, 6, 0x04)
                    | bit(0, 3, 0x10);
                assert_eq!(map.codes[y * width + x], expected, "({x}, {y})");
            }
        }
    }

    #[test]
    fn contrast_is_a_standard_deviation_above_ten() {
        let side = WINDOW_SIDE as usize;
        let std_dev = |pixels: &[u8]| {
            let n = pixels.len() as f64;
            let mean = pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / n;
            (pixels
                .iter()
                .map(|&p| (f64::from(p) - mean).powi(2))
                .sum::<f64>()
                / n)
                .sqrt()
        };
        // A checkerboard of 0 and 20 has a deviation of exactly 10: not above it.
        let checker: Vec<u8> = (0..side * side)
            .map(|i| {
                if (i / side + i % side).is_multiple_of(2) {
                    0
                } else {
                    20
                }
            })
            .collect();
        let checker_brighter: Vec<u8> = checker
            .iter()
            .map(|&p| if p == 0 { 0 } else { 21 })
            .collect();
        let mut map = LabFeatureMap::default();
        for (pixels, expected) in [
            (vec![200; side * side], false),
            (checker, false),
            (checker_brighter, true),
            (noise(side, side, 40, 1), true),
            (noise(side, side, 12, 2), false),
        ] {
            map.compute(&pixels, side, side);
            assert_eq!(
                map.has_contrast(0, 0),
                expected,
                "std dev {}",
                std_dev(&pixels)
            );
            assert_eq!(std_dev(&pixels) > 10.0, expected);
        }
        // Windows inside a larger image read their own pixels only.
        let (width, height) = (100, 70);
        let grey = noise(width, height, 60, 9);
        map.compute(&grey, width, height);
        for (x, y) in [(0, 0), (60, 30), (13, 17)] {
            let window: Vec<u8> = (0..side)
                .flat_map(|dy| grey[(y + dy) * width + x..][..side].to_vec())
                .collect();
            assert_eq!(map.has_contrast(x, y), std_dev(&window) > 10.0);
        }
    }

    #[test]
    fn the_cascade_stops_at_the_first_group_below_its_threshold() {
        // Two groups of ten features, all at the window's top left; every code scores 1.
        let offsets = vec![(0, 0); 2 * GROUP];
        let weights = vec![1.0; 2 * GROUP * 256];
        let side = WINDOW_SIDE as usize;
        let mut map = LabFeatureMap::default();
        map.compute(&noise(side, side, 60, 4), side, side);
        let mut indexes = Vec::new();
        let score = |thresholds: Vec<f32>, indexes: &mut Vec<usize>| {
            let classifier = LabClassifier::new(offsets.clone(), thresholds, weights.clone());
            classifier.indexes_at(side, indexes);
            score_one(&map, &classifier, indexes)
        };
        let mut thresholds = vec![0.0; 2 * GROUP];
        assert_eq!(score(thresholds.clone(), &mut indexes), Some(20.0));
        thresholds[GROUP - 1] = 10.5;
        assert_eq!(score(thresholds.clone(), &mut indexes), None, "first group");
        thresholds[GROUP - 1] = 10.0;
        thresholds[2 * GROUP - 1] = 20.5;
        assert_eq!(score(thresholds, &mut indexes), None, "second group");
        // A partial last group is dropped, never read past.
        let classifier = LabClassifier::new(vec![(0, 0); 15], vec![0.0; 15], vec![1.0; 15 * 256]);
        classifier.indexes_at(side, &mut indexes);
        assert_eq!(score_one(&map, &classifier, &indexes), Some(10.0));
    }

    /// The score of the window at the top left, alone.
    fn score_one(
        map: &LabFeatureMap,
        classifier: &LabClassifier,
        indexes: &[usize],
    ) -> Option<f32> {
        let mut windows = vec![map.window_at(0, 0)];
        map.score_windows(classifier, indexes, &mut windows);
        windows.first().map(|window| window.score)
    }

    #[test]
    fn windows_are_scored_as_the_cascade_defines_it() {
        let model =
            super::super::Model::parse(include_bytes!("../../../models/seeta_fd_frontal_v1.0.bin"))
                .expect("parses");
        let (width, height) = (120, 90);
        // Low contrast noise: windows leave the cascades after various groups, some pass.
        let grey = noise(width, height, 30, 13);
        let mut map = LabFeatureMap::default();
        map.compute(&grey, width, height);
        let (mut passed, mut stopped) = (0, 0);
        for item in &model.hierarchies[0] {
            let super::super::model::Classifier::Lab(classifier) = &item.stages[0] else {
                panic!("the first hierarchy is LAB classifiers");
            };
            let mut indexes = Vec::new();
            classifier.indexes_at(width, &mut indexes);
            // The definition: weak classifiers summed in order, checked after every group.
            let plain = |x: usize, y: usize| {
                let mut score = 0.0f32;
                for (i, &(dx, dy)) in classifier.offsets.iter().enumerate() {
                    let code = map.codes[(y + dy as usize) * width + x + dx as usize];
                    score += classifier.weights[i * 256 + usize::from(code)];
                    if i % GROUP == GROUP - 1 && score < classifier.thresholds[i] {
                        return None;
                    }
                }
                Some(score)
            };
            // Windows in rows and columns as a scan gives them, and out of order.
            let mut positions: Vec<(usize, usize)> = (0..=height - 40)
                .step_by(3)
                .flat_map(|y| (0..=width - 40).step_by(5).map(move |x| (x, y)))
                .collect();
            positions.extend([(80, 50), (0, 0), (80, 0), (3, 50)]);
            let mut windows: Vec<ScoredWindow> = positions
                .iter()
                .map(|&(x, y)| map.window_at(x, y))
                .collect();
            map.score_windows(classifier, &indexes, &mut windows);
            let mut scored = windows.iter();
            for &(x, y) in &positions {
                let expected = plain(x, y);
                match expected {
                    Some(_) => passed += 1,
                    None => stopped += 1,
                }
                let Some(expected) = expected else { continue };
                // Survivors keep their order.
                let window = scored.next().expect("a window for each that passes");
                assert_eq!(map.position(window), (x, y));
                assert_eq!(window.score, expected, "({x}, {y})");
            }
            assert!(scored.next().is_none(), "only windows that pass");
        }
        assert!(
            passed > 0 && stopped > 0,
            "{passed} passed, {stopped} stopped"
        );
    }
}
