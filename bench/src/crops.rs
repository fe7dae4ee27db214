//! Smart crop on a public photo set: where a square cover crop (the thumbnail's shape) lands with
//! Ferrotype's choice (faces that fit, else attention), with the area-weighted face centre it replaced,
//! with the plain centre, and with sharp's `attention` and `entropy` strategies (bench/sharp-crops.mjs),
//! and how many detected faces each keeps whole or cuts. A face counts as cut when the crop holds part of
//! it but not all of it. Without faces there is no ground truth here: the figures are how far each choice
//! moves from the centre and how much the choices agree (intersection over union), and `--sheet DIR`
//! writes the crops side by side for a person to judge.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use ferrotype_core::faces::{BuiltinDetector, FaceBox};
use ferrotype_core::{crop_focus, crop_window, decode_preview, DetectorKind, FaceDetection, Focus};
use ferrotype_core::{focus_from_faces, Limits};
use serde::Deserialize;

/// A window in fractions of the upright image.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq)]
pub struct Window {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

impl Window {
    fn around(focus: Focus, size: (f64, f64)) -> Window {
        let place = |at: f64, extent: f64| (at - extent / 2.0).clamp(0.0, 1.0 - extent);
        Window {
            left: place(focus.x, size.0),
            top: place(focus.y, size.1),
            width: size.0,
            height: size.1,
        }
    }

    fn iou(&self, other: &Window) -> f64 {
        let overlap = |a0: f64, a1: f64, b0: f64, b1: f64| (a1.min(b1) - a0.max(b0)).max(0.0);
        let inter = overlap(
            self.left,
            self.left + self.width,
            other.left,
            other.left + other.width,
        ) * overlap(
            self.top,
            self.top + self.height,
            other.top,
            other.top + other.height,
        );
        let union = self.width * self.height + other.width * other.height - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }

    /// How far the window's centre is from the image's, in window widths/heights (0: centred).
    fn shift_from_centre(&self) -> f64 {
        let dx = (self.left + self.width / 2.0 - 0.5) / self.width;
        let dy = (self.top + self.height / 2.0 - 0.5) / self.height;
        (dx * dx + dy * dy).sqrt()
    }

    /// (whole, cut) among `faces`.
    fn faces_kept(&self, faces: &[FaceBox]) -> (usize, usize) {
        const EPS: f64 = 1e-6;
        let mut whole = 0;
        let mut cut = 0;
        for face in faces {
            let inside_x =
                (face.left + face.width).min(self.left + self.width) - face.left.max(self.left);
            let inside_y =
                (face.top + face.height).min(self.top + self.height) - face.top.max(self.top);
            if inside_x <= EPS || inside_y <= EPS {
                continue;
            }
            if inside_x >= face.width - EPS && inside_y >= face.height - EPS {
                whole += 1;
            } else {
                cut += 1;
            }
        }
        (whole, cut)
    }
}

#[derive(Debug, Deserialize)]
struct SharpCrops {
    image: String,
    attention: Window,
    entropy: Window,
}

/// The choices compared, in table order.
pub const CHOICES: [&str; 5] = [
    "ferrotype",
    "area-weighted faces (before)",
    "centre",
    "sharp attention",
    "sharp entropy",
];

pub struct ImageCrops {
    pub image: String,
    pub faces: Vec<FaceBox>,
    pub attention_used: bool,
    /// In CHOICES order.
    pub windows: [Window; 5],
}

pub fn measure(images: &[PathBuf], node: &str, repo: &Path) -> Result<Vec<ImageCrops>> {
    let script = repo.join("bench/sharp-crops.mjs");
    let output = Command::new(node)
        .arg(&script)
        .args(images)
        .output()
        .with_context(|| format!("starting {node} {}", script.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let sharp: Vec<SharpCrops> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()
        .context("parsing sharp-crops.mjs")?;
    let detector = BuiltinDetector::new();
    let mut results = Vec::new();
    for (path, sharp) in images.iter().zip(sharp) {
        let bytes = std::fs::read(path)?;
        let preview = decode_preview(&bytes, BuiltinDetector::PREVIEW_SIDE, &Limits::default())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let faces = detector
            .detect_blocking(&preview)
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        let detection =
            FaceDetection::new(DetectorKind::Builtin, faces.clone()).or_attention(&preview);
        let (w, h) = preview.dimensions();
        let (_, _, cw, ch) = crop_window(w, h, 1, 1, Focus::CENTRE);
        let size = (f64::from(cw) / f64::from(w), f64::from(ch) / f64::from(h));
        results.push(ImageCrops {
            image: sharp.image,
            attention_used: detection.saliency.is_some(),
            windows: [
                Window::around(crop_focus(&detection, size), size),
                Window::around(focus_from_faces(&faces), size),
                Window::around(Focus::CENTRE, size),
                sharp.attention,
                sharp.entropy,
            ],
            faces,
        });
    }
    Ok(results)
}

pub fn markdown(results: &[ImageCrops]) -> String {
    use std::fmt::Write as _;
    let mut md = String::new();
    let with_faces: Vec<&ImageCrops> = results.iter().filter(|r| !r.faces.is_empty()).collect();
    let several: Vec<&ImageCrops> = with_faces
        .iter()
        .copied()
        .filter(|r| r.faces.len() > 1)
        .collect();
    let faceless: Vec<&ImageCrops> = results.iter().filter(|r| r.faces.is_empty()).collect();
    let _ = writeln!(
        md,
        "{} photos: {} with faces found by the built-in detector ({} with two or more; {} faces in all), {} without.\n",
        results.len(),
        with_faces.len(),
        several.len(),
        with_faces.iter().map(|r| r.faces.len()).sum::<usize>(),
        faceless.len()
    );
    let _ = writeln!(
        md,
        "Square crop (the thumbnail's shape). Faces kept whole / cut:\n\n| choice | all photos with faces | photos with 2+ faces | photos with a face cut |\n|---|---:|---:|---:|"
    );
    for (i, name) in CHOICES.iter().enumerate() {
        let tally = |set: &[&ImageCrops]| {
            set.iter().fold((0, 0), |(w, c), r| {
                let (whole, cut) = r.windows[i].faces_kept(&r.faces);
                (w + whole, c + cut)
            })
        };
        let (all_whole, all_cut) = tally(&with_faces);
        let (multi_whole, multi_cut) = tally(&several);
        let photos_cut = with_faces
            .iter()
            .filter(|r| r.windows[i].faces_kept(&r.faces).1 > 0)
            .count();
        let _ = writeln!(
            md,
            "| {name} | {all_whole} / {all_cut} | {multi_whole} / {multi_cut} | {photos_cut} of {} |",
            with_faces.len()
        );
    }
    let _ = writeln!(
        md,
        "\nWithout faces ({} photos): how far each choice moves from the centre (mean, in crop widths), \
         how often it moves more than a tenth of the crop, and how much it agrees with the others (mean \
         intersection over union):\n\n| choice | mean shift | moved | IoU with ferrotype | IoU with sharp attention |\n|---|---:|---:|---:|---:|",
        faceless.len()
    );
    for (i, name) in CHOICES.iter().enumerate() {
        if i == 1 {
            continue; // Without faces the area-weighted choice is the centre.
        }
        let n = faceless.len().max(1) as f64;
        let shift = faceless
            .iter()
            .map(|r| r.windows[i].shift_from_centre())
            .sum::<f64>()
            / n;
        let moved = faceless
            .iter()
            .filter(|r| r.windows[i].shift_from_centre() > 0.1)
            .count();
        let iou_ours = faceless
            .iter()
            .map(|r| r.windows[i].iou(&r.windows[0]))
            .sum::<f64>()
            / n;
        let iou_sharp = faceless
            .iter()
            .map(|r| r.windows[i].iou(&r.windows[3]))
            .sum::<f64>()
            / n;
        let _ = writeln!(
            md,
            "| {name} | {shift:.2} | {moved} of {} | {iou_ours:.2} | {iou_sharp:.2} |",
            faceless.len()
        );
    }
    md
}

/// Side-by-side squares of each choice (ferrotype, centre, sharp attention, sharp entropy) for the
/// photos where ferrotype's crop differs from the centre's, a row per photo, `per_sheet` rows per PNG.
pub fn write_sheets(
    images: &[PathBuf],
    results: &[ImageCrops],
    dir: &Path,
    per_sheet: usize,
) -> Result<Vec<PathBuf>> {
    const TILE: u32 = 150;
    const SHOWN: [usize; 4] = [0, 2, 3, 4];
    std::fs::create_dir_all(dir)?;
    let rows: Vec<(&PathBuf, &ImageCrops)> = images
        .iter()
        .zip(results)
        .filter(|(_, r)| r.windows[0].iou(&r.windows[2]) < 0.9)
        .collect();
    let mut written = Vec::new();
    for (sheet, chunk) in rows.chunks(per_sheet.max(1)).enumerate() {
        let mut canvas = image::RgbImage::from_pixel(
            TILE * SHOWN.len() as u32 + 4 * (SHOWN.len() as u32 - 1),
            (TILE + 4) * chunk.len() as u32,
            image::Rgb([255, 255, 255]),
        );
        for (row, (path, result)) in chunk.iter().enumerate() {
            let preview = decode_preview(&std::fs::read(path)?, 1280, &Limits::default())
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let (w, h) = preview.dimensions();
            for (column, choice) in SHOWN.iter().enumerate() {
                let win = result.windows[*choice];
                let x = (win.left * f64::from(w)).round() as u32;
                let y = (win.top * f64::from(h)).round() as u32;
                let cw = ((win.width * f64::from(w)).round() as u32).clamp(1, w - x.min(w - 1));
                let ch = ((win.height * f64::from(h)).round() as u32).clamp(1, h - y.min(h - 1));
                let crop = image::imageops::crop_imm(&preview, x.min(w - 1), y.min(h - 1), cw, ch)
                    .to_image();
                let tile = image::imageops::resize(
                    &crop,
                    TILE,
                    TILE,
                    image::imageops::FilterType::Triangle,
                );
                image::imageops::replace(
                    &mut canvas,
                    &tile,
                    i64::from(column as u32 * (TILE + 4)),
                    i64::from(row as u32 * (TILE + 4)),
                );
            }
        }
        let out = dir.join(format!("crops-{sheet:02}.png"));
        canvas.save(&out)?;
        written.push(out);
    }
    let mut index = String::from("sheet\trow\timage\tfaces\n");
    for (i, (_, r)) in rows.iter().enumerate() {
        index.push_str(&format!(
            "{}\t{}\t{}\t{}\n",
            i / per_sheet.max(1),
            i % per_sheet.max(1),
            r.image,
            r.faces.len()
        ));
    }
    std::fs::write(dir.join("index.tsv"), index)?;
    Ok(written)
}

/// One line per photo: its faces and each choice's window, for a person (or a script) to check.
pub fn per_image(results: &[ImageCrops]) -> String {
    let mut out = String::from("image\tfaces\tattention");
    for name in CHOICES {
        out.push('\t');
        out.push_str(name);
    }
    out.push('\n');
    for r in results {
        out.push_str(&format!(
            "{}\t{}\t{}",
            r.image,
            r.faces.len(),
            r.attention_used
        ));
        for w in &r.windows {
            out.push_str(&format!(
                "\t{:.3},{:.3},{:.3},{:.3}",
                w.left, w.top, w.width, w.height
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(left: f64, top: f64, width: f64, height: f64) -> FaceBox {
        FaceBox {
            left,
            top,
            width,
            height,
            confidence: 1.0,
        }
    }

    #[test]
    fn faces_are_whole_cut_or_outside() {
        let window = Window {
            left: 0.2,
            top: 0.0,
            width: 0.5,
            height: 1.0,
        };
        let faces = [
            face(0.3, 0.1, 0.1, 0.1),  // whole
            face(0.65, 0.1, 0.1, 0.1), // cut by the right edge
            face(0.8, 0.1, 0.1, 0.1),  // outside
        ];
        assert_eq!(window.faces_kept(&faces), (1, 1));
    }

    #[test]
    fn windows_stay_inside_and_compare() {
        let w = Window::around(Focus::new(1.0, 0.5), (0.5, 1.0));
        assert_eq!((w.left, w.top), (0.5, 0.0));
        let centre = Window::around(Focus::CENTRE, (0.5, 1.0));
        assert!((w.iou(&centre) - 1.0 / 3.0).abs() < 1e-9);
        assert!((w.shift_from_centre() - 0.5).abs() < 1e-9);
        assert_eq!(centre.shift_from_centre(), 0.0);
    }
}
