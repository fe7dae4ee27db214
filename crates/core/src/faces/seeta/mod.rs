//! SeetaFace's funnel-structured cascade (Wu et al., "Funnel-structured cascade for multi-view face
//! detection with alignment awareness"; the model and the method are BSD-2-Clause, see
//! models/LICENSE-SeetaFace.txt), after the C++ original and its Rust port rustface, rewritten for
//! speed on one core: vectorisable feature maps, a contrast check before the cascade, windows
//! scored a cascade group at a time across a pyramid row, resampling row by row ([`resample`]),
//! merging by a grid and no allocation per window. Its results are the original's but for windows
//! blended in f32 (see [`resample`]).
//!
//! 1. Every 40×40 window of an image pyramid is scored by the boosted LAB cascade ([`lab`]).
//! 2. Overlapping survivors are merged (non-maximum suppression, scores summed).
//! 3. Each later hierarchy resamples every survivor to 40×40 (only the columns its features read:
//!    the first MLP stage's lie in the left 32), scores it with an MLP on SURF-like features and
//!    moves and resizes it as the MLP says ([`surf`]); merged again after each stage.

mod lab;
mod model;
mod resample;
mod surf;

use lab::{LabClassifier, LabFeatureMap, ScoredWindow};
use model::Classifier;
pub(super) use model::Model;
use resample::{Grey, Region, Resampler};
use surf::{MlpBuffers, MlpClassifier, SurfFeatureMap};

/// The side of the square window every classifier sees.
const WINDOW_SIDE: u32 = 40;

/// How a scan proceeds; see `DetectorSettings` for what the pipeline uses.
#[derive(Debug, Clone, Copy)]
pub(super) struct Scan {
    /// The smallest face searched for, in pixels (the pyramid starts where it fills a window).
    pub min_face: u32,
    /// Each pyramid level's side as a fraction of the previous one's, in (0, 1).
    pub pyramid_scale: f32,
    /// Pixels the first stage's window moves by.
    pub step: u32,
    /// Final windows scoring below this (summed over the windows merged into them) are dropped.
    pub min_score: f64,
}

/// A square window in pixels of the scanned image; it may stick out of the image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct Window {
    pub x: i32,
    pub y: i32,
    pub side: i32,
    pub score: f64,
}

/// A model and the buffers of a scan; [`Detector::detect`] any number of images with it.
#[derive(Debug)]
pub(super) struct Detector<'m> {
    model: &'m Model,
    level: Vec<u8>,
    lab: LabFeatureMap,
    /// The windows of a pyramid row that pass the contrast test, and those a cascade passes.
    candidates: Vec<ScoredWindow>,
    scored: Vec<ScoredWindow>,
    resampler: Resampler,
    window: Vec<u8>,
    surf: SurfFeatureMap,
    mlp: MlpBuffers,
}

impl<'m> Detector<'m> {
    pub fn new(model: &'m Model) -> Detector<'m> {
        Detector {
            model,
            level: Vec::new(),
            lab: LabFeatureMap::default(),
            candidates: Vec::new(),
            scored: Vec::new(),
            resampler: Resampler::default(),
            window: vec![0; (WINDOW_SIDE * WINDOW_SIDE) as usize],
            surf: SurfFeatureMap::default(),
            mlp: MlpBuffers::default(),
        }
    }

    /// The faces in a `width`×`height` grey image, best first. Images smaller than a window in
    /// either direction have none.
    pub fn detect(&mut self, grey: &[u8], width: u32, height: u32, scan: &Scan) -> Vec<Window> {
        let image = Grey {
            pixels: grey,
            width: width as usize,
            height: height as usize,
        };
        if grey.len() != image.width * image.height || width.min(height) < WINDOW_SIDE {
            return Vec::new();
        }
        self.resampler.load(&image);
        let mut survivors = self.scan_windows(&image, scan);
        // The model outlives the buffers' borrows below.
        let model = self.model;
        let last = model.hierarchies.len().saturating_sub(1);
        for (level, items) in model.hierarchies.iter().enumerate().skip(1) {
            let mut refined = Vec::with_capacity(items.len());
            for item in items {
                let mut windows: Vec<Window> = item
                    .sources
                    .iter()
                    .flat_map(|&source| survivors[source].iter().copied())
                    .collect();
                for (stage, classifier) in item.stages.iter().enumerate() {
                    if let Classifier::Mlp(classifier) = classifier {
                        windows = self.refine(&image, classifier, windows);
                    }
                    if stage + 1 < item.stages.len() {
                        windows = merge_overlapping(windows, 0.8);
                    } else if level == last {
                        windows = merge_overlapping(windows, 0.3);
                    }
                }
                refined.push(windows);
            }
            survivors = refined;
        }
        let mut faces = survivors.into_iter().next().unwrap_or_default();
        faces.retain(|face| face.score >= scan.min_score);
        faces
    }

    /// The first hierarchy: every window of every pyramid level, merged per item.
    fn scan_windows(&mut self, image: &Grey, scan: &Scan) -> Vec<Vec<Window>> {
        let classifiers: Vec<&LabClassifier> = self.model.hierarchies[0]
            .iter()
            .filter_map(|item| match &item.stages[0] {
                Classifier::Lab(classifier) => Some(classifier),
                Classifier::Mlp(_) => None,
            })
            .collect();
        let mut indexes = vec![Vec::new(); classifiers.len()];
        let mut found = vec![Vec::new(); classifiers.len()];
        let window = WINDOW_SIDE as f32;
        let smallest = window / image.width.min(image.height) as f32;
        let pyramid_scale = scan.pyramid_scale.clamp(0.01, 0.99);
        let step = scan.step.max(1) as usize;
        let mut scale = window / scan.min_face.max(1) as f32;
        while scale >= smallest {
            let level_scale = scale;
            scale *= pyramid_scale;
            let width = (image.width as f32 * level_scale) as usize;
            let height = (image.height as f32 * level_scale) as usize;
            if width < WINDOW_SIDE as usize || height < WINDOW_SIDE as usize {
                continue;
            }
            self.resample_level(image, width, height);
            self.lab.compute(&self.level, width, height);
            for (classifier, indexes) in classifiers.iter().zip(indexes.iter_mut()) {
                classifier.indexes_at(width, indexes);
            }
            let columns = (0..=width - WINDOW_SIDE as usize).step_by(step);
            for y in (0..=height - WINDOW_SIDE as usize).step_by(step) {
                // The contrast test once per window for all the cascades.
                let lab = &self.lab;
                self.candidates.clear();
                self.candidates.extend(
                    columns
                        .clone()
                        .filter(|&x| lab.has_contrast(x, y))
                        .map(|x| lab.window_at(x, y)),
                );
                for ((classifier, indexes), windows) in
                    classifiers.iter().zip(&indexes).zip(found.iter_mut())
                {
                    self.scored.clone_from(&self.candidates);
                    lab.score_windows(classifier, indexes, &mut self.scored);
                    for scored in &self.scored {
                        let (x, y) = lab.position(scored);
                        windows.push(Window {
                            x: (x as f32 / level_scale + 0.5) as i32,
                            y: (y as f32 / level_scale + 0.5) as i32,
                            side: (window / level_scale + 0.5) as i32,
                            score: f64::from(scored.score),
                        });
                    }
                }
            }
        }
        found
            .into_iter()
            .map(|windows| merge_overlapping(windows, 0.8))
            .collect()
    }

    /// `image` resampled to a `width`×`height` pyramid level in `self.level`.
    fn resample_level(&mut self, image: &Grey, width: usize, height: usize) {
        self.level.clear();
        self.level.resize(width * height, 0);
        let whole = Region {
            x: 0,
            y: 0,
            width: image.width,
            height: image.height,
        };
        self.resampler
            .resample(image, whole, (width, height), width, &mut self.level);
    }

    /// The windows that pass one MLP stage, moved and resized as it says.
    fn refine(
        &mut self,
        image: &Grey,
        classifier: &MlpClassifier,
        windows: Vec<Window>,
    ) -> Vec<Window> {
        let mut passed = Vec::with_capacity(windows.len());
        for window in windows {
            // Windows wholly outside the image, or too small to resample, hold no face.
            let outside = window.x + window.side <= 0
                || window.y + window.side <= 0
                || window.x >= image.width as i32
                || window.y >= image.height as i32;
            if outside || window.side < 2 {
                continue;
            }
            let region = Region {
                x: window.x,
                y: window.y,
                width: window.side as usize,
                height: window.side as usize,
            };
            let side = WINDOW_SIDE as usize;
            let footprint = classifier.footprint();
            self.resampler.resample(
                image,
                region,
                (side, side),
                surf::pixel_columns(footprint.columns),
                &mut self.window,
            );
            self.surf.compute(&self.window, footprint);
            let Some(verdict) = classifier.classify(&self.surf, &mut self.mlp) else {
                continue;
            };
            let (x, y, old_side) = (window.x as f32, window.y as f32, window.side as f32);
            let new_side = ((verdict.size * 2.0 - 1.0) * old_side + old_side + 0.5).floor();
            passed.push(Window {
                x: ((verdict.x * 2.0 - 1.0) * old_side + x + (old_side - new_side) * 0.5 + 0.5)
                    .floor() as i32,
                y: ((verdict.y * 2.0 - 1.0) * old_side + y + (old_side - new_side) * 0.5 + 0.5)
                    .floor() as i32,
                side: new_side as i32,
                score: f64::from(verdict.score),
            });
        }
        passed
    }
}

/// Non-maximum suppression, SeetaFace's: best score first, each kept window absorbs the later ones
/// overlapping it by more than `min_overlap` (intersection over union) and adds their scores, in
/// score order. Only windows near enough to overlap are tried, found in a grid of their top left
/// corners: a textured photo has tens of thousands of windows before the first merge.
fn merge_overlapping(mut windows: Vec<Window>, min_overlap: f32) -> Vec<Window> {
    windows.sort_by(|a, b| b.score.total_cmp(&a.score));
    let grid = CornerGrid::new(&windows);
    let largest = windows.iter().map(|window| window.side).max().unwrap_or(0);
    let mut merged = vec![false; windows.len()];
    let mut absorbed = Vec::new();
    let mut kept = Vec::new();
    for i in 0..windows.len() {
        if merged[i] {
            continue;
        }
        let mut best = windows[i];
        let (before, after) = corner_reach(best.side, min_overlap, largest);
        absorbed.clear();
        grid.visit(
            (best.x - before, best.y - before),
            (best.x + after, best.y + after),
            |j| {
                if j > i && !merged[j] && overlap(&best, &windows[j]) > min_overlap {
                    absorbed.push(j);
                }
            },
        );
        // Summed in score order, as the quadratic original does.
        absorbed.sort_unstable();
        for &j in &absorbed {
            merged[j] = true;
            best.score += windows[j].score;
        }
        kept.push(best);
    }
    kept
}

/// How far left of (and above) a window of `side`, and how far right of (and below), the corner of
/// a window overlapping it by more than `min_overlap` can be; `largest` is the largest side there is.
///
/// For sides a and b, IoU t < I / max(a, b)² bounds b / a below 1 / √t, and I > t (a² + b²) / (1 + t)
/// ≥ 2t·ab / (1 + t) with I ≤ w·min(a, b) bounds the overlap in x: w > k·max(a, b), k = 2t / (1 + t).
/// A corner dx right of this one leaves w ≤ a − dx, so dx < (1 − k)·a; one dx left, w ≤ b − dx, so
/// dx < (1 − k)·b < (1 − k)·a / √t. At the first merge's 0.8 that is an eighth of the side, where
/// the areas' ratio alone would allow more than the side. Two pixels spare cover the rounding.
fn corner_reach(side: i32, min_overlap: f32, largest: i32) -> (i32, i32) {
    if min_overlap <= 0.0 {
        return (largest, side);
    }
    let k = 2.0 * min_overlap / (1.0 + min_overlap);
    let after = (1.0 - k).max(0.0) * side as f32;
    let before = after / min_overlap.sqrt();
    ((before as i32 + 2).min(largest), after as i32 + 2)
}

/// Windows bucketed by their top left corners in square cells.
struct CornerGrid {
    origin: (i32, i32),
    cell: i32,
    columns: usize,
    rows: usize,
    /// Window indexes, cell by cell; cell `c`'s are `members[starts[c]..starts[c + 1]]`.
    starts: Vec<usize>,
    members: Vec<usize>,
}

impl CornerGrid {
    fn new(windows: &[Window]) -> CornerGrid {
        let corner = |(min_x, min_y, max_x, max_y): (i32, i32, i32, i32), window: &Window| {
            (
                min_x.min(window.x),
                min_y.min(window.y),
                max_x.max(window.x),
                max_y.max(window.y),
            )
        };
        let (min_x, min_y, max_x, max_y) = windows
            .iter()
            .fold((i32::MAX, i32::MAX, i32::MIN, i32::MIN), corner);
        let span = |min: i32, max: i32| i64::from(max) - i64::from(min) + 1;
        let (span_x, span_y) = if windows.is_empty() {
            (1, 1)
        } else {
            (span(min_x, max_x), span(min_y, max_y))
        };
        // Cells about a window wide, coarser if the corners are spread too thinly for that.
        let mut cell = i64::from(WINDOW_SIDE);
        while (span_x / cell + 1) * (span_y / cell + 1) > 16 * windows.len() as i64 + 1024 {
            cell *= 2;
        }
        let columns = (span_x / cell + 1) as usize;
        let rows = (span_y / cell + 1) as usize;
        let mut grid = CornerGrid {
            origin: (min_x, min_y),
            cell: cell as i32,
            columns,
            rows,
            starts: vec![0; columns * rows + 1],
            members: vec![0; windows.len()],
        };
        let cells: Vec<usize> = windows
            .iter()
            .map(|window| {
                let (column, row) = grid.cell_of(window.x, window.y);
                row * columns + column
            })
            .collect();
        for &cell in &cells {
            grid.starts[cell + 1] += 1;
        }
        for c in 0..columns * rows {
            grid.starts[c + 1] += grid.starts[c];
        }
        let mut next = grid.starts.clone();
        for (index, &cell) in cells.iter().enumerate() {
            grid.members[next[cell]] = index;
            next[cell] += 1;
        }
        grid
    }

    /// The cell holding (x, y), clamped to the grid.
    fn cell_of(&self, x: i32, y: i32) -> (usize, usize) {
        let along = |value: i32, origin: i32, count: usize| {
            let offset = (i64::from(value) - i64::from(origin)).max(0) / i64::from(self.cell);
            (offset as usize).min(count - 1)
        };
        (
            along(x, self.origin.0, self.columns),
            along(y, self.origin.1, self.rows),
        )
    }

    /// Calls `visit` with every window whose corner may lie in the rectangle from `from` to
    /// `to` (both inclusive), and perhaps some near it.
    fn visit(&self, from: (i32, i32), to: (i32, i32), mut visit: impl FnMut(usize)) {
        let (first_column, first_row) = self.cell_of(from.0, from.1);
        let (last_column, last_row) = self.cell_of(to.0, to.1);
        for row in first_row..=last_row {
            let cells = row * self.columns + first_column..=row * self.columns + last_column;
            let members = &self.members[self.starts[*cells.start()]..self.starts[cells.end() + 1]];
            members.iter().for_each(|&index| visit(index));
        }
    }
}

/// Intersection over union of two windows, in whole pixels as SeetaFace counts them.
fn overlap(a: &Window, b: &Window) -> f32 {
    let w = (a.x + a.side).min(b.x + b.side) - a.x.max(b.x);
    let h = (a.y + a.side).min(b.y + b.side) - a.y.max(b.y);
    if w <= 0 || h <= 0 {
        return 0.0;
    }
    let intersection = (w * h) as f32;
    let union = (a.side * a.side) as f32 + (b.side * b.side) as f32 - intersection;
    intersection / union
}

/// `count` bytes of seeded noise, for the tests of the detector and its stages.
#[cfg(test)]
fn seeded_noise(count: usize, seed: u64) -> Vec<u8> {
    let mut state = seed;
    (0..count)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 56) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn noise(width: usize, height: usize, seed: u64) -> Vec<u8> {
        seeded_noise(width * height, seed)
    }

    fn shipped() -> Model {
        Model::parse(include_bytes!("../../../models/seeta_fd_frontal_v1.0.bin")).expect("parses")
    }

    const SCAN: Scan = Scan {
        min_face: 40,
        pyramid_scale: 0.7,
        step: 4,
        min_score: 2.0,
    };

    #[test]
    fn images_smaller_than_a_window_or_misdescribed_have_no_faces() {
        let model = shipped();
        let mut detector = Detector::new(&model);
        assert!(detector.detect(&[], 0, 0, &SCAN).is_empty());
        assert!(detector
            .detect(&noise(39, 300, 1), 39, 300, &SCAN)
            .is_empty());
        assert!(detector.detect(&noise(50, 50, 1), 60, 50, &SCAN).is_empty());
    }

    #[test]
    fn a_reused_detector_finds_what_a_fresh_one_finds() {
        let model = shipped();
        let portrait =
            image::load_from_memory(include_bytes!("../../../tests/fixtures/obama-480.jpg"))
                .expect("fixture decodes")
                .to_luma8();
        let (width, height) = portrait.dimensions();
        let fresh = Detector::new(&model).detect(portrait.as_raw(), width, height, &SCAN);
        assert_eq!(fresh.len(), 1, "{fresh:?}");
        // A larger, busier image first leaves every buffer larger and full of other values.
        let mut reused = Detector::new(&model);
        reused.detect(&noise(700, 500, 5), 700, 500, &SCAN);
        assert_eq!(
            reused.detect(portrait.as_raw(), width, height, &SCAN),
            fresh
        );
    }

    /// SeetaFace's suppression as written: every later window against every kept one.
    fn merge_overlapping_quadratic(mut windows: Vec<Window>, min_overlap: f32) -> Vec<Window> {
        windows.sort_by(|a, b| b.score.total_cmp(&a.score));
        let mut merged = vec![false; windows.len()];
        let mut kept = Vec::new();
        for i in 0..windows.len() {
            if merged[i] {
                continue;
            }
            let mut best = windows[i];
            for j in i + 1..windows.len() {
                if !merged[j] && overlap(&best, &windows[j]) > min_overlap {
                    merged[j] = true;
                    best.score += windows[j].score;
                }
            }
            kept.push(best);
        }
        kept
    }

    #[test]
    fn merging_tries_only_nearby_windows_and_finds_what_trying_all_finds() {
        let bytes = seeded_noise(4 * 3000, 17);
        // Crowded windows of many sizes, some sticking out of the image, scores with ties.
        let windows: Vec<Window> = bytes
            .chunks_exact(4)
            .map(|b| Window {
                x: i32::from(b[0]) - 40,
                y: i32::from(b[1]) / 2,
                side: 40 + i32::from(b[2] % 12) * if b[2] >= 192 { 9 } else { 1 },
                score: f64::from(b[3] % 16) / 4.0,
            })
            .collect();
        for min_overlap in [0.0, 0.1, 0.3, 0.5, 0.8] {
            let expected = merge_overlapping_quadratic(windows.clone(), min_overlap);
            assert!(
                expected.len() < windows.len() * 3 / 4,
                "{min_overlap}: crowded enough"
            );
            assert_eq!(merge_overlapping(windows.clone(), min_overlap), expected);
        }
    }

    #[test]
    fn overlapping_windows_merge_into_the_best_with_their_scores_summed() {
        let window = |x, y, side, score| Window { x, y, side, score };
        let merged = merge_overlapping(
            vec![
                window(0, 0, 40, 1.0),
                window(1, 1, 40, 3.0),
                window(100, 0, 40, 2.0),
                window(20, 0, 40, 0.5),
            ],
            0.8,
        );
        assert_eq!(
            merged,
            vec![
                window(1, 1, 40, 4.0),
                window(100, 0, 40, 2.0),
                window(20, 0, 40, 0.5),
            ]
        );
    }
}
