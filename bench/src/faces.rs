//! The built-in face detector's time and recall on images, under the shipped settings and others
//! (`ferrotype-bench faces IMAGES… [--settings side:min:pyramid:step,…]`): what detect-faces does, from
//! the working copy (decoded once for a preview of the scan's size) to the faces.

use std::path::Path;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use ferrotype_core::faces::{BuiltinDetector, DetectorSettings, FaceBox};
use ferrotype_core::{decode_working_copy, face_preview, Limits};

use crate::measure::{median, millis};

/// `side:min_face:pyramid:step`, e.g. `1280:40:0.8:4` (the shipped settings).
pub fn parse_settings(text: &str) -> Result<DetectorSettings> {
    let parts: Vec<&str> = text.split(':').collect();
    let [side, min_face, pyramid, step] = parts[..] else {
        return Err(anyhow!("{text:?} is not side:min_face:pyramid:step"));
    };
    Ok(DetectorSettings {
        scan_max_side: side.parse()?,
        min_face_px: min_face.parse()?,
        pyramid_scale: pyramid.parse()?,
        window_step: step.parse()?,
    })
}

pub struct FacesRow {
    pub settings: DetectorSettings,
    /// Preview from the working copy (grey conversion and scaling included in detect).
    pub preview_ms: f64,
    pub detect_ms: f64,
    pub faces: Vec<FaceBox>,
}

pub fn measure(image: &Path, settings: &[DetectorSettings], runs: usize) -> Result<Vec<FacesRow>> {
    let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let largest = settings
        .iter()
        .map(|s| s.scan_max_side)
        .max()
        .unwrap_or(1280);
    let copy = decode_working_copy(&bytes, &Limits::default(), &[], Some(largest))?;
    let mut rows = Vec::new();
    for s in settings {
        let detector = BuiltinDetector::with_settings(*s);
        let (mut preview_ms, mut detect_ms, mut faces) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs.max(1) + 1 {
            let start = Instant::now();
            let preview = face_preview(&copy, s.scan_max_side)?;
            preview_ms.push(millis(start.elapsed()));
            let start = Instant::now();
            faces = detector
                .detect_blocking(&preview)
                .map_err(|e| anyhow!("{e}"))?;
            detect_ms.push(millis(start.elapsed()));
        }
        // The first run warms up (model parse, page faults).
        rows.push(FacesRow {
            settings: *s,
            preview_ms: median(&preview_ms[1..]),
            detect_ms: median(&detect_ms[1..]),
            faces,
        });
    }
    Ok(rows)
}

pub fn markdown_row(image: &Path, row: &FacesRow) -> String {
    let s = row.settings;
    let faces: Vec<String> = row
        .faces
        .iter()
        .map(|f| {
            format!(
                "({:.2},{:.2} {:.2}×{:.2})",
                f.left + f.width / 2.0,
                f.top + f.height / 2.0,
                f.width,
                f.height
            )
        })
        .collect();
    format!(
        "| {} | {}:{}:{}:{} | {:.1} | {:.1} | {} {} |\n",
        image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        s.scan_max_side,
        s.min_face_px,
        s.pyramid_scale,
        s.window_step,
        row.preview_ms,
        row.detect_ms,
        row.faces.len(),
        faces.join(" ")
    )
}
