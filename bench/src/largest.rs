//! Peak memory of rendering the largest image the default profile accepts (limits.maxPixels =
//! 100,000,000): a generated 10000×10000 JPEG and PNG, one variant per process as render-variant does.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use ferrotype_core::Limits;
use serde::{Deserialize, Serialize};

use crate::measure::median;
use crate::synthetic::{encode_jpeg, encode_png, photo_like, LARGEST_ALLOWED};
use crate::worker::WorkerResult;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LargeRun {
    pub image: String,
    pub source_bytes: u64,
    pub side: String,
    pub variant: String,
    pub wall_ms: f64,
    pub peak_rss_kib: u64,
}

/// Generates the two largest images into `dir` (kept when present). No sensor grain: with grain the
/// files would exceed the default 50 MB object limit and be refused before decoding.
pub fn ensure_images(dir: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let (w, h) = LARGEST_ALLOWED;
    let jpeg = dir.join(format!("largest-{w}x{h}.jpg"));
    let png = dir.join(format!("largest-{w}x{h}.png"));
    if !jpeg.exists() || !png.exists() {
        eprintln!("generating {w}x{h} images (takes a while)");
        let image = photo_like(w, h, 4242, false);
        if !jpeg.exists() {
            std::fs::write(&jpeg, encode_jpeg(&image, 90)?)?;
        }
        if !png.exists() {
            // Even without grain a 100 MP photo is ~53 MB as PNG; 5 bits per channel (as in an
            // illustration or a screenshot) keeps it under the byte limit with every pixel decoded.
            let mut posterised = image.clone();
            posterised
                .pixels_mut()
                .for_each(|p| p.0.iter_mut().for_each(|c| *c &= 0xf8));
            std::fs::write(&png, encode_png(&posterised)?)?;
        }
    }
    let limit = Limits::default().max_bytes;
    for path in [&jpeg, &png] {
        let size = std::fs::metadata(path)?.len();
        if size > limit {
            bail!(
                "{} is {size} bytes, over the default {limit}-byte limit",
                path.display()
            );
        }
    }
    Ok(vec![jpeg, png])
}

fn run(mut command: Command, what: &str) -> Result<WorkerResult> {
    let output = command
        .output()
        .with_context(|| format!("starting {what}"))?;
    if !output.status.success() {
        bail!(
            "{what} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .context("no JSON line")?;
    Ok(serde_json::from_str(line)?)
}

/// Timed runs per process, after one untimed: one cold run was within noise of either side (the first
/// read of a 10 MB file and the allocator's first growth dominate it). Peak RSS is the process's, so
/// it covers every run.
const RUNS: &str = "3";

pub fn measure(dir: &Path, node: &str, sharp_worker: &Path) -> Result<Vec<LargeRun>> {
    let mut runs = Vec::new();
    for image in ensure_images(dir)? {
        let source_bytes = std::fs::metadata(&image)?.len();
        for variant in ["thumbnail", "coverphoto"] {
            let mut ours = Command::new(std::env::current_exe()?);
            ours.arg("ours")
                .arg("--image")
                .arg(&image)
                .args(["--only", variant, "--runs", RUNS, "--warmup", "1"]);
            let mut sharp = Command::new(node);
            sharp.arg(sharp_worker).arg("--image").arg(&image);
            sharp.args([
                "--only",
                variant,
                "--runs",
                RUNS,
                "--warmup",
                "1",
                "--concurrency",
                "1",
            ]);
            for (side, command) in [("ours", ours), ("sharp", sharp)] {
                let name = image
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let result = match run(command, side) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("[largest] {side} {name} {variant}: {e}");
                        continue;
                    }
                };
                let wall_ms = median(&result.wall_ms);
                eprintln!(
                    "[largest] {side} {name} {variant}: {wall_ms:.0} ms, peak RSS {} MiB",
                    result.peak_rss_kib / 1024
                );
                runs.push(LargeRun {
                    image: name,
                    source_bytes,
                    side: side.into(),
                    variant: variant.into(),
                    wall_ms,
                    peak_rss_kib: result.peak_rss_kib,
                });
            }
        }
    }
    Ok(runs)
}

pub fn markdown(runs: &[LargeRun], memory_mib: u32) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "| image | source MB | variant | side | ms | peak RSS MiB | of {memory_mib} MiB |"
    );
    let _ = writeln!(md, "|---|---:|---|---|---:|---:|---:|");
    for r in runs {
        let mib = r.peak_rss_kib as f64 / 1024.0;
        let _ = writeln!(
            md,
            "| {} | {:.1} | {} | {} | {:.0} | {:.0} | {:.0} % |",
            r.image,
            r.source_bytes as f64 / 1e6,
            r.variant,
            r.side,
            r.wall_ms,
            mib,
            mib / memory_mib as f64 * 100.0
        );
    }
    md
}
