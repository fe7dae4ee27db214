//! Attention for cover crops when there is no face to keep: where in the picture the eye goes. Like
//! libvips' `attention` strategy (sharp's `strategy: attention`) it scores detail (edges of luma), strong
//! colour and skin tones; unlike it, the score is kept as a coarse grid and each crop keeps the window
//! with the most of it, rather than centring every crop on a single brightest point. The grid is small
//! enough to travel in the state machine's data (`$.faces.saliency`), so each render-variant iteration
//! chooses for its own window without seeing the pixels detect-faces saw.

use serde::{Deserialize, Serialize};

use crate::spec::Focus;

/// Cells along the image's longer side.
const GRID_CELLS: u32 = 16;
/// The side the preview is reduced to before scoring: detail finer than this is texture, not subject.
const SCORING_SIDE: u32 = 192;
/// What attention in the outermost cells counts for.
const EDGE_WEIGHT: f64 = 0.5;
/// Windows holding at least this share of the best window's attention count as equally good; the most
/// central of them is kept, so flat or evenly busy pictures, and subjects the centre already holds, are
/// cropped in the middle; a window may so leave out at most 5 % of the best one's attention.
const TIE_SHARE: f64 = 0.95;

/// The levels a cell's attention is quantised to (0..=TOP): one hexadecimal digit per cell keeps the
/// grid to a few hundred bytes in every state's data and every logged history event.
pub const TOP: u8 = 15;

/// Attention per cell of a `columns`×`rows` grid laid over the upright image, row-major, each 0..=[`TOP`]
/// ([`TOP`] for the most attractive cell). In JSON the cells are one hexadecimal digit each
/// (`"cells": "00a3f…"`); anything else there reads as no cells, and the grid is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SaliencyGrid {
    pub columns: u16,
    pub rows: u16,
    #[serde(with = "hex_cells")]
    pub cells: Vec<u8>,
}

mod hex_cells {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(cells: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let text: String = cells
            .iter()
            .map(|c| char::from_digit(u32::from((*c).min(super::TOP)), 16).unwrap_or('0'))
            .collect();
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        let cells: Option<Vec<u8>> = text
            .chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect();
        Ok(cells.unwrap_or_default())
    }
}

impl SaliencyGrid {
    /// Scores an upright RGB preview (any size; it is reduced first). `None` for an empty image.
    pub fn of(preview: &image::RgbImage) -> Option<SaliencyGrid> {
        let (width, height) = preview.dimensions();
        if width == 0 || height == 0 {
            return None;
        }
        let scale = f64::from(SCORING_SIDE) / f64::from(width.max(height));
        let small = if scale < 1.0 {
            let w = ((f64::from(width) * scale).round() as u32).max(1);
            let h = ((f64::from(height) * scale).round() as u32).max(1);
            image::imageops::thumbnail(preview, w, h)
        } else {
            preview.clone()
        };
        let scores = pixel_scores(&small);
        let (w, h) = small.dimensions();
        let long = w.max(h);
        let cells_of = |side: u32| -> u32 {
            ((u64::from(side) * u64::from(GRID_CELLS) + u64::from(long) / 2) / u64::from(long))
                .clamp(1, u64::from(GRID_CELLS)) as u32
        };
        let (columns, rows) = (cells_of(w), cells_of(h));
        let mut sums = vec![0f64; (columns * rows) as usize];
        let mut counts = vec![0u32; sums.len()];
        for y in 0..h {
            let row = (y * rows / h) as usize;
            for x in 0..w {
                let cell = row * columns as usize + (x * columns / w) as usize;
                sums[cell] += f64::from(scores[(y * w + x) as usize]);
                counts[cell] += 1;
            }
        }
        // Cells of the last row and column may hold fewer pixels: compare densities, not sums. Details
        // on the picture's outer ring of cells count half: watermarks, signatures and objects cut by the
        // frame sit there, and pulled crops off the subject on the public test set.
        let densities: Vec<f64> = sums
            .iter()
            .zip(&counts)
            .enumerate()
            .map(|(i, (sum, count))| {
                let density = if *count > 0 {
                    sum / f64::from(*count)
                } else {
                    0.0
                };
                let (column, row) = (i as u32 % columns, i as u32 / columns);
                let outer = column == 0 || row == 0 || column + 1 == columns || row + 1 == rows;
                if outer && columns > 2 && rows > 2 {
                    density * EDGE_WEIGHT
                } else {
                    density
                }
            })
            .collect();
        let peak = densities.iter().copied().fold(0.0, f64::max);
        let cells = densities
            .iter()
            .map(|d| {
                if peak > 0.0 {
                    (d / peak * f64::from(TOP)).round() as u8
                } else {
                    0
                }
            })
            .collect();
        Some(SaliencyGrid {
            columns: columns as u16,
            rows: rows as u16,
            cells,
        })
    }

    /// Whether the grid is usable: data from an event may be anything.
    pub fn is_consistent(&self) -> bool {
        self.columns > 0
            && self.rows > 0
            && self.cells.len() == usize::from(self.columns) * usize::from(self.rows)
    }

    /// The centre of attention (the cells' weighted centre); the image centre when there is none.
    pub fn centroid(&self) -> Focus {
        if !self.is_consistent() {
            return Focus::CENTRE;
        }
        let (columns, rows) = (usize::from(self.columns), usize::from(self.rows));
        let (mut weight, mut x, mut y) = (0.0, 0.0, 0.0);
        for (i, cell) in self.cells.iter().enumerate() {
            let value = f64::from(*cell);
            weight += value;
            x += value * ((i % columns) as f64 + 0.5) / columns as f64;
            y += value * ((i / columns) as f64 + 0.5) / rows as f64;
        }
        if weight > 0.0 {
            Focus::new(x / weight, y / weight)
        } else {
            Focus::CENTRE
        }
    }

    /// The centre of the `window` (width, height as fractions of the image) that holds the most
    /// attention, the most central among near-equals. `None` when the grid is inconsistent or holds no
    /// attention at all (a flat picture: the caller centres).
    pub fn window_focus(&self, window: (f64, f64)) -> Option<Focus> {
        if !self.is_consistent() {
            return None;
        }
        let total: f64 = self.cells.iter().map(|c| f64::from(*c)).sum();
        if total <= 0.0 {
            return None;
        }
        let (columns, rows) = (usize::from(self.columns), usize::from(self.rows));
        let window_w = clamp_fraction(window.0);
        let window_h = clamp_fraction(window.1);
        let xs = offsets(window_w, columns);
        let ys = offsets(window_h, rows);
        let mut candidates = Vec::with_capacity(xs.len() * ys.len());
        let mut best = 0.0f64;
        for &y0 in &ys {
            let row_cover = coverage(y0, window_h, rows);
            for &x0 in &xs {
                let column_cover = coverage(x0, window_w, columns);
                let mut mass = 0.0;
                for (row, row_share) in row_cover.iter().enumerate() {
                    if *row_share == 0.0 {
                        continue;
                    }
                    let cells = &self.cells[row * columns..(row + 1) * columns];
                    for (cell, column_share) in cells.iter().zip(&column_cover) {
                        mass += f64::from(*cell) * column_share * row_share;
                    }
                }
                best = best.max(mass);
                candidates.push((x0, y0, mass));
            }
        }
        let centre_distance = |x0: f64, y0: f64| {
            let dx = x0 + window_w / 2.0 - 0.5;
            let dy = y0 + window_h / 2.0 - 0.5;
            dx * dx + dy * dy
        };
        let (x0, y0, _) = candidates
            .into_iter()
            .filter(|(_, _, mass)| *mass >= best * TIE_SHARE)
            .min_by(|a, b| centre_distance(a.0, a.1).total_cmp(&centre_distance(b.0, b.1)))?;
        Some(Focus::new(x0 + window_w / 2.0, y0 + window_h / 2.0))
    }
}

fn clamp_fraction(value: f64) -> f64 {
    if value.is_nan() {
        1.0
    } else {
        value.clamp(0.0, 1.0)
    }
}

/// Where a window of `size` (a fraction) may start, in quarter-cell steps, the last flush with the edge.
fn offsets(size: f64, cells: usize) -> Vec<f64> {
    let room = 1.0 - size;
    if room <= 1e-9 {
        return vec![0.0];
    }
    let step = 1.0 / (4 * cells) as f64;
    let steps = (room / step).floor() as usize;
    let mut starts: Vec<f64> = (0..=steps).map(|i| i as f64 * step).collect();
    if room - steps as f64 * step > 1e-9 {
        starts.push(room);
    }
    starts
}

/// How much of each of `cells` equal cells the span `[start, start + size]` covers (0..=1 each).
fn coverage(start: f64, size: f64, cells: usize) -> Vec<f64> {
    let end = start + size;
    (0..cells)
        .map(|i| {
            let (low, high) = (i as f64 / cells as f64, (i + 1) as f64 / cells as f64);
            ((end.min(high) - start.max(low)) * cells as f64).clamp(0.0, 1.0)
        })
        .collect()
}

/// Each pixel's attention: detail (the luma Laplacian's magnitude), strong colour (chroma) and skin
/// tones, each in 0..=1, summed.
fn pixel_scores(image: &image::RgbImage) -> Vec<f32> {
    let (w, h) = image.dimensions();
    let luma: Vec<f32> = image
        .pixels()
        .map(|p| 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]))
        .collect();
    let at = |x: u32, y: u32| luma[(y * w + x) as usize];
    let mut scores = vec![0f32; luma.len()];
    for (i, pixel) in image.pixels().enumerate() {
        let (x, y) = (i as u32 % w, i as u32 / w);
        let edge = if x > 0 && y > 0 && x + 1 < w && y + 1 < h {
            let laplacian =
                4.0 * at(x, y) - at(x - 1, y) - at(x + 1, y) - at(x, y - 1) - at(x, y + 1);
            // Sensor noise and JPEG ringing stay below a few levels; a clear edge reaches 40 and more.
            ((laplacian.abs() - 4.0) / 40.0).clamp(0.0, 1.0)
        } else {
            0.0
        };
        let [r, g, b] = pixel.0.map(f32::from);
        let (max, min) = (r.max(g).max(b), r.min(g).min(b));
        // Only strong colour draws the eye; pale tints and greys do not.
        let colour = ((max - min - 50.0) / 100.0).clamp(0.0, 1.0);
        let skin = if is_skin(r, g, b) { 1.0 } else { 0.0 };
        scores[i] = edge + 0.7 * colour + 0.7 * skin;
    }
    scores
}

/// Skin tones in daylight (Kovač, Peer and Solina's RGB rule).
fn is_skin(r: f32, g: f32, b: f32) -> bool {
    let (max, min) = (r.max(g).max(b), r.min(g).min(b));
    r > 95.0 && g > 40.0 && b > 20.0 && max - min > 15.0 && (r - g).abs() > 15.0 && r > g && r > b
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{Rgb, RgbImage};

    /// A plain grey picture with a textured, coloured square whose top-left corner is at (x, y).
    fn subject_at(width: u32, height: u32, x: u32, y: u32, side: u32) -> RgbImage {
        RgbImage::from_fn(width, height, |px, py| {
            if (x..x + side).contains(&px) && (y..y + side).contains(&py) {
                if (px / 3 + py / 3) % 2 == 0 {
                    Rgb([220, 40, 30])
                } else {
                    Rgb([30, 60, 200])
                }
            } else {
                Rgb([128, 128, 128])
            }
        })
    }

    #[test]
    fn a_subject_on_the_right_pulls_a_square_crop_to_the_right() {
        let image = subject_at(1200, 600, 980, 250, 120);
        let grid = SaliencyGrid::of(&image).unwrap();
        assert_eq!((grid.columns, grid.rows), (16, 8));
        // The square window of a 2:1 image is half its width.
        let focus = grid.window_focus((0.5, 1.0)).unwrap();
        let (left, right) = (focus.x - 0.25, focus.x + 0.25);
        assert!(
            left <= 980.0 / 1200.0 && right >= 1100.0 / 1200.0,
            "the window {left:.3}..{right:.3} must hold the subject"
        );
        assert_eq!(focus.y, 0.5);
    }

    #[test]
    fn a_subject_at_the_top_of_a_portrait_keeps_it_in_a_wide_crop() {
        let image = subject_at(400, 1000, 150, 40, 100);
        let grid = SaliencyGrid::of(&image).unwrap();
        let focus = grid.window_focus((1.0, 0.2)).unwrap();
        let (top, bottom) = (focus.y - 0.1, focus.y + 0.1);
        assert!(
            top <= 0.04 && bottom >= 0.14,
            "{top:.3}..{bottom:.3} must hold 0.04..0.14"
        );
    }

    #[test]
    fn a_watermark_in_a_corner_does_not_pull_the_crop_off_a_centred_subject() {
        // A dark 2:1 picture: a bright disc just right of the centre, small white text in the bottom-left corner.
        let image = RgbImage::from_fn(1200, 600, |x, y| {
            let (dx, dy) = (x as f64 - 650.0, y as f64 - 300.0);
            if dx * dx + dy * dy < 60.0 * 60.0 {
                Rgb([200, 200, 190])
            } else if x < 60 && y > 560 && (x / 2 + y / 2) % 2 == 0 {
                Rgb([255, 255, 255])
            } else {
                Rgb([10, 10, 10])
            }
        });
        let focus = SaliencyGrid::of(&image)
            .unwrap()
            .window_focus((0.5, 1.0))
            .unwrap();
        assert!((focus.x - 0.5).abs() < 0.05, "{focus:?}");
    }

    #[test]
    fn a_flat_picture_has_no_attention_and_the_caller_centres() {
        let grid = SaliencyGrid::of(&RgbImage::from_pixel(300, 200, Rgb([90, 90, 90]))).unwrap();
        assert!(grid.cells.iter().all(|c| *c == 0));
        assert_eq!(grid.window_focus((0.5, 1.0)), None);
        assert_eq!(grid.centroid(), Focus::CENTRE);
    }

    #[test]
    fn evenly_busy_pictures_are_cropped_in_the_middle() {
        // Grey noise of even density everywhere (a fixed linear congruential sequence).
        let mut state = 12345u32;
        let busy = RgbImage::from_fn(900, 300, |_, _| {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let v = (state >> 24) as u8;
            Rgb([v, v, v])
        });
        let focus = SaliencyGrid::of(&busy)
            .unwrap()
            .window_focus((1.0 / 3.0, 1.0))
            .unwrap();
        assert!((focus.x - 0.5).abs() < 0.05, "{focus:?}");
    }

    #[test]
    fn skin_and_strong_colour_count_without_edges() {
        let mut image = RgbImage::from_pixel(400, 200, Rgb([120, 120, 120]));
        for y in 60..140 {
            for x in 300..380 {
                image.put_pixel(x, y, Rgb([224, 172, 140]));
            }
        }
        let focus = SaliencyGrid::of(&image)
            .unwrap()
            .window_focus((0.5, 1.0))
            .unwrap();
        // The patch spans 0.75..0.95; near-equal windows go to the centre, so its edge may be trimmed.
        assert!(focus.x + 0.25 >= 0.75 + 0.9 * 0.2, "{focus:?}");
    }

    #[test]
    fn the_grid_travels_as_one_hex_digit_per_cell() {
        let grid = SaliencyGrid::of(&subject_at(1200, 600, 980, 250, 120)).unwrap();
        assert!(grid.cells.iter().all(|c| *c <= TOP) && grid.cells.contains(&TOP));
        let json = serde_json::to_value(&grid).unwrap();
        assert_eq!(json["cells"].as_str().unwrap().len(), 16 * 8);
        assert_eq!(serde_json::from_value::<SaliencyGrid>(json).unwrap(), grid);
        let garbled: SaliencyGrid =
            serde_json::from_str(r#"{"columns":2,"rows":1,"cells":"0z"}"#).unwrap();
        assert_eq!(garbled.window_focus((0.5, 1.0)), None);
    }

    #[test]
    fn a_grid_from_a_bad_event_is_ignored_not_trusted() {
        let broken = SaliencyGrid {
            columns: 4,
            rows: 4,
            cells: vec![TOP; 3],
        };
        assert_eq!(broken.window_focus((0.5, 1.0)), None);
        assert_eq!(broken.centroid(), Focus::CENTRE);
        let empty = SaliencyGrid {
            columns: 0,
            rows: 0,
            cells: vec![],
        };
        assert_eq!(empty.window_focus((0.5, 1.0)), None);
        assert_eq!(SaliencyGrid::of(&RgbImage::new(0, 0)), None);
    }

    #[test]
    fn odd_windows_never_panic() {
        let grid = SaliencyGrid::of(&subject_at(50, 50, 10, 10, 10)).unwrap();
        for window in [
            (0.0, 0.0),
            (1.0, 1.0),
            (f64::NAN, 0.5),
            (2.0, -1.0),
            (0.999_999, 1.0),
        ] {
            let focus = grid.window_focus(window);
            if let Some(focus) = focus {
                assert!((0.0..=1.0).contains(&focus.x) && (0.0..=1.0).contains(&focus.y));
            }
        }
    }
}
