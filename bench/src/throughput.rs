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
    // The run starts in `work`: a relative path to the binary would not resolve there.
    let ferrotype = std::fs::canonicalize(ferrotype)
        .with_context(|| format!("{} (build it with --release)", ferrotype.display()))?;
    let start = Instant::now();
    let output = Command::new(&ferrotype)
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

/// The mean size in bytes of one history event (compact JSON, state input and output included) over the
/// executions a `ferrotype run` in `work` journaled: what Express logs per event with execution data.
pub fn history_event_bytes(work: &Path) -> Option<f64> {
    let dir = work.join(".ferrotype").join("executions");
    let (mut bytes, mut events) = (0usize, 0usize);
    for entry in std::fs::read_dir(dir).ok()? {
        let path = entry.ok()?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).ok()?).ok()?;
        for event in record["history"].as_array()? {
            bytes += serde_json::to_string(event).ok()?.len();
            events += 1;
        }
    }
    (events > 0).then(|| bytes as f64 / events as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_bytes_are_the_mean_over_every_journaled_event() {
        let work =
            std::env::temp_dir().join(format!("ferrotype-bench-events-{}", std::process::id()));
        let dir = work.join(".ferrotype").join("executions");
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(history_event_bytes(&work), None);
        std::fs::write(dir.join("a.json"), r#"{"history":[{"id":1},{"id":22}]}"#).unwrap();
        std::fs::write(dir.join("b.json"), r#"{"history":[{"id":333}]}"#).unwrap();
        std::fs::write(dir.join("a.json.partial"), "torn").unwrap();
        // {"id":1} 8, {"id":22} 9, {"id":333} 10
        assert_eq!(history_event_bytes(&work), Some(9.0));
        std::fs::remove_dir_all(&work).unwrap();
    }
}
