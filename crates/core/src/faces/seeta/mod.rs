//! SeetaFace's funnel-structured cascade (Wu et al., "Funnel-structured cascade for multi-view face
//! detection with alignment awareness"; the model and the method are BSD-2-Clause, see
//! models/LICENSE-SeetaFace.txt), after the C++ original and its Rust port rustface, rewritten for
//! speed on one core: vectorisable feature maps, a contrast check before the cascade, hoisted
//! resampling weights and no allocation per window.
//!
//! 1. Every 40×40 window of an image pyramid is scored by the boosted LAB cascade ([`lab`]).
//! 2. Overlapping survivors are merged (non-maximum suppression, scores summed).
//! 3. Each later hierarchy resamples every survivor to 40×40, scores it with an MLP on SURF-like
//!    features and moves and resizes it as the MLP says ([`surf`]); merged again after each stage.

mod lab;
mod model;
mod surf;

use lab::{LabClassifier, LabFeatureMap};
use model::Classifier;
pub(super) use model::Model;
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
            resample(image, width, height, &mut self.level);
            self.lab.compute(&self.level, width, height);
            for (classifier, indexes) in classifiers.iter().zip(indexes.iter_mut()) {
                classifier.indexes_at(width, indexes);
            }
            for y in (0..=height - WINDOW_SIDE as usize).step_by(step) {
                for x in (0..=width - WINDOW_SIDE as usize).step_by(step) {
                    if !self.lab.has_contrast(x, y) {
                        continue;
                    }
                    for ((classifier, indexes), windows) in
                        classifiers.iter().zip(&indexes).zip(found.iter_mut())
                    {
                        if let Some(score) = self.lab.score(classifier, indexes, x, y) {
                            windows.push(Window {
                                x: (x as f32 / level_scale + 0.5) as i32,
                                y: (y as f32 / level_scale + 0.5) as i32,
                                side: (window / level_scale + 0.5) as i32,
                                score: f64::from(score),
                            });
                        }
                    }
                }
            }
        }
        found
            .into_iter()
            .map(|windows| merge_overlapping(windows, 0.8))
            .collect()
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
            resample_window(image, &window, &mut self.window);
            self.surf.compute(&self.window);
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

/// A grey image, row-major, one byte per pixel.
struct Grey<'a> {
    pixels: &'a [u8],
    width: usize,
    height: usize,
}

/// [`resample`] of `window` (zero where it sticks out of `image`) to the 40×40 `out`, without
/// copying the window first.
fn resample_window(image: &Grey, window: &Window, out: &mut [u8]) {
    const SIDE: usize = WINDOW_SIDE as usize;
    let side = window.side as usize;
    let scale = side as f64 / SIDE as f64;
    // For each output column and row: the first source pixel in image coordinates, and the weights
    // of it and the next one.
    let taps = |origin: i32| {
        let mut first = [0i32; SIDE];
        let (mut first_weights, mut next_weights) = ([0.0f64; SIDE], [0.0f64; SIDE]);
        for i in 0..SIDE {
            let position = scale * i as f64;
            let pixel = (position as usize).min(side - 2);
            let weight = position - pixel as f64;
            first[i] = origin + pixel as i32;
            first_weights[i] = 1.0 - weight;
            next_weights[i] = weight;
        }
        (first, first_weights, next_weights)
    };
    let (columns, left_weights, right_weights) = taps(window.x);
    let (rows, top_weights, bottom_weights) = taps(window.y);
    let inside = window.x >= 0
        && window.y >= 0
        && window.x + window.side <= image.width as i32
        && window.y + window.side <= image.height as i32;
    let pixel = |x: i32, y: i32| {
        if inside || (x >= 0 && y >= 0 && x < image.width as i32 && y < image.height as i32) {
            f64::from(image.pixels[y as usize * image.width + x as usize])
        } else {
            0.0
        }
    };
    // The four neighbours of each output pixel of a row, gathered so the blend below vectorises.
    let mut samples = [[0.0f64; SIDE]; 4];
    for (((out, &y), &top_weight), &bottom_weight) in out
        .chunks_exact_mut(SIDE)
        .zip(&rows)
        .zip(&top_weights)
        .zip(&bottom_weights)
    {
        for (j, &x) in columns.iter().enumerate() {
            samples[0][j] = pixel(x, y);
            samples[1][j] = pixel(x + 1, y);
            samples[2][j] = pixel(x, y + 1);
            samples[3][j] = pixel(x + 1, y + 1);
        }
        let [top_left, top_right, bottom_left, bottom_right] = &samples;
        for j in 0..SIDE {
            let upper = left_weights[j] * top_left[j] + right_weights[j] * top_right[j];
            let lower = left_weights[j] * bottom_left[j] + right_weights[j] * bottom_right[j];
            out[j] = (top_weight * upper + bottom_weight * lower) as u8;
        }
    }
}

/// Bilinear resampling of the whole of `image` to `width`×`height`, SeetaFace's: the source position
/// of an output pixel is its index times the scale (no half-pixel centring), weights in f64 and the
/// result truncated. A same-size resample is a copy.
fn resample(image: &Grey, width: usize, height: usize, out: &mut Vec<u8>) {
    let (source_width, source_height) = (image.width, image.height);
    if source_width == width && source_height == height {
        out.clear();
        out.extend_from_slice(image.pixels);
        return;
    }
    // Every pixel is written below.
    out.resize(width * height, 0);
    let taps = |source: usize, target: usize| {
        let scale = source as f64 / target as f64;
        (0..target)
            .map(move |i| {
                let position = scale * i as f64;
                let first = (position as usize).min(source - 2);
                (first, position - first as f64)
            })
            .collect::<Vec<_>>()
    };
    let columns = taps(source_width, width);
    for (row, (first_row, weight_y)) in out.chunks_exact_mut(width).zip(taps(source_height, height))
    {
        let top = &image.pixels[first_row * source_width..][..source_width];
        let bottom = &image.pixels[(first_row + 1) * source_width..][..source_width];
        for (out, &(x, weight_x)) in row.iter_mut().zip(&columns) {
            let upper = (1.0 - weight_x) * f64::from(top[x]) + weight_x * f64::from(top[x + 1]);
            let lower =
                (1.0 - weight_x) * f64::from(bottom[x]) + weight_x * f64::from(bottom[x + 1]);
            *out = ((1.0 - weight_y) * upper + weight_y * lower) as u8;
        }
    }
}

/// Non-maximum suppression, SeetaFace's: best score first, each kept window absorbs the later ones
/// overlapping it by more than `min_overlap` (intersection over union) and adds their scores.
fn merge_overlapping(mut windows: Vec<Window>, min_overlap: f32) -> Vec<Window> {
    windows.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut merged = vec![false; windows.len()];
    let mut kept = Vec::new();
    for i in 0..windows.len() {
        if merged[i] {
            continue;
        }
        let mut best = windows[i];
        let (x1, y1) = (best.x, best.y);
        let (x2, y2) = (best.x + best.side - 1, best.y + best.side - 1);
        let area = (best.side * best.side) as f32;
        for j in i + 1..windows.len() {
            if merged[j] {
                continue;
            }
            let other = windows[j];
            let w = x2.min(other.x + other.side - 1) - x1.max(other.x) + 1;
            let h = y2.min(other.y + other.side - 1) - y1.max(other.y) + 1;
            if w <= 0 || h <= 0 {
                continue;
            }
            let intersection = (w * h) as f32;
            let union = area + (other.side * other.side) as f32 - intersection;
            if intersection / union > min_overlap {
                merged[j] = true;
                best.score += other.score;
            }
        }
        kept.push(best);
    }
    kept
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

    #[test]
    fn a_window_is_resampled_as_if_cut_out_with_a_zero_border() {
        let (width, height) = (90, 70);
        let pixels = noise(width, height, 3);
        let image = Grey {
            pixels: &pixels,
            width,
            height,
        };
        for (x, y, side) in [
            (10, 5, 60),
            (-20, 40, 53),
            (70, -9, 41),
            (0, 0, 40),
            (85, 65, 100),
        ] {
            let window = Window {
                x,
                y,
                side,
                score: 0.0,
            };
            let cut: Vec<u8> = (y..y + side)
                .flat_map(|row| (x..x + side).map(move |column| (column, row)))
                .map(|(column, row)| {
                    let inside =
                        (0..width as i32).contains(&column) && (0..height as i32).contains(&row);
                    if inside {
                        pixels[row as usize * width + column as usize]
                    } else {
                        0
                    }
                })
                .collect();
            let cut = Grey {
                pixels: &cut,
                width: side as usize,
                height: side as usize,
            };
            let mut expected = Vec::new();
            resample(&cut, 40, 40, &mut expected);
            let mut out = [0u8; 1600];
            resample_window(&image, &window, &mut out);
            assert_eq!(out.as_slice(), expected.as_slice(), "{window:?}");
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
