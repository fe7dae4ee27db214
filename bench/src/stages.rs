//! The compute of each pipeline stage on one image, single-threaded (a Lambda of 1664 MiB has about one
//! vCPU), for the cost model: validate's probe, its one decode into the working copy and the copy's
//! encoding; detect-faces reading the working copy, making its preview and running the built-in
//! detector; render-variant reading the working copy and rendering each variant of the project's
//! default profile from it.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use ferrotype_core::faces::BuiltinDetector;
use ferrotype_core::{
    decode_working_copy, face_preview, probe, render_working, Focus, Limits, VariantSpec,
    WorkingCopy,
};
use serde::{Deserialize, Serialize};

use crate::measure::{median, millis};

/// The preview the built-in detector gets: it scans nothing larger (detect-faces should ask for the
/// same; it is not a dependency here, it would bring the AWS SDK into the benchmark).
const BUILTIN_PREVIEW_SIDE: u32 = BuiltinDetector::PREVIEW_SIDE;
/// validate reads the first 64 KiB of the object (functions/validate/src/lib.rs).
const HEADER_PREFIX: usize = 64 * 1024;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageTimes {
    pub image: String,
    pub source_bytes: u64,
    pub probe_ms: f64,
    /// validate's decode of the whole source into the working copy, and the copy's encoding.
    pub decode_ms: f64,
    pub encode_ms: f64,
    pub working_copy_bytes: u64,
    pub working_copy_size: (u32, u32),
    /// detect-faces: the working copy decoded, its preview made, the built-in detector run.
    pub faces_ms: f64,
    pub faces_found: usize,
    /// render-variant per variant: name, working copy decoded and the variant rendered (ms), output bytes.
    pub variants: Vec<(String, f64, u64)>,
}

impl StageTimes {
    /// validate's compute: probe, decode, working copy encode.
    pub fn validate_ms(&self) -> f64 {
        self.probe_ms + self.decode_ms + self.encode_ms
    }
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
    let mut working = None;
    let decode_ms = timed(&mut || {
        working = Some(decode_working_copy(
            &bytes,
            limits,
            variants,
            Some(BUILTIN_PREVIEW_SIDE),
        )?);
        Ok(())
    })?;
    let working = working.context("decoded")?;
    let mut encoded = Vec::new();
    let encode_ms = timed(&mut || {
        encoded = working.encode();
        Ok(())
    })?;
    // The clone stands for the stage's S3 read, a fresh buffer that decoding takes over.
    let read = || {
        WorkingCopy::decode(encoded.clone(), limits)
            .map_err(|e| anyhow::anyhow!("working copy: {e}"))
    };
    let detector = BuiltinDetector::new();
    let mut faces_found = 0;
    let faces_ms = timed(&mut || {
        let preview = face_preview(&read()?, BUILTIN_PREVIEW_SIDE)?;
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
            out_bytes = render_working(&read()?, spec, Some(Focus::CENTRE))?
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
        decode_ms,
        encode_ms,
        working_copy_bytes: encoded.len() as u64,
        working_copy_size: (working.width(), working.height()),
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
        assert!(times.faces_ms > 0.0 && times.decode_ms > 0.0 && times.encode_ms > 0.0);
        // The 800×800 cover needs all 600 rows of the 900×600 photo: the working copy is full size.
        assert_eq!(times.working_copy_size, (900, 600));
        assert!(times.working_copy_bytes > 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
