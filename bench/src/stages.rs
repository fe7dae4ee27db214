//! The compute of each pipeline stage on one image, single-threaded (a Lambda of 1664 MiB has about one
//! vCPU), for the cost model: validate's probe, detect-faces' preview and built-in detector,
//! render-variant's render of each variant of the project's default profile.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ferrotype_core::faces::BuiltinDetector;
use ferrotype_core::{decode_preview, probe, render, Focus, Limits, VariantSpec};
use serde::{Deserialize, Serialize};

use crate::measure::{median, millis};

/// detect-faces' BUILTIN_PREVIEW_SIDE (functions/detect-faces/src/lib.rs; not a dependency here, it
/// would bring the AWS SDK into the benchmark).
const BUILTIN_PREVIEW_SIDE: u32 = 1600;
/// validate reads the first 64 KiB of the object (functions/validate/src/lib.rs).
const HEADER_PREFIX: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageTimes {
    pub image: String,
    pub source_bytes: u64,
    pub probe_ms: f64,
    pub faces_ms: f64,
    pub faces_found: usize,
    pub variants: Vec<(String, f64, u64)>,
}

/// The default profile of a ferrotype.json: its variants and limits.
pub fn default_profile(config_path: &Path) -> Result<(Vec<VariantSpec>, Limits)> {
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(config_path)
            .with_context(|| format!("reading {}", config_path.display()))?,
    )?;
    let profile = config["profiles"]
        .get(0)
        .context("the config has no profile")?;
    let variants =
        serde_json::from_value(profile["variants"].clone()).context("the profile's variants")?;
    let limits = match profile.get("limits") {
        Some(limits) => serde_json::from_value(limits.clone()).context("the profile's limits")?,
        None => Limits::default(),
    };
    Ok((variants, limits))
}

pub fn measure(
    image: &Path,
    variants: &[VariantSpec],
    limits: &Limits,
    runs: usize,
) -> Result<StageTimes> {
    let bytes = std::fs::read(image).with_context(|| format!("reading {}", image.display()))?;
    let timed = |f: &mut dyn FnMut() -> Result<()>| -> Result<f64> {
        f()?; // warm-up
        let mut samples = Vec::new();
        for _ in 0..runs.max(1) {
            let start = Instant::now();
            f()?;
            samples.push(millis(start.elapsed()));
        }
        Ok(median(&samples))
    };
    let header = &bytes[..bytes.len().min(HEADER_PREFIX)];
    let probe_ms = timed(&mut || {
        probe(header, bytes.len() as u64, limits).map_err(|e| anyhow::anyhow!("probe: {e}"))?;
        Ok(())
    })?;
    let detector = BuiltinDetector::new();
    let mut faces_found = 0;
    let faces_ms = timed(&mut || {
        let preview = decode_preview(&bytes, BUILTIN_PREVIEW_SIDE, limits)?;
        faces_found = detector
            .detect_blocking(&preview)
            .map_err(|e| anyhow::anyhow!("faces: {e}"))?
            .len();
        Ok(())
    })?;
    let mut variant_times = Vec::new();
    for spec in variants {
        let mut out_bytes = 0;
        let ms = timed(&mut || {
            out_bytes = render(&bytes, spec, Some(Focus::CENTRE), limits)?
                .bytes
                .len() as u64;
            Ok(())
        })?;
        variant_times.push((spec.name.clone(), ms, out_bytes));
    }
    Ok(StageTimes {
        image: image
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source_bytes: bytes.len() as u64,
        probe_ms,
        faces_ms,
        faces_found,
        variants: variant_times,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projects_default_profile_is_read() {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ferrotype.json");
        let (variants, limits) = default_profile(&config).unwrap();
        assert!(!variants.is_empty());
        assert!(limits.max_pixels > 0);
    }

    #[test]
    fn every_stage_is_timed_on_a_generated_photo() {
        let dir =
            std::env::temp_dir().join(format!("ferrotype-bench-stages-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let image = dir.join("photo.jpg");
        let photo = crate::synthetic::photo_like(900, 600, 2, true);
        std::fs::write(&image, crate::synthetic::encode_jpeg(&photo, 90).unwrap()).unwrap();
        let specs: Vec<VariantSpec> = crate::worker::seed_variants().unwrap();
        let times = measure(&image, &specs, &Limits::default(), 1).unwrap();
        assert_eq!(times.variants.len(), 2);
        assert!(times
            .variants
            .iter()
            .all(|(_, ms, bytes)| *ms > 0.0 && *bytes > 0));
        assert!(times.faces_ms > 0.0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
