//! The local pipeline's throughput: images per minute through `ferrotype run <folder>` on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Throughput {
    pub images: usize,
    pub seconds: f64,
    pub images_per_minute: f64,
    pub cores: usize,
}

/// Whether `ferrotype` has the `run` command yet.
pub fn has_run_command(ferrotype: &Path) -> bool {
    Command::new(ferrotype)
        .args(["run", "--help"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Copies `images` (repeated up to `count`) into a fresh uploads folder under `work` and times one
/// `ferrotype run` over it, started in `work` so its state stays there.
pub fn measure(
    ferrotype: &Path,
    images: &[PathBuf],
    count: usize,
    work: &Path,
) -> Result<Throughput> {
    if images.is_empty() {
        bail!("no images for the throughput run");
    }
    let uploads = work.join("uploads");
    if work.exists() {
        std::fs::remove_dir_all(work).with_context(|| format!("clearing {}", work.display()))?;
    }
    std::fs::create_dir_all(&uploads)?;
    for i in 0..count {
        let source = &images[i % images.len()];
        let name = format!(
            "{i:04}-{}",
            source
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("image")
        );
        std::fs::copy(source, uploads.join(name))
            .with_context(|| format!("copying {}", source.display()))?;
    }
    let start = Instant::now();
    let output = Command::new(ferrotype)
        .arg("run")
        // Relative to `work`, where the command runs (`uploads` itself may be relative to here).
        .arg("uploads")
        .current_dir(work)
        .output()
        .with_context(|| format!("starting {}", ferrotype.display()))?;
    let seconds = start.elapsed().as_secs_f64();
    if !output.status.success() {
        bail!(
            "ferrotype run failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(Throughput {
        images: count,
        seconds,
        images_per_minute: count as f64 / seconds * 60.0,
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
    })
}
